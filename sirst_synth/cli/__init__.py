"""The ``sirst-synth`` command line: the group and what its commands share live in :mod:`.app`,
each family of commands in its own module (data, inspect, interop, train), all registered on the group here."""
from sirst_synth.cli import data, inspect, interop, train  # noqa: F401  (their commands register with @main.command)
from sirst_synth.cli.app import main

__all__ = ["main"]
