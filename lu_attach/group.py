"""Acting on a process tree as one: every member reached at once, an update all or nothing.

`Tree.open(pid)` finds the tree (tree.py), injects the members that have no
agent (in parallel: a tree of 32 costs about what one injection costs) and
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
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, List, Optional, Sequence

from .client import AgentClient, open_client
from .errors import AgentGone, LuAttachError
from .inject import inject
from .runtime import TargetProcess
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
            return Outcome(pid, error=str(exc), gone=not _alive(pid))
        except LuAttachError as exc:
            return Outcome(pid, error=str(exc), gone=not _alive(pid))

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


class Tree:
    """Clients to every member of a process tree (use as a context manager)."""

    def __init__(self, root: int, members: List[TreeMember], clients: Dict[int, AgentClient]) -> None:
        self.root = root
        self.members = members
        self.clients = clients
        self.gone: List[int] = []  # members that exited since the tree was opened

    @classmethod
    def open(
        cls,
        pid: int,
        inject_if_needed: bool = True,
        follow: bool = True,
        timeout: float = 10.0,
        method: str = "ptrace",
        on_event: Optional[Callable[[int, dict], None]] = None,
    ) -> Tree:
        """Reach every member (injecting the ones without an agent); all or a clear error."""
        members = process_tree(pid)

        def reach(member_pid: int) -> AgentClient:
            if inject_if_needed:
                inject(member_pid, timeout=timeout, method=method)
            handler = (lambda event: on_event(member_pid, event)) if on_event is not None else None
            client = open_client(TargetProcess.of(member_pid), on_event=handler)
            if follow:
                try:
                    client.request("follow", on=True)
                except BaseException:
                    client.close()
                    raise
            return client

        outcomes = _parallel(reach, [m.pid for m in members])
        clients = {pid_: o.value for pid_, o in outcomes.items() if o.ok}
        tree = cls(pid, [m for m in members if m.pid in clients], clients)
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
        outcomes = _parallel(lambda pid: self.clients[pid].request(op, **args_of(pid)), list(pids or self.pids))
        for pid, outcome in outcomes.items():
            if outcome.gone and pid not in self.gone:
                self.gone.append(pid)
        return outcomes

    # -- updates -----------------------------------------------------------------------
    def patch(self, source: str, filename: str) -> TreePatch:
        """Apply a patch file in every member, all or nothing, under one set of ids."""
        free = self.each("next_id")
        problem = refusal(free, "cannot take the update")
        if problem:
            raise LuAttachError(problem)
        living = [pid for pid, o in free.items() if o.ok]
        first_id = max(o.value for pid, o in free.items() if o.ok)
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
