"""``python -m cyme_worker --tasks MODULE ...``: see cyme_worker.cli."""

import sys

from .cli import main

sys.exit(main())
