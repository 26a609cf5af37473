"""`ampere demo`: Ampere's scenarios narrated step by step on an embedded regtest chain.

Chapters live in `chapters.CHAPTERS`; each uses `DemoContext` (chain, cast, narrator) and the
`channel_kit` to build real transactions, and every verdict is the kernel's. The run exits 0 only
when every verdict matched the story.
"""

from ampere.cli.demo.runner import add_arguments, run

__all__ = ["add_arguments", "run"]
