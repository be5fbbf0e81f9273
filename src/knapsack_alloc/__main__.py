"""``python -m knapsack_alloc``: the command line."""

import sys

from knapsack_alloc.cli import main

sys.exit(main())
