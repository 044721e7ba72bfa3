"""Process trees: a process and every Python process below it, and how each came to be.

A production service is rarely one process: a gunicorn master and the
workers it forks, a multiprocessing pool and its children, uvicorn's
supervisor and the workers it spawns. `--tree` acts on all of them, so lu
must know which processes belong and what each one is:

- *forked*: a copy of its Python parent (gunicorn, celery prefork, a fork
  pool). It runs the parent's code and inherits its updates. Told by its
  interpreter being mapped at its parent's address: an exec'd process gets
  a fresh random layout.
- *spawned*: a new interpreter started by multiprocessing's spawn or
  forkserver (uvicorn --workers): it inherits nothing.
- *started*: any other Python child (a subprocess, Django's autoreloader).

A non-Python process between two Python ones (a shell) is passed through:
the Python child hangs under its nearest Python ancestor.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Dict, Iterable, List, Optional

import psutil

from . import discover
from .discover import PythonProcess
from .errors import LuAttachError
from .symbols import base_of, read_maps

ROOT = "root"
FORKED = "forked"
SPAWNED = "spawned"
STARTED = "started"
HELPER = "helper"  # multiprocessing's resource tracker and the like: Python, but not a worker

_HELPERS = ("multiprocessing.resource_tracker", "multiprocessing.semaphore_tracker", "multiprocessing.forkserver")
_SPAWN = ("multiprocessing.spawn", "spawn_main")


@dataclass
class TreeMember:
    """One Python process of a tree, with its place in it."""

    process: PythonProcess
    parent: Optional[int]  # the nearest Python ancestor in the tree; None for the tree's top
    depth: int
    how: str  # ROOT, FORKED, SPAWNED, STARTED or HELPER
    children: List[int] = field(default_factory=list)

    @property
    def pid(self) -> int:
        return self.process.pid

    @property
    def role(self) -> str:
        """What `lu ps --tree` says of it: 'master of 3', 'worker of 100 (forked)', ..."""
        if self.how == HELPER:
            return "helper of %d" % self.parent if self.parent else "helper"
        workers = len(self.children)
        if self.parent is None:
            return "master of %d" % workers if workers else "-"
        own = "child of %d" % self.parent if self.how == STARTED else "worker of %d (%s)" % (self.parent, self.how)
        return own + (", master of %d" % workers if workers else "")


def _how(process: PythonProcess, parent: Optional[PythonProcess]) -> str:
    if parent is None:
        return ROOT
    if any(marker in process.cmdline for marker in _HELPERS):
        return HELPER
    if any(marker in process.cmdline for marker in _SPAWN):
        return SPAWNED
    if process.exe == parent.exe and _image_base(process) == _image_base(parent) is not None:
        return FORKED
    return STARTED


def _image_base(process: PythonProcess) -> Optional[int]:
    try:
        maps = read_maps(process.pid)
    except OSError:
        return None
    return base_of(maps, process.interpreter_path)


def _python_ancestor(pid: int, python: Dict[int, PythonProcess], stop: Optional[int] = None) -> Optional[int]:
    """The nearest ancestor of pid that is in `python` (not above `stop`)."""
    try:
        proc = psutil.Process(pid)
        for ancestor in proc.parents():
            if ancestor.pid in python:
                return ancestor.pid
            if ancestor.pid == stop:
                return None
    except psutil.Error:
        pass
    return None


def _arrange(python: Dict[int, PythonProcess], top: Iterable[int], stop: Optional[int] = None) -> List[TreeMember]:
    """Members in pre-order (each parent before its children), children by pid."""
    parent_of = {pid: _python_ancestor(pid, python, stop) for pid in python}
    children: Dict[Optional[int], List[int]] = {}
    for pid, parent in parent_of.items():
        children.setdefault(parent, []).append(pid)
    out: List[TreeMember] = []

    def visit(pid: int, parent: Optional[int], depth: int) -> None:
        process = python[pid]
        member = TreeMember(process, parent, depth, _how(process, python.get(parent) if parent else None))
        out.append(member)
        for child in sorted(children.get(pid, [])):
            member.children.append(child)
            visit(child, pid, depth + 1)

    for pid in sorted(top):
        visit(pid, None, 0)
    return out


def process_tree(pid: int) -> List[TreeMember]:
    """pid (when it runs Python) and every Python process below it, pre-order.

    Every process below pid must be one lu may act on: a member of another
    user (when lu is not root) is one clear error, since acting on "the tree"
    without it would not be what the user asked for.
    """
    try:
        top = psutil.Process(pid)
        below = top.children(recursive=True)
    except psutil.NoSuchProcess:
        raise LuAttachError("no process with pid %d" % pid)
    except psutil.AccessDenied:
        raise LuAttachError("process %d: permission denied; run lu as its user or as root" % pid)
    me = os.geteuid()
    python: Dict[int, PythonProcess] = {}
    for proc in [top] + below:
        try:
            uid = proc.uids().effective
        except psutil.NoSuchProcess:
            continue  # exited while we looked: not part of the tree any more
        except psutil.AccessDenied:
            uid = -1
        found = discover.inspect_process(proc.pid)
        if found is None and me != 0 and uid != me and proc.is_running():
            raise LuAttachError(
                "process %d in the tree of %d belongs to another user; run lu as root or as that user" % (proc.pid, pid)
            )
        if found is not None:
            python[proc.pid] = found
    if not python:
        raise LuAttachError("no Python process in the tree of %d" % pid)
    tops = [p for p in python if p == pid or _python_ancestor(p, python, stop=pid) is None]
    return _arrange(python, tops, stop=pid)


def forest() -> List[TreeMember]:
    """Every Python process the user may act on, as the trees they form (`lu ps --tree`)."""
    python = {p.pid: p for p in discover.python_processes()}
    tops = [pid for pid in python if _python_ancestor(pid, python) is None]
    return _arrange(python, tops)
