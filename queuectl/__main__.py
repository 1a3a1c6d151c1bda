"""`python -m queuectl` runs the same CLI as the `queuectl` command."""

from .entry import main

main()
