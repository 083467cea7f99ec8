"""``python -m zoo_core.cli`` runs the ``zoo`` command, as the console script does."""

import sys

from zoo_core.launcher import main

sys.exit(main())
