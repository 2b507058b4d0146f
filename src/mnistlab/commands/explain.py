"""`mnistlab` subcommands for explain (being built)."""


def add_commands(command) -> None:
    """Add this feature's subcommands through ``command(name, func, help, ...)``."""
