"""The agent's start, as the injected bootstrap hands it over once it holds its claim.

The bootstrap (lu_attach/staging.py) is compiled in the target on every
injection: one call that holds the GIL while the program's threads wait for
it. So it is kept to what must come before any of lu's files can be read (its
claim, its expiry, the switch interval, lu's private copy) and this module
does the rest. It is loaded by its path from that copy, where its bytecode is
written once per Python version (by startup.py, in a subinterpreter from 3.14
on), so an injection unmarshals it instead of compiling it.

Like startup.py and collector.py it is loaded before lu's package is
imported, not entered in sys.modules, and imports only what every program has
at module level.
"""

import gc
import os
import sys

TYPE_CHECKING = False  # (and no `from __future__ import annotations`: importing __future__ would compile it)
if TYPE_CHECKING:
    from typing import Any, Callable, Dict, List, Optional

# The import system's own functions, where the interpreter keeps them (importlib.util hands out these very
# ones): importing the importlib package would compile it, holding the GIL, where the standard library
# ships no bytecode, before startup.py's finder can serve it from the aside.
EXTERNAL = sys.modules["_frozen_importlib_external"]
BOOTSTRAP = sys.modules["_frozen_importlib"]


def load(path: str, name: str, search: "Optional[List[str]]" = None, register: bool = False) -> "Any":
    """A module of lu's by its path (from its bytecode where it has some): by default not entered in
    sys.modules; with `register`, entered there while it runs, and taken out again if it fails."""
    spec = EXTERNAL.spec_from_file_location(name, path, submodule_search_locations=search)
    if spec is None or spec.loader is None:
        raise ImportError("no module at %s" % path)
    module = BOOTSTRAP.module_from_spec(spec)
    if register:
        sys.modules[name] = module
    try:
        spec.loader.exec_module(module)
    except BaseException:
        if register:
            del sys.modules[name]
        raise
    return module


def start_agent(
    package: str, runtime: str, report: "Callable[[Dict[str, Any]], None]", threading_was_imported: bool
) -> None:
    """Import lu's package from `package` (its private copy) and start the agent; say how it went through
    `report`, which writes the injection's status file. Never raises."""
    compiled = finder = collector = None
    paused = False
    try:
        module = sys.modules.get("lu_payloads")
        if module is None:
            # lu's bytecode, and the standard library's where it has none, made away from the program's GIL
            # (startup.py says how); the finder serves this thread only, while it starts the agent
            try:
                startup = load(package + "/startup.py", "_lu_startup")
                compiled, finder = startup.prepare(package, runtime)
            except Exception:
                compiled = finder = None  # a way to start faster, never a reason not to start
            if finder is not None:
                sys.meta_path.insert(0, finder)
            # no collection examines what the start makes (collector.py says why and when not)
            try:
                collector = load(package + "/collector.py", "_lu_collector")
                paused = collector.pause()
            except Exception:
                paused = False
            module = load(package + "/__init__.py", "lu_payloads", search=[package], register=True)
        from lu_payloads import threadfix  # lazy: the package is in sys.modules only from here

        threadfix.fix_main_thread(threading_was_imported)
        was_running = module.running()  # imports the agent's modules: the last of the start's imports
        # the collector runs again before the agent listens: no client ever finds it paused
        paused = _resume_collector(collector, paused)
        report(
            {
                "ok": True,
                "socket": module.start(),
                "python": "%d.%d.%d" % sys.version_info[:3],
                "pid": os.getpid(),
                "was_running": was_running,
                "compiled": compiled,
            }
        )
    except BaseException as exc:
        try:
            report({"ok": False, "error": "%s: %s" % (type(exc).__name__, exc)})
        except BaseException:
            pass
    finally:
        if finder is not None:
            try:
                sys.meta_path.remove(finder)
            except ValueError:
                pass
        _resume_collector(collector, paused)


def _resume_collector(collector: "Optional[Any]", paused: bool) -> bool:
    """Hand back the collector paused for the start (if it was); returns the pause's new state, none."""
    if paused and collector is not None:
        try:
            collector.resume(paused)
        except Exception:
            gc.enable()  # never leave the program's collector off
    return False
