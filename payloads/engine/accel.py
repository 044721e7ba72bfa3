"""The compiled timer, when this process can take it: loaded by path, never required.

lu stages `_accel.abi3.so` beside its payloads when the host could build it
(lu_attach/accel_build.py; the source is lu_attach/native/lu_accel.c). It is
built against the stable ABI of 3.8, so one file serves every GIL build of
CPython from 3.8 on. Whatever stops it loading (no file, a free-threaded
build, another implementation, a file built for another version of lu, a
loader error) leaves the pure-Python timer in use, and the reason is kept
for `lu profile` and `lu ls` to show.
"""

from __future__ import annotations

import os
import sys
import threading
from typing import Any, NamedTuple, Optional

ABI = 3  # the interface this checkout's woven code calls (lu_accel.c's ABI)
FILE = "_accel.abi3.so"
MODULE = "lu_payloads._accel"


class Loaded(NamedTuple):
    """The module, or None and why not (one line for a user)."""

    module: Optional[Any]
    reason: str


_lock = threading.Lock()
_loaded: Optional[Loaded] = None


def package_dir() -> str:
    return os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _load() -> Loaded:
    if sys.implementation.name != "cpython":
        return Loaded(None, "this is %s, and the compiled timer is for CPython" % sys.implementation.name)
    if "t" in getattr(sys, "abiflags", ""):
        return Loaded(None, "this is a free-threaded build, and the compiled timer is for GIL builds")
    path = os.path.join(package_dir(), FILE)
    if not os.path.exists(path):
        return Loaded(None, "no compiled timer was staged (lu's host needs a C compiler and Python headers)")
    try:
        import importlib.machinery  # lazy: only a process that profiles needs the extension loader
        import importlib.util  # lazy: (as above)

        loader = importlib.machinery.ExtensionFileLoader(MODULE, path)
        spec = importlib.util.spec_from_loader(MODULE, loader)
        if spec is None:
            return Loaded(None, "the compiled timer could not be loaded")
        module = importlib.util.module_from_spec(spec)
        loader.exec_module(module)
    except Exception as exc:
        first = (str(exc).splitlines() or [type(exc).__name__])[0]
        return Loaded(None, "the compiled timer did not load: %s" % first)
    if getattr(module, "ABI", None) != ABI:
        return Loaded(None, "the compiled timer beside the agent is of another version of lu")
    return Loaded(module, "")


def compiled() -> Loaded:
    """The compiled timer module (loaded once per process), or None and the reason."""
    global _loaded
    with _lock:
        if _loaded is None:
            _loaded = _load()
        return _loaded
