"""``python -m scripts.cassandra install|start|stop|status``: see ``cli.py``."""

import sys

from scripts.cassandra.cli import main

sys.exit(main())
