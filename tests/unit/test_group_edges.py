"""lu_attach.group at its edges: a --follow poll with no newcomer, and a request to no member."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any, Dict, List

from lu_attach import group
from lu_attach.group import Tree


class FakeClient:
    def __init__(self, pid: int, asked: List[Any]) -> None:
        self.pid, self.asked = pid, asked

    def request(self, op: str, **args: Any) -> Dict[str, Any]:
        self.asked.append((self.pid, op, args))
        return {"pid": self.pid}


def test_a_follow_poll_that_finds_no_newcomer_finds_nothing(monkeypatch):
    tree = Tree(100, [], {})
    monkeypatch.setattr(group, "process_tree", lambda root: [])
    assert tree.newcomers() == []  # it raised "max_workers must be greater than 0", ending lu's --follow


def member(pid: int) -> Any:
    """A stand-in TreeMember: the group reads only its pid here."""
    return SimpleNamespace(pid=pid)


def test_a_request_to_no_member_goes_to_none_and_none_means_every_member():
    asked: List[Any] = []
    tree = Tree(100, [member(101), member(102)], {pid: FakeClient(pid, asked) for pid in (101, 102)})
    assert tree.each_with("revert", lambda pid: {"ids": [1]}, []) == {}
    assert asked == []  # before, an empty list meant every member: a revert of sessions they never had
    assert sorted(tree.each("ls")) == [101, 102]
    assert sorted(pid for pid, _op, _args in asked) == [101, 102]
