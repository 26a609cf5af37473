"""Going on chain: our commitment is broadcast before the `error` that tells the peer, so a peer that
reacts to the error by broadcasting its own commitment cannot get ahead of us."""

from __future__ import annotations

from ampere.channel.twoway import Phase
from tests.channel.twoway.harness import open_pair


def _kinds(actions: list[object]) -> list[str]:
    from ampere.channel.twoway import Broadcast, SendMessage

    return [
        "broadcast" if isinstance(a, Broadcast) else "error" if isinstance(a, SendMessage) else "other"
        for a in actions
        if isinstance(a, Broadcast | SendMessage)
    ]


def test_force_close_broadcasts_our_commitment_before_the_error_leaves() -> None:
    # A peer that reacts to our `error` by broadcasting its own commitment must find ours already out.
    from ampere.channel.twoway import ForceClose

    pair = open_pair(push_msat=100_000_000)
    assert _kinds(pair.alice.handle(ForceClose("giving up"))) == ["broadcast", "error"]


def test_failing_on_a_protocol_violation_broadcasts_before_the_error_leaves() -> None:
    from ampere.channel.twoway import SendMessage
    from ampere.channel.twoway.messages import UpdateFulfillHtlc

    pair = open_pair(push_msat=100_000_000)
    bogus = UpdateFulfillHtlc(pair.bob.state.channel_id, 7, bytes(32))  # no such HTLC
    actions = pair.bob.receive(SendMessage(bogus).to_bytes())
    assert _kinds(actions) == ["broadcast", "error"]
    assert pair.bob.state.phase is Phase.FORCE_CLOSING
