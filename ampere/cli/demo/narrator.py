"""Prints the demo's story: numbered scenes, steps, and the chain's verdict on each transaction."""

from __future__ import annotations

from rich.console import Console
from rich.rule import Rule


class Narrator:
    """Writes a scenario as it unfolds; `verdict` lines show what the kernel decided and why."""

    def __init__(self, console: Console | None = None) -> None:
        self.console = console or Console(highlight=False)
        self._scene = 0
        self.verdicts: list[tuple[str, bool, str]] = []

    def scene(self, title: str) -> None:
        self._scene += 1
        self.console.print()
        self.console.print(Rule(f"[bold]{self._scene}. {title}[/bold]", align="left"))

    def say(self, text: str) -> None:
        self.console.print(f"  {text}")

    def detail(self, text: str) -> None:
        self.console.print(f"    [dim]{text}[/dim]")

    def verdict(self, what: str, accepted: bool, reason: str = "") -> None:
        self.verdicts.append((what, accepted, reason))
        if accepted:
            self.console.print(f"  [green]✔ accepted[/green]  {what}")
        else:
            self.console.print(f"  [red]✘ rejected[/red]  {what}: [yellow]{reason}[/yellow]")

    def done(self, text: str) -> None:
        self.console.print()
        self.console.print(f"[bold green]{text}[/bold green]")
