"""A change made for a limited time dies with the lu that made it, however that lu ends.

`lu profile PID F --duration 60` is killed (SIGKILL: no chance to clean up;
SIGTERM and SIGHUP, an ssh session dropping: lu reverts first), or its
connection simply drops: within the lease's grace time the target runs its
original code again, and `lu ls` is empty. A client that reconnects in time
keeps its change. Changes meant to stay are never leased.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import pytest
from conftest import REPO, lu_ok, until
from interpreters import EVERY

from lu_attach.client import open_client
from lu_attach.runtime import TargetProcess
from lu_payloads.leases import GRACE_SECONDS

pytestmark = pytest.mark.xdist_group("leases")


def ls(pid: int) -> list:
    return json.loads(lu_ok("ls", pid, "--json"))


def timed_profile(pid: int) -> subprocess.Popen:
    """`lu profile PID __main__.work --duration 60`, once its change is in force."""
    client = subprocess.Popen(
        [sys.executable, "-m", "lu_cli.main", "profile", str(pid), "__main__.work", "--duration", "60"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=REPO,
    )
    until(lambda: [u for u in ls(pid) if u.get("held_by")], "the timed profile is applied")
    (held,) = ls(pid)
    assert held["held_by"]["holder"] == client.pid and held["held_by"]["state"] == "held", held
    return client


@pytest.mark.parametrize("python", EVERY)
def test_a_timed_change_of_a_killed_lu_is_reverted_within_the_grace_time(python, start_target):
    target = start_target(python, "heartbeat.py")
    lu_ok("inject", target.pid)
    client = timed_profile(target.pid)
    os.kill(client.pid, signal.SIGKILL)
    client.wait(10)
    killed = time.monotonic()
    until(lambda: ls(target.pid) == [], "the agent reverted the orphaned change", timeout=GRACE_SECONDS + 10)
    assert time.monotonic() - killed >= GRACE_SECONDS - 0.5  # it waited for the client to come back first
    with open("/proc/%d/root/tmp/lu-%d/agent-%d.log" % (target.pid, os.getuid(), target.pid)) as handle:
        log = handle.read()
    assert "the lu that held it (pid %d) went away" % client.pid in log


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGHUP], ids=["SIGTERM", "SIGHUP"])
def test_lu_stopped_by_a_signal_reverts_before_it_exits(signum, start_target):
    target = start_target(sys.executable, "heartbeat.py")
    lu_ok("inject", target.pid)
    client = timed_profile(target.pid)
    os.kill(client.pid, signum)
    _out, err = client.communicate(timeout=30)
    assert client.returncode == 128 + signum
    assert err.strip().splitlines()[-1] == "lu: error: stopped by %s" % signal.Signals(signum).name
    assert ls(target.pid) == []  # reverted by lu itself, not left for the lease


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGKILL], ids=["SIGTERM", "SIGKILL"])
def test_a_streaming_debug_ended_by_timeout_or_kill_leaves_nothing(signum, start_target):
    """`timeout 2 lu debug PID F --duration 30` (SIGTERM), or a kill -9 of it while it streams."""
    target = start_target(sys.executable, "heartbeat.py")
    lu_ok("inject", target.pid)
    client = subprocess.Popen(
        [sys.executable, "-m", "lu_cli.main", "debug", str(target.pid), "__main__.work", "--duration", "30"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=REPO,
    )
    assert client.stdout is not None
    assert "call __main__.work" in client.stdout.readline()  # streaming
    os.kill(client.pid, signum)
    client.communicate(timeout=30)
    until(lambda: ls(target.pid) == [], "the debugger is gone", timeout=GRACE_SECONDS + 10)
    assert target.alive()


def test_a_dropped_connection_loses_the_change_and_a_reconnecting_client_keeps_it(start_target):
    target = start_target(sys.executable, "heartbeat.py")
    lu_ok("inject", target.pid)
    process = TargetProcess.of(target.pid)

    first = open_client(process)
    result = first.request("leased", request="profile", args={"patterns": ["__main__.work"]})
    token, ids = result["lease"], result["ids"]
    first.close()  # the connection drops ...
    second = open_client(process)
    assert second.request("lease_keep", token=token) == ids  # ... and the client is back in time
    time.sleep(GRACE_SECONDS + 1)
    assert [u["id"] for u in ls(target.pid)] == ids
    assert ls(target.pid)[0]["held_by"]["state"] == "held"

    second.close()  # gone for good this time
    until(lambda: ls(target.pid) == [], "the change is reverted", timeout=GRACE_SECONDS + 10)
    third = open_client(process)
    try:
        with pytest.raises(Exception, match="no lease"):
            third.request("lease_keep", token=token)
    finally:
        third.close()


def test_changes_meant_to_stay_are_not_leased(start_target, tmp_path):
    target = start_target(sys.executable, "heartbeat.py")
    lu_ok("profile", target.pid, "__main__.work")  # no --duration: stays until reverted
    time.sleep(GRACE_SECONDS + 1)
    (update,) = ls(target.pid)
    assert update["held_by"] is None
    lu_ok("revert", target.pid, "--all")


def test_a_client_back_before_the_agent_saw_it_leave_keeps_its_change(start_target):
    """The old connection's end may reach the agent after the new one took the lease: that end changes nothing."""
    target = start_target(sys.executable, "heartbeat.py")
    lu_ok("inject", target.pid)
    process = TargetProcess.of(target.pid)
    for _ in range(5):  # the order of the two is up to the agent's threads: try it several times
        first = open_client(process)
        result = first.request("leased", request="profile", args={"patterns": ["__main__.work"]})
        second = open_client(process)
        second.request("lease_keep", token=result["lease"])  # taken over first ...
        first.close()  # ... then the old connection ends
        time.sleep(GRACE_SECONDS + 0.5)
        assert [u["id"] for u in ls(target.pid)] == result["ids"]
        second.request("revert", ids=result["ids"])
        second.close()
