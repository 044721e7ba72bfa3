"""Host-side errors: each carries one line for the user."""


class LuAttachError(Exception):
    """A refused or failed host-side operation; str() is the line to show."""


class AgentGone(LuAttachError):
    """The target (or its agent) went away while we talked to it."""
