"""The `queuectl` command's entry point.

A Ctrl-C that arrives while Python is still importing the CLI (its first tenth of a second or
so, before click handles it) ends the command quietly with status 130, as shells expect, rather
than with a traceback (SPEC §4: user errors never show one). Kept tiny: it is imported first.
"""

import sys


def main() -> None:
    """Run the CLI (queuectl.cli.main)."""
    try:
        from .cli import main as cli_main

        cli_main()
    except KeyboardInterrupt:
        sys.exit(130)
