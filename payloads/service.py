"""The agent of this process, wired to what it serves: start it, find it, stop it.

The agent (agent.py) is only a transport; here it gets the request table
(requests.py), the recorder's events to stream, and what stopping means:
revert every update lu applied and take lu's router off the program's
streams. One agent per process; a process forked from one with an agent
starts its own (the inherited object belongs to the parent).
"""

from __future__ import annotations

import os
from typing import Any, Optional

from . import console, forks, operations, osthreads, recorder
from .agent import Agent, Connection
from .requests import HANDLERS

_lock = osthreads.Lock()
_agent: Optional[Agent] = None


def current() -> Optional[Agent]:
    agent = _agent
    return agent if agent is not None and agent.pid == os.getpid() and not agent.stopping else None


def _on_stop(agent: Agent) -> None:
    global _agent
    forks.follow_children(False)
    with _lock:
        if _agent is agent:
            _agent = None
    recorder.unsubscribe(agent.emit)
    operations.revert_everything()
    console.uninstall_capture()


def start(adopted: Optional[osthreads.Listening] = None, first: Any = None) -> str:
    """Start the agent; if it runs already, make sure it can be reached again. Returns its socket.

    From the door (door.py): `adopted` is its socket, listening at the agent's path, and `first` the
    connection that knocked, served first (a C socket as the door accepted it: the agent's are
    socket.socket)."""
    global _agent
    with _lock:
        agent = current()
        if agent is None:
            agent = Agent(HANDLERS, _on_stop)
            agent.start(adopted)
            recorder.subscribe(agent.emit)
            _agent = agent
        else:
            if adopted is not None:  # (an agent started meanwhile, listening on a socket of its own)
                osthreads.close_listener(adopted.listener)
            agent.ensure_bound()
        if first is not None:
            agent.admit(osthreads.socket(fileno=first.detach()))
        return agent.socket_path


def _after_fork_in_child(parent_pid: int) -> None:
    """The inherited agent is the parent's: let go of it; start the child's own if the parent follows its children."""
    global _agent, _lock
    _lock = osthreads.Lock()
    inherited, _agent = _agent, None
    serving = inherited is not None and not inherited.stopping
    if inherited is not None:
        inherited.abandon()
    if forks.following() and serving:
        try:
            start()
        except Exception:
            pass  # the child runs on; `lu inject` can still reach it


forks.in_child(forks.Stage.AGENT, _after_fork_in_child)


def stop(spare: Optional[Connection] = None) -> None:
    """Revert everything applied, then stop serving (keeping `spare` open for its reply)."""
    agent = current()
    if agent is not None:
        agent.shutdown(spare)
