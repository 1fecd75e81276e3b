"""``python -m insarexplore``: the same command line as ``insarexplore`` (same exit codes)."""

import sys

from insarexplore.cli import main

if __name__ == "__main__":
    sys.exit(main())
