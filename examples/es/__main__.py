"""Entry point of ``python -m examples.es``; see cli.py."""

import sys

from .cli import main

sys.exit(main())
