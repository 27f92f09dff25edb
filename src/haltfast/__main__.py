"""`python -m haltfast` is the haltfast command."""

import sys

from .cli import main

sys.exit(main())
