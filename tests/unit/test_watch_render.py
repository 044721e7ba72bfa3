"""How `lu watch` renders its session's events: the lines a person reads, and the JSON lines of --json.

The session (lu_attach.watch) reports records; the command chooses one
renderer. These tests pin both: the human text is what lu watch has always
printed (scripts and people already read it), and the JSON keeps every name
list as a field of its own.
"""

from __future__ import annotations

import dataclasses
import json
from typing import Any

import pytest

from lu_attach.watch import Changes, CheckRun, Ended, Refused, Saved, Watching
from lu_cli.commands.watch import Line, human_lines, json_record

FILE = "/srv/app/shop.py"


def saved(**overrides: Any) -> Saved:
    """A save applied as update 3 in process 40, with what `overrides` changes."""
    base = Saved(
        pid=40,
        file=FILE,
        id=3,
        changes=Changes(updated=["shop.price"], added=["shop.coupon"], moved=["shop.helper"]),
        lines=["updated shop.price", "added shop.coupon"],
        notes=["not run: shop.py:3: TAX = 2 (module-level statements are not re-run)"],
        processes={40: 3},
    )
    return dataclasses.replace(base, **overrides)


# ----------------------------------------------------------------------------- for a person
def test_watching_says_which_files_of_which_process():
    event = Watching(pid=40, files=["/srv/app/b.py", "/srv/app/a.py"], processes=[40], tree=False)
    assert human_lines(event) == [Line("watching 2 files of process 40: a.py, b.py")]


def test_watching_a_tree_counts_its_processes_and_warns_on_stderr_of_files_not_watched():
    event = Watching(pid=40, files=[FILE], processes=[40, 41, 42], tree=True, not_watched=["/etc/x.py"])
    assert human_lines(event) == [
        Line(
            "lu: not watching 1 file outside the paths named or not readable by the target's user: /etc/x.py",
            err=True,
        ),
        Line("watching 1 file of the tree of 40 (3 processes): shop.py"),
    ]


def test_a_save_is_the_target_lines_then_its_notes_then_the_check():
    event = saved(check=CheckRun(module="shop_check", ran=4, passed=True, failures=[]))
    assert human_lines(event) == [
        Line("updated shop.price"),
        Line("added shop.coupon"),
        Line("not run: shop.py:3: TAX = 2 (module-level statements are not re-run)"),
        Line("check shop_check passed (4 tests)"),
    ]


def test_a_reverted_save_is_said_on_stderr_with_each_failure():
    event = saved(reverted=True, check=CheckRun(module="shop_check", ran=2, passed=False, failures=["t.test_a: boom"]))
    assert human_lines(event) == [
        Line(
            "lu: check shop_check failed (1 of 2 tests); the save of shop.py was reverted, nothing applied",
            err=True,
        ),
        Line("  t.test_a: boom", err=True),
    ]


def test_a_refused_save_is_one_line_on_stderr():
    event = Refused(pid=40, file=FILE, message="shop.py:9: SyntaxError: invalid syntax; nothing applied")
    assert human_lines(event) == [Line("lu: shop.py:9: SyntaxError: invalid syntax; nothing applied", err=True)]


def test_the_end_counts_the_saves_and_says_nothing_when_an_error_ended_it():
    assert human_lines(Ended(pid=40, applied=1)) == [Line("stopped watching process 40 (1 save applied)")]
    assert human_lines(Ended(pid=40, applied=0)) == [Line("stopped watching process 40 (0 saves applied)")]
    assert human_lines(Ended(pid=40, applied=2, error="process 40 exited; stopped watching")) == []


# ----------------------------------------------------------------------------- for a script
def test_saves_are_applied_unchanged_or_reverted_with_their_names_as_lists():
    record = json_record(saved())
    assert json.loads(json.dumps(record)) == {
        "event": "applied",
        "pid": 40,
        "file": FILE,
        "id": 3,
        "processes": {"40": 3},
        "check": None,
        "updated": ["shop.price"],
        "rebound": [],
        "added": ["shop.coupon"],
        "moved": ["shop.helper"],
        "pruned": [],
        "ran": [],
        "reapplied": [],
        "removed": [],
        "not_run": [],
    }
    unchanged = json_record(saved(id=None, processes={}, changes=Changes(removed=["shop.old"])))
    assert unchanged["event"] == "unchanged" and unchanged["id"] is None and unchanged["removed"] == ["shop.old"]
    reverted = json_record(saved(reverted=True, check=CheckRun(module="c", ran=1, passed=False, failures=["t: no"])))
    assert reverted["event"] == "reverted"
    assert reverted["check"] == {"module": "c", "ran": 1, "passed": False, "failures": ["t: no"]}


@pytest.mark.parametrize(
    "event, expected",
    [
        (
            Watching(pid=40, files=[FILE], processes=[40, 41], tree=True),
            {"event": "watching", "pid": 40, "files": [FILE], "processes": [40, 41], "tree": True, "not_watched": []},
        ),
        (
            Refused(pid=40, file=FILE, message="no"),
            {"event": "error", "pid": 40, "file": FILE, "message": "no"},
        ),
        (Ended(pid=40, applied=2), {"event": "stopped", "pid": 40, "applied": 2, "error": None}),
    ],
)
def test_every_event_names_its_kind_and_process(event, expected):
    assert json_record(event) == expected


def test_a_record_is_one_line_of_json_whatever_the_target_put_in_a_name():
    record = json_record(saved(changes=Changes(updated=["shop.\x1b[2Jevil\nname"])))
    line = json.dumps(record, sort_keys=True)
    assert "\n" not in line and "\x1b" not in line
    assert json.loads(line)["updated"] == ["shop.\x1b[2Jevil\nname"]


# ----------------------------------------------------------------------------- the target's answer
def test_changes_come_from_the_names_the_target_sends():
    answer = {"names": {"updated": ["m.f"], "moved": ["m.g", 7], "removed": "m.h"}, "lines": ["updated m.x"]}
    assert Changes.from_answer(answer) == Changes(updated=["m.f"], moved=["m.g"])


def test_an_older_agent_without_names_is_read_from_its_lines_and_notes():
    answer = {
        "lines": [
            "updated m.f",
            "added m.C.meth",
            "rebound m.C.hello (its free variables changed (none -> __class__): a new function object; ...)",
            "pruned m.old",
            "ran m.py:2: import os",
        ],
        "notes": [
            "removed m.gone (still in the process; --prune deletes it)",
            "not run: m.py:3: TAX = 2 (module-level statements are not re-run)",
        ],
    }
    assert Changes.from_answer(answer) == Changes(
        updated=["m.f"],
        added=["m.C.meth"],
        rebound=["m.C.hello"],
        pruned=["m.old"],
        ran=["m.py:2: import os"],
        removed=["m.gone"],
        not_run=["m.py:3: TAX = 2 (module-level statements are not re-run)"],
    )
