"""Locate (or build once) the lu_spawn helper library loaded into targets."""

from __future__ import annotations

import functools
import glob
import hashlib
import os
import shutil
import subprocess

from .errors import LuAttachError
from .symbols import dynamic_symbols

HERE = os.path.dirname(os.path.abspath(__file__))
SOURCE = os.path.join(HERE, "native", "lu_spawn.c")


def cache_dir() -> str:
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.join(base, "lu")


ENTRY = "lu_spawn_start"
READY = "lu_spawn_ready"


def helper_library() -> str:
    """Path of a built lu_spawn library: the one setup.py built (if not older than its source), or one compiled now."""
    built = sorted(glob.glob(os.path.join(HERE, "_lu_spawn*.so")))
    if built and os.stat(built[0]).st_mtime >= os.stat(SOURCE).st_mtime:
        return built[0]
    with open(SOURCE, "rb") as handle:
        digest = hashlib.sha256(handle.read()).hexdigest()[:16]
    target = os.path.join(cache_dir(), "lu_spawn-%s.so" % digest)
    if os.path.exists(target):
        return target
    compiler = shutil.which(os.environ.get("CC", "cc")) or shutil.which("gcc")
    if not compiler:
        raise LuAttachError(
            "lu needs its helper library built: install a C compiler "
            "(apt-get install gcc) and retry, or start the agent from the program "
            "(import lu_payloads; lu_payloads.start())"
        )
    os.makedirs(os.path.dirname(target), exist_ok=True)
    tmp = target + ".%d.tmp" % os.getpid()
    result = subprocess.run(
        [compiler, "-shared", "-fPIC", "-O2", "-fvisibility=hidden", "-o", tmp, SOURCE, "-lpthread", "-ldl"],
        capture_output=True,
        text=True,
    )
    if result.returncode != 0:
        raise LuAttachError("building lu's helper library failed: %s" % result.stderr.strip().splitlines()[-1:])
    os.replace(tmp, target)
    return target


@functools.lru_cache(maxsize=8)
def entry_offset(library: str, name: str = ENTRY) -> int:
    """Offset of `lu_spawn_start` (or of another exported symbol) from the library's load base."""
    offsets = dynamic_symbols(library, [name])
    if name not in offsets:
        raise LuAttachError("lu's helper library %s has no %s; rebuild lu (pip install -e .)" % (library, name))
    return offsets[name]
