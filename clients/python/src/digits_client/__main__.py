"""``python -m digits_client`` is the ``digits`` CLI."""

import sys

from .cli import main

sys.exit(main())
