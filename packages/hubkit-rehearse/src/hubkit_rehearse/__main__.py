"""``python -m hubkit_rehearse``: the same command as ``hubkit rehearse``, without hubkit-core installed."""

import sys

from .cli import main

sys.exit(main(prog="python -m hubkit_rehearse"))
