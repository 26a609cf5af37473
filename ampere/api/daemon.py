"""`ampere node`: the Lightning node daemon. Flags mirror `config.toml` keys (ampere.node.config.OPTIONS).

It lives in `ampere.api` rather than `ampere.cli` because the daemon is the API server: the import
contract keeps `ampere.cli` (the RPC client) and `ampere.api` independent, and `ampere.cli.main` loads
this module by name, as it does every command module.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
from pathlib import Path

from ampere.errors import AmpereError
from ampere.node.config import OPTIONS, ConfigError, load_config

log = logging.getLogger("ampere.node.daemon")

DEFAULT_DATADIR = Path("~/.ampere")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    # SUPPRESS: `ampere --datadir DIR node` and `ampere node --datadir DIR` both work.
    parser.add_argument(
        "--datadir", type=Path, default=argparse.SUPPRESS, help="data directory (default ~/.ampere)"
    )
    for spec in OPTIONS:
        default_text = "" if spec.default is None or spec.kind is bool else f" (default {spec.default})"
        if spec.kind is bool:
            parser.add_argument(spec.flag, dest=spec.attr, action="store_true", default=None, help=spec.help)
        else:
            parser.add_argument(
                spec.flag,
                dest=spec.attr,
                type=spec.kind,
                default=None,
                metavar=spec.metavar,
                choices=spec.choices,
                help=spec.help + default_text,
            )


def run(args: argparse.Namespace) -> int:
    datadir = getattr(args, "datadir", None) or DEFAULT_DATADIR
    overrides = {spec.name: getattr(args, spec.attr, None) for spec in OPTIONS}
    try:
        config = load_config(Path(datadir), overrides)
    except ConfigError as exc:
        print(f"ampere node: {exc}", file=sys.stderr)
        return 2
    # Imported late: `ampere --help` should not load the node and its dependencies.
    from ampere.api.service import serve
    from ampere.node.bootstrap import prepare_datadir, setup_logging

    try:
        prepared = prepare_datadir(config, sys.stdin, sys.stdout)
    except (AmpereError, OSError) as exc:
        print(f"ampere node: {exc}", file=sys.stderr)
        return 1
    try:
        setup_logging(config)
        try:
            return asyncio.run(serve(config, prepared))
        except (AmpereError, OSError) as exc:
            log.error("cannot run the node: %s", exc)
            return 1
    finally:
        prepared.lock.release()
