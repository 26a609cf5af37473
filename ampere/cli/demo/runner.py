"""`ampere demo`: the command line, the throwaway chain, and the verdict on the whole run."""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from ampere.chain.embedded import EmbeddedChain
from ampere.cli.demo.channel_kit import mine_to_wallets
from ampere.cli.demo.chapters import CHAPTERS, Chapter, chapter_named
from ampere.cli.demo.context import DemoContext
from ampere.cli.demo.narrator import Narrator
from ampere.errors import AmpereError

DEFAULT_TO_SELF_DELAY = 6
# 4 sat/vB: comfortably above the 1 sat/vB relay floor for every transaction of the story.
FEERATE_PER_KW = 1000
MIN_DELAY, MAX_DELAY = 2, 1000


def add_arguments(parser: argparse.ArgumentParser) -> None:
    # Raw, so that the chapter list keeps one line per chapter.
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    parser.epilog = "chapters:\n" + "\n".join(f"  {c.name:<12} {c.summary}" for c in CHAPTERS)
    parser.add_argument(
        "--datadir",
        type=Path,
        metavar="DIR",
        help="keep the chain in DIR/chain, to look at afterwards (default: a temporary directory, removed)",
    )
    parser.add_argument(
        "--to-self-delay",
        type=int,
        default=DEFAULT_TO_SELF_DELAY,
        metavar="BLOCKS",
        help=f"the channels' to_self_delay, {MIN_DELAY}..{MAX_DELAY} (default {DEFAULT_TO_SELF_DELAY})",
    )
    parser.add_argument(
        "--only",
        action="append",
        choices=[chapter.name for chapter in CHAPTERS],
        metavar="CHAPTER",
        help="play only this chapter; repeat for several (default: all, in order)",
    )
    parser.add_argument("--list", action="store_true", help="list the chapters and exit")


def run(args: argparse.Namespace) -> int:
    if args.list:
        for chapter in CHAPTERS:
            print(f"{chapter.name:<12} {chapter.summary}")
        return 0
    delay = int(args.to_self_delay)
    if not MIN_DELAY <= delay <= MAX_DELAY:
        print(f"ampere demo: --to-self-delay must be in {MIN_DELAY}..{MAX_DELAY}", file=sys.stderr)
        return 2
    names: list[str] = args.only or [chapter.name for chapter in CHAPTERS]
    chapters = [chapter_named(name) for name in dict.fromkeys(names)]
    try:
        with _datadir(args.datadir) as datadir, EmbeddedChain(datadir / "chain") as chain:
            return play(chain, chapters, delay)
    except AmpereError as exc:
        print(f"ampere demo: {exc}", file=sys.stderr)
        return 1


@contextmanager
def _datadir(given: Path | None) -> Iterator[Path]:
    if given is not None:
        given.mkdir(parents=True, exist_ok=True)
        yield given
        return
    with tempfile.TemporaryDirectory(prefix="ampere-demo-") as tmp:
        yield Path(tmp)


def play(chain: EmbeddedChain, chapters: list[Chapter], to_self_delay: int) -> int:
    """Play `chapters` on `chain`; 0 when every verdict and check went as the story says."""
    narrator = Narrator()
    ctx = DemoContext.create(chain, narrator, to_self_delay, FEERATE_PER_KW)
    started = time.perf_counter()
    narrator.chapter("Ampere demo on an embedded regtest chain (libbitcoinkernel)")
    narrator.scene(f"The cast: {ctx.alice.name} and {ctx.bob.name}")
    narrator.say("Each has a seed, a BIP84 wallet and, per channel, keys derived from that seed.")
    mine_to_wallets(chain, [ctx.alice, ctx.bob])
    narrator.detail(f"one coinbase to each wallet, then 100 blocks to mature them; tip {chain.tip_height()}")
    for party in (ctx.alice, ctx.bob):
        narrator.say(f"{party.name}: {party.balance_sat(chain):,} sat")
    for chapter in chapters:
        chapter.play(ctx)
    elapsed = time.perf_counter() - started
    if narrator.surprises:
        narrator.failed(f"{len(narrator.surprises)} step(s) did not go as the story says:")
        for surprise in narrator.surprises:
            narrator.say(surprise)
        return 1
    narrator.done(
        f"All {len(narrator.verdicts)} verdicts as expected; {chain.tip_height()} blocks; {elapsed:.1f} s."
    )
    return 0
