"""Host-side errors: each carries one line for the user."""


class LuAttachError(Exception):
    """A refused or failed host-side operation; str() is the line to show."""


class AgentGone(LuAttachError):
    """The target (or its agent) went away while we talked to it."""


class AgentAbsent(LuAttachError):
    """No agent listens in the target (nothing to connect to)."""


class AgentBusy(LuAttachError):
    """An agent listens but did not take the connection in time: it is there, never to be injected again."""


class NotTheTarget(LuAttachError):
    """The agent that answered is not the process lu was asked to act on."""


class Stopped(KeyboardInterrupt):
    """lu got SIGTERM or SIGHUP (an ssh session dropping): it stops like at Ctrl-C, undoing a timed change
    first, then exits with 128 + the signal's number instead of carrying on."""

    def __init__(self, signum: int) -> None:
        super().__init__(signum)
        self.signum = signum
