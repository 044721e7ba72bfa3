"""lu_cli: the `lu` command. Thin: parsing and rendering; the logic is in lu_attach."""
