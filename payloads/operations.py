"""What lu does in a process, whoever asks: the agent's requests and the controller's LU object.

Each operation returns plain data (JSON-serialisable) or raises LuError with
a message for the user.
"""

from __future__ import annotations

import os
import sys
import threading
from typing import Any, Dict, List, Optional

from . import procinfo, protocol
from .engine import UpdateManager
from .errors import LuError
from .version import __version__


def process_info(agent_started: Optional[float] = None, socket: Optional[str] = None) -> Dict[str, Any]:
    threads = [
        {
            "id": t.ident,
            "native_id": getattr(t, "native_id", None),
            "name": t.name,
            "daemon": t.daemon,
            "lu": t.name.startswith("lu-"),
        }
        for t in threading.enumerate()
    ]
    return {
        "pid": os.getpid(),
        "python": "%d.%d.%d" % sys.version_info[:3],
        "implementation": sys.implementation.name,
        "executable": sys.executable,
        "argv": list(sys.argv),
        "agent_version": __version__,
        "protocol": protocol.PROTOCOL_VERSION,
        "agent_started": agent_started,
        "process_started": procinfo.create_time(),
        "threads": threads,
        "socket": socket,
    }


def list_updates() -> List[Dict[str, Any]]:
    return UpdateManager.ls()


def revert_updates(ids: List[Any]) -> List[int]:
    """Revert these updates (all known first, or nothing is reverted)."""
    for update_id in ids:
        if not isinstance(update_id, int) or isinstance(update_id, bool):
            raise LuError("update ids are integers, not %r" % (update_id,))
    known = set(UpdateManager.known_ids())
    unknown = [i for i in ids if i not in known]
    if unknown:
        raise LuError(
            "no update with id %s (applied: %s)"
            % (", ".join(map(str, unknown)), ", ".join(map(str, sorted(known))) or "none")
        )
    for update_id in ids:
        UpdateManager.revert(update_id)
    return list(ids)


def revert_everything() -> List[int]:
    return UpdateManager.revert_all()


def apply_patch_source(source: str, filename: str) -> List[int]:
    return UpdateManager.apply_patch(source, filename)
