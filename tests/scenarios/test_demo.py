"""`ampere demo` as a user runs it, and its exit status when the chain disagrees with the story."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from ampere.bitcoin.tx import Transaction, TxIn, TxOut
from ampere.chain.embedded import EmbeddedChain
from ampere.cli.demo.channel_kit import SINK_SCRIPT
from ampere.cli.demo.chapters import CHAPTERS, Chapter
from ampere.cli.demo.context import DemoContext
from ampere.cli.demo.runner import play

PROJECT_ROOT = Path(__file__).resolve().parents[2]


def _demo(*args: str) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, PYTHONIOENCODING="utf-8")
    return subprocess.run(
        [sys.executable, "-m", "ampere.cli.main", "demo", *args],
        cwd=PROJECT_ROOT,
        env=env,
        capture_output=True,
        text=True,
        encoding="utf-8",
        timeout=120,
    )


def test_the_whole_demo_runs_and_every_verdict_is_as_narrated() -> None:
    result = _demo()
    assert result.returncode == 0, result.stdout + result.stderr
    out = result.stdout
    assert "张三 (Alice)" in out and "李四 (Bob)" in out
    chapters = (
        "A micropayment channel",
        "A two-way channel",
        "The penalty",
        "A force close",
        "A breach",
        "Anchor outputs",
    )
    for chapter in chapters:
        assert chapter in out
    # Each rejection is shown with the kernel's reason, in bitcoind's words.
    assert "✘ rejected  to_local sweep at 5 confirmations: non-BIP68-final" in out
    assert "✔ accepted  to_local sweep at 6 confirmations" in out
    assert ": non-final" in out
    assert "HTLC-success with a wrong preimage: mandatory-script-verify-flag-failed" in out
    assert "edited commitment with Bob's old signature: mandatory-script-verify-flag-failed" in out
    assert "✔ accepted  Bob's penalty: Alice's to_local with the revocation key" in out
    assert "bad-txns-inputs-missingorspent" in out
    assert "✔ accepted  Bob's node broadcasts: justice" in out
    assert "Alice's wallet gained 0 sat from the channel: she lost all of it" in out
    assert "min relay fee not met" in out
    assert "✔ accepted  HTLC-success with Alice's fee input" in out
    assert "✘ rejected  the refund one block early" in out
    assert "✔ accepted  张三 (Alice)'s commitment #2 (testmempoolaccept, not broadcast)" in out
    # The three channels of the transaction-level chapters and the two micropayment channels.
    assert out.count("the channel's 1,000,000 sat") == 5
    assert "NOT AS EXPECTED" not in out and "DOES NOT HOLD" not in out
    assert "verdicts as expected" in out


def test_options_pick_chapters_delay_and_datadir(tmp_path: Path) -> None:
    result = _demo("--only", "force-close", "--to-self-delay", "3", "--datadir", str(tmp_path))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "to_local sweep at 2 confirmations: non-BIP68-final" in result.stdout
    assert "A breach" not in result.stdout and "micropayment" not in result.stdout
    assert (tmp_path / "chain" / "index.sqlite").exists()  # kept, as asked

    listing = _demo("--list")
    assert listing.returncode == 0
    assert [line.split()[0] for line in listing.stdout.splitlines()] == [c.name for c in CHAPTERS]
    assert _demo("--to-self-delay", "1").returncode == 2


def test_a_verdict_other_than_the_story_fails_the_run(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    def wrong_story(ctx: DemoContext) -> None:
        ctx.narrator.chapter("a story that is wrong")
        coinbase = ctx.chain.get_block(ctx.chain.tip_hash())
        assert coinbase is not None
        spend = Transaction(2, (TxIn(coinbase.transactions[0].outpoint(0)),), (TxOut(1000, SINK_SCRIPT),), 0)
        # An immature coinbase, no witness: the chain refuses it, the story claims it is fine.
        ctx.submit("a spend the chain must refuse", spend)

    with EmbeddedChain(tmp_path / "chain") as chain:
        status = play(chain, [Chapter("wrong", "expects the impossible", wrong_story)], 6)
    assert status == 1
    out = capsys.readouterr().out
    assert "a spend the chain must refuse: bad-txns-premature-spend-of-coinbase" in out
    assert "NOT AS EXPECTED" in out
    assert "1 step(s) did not go as the story says" in out
