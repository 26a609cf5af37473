"""RPC/CLI declarations of the on-chain resolution commands (handlers: `ampere.api.onchain_methods`)."""

from __future__ import annotations

from ampere.node.method_spec import READ, MethodSpec

__all__ = ["ONCHAIN_METHODS"]

ONCHAIN_METHODS: tuple[MethodSpec, ...] = (
    MethodSpec(
        ("listclosed",),
        (),
        READ,
        "closed channels: how each closed, and every output of ours with its path, the height at which "
        "it can be claimed and whether it is swept",
    ),
)
