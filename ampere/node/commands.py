"""Declarations of the node's RPC methods: name, parameters and permission, shared by server and CLI.

A method is the CLI command with spaces and hyphens turned into `_` (`micro open` -> `micro_open`,
`dev-cheat` -> `dev_cheat`). Parameters are listed in CLI order, which is also the order of
positional JSON-RPC params. Nothing here runs a method: `ampere.api.registry` binds handlers, and
`ampere.cli` builds its commands from the same table, so the two cannot drift apart.

Later issues add their methods by appending tuples to `METHOD_GROUPS`.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

__all__ = [
    "ALL_METHODS",
    "METHOD_GROUPS",
    "NODE_METHODS",
    "MethodSpec",
    "ParamKind",
    "ParamSpec",
    "Permission",
    "method_name",
]

MAX_SAFE_INT = 2**63 - 1


class ParamKind(enum.Enum):
    STRING = "string"
    INTEGER = "integer"
    BOOLEAN = "boolean"
    AMOUNT_OR_ALL = 'integer or "all"'  # satoshis, or the string "all"


class Permission(enum.Enum):
    READ = "read"  # lists and decodes: the read-only token may call it
    ADMIN = "admin"  # spends, connects, opens, stops: admin token only


@dataclass(frozen=True, slots=True)
class ParamSpec:
    name: str  # snake_case: the JSON-RPC name; the CLI shows it upper-case or as --name-with-hyphens
    kind: ParamKind
    required: bool = True
    help: str = ""
    option: bool = False  # on the CLI a `--flag VALUE` rather than a positional argument
    minimum: int | None = 0  # integers (and amounts) only
    maximum: int | None = MAX_SAFE_INT
    max_length: int = 4096  # strings only

    @property
    def flag(self) -> str:
        return "--" + self.name.replace("_", "-")


@dataclass(frozen=True, slots=True)
class MethodSpec:
    command: tuple[str, ...]  # CLI words, e.g. ("withdraw",) or ("micro", "open")
    params: tuple[ParamSpec, ...]
    permission: Permission
    help: str

    @property
    def name(self) -> str:
        return method_name(" ".join(self.command))

    def param(self, name: str) -> ParamSpec | None:
        for param in self.params:
            if param.name == name:
                return param
        return None


def method_name(command: str) -> str:
    return "_".join(command.replace("-", " ").split())


STR, INT, AMOUNT = ParamKind.STRING, ParamKind.INTEGER, ParamKind.AMOUNT_OR_ALL
READ, ADMIN = Permission.READ, Permission.ADMIN

NODE_METHODS: tuple[MethodSpec, ...] = (
    MethodSpec(("getinfo",), (), READ, "node id, network, block height, listen addresses and counts"),
    MethodSpec(("newaddress",), (), ADMIN, "a new on-chain receive address of the wallet"),
    MethodSpec(("listfunds",), (), READ, "the wallet's unspent outputs"),
    MethodSpec(
        ("withdraw",),
        (
            ParamSpec("address", STR, help="destination address", max_length=128),
            ParamSpec("amount", AMOUNT, help="satoshis, or 'all' for everything spendable", minimum=1),
            ParamSpec(
                "feerate",
                INT,
                help="fee rate in sat/vB (default: the chain's estimate)",
                required=False,
                option=True,
                minimum=1,
                maximum=100_000,
            ),
        ),
        ADMIN,
        "send on-chain funds from the wallet",
    ),
    MethodSpec(
        ("connect",),
        (ParamSpec("peer", STR, help="NODEID@HOST:PORT", max_length=512),),
        ADMIN,
        "connect to a peer (and reconnect to it after restarts)",
    ),
    MethodSpec(("listpeers",), (), READ, "connected and persistent peers"),
    MethodSpec(
        ("disconnect",),
        (ParamSpec("node_id", STR, help="the peer's node id (66 hex digits)", max_length=66),),
        ADMIN,
        "disconnect from a peer and forget it",
    ),
    MethodSpec(
        ("ping",),
        (
            ParamSpec("node_id", STR, help="a connected peer's node id", max_length=66),
            ParamSpec(
                "len",
                INT,
                help="pong size in bytes (default 128)",
                required=False,
                option=True,
                maximum=65531,
            ),
        ),
        ADMIN,
        "ping a connected peer and time the pong",
    ),
    MethodSpec(("stop",), (), ADMIN, "shut the node down"),
    MethodSpec(
        ("generate",),
        (
            ParamSpec("count", INT, help="number of blocks", minimum=1, maximum=10_000),
            ParamSpec(
                "address",
                STR,
                help="coinbase address (default: a new wallet address)",
                required=False,
                max_length=128,
            ),
        ),
        ADMIN,
        "mine blocks (regtest only)",
    ),
)

METHOD_GROUPS: list[tuple[MethodSpec, ...]] = [NODE_METHODS]

from ampere.node.channel_commands import CHANNEL_METHODS  # noqa: E402  (it builds on the classes above)

METHOD_GROUPS.append(CHANNEL_METHODS)

from ampere.node.payment_commands import PAYMENT_METHODS  # noqa: E402

METHOD_GROUPS.append(PAYMENT_METHODS)

from ampere.node.micro_commands import MICRO_METHODS  # noqa: E402

METHOD_GROUPS.append(MICRO_METHODS)


def all_methods() -> tuple[MethodSpec, ...]:
    return tuple(spec for group in METHOD_GROUPS for spec in group)


ALL_METHODS = all_methods()
