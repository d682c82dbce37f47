"""`python -m slimkit` is the `slimkit` command."""

import sys

from slimkit.cli import main

sys.exit(main())
