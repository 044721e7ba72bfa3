"""lu_payloads: the part of lu that runs inside the target interpreter.

Standard library only, CPython 3.8+. Importing this package starts nothing;
`start()` starts the agent (a daemon thread serving a private unix socket) and
is what an embedding program calls (an injection opens the agent's door
instead, door.py, before this package is even imported: the package and the
agent load when the first client connects):

    import lu_payloads; lu_payloads.start()

The update engine's names are importable from here, as in PyLiveUpdate:
`from lu_payloads import Instrument, Redefine, UpdateManager`.
"""

import sys

from .version import __version__ as __version__

TYPE_CHECKING = False  # true for type checkers only: importing the package does not import typing either
# (and no `from __future__ import annotations`, annotations in strings instead: an injection would import
# __future__ where the program has not)
if TYPE_CHECKING:
    from typing import Any, Callable, Optional

_LAZY = {
    "Instrument": ("engine", "Instrument"),
    "Redefine": ("engine", "Redefine"),
    "UpdateManager": ("engine", "UpdateManager"),
    "Points": ("engine", "Points"),
    "on_class_update": ("livecode", "on_class_update"),
    "watch": ("livecode", "watch"),
    "stop_watching": ("livecode", "stop_watching"),
    "realtime": ("livecode", "realtime"),
}


def start(log_dir: "Optional[str]" = None) -> str:
    """Start the agent if it is not running; return the path of its socket.

    (`log_dir` is accepted for compatibility; each tool session chooses its
    own log directory.)
    """
    door = sys.modules.get(__name__ + ".door")
    if door is not None:
        door.shut()  # an injected door gives way (if it is loading the agent, that agent is the one)
    from .service import start as start_service  # lazy: importing the package starts and loads nothing

    return start_service()


def listen(load_agent: "Callable[[Any, Any], None]") -> str:
    """What an injection starts where this package is loaded already (an earlier injection's first client
    loaded it, or the program imported it): the agent's socket, listening. The running agent's; else a
    door that loads the agent with `load_agent(listening, connection)` when the first client connects
    (door.py says why). Imports only the door."""
    service = sys.modules.get(__name__ + ".service")
    if service is not None and service.current() is not None:
        return str(service.start())
    from .door import open_door  # lazy: importing the package starts and loads nothing

    return open_door(load_agent)


def stop() -> None:
    """Revert every update, stop the agent and remove its socket (or close its door)."""
    door = sys.modules.get(__name__ + ".door")
    if door is not None:
        door.shut()
    service = sys.modules.get(__name__ + ".service")
    if service is not None:  # (else no agent ever ran here: nothing to revert)
        service.stop()


def running() -> bool:
    """Whether this process has an agent (or its door, which loads it at the first client). Imports nothing."""
    service = sys.modules.get(__name__ + ".service")
    if service is not None and service.current() is not None:
        return True
    door = sys.modules.get(__name__ + ".door")
    return door is not None and door.current() is not None


def __getattr__(name: str) -> "Any":
    if name in _LAZY:
        import importlib  # lazy: the engine and live coding load on first use (PEP 562)

        module_name, attribute = _LAZY[name]
        module = importlib.import_module("." + module_name, __name__)
        return getattr(module, attribute)
    raise AttributeError("module 'lu_payloads' has no attribute %r" % name)
