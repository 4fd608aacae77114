"""``python -m mpat_nb`` runs the command line."""

import sys

from mpat_nb.cli import main

sys.exit(main())
