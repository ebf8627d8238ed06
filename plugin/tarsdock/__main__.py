"""Entry point for `python -m tarsdock`."""

from tarsdock.cli import entry

entry()
