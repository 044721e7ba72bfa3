"""The harness of tests/servers.py itself: every real server starts, serves treeapp from each worker, and stops.

If these fail, the --tree tests built on the harness would fail for reasons that are not lu's.
"""

from __future__ import annotations

import time

import psutil
import pytest
from servers import Load, celery_worker, fork_pool, gunicorn, needs_servers, uvicorn

pytestmark = pytest.mark.xdist_group("servers")


def _gone(pids):
    """Whether none of pids is still running (a zombie counts as gone: its parent was stopped first)."""
    for pid in pids:
        try:
            if psutil.Process(pid).status() != psutil.STATUS_ZOMBIE:
                return False
        except psutil.NoSuchProcess:
            pass
    return True


@needs_servers
def test_gunicorn_sync_workers_answer_from_distinct_pids():
    with gunicorn(workers=3) as server:
        workers = server.workers()
        assert len(workers) == 3, server.descendants()
        answers = server.answers(3)
        assert {pid for pid, _ in answers} == set(workers)
        assert {body for _, body in answers} == {b"original"}
        tree = [server.pid] + server.descendants()
    assert _gone(tree)


@needs_servers
def test_uvicorn_workers_answer():
    with uvicorn(workers=2) as server:
        workers = server.workers()
        assert len(workers) == 2, server.descendants()
        assert set(workers) < set(server.descendants())  # the resource tracker is in the tree, not a worker
        answers = server.answers(2)
        assert {pid for pid, _ in answers} == set(workers)
        assert {body for _, body in answers} == {b"original"}
        tree = [server.pid] + server.descendants()
    assert _gone(tree)


@needs_servers
def test_celery_worker_runs_pings_in_its_pool():
    with celery_worker(concurrency=2) as worker:
        workers = worker.workers()
        assert len(workers) == 2, worker.descendants()
        worker.send_ping(4)
        results = worker.wait_results(4)
        assert len(results) == 4
        assert {body for _, body in results} == {"original"}
        assert {pid for pid, _ in results} <= set(workers)
        tree = [worker.pid] + worker.descendants()
    assert _gone(tree)


def test_fork_pool_writes_results_from_three_workers():
    """fork_pool.py needs only the standard library: it runs on lu's python, with or without the servers venv."""
    with fork_pool() as pool:
        workers = pool.workers()
        assert len(workers) == 3
        deadline = time.monotonic() + 10
        while len({pid for pid, _ in pool.results()}) < 3 and time.monotonic() < deadline:
            time.sleep(0.05)
        results = pool.results()
        assert {pid for pid, _ in results} == set(workers), results
        assert {body for _, body in results} == {"original"}
        tree = [pool.pid] + workers
    assert _gone(tree)


def test_fork_pool_makes_its_pool_after_the_delay():
    with fork_pool(delay=1.0, wait=False) as pool:
        assert pool.workers() == []
        pool.wait_ready()
        assert len(pool.workers()) == 3


@needs_servers
def test_load_counts_no_failures_against_gunicorn():
    with gunicorn(workers=3) as server:
        workers = server.workers()
        with Load(server.port) as load:
            time.sleep(1.5)
    assert load.failed == 0, load
    assert load.ok > 50, load
    assert load.bodies() == {b"original"}
    assert {pid for pid, _ in load.answers} <= set(workers), load.answers


@needs_servers
def test_load_counts_failures_when_nothing_answers():
    with gunicorn(workers=1) as server:
        port = server.port
    with Load(port) as load:
        time.sleep(0.3)
    assert load.ok == 0 and load.failed > 0 and load.errors, load
