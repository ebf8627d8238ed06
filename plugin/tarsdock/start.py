"""The console script's entry point: tarsdock.cli and what it imports (argparse, typing, the
errors; tens of ms of every start) are loaded inside a boundary, so a Ctrl-C meanwhile ends the
run as every other Ctrl-C does (README, exit statuses), not with a KeyboardInterrupt traceback.
Only what Python itself does before this module runs (its start, site, the script's own
imports: some ms) stays outside. This module imports nothing of its own for that reason."""

import sys

# tarsdock.options.EXIT_INTERRUPTED, not imported: options loads argparse and typing, the very
# imports this guards
INTERRUPTED = 130


def entry() -> None:
    """Run tarsdock (tarsdock.cli.main) and exit with its status; 130 on a Ctrl-C while the
    command line's modules load."""
    try:
        from tarsdock.cli import main
    except KeyboardInterrupt:
        sys.stderr.write("error: interrupted (Ctrl-C)\n")
        sys.exit(INTERRUPTED)
    sys.exit(main())
