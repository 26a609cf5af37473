"""The demo's chapters, in the order they play. Later features add theirs here.

A chapter is a function of the shared `DemoContext`: it narrates its own scenes, submits its
transactions through `ctx.submit` (which records whether each verdict was the expected one) and
leaves the chain for the next chapter. Chapters must not rely on each other's channels; the
wallets are funded once, before the first chapter.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from ampere.cli.demo import micropayment, penalty, rsmc, twoway
from ampere.cli.demo.context import DemoContext


@dataclass(frozen=True, slots=True)
class Chapter:
    name: str
    summary: str
    play: Callable[[DemoContext], None]


CHAPTERS: tuple[Chapter, ...] = (
    Chapter(
        "micropayment",
        "a one-way channel: 1,000 payments, a refused update, settlement and a refund after the locktime",
        micropayment.micropayment,
    ),
    Chapter(
        "two-way",
        "张三 (Alice) and 李四 (Bob) fund 1 BTC each; an HTLC of 0.5 BTC; old commitments revoked",
        twoway.two_way,
    ),
    Chapter(
        "penalty",
        "Alice broadcasts her revoked commitment; Bob's node (its BOLT 5 resolver) takes the whole 2 BTC",
        penalty.penalty,
    ),
    Chapter(
        "force-close",
        "a commitment on chain: to_remote, to_local after the delay, HTLC-success and HTLC-timeout",
        rsmc.force_close,
    ),
    Chapter("breach", "a revoked commitment broadcast, and the penalty with the revocation key", rsmc.breach),
    Chapter("anchors", "anchor outputs: CSV 1, zero-fee HTLC transactions and a fee input", rsmc.anchors),
)


def chapter_named(name: str) -> Chapter:
    for chapter in CHAPTERS:
        if chapter.name == name:
            return chapter
    raise KeyError(name)
