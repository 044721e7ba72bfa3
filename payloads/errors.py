"""Errors that lu reports to the user as one clear line.

Anything raised inside the target that is a `LuError` is a user mistake or a
refused request (a pattern that matches nothing, a stale source file, a patch
that does not compile); its message is shown as is, without a traceback.
Any other exception reaching the agent is a bug in lu and is reported as such.
"""


class LuError(Exception):
    """A refused request: the message is complete and meant for the user."""


class ModuleNotLoaded(LuError):
    """An update names something in a module this process has not imported (yet).

    On its own process that is a mistake like any other; in a process tree a
    member that has not imported the module (a gunicorn master without
    --preload) keeps the update waiting until it does, and so do the workers
    it forks (engine/waiting.py).
    """

    def __init__(self, message: str, wanted: str) -> None:
        super().__init__(message)
        self.wanted = wanted  # the dotted name that could not be reached


def prefixed(error: LuError, prefix: str) -> LuError:
    """The same refusal with `prefix` (a patch file's "file:line: ") before its message, its kind kept."""
    if isinstance(error, ModuleNotLoaded):
        return ModuleNotLoaded(prefix + str(error), error.wanted)
    return LuError(prefix + str(error))
