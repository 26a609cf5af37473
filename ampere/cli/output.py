"""Printing RPC results: JSON with `--json`, readable tables (rich) otherwise.

Tables are generic: a result that is an object holding one list of objects (`{"peers": [...]}`) becomes
a table of those objects; any other object becomes a two-column table of its fields.
"""

from __future__ import annotations

import json
import shutil
import sys
from decimal import Decimal
from typing import Any, TextIO

from rich import box
from rich.console import Console
from rich.table import Table

__all__ = ["print_result"]

_PIPE_WIDTH = 250  # not a terminal: wide enough that ids and txids stay on one line


def _json_default(value: Any) -> Any:
    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() else str(value)
    raise TypeError(f"cannot encode {type(value).__name__}")


def _cell(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, list):
        return ", ".join(_cell(item) for item in value) if value else "-"
    if isinstance(value, dict):
        return json.dumps(value, default=_json_default)
    return str(value)


def _console(stream: TextIO) -> Console:
    if stream.isatty():
        return Console(file=stream)
    return Console(file=stream, width=max(_PIPE_WIDTH, shutil.get_terminal_size().columns), no_color=True)


def print_result(result: Any, *, as_json: bool, stream: TextIO | None = None) -> None:
    out = stream or sys.stdout
    if as_json:
        out.write(json.dumps(result, indent=2, default=_json_default) + "\n")
        return
    console = _console(out)
    if isinstance(result, dict) and len(result) == 1:
        ((key, value),) = result.items()
        if isinstance(value, list) and all(isinstance(item, dict) for item in value):
            if not value:
                console.print(f"no {key}")
                return
            columns: list[str] = []
            for item in value:
                columns.extend(name for name in item if name not in columns)
            table = Table(box=box.SIMPLE_HEAD, title=key, pad_edge=False)
            for name in columns:
                table.add_column(name, overflow="fold")
            for item in value:
                table.add_row(*(_cell(item.get(name)) for name in columns))
            console.print(table)
            return
    if isinstance(result, dict):
        if not result:
            console.print("ok")
            return
        table = Table.grid(padding=(0, 2))
        table.add_column("field", style="bold")
        table.add_column("value", overflow="fold")
        for name, value in result.items():
            table.add_row(name, _cell(value))
        console.print(table)
        return
    console.print(_cell(result))
