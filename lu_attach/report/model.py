"""The data model shared by every report renderer.

A :class:`Report` holds processes, a process holds threads, and a thread holds
a call tree (:class:`CallNode` roots), a line table (:class:`LineStat`), and
the tables any other tool records (:class:`Table`: a title, columns and rows,
shown as they are).
Times are integer nanoseconds.  ``hits`` and ``total_ns`` of a call node are
*inclusive*: the time spent in the function including the instrumented
functions it called.  For a sampled report (py-spy) ``hits`` is the number of
samples in which the frame was on the stack and the times are estimates
(samples / rate).

Everything here is plain data; the readers (:mod:`.logs`, :mod:`.pyspy`) build
it and the renderers only read it.  Traversals are iterative, so very deep
call paths do not hit Python's recursion limit.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Dict, Iterator, List, Optional, Sequence, Tuple

INSTRUMENTED = "instrumented"
SAMPLED = "sampled"


class ReportError(Exception):
    """A log cannot be turned into a report; ``message`` is one line for the user."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    def __str__(self) -> str:
        return self.message


@dataclass
class CallNode:
    """One function at one call path; figures are inclusive of its children.

    ``total_ns`` is the time running (for a generator or coroutine, its time
    suspended in awaits and yields is not in it); ``wall_ns``, given only for
    generators and coroutines, is the time from each call's start to its
    finish, awaits included (a plain call's wall time is its running time).
    ``open`` calls had started and not finished when the profile was read:
    they are not in ``hits`` or the times, but in ``open_ns`` (running so
    far) and ``open_wall_ns`` (since they started). ``open_before`` of them
    had started before the profile did: their time so far is counted from
    the profile's start, so it is a lower bound.
    """

    function: str
    hits: int = 0
    total_ns: int = 0
    children: Dict[str, CallNode] = field(default_factory=dict)
    file: Optional[str] = None
    line: Optional[int] = None
    wall_ns: Optional[int] = None
    open: int = 0
    open_ns: int = 0
    open_wall_ns: int = 0
    open_before: int = 0

    def add(self, figures: Sequence[int]) -> None:
        """Add ``[hits, total_ns]`` or ``[hits, total_ns, wall_ns, open, open_ns, open_wall_ns[, open_before]]``
        (wall -1: none)."""
        self.hits += figures[0]
        self.total_ns += figures[1]
        if len(figures) > 2:
            if figures[2] >= 0:
                self.wall_ns = (self.wall_ns or 0) + figures[2]
            self.open += figures[3]
            self.open_ns += figures[4]
            self.open_wall_ns += figures[5]
        if len(figures) > 6:
            self.open_before += figures[6]

    def add_node(self, other: CallNode) -> None:
        """Add another node's own figures (not its children)."""
        self.add(
            [other.hits, other.total_ns, -1 if other.wall_ns is None else other.wall_ns]
            + [other.open, other.open_ns, other.open_wall_ns, other.open_before]
        )

    @property
    def wall_per_hit_ns(self) -> float:
        """Wall time per finished call: the running time per call for a plain function."""
        if not self.hits:
            return 0.0
        return (self.wall_ns if self.wall_ns is not None else self.total_ns) / self.hits

    def child(self, function: str) -> CallNode:
        node = self.children.get(function)
        if node is None:
            node = self.children[function] = CallNode(function)
        return node

    @property
    def children_ns(self) -> int:
        return sum(c.total_ns for c in self.children.values())

    @property
    def self_ns(self) -> int:
        """Time not accounted for by children (clamped at 0)."""
        return max(0, self.total_ns - self.children_ns)

    @property
    def per_hit_ns(self) -> float:
        return self.total_ns / self.hits if self.hits else 0.0

    def sorted_children(self, by: str = "time") -> List[CallNode]:
        """Children heaviest first (``by="time"``) or alphabetical (``by="name"``)."""
        if by == "name":
            return [self.children[k] for k in sorted(self.children)]
        return sorted(self.children.values(), key=lambda c: (-c.total_ns, c.function))


def sort_nodes(nodes: Dict[str, CallNode], by: str = "time") -> List[CallNode]:
    if by == "name":
        return [nodes[k] for k in sorted(nodes)]
    return sorted(nodes.values(), key=lambda c: (-c.total_ns, c.function))


def walk(roots: Dict[str, CallNode], by: str = "time") -> Iterator[Tuple[Tuple[str, ...], CallNode]]:
    """Pre-order ``(path, node)`` over a forest, children in ``sort_nodes`` order."""
    stack: List[Tuple[Tuple[str, ...], CallNode]] = [((n.function,), n) for n in reversed(sort_nodes(roots, by))]
    while stack:
        path, node = stack.pop()
        yield path, node
        for c in reversed(node.sorted_children(by)):
            stack.append((path + (c.function,), c))


def flame_weights(roots: Dict[str, CallNode]) -> Dict[int, int]:
    """``id(node) -> width`` where width = clamped self time + children's widths.

    This is what flame graphs and self-time exports use: every nanosecond is
    counted once, in the frame where it was spent, and a parent is never
    narrower than its children even when measured children exceed the parent.
    """
    out: Dict[int, int] = {}
    stack: List[Tuple[CallNode, bool]] = [(n, False) for n in roots.values()]
    while stack:
        node, done = stack.pop()
        if done:
            out[id(node)] = node.self_ns + sum(out[id(c)] for c in node.children.values())
        else:
            stack.append((node, True))
            stack.extend((c, False) for c in node.children.values())
    return out


def self_paths(roots: Dict[str, CallNode]) -> Iterator[Tuple[Tuple[str, ...], CallNode, int]]:
    """``(path, node, self_ns)`` for every node, alphabetical pre-order."""
    for path, node in walk(roots, by="name"):
        yield path, node, node.self_ns


@dataclass
class LineStat:
    function: str
    line: int
    hits: int = 0
    total_ns: int = 0

    @property
    def per_hit_ns(self) -> float:
        return self.total_ns / self.hits if self.hits else 0.0


@dataclass
class Table:
    """A tool's own figures (the `table` record): shown as given, rows in the tool's order."""

    title: str
    columns: List[str]
    rows: List[List[object]]
    session: str = ""


@dataclass
class ThreadProfile:
    pid: int
    thread: str
    thread_id: Optional[int] = None
    roots: Dict[str, CallNode] = field(default_factory=dict)
    lines: Dict[Tuple[str, int], LineStat] = field(default_factory=dict)
    tables: List[Table] = field(default_factory=list)
    events: int = 0
    sessions: List[str] = field(default_factory=list)
    label: str = ""  # "pid 4510 / MainThread", disambiguated by Report.finish()

    @property
    def total_ns(self) -> int:
        """Inclusive time of all root calls (the thread's profiled time)."""
        return sum(r.total_ns for r in self.roots.values())

    def sorted_roots(self, by: str = "time") -> List[CallNode]:
        return sort_nodes(self.roots, by)

    def sorted_lines(self) -> List[LineStat]:
        return [self.lines[k] for k in sorted(self.lines)]

    @property
    def empty(self) -> bool:
        return not self.roots and not self.lines and not self.tables


@dataclass
class ProcessProfile:
    pid: int
    python: Optional[str] = None
    argv: Optional[List[str]] = None
    started: Optional[float] = None
    threads: Dict[object, ThreadProfile] = field(default_factory=dict)
    merged_from: List[int] = field(default_factory=list)  # the pids summed into this one (report/processors.py)

    @property
    def name(self) -> str:
        """How reports name it: 'pid 4510', or '3 processes (4510, 4511, 4512)' for a merged tree."""
        if self.merged_from:
            listed = ", ".join(map(str, self.merged_from))
            return f"{len(self.merged_from)} processes ({listed})"
        return f"pid {self.pid}"

    def sorted_threads(self) -> List[ThreadProfile]:
        return sorted(
            self.threads.values(),
            key=lambda t: (t.thread != "MainThread", t.thread, t.thread_id or 0),
        )


@dataclass
class Session:
    """One profile or debug run recorded in the logs (its id is its update id in the process)."""

    id: str
    pids: List[int] = field(default_factory=list)
    started: Optional[float] = None  # from its `session` record
    ended: Optional[float] = None
    first_seen: Optional[float] = None  # its earliest record, for logs older than `session` records
    description: str = ""
    targets: List[str] = field(default_factory=list)


@dataclass
class Report:
    processes: Dict[int, ProcessProfile] = field(default_factory=dict)
    source: str = INSTRUMENTED  # or SAMPLED
    rate_hz: Optional[float] = None  # sampled reports only
    warnings: List[str] = field(default_factory=list)
    files: List[str] = field(default_factory=list)
    events: int = 0  # debug event records seen (not part of the profile)
    sessions: List[Session] = field(default_factory=list)  # every session in the logs, oldest first
    shown: List[str] = field(default_factory=list)  # the ids of the sessions the figures are of
    selection: str = ""  # how `shown` was chosen: "latest", "asked" (--session), "all" (--all); "": not said

    def process(self, pid: int) -> ProcessProfile:
        proc = self.processes.get(pid)
        if proc is None:
            proc = self.processes[pid] = ProcessProfile(pid)
        return proc

    def sorted_processes(self) -> List[ProcessProfile]:
        return [self.processes[k] for k in sorted(self.processes)]

    def threads(self) -> List[ThreadProfile]:
        """All threads, in display order (pid, then MainThread first, then by name)."""
        return [t for p in self.sorted_processes() for t in p.sorted_threads()]

    @property
    def sampled(self) -> bool:
        return self.source == SAMPLED

    @property
    def kind(self) -> str:
        """The header line that says where the figures come from."""
        if self.sampled:
            rate = f", {self.rate_hz:g} Hz" if self.rate_hz else ""
            return f"sampled profile (py-spy{rate})"
        return "instrumented profile (lu)"

    def finish(self) -> Report:
        """Set thread labels (unique within the report); returns self."""
        for proc in self.processes.values():
            names: Dict[str, int] = {}
            for t in proc.threads.values():
                names[t.thread] = names.get(t.thread, 0) + 1
            for t in proc.threads.values():
                name = t.thread
                if names[name] > 1 and t.thread_id is not None:
                    name = f"{name} ({t.thread_id})"
                t.label = f"{proc.name} / {name}"
        return self


def build_tree(paths: Dict[Tuple[str, ...], List[int]]) -> Dict[str, CallNode]:
    """Build a forest from ``{path: figures}`` (figures as `CallNode.add` takes them).

    A path whose prefix is missing gets the prefix synthesised with 0 hits and
    the sum of its children's time, so the tree stays consistent.
    """
    paths = complete_prefixes(paths)
    roots: Dict[str, CallNode] = {}
    for path in sorted(paths, key=len):
        figures = paths[path]
        if len(path) == 1:
            node = roots.get(path[0])
            if node is None:
                node = roots[path[0]] = CallNode(path[0])
        else:
            node = roots[path[0]]
            for name in path[1:]:
                node = node.child(name)
        node.add(figures)
    return roots


def complete_prefixes(paths: Dict[Tuple[str, ...], List[int]]) -> Dict[Tuple[str, ...], List[int]]:
    """Add every missing prefix of a path, with 0 hits and its children's total."""
    by_len: Dict[int, List[Tuple[str, ...]]] = {}
    for path in paths:
        by_len.setdefault(len(path), []).append(path)
    missing: Dict[Tuple[str, ...], List[int]] = {}
    for length in range(max(by_len, default=0), 1, -1):
        for path in by_len.get(length, ()):
            parent = path[:-1]
            if parent in paths:
                continue
            entry = missing.get(parent)
            if entry is None:
                entry = missing[parent] = [0, 0]
                by_len.setdefault(length - 1, []).append(parent)
            entry[1] += (paths.get(path) or missing[path])[1]
    if not missing:
        return paths
    merged = dict(paths)
    merged.update(missing)
    return merged
