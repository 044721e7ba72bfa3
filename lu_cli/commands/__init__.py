"""One module per `lu` subcommand (memray's layout); main.py registers them."""
