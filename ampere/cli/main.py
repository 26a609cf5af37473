"""The `ampere` command: the daemons (`node`, `chain`), the demo, and the node's RPC client commands.

Client commands come from the RPC method table (`ampere.node.commands`); `--datadir`, `--rpc`,
`--token-file` and `--json` are accepted before or after the command.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys
from collections.abc import Callable, Sequence

from ampere import __version__
from ampere.cli.rpc_commands import add_global_options, add_rpc_commands

# Each of these lives in its own module exposing `add_arguments(parser)` and `run(args) -> int`.
COMMANDS: dict[str, tuple[str, str]] = {
    "node": ("ampere.api.daemon", "run the Lightning node daemon"),
    "chain": ("ampere.cli.chain_command", "run the embedded regtest chain as a bitcoind-compatible daemon"),
    "demo": ("ampere.cli.demo", "narrate Ampere's scenarios on the embedded regtest chain"),
}


def build_parser(argv: Sequence[str] | None = None) -> argparse.ArgumentParser:
    """The whole parser; with `argv`, only the command modules named in it are imported.

    Loading every module (the demo pulls in libbitcoinkernel) would slow down each client call.
    """
    parser = argparse.ArgumentParser(prog="ampere", description="Ampere Lightning node")
    parser.add_argument("--version", action="version", version=f"ampere {__version__}")
    add_global_options(parser, suppress=False)
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    wanted = None if argv is None else set(argv)
    for name, (module_name, help_text) in COMMANDS.items():
        sub = subparsers.add_parser(name, help=help_text, description=help_text)
        if wanted is not None and name not in wanted:
            continue
        module = importlib.import_module(module_name)
        module.add_arguments(sub)
        sub.set_defaults(handler=module.run)
    add_rpc_commands(subparsers, reserved=set(COMMANDS))
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    arguments = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser(arguments)
    args = parser.parse_args(arguments)
    handler: Callable[[argparse.Namespace], int] | None = getattr(args, "handler", None)
    if handler is None:
        parser.print_help()
        return 2
    try:
        return handler(args)
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
