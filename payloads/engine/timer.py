"""The call-tree timer: the one kind of hook the engine writes into a function itself.

Timing a call with a Python hook costs two hook calls per call. For a
FuncProfiler-like tool the engine instead weaves the timing into the
function's own code (`Points.timers`, the PyLiveUpdate spelling
`{'func_timer': timer}`): on entry a thread-local lookup and a dict lookup
find the call's node in the thread's call tree, on exit a `finally` adds the
elapsed time.

The engine owns the data layout, because the woven code reads and writes it:

    node = [hits, total_s, children, info, parent, started_s, wall_s]
    (HITS, TOTAL, CHILDREN, INFO, PARENT, STARTED, WALL index it)

where `children` maps a FuncInfo to its child node and `parent` is the
node one level up (None for a tree's root). A `CallTree` is one thread's
tree, with `node` its current position; `CallTimer.local.tree` is the
calling thread's. Each thread writes only its own tree, so there is no
read-modify-write race between threads; readers (a tool's snapshots) only
read. A tool subclasses CallTimer to keep the trees it is given
(`tree_started`) and to report them.

Generators and coroutines leave and re-enter their body, so each call of
one is an `Activation` (the woven code keeps it in a local) and the timer's
`start/pause/unpause/finish` hooks run at entry, around every yield and
await, and at the end:

- *Where it sits.* A call's node is fixed when it starts, under the node
  current then. An `await` (or `yield from`) of a profiled coroutine or
  generator is a delegation: the awaiting call stays current, so the
  awaited one starts under it, and its running time is added to the
  awaiter's when it finishes. Any other await or yield is a suspension: the
  thread's current node goes back to whoever resumed the chain of awaits
  (the event loop's position, usually the tree's root), so what the thread
  runs meanwhile is not put under a suspended call.
- *What is counted.* `TOTAL` is the time running: each slice from start or
  resumption to the next suspension, plus the running time of the profiled
  calls it awaited. An await of something lu does not profile counts as
  waiting, as does the time spent suspended. `WALL` is the time from first
  start to finish, awaits included: what a caller waits for.
- *Calls that have not finished* are in `running` until they finish, so a
  snapshot can show them with their time so far.

Exceptions thrown into a suspended call (a cancelled task, a closed
generator) resume it without `unpause`: the hooks notice and count that
resumption from the moment they see it.

Green threads. Under gevent or eventlet `threading.local` is per greenlet,
so each greenlet (a request, usually) gets a tree of its own. Its thread
object is a placeholder that never ends, and its ident is reused once the
greenlet is gone, so such a tree holds a weak reference to its greenlet and
ends with it (`CallTree.ended`); a tool then folds it into the trees of
ended ones, as it does for threads.
"""

from __future__ import annotations

import sys
import threading
import time
import types
import weakref
from typing import Any, Callable, Dict, List, NamedTuple, Optional, Set, Tuple

HITS, TOTAL, CHILDREN, INFO, PARENT, STARTED, WALL = range(7)
Node = List[Any]  # [hits, total_s, children, info, parent, started_s, wall_s]

RUNNING, DELEGATING, PAUSED = range(3)  # an Activation's state
_COROUTINE = types.CoroutineType
_GENERATOR = types.GeneratorType
_ASYNC_GENERATOR = types.AsyncGeneratorType


def new_node(info: Any, parent: Optional[Node]) -> Node:
    return [0, 0.0, {}, info, parent, 0.0, 0.0]


class CallTree:
    """One thread's (or greenlet's) call tree, its current node, and the call awaiting a profiled call, if any."""

    __slots__ = ("awaiting", "greenlet", "ident", "name", "node", "root", "serial", "thread")

    def __init__(
        self,
        thread: Optional[threading.Thread] = None,
        name: Optional[str] = None,
        greenlet: Optional[Callable[[], Any]] = None,
    ) -> None:
        thread = thread or threading.current_thread()
        self.thread: Optional[threading.Thread] = thread
        self.ident: Optional[int] = thread.ident
        self.name: str = name or thread.name
        self.greenlet = greenlet  # a weak reference to the greenlet the tree is of, when it is one's
        self.root: Node = new_node(None, None)
        self.node: Node = self.root
        self.awaiting: Optional[Activation] = None
        self.serial: Optional[int] = None  # the thread's number in the compiled timer, when that one keeps the tree

    def ended(self) -> bool:
        """Whether its thread or greenlet has finished (nothing more will be added to it)."""
        return has_ended(self.thread, self.greenlet)


def has_ended(thread: Optional[threading.Thread], greenlet: Optional[Callable[[], Any]]) -> bool:
    """Whether a thread, or the greenlet a weak reference is to when there is one, has finished."""
    if greenlet is not None:
        green = greenlet()
        return green is None or bool(getattr(green, "dead", True))
    return thread is not None and not thread.is_alive()


def running_greenlet() -> Optional[Callable[[], Any]]:
    """A weak reference to the greenlet running now, unless it is its thread's main one (or none runs)."""
    module = sys.modules.get("greenlet")
    if module is None:
        return None
    try:
        current = module.getcurrent()
        if current.parent is None:  # the thread's own greenlet: the tree is the thread's
            return None
        return weakref.ref(current)
    except Exception:
        return None


def locals_are_per_greenlet(local: Any) -> bool:
    """Whether this threading.local is gevent's or eventlet's (one value per greenlet)."""
    return not type(local).__module__.startswith(("_thread", "threading", "_threading_local"))


class Activation:
    """One call of a profiled generator or coroutine, from its start to its finish.

    `chain` is the outermost call of the awaits this one is part of (itself
    when nothing profiled awaited it); the chain's `outer` is the node that
    was current when the chain last started or resumed, where the thread
    goes back to when the chain suspends.
    """

    __slots__ = ("awaited", "awaiter", "chain", "first", "node", "outer", "running", "slice", "state", "tree")

    # No __init__: the timer's start() sets every field (see there).
    tree: CallTree
    node: Node
    awaiter: Optional[Activation]
    chain: Activation
    outer: Node
    first: float  # when it started
    slice: float  # when its current slice of running began
    running: float  # finished slices of its own
    awaited: float  # running time of the profiled calls it awaited, once they finished
    state: int

    def running_so_far(self, now: float) -> float:
        """Running time up to `now`, for a call that has not finished."""
        open_slice = now - self.slice if self.state == RUNNING else 0.0
        return self.running + self.awaited + max(0.0, open_slice)


class CompiledCalls(NamedTuple):
    """What the woven code of a plain function calls when the compiled timer times it."""

    enter: Callable[[Any], Any]  # (info) -> info, or None when the call is not timed
    leave: Callable[[Any], None]  # (info); never raises


class SuspendableHooks(NamedTuple):
    """What the woven code of one generator or coroutine calls (failures go to one record)."""

    start: Callable[[Any], Optional[Activation]]
    pause: Callable[[Optional[Activation], Any], Any]  # before a yield or await, given what it awaits
    unpause: Callable[[Optional[Activation], Any], Any]  # after it, given its result
    resumed: Callable[[Optional[Activation]], None]  # an exception came out of a yield or await
    finish: Callable[[Optional[Activation]], None]
    timed_with: Callable[[Optional[Activation], Any], Any]  # the manager of an `async with`
    timed_for: Callable[[Optional[Activation], Any], Any]  # the iterable of an `async for`


class _TimedAsyncWith:
    """An `async with` manager seen by a timer: entering and leaving it may suspend the call.

    The methods return the manager's own awaitables (no frame of lu's in
    between, so tracebacks and stacks are the program's); the woven code
    marks the resumption after them.
    """

    __slots__ = ("act", "manager", "pause")

    def __init__(self, manager: Any, act: Activation, pause: Callable[[Optional[Activation], Any], Any]) -> None:
        self.manager, self.act, self.pause = manager, act, pause

    def __aenter__(self) -> Any:
        return self.pause(self.act, type(self.manager).__aenter__(self.manager))

    def __aexit__(self, *exc_info: Any) -> Any:
        return self.pause(self.act, type(self.manager).__aexit__(self.manager, *exc_info))


class _TimedAsyncFor:
    """An `async for` iterator seen by a timer: each step may suspend the call (see _TimedAsyncWith)."""

    __slots__ = ("act", "iterator", "pause")

    def __init__(self, iterator: Any, act: Activation, pause: Callable[[Optional[Activation], Any], Any]) -> None:
        self.iterator, self.act, self.pause = iterator, act, pause

    def __aiter__(self) -> _TimedAsyncFor:
        return self

    def __anext__(self) -> Any:
        return self.pause(self.act, type(self.iterator).__anext__(self.iterator))


class CallTimer:
    """What the engine needs to time calls into call trees; see the module docstring.

    `clock` returns seconds as a float: cheaper than perf_counter_ns (no
    big-integer arithmetic on every call) and fine to the nanosecond over a
    process's lifetime. `codes` holds the woven code of every profiled
    generator and coroutine, so that an await can tell a profiled callee
    (which starts under the awaiter) from anything else (a suspension).
    """

    def __init__(self, clock: Callable[[], float] = time.perf_counter) -> None:
        self.local = threading.local()
        self.per_greenlet = locals_are_per_greenlet(self.local)
        self.clock = clock
        self.codes: Set[types.CodeType] = set()
        self.earlier_codes: Dict[types.CodeType, Any] = {}  # code a timed function ran before -> its FuncInfo
        self.running: Set[Activation] = set()  # generators and coroutines started and not finished
        # Bound once: the woven code of every profiled function holds these as constants, and one
        # bound method per function would be thousands of objects more for the collector to walk.
        self.new_tree_hook: Callable[[], CallTree] = self.new_tree
        self.new_child_hook: Callable[[CallTree, Any], Node] = self.new_child
        # The compiled timer (engine/accel.py) when a subclass chose it: the woven code of plain
        # functions then calls its enter and leave (bound once, as above) instead of the inline timing.
        self.compiled: Optional[CompiledCalls] = None
        self.kind = ""  # which timer times the calls, for an update's description ("compiled timer"; "" says nothing)
        self.in_use = ""  # the same with why, for the user who asked for the profile

    def resolved(self, functions: List[types.FunctionType]) -> None:
        """An update is about to weave this timer into these functions (none is woven yet).

        The one moment a subclass can still choose how its calls are timed
        (tools/calltree.py chooses the compiled timer here).
        """

    def suspendable_hooks(self, failed: Callable[[], None]) -> SuspendableHooks:
        """The hooks for generators and coroutines; each counts its own failures with `failed`.

        They are closures over locals, not methods: each runs on every
        resumption of a profiled generator or coroutine.
        """
        local, clock, codes, running, new_tree = self.local, self.clock, self.codes, self.running, self.new_tree

        new_activation = Activation.__new__

        def start(info: Any) -> Optional[Activation]:
            try:
                now = clock()
                try:
                    tree: CallTree = local.tree
                except AttributeError:
                    tree = new_tree()
                parent = tree.node
                awaiter = tree.awaiting
                node = parent[CHILDREN].get(info)
                if node is None:
                    node = parent[CHILDREN][info] = [0, 0.0, {}, info, parent, 0.0, 0.0]
                # Activation's fields, set here rather than in an __init__: one Python call less per call
                act = new_activation(Activation)
                act.tree, act.node, act.outer = tree, node, parent
                act.first = act.slice = now
                act.running = act.awaited = 0.0
                act.state = RUNNING
                if awaiter is not None and awaiter.node is parent:
                    tree.awaiting = None
                    act.awaiter, act.chain = awaiter, awaiter.chain
                else:  # nothing profiled awaits it (or not the call its awaiter waited for)
                    tree.awaiting = act.awaiter = None
                    act.chain = act
                running.add(act)
                tree.node = node
                return act
            except Exception:
                failed()
                return None

        def go_on(act: Activation, tree: CallTree, now: float) -> None:
            # The call runs again. Unless a call of its own chain just handed control
            # to it, whoever resumed the chain is where the thread goes back to later.
            if act.state == PAUSED and tree.awaiting is None:
                act.chain.outer = tree.node
            tree.awaiting = None
            act.state = RUNNING
            act.slice = now
            tree.node = act.node

        def stop(act: Activation, delegating: bool) -> None:
            tree = act.tree
            now = clock()
            if act.state == RUNNING:
                act.running += now - act.slice
            elif act.state == PAUSED:  # resumed by an exception it caught: count from now on
                go_on(act, tree, now)
            if delegating:
                act.state = DELEGATING
                tree.awaiting = act
                tree.node = act.node
            else:
                act.state = PAUSED
                tree.node = act.chain.outer

        # pause and unpause run around every yield and await: their common
        # paths are written out in full, with no call to the helpers above.
        def pause(act: Optional[Activation], value: Any) -> Any:
            if act is None:
                return value
            try:
                if act.state != RUNNING:
                    stop(act, _delegates(value))
                    return value
                tree = act.tree
                act.running += clock() - act.slice
                kind = type(value)
                if (kind is _COROUTINE and value.cr_code in codes) or (kind is _GENERATOR and value.gi_code in codes):
                    act.state = DELEGATING
                    tree.awaiting = act
                    tree.node = act.node
                else:
                    act.state = PAUSED
                    tree.node = act.chain.outer
            except Exception:
                failed()
            return value

        def _delegates(value: Any) -> bool:
            kind = type(value)
            return (kind is _COROUTINE and value.cr_code in codes) or (kind is _GENERATOR and value.gi_code in codes)

        def delegate(act: Optional[Activation], value: Any) -> Any:
            """pause() for a step of a profiled async generator (the value is not its code's)."""
            if act is not None:
                try:
                    stop(act, True)
                except Exception:
                    failed()
            return value

        def unpause(act: Optional[Activation], value: Any) -> Any:
            if act is None or act.state == RUNNING:
                return value
            try:
                try:
                    tree = local.tree
                except AttributeError:
                    tree = new_tree()
                if tree is not act.tree:
                    # resumed in another thread: go on in that thread's tree, at its position
                    info = act.node[INFO]
                    node = tree.node[CHILDREN].get(info)
                    if node is None:
                        node = tree.node[CHILDREN][info] = [0, 0.0, {}, info, tree.node, 0.0, 0.0]
                    act.tree, act.node = tree, node
                if act.state == PAUSED and tree.awaiting is None:
                    act.chain.outer = tree.node
                tree.awaiting = None
                act.state = RUNNING
                act.slice = clock()
                tree.node = act.node
            except Exception:
                failed()
            return value

        def resumed(act: Optional[Activation]) -> None:
            unpause(act, None)

        def finish(act: Optional[Activation]) -> None:
            if act is None:
                return
            try:
                tree = act.tree
                now = clock()
                if act.state == PAUSED:  # closed or thrown into while suspended
                    go_on(act, tree, now)
                elif act.state == RUNNING:
                    act.running += now - act.slice
                total = act.running + act.awaited
                node = act.node
                node[HITS] += 1
                node[TOTAL] += total
                node[WALL] += now - act.first
                running.discard(act)
                awaiter = act.awaiter
                if awaiter is not None:
                    awaiter.awaited += total
                    if awaiter.state == DELEGATING:
                        awaiter.state = RUNNING
                        awaiter.slice = now
                        tree.node = awaiter.node
                        return
                tree.node = act.chain.outer if act.chain is act else node[PARENT]
            except Exception:
                failed()

        def timed_with(act: Optional[Activation], manager: Any) -> Any:
            kind = type(manager)
            if act is None or not (hasattr(kind, "__aenter__") and hasattr(kind, "__aexit__")):
                return manager  # the program's own error, unchanged
            return _TimedAsyncWith(manager, act, pause)

        def timed_for(act: Optional[Activation], iterable: Any) -> Any:
            if act is None or not hasattr(type(iterable), "__aiter__"):
                return iterable
            iterator = type(iterable).__aiter__(iterable)
            if not hasattr(type(iterator), "__anext__"):
                return iterator
            profiled = type(iterator) is _ASYNC_GENERATOR and iterator.ag_code in codes
            return _TimedAsyncFor(iterator, act, delegate if profiled else pause)

        return SuspendableHooks(start, pause, unpause, resumed, finish, timed_with, timed_for)

    def new_tree(self) -> CallTree:
        """The calling thread's (or greenlet's) first timed call: give it a tree."""
        tree = CallTree(greenlet=running_greenlet() if self.per_greenlet else None)
        self.local.tree = tree
        self.tree_started(tree)
        return tree

    def new_child(self, tree: CallTree, info: Any) -> Node:
        node = tree.node
        child = node[CHILDREN][info] = new_node(info, node)
        return child

    def tree_started(self, tree: CallTree) -> None:
        """A thread got its tree (called once per thread); subclasses keep it."""

    def timing(self, info: Any, earlier: Tuple[types.CodeType, ...]) -> None:
        """The engine weaves this timer into info's function, which ran `earlier` codes until now.

        Calls already running then go on in those codes and never reach the
        timer; a subclass may look for them (see tools/calltree.py).
        """
        for code in earlier:
            self.earlier_codes[code] = info


def merge(into: Node, node: Node) -> None:
    """Add `node`'s subtree (hits and times) into the tree rooted at `into`."""
    stack = [(into, node)]
    while stack:
        target, source = stack.pop()
        children: Dict[Any, Node] = source[CHILDREN]
        for info, child in children.items():
            mine = target[CHILDREN].get(info)
            if mine is None:
                mine = target[CHILDREN][info] = new_node(info, target)
            mine[HITS] += child[HITS]
            mine[TOTAL] += child[TOTAL]
            mine[WALL] += child[WALL]
            stack.append((mine, child))
