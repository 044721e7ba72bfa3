"""What a save did, in words and by kind, as the host shows it."""

from __future__ import annotations

from typing import Dict, List, NamedTuple, Optional, TypedDict


class CheckReport(TypedDict):
    ran: int  # how many tests ran
    failures: List[str]  # "test id: last line of its traceback", one per failure or error


class CheckResult(NamedTuple):
    ok: bool
    report: CheckReport


# What a save did, by kind, as names (lines and notes say the same in words): the host shows these to
# scripts (`lu watch --json`). "ran" and "not_run" name statements as "file:line: text".
OUTCOME_KINDS = ("updated", "rebound", "added", "moved", "pruned", "ran", "reapplied", "removed", "not_run")


class OutcomeDict(TypedDict):
    file: str
    lines: List[str]
    notes: List[str]
    names: Dict[str, List[str]]
    moved: int
    id: Optional[int]
    check: Optional[CheckReport]
    reverted: bool


class Outcome:
    def __init__(self, filename: str) -> None:
        self.filename = filename
        self.lines: List[str] = []  # one per change applied
        self.notes: List[str] = []  # reported, not applied
        self.names: Dict[str, List[str]] = {kind: [] for kind in OUTCOME_KINDS}
        self.moved = 0
        self.id: Optional[int] = None
        self.check: Optional[CheckReport] = None
        self.reverted = False

    def as_dict(self) -> OutcomeDict:
        return {
            "file": self.filename,
            "lines": self.lines,
            "notes": self.notes,
            "names": self.names,
            "moved": self.moved,
            "id": self.id,
            "check": self.check,
            "reverted": self.reverted,
        }
