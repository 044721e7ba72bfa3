"""Open a client to a target's agent, injecting it first when asked to.

Every command reaches an agent through here: the socket is opened through the
target user's verified directory (runtime.connect_socket) and the client
checks the agent is the process asked for (client.AgentClient). An agent that
is there but slow to accept is waited for, never taken for a missing one (a
second injection would only stall the target for nothing).
"""
from __future__ import annotations

import time
from typing import Callable, Optional

import psutil

from lu_payloads import paths

from . import discover
from .client import AgentClient
from .errors import AgentAbsent, AgentBusy, LuAttachError
from .runtime import TargetProcess, connect_socket

BUSY_RETRIES = 5


def target_of(pid: int) -> TargetProcess:
    """The target process, or one clear error for a pid lu cannot act on."""
    try:
        proc = psutil.Process(pid)
        if proc.status() == psutil.STATUS_ZOMBIE:
            raise LuAttachError("process %d is a zombie: it has exited and only waits for its parent" % pid)
    except psutil.NoSuchProcess:
        raise LuAttachError("no process with pid %d" % pid)
    except psutil.AccessDenied:
        raise LuAttachError("process %d: permission denied; run lu as its user or as root" % pid)
    return TargetProcess.of(pid)


def open_client(target: TargetProcess, timeout: float = 60.0,
                on_event: Optional[Callable[[dict], None]] = None) -> AgentClient:
    """A verified client of the target's agent. AgentAbsent when none listens; AgentBusy when it never accepts."""
    for attempt in range(BUSY_RETRIES):
        try:
            sock = connect_socket(target, timeout=min(timeout, 5.0))
        except AgentBusy:
            if attempt == BUSY_RETRIES - 1:
                raise
            time.sleep(0.2 * (attempt + 1))
            continue
        return AgentClient(sock, timeout=timeout, on_event=on_event, expect=target)
    raise AgentBusy("the agent of process %d does not accept connections" % target.pid)


def agent_socket(pid: int) -> Optional[str]:
    """The host path of the socket of an agent that answers as process pid, or None (for `lu ps`)."""
    try:
        target = TargetProcess.of(pid)
        with open_client(target, timeout=2.0):
            pass
    except AgentBusy:
        pass
    except LuAttachError:
        return None
    return target.host_path(paths.socket_path(target.nspid, target.uid))


def connect(pid: int, inject_if_needed: bool = False, timeout: float = 10.0, method: str = "ptrace",
            on_event: Optional[Callable[[dict], None]] = None) -> AgentClient:
    """A client for pid's agent. Without inject_if_needed, a missing agent is an error."""
    target = target_of(pid)
    try:
        return open_client(target, on_event=on_event)
    except AgentAbsent:
        if not inject_if_needed:
            if discover.inspect_process(pid, probe_agent=False) is None:
                raise LuAttachError("process %d is not a Python process" % pid)
            raise LuAttachError("no lu agent runs in process %d: run `lu inject %d` (or `lu attach %d`) first"
                                % (pid, pid, pid))
    from .inject import inject
    inject(pid, timeout=timeout, method=method)
    return open_client(target, on_event=on_event)
