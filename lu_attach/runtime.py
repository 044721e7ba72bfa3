"""The host's view of a target's runtime directory (see lu_payloads.paths)."""
from __future__ import annotations

import json
import os
import socket
from typing import Optional

import psutil

from lu_payloads import paths


def process_gone(pid: int) -> bool:
    """True when pid has exited (a zombie has exited too: it only waits to be reaped)."""
    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True
    except psutil.Error:
        return False


def target_root(pid: int) -> str:
    return "/proc/%d/root" % pid


def agent_info(pid: int, uid: int) -> Optional[dict]:
    """The agent's description file, if it is there and belongs to this very process."""
    try:
        with open(paths.info_path(pid, uid, target_root(pid))) as handle:
            info = json.load(handle)
        created = psutil.Process(pid).create_time()
    except (OSError, ValueError, psutil.Error):
        return None
    if abs(float(info.get("create_time", 0)) - created) > 1.0:
        return None  # a stale file of an earlier process with the same pid
    return info


def live_agent_socket(pid: int, uid: int) -> Optional[str]:
    """The path (as the host sees it) of the agent socket of pid, if an agent listens."""
    info = agent_info(pid, uid)
    if not info:
        return None
    path = paths.socket_path(pid, uid, target_root(pid))
    probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    probe.settimeout(0.5)
    try:
        probe.connect(path)
        return path
    except OSError:
        return None
    finally:
        probe.close()
