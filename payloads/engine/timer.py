"""The call-tree timer: the one kind of hook the engine writes into a function itself.

Timing a call with a Python hook costs two hook calls per call. For a
FuncProfiler-like tool the engine instead weaves the timing into the
function's own code (`Points.timers`, the PyLiveUpdate spelling
`{'func_timer': timer}`): on entry a thread-local lookup and a dict lookup
find the call's node in the thread's call tree, on exit a `finally` adds the
elapsed time. Generators and coroutines, which leave and re-enter the body,
are timed through the timer's `before/after/suspend/resume` hooks instead.

The engine owns the data layout, because the woven code reads and writes it:

    node = [hits, total_s, children, info, parent, started_s]
    (HITS, TOTAL, CHILDREN, INFO, PARENT, STARTED index it)

where `children` maps a FuncInfo to its child node and `parent` is the
node one level up (None for a tree's root). A `CallTree` is one thread's
tree, with `node` its current position; `CallTimer.local.tree` is the
calling thread's. Each thread writes only its own tree, so there is no
read-modify-write race between threads; readers (a tool's snapshots) only
read. A tool subclasses CallTimer to keep the trees it is given
(`tree_started`) and to report them.
"""

from __future__ import annotations

import threading
import time
from typing import Any, Callable, Dict, List, Optional

HITS, TOTAL, CHILDREN, INFO, PARENT, STARTED = range(6)
Node = List[Any]  # [hits, total_s, children, info, parent, started_s]


def new_node(info: Any, parent: Optional[Node]) -> Node:
    return [0, 0.0, {}, info, parent, 0.0]


class CallTree:
    """One thread's call tree and its current node."""

    __slots__ = ("ident", "name", "node", "root", "thread")

    def __init__(self, thread: Optional[threading.Thread] = None, name: Optional[str] = None) -> None:
        thread = thread or threading.current_thread()
        self.thread: Optional[threading.Thread] = thread
        self.ident: Optional[int] = thread.ident
        self.name: str = name or thread.name
        self.root: Node = new_node(None, None)
        self.node: Node = self.root


class CallTimer:
    """What the engine needs to time calls into call trees; see the module docstring.

    `clock` returns seconds as a float: cheaper than perf_counter_ns (no
    big-integer arithmetic on every call) and fine to the nanosecond over a
    process's lifetime.
    """

    def __init__(self, clock: Callable[[], float] = time.perf_counter) -> None:
        self.local = threading.local()
        self.clock = clock
        local = self.local
        new_tree = self.new_tree

        def unwind(tree: CallTree, info: Any) -> Optional[Node]:
            # The stack does not end in `info` (a call that began before the
            # timer was applied, or an exit lu did not see): find it, or ignore.
            node: Optional[Node] = tree.node
            while node is not None and node[INFO] is not info:
                node = node[PARENT]
            return node

        # The hooks are closures over locals, not methods: each is called on
        # every call of a profiled generator or coroutine.
        def before(info: Any) -> None:
            try:
                tree = local.tree
            except AttributeError:
                tree = new_tree()
            node = tree.node
            child = node[CHILDREN].get(info)
            if child is None:
                child = node[CHILDREN][info] = [0, 0.0, {}, info, node, 0.0]
            tree.node = child
            child[STARTED] = clock()

        def after(info: Any, result: Any = None, exc: Optional[BaseException] = None) -> None:
            now = clock()
            try:
                tree = local.tree
            except AttributeError:
                return
            node = tree.node
            if node[INFO] is not info:
                node = unwind(tree, info)
                if node is None:
                    return
            node[HITS] += 1
            node[TOTAL] += now - node[STARTED]
            tree.node = node[PARENT]

        # suspend repeats after's lines on purpose: a shared helper would be
        # one more Python call on every resumption.
        def suspend(info: Any) -> None:
            now = clock()
            try:
                tree = local.tree
            except AttributeError:
                return
            node = tree.node
            if node[INFO] is not info:
                node = unwind(tree, info)
                if node is None:
                    return
            node[TOTAL] += now - node[STARTED]
            tree.node = node[PARENT]

        self.before = before
        self.after = after
        self.suspend = suspend
        self.resume = before  # a resumption opens the node again, without a hit

    def new_tree(self) -> CallTree:
        """The calling thread's first timed call: give it a tree."""
        tree = CallTree()
        self.local.tree = tree
        self.tree_started(tree)
        return tree

    def new_child(self, tree: CallTree, info: Any) -> Node:
        node = tree.node
        child = node[CHILDREN][info] = new_node(info, node)
        return child

    def tree_started(self, tree: CallTree) -> None:
        """A thread got its tree (called once per thread); subclasses keep it."""


def merge(into: Node, node: Node) -> None:
    """Add `node`'s subtree (hits and time) into the tree rooted at `into`."""
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
            stack.append((mine, child))
