"""Open a client to a target's agent, injecting it first when asked to.

Every command reaches an agent through here: the socket is opened through the
target user's verified directory (runtime.connect_socket) and the client
checks the agent is the process asked for (client.AgentClient). An agent that
is there but slow to accept is waited for, never taken for a missing one (a
second injection would only stall the target for nothing).
"""

from __future__ import annotations

import dataclasses
from typing import Callable, List, Optional

import psutil

from lu_payloads import paths

from . import discover
from .client import AgentClient, open_client
from .errors import AgentAbsent, AgentBusy, LuAttachError
from .inject import inject
from .runtime import TargetProcess


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


def list_processes() -> List[discover.PythonProcess]:
    """Every Python process the user may act on, each with whether an agent answers in it (`lu ps`)."""
    listed = []
    for process in discover.python_processes():
        sock = agent_socket(process.pid)
        listed.append(dataclasses.replace(process, agent=sock is not None, agent_socket=sock))
    return listed


def connect(
    pid: int,
    inject_if_needed: bool = False,
    timeout: float = 10.0,
    method: str = "auto",
    on_event: Optional[Callable[[dict], None]] = None,
    announce: Optional[Callable[[str], None]] = None,
) -> AgentClient:
    """A client for pid's agent. Without inject_if_needed, a missing agent is an error.

    announce(line) is told when lu had to start the agent (every command that
    injects says so, in one line)."""
    target = target_of(pid)
    try:
        return open_client(target, on_event=on_event)
    except AgentAbsent:
        if not inject_if_needed:
            if discover.inspect_process(pid) is None:
                raise LuAttachError("process %d is not a Python process" % pid)
            raise AgentAbsent(
                "no lu agent runs in process %d: run `lu inject %d` (or `lu attach %d`) first" % (pid, pid, pid)
            )
    started = inject(pid, timeout=timeout, method=method)
    if announce is not None and not started.already_running:
        stop = "nothing stopped" if started.thread is None else "a %.1f ms stop" % (started.pause_ms or 0.0)
        announce("lu: started its agent in process %d (%s, %s)" % (pid, started.method, stop))
    return open_client(target, on_event=on_event)
