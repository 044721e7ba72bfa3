"""`--tree` on real multi-process servers under load: one update for every worker, workers started later included.

Each server runs in its own venv (tests/servers.py), serves treeapp, and is
kept busy by a bounded client on 127.0.0.1 for the whole test: attaching to
every process, patching, killing a worker and reverting must not fail a
single request.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from typing import Set

import psutil
import pytest
from conftest import REPO, assert_one_line_error, lu_ok, run_lu, until
from servers import Load, Server, celery_worker, fork_pool, gunicorn, needs_servers, uvicorn

pytestmark = pytest.mark.xdist_group("servers")

PATCH = """\
from lu_payloads import Redefine, UpdateManager


def body():
    return b"patched"


UpdateManager.apply_update(Redefine("treeapp.views", None, {"treeapp.views.body": body}))
"""


@pytest.fixture
def patch_file(tmp_path):
    path = tmp_path / "fix_body.py"
    path.write_text(PATCH)
    return str(path)


def bodies_by_worker(server: Server, workers: Set[int], rounds: int = 400) -> dict:
    """The last body each of `workers` answered, asking until all of them answered (or rounds run out)."""
    last: dict = {}
    for _ in range(rounds):
        pid, body = server.get()
        if pid in workers:
            last[pid] = body
        if set(last) == workers:
            break
    return last


def alive(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def tree_ls(pid: int) -> dict:
    return {item["id"]: item for item in json.loads(lu_ok("ls", pid, "--tree", "--json"))}


@needs_servers
@pytest.mark.parametrize(
    "preload, worker_class, threads",
    [(False, "sync", 1), (True, "sync", 1), (False, "gthread", 4)],
    ids=["sync", "sync-preload", "gthread"],
)
def test_gunicorn_tree_patch_reaches_every_worker_and_the_ones_forked_later(patch_file, preload, worker_class, threads):
    with gunicorn(workers=3, worker_class=worker_class, preload=preload, threads=threads) as server:
        with Load(server.port) as load:
            out = lu_ok("patch", server.pid, patch_file, "--tree")
            assert "applied update 1 in " in out
            workers = set(server.workers())
            assert bodies_by_worker(server, workers) == dict.fromkeys(workers, b"patched")

            listed = tree_ls(server.pid)[1]
            assert listed["kind"] == "redefine"
            assert set(listed["processes"].get("applied", [])) >= workers
            if preload:  # the master imported the app: the patch applied there too
                assert server.pid in listed["processes"]["applied"]
            else:  # it has not: it keeps the patch for the workers it forks
                assert listed["processes"]["waiting"] == [server.pid]

            victim = sorted(workers)[0]
            with load.paused():  # a SIGKILLed worker drops the request it holds: the kill's failure, not lu's
                os.kill(victim, signal.SIGKILL)
                until(lambda: not alive(victim), "the killed worker is gone")
            until(lambda: len(set(server.workers()) - workers) == 1, "gunicorn replaced the killed worker")
            (replacement,) = set(server.workers()) - workers
            first = bodies_by_worker(server, {replacement})
            assert first == {replacement: b"patched"}
            assert (replacement, b"original") not in load.answers  # patched from its very first request

            out = lu_ok("revert", server.pid, "1", "--tree")
            assert out.startswith("reverted 1 in ")
            now = set(server.workers())
            assert replacement in now
            assert bodies_by_worker(server, now) == dict.fromkeys(now, b"original")
            assert tree_ls(server.pid) == {}
        assert load.failed == 0, load.errors
        assert load.ok > 0


@needs_servers
def test_uvicorn_tree_patch_reaches_the_spawned_workers(patch_file):
    with uvicorn(workers=2) as server:
        with Load(server.port) as load:
            lu_ok("patch", server.pid, patch_file, "--tree")
            workers = set(server.workers())
            assert bodies_by_worker(server, workers) == dict.fromkeys(workers, b"patched")
            lu_ok("revert", server.pid, "--all", "--tree")
            assert bodies_by_worker(server, workers) == dict.fromkeys(workers, b"original")
        assert load.failed == 0, load.errors


@needs_servers
def test_uvicorn_follow_gives_the_patch_to_a_worker_spawned_later(patch_file):
    """Spawned workers inherit nothing: `--follow` keeps lu running and brings the newcomer in."""
    with uvicorn(workers=2) as server:
        follower = subprocess.Popen(
            [sys.executable, "-m", "lu_cli.main", "patch", str(server.pid), patch_file, "--tree", "--follow"],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            cwd=REPO,
        )
        try:
            workers = set(server.workers())
            until(
                lambda: bodies_by_worker(server, workers, rounds=20) == dict.fromkeys(workers, b"patched"),
                "both workers answer patched",
            )
            os.kill(sorted(workers)[0], signal.SIGKILL)
            until(lambda: len(set(server.workers()) - workers) == 1, "uvicorn spawned a new worker", timeout=30)
            (newcomer,) = set(server.workers()) - workers
            try:
                until(
                    lambda: bodies_by_worker(server, {newcomer}, rounds=20).get(newcomer) == b"patched",
                    "the spawned worker answers patched",
                )
            except AssertionError as failed:
                follower.send_signal(signal.SIGINT)
                out, err = follower.communicate(timeout=30)
                raise AssertionError((str(failed), "follower said:", out[-3000:], err[-3000:]))
        finally:
            if follower.poll() is None:
                follower.send_signal(signal.SIGINT)
        out, err = follower.communicate(timeout=30)
        assert follower.returncode == 0, err
        assert "process %d joined the tree: got it" % newcomer in out or (
            "process %d joined the tree: waits for" % newcomer in out
        ), out
        lu_ok("revert", server.pid, "1", "--tree")
        now = set(server.workers())
        assert bodies_by_worker(server, now) == dict.fromkeys(now, b"original")


@needs_servers
def test_celery_prefork_tree_patch_reaches_the_pool(patch_file):
    with celery_worker(concurrency=2, stop_timeout=1) as worker:
        lu_ok("patch", worker.pid, patch_file, "--tree")
        worker.send_ping(6)
        results = worker.wait_results(6)
        assert {body for _, body in results} == {"patched"}
        lu_ok("revert", worker.pid, "1", "--tree")
        worker.send_ping(4)
        after = worker.wait_results(10)[6:]
        assert {body for _, body in after} == {"original"}, after


def test_fork_pool_tree_patch_and_revert(patch_file):
    with fork_pool() as pool:
        lu_ok("patch", pool.pid, patch_file, "--tree")
        workers = set(pool.workers())

        def patched_in_all() -> bool:
            recent = pool.results()[-30:]
            return {pid for pid, body in recent if body == "patched"} >= workers

        until(patched_in_all, "every pool worker returns the patched body")
        lu_ok("revert", pool.pid, "--all", "--tree")
        mark = len(pool.results())
        until(lambda: len(pool.results()) > mark + 9, "the pool worked on after the revert")
        assert {body for _, body in pool.results()[mark + 3 :]} == {"original"}


def test_tree_of_one_process_is_the_process(start_target, patch_file, tmp_path):
    target = start_target(sys.executable, "sleeper.py")
    out = lu_ok("inject", target.pid, "--tree")
    assert "agents run in 1 process of the tree of %d" % target.pid in out
    assert tree_ls(target.pid) == {}


def test_tree_without_python_is_one_clear_error(patch_file):
    sleeper = subprocess.Popen(["sleep", "30"])
    try:
        result = run_lu("patch", str(sleeper.pid), patch_file, "--tree")
        assert_one_line_error(result, "no Python process in the tree of %d" % sleeper.pid)
    finally:
        sleeper.kill()
        sleeper.wait()


@needs_servers
def test_a_member_that_refuses_leaves_nothing_applied_anywhere(tmp_path):
    with gunicorn(workers=2) as server:
        workers = sorted(server.workers())
        refuse = tmp_path / "refuse.py"
        refuse.write_text("import os\nif os.getpid() == %d:\n    raise RuntimeError('not here')\n" % workers[1] + PATCH)
        result = run_lu("patch", str(server.pid), str(refuse), "--tree", timeout=120)
        assert_one_line_error(result, "process %d refused the patch" % workers[1], "not here", "nothing was applied")
        assert tree_ls(server.pid) == {}
        assert bodies_by_worker(server, set(workers)) == dict.fromkeys(workers, b"original")


@needs_servers
def test_a_patch_no_member_can_apply_is_refused(tmp_path):
    with gunicorn(workers=2) as server:
        typo = tmp_path / "typo.py"
        typo.write_text(PATCH.replace('"treeapp.views"', '"treeapp.veiws"').replace("treeapp.views.body", "x.body"))
        result = run_lu("patch", str(server.pid), str(typo), "--tree", timeout=120)
        assert_one_line_error(result, "no process of the tree of %d has what the patch changes" % server.pid)
        assert tree_ls(server.pid) == {}
