"""Patch files: a Python file whose top level applies updates, all of them as one transaction.

The file runs in a namespace of its own; every `UpdateManager.apply_update`
it calls is collected (given its id and the line it came from) instead of
applied; after the file ran, the collected updates are committed together.
Errors carry the patch file's `file:line:` prefix; no id is consumed by a
failure.
"""

from __future__ import annotations

import builtins
import linecache
import sys
from dataclasses import dataclass
from types import FrameType
from typing import TYPE_CHECKING, Any, List, Optional, Tuple

from ..errors import LuError, prefixed
from .effects import raised_where
from .updates import Instrument, Redefine

if TYPE_CHECKING:
    from .manager import UpdateManager
    from .transaction import Transaction


def calling_line(filename: str) -> Optional[int]:
    """The line of `filename` that called into the manager (the patch's apply_update call)."""
    frame: Optional[FrameType] = sys._getframe(2)
    while frame is not None:
        if frame.f_code.co_filename == filename:
            return frame.f_lineno
        frame = frame.f_back
    return None


@dataclass
class PreparedPatch:
    """A patch file that ran and compiled: `commit` swaps it in, `abort` leaves the process as it was.

    A tree update prepares the patch in every process first and commits only
    when every one of them prepared it (lu_payloads/group.py).
    """

    manager: UpdateManager
    filename: str
    ids: List[int]
    transaction: Optional[Transaction]  # None: the patch applied no update
    next_id_before: int  # what the manager's next id was, for abort
    old_linecache: Any

    def commit(self) -> List[int]:
        with self.manager.lock:
            if self.transaction is not None:
                try:
                    self.manager.finish(self.transaction)
                except BaseException:
                    self.abort()
                    raise
            self.transaction = None
            return list(self.ids)

    def abort(self) -> None:
        with self.manager.lock:
            if self.ids and self.manager.next_id == self.ids[-1] + 1:
                self.manager.next_id = self.next_id_before  # no id is consumed by what did not apply
            _restore_linecache(self.filename, self.old_linecache)
            self.transaction = None


def prepare_patch(
    manager: UpdateManager,
    source: Any,
    filename: str,
    first_id: Optional[int] = None,
    reserved: Optional[List[int]] = None,
) -> PreparedPatch:
    """Run a patch file's text and compile what it applies, changing nothing yet.

    `first_id`: the updates are numbered from there (a tree update has the
    same ids in every process); it must not be below this process's next id.
    `reserved`: ids kept for this patch earlier (a waiting patch); the updates
    take them in order, and a patch that applies more updates than that is
    refused.
    """
    if isinstance(source, bytes):
        source = source.decode("utf-8")
    with manager.lock:
        if manager.pending is not None:
            raise LuError("%s: a patch cannot apply another patch" % filename)
        lines = source.splitlines(True)
        if lines and not lines[-1].endswith("\n"):
            lines[-1] += "\n"
        old_cache = linecache.cache.get(filename)
        linecache.cache[filename] = (len(source), None, lines, filename)
        try:
            code = compile(source, filename, "exec", dont_inherit=True)
        except SyntaxError as e:
            _restore_linecache(filename, old_cache)
            raise LuError("%s:%s: SyntaxError: %s" % (filename, e.lineno, e.msg))
        _ensure_package_names(type(manager))
        namespace = {"__name__": "__lu_patch__", "__file__": filename, "__builtins__": builtins}
        before = manager.next_id
        if first_id is not None:
            if first_id < manager.next_id:
                _restore_linecache(filename, old_cache)
                raise LuError("update id %d is taken in this process (its next free id is %d)" % (first_id, before))
            manager.next_id = first_id
        if reserved:
            manager.next_id = reserved[0]
        manager.pending = (filename, [])
        try:
            try:
                exec(code, namespace)
            except LuError as e:
                raise prefixed(e, raised_where(filename, sys.exc_info()[2]))
            except BaseException as e:
                raise LuError("%s%s: %s" % (raised_where(filename, sys.exc_info()[2]), type(e).__name__, e))
            items: List[Tuple[int, Any, str]] = manager.pending[1]
            if reserved and len(items) > len(reserved):
                raise LuError(
                    "%s applies %d updates in this process but %d elsewhere in its tree; nothing was applied"
                    % (filename, len(items), len(reserved))
                )
            manager.pending = None
            transaction = manager.prepare(items) if items else None
        except BaseException:
            manager.next_id = before
            _restore_linecache(filename, old_cache)
            raise
        finally:
            manager.pending = None
        if reserved:
            manager.next_id = max(before, reserved[-1] + 1)
        ids = [uid for uid, _, _ in items]
        return PreparedPatch(manager, filename, ids, transaction, before, old_cache)


def apply_patch(manager: UpdateManager, source: Any, filename: str, reserved: Optional[List[int]] = None) -> List[int]:
    """Run a patch file's text and commit what it applied; returns the update ids."""
    with manager.lock:
        return prepare_patch(manager, source, filename, reserved=reserved).commit()


def _restore_linecache(filename: str, old: Any) -> None:
    if old is None:
        linecache.cache.pop(filename, None)
    else:
        linecache.cache[filename] = old


def _ensure_package_names(manager_class: type) -> None:
    """`from lu_payloads import Instrument, Redefine, UpdateManager` works in the patch (lazy names resolved)."""
    package = sys.modules.get(__name__.rsplit(".", 2)[0])
    if package is None:
        return
    for name, obj in (("Instrument", Instrument), ("Redefine", Redefine), ("UpdateManager", manager_class)):
        if name not in package.__dict__:
            try:
                getattr(package, name)
            except Exception:
                setattr(package, name, obj)
