"""Settings: config.toml keys are the long flag names, the command line wins, contradictions are refused."""

from __future__ import annotations

from pathlib import Path

import pytest

from ampere.bitcoin.network import Network
from ampere.node.config import OPTIONS, ChainKind, ConfigError, load_config, parse_listen


def test_defaults(tmp_path: Path) -> None:
    config = load_config(tmp_path, {})
    assert config.network is Network.REGTEST and config.chain is ChainKind.EMBEDDED
    assert config.listen == ("127.0.0.1", 9735)
    assert config.db_url == str(tmp_path.resolve() / "ampere.sqlite")
    assert not config.developer and not config.restore


def test_file_then_command_line(tmp_path: Path) -> None:
    cookie = tmp_path / ".cookie"
    (tmp_path / "config.toml").write_text(
        'network = "signet"\nchain = "bitcoind"\nbitcoind-rpc = "http://127.0.0.1:1/"\n'
        f'bitcoind_cookie = "{cookie}"\nrpc-port = 0\nlisten = "[::1]:0"\ndeveloper = true\n'
    )
    config = load_config(tmp_path, {})
    assert config.network is Network.SIGNET and config.chain is ChainKind.BITCOIND
    assert config.bitcoind_cookie == cookie and config.rpc_port == 0 and config.developer
    assert config.listen == ("::1", 0)
    overridden = load_config(tmp_path, {"network": "testnet", "rpc-port": 1234, "developer": None})
    assert overridden.network is Network.TESTNET and overridden.rpc_port == 1234 and overridden.developer


@pytest.mark.parametrize(
    ("text", "overrides", "message"),
    [
        ('network = "mainnet"\n', {}, "regtest only"),
        ('chain = "bitcoind"\n', {}, "--bitcoind-rpc"),
        ('chain = "bitcoind"\nbitcoind-rpc = "http://x/"\n', {}, "--bitcoind-cookie"),
        ("rpc-port = 70000\n", {}, "--rpc-port"),
        ('rpc-port = "1"\n', {}, "integer"),
        ("nonsense = 1\n", {}, "unknown setting"),
        ("restore = true\n", {}, "unknown setting"),
        ('listen = "nowhere"\n', {}, "--listen"),
        ("network = [\n", {}, "cannot read"),
        ("", {"network": "moon"}, "network"),
    ],
)
def test_refused(tmp_path: Path, text: str, overrides: dict[str, object], message: str) -> None:
    (tmp_path / "config.toml").write_text(text)
    with pytest.raises(ConfigError, match=message):
        load_config(tmp_path, overrides)


def test_listen_parsing() -> None:
    assert parse_listen("0.0.0.0:9735") == ("0.0.0.0", 9735)
    assert parse_listen("localhost:0") == ("localhost", 0)
    assert parse_listen("[::]:1") == ("::", 1)
    for bad in ("9735", "host:", "host:99999", ":1", "bad host:1"):
        with pytest.raises(ConfigError):
            parse_listen(bad)


def test_every_option_is_a_flag_name() -> None:
    for spec in OPTIONS:
        assert spec.flag == "--" + spec.name and spec.attr == spec.name.replace("-", "_")
