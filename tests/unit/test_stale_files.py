"""What an injection clears from lu's directories: files of processes that are gone, once old enough.

Agents' sockets and descriptions go with their process; agents' logs and the
sessions' logs in lu's default log directory stay for a week after it, for
post-mortems, and then go: one is left per profiled process, and a host that
recycles workers would otherwise pile them up without end.
"""

from __future__ import annotations

import os
import time

from lu_attach import safefs
from lu_attach.staging import LOG_KEEP_SECONDS, _remove_stale_in

ALIVE = {222, 444}
OLD = time.time() - LOG_KEEP_SECONDS - 3600
NEW = time.time() - 60


def make(directory, files):
    for name, mtime in files.items():
        path = directory / name
        path.write_text("x")
        os.utime(str(path), (mtime, mtime))


def left_after(clean, directory):
    with safefs.open_dir(str(directory)) as opened:
        clean(opened, lambda pid: pid in ALIVE)
    return sorted(os.listdir(str(directory)))


def test_session_logs_of_gone_processes_go_after_a_week(tmp_path):
    make(
        tmp_path,
        {
            "lu-111.jsonl": OLD,  # gone, old: goes
            "lu-111.jsonl.1": OLD,  # its rotated half too
            "lu-222.jsonl": OLD,  # its process still runs: stays
            "lu-333.jsonl": NEW,  # gone, but recent: stays
            "lu-444.1700000000000000000.jsonl": OLD,  # set aside by a later process of pid 444: goes
            "lu-555-7.jsonl": OLD,  # a session's own file, as in a --log-dir: not of this directory's kind
            "notes.jsonl": OLD,  # not lu's name
        },
    )
    assert left_after(_remove_stale_in, tmp_path) == [
        "lu-222.jsonl",
        "lu-333.jsonl",
        "lu-555-7.jsonl",
        "notes.jsonl",
    ]


def test_agents_files_go_with_their_process_and_their_logs_after_a_week(tmp_path):
    make(
        tmp_path,
        {
            "agent-111.sock": NEW,  # gone: goes at once
            "agent-111.json": NEW,
            "agent-111.log": OLD,  # gone and old: goes
            "agent-222.log": OLD,  # alive: stays
            "agent-333.log": NEW,  # gone, recent: stays
        },
    )
    assert left_after(_remove_stale_in, tmp_path) == ["agent-222.log", "agent-333.log"]


def test_recent_logs_do_not_ask_whether_their_process_lives(tmp_path):
    """Every injection sweeps the agent's directory, where a busy host keeps thousands of logs of the last
    week: asking /proc about each made every injection tens of ms slower, for files that stay anyway."""
    make(tmp_path, {"agent-%d.log" % pid: NEW for pid in range(1000, 1100)})
    make(tmp_path, {"lu-%d.jsonl" % pid: NEW for pid in range(1000, 1100)})
    make(tmp_path, {"agent-111.sock": NEW, "agent-333.log": OLD})
    asked = []
    with safefs.open_dir(str(tmp_path)) as opened:
        _remove_stale_in(opened, lambda pid: asked.append(pid) or pid in ALIVE)
    assert sorted(asked) == [111, 333]  # a socket goes with its process; an old log may go
    assert len(os.listdir(str(tmp_path))) == 200


class _Target:
    pid = 1
    uid = 1000


def sweeps_of(monkeypatch):
    from lu_attach import staging

    swept = []
    monkeypatch.setattr(staging, "remove_stale", lambda stage, target, runtime: swept.append(target.uid))
    return swept


def test_a_sweep_runs_once_a_minute_per_user_and_its_stamp_is_in_lus_stage(tmp_path, monkeypatch):
    """A sweep lstat()s every file of the agents' directory (thousands on a busy host): one a minute is
    enough for files kept for days, and the injections of a tree share one."""
    from lu_attach.staging import SWEEP_EVERY, SWEPT, Stage, sweep_if_due

    swept = sweeps_of(monkeypatch)
    with safefs.open_dir(str(tmp_path)) as opened:
        stage = Stage(dir=opened, target_path=str(tmp_path))
        target, other = _Target(), _Target()
        other.uid = 1001
        assert sweep_if_due(stage, target, opened)  # never swept: due
        assert not sweep_if_due(stage, target, opened)
        assert sweep_if_due(stage, other, opened)  # another user's directory has its own stamp
        assert swept == [1000, 1001]
        stamp = tmp_path / (SWEPT % 1000)
        past = time.time() - SWEEP_EVERY - 1
        os.utime(str(stamp), (past, past))
        assert sweep_if_due(stage, target, opened)
        assert not sweep_if_due(stage, target, opened)
        future = time.time() + 3600  # the clock was set back since: a stamp from the future is due
        os.utime(str(stamp), (future, future))
        assert sweep_if_due(stage, target, opened)
    assert swept == [1000, 1001, 1000, 1000]
    assert sorted(os.listdir(str(tmp_path))) == [SWEPT % 1000, SWEPT % 1001]


def test_a_stage_that_refuses_the_stamp_skips_the_sweep(tmp_path, monkeypatch):
    from lu_attach.staging import SWEPT, Stage, sweep_if_due

    swept = sweeps_of(monkeypatch)
    os.symlink("/etc/passwd", str(tmp_path / (SWEPT % 1000)))  # never followed
    os.utime(str(tmp_path / (SWEPT % 1000)), (1, 1), follow_symlinks=False)  # and long due
    with safefs.open_dir(str(tmp_path)) as opened:
        assert not sweep_if_due(Stage(dir=opened, target_path=str(tmp_path)), _Target(), opened)
    assert swept == [] and os.readlink(str(tmp_path / (SWEPT % 1000))) == "/etc/passwd"
