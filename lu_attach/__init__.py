"""lu_attach: the host side of lu.

Finding Python processes (`discover`), starting the agent in one (`inject`),
talking to it (`client`), and turning its logs into reports (`report`).
"""

from .errors import AgentGone, LuAttachError

__all__ = ["AgentGone", "LuAttachError"]
