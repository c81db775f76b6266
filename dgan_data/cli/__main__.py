"""``python -m dgan_data.cli`` (e.g. under torchrun) runs the ``dgan-data`` command line."""

import sys

from . import main

sys.exit(main())
