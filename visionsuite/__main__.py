"""``python -m visionsuite`` runs the ``visionsuite`` command."""

import sys

from visionsuite.cli import main

sys.exit(main())
