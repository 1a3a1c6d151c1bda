"""`python -m queuectl` runs the same CLI as the `queuectl` command."""

from .cli import main

main()
