"""``python -m spamwarden`` is the ``spamwarden`` command."""

import sys

from .cli import main

sys.exit(main())
