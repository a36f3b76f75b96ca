"""``python -m cloudderm`` is the ``cloudderm`` command."""

import sys

from cloudderm.cli import main

sys.exit(main())
