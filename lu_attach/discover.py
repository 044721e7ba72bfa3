"""Find Python processes and tell what they run, from outside, without stopping them.

A process counts as Python when it runs a CPython interpreter, whatever its
executable is called: either a libpython is mapped into it, or its executable
exports the C API (a static or renamed interpreter, or a program embedding
one). The version is read from the target itself: `Py_Version` (3.11+) or the
`version` buffer `Py_GetVersion` fills at start-up, from the target's memory;
only when neither can be read is the libpython file name used.
"""

from __future__ import annotations

import json
import os
import re
import struct
from dataclasses import asdict, dataclass, field
from functools import lru_cache
from typing import Dict, List, Optional, Tuple

import psutil
from elftools.common.exceptions import ELFError
from elftools.elf.elffile import ELFFile
from elftools.elf.sections import SymbolTableSection

from . import safefs
from .pythons import release_suffix
from .symbols import Mapping, base_of, dynamic_symbols, read_maps

_LIBPYTHON = re.compile(r"libpython(\d)\.(\d+)")
# Only builds without the GIL (PEP 703) export it: their inline Py_DECREF calls it from extension modules.
FREE_THREADED_MARK = "_Py_MergeZeroLocalRefcount"

SymbolOffsets = Dict[str, Tuple[int, int]]  # symbol name -> (offset from the image's load base, size)


@dataclass
class PythonProcess:
    pid: int
    user: str
    python: str  # "3.11.7", or "3.11" when only the minor version could be told
    agent: bool  # an agent answers in it (filled in by session.list_processes)
    cmdline: str
    exe: str = ""
    uid: int = -1
    interpreter_path: str = ""  # the file that holds the C API (libpython or the executable)
    static: bool = False
    agent_socket: Optional[str] = field(default=None)
    free_threaded: bool = False  # built without the GIL (3.13t, 3.14t...)

    @property
    def build(self) -> str:
        """The version as `lu ps` shows it: "3.13.5t (free-threaded)" for a build without the GIL."""
        return "%st (free-threaded)" % self.python if self.free_threaded else self.python

    def to_json(self) -> dict:
        return asdict(self)

    def version_tuple(self) -> Tuple[int, int]:
        parts = self.python.split(".")
        return int(parts[0]), int(parts[1])


_VERSION_CACHE = os.path.join(
    os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "lu", "version-symbols.json"
)


@lru_cache(maxsize=256)
def _elf_python_symbols(path: str, stamp: Tuple[int, int, float]) -> Optional[SymbolOffsets]:
    """Symbol offsets that tell a CPython image and its version, or None.

    The exported C API is found through the GNU hash table (fast). Before 3.11
    the version lives in a non-exported buffer, found by walking the full
    symbol table once per file; that answer is cached on disk.
    """
    try:
        found: SymbolOffsets = {
            name: (offset, 0)
            for name, offset in dynamic_symbols(
                path, ["Py_IsInitialized", "PyGILState_Ensure", "Py_Version", FREE_THREADED_MARK]
            ).items()
        }
    except (OSError, ELFError, ValueError, safefs.UnsafePath):
        return None
    except Exception:  # a malformed image (its user controls it): not a Python lu can read
        return None
    if "Py_IsInitialized" not in found or "PyGILState_Ensure" not in found:
        return None
    if "Py_Version" not in found:
        key = "%s:%s" % (os.path.basename(path), stamp)
        cache = _load_cache()
        if key in cache:
            offset = cache[key]
        else:
            offset = cache[key] = _find_version_buffer(path)
            _save_cache(cache)
        if offset is not None:
            found["version"] = (offset, 250)
    return found


def _find_version_buffer(path: str) -> Optional[int]:
    try:
        with safefs.open_image(path) as handle:
            elf = ELFFile(handle)
            first_load = 0
            for segment in elf.iter_segments():
                if segment["p_type"] == "PT_LOAD":
                    first_load = segment["p_vaddr"] - segment["p_offset"]
                    break
            section = elf.get_section_by_name(".symtab")
            if section is None:
                return None
            if not isinstance(section, SymbolTableSection):
                return None
            for symbol in section.iter_symbols():
                if (
                    re.match(r"version(\.\d+)?$", symbol.name)
                    and symbol["st_size"] == 250
                    and symbol["st_info"]["type"] == "STT_OBJECT"
                ):
                    return symbol["st_value"] - first_load
    except (OSError, ELFError, ValueError, safefs.UnsafePath):
        return None
    except Exception:  # a malformed image (its user controls it)
        return None
    return None


def _load_cache() -> Dict[str, Optional[int]]:
    try:
        with open(_VERSION_CACHE) as handle:
            return json.load(handle)
    except (OSError, ValueError):
        return {}


def _save_cache(cache: Dict[str, Optional[int]]) -> None:
    try:
        os.makedirs(os.path.dirname(_VERSION_CACHE), exist_ok=True)
        tmp = _VERSION_CACHE + ".%d" % os.getpid()
        with open(tmp, "w") as handle:
            json.dump(cache, handle)
        os.replace(tmp, _VERSION_CACHE)
    except OSError:
        pass


def _read(pid: int, address: int, size: int) -> Optional[bytes]:
    try:
        fd = os.open("/proc/%d/mem" % pid, os.O_RDONLY)
    except OSError:
        return None
    try:
        return os.pread(fd, size, address)
    except OSError:
        return None
    finally:
        os.close(fd)


@dataclass(frozen=True)
class InterpreterImage:
    """Where a process's CPython lives: the ELF holding the C API, its symbols, and the process's maps."""

    path: Optional[str]  # as the process names it; None when no mapped image is a CPython lu can read
    symbols: SymbolOffsets
    maps: List[Mapping]


def interpreter_image(pid: int) -> InterpreterImage:
    """The image (libpython or the executable) that holds the C API of pid's interpreter."""
    maps = read_maps(pid)
    root = "/proc/%d/root" % pid
    candidates = []
    for mapping in maps:
        if _LIBPYTHON.search(os.path.basename(mapping.path)) and mapping.path not in candidates:
            candidates.append(mapping.path)
    try:
        exe = os.readlink("/proc/%d/exe" % pid)
    except OSError:
        exe = ""
    if exe and exe not in candidates:
        candidates.append(exe)
    for path in candidates:
        full = root + path
        try:
            st = os.stat(full)
        except OSError:
            continue
        found = _elf_python_symbols(full, (st.st_ino, st.st_size, st.st_mtime))
        if found:
            return InterpreterImage(path, found, maps)
    return InterpreterImage(None, {}, maps)


def read_version(pid: int, image: InterpreterImage) -> Optional[str]:
    """The version of the CPython in image: from Py_Version (3.11+), its version buffer, or its file name."""
    path, found = image.path or "", image.symbols
    base = base_of(image.maps, path)
    if base is not None and "Py_Version" in found:
        raw = _read(pid, base + found["Py_Version"][0], 4)
        if raw and len(raw) == 4:
            hexversion = struct.unpack("<I", raw)[0]
            major, minor, micro = hexversion >> 24, (hexversion >> 16) & 0xFF, (hexversion >> 8) & 0xFF
            if major == 3:
                return "%d.%d.%d%s" % (major, minor, micro, release_suffix(hexversion))
    if base is not None and "version" in found:
        raw = _read(pid, base + found["version"][0], 64)
        if raw:
            in_buffer = re.match(rb"(\d+\.\d+\.\d+(?:(?:a|b|rc)\d+)?)", raw)
            if in_buffer:
                return in_buffer.group(1).decode()
    match = _LIBPYTHON.search(os.path.basename(path))
    if match:
        return "%s.%s" % match.groups()
    match = re.search(r"python(\d)\.(\d+)", os.path.basename(path))
    if match:
        return "%s.%s" % match.groups()
    return None


def inspect_process(pid: int) -> Optional[PythonProcess]:
    """A PythonProcess for pid, or None when it runs no CPython we can read (its agent is session.py's concern)."""
    try:
        proc = psutil.Process(pid)
        with proc.oneshot():
            cmdline = " ".join(proc.cmdline())
            user = proc.username()
            uid = proc.uids().effective
            exe = proc.exe()
            if proc.status() == psutil.STATUS_ZOMBIE:
                return None
    except (psutil.Error, OSError):
        return None
    try:
        image = interpreter_image(pid)
    except OSError:
        return None
    path = image.path
    if not path:
        return None
    version = read_version(pid, image) or "unknown"
    return PythonProcess(
        pid=pid,
        user=user,
        python=version,
        agent=False,
        cmdline=cmdline,
        exe=exe,
        uid=uid,
        interpreter_path=path,
        static=not _LIBPYTHON.search(os.path.basename(path)),
        free_threaded=FREE_THREADED_MARK in image.symbols,
    )


def python_processes() -> List[PythonProcess]:
    """Every Python process the current user may act on, sorted by pid."""
    me = os.geteuid()
    result = []
    for proc in psutil.process_iter(["pid", "uids"]):
        try:
            uids = proc.info["uids"]
            if uids is None or (me != 0 and uids.effective != me):
                continue
        except (psutil.Error, KeyError):
            continue
        if proc.info["pid"] == os.getpid():
            continue
        found = inspect_process(proc.info["pid"])
        if found:
            result.append(found)
    return sorted(result, key=lambda p: p.pid)
