"""Subcommands beyond the core, one module per feature; ``mnistlab.cli`` adds them."""
