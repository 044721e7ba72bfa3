"""FuncProfiler: hits and time of chosen functions, as a call tree per thread.

Each thread has its own tree, written only by that thread, so there is no
read-modify-write race between threads (the recorder only reads). A node is a
small list `[hits, total_s, children, info, parent, started_s]`. The engine
inlines the timing into plain functions (its `func_timer` point): a call costs
a thread-local lookup, two clock reads and a few list updates, never a Python
hook call and never a log line. Generators and coroutines use the hooks below.

The tree holds instrumented functions only: a function called (directly or
not) from another instrumented function is its child. Recursion makes a
deeper path, so memory grows with distinct call paths, never with calls.

What is counted for generators and coroutines: the time of each resumption
(from first start or resume to the next yield/await, or to the end), charged
to the path of whoever resumed it; the time spent suspended (awaiting I/O,
waiting for the next `next()`) is not counted. `hits` counts finished calls
(one per generator or coroutine, when it finishes).
"""
import re
import threading
import time
import zlib

from .. import osthreads

HITS, TOTAL, CHILDREN, INFO, PARENT, STARTED = range(6)


def _new_node(info, parent):
    return [0, 0, {}, info, parent, 0]


class _ThreadTree(object):
    __slots__ = ("ident", "name", "root", "node", "thread")

    def __init__(self, thread=None, name=None):
        thread = thread or threading.current_thread()
        self.thread = thread
        self.ident = thread.ident
        self.name = name or thread.name
        self.root = _new_node(None, None)
        self.node = self.root


_COUNTER = re.compile(r"-\d+\b")


def pooled_name(name):
    """'Thread-1022 (process_request_thread)' -> 'Thread-* (process_request_thread)'."""
    return _COUNTER.sub("-*", name)


def _merge(into, node):
    """Add node's subtree (hits and time) into the tree rooted at `into`."""
    stack = [(into, node)]
    while stack:
        target, source = stack.pop()
        for info, child in source[CHILDREN].items():
            mine = target[CHILDREN].get(info)
            if mine is None:
                mine = target[CHILDREN][info] = [0, 0, {}, info, target, 0]
            mine[HITS] += child[HITS]
            mine[TOTAL] += child[TOTAL]
            stack.append((mine, child))


class CallTreeSession(object):
    """The accumulators of one FuncProfiler update, and the hooks that fill them."""

    def __init__(self):
        self.session = None  # the update id, set once applied
        self.threads = []
        self.finished = {}  # pooled thread name -> tree of the threads of that name that ended
        self._threads_lock = osthreads.Lock()
        local = threading.local()
        # A float clock: cheaper than perf_counter_ns (no big-integer arithmetic
        # on every call) and fine to the nanosecond over a process's lifetime.
        clock = time.perf_counter
        new_thread = self._new_thread

        def unwind(tree, info):
            # The stack does not end in `info` (a call that began before the
            # profile, or an exit lu did not see): find it, or ignore the event.
            node = tree.node
            while node is not None and node[INFO] is not info:
                node = node[PARENT]
            return node

        def before(info):
            try:
                tree = local.tree
            except AttributeError:
                tree = new_thread(local)
            node = tree.node
            child = node[CHILDREN].get(info)
            if child is None:
                child = node[CHILDREN][info] = [0, 0, {}, info, node, 0]
            tree.node = child
            child[STARTED] = clock()

        def after(info, result, exc):
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
        # one more Python call on every profiled call.
        def suspend(info):
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
        # What the engine inlines into plain functions (its 'func_timer' point):
        # the same tree, entered and left without a Python-level hook call.
        self.local = local
        self.clock = clock
        self.new_tree = lambda: new_thread(local)

    def new_child(self, tree, info):
        node = tree.node
        child = node[CHILDREN][info] = [0, 0, {}, info, node, 0]
        return child

    def _new_thread(self, local):
        tree = _ThreadTree()
        local.tree = tree
        with self._threads_lock:
            self.threads.append(tree)
        return tree

    def points(self):
        """The engine inlines this timer into plain functions and calls its hooks in generators/coroutines."""
        return {"func_timer": self}

    def fold_finished(self):
        """Merge the trees of threads that ended into one tree per pooled thread name.

        A server that runs each request on a new thread would otherwise keep
        (and write) one tree per request: memory must grow with distinct call
        paths, not with calls or threads.
        """
        with self._threads_lock:
            ended = [tree for tree in self.threads if not tree.thread.is_alive()]
            if not ended:
                return
            self.threads = [tree for tree in self.threads if tree.thread.is_alive()]
        for tree in ended:
            name = pooled_name(tree.name)
            pool = self.finished.get(name)
            if pool is None:
                pool = self.finished[name] = _ThreadTree(tree.thread, name)
                pool.ident = -(zlib.crc32(name.encode()) + 1)  # a stable id for a pool of ended threads
                pool.thread = None
            _merge(pool.root, tree.root)

    def snapshot(self):
        """One `calls` record per live thread that ran an instrumented function, and per pool of ended ones."""
        import os
        self.fold_finished()
        names = _thread_names()
        records = []
        for tree in list(self.threads) + list(self.finished.values()):
            # Pre-order, each node naming its parent by index: linear in the
            # number of nodes even for deep recursion (full paths would be quadratic).
            nodes = []
            stack = [(-1, tree.root)]
            while stack:
                parent_index, node = stack.pop()
                for info, child in list(node[CHILDREN].items()):
                    index = len(nodes)
                    nodes.append({"function": info.name, "parent": parent_index, "hits": child[HITS],
                                  "total_ns": int(child[TOTAL] * 1e9)})
                    stack.append((index, child))
            if nodes:
                records.append({"lu": 1, "type": "calls", "pid": os.getpid(), "session": str(self.session),
                                "thread": names.get(tree.ident, tree.name), "thread_id": tree.ident,
                                "time": time.time(), "nodes": nodes})
        return records


def _thread_names():
    try:
        return {ident: thread.name for ident, thread in list(threading._active.items())}
    except Exception:
        return {}
