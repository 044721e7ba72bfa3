"""Profiles of coroutines checked against known work, on every interpreter and under uvicorn.

An awaited coroutine must sit under the coroutine that awaited it; its
running time (what it ran) and its wall time (start to finish, awaits
included) are reported apart; calls not finished when the profile ends are
shown with their time so far. The targets run known CPU loops and sleeps, so
each figure has a floor the profile must reach and a ceiling it must not pass
(the ceilings leave room for a loaded machine).
"""

from __future__ import annotations

import json

import pytest
from conftest import run_lu
from interpreters import ALL, EVERY
from servers import Load, needs_servers, uvicorn

PY = next(p.values[0] for p in ALL if p.values[0])
FUNCTIONS = ("__main__.handler", "__main__.mid", "__main__.leaf", "__main__.cpu", "__main__.stuck")


def child(call: dict, name: str) -> dict:
    found = [c for c in call["children"] if c["function"] == name]
    assert len(found) == 1, (name, [c["function"] for c in call["children"]])
    return found[0]


def threads_of(report: dict) -> dict:
    (process,) = report["processes"]
    return {t["thread"]: t for t in process["threads"]}


def profile_json(pid: int, *patterns: str, duration: str = "2") -> dict:
    result = run_lu("profile", pid, *patterns, "--duration", duration, "--json", timeout=120)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


@pytest.mark.parametrize("python", EVERY)
def test_awaited_coroutines_nest_with_running_and_wall_time(python, start_target):
    target = start_target(python, "async_service.py")
    threads = threads_of(profile_json(target.pid, *FUNCTIONS))

    roots = threads["MainThread"]["calls"]
    # Nothing but handler at the top, and cpu called by a mid() that had begun before the profile did.
    handler = roots[0]
    assert handler["function"] == "__main__.handler", roots
    assert all(c["function"] == "__main__.cpu" and c["hits"] <= 2 for c in roots[1:]), roots
    mid = child(handler, "__main__.mid")
    leaf = child(mid, "__main__.leaf")
    assert [c["function"] for c in leaf["children"]] == ["__main__.cpu"]
    assert {c["function"] for c in mid["children"]} == {"__main__.leaf", "__main__.cpu"}
    assert handler["hits"] >= 10 and mid["hits"] >= handler["hits"] and leaf["hits"] >= mid["hits"]
    # Running per call: the CPU loops only (20 ms in leaf, 10 more in mid), never the sleeps.
    assert 20 <= leaf["per_hit_ms"] < 20 + 10, leaf
    assert 30 <= mid["per_hit_ms"] < 30 + 12, mid
    assert 30 <= handler["per_hit_ms"] < 30 + 15, handler
    # Wall per call: start to finish, sleeps included (50 ms in leaf, 30 more in handler).
    assert leaf["wall_per_hit_ms"] >= 70 and mid["wall_per_hit_ms"] >= 80 and handler["wall_per_hit_ms"] >= 110
    # A handler starts every 100 ms and lasts over 110: one is always in flight when the profile ends.
    assert handler.get("open", 0) >= 1 and handler["open_wall_ms"] > 0, handler

    # A plain function in a C call: its finished calls are counted, the one in progress is shown so far.
    (stuck,) = threads["stuck"]["calls"]
    assert stuck["function"] == "__main__.stuck" and "wall_ms" not in stuck
    assert stuck["hits"] >= 1 and 990 <= stuck["per_hit_ms"] < 1300, stuck
    assert stuck["open"] == 1 and 0 < stuck["open_wall_ms"] <= 1300, stuck


@pytest.mark.parametrize("python", EVERY)
def test_calls_running_since_before_the_profile_are_shown_not_finished(python, start_target):
    """A worker already deep in a long call never reaches the woven timer: it is found on its stack."""
    target = start_target(python, "long_call.py")
    threads = threads_of(profile_json(target.pid, "__main__.outer", "__main__.inner", duration="1"))
    (outer,) = threads["long-worker"]["calls"]
    inner = child(outer, "__main__.inner")
    for call in (outer, inner):
        assert call["hits"] == 0 and call["open"] == 1 and call["open_before"] == 1, call
        assert 900 <= call["open_wall_ms"] < 5000, call  # since the profile started: at least that
    text = run_lu("profile", target.pid, "__main__.outer", "--duration", "0.5", timeout=120).stdout
    assert "__main__.outer has not finished" in text and "it started before the profile" in text, text
    assert "started before)" in text, text


def test_the_text_report_labels_running_wall_and_unfinished(start_target):
    target = start_target(PY, "async_service.py")
    result = run_lu("profile", target.pid, *FUNCTIONS, "--duration", "1.5", timeout=120)
    assert result.returncode == 0, result.stderr
    text = result.stdout
    assert "running" in text and "wall per hit" in text and "not finished" in text, text
    assert "awaits included" in text and "so far" in text, text


@needs_servers
def test_uvicorn_coroutines_nest_under_the_request_that_awaited_them():
    with uvicorn(workers=1) as server:
        (worker,) = server.workers() or [server.pid]  # one worker: uvicorn serves in its master
        with Load(server.port, rate=40, path="/slow") as load:
            threads = threads_of(profile_json(worker, "treeapp.views.*"))
        assert load.failed == 0, load
    roots = threads["MainThread"]["calls"]
    assert roots[0]["function"] == "treeapp.views.asgi", roots
    assert all(c["hits"] <= 2 for c in roots[1:]), roots  # called by requests that began before the profile
    page = child(roots[0], "treeapp.views.slow_page")
    part = child(page, "treeapp.views.fetch_part")
    assert {c["function"] for c in part["children"]} == {"treeapp.views.spin", "treeapp.views.body"}
    assert page["hits"] >= 10
    # fetch_part: 3 ms of CPU in 23 ms or more; slow_page: 2 ms more of its own.
    assert 3 <= part["per_hit_ms"] < 3 + 6 and part["wall_per_hit_ms"] >= 20 + 3, part
    assert 5 <= page["per_hit_ms"] < 5 + 8 and page["wall_per_hit_ms"] >= 20 + 5, page
