"""The `ampere` command line without a daemon: global options anywhere, arguments typed from the table."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest

from ampere.cli.main import build_parser, main
from ampere.cli.output import print_result
from ampere.cli.rpc_client import CliRpcError, resolve_endpoint


def _parse(*argv: str) -> dict[str, object]:
    return vars(build_parser(list(argv)).parse_args(list(argv)))


def test_global_options_before_or_after_the_command() -> None:
    before = _parse("--datadir", "/d", "--json", "withdraw", "bcrt1qxyz", "all", "--feerate", "3")
    after = _parse("withdraw", "bcrt1qxyz", "all", "--datadir", "/d", "--feerate", "3", "--json")
    for args in (before, after):
        assert args["datadir"] == Path("/d") and args["json"] is True
        assert args["param_address"] == "bcrt1qxyz" and args["param_amount"] == "all"
        assert args["param_feerate"] == 3
    plain = _parse("getinfo")
    assert plain["datadir"] is None and plain["json"] is False
    assert _parse("withdraw", "a", "1500")["param_amount"] == 1500
    assert _parse("generate", "3")["param_address"] is None
    assert _parse("node", "--datadir", "/n", "--rpc-port", "0")["rpc_port"] == 0
    assert _parse("--datadir", "/n", "node")["datadir"] == Path("/n")


def test_bad_arguments_exit_with_usage(capsys: pytest.CaptureFixture[str]) -> None:
    for argv in (["withdraw", "a", "lots"], ["generate", "x"], ["withdraw"], ["nosuchcommand"]):
        with pytest.raises(SystemExit) as caught:
            main(argv)
        assert caught.value.code != 0
    assert "error" in capsys.readouterr().err


def test_no_daemon_is_an_error_not_a_traceback(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--datadir", str(tmp_path), "getinfo"]) == 1
    assert "admin.token" in capsys.readouterr().err
    (tmp_path / "admin.token").write_text("t" * 64 + "\n")
    assert main(["--datadir", str(tmp_path), "getinfo"]) == 1
    assert "running" in capsys.readouterr().err
    (tmp_path / "rpc.json").write_text(json.dumps({"url": "http://127.0.0.1:9/", "socket": None}))
    assert main(["--datadir", str(tmp_path), "getinfo"]) == 1
    assert "cannot reach" in capsys.readouterr().err


def test_endpoint_resolution(tmp_path: Path) -> None:
    (tmp_path / "admin.token").write_text("admin\n")
    (tmp_path / "other.token").write_text("other\n")
    (tmp_path / "rpc.json").write_text(json.dumps({"url": "http://127.0.0.1:5/", "socket": "/s"}))
    endpoint = resolve_endpoint(tmp_path, None, None)
    assert endpoint.url == "http://127.0.0.1:5/" and endpoint.token == "admin"
    endpoint = resolve_endpoint(tmp_path, "/x/rpc.sock", tmp_path / "other.token")
    assert endpoint.url is None and endpoint.socket_path == Path("/x/rpc.sock") and endpoint.token == "other"
    with pytest.raises(CliRpcError):
        resolve_endpoint(tmp_path, None, tmp_path / "missing.token")


def test_readable_output() -> None:
    out = io.StringIO()
    print_result({"peers": [{"id": "02ab", "connected": True, "features": None}]}, as_json=False, stream=out)
    text = out.getvalue()
    assert "02ab" in text and "yes" in text and "connected" in text
    out = io.StringIO()
    print_result({"outputs": []}, as_json=False, stream=out)
    assert "no outputs" in out.getvalue()
    out = io.StringIO()
    print_result({"id": "02ab", "listen": ["a:1", "b:2"]}, as_json=False, stream=out)
    assert "a:1, b:2" in out.getvalue()
    out = io.StringIO()
    print_result({"amount_sat": 5}, as_json=True, stream=out)
    assert json.loads(out.getvalue()) == {"amount_sat": 5}
