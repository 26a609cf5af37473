"""The shape of an RPC method's declaration: name, parameters in CLI order, permission.

Each group of methods (`node_commands`, `channel_commands`, ...) declares its methods with these
classes; `ampere.node.commands` gathers the groups.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

__all__ = [
    "ADMIN",
    "AMOUNT",
    "INT",
    "MAX_SAFE_INT",
    "READ",
    "STR",
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
