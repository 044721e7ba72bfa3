"""Bytecode for the agent's start, made where the program's threads do not wait for it.

Loaded by the injected bootstrap on its own, before the rest of lu, so it
imports nothing at module level but `os` and `sys`, which every program has.

Every module the agent imports without bytecode is compiled in the target, and
each compile is one call that holds the GIL for up to 15 ms: the program's
threads wait that long. There are two such sets:

- lu's own modules, the first time a Python version meets this copy of lu, and
  on every injection where the program asked for no bytecode
  (PYTHONDONTWRITEBYTECODE): lu writes their bytecode in its own directory;
- the standard library's, where it ships without bytecode and the program writes
  none (container images commonly strip `*.pyc` and set
  PYTHONDONTWRITEBYTECODE): lu keeps their bytecode *aside*, in the agent's
  directory, and only the agent's own thread loads it from there while it
  starts. The program's imports, its files and its settings are not touched.

On 3.14 and later (GIL builds) both are compiled in an isolated
subinterpreter, which has a GIL of its own; elsewhere lu's own modules are
compiled in the agent's thread as before (`_interpreters` is experimental in
3.13) and the standard library's as the import meets them.
"""

import os
import sys

TYPE_CHECKING = False  # (and no `from __future__ import annotations`: importing __future__ would compile it)
if TYPE_CHECKING:
    from typing import Any, Dict, List, Optional, Tuple

# The import system's own functions, not through the importlib package (launch.py says why)
EXTERNAL = sys.modules["_frozen_importlib_external"]

ASIDE_FROM = (3, 14)  # a subinterpreter with a GIL of its own compiles, from this version on
MARKER = "complete"  # written last into the aside directory by the subinterpreter that filled it

# What runs in the subinterpreter: lu's missing bytecode, then the standard library modules lu imports
# (found by reading lu's sources), each compiled aside when it has no bytecode of its own.
SUBINTERPRETER = """\
import ast, importlib.util, os, py_compile, sys

def compile_to(source, cached):
    try:
        py_compile.compile(source, cfile=cached, doraise=True, optimize=sys.flags.optimize)
    except Exception:
        pass

for source, cached in {missing!r}:
    compile_to(source, cached)

names = set()
for dirpath, _dirnames, filenames in os.walk({package!r}):
    for filename in filenames:
        if filename.endswith(".py"):
            try:
                with open(os.path.join(dirpath, filename), "rb") as handle:
                    tree = ast.parse(handle.read())
            except Exception:
                continue
            for node in ast.walk(tree):
                if isinstance(node, ast.Import):
                    names.update(alias.name for alias in node.names)
                elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                    names.add(node.module)
for name in sorted(names):
    if name.split(".")[0] in sys.stdlib_module_names:
        try:
            __import__(name)
        except Exception:
            pass
for module in list(sys.modules.values()):
    spec = getattr(module, "__spec__", None)
    origin = getattr(spec, "origin", None)
    if isinstance(origin, str) and origin.endswith(".py") and os.path.isabs(origin):
        if not os.path.exists(importlib.util.cache_from_source(origin)):
            compile_to(origin, {aside!r} + importlib.util.cache_from_source(origin))
with open({aside!r} + "/" + {marker!r}, "w"):
    pass
"""


def aside_directory(runtime: str) -> str:
    """Where the standard library's bytecode is kept aside: one directory per Python build."""
    return "%s/bytecode-%s" % (runtime, sys.version.split()[0] + "-" + sys.implementation.cache_tag)


def complete_marker(package: str) -> str:
    """A file beside the package's own bytecode, written when every module of this copy of lu had bytecode
    for this Python; it lists the bytecode directories. While none of them changed since (a removed file
    changes its directory), later injections look at them instead of at every module: 6 calls, not 70."""
    return EXTERNAL.cache_from_source(package + "/__init__.py")[: -len(".pyc")] + ".complete"


def _still_complete(marker: str) -> bool:
    try:
        with open(marker) as handle:
            directories = handle.read().split("\n")
        written = os.stat(marker).st_mtime_ns
        return bool(directories) and all(os.stat(d).st_mtime_ns <= written for d in directories)
    except (OSError, ValueError):
        return False


def missing_bytecode(package: str) -> "List[Tuple[str, str]]":
    """lu's modules without bytecode for this Python: (source, where its bytecode belongs)."""
    marker = complete_marker(package)
    if _still_complete(marker):
        return []
    missing = []
    directories = set()
    for dirpath, _dirnames, filenames in os.walk(package):
        for name in filenames:
            if name.endswith(".py"):
                source = os.path.join(dirpath, name)
                cached = EXTERNAL.cache_from_source(source)
                directories.add(os.path.dirname(cached))
                if not os.path.exists(cached):
                    missing.append((source, cached))
    if not missing:
        try:
            with open(marker, "w") as handle:
                handle.write("\n".join(sorted(directories)))
        except OSError:
            pass  # looked at module by module again next time
    return missing


def can_compile_aside() -> bool:
    return sys.version_info >= ASIDE_FROM and getattr(sys, "_is_gil_enabled", lambda: False)()


def compile_in_subinterpreter(missing: "List[Tuple[str, str]]", package: str, aside: str) -> bool:
    """Run SUBINTERPRETER in an isolated subinterpreter; False if there is none to be had (an audit hook
    refused it, a build without the module). Measured on 3.14: a 1 ms heartbeat thread's longest gap
    1.3 ms while all of lu compiles (1.2 ms idle), against 14-17 ms compiling in a thread."""
    try:
        import _interpreters  # type: ignore[import-not-found]  # lazy: 3.13+ only

        os.makedirs(aside, 0o700, exist_ok=True)
        interpreter = _interpreters.create("isolated")
    except Exception:
        return False
    script = SUBINTERPRETER.format(missing=missing, package=package, aside=aside, marker=MARKER)
    try:
        _interpreters.exec(interpreter, script)
    except Exception:
        pass
    finally:
        try:
            _interpreters.destroy(interpreter)
        except Exception:
            pass
    return True


def compile_in_this_thread(missing: "List[Tuple[str, str]]") -> None:
    import py_compile  # lazy: only where lu's bytecode is missing (it imports more)

    for source, cached in missing:
        try:
            py_compile.compile(source, cfile=cached, doraise=True)
        except Exception:
            pass  # this one is compiled as it is imported


def prepare(package: str, runtime: str) -> "Tuple[Optional[Dict[str, Any]], Optional[Any]]":
    """lu's bytecode made, and the standard library's kept aside where it has none. Returns what was
    compiled (for lu's report; None when nothing was) and the finder to put first on sys.meta_path
    while the agent starts (None when nothing is aside)."""
    if sys.pycache_prefix is not None:
        return None, None  # bytecode goes to the program's own cache directory: the import does as it said
    missing = missing_bytecode(package)
    aside = aside_directory(runtime)
    marker = aside + "/" + MARKER
    report = None
    wanted = missing or not os.path.exists(marker)
    if wanted and can_compile_aside() and compile_in_subinterpreter(missing, package, aside):
        if missing:
            report = {"modules": len(missing), "where": "subinterpreter"}
        missing = [pair for pair in missing if not os.path.exists(pair[1])]
    if missing:
        if sys.dont_write_bytecode:
            compile_in_this_thread(missing)
            report = {"modules": len(missing), "where": "agent thread"}
        else:
            report = {"modules": len(missing), "where": "import"}  # the import writes them as it goes
    finder = AsideFinder(aside) if os.path.exists(marker) else None  # (the subinterpreter may have made it)
    return report, finder


def aside_code(source: str, cached: str, magic: bytes, loads: "Any") -> "Any":
    """The code in `cached` if it was compiled from `source` as it is now (the import system's own check:
    magic number, timestamp-based, source modification time and size), else None."""
    try:
        with open(cached, "rb") as handle:
            data = handle.read()
        st = os.stat(source)
    except OSError:
        return None
    if (
        len(data) < 16
        or data[:4] != magic
        or int.from_bytes(data[4:8], "little") != 0
        or int.from_bytes(data[8:12], "little") != int(st.st_mtime) & 0xFFFFFFFF
        or int.from_bytes(data[12:16], "little") != st.st_size & 0xFFFFFFFF
    ):
        return None
    try:
        return loads(memoryview(data)[16:])
    except (ValueError, EOFError, TypeError):
        return None


class AsideFinder:
    """Finds a standard library module with no bytecode of its own but some kept aside by lu, for the
    thread that starts the agent only: every other thread's imports go on as the program set them up.

    It imports nothing while it finds (an import there would come back to it): all it needs is taken
    when it is made."""

    def __init__(self, aside: str) -> None:
        import _thread  # lazy: all taken here, as an import while finding would come back to this finder
        import marshal  # lazy: (as above)

        self.aside = aside
        # lu's own modules have their bytecode in lu's copy, never aside: asking the path finder for them
        # here would look for each of them twice (the standard library's names do not say it all: Debian
        # adds modules of its own)
        self.get_ident = _thread.get_ident
        self.thread = self.get_ident()  # the thread that makes it is the one it serves
        self.cache_from_source = EXTERNAL.cache_from_source
        self.path_finder = EXTERNAL.PathFinder
        if TYPE_CHECKING:
            from importlib.machinery import SourceFileLoader  # lazy: for the type checker only
        else:
            SourceFileLoader = EXTERNAL.SourceFileLoader  # (the same class)
        self.source_loader = SourceFileLoader
        magic, loads = EXTERNAL.MAGIC_NUMBER, marshal.loads

        class AsideLoader(SourceFileLoader):
            """A source loader that takes its code from the bytecode kept aside while that still matches."""

            cached = ""

            def get_code(self, fullname: str) -> "Any":
                code = aside_code(self.path, self.cached, magic, loads)
                return code if code is not None else super().get_code(fullname)

        self.aside_loader = AsideLoader

    def serve_this_thread(self) -> None:
        """Serve the calling thread from now on (the door's, when it loads the agent), and it alone."""
        self.thread = self.get_ident()

    def find_spec(self, name: str, path: "Any" = None, target: "Any" = None) -> "Any":
        if self.get_ident() != self.thread or name.partition(".")[0] == "lu_payloads":
            return None
        spec = self.path_finder.find_spec(name, path)
        if spec is None or type(spec.loader) is not self.source_loader or not isinstance(spec.origin, str):
            return None
        if os.path.exists(self.cache_from_source(spec.origin)):
            return None  # it has bytecode of its own: the program's finders load it as they would
        cached = self.aside + self.cache_from_source(spec.origin)
        if not os.path.exists(cached):
            return None
        loader = self.aside_loader(name, spec.origin)
        loader.cached = cached
        spec.loader = loader
        return spec
