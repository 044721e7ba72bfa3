"""Run the controller's statements inside the target and send back what they print.

The program's own threads keep writing to its stdout while a client types, so
lu never swaps `sys.stdout` for a capture buffer outright (pyrasite does, and
the program's output then lands in the client). Instead a thin router is put in
front of the program's streams once: writes from a thread that is running a
controller statement go to that statement's buffer, every other write goes
straight to the stream the program had. The router is removed when the agent
stops, if nobody replaced it meanwhile.

A router is never freed once made: CPython's print() holds only a borrowed
reference to sys.stdout, so a thread in the middle of a print would use a freed
router if lu dropped the last reference when it puts the program's stream
back. So there is one router per stream for the life of the process, taken
up again by the next agent.

A statement that runs too long can be interrupted from another connection
(the controller's Ctrl-C): KeyboardInterrupt is raised asynchronously in the
agent thread that runs it, never in any other thread, and never while that
thread is inside lu's own code (an update half-applied would hurt the
program); it is asked for at most once per statement, and a request not yet
delivered when the statement ends is withdrawn, so it cannot land in the
agent's own work afterwards.
"""

from __future__ import annotations

import builtins
import inspect
import io
import sys
import time
import traceback
from typing import Any, Dict, Iterable, List, Mapping, Optional, Set, TextIO

from . import forks, osthreads
from .engine.progress import Watch, watching
from .errors import LuError

_captures: Dict[int, io.StringIO] = {}  # thread ident -> the buffer of the statement it runs
_installed: Dict[str, _Router] = {}  # stream name -> the router this agent put in front of it
_routers: Dict[str, _Router] = {}  # stream name -> its router, kept alive for good (see the module docstring)
_install_lock = osthreads.Lock()
_statements: Dict[str, _Statement] = {}  # token -> a statement that may be interrupted, while it runs
_statements_lock = osthreads.Lock()
_PACKAGE = __name__.split(".")[0]  # lu_payloads: frames of this package are never interrupted
SHIELD_WAIT = 1.0  # how long an interrupt waits for a statement to leave lu's own code


class _Router:
    def __init__(self, original: TextIO, name: str) -> None:
        self._lu_original = original
        self._lu_name = name

    def write(self, text: str) -> int:
        buffer = _captures.get(osthreads.get_ident())
        if buffer is not None:
            return buffer.write(text)
        return self._lu_original.write(text)

    def writelines(self, lines: Iterable[str]) -> None:
        for line in lines:
            self.write(line)

    def flush(self) -> None:
        if osthreads.get_ident() in _captures:
            return None
        return self._lu_original.flush()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._lu_original, name)


def _after_fork_in_child(parent_pid: int) -> None:
    """A statement the controller ran forked: the child's output is the child's own again."""
    global _install_lock, _statements_lock
    _install_lock = osthreads.Lock()
    _statements_lock = osthreads.Lock()
    _captures.clear()
    _statements.clear()  # the parent's client interrupts the parent's statement, not this copy of it


forks.in_child(forks.Stage.AGENT, _after_fork_in_child)


def install_capture() -> None:
    with _install_lock:
        for name in ("stdout", "stderr"):
            current = getattr(sys, name)
            if isinstance(current, _Router):
                continue
            router = _routers.get(name)
            if router is None:
                router = _routers[name] = _Router(current, name)
            router._lu_original = current
            _installed[name] = router
            setattr(sys, name, router)


def uninstall_capture() -> None:
    with _install_lock:
        for name, router in list(_installed.items()):
            if getattr(sys, name) is router:
                setattr(sys, name, router._lu_original)
            del _installed[name]


class _Statement:
    """A statement that a client may interrupt: the thread that runs it, and whether it was asked to stop."""

    def __init__(self, token: str, ident: int) -> None:
        self.token = token
        self.ident = ident
        self.interrupted = False
        self.cancel_asked = False  # interrupted inside lu's code: an update being prepared stops (progress.Watch)
        self.cancel_taken = False  # ...and one did: it ends the statement with its error

    def cancelled(self) -> bool:
        """The Watch's question: should the update being prepared stop? (Noted when the answer is yes.)"""
        if self.cancel_asked:
            self.cancel_taken = True
        return self.cancel_asked


def run(
    source: str, namespace: Dict[str, Any], filename: str = "<lu>", token: Optional[str] = None
) -> Dict[str, Optional[str]]:
    """Execute controller input; return {'output': text, 'error': text or None}.

    With a token, interrupt(token) from another connection stops the
    statement with KeyboardInterrupt while it runs. Such an interrupt is
    delivered at most once, at some point before _settle() withdraws it, so
    the two handlers below see it wherever in this function it lands.
    """
    if token is not None and (not isinstance(token, str) or not token):
        raise LuError("a statement's token is a non-empty string")
    install_capture()
    buffer = io.StringIO()
    ident = osthreads.get_ident()
    _captures[ident] = buffer
    statement = _Statement(token, ident) if token else None
    try:
        try:
            try:
                error = _execute(source, namespace, filename, statement)
            except KeyboardInterrupt:  # landed in lu's code around the statement's own
                error = "KeyboardInterrupt"
            _settle(statement)
        except KeyboardInterrupt:  # landed on the way into _settle, which had not run yet
            error = "KeyboardInterrupt"
            _settle(statement)
    finally:
        _captures.pop(ident, None)
    return {"output": buffer.getvalue(), "error": error}


def _execute(source: str, namespace: Dict[str, Any], filename: str, statement: Optional[_Statement]) -> Optional[str]:
    """Compile and run the statement; the error text to show, or None."""
    try:
        code = compile(source, filename, "single")
    except SyntaxError:
        try:
            code = compile(source, filename, "exec")
        except SyntaxError as exc:
            return "".join(traceback.format_exception_only(type(exc), exc)).strip()
    previous_hook = sys.displayhook
    watch = Watch()
    if statement is not None:
        _begin(statement)
        watch = Watch(cancelled=statement.cancelled)
    try:
        with watching(watch):
            exec(code, namespace)
    except SystemExit:
        return "SystemExit ignored: the controller does not end the target"
    except BaseException as exc:
        tb = exc.__traceback__
        # Drop our own frame so the user sees only their statement's traceback.
        if tb is not None and tb.tb_next is not None:
            tb = tb.tb_next
        return "".join(traceback.format_exception(type(exc), exc, tb)).rstrip()
    finally:
        sys.displayhook = previous_hook
    return None


def _begin(statement: _Statement) -> None:
    with _statements_lock:
        if statement.token in _statements:
            raise LuError("a statement with this token is already running")
        _statements[statement.token] = statement


def _settle(statement: Optional[_Statement]) -> None:
    """The statement is over: no interrupt can be asked for any more, and one not yet delivered is withdrawn."""
    if statement is None:
        return
    with _statements_lock:
        if _statements.get(statement.token) is statement:
            del _statements[statement.token]
        if statement.interrupted:
            _set_async_exc(statement.ident, None)


def interrupt(token: str) -> str:
    """Ask the statement run under `token` to stop with KeyboardInterrupt; what became of the request.

    'sent': asked now; it stops at its next Python instruction (a blocking
    call, such as a sleep, first returns). 'pending': asked before.
    'finished': no statement runs under that token. 'busy': it stayed in
    lu's own code, which is never cut short, for SHIELD_WAIT seconds; ask
    again. An update the statement is preparing meanwhile is cancelled
    (before anything applies), and the statement ends with that error.
    'unsupported': this Python cannot raise in another thread.
    """
    if not isinstance(token, str) or not token:
        raise LuError("interrupt takes the token its statement was sent with")
    deadline = time.monotonic() + SHIELD_WAIT
    while True:
        with _statements_lock:
            statement = _statements.get(token)
            if statement is None:
                return "finished"
            if statement.interrupted:
                return "pending"
            if not _in_lu_code(statement.ident):
                if statement.cancel_taken:  # it left lu's code with the cancel's error: not to be overtaken
                    return "pending"
                if not _set_async_exc(statement.ident, KeyboardInterrupt):
                    return "unsupported"
                statement.interrupted = True
                return "sent"
            statement.cancel_asked = True  # an update it prepares stops, with nothing applied
        if time.monotonic() >= deadline:
            return "busy"
        osthreads.sleep(0.01)


def _in_lu_code(ident: int) -> bool:
    """True when the thread is, below its statement, inside lu's own code (an update, a write, a hook)."""
    frame = sys._current_frames().get(ident)
    while frame is not None and frame.f_code is not _execute.__code__:
        name = frame.f_globals.get("__name__")
        if isinstance(name, str) and (name == _PACKAGE or name.startswith(_PACKAGE + ".")):
            return True
        frame = frame.f_back
    return False


def _set_async_exc(ident: int, exc: Optional[type]) -> bool:
    """Raise exc in the thread at its next instruction (None withdraws a request); False if Python cannot."""
    try:
        import ctypes  # lazy: loaded into the target only when a statement is interrupted

        set_async_exc = ctypes.pythonapi.PyThreadState_SetAsyncExc
        target = ctypes.c_ulong(ident)
        changed = set_async_exc(target, ctypes.py_object(exc)) if exc is not None else set_async_exc(target, None)
    except (ImportError, AttributeError, OSError, TypeError):
        return False
    return exc is None or changed == 1


def complete(expression: str, namespace: Mapping[str, Any]) -> List[str]:
    """Names that can follow `expression` (a dotted name prefix), without calling anything.

    `os.pa` gives the attributes of `os` that start with `pa`; a bare prefix
    gives the namespace's and builtins' names. Properties are not evaluated:
    attributes are listed with dir() and only plain objects are descended.
    """
    parts = expression.split(".")
    prefix = parts[-1]
    if len(parts) == 1:
        known = set(namespace) | set(dir(builtins))
        return sorted(n for n in known if n.startswith(prefix))
    head = parts[0]
    obj: Any
    if head in namespace:
        obj = namespace[head]
    elif hasattr(builtins, head):
        obj = getattr(builtins, head)
    elif head in sys.modules:
        obj = sys.modules[head]
    else:
        return []
    for name in parts[1:-1]:
        try:
            attr = _static_attr(obj, name)
        except AttributeError:
            return []
        obj = attr
    try:
        names = dir(obj)
    except Exception:
        return []
    return sorted(n for n in names if n.startswith(prefix) and (prefix.startswith("_") or not n.startswith("_")))


def _static_attr(obj: Any, name: str) -> Any:
    value = inspect.getattr_static(obj, name)
    if isinstance(value, (property,)) or type(value).__name__ in ("getset_descriptor", "member_descriptor"):
        raise AttributeError(name)
    if isinstance(value, (staticmethod, classmethod)):
        return value.__func__
    return value


def module_paths(prefix: str) -> List[str]:
    """Dotted names of loaded modules, and their functions/classes, that start with prefix.

    Used to complete patterns such as 'shop.Cart.to' in tool calls.
    """
    parts = prefix.split(".")
    results: Set[str] = set()
    for name in list(sys.modules):
        if name.startswith(prefix):
            results.add(name)
    for split in range(len(parts) - 1, 0, -1):
        module = sys.modules.get(".".join(parts[:split]))
        if module is None:
            continue
        obj: Any = module
        ok = True
        for part in parts[split:-1]:
            try:
                obj = inspect.getattr_static(obj, part)
            except AttributeError:
                ok = False
                break
        if not ok:
            break
        base = ".".join(parts[:-1])
        try:
            names = list(vars(obj))
        except TypeError:
            names = []
        for attr in names:
            if attr.startswith(parts[-1]) and not attr.startswith("__"):
                results.add(base + "." + attr)
        break
    return sorted(results)[:500]
