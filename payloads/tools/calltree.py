"""FuncProfiler's figures: hits and time of chosen functions, as a call tree per thread.

The engine weaves the timing into the profiled functions (engine/timer.py:
a thread-local lookup, two clock reads and a few list updates per call, never
a Python hook call and never a log line); this session keeps the trees the
engine gives each thread and turns them into `calls` records.

The tree holds instrumented functions only: a function called (directly or
not) from another instrumented function is its child. Recursion makes a
deeper path, so memory grows with distinct call paths, never with calls.

What is counted for generators and coroutines (engine/timer.py has the
rules): an awaited profiled coroutine sits under the coroutine that awaited
it; `total_ns` is the time running (its own slices between resumption and
suspension, plus the profiled calls it awaited), `wall_ns` the time from
first start to finish, awaits included. `hits` counts finished calls.

Calls that have not finished when a snapshot is taken (a request in
progress, a call stuck in C code, a coroutine awaiting) are counted apart:
`open` of them, `open_ns` their running time so far and `open_wall_ns` the
time since they started. They are not in `hits` or `total_ns`, so a later
snapshot that counts them finished adds nothing twice.

A call that was already running when the profile started goes on in the
code from before and never reaches the timer: a worker stuck in one long
call would show nothing at all. So when the profile starts, the threads'
stacks are read for frames of the profiled functions' earlier code; while
such a frame is still on its thread's stack, each snapshot shows it as not
finished (`open_before`), with the time since the profile started, a lower
bound. Suspended coroutines and greenlets are not on a thread's stack, and
are not found this way.

Which timer. Where it can, a session times its calls with lu's compiled
timer (engine/accel.py): one C call on entry and one on exit, the trees kept
in C and turned into the same node lists at each snapshot. It is chosen
when the profile applies, for the whole session, and only when every
profiled function is a plain function (generators and coroutines suspend and
resume, which the Python timer follows) and threads are not greenlets.
Otherwise, or when asked (`timer="python"`), the Python timer runs; the
update's description says which one (`lu ls`, reports), and `in_use` why.
"""

from __future__ import annotations

import os
import re
import sys
import threading
import time
import types
import zlib
from dataclasses import dataclass
from typing import Any, Callable, Dict, List, Optional, Protocol, TypeVar

from .. import osthreads
from ..engine import accel
from ..engine.source import KIND_FLAGS
from ..engine.timer import CHILDREN, HITS, PARENT, STARTED, TOTAL, WALL, CallTimer, CallTree, CompiledCalls, Node, merge
from ..errors import LuError

_COUNTER = re.compile(r"-\d+\b")
TIMERS = ("auto", "compiled", "python")  # what a profile may ask for; "auto" takes the compiled one where it can
GREENLETS = "greenlet-*"  # the pool of ended greenlets (gevent names each a Dummy-N thread, never ended)


@dataclass
class TimerChoice:
    """Which timer a session uses: the compiled timer's module (None: the Python timer), and what to say."""

    module: Optional[Any]
    kind: str  # "compiled timer" or "Python timer": for the update's description
    in_use: str  # the same with why, for the user who asked


def asked_for(wanted: str) -> str:
    """`wanted`, one of TIMERS (LuError otherwise: a session refuses it when it is made)."""
    if wanted not in TIMERS:
        raise LuError("the timer is one of %s, not %r" % (", ".join(TIMERS), wanted))
    return wanted


def choose_timer(wanted: str, per_greenlet: bool, what: str, python_because: str = "") -> TimerChoice:
    """The timer a session of `what` ("this profile", "these lines") gets; LuError when `wanted` cannot be.

    `python_because` is a reason of the session's own to time in Python ("" for none).
    """
    asked_for(wanted)
    module = None
    if wanted == "python":
        why = "as asked"
    elif per_greenlet:
        why = "under gevent or eventlet each greenlet has its own figures, which only the Python timer keeps"
    else:
        why = python_because
        if not why:
            module, why = accel.compiled()
    if module is not None:
        return TimerChoice(module, "compiled timer", "compiled timer")
    if wanted == "compiled":
        raise LuError("the compiled timer cannot time %s: %s" % (what, why))
    return TimerChoice(None, "Python timer", "Python timer, as asked" if wanted == "python" else "Python timer: " + why)


Kept = TypeVar("Kept")


class KeepsThreads(Protocol[Kept]):
    threads: List[Kept]


def take_ended(
    session: KeepsThreads[Kept], lock: Any, ended: Callable[[Kept], bool], taken: Callable[[Kept], bool]
) -> List[Kept]:
    """Remove from `session.threads` what belongs to threads that ended and could be taken now; return it.

    `taken` runs outside the lock: taking a thread's figures out of the
    compiled timer makes Python objects, and a collection meanwhile may run
    profiled code that starts another thread's figures (which takes the lock).
    What cannot be taken now stays for a later snapshot.
    """
    with lock:
        found = [item for item in session.threads if ended(item)]
    found = [item for item in found if taken(item)]
    if found:
        with lock:
            session.threads = [item for item in session.threads if item not in found]
    return found


def pooled_name(name: str) -> str:
    """'Thread-1022 (process_request_thread)' -> 'Thread-* (process_request_thread)'."""
    return _COUNTER.sub("-*", name)


def pool_ident(name: str) -> int:
    """A stable negative id for the pool of ended threads of one name."""
    return -(zlib.crc32(name.encode()) + 1)


@dataclass
class RunningBefore:
    """The calls of profiled functions one thread was in when the profile started, outermost first."""

    frames: List[types.FrameType]
    names: List[str]
    since: float  # when the profile started (the timer's clock)


class CallTreeSession(CallTimer):
    """The call trees of one FuncProfiler update (a CallTimer the engine weaves in)."""

    def __init__(self, timer: str = "auto") -> None:
        super().__init__()
        self.wanted = asked_for(timer)
        self.c_timer: Optional[Any] = None  # the compiled timer's CallTimer, when it keeps the trees
        self.session: Optional[int] = None  # the update id, set once applied
        self.threads: List[CallTree] = []
        self.finished: Dict[str, CallTree] = {}  # pooled thread name -> tree of the threads of that name that ended
        self._threads_lock = osthreads.Lock()
        self.running_before: Dict[int, RunningBefore] = {}  # thread ident -> its calls from before the profile

    def resolved(self, functions: List[types.FunctionType]) -> None:
        """Choose the timer, once, before the first function is woven (see the module docstring)."""
        if self.kind:
            return
        suspendable = [func.__qualname__ for func in functions if func.__code__.co_flags & KIND_FLAGS]
        because = "generators and coroutines (%s) are timed in Python" % suspendable[0] if suspendable else ""
        choice = choose_timer(self.wanted, self.per_greenlet, "this profile", because)
        self.kind, self.in_use = choice.kind, choice.in_use
        if choice.module is not None:
            self.c_timer = choice.module.CallTimer(self._thread_started)
            self.compiled = CompiledCalls(self.c_timer.enter, self.c_timer.leave)
            self.clock = choice.module.clock  # the C timer's own clock: open calls and running_before compare with it

    def _thread_started(self, serial: int) -> None:
        """The compiled timer meets a thread for the first time: give it a tree to report under."""
        tree = CallTree()
        tree.serial = serial
        self.tree_started(tree)

    def _refresh(self) -> None:
        """Read the compiled timer's trees into the threads' node lists (a snapshot's moment)."""
        if self.c_timer is None:
            return
        for tree in list(self.threads):
            if tree.serial is not None:
                got = self.c_timer.tree(tree.serial)
                if got is not None:
                    tree.root, tree.node = got

    def _taken(self, tree: CallTree) -> bool:
        """An ended thread's tree out of the compiled timer (its C nodes freed); False: not now, keep it."""
        if self.c_timer is None or tree.serial is None:
            return True
        root = self.c_timer.take(tree.serial)
        if root is None:
            return False
        tree.root = tree.node = root
        return True

    def note_running_before(self) -> None:
        """Find the calls of the profiled functions that threads are in now (just after the profile applied)."""
        now = self.clock()
        me = threading.get_ident()
        for ident, top in sys._current_frames().items():
            if ident == me:
                continue
            frames: List[types.FrameType] = []
            names: List[str] = []
            frame: Optional[types.FrameType] = top
            while frame is not None:
                info = self.earlier_codes.get(frame.f_code)
                if info is not None:
                    frames.append(frame)
                    names.append(info.name)
                frame = frame.f_back
            if frames:
                frames.reverse()
                names.reverse()
                self.running_before[ident] = RunningBefore(frames, names, now)
            del frame, top

    def _still_running_before(self) -> Dict[int, RunningBefore]:
        """The calls from before the profile still on their threads' stacks (the others are let go)."""
        if not self.running_before:
            return {}
        stacks = sys._current_frames()
        still: Dict[int, RunningBefore] = {}
        for ident, before in list(self.running_before.items()):
            on_stack = set()
            frame: Optional[types.FrameType] = stacks.get(ident)
            while frame is not None:
                on_stack.add(id(frame))
                frame = frame.f_back
            kept = 0
            while kept < len(before.frames) and id(before.frames[kept]) in on_stack:
                kept += 1  # an outer call cannot have finished while an inner one runs
            if kept:
                still[ident] = RunningBefore(before.frames[:kept], before.names[:kept], before.since)
                self.running_before[ident] = still[ident]
            else:
                del self.running_before[ident]
        del stacks
        return still

    def tree_started(self, tree: CallTree) -> None:
        with self._threads_lock:
            self.threads.append(tree)

    def fold_finished(self) -> None:
        """Merge the trees of threads that ended into one tree per pooled thread name.

        A server that runs each request on a new thread would otherwise keep
        (and write) one tree per request: memory must grow with distinct call
        paths, not with calls or threads.
        """
        ended = take_ended(self, self._threads_lock, CallTree.ended, self._taken)
        for tree in ended:
            name = GREENLETS if tree.greenlet is not None else pooled_name(tree.name)
            pool = self.finished.get(name)
            if pool is None:
                pool = self.finished[name] = CallTree(tree.thread, name)
                pool.ident = pool_ident(name)
                pool.thread = None
            merge(pool.root, tree.root)

    def open_calls(self) -> Dict[int, List[float]]:
        """{id(node): [calls, running_s, wall_s]} of the calls started and not finished, now.

        A plain function's open calls are the nodes from its thread's current
        node up to the root; a generator's or coroutine's are its Activations.
        """
        now = self.clock()
        found: Dict[int, List[float]] = {}
        activations = list(self.running)
        suspendable = {id(act.node) for act in activations}
        for act in activations:
            entry = found.setdefault(id(act.node), [0, 0.0, 0.0])
            entry[0] += 1
            entry[1] += act.running_so_far(now)
            entry[2] += max(0.0, now - act.first)
        for tree in list(self.threads):
            node: Optional[Node] = tree.node
            while node is not None and node is not tree.root:
                if id(node) not in suspendable:
                    elapsed = max(0.0, now - node[STARTED])
                    entry = found.setdefault(id(node), [0, 0.0, 0.0])
                    entry[0] += 1
                    entry[1] += elapsed
                    entry[2] += elapsed
                node = node[PARENT]
        return found

    def snapshot(self) -> List[Dict[str, Any]]:
        """One `calls` record per live thread that ran an instrumented function, and per pool of ended ones."""
        self.fold_finished()
        self._refresh()
        names = _thread_names()
        unfinished = self.open_calls()
        before = self._still_running_before()
        now = self.clock()
        records = []
        trees = list(self.threads) + list(self.finished.values())
        idents = {tree.ident for tree in trees}
        for ident in before:
            if ident not in idents:  # a thread that only runs calls from before the profile
                tree = CallTree(name=names.get(ident, "thread %d" % ident))
                tree.ident, tree.thread = ident, None
                trees.append(tree)
        for tree in trees:
            # Pre-order, each node naming its parent by index: linear in the
            # number of nodes even for deep recursion (full paths would be quadratic).
            nodes: List[Dict[str, Any]] = []
            stack = [(-1, tree.root)]
            while stack:
                parent_index, node = stack.pop()
                for info, child in list(node[CHILDREN].items()):
                    index = len(nodes)
                    entry: Dict[str, Any] = {
                        "function": info.name,
                        "parent": parent_index,
                        "hits": child[HITS],
                        "total_ns": int(child[TOTAL] * 1e9),
                    }
                    if child[WALL]:
                        entry["wall_ns"] = int(child[WALL] * 1e9)
                    still = unfinished.get(id(child))
                    if still is not None:
                        entry["open"] = int(still[0])
                        entry["open_ns"] = int(still[1] * 1e9)
                        entry["open_wall_ns"] = int(still[2] * 1e9)
                    nodes.append(entry)
                    stack.append((index, child))
            running = before.get(tree.ident) if tree.ident is not None else None
            if running is not None:
                _graft(nodes, running.names, int(max(0.0, now - running.since) * 1e9))
            if nodes:
                records.append(
                    {
                        "lu": 1,
                        "type": "calls",
                        "pid": os.getpid(),
                        "session": str(self.session),
                        "thread": names.get(tree.ident, tree.name),
                        "thread_id": tree.ident,
                        "time": time.time(),
                        "nodes": nodes,
                    }
                )
        return records


def _graft(nodes: List[Dict[str, Any]], path: List[str], so_far_ns: int) -> None:
    """Add calls from before the profile, outermost first, as not finished at their path in `nodes`.

    A node's parent comes before it in the list, as the log's readers need.
    """
    parent = -1
    for name in path:
        index = next((i for i, n in enumerate(nodes) if n["parent"] == parent and n["function"] == name), None)
        if index is None:
            index = len(nodes)
            nodes.append({"function": name, "parent": parent, "hits": 0, "total_ns": 0})
        node = nodes[index]
        for key, value in (("open", 1), ("open_ns", so_far_ns), ("open_wall_ns", so_far_ns), ("open_before", 1)):
            node[key] = node.get(key, 0) + value
        parent = index


def _thread_names() -> Dict[Optional[int], str]:
    registry: Any = threading  # its private table of threads, which the stubs do not declare
    try:
        return {ident: thread.name for ident, thread in list(registry._active.items())}
    except Exception:
        return {}
