"""Acting on a process tree as one: every member reached at once, an update all or nothing.

`Tree.open(pid)` finds the tree (tree.py), injects the members that have no
agent (in parallel; on 2 CPUs the targets' own agent start-up is what a first
injection of 33 processes is bounded by: bench/tree.py) and
asks every member to start an agent in each child it forks from now on, so
that workers started later can be reached too. Requests then go to all
members concurrently (`Tree.each`), each answer a `Outcome` record.

A tree patch (`Tree.patch`) is two-phase: every member prepares it (runs
it, checks and compiles everything; nothing changes), and only when all
prepared it does each commit (the code swap). A refusal anywhere aborts the
prepared ones; a commit that fails after others committed reverts those.
Every member numbers the update from the same first id, so one id names it
in the whole tree. A member that has not imported the module the patch
changes (a gunicorn master without --preload) keeps it waiting for the
import, which also gives it to the workers it forks; if no member has the
module, that is a mistake, reported as such. A member that exits during the
update is left out and named; the others keep the update.

Why the master carries the update rather than lu following the tree: a
worker forked later must serve its first request with the updated code, and
only the process it is forked from can see that moment; lu would always be
late. For children that are spawned (a new interpreter), nothing is
inherited: `--follow` keeps lu running and brings them in as they appear.
"""

from __future__ import annotations

import concurrent.futures
import queue
import threading
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, List, Optional, Sequence, Set, Tuple

from .client import AgentClient, open_client
from .errors import AgentGone, LuAttachError, Stopped
from .inject import inject
from .runtime import TargetProcess, exiting
from .session import target_of
from .tree import TreeMember, process_tree

MAX_PARALLEL = 16  # injections and requests in flight at once


@dataclass
class Outcome:
    """What one member answered: a value, or why not (gone: the process exited meanwhile)."""

    pid: int
    value: Any = None
    error: Optional[str] = None
    gone: bool = False

    @property
    def ok(self) -> bool:
        return self.error is None and not self.gone


@dataclass
class TreePatch:
    """A patch as the tree took it: its ids, and what each member did with it."""

    ids: List[int]
    applied: List[int] = field(default_factory=list)
    waiting: Dict[int, str] = field(default_factory=dict)  # pid -> the module it waits for
    gone: List[int] = field(default_factory=list)


def _alive(pid: int) -> bool:
    try:
        target_of(pid)
        return True
    except LuAttachError:
        return False


def _parallel(work: Callable[[int], Any], pids: Sequence[int]) -> Dict[int, Outcome]:
    """work(pid) for every pid at once; each answer or error as an Outcome."""

    def one(pid: int) -> Outcome:
        try:
            return Outcome(pid, value=work(pid))
        except AgentGone as exc:
            # its socket closes before the process is gone: give it a moment to finish exiting
            return Outcome(pid, error=str(exc), gone=exiting(pid, within=1.0) or not _alive(pid))
        except LuAttachError as exc:
            return Outcome(pid, error=str(exc), gone=not _alive(pid))

    if not pids:  # (a --follow poll that found no newcomer; a pool of no threads is an error)
        return {}
    if len(pids) == 1:
        return {pids[0]: one(pids[0])}
    with concurrent.futures.ThreadPoolExecutor(max_workers=min(MAX_PARALLEL, len(pids))) as pool:
        return {outcome.pid: outcome for outcome in pool.map(one, pids)}


def refusal(outcomes: Dict[int, Outcome], doing: str) -> Optional[str]:
    """One line naming the first member that refused (not one that exited), or None."""
    for pid in sorted(outcomes):
        outcome = outcomes[pid]
        if outcome.error is not None and not outcome.gone:
            return "process %d %s: %s" % (pid, doing, outcome.error)
    return None


@dataclass
class TreeSessions:
    """A tool session started in the members of a tree (profile, debug): the answer of each member.

    Members where the tool found nothing to act on (a master that has not
    imported the application: "matches no function") are in `skipped`, with
    the reason; they are not an error as long as one member took it.
    """

    started: Dict[int, Dict[str, Any]] = field(default_factory=dict)  # pid -> the tool's answer (ids, log, targets)
    skipped: Dict[int, str] = field(default_factory=dict)

    @property
    def ids(self) -> List[int]:
        return sorted({i for answer in self.started.values() for i in answer["ids"]})

    def ids_of(self, pid: int) -> List[int]:
        return list(self.started[pid]["ids"])


@dataclass
class _Reach:
    """How a member is reached: inject if needed, connect, and (a master) ask it to follow its children.

    Only the tree's top and the members that have children of their own
    follow: a worker's short-lived forks (a subprocess, a helper) stay
    untouched.
    """

    inject_if_needed: bool = True
    follow: bool = True
    timeout: float = 10.0
    method: str = "auto"
    on_event: Optional[Callable[[int, dict], None]] = None
    masters: Set[int] = field(default_factory=set)

    def __call__(self, pid: int) -> AgentClient:
        if self.inject_if_needed:
            inject(pid, timeout=self.timeout, method=self.method)
        on_event = self.on_event
        handler = (lambda event: on_event(pid, event)) if on_event is not None else None
        client = open_client(TargetProcess.of(pid), on_event=handler)
        if self.follow and pid in self.masters:
            try:
                client.request("follow", on=True)
            except BaseException:
                client.close()
                raise
        return client


class Tree:
    """Clients to every member of a process tree (use as a context manager)."""

    def __init__(self, root: int, members: List[TreeMember], clients: Dict[int, AgentClient]) -> None:
        self.root = root
        self.members = members
        self.clients = clients
        self.gone: List[int] = []  # members that exited since the tree was opened
        self.reach = _Reach()

    @classmethod
    def open(
        cls,
        pid: int,
        inject_if_needed: bool = True,
        follow: bool = True,
        timeout: float = 10.0,
        method: str = "auto",
        on_event: Optional[Callable[[int, dict], None]] = None,
    ) -> Tree:
        """Reach every member (injecting the ones without an agent); all or a clear error."""
        members = process_tree(pid)
        masters = {pid} | {m.pid for m in members if m.children}
        reach = _Reach(inject_if_needed, follow, timeout, method, on_event, masters)
        outcomes = _parallel(reach, [m.pid for m in members])
        clients = {pid_: o.value for pid_, o in outcomes.items() if o.ok}
        tree = cls(pid, [m for m in members if m.pid in clients], clients)
        tree.reach = reach
        tree.gone = [pid_ for pid_, o in outcomes.items() if o.gone]
        problem = refusal(outcomes, "cannot be reached")
        if problem is not None:
            tree.close()
            raise LuAttachError(problem + " (nothing was done in the tree of %d)" % pid)
        if not clients:
            raise LuAttachError("every process of the tree of %d exited" % pid)
        return tree

    @property
    def pids(self) -> List[int]:
        return [m.pid for m in self.members]

    def close(self) -> None:
        for client in self.clients.values():
            client.close()

    def __enter__(self) -> Tree:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def each(self, op: str, pids: Optional[Sequence[int]] = None, **args: Any) -> Dict[int, Outcome]:
        """The same request to every member (or to `pids`) at once."""
        return self.each_with(op, lambda pid: args, pids)

    def each_with(
        self, op: str, args_of: Callable[[int], Dict[str, Any]], pids: Optional[Sequence[int]] = None
    ) -> Dict[int, Outcome]:
        """One request per member, with arguments of its own."""
        members = list(self.pids if pids is None else pids)  # an empty list is no member, not every one
        outcomes = _parallel(lambda pid: self.clients[pid].request(op, **args_of(pid)), members)
        for pid, outcome in outcomes.items():
            if outcome.gone and pid not in self.gone:
                self.gone.append(pid)
        return outcomes

    # -- tool sessions -----------------------------------------------------------------
    def first_free_id(self, pids: Optional[Sequence[int]] = None) -> int:
        free = self.each("next_id", pids)
        problem = refusal(free, "cannot take the update")
        if problem:
            raise LuAttachError(problem)
        return max([o.value for o in free.values() if o.ok] or [1])

    def start(self, op: str, pids: Optional[Sequence[int]] = None, leased: bool = False, **args: Any) -> TreeSessions:
        """Start tool request `op` in every member (or `pids`), numbered alike; at least one must take it.

        leased: each member holds the session under a lease of this client (reverted if lu goes away)."""
        members = list(pids or self.pids)
        first_id = self.first_free_id(members)
        request, request_args = ("leased", {"request": op, "args": args}) if leased else (op, args)
        outcomes = self.each_with(
            "numbered", lambda pid: {"request": request, "args": request_args, "first_id": first_id}, members
        )
        sessions = TreeSessions()
        for pid, outcome in sorted(outcomes.items()):
            if outcome.ok:
                sessions.started[pid] = outcome.value
            elif not outcome.gone and outcome.error is not None:
                sessions.skipped[pid] = outcome.error
        if not sessions.started:
            problem = refusal(outcomes, "refused")
            raise LuAttachError(problem or "every process of the tree of %d exited" % self.root)
        return sessions

    def newcomers(self) -> List[int]:
        """Reach the Python processes that joined the tree since it was opened (--follow); their pids."""
        try:
            members = process_tree(self.root)
        except LuAttachError:
            return []
        new = {m.pid: m for m in members if m.pid not in self.clients and m.pid not in self.gone}
        outcomes = _parallel(self.reach, list(new))
        for pid, outcome in outcomes.items():
            if outcome.ok:
                self.clients[pid] = outcome.value
                self.members.append(new[pid])
        return sorted(pid for pid, outcome in outcomes.items() if outcome.ok)

    def stop(self, sessions: TreeSessions) -> None:
        """Revert every member's session (members that exited meanwhile have nothing to revert)."""
        living = [pid for pid in sessions.started if pid in self.clients]
        self.each_with("revert", lambda pid: {"ids": sessions.ids_of(pid)}, living)

    def snapshot(self, sessions: TreeSessions) -> List[Dict[str, Any]]:
        """Every member's current figures of its session, as records (each carries its pid)."""
        living = [pid for pid in sessions.started if pid in self.clients]
        outcomes = self.each_with("snapshot", lambda pid: {"sessions": [str(i) for i in sessions.ids_of(pid)]}, living)
        return [record for o in outcomes.values() if o.ok for record in o.value["records"]]

    def run(
        self,
        duration: float,
        sessions: Optional[TreeSessions] = None,
        start: Optional[Callable[[List[int]], TreeSessions]] = None,
        on_event: Optional[Callable[[int, dict], None]] = None,
        follow: bool = False,
        poll: float = 0.5,
        started: Optional[Callable[[], None]] = None,
    ) -> bool:
        """Let a tree session run `duration` seconds: events to on_event(pid, event), newcomers brought in.

        With follow, processes that join the tree meanwhile are reached and
        given the session too (`start(pids)`), and their sessions merged into
        `sessions`. False when Ctrl-C cut it short. started() is called first, inside the span where
        Ctrl-C means "stop early" (as profiling.run_for's).
        """
        stop = threading.Event()
        readers: List[threading.Thread] = []
        events: queue.Queue[Tuple[int, dict]] = queue.Queue(maxsize=10000)

        def read(pid: int) -> None:  # on its own thread; events are handed to the caller's thread
            client = self.clients[pid]
            while not stop.is_set():
                try:
                    message = client.wait_event(0.25)
                except LuAttachError:
                    return  # the member exited; the others go on
                if message is not None:
                    events.put((pid, message.get("data") or {}))

        def listen(pids: Sequence[int]) -> None:
            if on_event is None:
                return
            for pid in pids:
                reader = threading.Thread(target=read, args=(pid,), name="lu-events-%d" % pid, daemon=True)
                reader.start()
                readers.append(reader)

        deadline = time.monotonic() + duration
        next_poll = time.monotonic() + poll
        try:
            if started is not None:
                started()
            listen(list(sessions.started) if sessions is not None else self.pids)
            while True:
                now = time.monotonic()
                if now >= deadline:
                    return True
                try:
                    pid, event = events.get(timeout=max(0.0, min(deadline, next_poll) - now))
                    if on_event is not None:
                        on_event(pid, event)
                    continue
                except queue.Empty:
                    pass
                if time.monotonic() < next_poll:
                    continue
                next_poll = time.monotonic() + poll
                if follow and start is not None and sessions is not None:
                    new = self.newcomers()
                    if new:
                        try:
                            more = start(new)
                        except LuAttachError:
                            continue
                        sessions.started.update(more.started)
                        sessions.skipped.update(more.skipped)
                        listen(list(more.started))
        except Stopped:
            raise  # killed: the caller reverts on the way out, and lu exits
        except KeyboardInterrupt:
            return False
        finally:
            stop.set()
            for reader in readers:
                reader.join(1.0)
            while on_event is not None and not events.empty():
                pid, event = events.get_nowait()
                on_event(pid, event)

    # -- updates -----------------------------------------------------------------------
    def patch(
        self, source: str, filename: str, pids: Optional[Sequence[int]] = None, first_id: Optional[int] = None
    ) -> TreePatch:
        """Apply a patch file in every member (or `pids`), all or nothing, under one set of ids."""
        living = list(pids or self.pids)
        if first_id is None:
            first_id = self.first_free_id(living)
        prepared = self.each("prepare", living, source=source, filename=filename, first_id=first_id)
        ready = {pid: o.value for pid, o in prepared.items() if o.ok}

        def abort() -> None:
            self.each_with("abort", lambda pid: {"token": ready[pid]["token"]}, list(ready))

        problem = refusal(prepared, "refused the patch")
        if problem:
            abort()
            raise LuAttachError(problem + " (nothing was applied in the tree)")
        applying = {pid: r for pid, r in ready.items() if r["waiting_for"] is None}
        if not applying:
            abort()
            first = next(iter(ready.values()), None)
            raise LuAttachError(
                "no process of the tree of %d has what the patch changes: %s"
                % (self.root, first["error"] if first else "every member exited")
            )
        id_lists = {pid: list(r["ids"]) for pid, r in applying.items()}
        ids = next(iter(id_lists.values()))
        odd = [pid for pid, got in id_lists.items() if got != ids]
        if odd:
            abort()
            raise LuAttachError(
                "the patch applies different updates in process %d (ids %s) and process %d (ids %s); "
                "nothing was applied" % (next(iter(id_lists)), ids, odd[0], id_lists[odd[0]])
            )
        committed = self.each_with("commit", lambda pid: {"token": ready[pid]["token"], "ids": ids}, list(ready))
        problem = refusal(committed, "could not apply the patch")
        if problem:
            done = [pid for pid, o in committed.items() if o.ok and o.value["ids"]]
            self.each("revert", done, ids=ids)
            raise LuAttachError(problem + " (the others reverted it: nothing stays applied)")
        result = TreePatch(ids=ids, gone=sorted(set(self.gone)))
        for pid, outcome in committed.items():
            if outcome.ok:
                if outcome.value["waiting_for"]:
                    result.waiting[pid] = outcome.value["waiting_for"]
                else:
                    result.applied.append(pid)
        return result

    def keep_patched(
        self,
        source: str,
        filename: str,
        ids: Sequence[int],
        seconds: Optional[float] = None,
        told: Optional[Callable[[int, str], None]] = None,
        poll: float = 0.5,
        started: Optional[Callable[[], None]] = None,
    ) -> None:
        """--follow: give the patch to every process that joins the tree, until Ctrl-C (or `seconds`).

        A forked newcomer has it already (inherited, or applied on import); a
        spawned one is a new interpreter and gets it here, under the same ids,
        or keeps it waiting until it imports the module. started() is called first, inside the span where
        Ctrl-C ends the follow (SIGTERM and SIGHUP go on up: lu exits as killed).
        """
        end = time.monotonic() + seconds if seconds is not None else None
        try:
            if started is not None:
                started()
            while end is None or time.monotonic() < end:
                time.sleep(poll if end is None else max(0.0, min(poll, end - time.monotonic())))
                for pid in self.newcomers():
                    try:
                        have = {i for item in self.clients[pid].request("ls") for i in item.get("ids") or [item["id"]]}
                        if set(ids) <= have:
                            message = "has it already (forked from a process that has it)"
                        else:
                            result = self.patch(source, filename, pids=[pid], first_id=ids[0])
                            message = "waits for %s" % result.waiting[pid] if pid in result.waiting else "got it"
                    except LuAttachError as exc:
                        message = "could not get it: %s" % exc
                    if told is not None:
                        told(pid, message)
        except Stopped:
            raise
        except KeyboardInterrupt:
            return

    def revert(self, ids: Sequence[int] = (), everything: bool = False) -> Dict[int, List[int]]:
        """Revert these ids (or everything) wherever they are in the tree; pid -> the ids it reverted."""
        listed = self.each("ls")
        problem = refusal(listed, "cannot list its updates")
        if problem:
            raise LuAttachError(problem)
        known = {
            pid: {i for item in o.value for i in item.get("ids") or [item["id"]]} for pid, o in listed.items() if o.ok
        }
        if not everything:
            missing = [i for i in ids if not any(i in have for have in known.values())]
            if missing:
                raise LuAttachError(
                    "no update with id %s in the tree of %d (lu ls %d --tree lists them)"
                    % (", ".join(map(str, missing)), self.root, self.root)
                )
        todo = {pid: sorted(have if everything else have & set(ids)) for pid, have in known.items()}
        todo = {pid: these for pid, these in todo.items() if these}
        outcomes = self.each_with("revert", lambda pid: {"ids": todo[pid]}, list(todo))
        problem = refusal(outcomes, "could not revert")
        if problem:
            raise LuAttachError(problem)
        return {pid: o.value for pid, o in outcomes.items() if o.ok}

    def listing(self) -> List[Dict[str, Any]]:
        """Every update in the tree once, with the members that have it: what `lu ls --tree` shows."""
        listed = self.each("ls")
        problem = refusal(listed, "cannot list its updates")
        if problem:
            raise LuAttachError(problem)
        by_id: Dict[int, Dict[str, Any]] = {}
        for pid in self.pids:
            outcome = listed.get(pid)
            if outcome is None or not outcome.ok:
                continue
            for item in outcome.value:
                entry = by_id.setdefault(item["id"], dict(item, processes={}))
                if entry["kind"] == "waiting" and item.get("kind") != "waiting":  # the row shows what applies
                    entry.update(item, processes=entry["processes"])
                where = entry["processes"]
                if item.get("kind") == "waiting":
                    where.setdefault("waiting", []).append(pid)
                elif item.get("inherited_from"):
                    where.setdefault("inherited", []).append(pid)
                else:
                    where.setdefault("applied", []).append(pid)
        return [by_id[i] for i in sorted(by_id)]
