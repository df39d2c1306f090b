"""``python -m tune_food.app``: see :mod:`tune_food.app.cli`."""

import sys

from ..errors import quiet_broken_pipe
from .cli import main

if __name__ == "__main__":
    quiet_broken_pipe()
    sys.exit(main())
