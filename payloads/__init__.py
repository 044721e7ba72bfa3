"""lu_payloads: the part of lu that runs inside the target interpreter.

Standard library only, CPython 3.8+. Importing this package starts nothing;
`start()` starts the agent (a daemon thread serving a private unix socket) and
is what both the injected bootstrap and an embedding program call:

    import lu_payloads; lu_payloads.start()

The update engine's names are importable from here, as in PyLiveUpdate:
`from lu_payloads import Instrument, Redefine, UpdateManager`.
"""

from __future__ import annotations

from .version import __version__ as __version__

TYPE_CHECKING = False  # true for type checkers only: importing the package does not import typing either
if TYPE_CHECKING:
    from typing import Any, Optional

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


def start(log_dir: Optional[str] = None) -> str:
    """Start the agent if it is not running; return the path of its socket.

    (`log_dir` is accepted for compatibility; each tool session chooses its
    own log directory.)
    """
    from .service import start as start_service  # lazy: importing the package starts and loads nothing

    return start_service()


def stop() -> None:
    """Revert every update, stop the agent and remove its socket."""
    from .service import stop as stop_service  # lazy: see start()

    stop_service()


def running() -> bool:
    from .service import current  # lazy: see start()

    return current() is not None


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib  # lazy: the engine and live coding load on first use (PEP 562)

        module_name, attribute = _LAZY[name]
        module = importlib.import_module("." + module_name, __name__)
        return getattr(module, attribute)
    raise AttributeError("module 'lu_payloads' has no attribute %r" % name)
