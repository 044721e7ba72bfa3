"""The agent's start, as the injected bootstrap hands it over once it holds its claim.

The bootstrap (lu_attach/staging.py) is compiled in the target on every
injection: one call that holds the GIL while the program's threads wait for
it, for as long as its code is long. So it is kept to what must come before
any of lu's files can be read (its claim, its expiry, lu's private copy when
that is missing) and this module does the rest (`bootstrap`): the switch
interval, the agent's door (door.py), the status, and what loads the agent
when the first client connects. It is loaded by its path from that copy,
where its bytecode is written once per Python version, so an injection
unmarshals it instead of compiling it.

An injection runs this module and the door's three (door.py, unpatched.py,
paths.py), each loaded by its path: lu's package, startup.py's check of
lu's bytecode and threading wait for the first knock, in the door's thread.
Everything lu's thread runs, the program's threads wait for (bench/README.md
has the figures), and most injected processes are knocked on once, if ever.

Like startup.py and collector.py it is loaded before lu's package is
imported, not entered in sys.modules, and imports only what every program has
at module level.
"""

import gc
import os
import sys
import time  # (built in, and imported by the bootstrap already)

TYPE_CHECKING = False  # (and no `from __future__ import annotations`: importing __future__ would compile it)
if TYPE_CHECKING:
    from typing import Any, Callable, Dict, List, Optional, Tuple

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


def bootstrap(
    runtime: str,
    nonce: str,
    package: str,
    threading_was_imported: bool,
    switch_interval: float,
    began: float,
) -> None:
    """What the injected bootstrap hands over once it holds its claim: the agent's door opened
    (start_agent) at the short switch interval, and the status written. Never raises."""
    with ShortSwitchInterval(switch_interval):
        start_agent(package, runtime, status_writer(runtime, nonce), threading_was_imported, switch_interval, began)


def status_writer(runtime: str, nonce: str) -> "Callable[[str], None]":
    """What writes the injection's status (JSON text) where lu reads it: whole or not at all (written
    aside, then renamed), never through a link someone put in its place."""
    status = runtime + "/inject-" + nonce + ".status"

    def report(text: str) -> None:
        fd = os.open(status + ".tmp", os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
        try:
            # bytes through the descriptor: a text file object would cost 0.2 ms of Python and C holding the
            # GIL (its codec looked up, its buffers made) for a few hundred bytes
            data = text.encode("utf-8")
            while data:
                data = data[os.write(fd, data) :]
        finally:
            os.close(fd)
        os.replace(status + ".tmp", status)

    return report


class ShortSwitchInterval:
    """The switch interval shortened to at most `seconds` while lu's code runs in the program, then the
    program's put back (unless the program changed it meanwhile).

    Starting the agent (imports, mostly) holds the GIL in stretches of up to the switch interval (5 ms by
    default) while the program's threads wait for it: a shorter one makes them wait less, and gets lu's
    thread the GIL back soon after each of its reads."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self.program = self.short = 0.0

    def __enter__(self) -> "ShortSwitchInterval":
        self.program = sys.getswitchinterval()
        sys.setswitchinterval(min(self.program, self.seconds))
        self.short = sys.getswitchinterval()  # as the interpreter holds it (whole microseconds), to compare
        return self

    def __exit__(self, *exc: object) -> None:
        if sys.getswitchinterval() == self.short:
            sys.setswitchinterval(self.program)


def start_agent(
    package: str,
    runtime: str,
    report: "Callable[[str], None]",
    threading_was_imported: bool,
    switch_interval: float = 0.0001,
    began: "Optional[float]" = None,
) -> None:
    """Open the agent's door (door.py, loaded from `package`, lu's private copy: the agent itself, and lu's
    package, load when the first client connects); say how it went through `report`, which writes the
    injection's status file, with when the bootstrap `began` and ended (CLOCK_MONOTONIC, the host's clock
    too: what of an injection's time the target spent running it). Never raises."""
    compiled = None
    try:
        module = sys.modules.get("lu_payloads")
        if module is None:
            compiled = bytecode_for_the_door(package, runtime)
            door = sys.modules.get("lu_payloads.door")  # (an earlier injection's, nobody knocked yet)
            if door is None:
                door = load(package + "/door.py", "lu_payloads.door", register=True)
            was_running = door.current() is not None
            socket = door.open_door(agent_loader(package, runtime, switch_interval, fresh=True))
        else:  # lu's package, loaded by an earlier injection's first client, or the program's own
            was_running = module.running()  # (imports nothing)
            listen = getattr(module, "listen", None)  # (a program's own lu_payloads may predate the door)
            socket = listen(agent_loader(package, runtime, switch_interval, fresh=False)) if listen else module.start()
            if not threading_was_imported and "threading" in sys.modules:
                fix_main_thread(package)
        report(
            as_json(
                {
                    "ok": True,
                    "socket": socket,
                    "python": "%d.%d.%d" % sys.version_info[:3],
                    "pid": os.getpid(),
                    "was_running": was_running,
                    "compiled": compiled,
                    "began": began,
                    "ended": time.monotonic(),
                }
            )
        )
    except BaseException as exc:
        try:
            report(as_json({"ok": False, "error": "%s: %s" % (type(exc).__name__, exc), "began": began}))
        except BaseException:
            pass


def bytecode_for_the_door(package: str, runtime: str) -> "Optional[Dict[str, Any]]":
    """startup.py's step (lu's bytecode made away from the program's GIL) now, when the door has no
    bytecode for this Python: the first injection of this copy of lu with it, or one into a program that
    writes none. Else it waits for the first knock, with the rest of the agent's start. Returns what was
    compiled, for lu's report."""
    if os.path.exists(EXTERNAL.cache_from_source(package + "/door.py")):
        return None
    return prepare_bytecode(package, runtime)[0]


def prepare_bytecode(package: str, runtime: str) -> "Tuple[Optional[Dict[str, Any]], Optional[Any]]":
    """startup.py's step, wherever it runs: lu's bytecode made where it is missing, and the standard
    library's kept aside. Returns what was compiled (for lu's report) and the finder of what is aside
    (startup.prepare says which); (None, None) if the step failed: a way to start faster, never a reason
    not to start."""
    try:
        return load(package + "/startup.py", "_lu_startup").prepare(package, runtime)
    except Exception:
        return None, None


def fix_main_thread(package: str) -> None:
    """threading imported (by threadfix) from lu's thread, and its record of the main thread put right
    (threadfix.py says why), with threadfix from lu's copy (a program's own lu_payloads may have none)."""
    load(package + "/threadfix.py", "_lu_threadfix").fix_main_thread(False)


def agent_loader(package: str, runtime: str, switch_interval: float, fresh: bool) -> "Callable[[Any, Any], None]":
    """What loads the agent when its door is knocked on, in the door's thread: lu's package from `package`
    (its private copy) if this injection found none (`fresh`) and none was loaded since, with lu's bytecode
    made and the standard library's kept aside (startup.py), and the collector paused while it imports;
    and with the switch interval the bootstrap sets while it runs (`switch_interval`), for the same
    reasons: the program's threads get their turns while the agent imports, and the load gets the GIL back
    soon after each of its reads."""

    def load_agent(listening: "Any", first: "Any") -> None:
        collector = finder = None
        paused = False
        try:
            with ShortSwitchInterval(switch_interval):
                load_package = fresh and "lu_payloads" not in sys.modules
                if load_package:
                    finder = prepare_bytecode(package, runtime)[1]
                    _put_first(finder)
                    # no collection examines what the start makes (collector.py says why and when not)
                    try:
                        collector = load(package + "/collector.py", "_lu_collector")
                        paused = collector.pause()
                    except Exception:
                        paused = False
                if "threading" not in sys.modules:  # (lu imports it now, from a thread that is not the main one)
                    fix_main_thread(package)
                if load_package:
                    module = load(package + "/__init__.py", "lu_payloads", search=[package], register=True)
                    door = sys.modules.get("lu_payloads.door")
                    if door is not None:  # (the import system names a submodule on its package as it imports
                        module.door = door  # it; the door was loaded before its package)
                from lu_payloads import service  # lazy: the agent's modules, all of them: the start's imports

                # the collector runs again before the agent serves: no client ever finds it paused
                paused = _resume_collector(collector, paused)
                service.start(listening, first)
        finally:
            _take_out(finder)
            _resume_collector(collector, paused)

    return load_agent


def _put_first(finder: "Optional[Any]") -> None:
    """The finder of the standard library's bytecode kept aside first on sys.meta_path while the agent
    imports (for this thread alone: it serves the agent's start and is taken out after)."""
    if finder is not None:
        sys.meta_path.insert(0, finder)


def _take_out(finder: "Optional[Any]") -> None:
    if finder is not None:
        try:
            sys.meta_path.remove(finder)
        except ValueError:
            pass


def _resume_collector(collector: "Optional[Any]", paused: bool) -> bool:
    """Hand back the collector paused for the start (if it was); returns the pause's new state, none."""
    if paused and collector is not None:
        try:
            collector.resume(paused)
        except Exception:
            gc.enable()  # never leave the program's collector off
    return False


_ESCAPES = {'"': '\\"', "\\": "\\\\", "\n": "\\n", "\r": "\\r", "\t": "\\t"}


def as_json(value: "Any") -> str:
    """The status as JSON text, without the json module: importing that costs a program that never did a
    few milliseconds of Python (it compiles regular expressions), and the status needs dicts, lists,
    strings, numbers, booleans and None only."""
    if value is None:
        return "null"
    if value is True or value is False:
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, str):
        return '"' + "".join(_json_char(c) for c in value) + '"'
    if isinstance(value, dict):
        return "{" + ", ".join(as_json(str(key)) + ": " + as_json(item) for key, item in value.items()) + "}"
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(as_json(item) for item in value) + "]"
    return as_json(repr(value))


def _json_char(c: str) -> str:
    """One character of a JSON string: quotes and backslashes escaped, control characters and lone
    surrogates (from undecodable file names) as \\u escapes, anything else as itself."""
    escaped = _ESCAPES.get(c)
    if escaped is not None:
        return escaped
    return c if " " <= c < "\ud800" or c > "\udfff" else "\\u%04x" % ord(c)
