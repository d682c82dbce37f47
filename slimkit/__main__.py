"""`python -m slimkit` is the `slimkit` command."""

from slimkit.cli import run

run()
