"""Errors that lu reports to the user as one clear line.

Anything raised inside the target that is a `LuError` is a user mistake or a
refused request (a pattern that matches nothing, a stale source file, a patch
that does not compile); its message is shown as is, without a traceback.
Any other exception reaching the agent is a bug in lu and is reported as such.
"""


class LuError(Exception):
    """A refused request: the message is complete and meant for the user."""
