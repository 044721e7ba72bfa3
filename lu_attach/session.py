"""Open a client to a target's agent, injecting it first when asked to."""
from __future__ import annotations

from typing import Callable, Optional

import psutil

from . import discover, runtime
from .client import AgentClient
from .errors import LuAttachError


def find_agent(pid: int) -> Optional[str]:
    """The socket of a running agent in pid, or None; errors for a pid that is not there."""
    try:
        proc = psutil.Process(pid)
        uid = proc.uids().real
        if proc.status() == psutil.STATUS_ZOMBIE:
            raise LuAttachError("process %d is a zombie: it has exited and only waits for its parent" % pid)
    except psutil.NoSuchProcess:
        raise LuAttachError("no process with pid %d" % pid)
    except psutil.AccessDenied:
        raise LuAttachError("process %d: permission denied; run lu as its user or as root" % pid)
    return runtime.live_agent_socket(pid, uid)


def connect(pid: int, inject_if_needed: bool = False, timeout: float = 10.0, method: str = "ptrace",
            on_event: Optional[Callable[[dict], None]] = None) -> AgentClient:
    """A client for pid's agent. Without inject_if_needed, a missing agent is an error."""
    sock = find_agent(pid)
    if sock is None:
        if not inject_if_needed:
            if discover.inspect_process(pid) is None:
                raise LuAttachError("process %d is not a Python process" % pid)
            raise LuAttachError("no lu agent runs in process %d: run `lu inject %d` (or `lu attach %d`) first"
                                % (pid, pid, pid))
        from .inject import inject
        sock = inject(pid, timeout=timeout, method=method).socket
    return AgentClient(sock, on_event=on_event)
