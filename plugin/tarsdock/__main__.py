"""Entry point for `python -m tarsdock`."""

from tarsdock.start import entry

entry()
