"""Programs monkey-patched by gevent or eventlet: the agent runs on real threads and serves every command.

The targets run from a venv of their own (./dev makes it), never lu's.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import urllib.request

import pytest
from conftest import REPO, run_lu

GREEN = os.path.join(REPO, ".cache", "target-venvs", "green", "bin", "python")
pytestmark = pytest.mark.skipif(
    not os.path.exists(GREEN), reason="no gevent/eventlet target venv (./dev test makes %s)" % GREEN
)


@pytest.mark.parametrize("script", ["gevent_service.py", "eventlet_service.py"])
def test_agent_serves_in_a_monkey_patched_program(script, start_target):
    target = start_target(GREEN, script)
    port = int(target.ready_line.split()[1])

    def get():
        with urllib.request.urlopen("http://127.0.0.1:%d/" % port, timeout=10) as response:
            return json.loads(response.read())

    assert get()["price"] == 3.3
    injected = run_lu("inject", target.pid, "--json", timeout=60)
    assert injected.returncode == 0, injected.stderr
    session = run_lu("attach", target.pid, input="print(6 * 7)\n", timeout=60)
    assert session.returncode == 0 and "42" in session.stdout, session.stderr
    debug = subprocess.Popen(
        [sys.executable, "-m", "lu_cli.main", "debug", str(target.pid), "__main__.price", "--duration", "3"],
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    time.sleep(1.5)
    for _ in range(3):
        assert get()["price"] == 3.3
    out, err = debug.communicate(timeout=60)
    assert debug.returncode == 0, err
    assert "call __main__.price" in out and "-> 3.3" in out, (out, err)
    assert run_lu("detach", target.pid).returncode == 0
    assert get()["price"] == 3.3 and target.alive()


def total_hits(calls, name):
    """Hits of `name` anywhere in a thread's call tree."""
    return sum((call["hits"] if call["function"] == name else 0) + total_hits(call["children"], name) for call in calls)


@pytest.mark.parametrize(("script", "body_line"), [("gevent_service.py", 16), ("eventlet_service.py", 18)])
def test_every_request_of_a_green_service_is_profiled_once(script, body_line, start_target):
    """Each request runs on a greenlet of its own, whose ident the next one reuses: none may hide another."""
    target = start_target(GREEN, script)
    port = int(target.ready_line.split()[1])
    assert run_lu("inject", target.pid, timeout=60).returncode == 0
    profile = subprocess.Popen(
        [sys.executable, "-m", "lu_cli.main", "profile", str(target.pid), "__main__.app", "__main__.price"]
        + ["--lines", "__main__.app:%d" % body_line, "--duration", "4", "--json"],
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    time.sleep(1.5)  # applied by then (it says so on stderr; the requests below all fall inside the profile)
    requests = 0
    for _ in range(300):
        with urllib.request.urlopen("http://127.0.0.1:%d/" % port, timeout=10) as response:
            response.read()
        requests += 1
    out, err = profile.communicate(timeout=60)
    assert profile.returncode == 0, err
    (process,) = json.loads(out)["processes"]
    threads = process["threads"]
    assert sum(total_hits(t["calls"], "__main__.app") for t in threads) == requests
    assert sum(total_hits(t["calls"], "__main__.price") for t in threads) == requests
    assert sum(row["hits"] for t in threads for row in t["lines"] if row["line"] == body_line) == requests
