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
from types import FrameType
from typing import TYPE_CHECKING, Any, List, Optional, Tuple

from ..errors import LuError
from .effects import raised_where
from .updates import Instrument, Redefine

if TYPE_CHECKING:
    from .manager import UpdateManager


def calling_line(filename: str) -> Optional[int]:
    """The line of `filename` that called into the manager (the patch's apply_update call)."""
    frame: Optional[FrameType] = sys._getframe(2)
    while frame is not None:
        if frame.f_code.co_filename == filename:
            return frame.f_lineno
        frame = frame.f_back
    return None


def apply_patch(manager: UpdateManager, source: Any, filename: str) -> List[int]:
    """Run a patch file's text and commit what it applied; returns the update ids."""
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
        start = manager.next_id
        manager.pending = (filename, [])
        try:
            try:
                exec(code, namespace)
            except LuError as e:
                raise LuError("%s%s" % (raised_where(filename, sys.exc_info()[2]), e))
            except BaseException as e:
                raise LuError("%s%s: %s" % (raised_where(filename, sys.exc_info()[2]), type(e).__name__, e))
            items: List[Tuple[int, Any, str]] = manager.pending[1]
        except BaseException:
            manager.next_id = start
            _restore_linecache(filename, old_cache)
            raise
        finally:
            manager.pending = None
        if not items:
            return []
        try:
            manager.commit(items)
        except BaseException:
            manager.next_id = start
            raise
        return [uid for uid, _, _ in items]


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
