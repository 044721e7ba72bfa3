"""Locate (or build once) lu's compiled timer, the optional extension staged beside lu's payloads.

The source is `native/lu_accel.c`. It is built against the stable ABI of
3.8 (Py_LIMITED_API), so one file loads in every GIL build of CPython from
3.8 on, whatever the host's own Python version: the host's headers are
enough. setup.py builds it into the payloads package; a checkout whose build
is missing or older than the source gets one built here into lu's cache.
Without a compiler or headers there is none, and targets time calls in
Python (engine/accel.py says so); nothing else depends on it.
"""

from __future__ import annotations

import functools
import glob
import os
import sysconfig
from typing import Optional

import lu_payloads

from .native_helper import NotBuilt, built_once

HERE = os.path.dirname(os.path.abspath(__file__))
SOURCE = os.path.join(HERE, "native", "lu_accel.c")
STAGED_NAME = "_accel.abi3.so"  # its name in the staged payloads (engine/accel.py loads it)


def in_package() -> Optional[str]:
    """The build setup.py put into the payloads package, if it is not older than the source."""
    package = os.path.dirname(os.path.abspath(lu_payloads.__file__))
    for path in sorted(glob.glob(os.path.join(package, "_accel*.so"))):
        if os.stat(path).st_mtime >= os.stat(SOURCE).st_mtime:
            return path
    return None


@functools.lru_cache(maxsize=1)
def accel_library() -> Optional[str]:
    """Path of a built compiled timer, or None when this host cannot build one."""
    built = in_package()
    if built is not None:
        return built
    include = sysconfig.get_paths().get("include")
    if not include or not os.path.exists(os.path.join(include, "Python.h")):
        return None
    try:
        return built_once(SOURCE, "lu_accel-%s.abi3.so", ["-I", include])  # the source sets Py_LIMITED_API
    except NotBuilt:
        return None
