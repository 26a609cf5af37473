"""Prints the demo's story: numbered scenes, steps, and the chain's verdict on each transaction."""

from __future__ import annotations

from rich.console import Console
from rich.rule import Rule


class Narrator:
    """Writes a scenario as it unfolds; `verdict` lines show what the kernel decided and why.

    A verdict that differs from what the story expects is flagged and kept in `surprises`: the demo
    is also a check, and exits non-zero when the chain did not behave as narrated.
    """

    def __init__(self, console: Console | None = None) -> None:
        # soft_wrap: txids and reject strings must stay whole on narrow or non-terminal outputs.
        self.console = console or Console(highlight=False, soft_wrap=True)
        self._scene = 0
        self.verdicts: list[tuple[str, bool, str]] = []
        self.surprises: list[str] = []

    def chapter(self, title: str) -> None:
        self.console.print()
        self.console.print(Rule(f"[bold cyan]{title}[/bold cyan]", style="cyan"))

    def scene(self, title: str) -> None:
        self._scene += 1
        self.console.print()
        self.console.print(Rule(f"[bold]{self._scene}. {title}[/bold]", align="left"))

    def say(self, text: str) -> None:
        self.console.print(f"  {text}")

    def detail(self, text: str) -> None:
        self.console.print(f"    [dim]{text}[/dim]")

    def verdict(self, what: str, accepted: bool, reason: str = "", *, as_expected: bool = True) -> None:
        self.verdicts.append((what, accepted, reason))
        if accepted:
            line = f"  [green]✔ accepted[/green]  {what}"
        else:
            line = f"  [red]✘ rejected[/red]  {what}: [yellow]{reason}[/yellow]"
        if not as_expected:
            line += "  [bold red]<- NOT AS EXPECTED[/bold red]"
            self.surprises.append(f"{what}: {'accepted' if accepted else 'rejected: ' + reason}")
        self.console.print(line)

    def message(self, sender: str, receiver: str, name: str, detail: str = "") -> None:
        """A peer message as it crosses the wire (decoded from the bytes that were sent)."""
        suffix = f"  [dim]{detail}[/dim]" if detail else ""
        self.console.print(f"  {sender} → {receiver}  [bold magenta]{name}[/bold magenta]{suffix}")

    def check(self, what: str, holds: bool) -> None:
        """A fact the story relies on (a balance adds up, a key matches), shown and counted."""
        if holds:
            self.console.print(f"  [green]✔[/green] {what}")
        else:
            self.console.print(f"  [bold red]✘ {what}  <- DOES NOT HOLD[/bold red]")
            self.surprises.append(what)

    def done(self, text: str) -> None:
        self.console.print()
        self.console.print(f"[bold green]{text}[/bold green]")

    def failed(self, text: str) -> None:
        self.console.print()
        self.console.print(f"[bold red]{text}[/bold red]")
