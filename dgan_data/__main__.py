"""``python -m dgan_data`` runs the ``dgan-data`` command line (as ``python -m
dgan_data.cli`` does, for torchrun)."""

import sys

from .cli import main

sys.exit(main())
