"""``python -m insarexplore.cli``: the command line (used by torchrun and the server proxy)."""

import sys

from insarexplore.cli import main

sys.exit(main())
