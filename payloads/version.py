"""lu_payloads's version: the agent reports it, and the host names its staged copies by it."""

__version__ = "0.1.0"
