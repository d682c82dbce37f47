"""`python -m slimkit` is the `slimkit` command."""

from slimkit.cli import console_main

console_main()
