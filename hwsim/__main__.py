"""`python -m hwsim` is the same as the `hwsim` command."""

from hwsim.cli import entry_point

entry_point()
