"""``python -m zoo_core.cli`` runs the ``zoo`` command."""

import sys

from zoo_core.cli import main

sys.exit(main())
