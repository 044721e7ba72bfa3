"""`@realtime`: a function that picks up edits of its source file on its next call.

(realtimefunc's model.)  On each call, at most one `os.stat` per source file
per `interval` seconds tells whether the file changed; if it did, the file is
compiled and the function's current source becomes its body before the call
runs, in place and through the engine (one update; `lu ls` lists it, `lu
revert` undoes it).  Plain functions, methods (also under classmethod /
staticmethod), `async def` functions and generator-based (tornado-style)
coroutines work; the decorator may sit inside or outside other decorators
that use functools.wraps.  A syntax error (or any refusal) is logged once per
version of the file on logger "lu_payloads.realtime" and the last good body
keeps running.
"""
from __future__ import annotations

import functools
import inspect
import logging
import os
import time

from .. import osthreads
from ..engine.resolve import unwrap
from ..errors import LuError
from . import core

log = logging.getLogger("lu_payloads.realtime")
_files = {}     # filename -> [last check (monotonic), stamp]
_lock = osthreads.Lock()


def _stamp(filename):
    try:
        st = os.stat(filename)
    except OSError:
        return None
    return (st.st_mtime_ns, st.st_size)


def realtime(func=None, interval=0.5):
    """Decorator; `@realtime` or `@realtime(interval=0.1)`."""
    if func is None:
        return lambda f: realtime(f, interval=interval)
    wrapper_type = None
    if isinstance(func, (staticmethod, classmethod)):
        wrapper_type, func = type(func), func.__func__
    inner = unwrap(func)
    if inner is None:
        raise TypeError("@realtime needs a Python function, not %r" % (func,))
    filename = inner.__code__.co_filename
    with _lock:
        entry = _files.get(filename)
        if entry is None:
            entry = _files[filename] = [time.monotonic(), _stamp(filename)]
    state = {"stamp": entry[1]}
    name = "%s.%s" % (inner.__module__, inner.__qualname__)

    def refresh():
        now = time.monotonic()
        if now - entry[0] >= interval:
            entry[0] = now
            stamp = _stamp(filename)
            if stamp is not None:
                entry[1] = stamp
        if state["stamp"] != entry[1]:
            stamp = state["stamp"] = entry[1]
            _apply(filename, inner, name, stamp)

    if inspect.iscoroutinefunction(func):
        @functools.wraps(func)
        async def wrapper(*args, **kwargs):
            refresh()
            return await func(*args, **kwargs)
    else:
        @functools.wraps(func)
        def wrapper(*args, **kwargs):
            refresh()
            return func(*args, **kwargs)
    wrapper.__lu_realtime__ = True
    return wrapper_type(wrapper) if wrapper_type else wrapper


def _apply(filename, inner, name, stamp):
    try:
        with open(filename, "rb") as fh:
            data = fh.read()
        if not data.strip():
            return
        out = core.plan_and_apply(filename, data, only=[(name, inner)], label="realtime")
    except LuError as e:
        log.error("%s: %s (the last good body keeps running)", name, e)
        return
    except Exception as e:   # never break the caller
        log.error("%s: cannot reload: %s: %s", name, type(e).__name__, e)
        return
    for line in out.lines:
        log.info("realtime: %s", line)
