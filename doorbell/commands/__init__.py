"""Subcommands of the ``doorbell`` CLI, one module each, imported lazily by doorbell.cli."""
