"""`ampere chain`: the embedded regtest chain as a daemon that speaks bitcoind's JSON-RPC.

Layout, as bitcoind's: `DIR/regtest/` holds the chain, the `.cookie` (`__cookie__:<hex>`, mode 0600)
and, once the port is bound, `rpc.json` with the URL, so that `--rpc-port 0` can be found by others.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import os
import secrets
import signal
import sys
from pathlib import Path

from ampere.chain.errors import ChainError
from ampere.chain.server import ChainRpcServer, ChainRpcService, ChainWorker

log = logging.getLogger("ampere.chain.daemon")

COOKIE_USER = "__cookie__"
REGTEST_RPC_PORT = 18443  # bitcoind's regtest default


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--datadir", type=Path, required=True, help="data directory (chain in DIR/regtest)")
    parser.add_argument(
        "--rpc-port", type=int, default=REGTEST_RPC_PORT, help="JSON-RPC port; 0 picks one (see rpc.json)"
    )
    parser.add_argument("--rpc-bind", default="127.0.0.1", help="address to bind the JSON-RPC server to")
    parser.add_argument(
        "--log-level", default="info", choices=["debug", "info", "warning", "error"], help="stderr log level"
    )


def run(args: argparse.Namespace) -> int:
    logging.getLogger().setLevel(getattr(logging, str(args.log_level).upper()))
    try:
        return asyncio.run(serve(Path(args.datadir), str(args.rpc_bind), int(args.rpc_port)))
    except KeyboardInterrupt:
        return 130


def _write_private(path: Path, text: str) -> None:
    """Write `text` to `path` with mode 0600, atomically (readers never see a partial file)."""
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        os.fchmod(fd, 0o600)
        os.write(fd, text.encode())
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(tmp, path)


def write_cookie(netdir: Path) -> str:
    """A fresh `.cookie` for this run; returns the password."""
    password = secrets.token_hex(32)
    _write_private(netdir / ".cookie", f"{COOKIE_USER}:{password}")
    return password


def _open_chain(netdir: Path) -> ChainRpcService:
    # Imported here so that `ampere --help` does not load libbitcoinkernel.
    from ampere.chain.embedded import EmbeddedChain

    return ChainRpcService(EmbeddedChain(netdir))


async def serve(datadir: Path, bind: str, port: int) -> int:
    netdir = datadir / "regtest"
    netdir.mkdir(parents=True, exist_ok=True)
    rpc_json = netdir / "rpc.json"
    cookie = netdir / ".cookie"
    worker = ChainWorker()
    try:
        # The chain is created, used and closed on the worker's thread only: the kernel is single-threaded.
        service = await worker.run(_open_chain, netdir)
    except (ChainError, OSError) as exc:
        log.error("cannot open the chain in %s: %s", netdir, exc)
        worker.shutdown()
        return 1
    # Only now that the chain's lock is ours: a stale rpc.json would send clients to a dead port.
    rpc_json.unlink(missing_ok=True)
    stop = asyncio.Event()
    server = ChainRpcServer(service, [(COOKIE_USER, write_cookie(netdir))], worker=worker, on_stop=stop.set)
    try:
        try:
            url = await server.start(bind, port)
        except OSError as exc:
            log.error("cannot bind the JSON-RPC server to %s:%d: %s", bind, port, exc)
            return 1
        _write_private(rpc_json, json.dumps({"url": url}) + "\n")
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signum, stop.set)
        log.info("ampere chain ready at height %d, RPC %s", await worker.run(service.chain.tip_height), url)
        await stop.wait()
        log.info("shutting down")
    finally:
        await server.close()
        try:
            await worker.run(service.chain.close)
        finally:
            worker.shutdown()
            for path in (rpc_json, cookie):
                with contextlib.suppress(OSError):
                    path.unlink()
    log.info("chain closed cleanly")
    return 0


def main(argv: list[str] | None = None) -> int:
    """`python -m ampere.cli.chain_command ...`: the same daemon without the rest of the CLI."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    parser = argparse.ArgumentParser(prog="ampere chain")
    add_arguments(parser)
    return run(parser.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
