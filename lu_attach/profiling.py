"""Run a tool in a target for a while, or leave it in force: the logic behind `lu profile` and `lu debug`."""

from __future__ import annotations

import contextlib
import os
import re
import signal
import time
from typing import Any, Callable, Dict, Iterator, List, Optional

from .client import AgentClient
from .errors import AgentGone, LuAttachError, Stopped
from .runtime import process_gone, target_root
from .signals import signals_deferred as signals_deferred  # what lu_cli takes from here

# A dotted name (any letters Python allows in identifiers), a colon, line numbers and ranges.
_LINES_SPEC = re.compile(r"^(?P<func>[^\W\d][\w.]*):(?P<lines>\d+(?:-\d+)?(?:,\d+(?:-\d+)?)*)$")


def parse_line_numbers(text: str) -> List[int]:
    """'11,12,20-22' -> [11, 12, 20, 21, 22]."""
    numbers: List[int] = []
    for part in text.split(","):
        part = part.strip()
        if not re.match(r"^\d+(-\d+)?$", part):
            raise LuAttachError("line numbers look like 11,12 or 20-25, not %r" % text)
        if "-" in part:
            first, last = (int(x) for x in part.split("-"))
            if last < first or last - first > 10000:
                raise LuAttachError("bad line range %r" % part)
            numbers.extend(range(first, last + 1))
        else:
            numbers.append(int(part))
    return numbers


def parse_lines_option(specs: List[str]) -> Dict[str, List[int]]:
    """['mod.func:11,12'] -> {'mod.func': [11, 12]}."""
    result: Dict[str, List[int]] = {}
    for spec in specs:
        match = _LINES_SPEC.match(spec.strip())
        if not match:
            raise LuAttachError("--lines takes FUNC:L1,L2 (e.g. shop.Cart.total:12,13), not %r" % spec)
        result.setdefault(match.group("func"), []).extend(parse_line_numbers(match.group("lines")))
    return result


def host_path(pid: int, path: str) -> str:
    """A path inside the target, as the host can open it, also after the process exits when it can be.

    A target that sees the same file system as lu (the same mount namespace:
    no container, no private /tmp) gets the plain path: `/proc/PID/root/...` would stop working with the
    process, and the log outlives it.
    """
    root = target_root(pid)
    if path.startswith(root):
        return path
    try:
        if os.readlink("/proc/%d/ns/mnt" % pid) == os.readlink("/proc/self/ns/mnt"):
            return path  # the same mount namespace: its paths are ours
    except OSError:
        pass
    return root + path


def run_for(
    duration: float,
    client: AgentClient,
    pid: int,
    on_event: Optional[Callable[[dict], None]] = None,
    started: Optional[Callable[[], None]] = None,
) -> bool:
    """Wait `duration` seconds, handing streamed events to on_event. False if Ctrl-C cut it short.

    started() is called first, inside the span where Ctrl-C means "stop early": a command that says there
    that it runs (and how to stop it) ends as promised whenever the Ctrl-C that follows lands.
    """
    deadline = time.monotonic() + duration
    try:
        if started is not None:
            started()
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                return True
            if on_event is None:
                time.sleep(min(left, 0.25))
                if process_gone(pid):
                    raise LuAttachError("the target process %d exited" % pid)
                continue
            try:
                message = client.wait_event(min(left, 0.25))
            except AgentGone:
                if process_gone(pid):
                    raise LuAttachError("the target process %d exited" % pid)
                raise
            if message is not None:
                on_event(message.get("data") or {})
    except Stopped:
        raise  # killed: the caller reverts on the way out, and lu exits
    except KeyboardInterrupt:
        return False


@contextlib.contextmanager
def signals_held() -> Iterator[None]:
    """Ctrl-C, SIGTERM and SIGHUP wait until the block is done (the revert of a timed change)."""
    held = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
    old = {signum: signal.signal(signum, signal.SIG_IGN) for signum in held}
    try:
        yield
    finally:
        for signum, handler in old.items():
            signal.signal(signum, handler)


def revert_quietly(client: AgentClient, ids: List[int]) -> None:
    """Undo what a --duration command applied, even after Ctrl-C (a second one is held off)."""
    with signals_held():
        client.request("revert", ids=ids)


def clock_time(when: Any) -> str:
    """HH:MM:SS.mmm of a Unix time, the milliseconds rounded together with the seconds."""
    try:
        millis = round(float(when) * 1000)
    except (TypeError, ValueError, OverflowError):
        millis = 0
    seconds, millis = divmod(millis, 1000)
    try:
        return time.strftime("%H:%M:%S", time.localtime(seconds)) + ".%03d" % millis
    except (OverflowError, OSError, ValueError):
        return "??:??:??.???"


def format_event(event: dict, with_pid: bool = False) -> str:
    """One line for a streamed event: time, thread, kind, where, and what the tool that made it says.

    with_pid: the process it came from first (a tree's events interleave)."""
    stamp = clock_time(event.get("time", 0))
    if event.get("type") == "dropped" or event.get("kind") == "dropped":
        count = event.get("count")
        count_text = f"{count:,}" if isinstance(count, int) else "some"
        where = ("%s " % event.get("pid")) if with_pid else ""
        return "%s %s... %s events dropped here: %s" % (stamp, where, count_text, event.get("reason", "lost"))
    data = event.get("data") or {}
    kind = event.get("kind")
    where = "%s:%s" % (event.get("function"), event.get("line"))
    from lu_payloads.tools import TOOLS  # lazy: the tools and the engine under them cost lu report 90 ms of start-up

    describe = TOOLS.event_format(kind) if isinstance(kind, str) else None
    try:
        detail = describe(data) if describe is not None else str(data)
    except Exception:  # a malformed event from a target: show what it holds
        detail = str(data)
    thread = event.get("thread", "?")
    if with_pid:
        thread = "%s/%s" % (event.get("pid", "?"), thread)
    return "%s %s %s %s %s" % (stamp, thread, kind, where, detail)
