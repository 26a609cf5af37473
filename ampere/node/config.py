"""The daemon's settings: one table of options serves the command line and `config.toml` alike.

`config.toml` in the data directory uses the long flag names as keys (`bitcoind-rpc = "http://..."`,
`rpc-port = 0`, `developer = true`); a flag given on the command line wins over the file.
"""

from __future__ import annotations

import enum
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ampere.bitcoin.network import Network, UnknownNetworkError
from ampere.errors import AmpereError
from ampere.node.datadir import DataDir
from ampere.node.peer_address import parse_host_port
from ampere.node.peer_protocol import PeerError

__all__ = [
    "DEFAULT_LISTEN",
    "DEFAULT_RPC_PORT",
    "OPTIONS",
    "ChainKind",
    "ConfigError",
    "NodeConfig",
    "OptionSpec",
    "load_config",
]

DEFAULT_LISTEN = "127.0.0.1:9735"
DEFAULT_RPC_PORT = 9737
LOG_LEVELS = ("debug", "info", "warning", "error")


class ConfigError(AmpereError):
    """A setting is missing, malformed, or contradicts another."""


class ChainKind(enum.Enum):
    EMBEDDED = "embedded"
    BITCOIND = "bitcoind"


@dataclass(frozen=True, slots=True)
class OptionSpec:
    """One setting: `name` is both the long flag (`--name`) and the `config.toml` key."""

    name: str
    kind: type  # str, int, float or bool (a flag)
    default: Any
    help: str
    metavar: str | None = None
    choices: tuple[str, ...] | None = None
    in_file: bool = True  # False: command line only (`--restore` reads stdin, so it makes no sense in a file)

    @property
    def attr(self) -> str:
        return self.name.replace("-", "_")

    @property
    def flag(self) -> str:
        return "--" + self.name


OPTIONS: tuple[OptionSpec, ...] = (
    OptionSpec(
        "network", str, "regtest", "bitcoin network", choices=("regtest", "signet", "testnet", "mainnet")
    ),
    OptionSpec(
        "chain", str, "embedded", "chain backend (embedded: regtest only)", choices=("embedded", "bitcoind")
    ),
    OptionSpec("bitcoind-rpc", str, None, "bitcoind (or `ampere chain`) JSON-RPC URL", metavar="URL"),
    OptionSpec("bitcoind-cookie", str, None, "bitcoind's .cookie file", metavar="FILE"),
    OptionSpec("listen", str, DEFAULT_LISTEN, "peer-to-peer address (port 0 picks one)", metavar="HOST:PORT"),
    OptionSpec("rpc-port", int, DEFAULT_RPC_PORT, "JSON-RPC port on 127.0.0.1 (0 picks one)", metavar="PORT"),
    OptionSpec("db", str, None, "database: a SQLite path or sqlite:/postgresql:// URL", metavar="URL"),
    OptionSpec("developer", bool, False, "enable developer commands"),
    OptionSpec("restore", bool, False, "read an existing 24-word mnemonic from stdin", in_file=False),
    OptionSpec("log-level", str, "info", "log level", choices=LOG_LEVELS),
    OptionSpec("poll-interval", float, 0.2, "seconds between chain tip polls", metavar="SECONDS"),
)
_BY_NAME = {spec.name: spec for spec in OPTIONS}


@dataclass(frozen=True, slots=True)
class NodeConfig:
    datadir: DataDir
    network: Network = Network.REGTEST
    chain: ChainKind = ChainKind.EMBEDDED
    bitcoind_rpc: str | None = None
    bitcoind_cookie: Path | None = None
    listen: tuple[str, int] = ("127.0.0.1", 9735)
    rpc_host: str = "127.0.0.1"
    rpc_port: int = DEFAULT_RPC_PORT
    db: str | None = None
    developer: bool = False
    restore: bool = False
    log_level: str = "info"
    poll_interval: float = 0.2

    @property
    def db_url(self) -> str:
        """The store to open: `--db`, or SQLite in the data directory."""
        return self.db if self.db else str(self.datadir.sqlite_file)


def _read_file(path: Path) -> dict[str, Any]:
    if not path.exists():
        return {}
    try:
        with path.open("rb") as handle:
            document = tomllib.load(handle)
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise ConfigError(f"cannot read {path}: {exc}") from exc
    values: dict[str, Any] = {}
    for key, value in document.items():
        name = key.replace("_", "-")
        spec = _BY_NAME.get(name)
        if spec is None or not spec.in_file:
            raise ConfigError(f"{path}: unknown setting {key!r}")
        values[name] = _coerce(spec, value, str(path))
    return values


def _coerce(spec: OptionSpec, value: Any, where: str) -> Any:
    if spec.kind is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"{where}: {spec.name} must be true or false")
        return value
    if spec.kind is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"{where}: {spec.name} must be an integer")
        return value
    if spec.kind is float:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ConfigError(f"{where}: {spec.name} must be a number")
        return float(value)
    if not isinstance(value, str):
        raise ConfigError(f"{where}: {spec.name} must be a string")
    if spec.choices is not None and value not in spec.choices:
        raise ConfigError(f"{where}: {spec.name} must be one of {', '.join(spec.choices)}")
    return value


def load_config(datadir: Path, overrides: Mapping[str, Any]) -> NodeConfig:
    """Settings from `datadir/config.toml`, then `overrides` (option name -> value, None = not given)."""
    data = DataDir(datadir)
    values: dict[str, Any] = {spec.name: spec.default for spec in OPTIONS}
    values.update(_read_file(data.config_file))
    for name, value in overrides.items():
        if name not in _BY_NAME:
            raise ConfigError(f"unknown setting {name!r}")
        if value is not None:
            values[name] = _coerce(_BY_NAME[name], value, "command line")
    return _build(data, values)


def parse_listen(text: str) -> tuple[str, int]:
    """`HOST:PORT` to bind; unlike a peer's address, port 0 (any free port) is allowed."""
    host_text, sep, port_text = text.strip().rpartition(":")
    if not sep or not port_text.isdigit() or not 0 <= int(port_text) <= 65535:
        raise ConfigError(f"--listen: expected HOST:PORT with a port 0..65535, got {text!r}")
    try:
        # Validates the host (brackets around IPv6 included) with the peer layer's own parser.
        host, _ = parse_host_port(f"{host_text}:1")
    except PeerError as exc:
        raise ConfigError(f"--listen: {exc}") from None
    return host, int(port_text)


def _build(data: DataDir, values: Mapping[str, Any]) -> NodeConfig:
    try:
        network = Network.from_name(values["network"])
    except UnknownNetworkError as exc:
        raise ConfigError(str(exc)) from None
    chain = ChainKind(values["chain"])
    if chain is ChainKind.EMBEDDED and network is not Network.REGTEST:
        raise ConfigError("the embedded chain exists on regtest only: use --chain bitcoind")
    bitcoind_rpc = values["bitcoind-rpc"]
    cookie = values["bitcoind-cookie"]
    if chain is ChainKind.BITCOIND:
        if not bitcoind_rpc:
            raise ConfigError("--chain bitcoind needs --bitcoind-rpc URL")
        if not cookie:
            raise ConfigError("--chain bitcoind needs --bitcoind-cookie FILE")
    listen = parse_listen(values["listen"])
    rpc_port = values["rpc-port"]
    if not 0 <= rpc_port <= 65535:
        raise ConfigError("--rpc-port must be 0..65535")
    poll_interval = values["poll-interval"]
    if not 0.01 <= poll_interval <= 60:
        raise ConfigError("--poll-interval must be between 0.01 and 60 seconds")
    if values["log-level"] not in LOG_LEVELS:
        raise ConfigError(f"--log-level must be one of {', '.join(LOG_LEVELS)}")
    return NodeConfig(
        datadir=data,
        network=network,
        chain=chain,
        bitcoind_rpc=bitcoind_rpc,
        bitcoind_cookie=Path(cookie).expanduser().resolve() if cookie else None,
        listen=listen,
        rpc_port=rpc_port,
        db=values["db"],
        developer=values["developer"],
        restore=values["restore"],
        log_level=values["log-level"],
        poll_interval=poll_interval,
    )
