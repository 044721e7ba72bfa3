"""Reading logs: the one line reader (records.py), sessions left undecoded, and `lu report`'s default logs."""

from __future__ import annotations

import json
import os
from typing import Any, Dict, List

import pytest
from click.testing import CliRunner

from lu_attach.events import read_events
from lu_attach.report import ReportError, load_logs
from lu_attach.report import records as records_module
from lu_attach.report.logs import load_default
from lu_attach.report.records import LogFile, LogLines, read_head
from lu_cli.main import cli

MS = 1_000_000


def snapshot(session: str, when: float, hits: int, pid: int = 4510, thread_id: int = 1, **extra: Any) -> Dict[str, Any]:
    """A `calls` record as the recorder writes it (its keys in its order: the head first)."""
    record: Dict[str, Any] = {
        "lu": 1,
        "type": "calls",
        "pid": pid,
        "session": session,
        "thread": "MainThread",
        "thread_id": thread_id,
        "time": when,
        "nodes": [{"function": "app.work", "parent": -1, "hits": hits, "total_ns": hits * MS}],
    }
    record.update(extra)
    return record


def started(session: str, when: float, pid: int = 4510, ended: Any = None) -> Dict[str, Any]:
    record = {"lu": 1, "type": "session", "pid": pid, "session": session, "time": when, "started": when}
    if ended is not None:
        record["ended"] = ended
    return record


def event(session: str, when: float, pid: int = 4510) -> Dict[str, Any]:
    return {
        "lu": 1,
        "type": "event",
        "pid": pid,
        "session": session,
        "thread": "MainThread",
        "thread_id": 1,
        "time": when,
        "kind": "call",
        "function": "app.work",
        "line": 3,
        "data": {"args": {"session": "'9'"}},  # a "session" key inside: only the head's counts
    }


def write(path: Any, lines: List[Any], tail: str = "") -> str:
    with open(path, "w") as f:
        f.write("".join((line if isinstance(line, str) else json.dumps(line)) + "\n" for line in lines) + tail)
    return str(path)


def broken(record: Dict[str, Any]) -> str:
    """The record's line with its end garbled: the head still reads, the whole line is no JSON."""
    return json.dumps(record)[:-20] + "#garbled"


def hits(report: Any) -> Dict[int, int]:
    return {
        pid: sum(root.hits for thread in proc.threads.values() for root in thread.roots.values())
        for pid, proc in report.processes.items()
    }


# -- the line reader ------------------------------------------------------------------------


def test_heads_are_read_without_decoding_and_other_lines_are_decoded(tmp_path):
    log = write(
        tmp_path / "a.jsonl",
        [
            {"lu": 1, "type": "header", "pid": 4510},
            snapshot("1", 5.0, 3),
            {"type": "calls", "lu": 1, "pid": 4510, "session": "1", "nodes": []},  # another key order: decoded
            "not json",
            "[1, 2]",
            "",
        ],
        tail='{"lu": 1, "type": "calls", "pid": 4510, "ses',
    )
    with LogLines(LogFile(log)) as lines:
        read = list(lines)
        assert [line.lineno for line in read] == [1, 2, 3]
        assert read[0].record == {"lu": 1, "type": "header", "pid": 4510} and read[0].head is None
        assert read[1].record is None and read[1].head == ("calls", 4510, "1", "MainThread", 1, 5.0)
        assert read[2].head is None and read[2].record is not None
        assert lines.record_at(read[1].offset, read[1].lineno) == snapshot("1", 5.0, 3)
        assert lines.records == 3
        assert lines.skipped.messages() == [
            f"{log}: skipped 1 non-JSON line (line 4)",
            f"{log}: skipped 1 JSON line that is not an lu record (line 5)",
            f"{log}: the last line (7) is cut short; skipped it",
        ]


def test_a_head_whose_line_is_garbled_counts_as_non_json_when_decoded(tmp_path):
    log = write(tmp_path / "a.jsonl", [broken(snapshot("1", 1.0, 1))])
    with LogLines(LogFile(log)) as lines:
        for line in lines:
            assert line.head is not None and lines.decode(line) is None
        assert lines.skipped.count == 1 and "non-JSON line (line 1)" in lines.skipped.messages()[0]


def test_a_line_too_long_is_skipped_and_the_next_one_read(tmp_path, monkeypatch):
    monkeypatch.setattr(records_module, "MAX_LINE", 100)
    log = write(tmp_path / "a.jsonl", [snapshot("1", 1.0, 1), snapshot("1", 2.0, 2)])
    with LogLines(LogFile(log)) as lines:
        assert list(lines) == []
        assert "2 lines longer than" in lines.skipped.messages()[0]


def test_heads_with_escapes_and_odd_values():
    record = snapshot('a"\\', 1.5e9, 1, thread_id=-12)
    record["thread"] = "Thread-3 (\u00e9\n)"
    head = read_head(json.dumps(record).encode() + b"\n")
    assert head == ("calls", 4510, 'a"\\', "Thread-3 (\u00e9\n)", -12, 1.5e9)
    record["thread_id"] = None
    assert read_head(json.dumps(record).encode())[4] is None
    assert read_head(json.dumps({**record, "lu": 2}).encode()) is None  # another version: decoded whole
    assert read_head(b'{"lu": 1, "type": "table", "pid": 1}') is None


def test_a_line_that_begins_like_the_one_before_is_still_read_whole(tmp_path):
    log = write(
        tmp_path / "a.jsonl",
        [event("1", 1.0), event("1", 2.0), {**event("1", 3.0), "thread_id": 12}, {**event("1", 4.0), "time": "x"}],
    )
    with LogLines(LogFile(log)) as lines:
        heads = [(line.head.thread_id, line.head.time) if line.head else line.record["time"] for line in lines]
    assert heads == [(1, 1.0), (1, 2.0), (12, 3.0), "x"]  # thread 1 is a prefix of thread 12: told apart


# -- sessions not shown are not decoded --------------------------------------------------------


def test_the_latest_session_decodes_none_of_the_others(tmp_path):
    log = write(
        tmp_path / "a.jsonl",
        [
            started("1", 1.0, ended=9.0),
            broken(snapshot("1", 5.0, 10)),  # garbled: read only if session 1 is shown
            snapshot("1", 8.0, 20),
            started("2", 10.0),
            snapshot("2", 11.0, 1),
            snapshot("2", 12.0, 2),
            event("2", 12.5),
        ],
    )
    latest = load_logs([log], latest_only=True)
    assert latest.shown == ["2"] and hits(latest) == {4510: 2} and latest.events == 1
    assert latest.warnings == []
    both = load_logs([log])
    assert hits(both) == {4510: 22}
    assert both.warnings == []  # session 1's newest snapshot is all --all needs of it: the garbled one is older
    one = load_logs([log], sessions=["1"])
    assert hits(one) == {4510: 20} and one.events == 0


def test_a_garbled_newest_snapshot_gives_way_to_the_one_before(tmp_path):
    log = write(
        tmp_path / "a.jsonl",
        [snapshot("1", 1.0, 1), snapshot("1", 2.0, 2), broken(snapshot("1", 3.0, 3)), snapshot("1", 3.5, 9, nodes=7)],
    )
    report = load_logs([log], latest_only=True)
    assert hits(report) == {4510: 2}
    assert f"{log}: skipped 1 non-JSON line (line 3)" in report.warnings
    assert any("malformed lu record (line 4: no nodes list)" in w for w in report.warnings)


def test_snapshots_without_time_lose_to_those_with_one(tmp_path):
    untimed = snapshot("1", 0.0, 7)
    del untimed["time"]
    log = write(tmp_path / "a.jsonl", [snapshot("1", 4.0, 4), untimed, snapshot("1", 2.0, 2)])
    assert hits(load_logs([log])) == {4510: 4}


def test_a_session_asked_for_that_is_not_there_is_one_line(tmp_path):
    log = write(tmp_path / "a.jsonl", [started("1", 1.0), snapshot("1", 2.0, 1), started("2", 3.0)])
    with pytest.raises(ReportError) as e:
        load_logs([log], sessions=["7"])
    assert str(e.value) == "no session 7 in the logs (sessions: 1, 2)"
    result = CliRunner().invoke(cli, ["report", log, "--session", "7"])
    assert result.exit_code == 1
    assert result.stderr == "lu: error: no session 7 in the logs (sessions: 1, 2)\n"


def test_the_latest_session_is_the_latest_run_with_the_runs_of_its_id_going_on_then(tmp_path):
    # pid 1 ran session 1 long ago; pids 2 and 3 ran session 1 together (a tree) much later
    old = write(tmp_path / "lu-1.jsonl", [started("1", 10.0, pid=1, ended=20.0), snapshot("1", 15.0, 100, pid=1)])
    tree = [
        write(tmp_path / "lu-2.jsonl", [started("1", 1000.0, pid=2), snapshot("1", 1001.0, 2, pid=2)]),
        write(tmp_path / "lu-3.jsonl", [started("1", 1000.5, pid=3), snapshot("1", 1001.0, 3, pid=3)]),
    ]
    report = load_logs([old, *tree], latest_only=True)
    assert hits(report) == {2: 2, 3: 3}
    assert hits(load_logs([old, *tree])) == {1: 100, 2: 2, 3: 3}  # --all adds up everything named


# -- what `lu report` reads without LOG ---------------------------------------------------


@pytest.fixture
def agent_dir(tmp_path):
    logs = tmp_path / ("lu-%d" % os.geteuid()) / "logs"
    logs.mkdir(parents=True)
    os.chmod(logs.parent, 0o700)
    os.chmod(logs, 0o700)
    return logs


def aged(path: str, mtime: float) -> str:
    os.utime(path, (mtime, mtime))
    return path


def test_the_default_reads_the_newest_logs_and_shows_the_processes_of_the_latest_run(agent_dir):
    now = 1_800_000_000.0
    old = [
        aged(write(agent_dir / f"lu-{pid}.jsonl", [started("1", now - 7200, pid=pid, ended=now - 7100)]), now - 7100)
        for pid in range(100, 110)
    ]
    unrelated = aged(  # written until just now, but by sessions other than the latest
        write(
            agent_dir / "lu-200.jsonl",
            [started("1", now - 3600, pid=200, ended=now - 3500), snapshot("1", now - 3500, 50, pid=200)]
            + [started("3", now - 600, pid=200, ended=now - 20), snapshot("3", now - 20, 5, pid=200)],
        ),
        now - 20,
    )
    latest = aged(
        write(
            agent_dir / "lu-300.jsonl",
            [started("1", now - 100, pid=300, ended=now - 90), snapshot("1", now - 90, 1, pid=300)]
            + [started("2", now - 30, pid=300), snapshot("2", now - 10, 2, pid=300)],
        ),
        now - 10,
    )
    report = load_default(tmp_dirs=[str(agent_dir.parent.parent)])
    assert report.files == [latest, unrelated]  # the older logs cannot hold a later session: not opened
    assert not set(old) & set(report.files)
    assert hits(report) == {300: 2} and report.shown == ["2"]
    every = load_default(latest_only=False, tmp_dirs=[str(agent_dir.parent.parent)])
    assert hits(every) == {300: 3}  # --all: every session of the process that ran the latest
    assert [s.id for s in every.sessions] == ["1", "2"]
    with pytest.raises(ReportError) as e:
        load_default(sessions=["7"], tmp_dirs=[str(agent_dir.parent.parent)])
    assert str(e.value) == (
        "no session 7 in the log of process 300, which ran the latest session; name a log or --pid for others"
        " (sessions: 1, 2)"
    )


def test_the_default_with_no_logs_is_one_clear_error(tmp_path):
    with pytest.raises(ReportError, match="no lu logs found; name a log file"):
        load_default(tmp_dirs=[str(tmp_path)])


# -- events read through the same reader ---------------------------------------------------


def test_events_skip_snapshots_undecoded_and_say_what_they_skipped(tmp_path):
    log = write(
        tmp_path / "a.jsonl",
        [started("1", 1.0), event("1", 2.0), broken(snapshot("1", 3.0, 1)), "garbage", event("1", 4.0)],
        tail='{"lu": 1, "type": "event", "pid": 4510, "ses',
    )
    found = read_events([log], pid=4510)
    assert [r["time"] for r in found.records] == [2.0, 4.0] and found.shown == ["1"]
    assert found.skipped == 2
    assert found.warnings == [
        f"{log}: skipped 1 non-JSON line (line 4)",
        f"{log}: the last line (6) is cut short; skipped it",
    ]
