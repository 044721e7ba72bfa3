"""Locate (or build once) the lu_spawn helper library loaded into targets."""

from __future__ import annotations

import functools
import glob
import hashlib
import os
import shutil
import subprocess
from typing import List, Sequence

from .errors import LuAttachError
from .symbols import dynamic_symbols

HERE = os.path.dirname(os.path.abspath(__file__))
SOURCE = os.path.join(HERE, "native", "lu_spawn.c")


def cache_dir() -> str:
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.join(base, "lu")


ENTRY = "lu_spawn_start"
READY = "lu_spawn_ready"


class NotBuilt(Exception):
    """Why a native part could not be built on this host (one line)."""


def built_once(source: str, name: str, flags: List[str], libraries: Sequence[str] = ()) -> str:
    """A build of `source` in lu's cache, named `name % digest-of-the-source`, compiled now if missing.

    Written under a temporary name and renamed into place, so that two lu
    commands building at once never load half a file. NotBuilt says why not.
    """
    with open(source, "rb") as handle:
        digest = hashlib.sha256(handle.read()).hexdigest()[:16]
    target = os.path.join(cache_dir(), name % digest)
    if os.path.exists(target):
        return target
    compiler = shutil.which(os.environ.get("CC", "cc")) or shutil.which("gcc")
    if not compiler:
        raise NotBuilt("there is no C compiler to build it (apt-get install gcc)")
    os.makedirs(os.path.dirname(target), exist_ok=True)
    tmp = target + ".%d.tmp" % os.getpid()
    command = [compiler, "-shared", "-fPIC", "-O2", "-fvisibility=hidden"] + flags + ["-o", tmp, source]
    result = subprocess.run(command + list(libraries), capture_output=True, text=True)
    if result.returncode != 0:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        last = (result.stderr.strip().splitlines() or ["the compiler said nothing"])[-1]
        raise NotBuilt("building %s failed: %s" % (os.path.basename(source), last))
    os.replace(tmp, target)
    return target


def helper_library() -> str:
    """Path of a built lu_spawn library: the one setup.py built (if not older than its source), or one compiled now."""
    built = sorted(glob.glob(os.path.join(HERE, "_lu_spawn*.so")))
    if built and os.stat(built[0]).st_mtime >= os.stat(SOURCE).st_mtime:
        return built[0]
    try:
        return built_once(SOURCE, "lu_spawn-%s.so", [], ["-lpthread", "-ldl"])
    except NotBuilt as why:
        raise LuAttachError(
            "lu needs its helper library, and %s; or start the agent from the program "
            "(import lu_payloads; lu_payloads.start())" % why
        )


@functools.lru_cache(maxsize=8)
def entry_offset(library: str, name: str = ENTRY) -> int:
    """Offset of `lu_spawn_start` (or of another exported symbol) from the library's load base."""
    offsets = dynamic_symbols(library, [name])
    if name not in offsets:
        raise LuAttachError("lu's helper library %s has no %s; rebuild lu (pip install -e .)" % (library, name))
    return offsets[name]
