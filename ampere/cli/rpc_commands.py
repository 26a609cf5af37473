"""The client commands (`ampere getinfo`, `ampere withdraw ...`), built from the RPC method table.

Each command parses its arguments as its `MethodSpec` declares them, sends them by name, and prints
the result. Multi-word commands (`micro open`) become nested subcommands.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from ampere.cli.output import print_result
from ampere.cli.rpc_client import CliRpcError, RpcCallError, RpcClient, resolve_endpoint
from ampere.node.commands import MethodSpec, ParamKind, ParamSpec, all_methods

__all__ = ["DEFAULT_DATADIR", "add_global_options", "add_rpc_commands", "run_rpc_command"]

DEFAULT_DATADIR = Path("~/.ampere")
_DEST_PREFIX = "param_"


def add_global_options(parser: argparse.ArgumentParser, *, suppress: bool) -> None:
    """The options every client command takes, before the command (suppress=False) or after it.

    After the command they default to SUPPRESS, so that an option given before is not reset.
    """

    def default(value: Any) -> Any:
        return argparse.SUPPRESS if suppress else value

    parser.add_argument("--datadir", type=Path, default=default(None), help="node data directory (~/.ampere)")
    parser.add_argument(
        "--rpc", default=default(None), metavar="URL", help="RPC URL or socket path (rpc.json)"
    )
    parser.add_argument(
        "--token-file", type=Path, default=default(None), metavar="FILE", help="token file (DIR/admin.token)"
    )
    parser.add_argument(
        "--json", action="store_true", default=default(False), help="print the result as JSON"
    )


def _amount(text: str) -> int | str:
    if text == "all":
        return text
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number of satoshis or 'all', got {text!r}") from None


def _add_param(parser: argparse.ArgumentParser, param: ParamSpec) -> None:
    dest = _DEST_PREFIX + param.name
    if param.kind is ParamKind.BOOLEAN:
        parser.add_argument(param.flag, dest=dest, action="store_true", default=None, help=param.help)
        return
    kind: Any = {ParamKind.INTEGER: int, ParamKind.AMOUNT_OR_ALL: _amount}.get(param.kind, str)
    metavar = param.name.upper()
    if param.option:
        parser.add_argument(param.flag, dest=dest, type=kind, default=None, metavar=metavar, help=param.help)
    else:
        parser.add_argument(
            dest,
            type=kind,
            metavar=metavar,
            nargs=None if param.required else "?",
            default=None,
            help=param.help,
        )


def add_rpc_commands(subparsers: Any, reserved: set[str]) -> None:
    """Add every RPC method as a subcommand; `reserved` names (chain, demo, node) are left alone."""
    groups: dict[str, Any] = {}
    for spec in all_methods():
        first, rest = spec.command[0], spec.command[1:]
        if first in reserved:
            raise ValueError(f"RPC command {first!r} collides with a built-in command")
        if rest:
            group = groups.get(first)
            if group is None:
                group_parser = subparsers.add_parser(first, help=f"{first} commands")
                group = group_parser.add_subparsers(dest=f"{first}_command", metavar="COMMAND", required=True)
                groups[first] = group
            parser = group.add_parser(" ".join(rest), help=spec.help, description=spec.help)
        else:
            parser = subparsers.add_parser(first, help=spec.help, description=spec.help)
        add_global_options(parser, suppress=True)
        for param in spec.params:
            _add_param(parser, param)
        parser.set_defaults(handler=run_rpc_command, rpc_spec=spec)


def run_rpc_command(args: argparse.Namespace) -> int:
    spec: MethodSpec = args.rpc_spec
    params = {
        param.name: value
        for param in spec.params
        if (value := getattr(args, _DEST_PREFIX + param.name, None)) is not None
    }
    datadir = Path(args.datadir or DEFAULT_DATADIR).expanduser()
    try:
        endpoint = resolve_endpoint(datadir, args.rpc, args.token_file)
        client = RpcClient(endpoint)
        try:
            result = client.call(spec.name, params)
        finally:
            client.close()
    except RpcCallError as exc:
        print(f"ampere {' '.join(spec.command)}: {exc.message} (code {exc.code})", file=sys.stderr)
        if exc.data is not None and args.json:
            print_result(exc.data, as_json=True, stream=sys.stderr)
        return 1
    except CliRpcError as exc:
        print(f"ampere {' '.join(spec.command)}: {exc}", file=sys.stderr)
        return 1
    print_result(result, as_json=bool(args.json))
    return 0
