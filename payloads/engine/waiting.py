"""Patches that wait for their module: applied the moment the process imports it.

A tree update reaches processes that have not imported the code it changes:
a gunicorn master started without --preload imports the application only in
the workers it forks. Such a process keeps the patch (its text and the ids
the tree gave it) instead of refusing it; every worker it forks inherits the
waiting patch with its memory, and applies it right after the module's own
code ran, before the worker serves anything. Reverting the ids drops it.

How the import is noticed: a finder first in `sys.meta_path` that answers
only for the names a waiting patch needs (so every other import costs one
set lookup). It asks the other finders for the spec and puts a wrapper on
that one loader object's `exec_module`, removed as soon as the module ran;
the module's loader, spec and type are those the import system chose.
There are no post-import hooks in 3.8-3.13 to do this otherwise.
"""

from __future__ import annotations

import sys
import threading
import types
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Dict, FrozenSet, List, Optional, Sequence

from .. import osthreads
from ..errors import LuError, ModuleNotLoaded

if TYPE_CHECKING:
    from importlib.machinery import ModuleSpec

    from .manager import UpdateManager


@dataclass
class WaitingPatch:
    """A patch kept until `wants` can be reached; `ids` are the tree's ids for its updates."""

    ids: List[int]
    source: str
    filename: str
    wants: str  # the dotted name the patch could not reach
    error: Optional[str] = None  # why it failed when it last tried, once the module was there
    inherited_from: Optional[int] = None  # the pid it came from, in a forked child

    def as_dict(self) -> Dict[str, Any]:
        state = "failed: %s" % self.error if self.error else "waiting for %s to be imported" % self.wants
        return {
            "id": self.ids[0],
            "ids": list(self.ids),
            "kind": "waiting",
            "targets": [self.wants],
            "description": "%s (%s)" % (self.filename, state),
            "applied_at": None,
            "hook_errors": 0,
            "last_hook_error": self.error,
            "inherited_from": self.inherited_from,
            "waiting_for": None if self.error else self.wants,
        }


def entry_holding(entries: Dict[int, WaitingPatch], uid: Optional[int]) -> Optional[WaitingPatch]:
    for entry in entries.values():
        if uid in entry.ids:
            return entry
    return None


def _prefixes(dotted: str) -> List[str]:
    parts = dotted.split(".")
    return [".".join(parts[: i + 1]) for i in range(len(parts))]


class ImportWatcher:
    """The meta_path finder: tells the manager when a module a waiting patch needs has run."""

    def __init__(self, manager: UpdateManager) -> None:
        self.manager = manager
        self.names: FrozenSet[str] = frozenset()  # module names worth a look
        self._inside = threading.local()

    def find_spec(self, name: str, path: Optional[Sequence[str]] = None, target: Any = None) -> Optional[ModuleSpec]:
        if name not in self.names or getattr(self._inside, "busy", False):
            return None
        self._inside.busy = True
        try:
            spec: Optional[ModuleSpec] = None
            for finder in list(sys.meta_path):
                find = getattr(finder, "find_spec", None)
                if finder is not self and find is not None:
                    spec = find(name, path, target)
                    if spec is not None:
                        break
        finally:
            self._inside.busy = False
        if spec is not None:
            self._apply_after_exec(spec.loader, name)
        return spec

    def _apply_after_exec(self, loader: Any, name: str) -> None:
        """Wrap this loader object's exec_module; a shared loader (a class, or one already wrapped) is left alone."""
        run = getattr(loader, "exec_module", None)
        own = getattr(loader, "__dict__", None)
        if run is None or isinstance(loader, type) or own is None or "exec_module" in own:
            return
        watcher = self

        def exec_then_apply(module: types.ModuleType) -> None:
            own.pop("exec_module", None)
            run(module)  # the module's own code; its exceptions are the import's
            watcher.imported(name)

        own["exec_module"] = exec_then_apply

    def imported(self, name: str) -> None:
        """A module some waiting patch needs has run: try the patches it may unblock (never raises)."""
        try:
            if self.manager.lock.acquire(blocking=False):
                try:
                    apply_ready(self.manager, name)
                finally:
                    self.manager.lock.release()
            else:  # lu is busy in this process (perhaps this very import is inside it): right after it
                osthreads.start_thread(lambda: _apply_when_free(self.manager, name), "lu-waiting")
        except Exception:
            pass


def _apply_when_free(manager: UpdateManager, name: str) -> None:
    with manager.lock:
        apply_ready(manager, name)


def apply_ready(manager: UpdateManager, name: str) -> None:
    """Apply the waiting patches that `name` may unblock (the manager's lock is held)."""
    if manager.pending is not None:
        return  # a patch file is running: it will see the module itself
    for first, entry in sorted(manager.waiting.items()):
        if entry.error or name not in _prefixes(entry.wants):
            continue
        try:
            manager.apply_patch(entry.source, entry.filename, reserved=entry.ids)
        except ModuleNotLoaded as exc:
            entry.wants = exc.wanted  # needs a module further on
            continue
        except LuError as exc:
            entry.error = str(exc)
            continue
        except Exception as exc:
            entry.error = "%s: %s" % (type(exc).__name__, exc)
            continue
        manager.waiting.pop(first, None)
    watch(manager)


def watch(manager: UpdateManager) -> None:
    """Put the finder in place for what the manager's patches wait for, or take it away when none waits."""
    names = frozenset(
        prefix for entry in manager.waiting.values() if not entry.error for prefix in _prefixes(entry.wants)
    )
    watcher = next((f for f in sys.meta_path if isinstance(f, ImportWatcher) and f.manager is manager), None)
    if not names:
        if watcher is not None:
            try:
                sys.meta_path.remove(watcher)
            except ValueError:
                pass
        return
    if watcher is None:
        watcher = ImportWatcher(manager)
        sys.meta_path.insert(0, watcher)
    watcher.names = names
