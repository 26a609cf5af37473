"""Declarations of the node's RPC methods: name, parameters and permission, shared by server and CLI.

A method is the CLI command with spaces and hyphens turned into `_` (`micro open` -> `micro_open`,
`dev-cheat` -> `dev_cheat`). Parameters are listed in CLI order, which is also the order of
positional JSON-RPC params. Nothing here runs a method: `ampere.api.registry` binds handlers, and
`ampere.cli` builds its commands from the same table, so the two cannot drift apart.

Each group lives in its own module; a new group is added to `METHOD_GROUPS` here.
"""

from __future__ import annotations

from ampere.node.backup_commands import BACKUP_METHODS
from ampere.node.channel_commands import CHANNEL_METHODS
from ampere.node.dev_commands import DEV_METHODS
from ampere.node.method_spec import MethodSpec, ParamKind, ParamSpec, Permission, method_name
from ampere.node.micro_commands import MICRO_METHODS
from ampere.node.node_commands import NODE_METHODS
from ampere.node.onchain_commands import ONCHAIN_METHODS
from ampere.node.payment_commands import PAYMENT_METHODS

__all__ = [
    "ALL_METHODS",
    "METHOD_GROUPS",
    "NODE_METHODS",
    "MethodSpec",
    "ParamKind",
    "ParamSpec",
    "Permission",
    "all_methods",
    "method_name",
]

METHOD_GROUPS: list[tuple[MethodSpec, ...]] = [
    NODE_METHODS,
    CHANNEL_METHODS,
    ONCHAIN_METHODS,
    PAYMENT_METHODS,
    MICRO_METHODS,
    BACKUP_METHODS,
    DEV_METHODS,
]


def all_methods() -> tuple[MethodSpec, ...]:
    return tuple(spec for group in METHOD_GROUPS for spec in group)


ALL_METHODS = all_methods()
