"""``python -m visionsuite`` runs the ``visionsuite`` command."""

import sys

from visionsuite.cli.app import main

sys.exit(main())
