"""Real multi-process Python servers (gunicorn, uvicorn, celery, a fork pool) for tests that act on a process tree.

A `--tree` feature acts on a master and all its workers, so its tests need the real thing: servers that fork
or spawn their workers the way they do in production. They all serve tests/targets/treeapp, whose
views.body() is what a patch redefines and whose every answer names the worker that gave it.

The servers run from a venv of their own (./dev makes it), never lu's: lu must work in a process that has
them, not need them. A test that needs that venv is skipped with `needs_servers`'s reason when it is missing.
Every server runs in a session of its own so that stopping it also ends whatever workers it left behind.
"""

from __future__ import annotations

import contextlib
import glob
import http.client
import os
import select
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Iterator, List, Optional, Sequence, Set, Tuple

import psutil
import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
TARGETS = os.path.join(HERE, "targets")
SERVERS_VENV = os.path.join(REPO, ".cache", "target-venvs", "servers")
SERVERS_REASON = "no gunicorn/uvicorn/celery target venv (./dev test makes %s)" % SERVERS_VENV

# Helper processes a server's master starts besides its workers; they serve nothing.
_HELPERS = ("resource_tracker", "semaphore_tracker", "forkserver")


def servers_python() -> Optional[str]:
    """The servers venv's python, or None when the venv is missing or lacks one of the servers.

    Checked by looking for the packages rather than importing them, so that collecting tests stays fast.
    """
    python = os.path.join(SERVERS_VENV, "bin", "python")
    if not os.access(python, os.X_OK):
        return None
    for package in ("gunicorn", "uvicorn", "celery"):
        if not glob.glob(os.path.join(SERVERS_VENV, "lib", "python*", "site-packages", package, "__init__.py")):
            return None
    return python


# Mark for tests that start a server: a missing venv is a skip that says why, never a silent pass.
needs_servers = pytest.mark.skipif(servers_python() is None, reason=SERVERS_REASON)


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now (the OS picks it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def parse_answer(data: bytes) -> Tuple[int, bytes]:
    """treeapp's answer "<body> <pid>" as (pid, body)."""
    body, _, pid = data.rpartition(b" ")
    return int(pid), body


def http_get(port: int, path: str = "/", timeout: float = 5.0) -> Tuple[int, bytes]:
    """One GET on a fresh connection (so that any worker may take it): (worker pid, body); raises on non-200."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        connection.request("GET", path, headers={"Connection": "close"})
        response = connection.getresponse()
        data = response.read()
        if response.status != 200:
            raise RuntimeError("HTTP %d: %r" % (response.status, data[:200]))
        return parse_answer(data)
    finally:
        connection.close()


def _children(pid: int, recursive: bool = False) -> List[psutil.Process]:
    try:
        return psutil.Process(pid).children(recursive=recursive)
    except psutil.NoSuchProcess:
        return []


def _serving_children(pid: int) -> List[int]:
    """The children of pid that are workers: not multiprocessing's resource tracker or fork server."""
    pids = []
    for child in _children(pid):
        try:
            command = " ".join(child.cmdline())
        except psutil.Error:
            continue
        if not any(helper in command for helper in _HELPERS):
            pids.append(child.pid)
    return sorted(pids)


def _exited(pid: int) -> bool:
    """Whether our child pid has exited, without reaping it: while it is a zombie its process group stays ours."""
    try:
        return os.waitid(os.P_PID, pid, os.WEXITED | os.WNOHANG | os.WNOWAIT) is not None
    except ChildProcessError:
        return True


def _read_log(path: str) -> str:
    try:
        with open(path, errors="replace") as log:
            return log.read()
    except OSError:
        return ""


def _start(command: Sequence[str], log_path: str, env: Optional[dict] = None) -> subprocess.Popen:
    """Start command in tests/targets (so treeapp imports), in a session of its own, logging to log_path.

    The output goes to a file, not a pipe: a pipe nobody reads fills up and blocks a server that logs.
    """
    full_env = dict(os.environ, PYTHONPATH=TARGETS, PYTHONUNBUFFERED="1")
    full_env.update(env or {})
    with open(log_path, "ab") as log:
        return subprocess.Popen(
            list(command),
            cwd=TARGETS,
            env=full_env,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )


def stop(proc: subprocess.Popen, timeout: float = 10.0) -> None:
    """SIGTERM the master so that it stops its workers its own way; SIGKILL it after timeout seconds.

    Then SIGKILL whatever is left in its process group (workers a test left stopped, say) while the exited
    master, not yet reaped, still holds that group, and reap the master.
    """
    if proc.returncode is None:
        with contextlib.suppress(ProcessLookupError):
            os.kill(proc.pid, signal.SIGTERM)
        deadline = time.monotonic() + timeout
        while not _exited(proc.pid) and time.monotonic() < deadline:
            time.sleep(0.05)
        if not _exited(proc.pid):
            with contextlib.suppress(ProcessLookupError):
                os.kill(proc.pid, signal.SIGKILL)
        left = _group(proc.pid)
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, signal.SIGKILL)
        deadline = time.monotonic() + 5
        while any(_running(process) for process in left) and time.monotonic() < deadline:
            time.sleep(0.02)
    proc.wait(timeout)


def _running(process: psutil.Process) -> bool:
    """Whether process still runs: gone, or a zombie its new parent has yet to reap, is not running."""
    try:
        return process.status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def _group(pgid: int) -> List[psutil.Process]:
    """The live processes of process group pgid (an exited master's workers have another parent by now)."""
    members = []
    for pid in psutil.pids():
        try:
            if os.getpgid(pid) == pgid and pid != pgid:
                members.append(psutil.Process(pid))
        except (OSError, psutil.Error):
            pass
    return members


@dataclass
class Server:
    """A running HTTP server serving treeapp: its master's pid, its port, and its log (stdout and stderr)."""

    name: str
    pid: int
    port: int
    proc: subprocess.Popen
    log_path: str

    def workers(self) -> List[int]:
        """The pids of the processes that serve requests: the master's children, less its helpers."""
        return _serving_children(self.pid)

    def descendants(self) -> List[int]:
        """Every process under the master, helpers included: what a walk of the tree finds."""
        return sorted(child.pid for child in _children(self.pid, recursive=True))

    def get(self, path: str = "/", timeout: float = 5.0) -> Tuple[int, bytes]:
        """One request: (pid of the worker that answered, body)."""
        return http_get(self.port, path, timeout)

    def log(self) -> str:
        return _read_log(self.log_path)

    def answers(self, count: int, timeout: float = 20.0) -> Set[Tuple[int, bytes]]:
        """The distinct (pid, body) answers seen until count distinct pids answered; fails after timeout seconds.

        Tests that patched every worker use this to see that each of them answers with the new body.
        """
        seen: Set[Tuple[int, bytes]] = set()
        deadline = time.monotonic() + timeout
        last_error = ""
        while len({pid for pid, _ in seen}) < count:
            if _exited(self.pid):
                raise RuntimeError("%s exited while starting:\n%s" % (self.name, self.log()))
            if time.monotonic() > deadline:
                raise RuntimeError(
                    "%s: %d of %d workers answered in %.0f s (answers %s, last error %s); its log:\n%s"
                    % (self.name, len({p for p, _ in seen}), count, timeout, sorted(seen), last_error, self.log())
                )
            try:
                seen.add(self.get(timeout=2.0))
            except Exception as exc:
                last_error = repr(exc)
                time.sleep(0.05)
        return seen


@contextlib.contextmanager
def _serving(
    name: str, command: List[str], port: int, workers: int, timeout: float, stop_timeout: float
) -> Iterator[Server]:
    directory = tempfile.mkdtemp(prefix="lu-test-%s-" % name)
    log_path = os.path.join(directory, "log")
    proc = _start(command, log_path)
    try:
        server = Server(name, proc.pid, port, proc, log_path)
        server.answers(workers, timeout)
        yield server
    finally:
        stop(proc, stop_timeout)
        shutil.rmtree(directory, ignore_errors=True)


def _gunicorn_has_control_socket(python: str) -> bool:
    """Recent gunicorn (27 here) listens on ~/.gunicorn/gunicorn.ctl by default: one path for all servers at once."""
    configs = glob.glob(
        os.path.join(
            os.path.dirname(os.path.dirname(python)), "lib", "python*", "site-packages", "gunicorn", "config.py"
        )
    )
    return any("--no-control-socket" in _read_log(path) for path in configs)


@contextlib.contextmanager
def gunicorn(
    workers: int = 3,
    worker_class: str = "sync",
    preload: bool = False,
    threads: int = 1,
    extra_args: Sequence[str] = (),
    timeout: float = 20.0,
    stop_timeout: float = 10.0,
) -> Iterator[Server]:
    """gunicorn serving treeapp.views:wsgi with `workers` forked workers, once every one of them has answered.

    The arguments are gunicorn's own; timeout bounds the start, stop_timeout the graceful stop (then SIGKILL).

    With preload the master imports treeapp before forking (the workers inherit it); without, each worker
    imports it. Note that gunicorn's master kills a worker that has not reported for --timeout (30 s) seconds.
    """
    python = servers_python()
    if python is None:
        pytest.skip(SERVERS_REASON)
    port = free_port()
    command = [python, "-m", "gunicorn", "treeapp.views:wsgi", "-b", "127.0.0.1:%d" % port]
    command += ["-w", str(workers), "-k", worker_class]
    if preload:
        command.append("--preload")
    if threads != 1:
        command += ["--threads", str(threads)]
    if _gunicorn_has_control_socket(python):
        command.append("--no-control-socket")
    with _serving("gunicorn", command + list(extra_args), port, workers, timeout, stop_timeout) as server:
        yield server


@contextlib.contextmanager
def uvicorn(
    workers: int = 2, extra_args: Sequence[str] = (), timeout: float = 20.0, stop_timeout: float = 10.0
) -> Iterator[Server]:
    """uvicorn serving treeapp.views:asgi with `workers` workers, once every one of them has answered.

    uvicorn's workers are *spawned* (fresh interpreters started by multiprocessing's spawn), not forked, and its
    master also has multiprocessing's resource tracker as a child: workers() leaves that one out.
    """
    python = servers_python()
    if python is None:
        pytest.skip(SERVERS_REASON)
    port = free_port()
    command = [python, "-m", "uvicorn", "treeapp.views:asgi", "--host", "127.0.0.1", "--port", str(port)]
    command += ["--workers", str(workers), "--no-access-log"] + list(extra_args)
    with _serving("uvicorn", command, port, workers, timeout, stop_timeout) as server:
        yield server


@dataclass
class CeleryWorker:
    """A running celery worker (prefork pool) on treeapp.tasks, with its broker and results in `directory`."""

    pid: int
    proc: subprocess.Popen
    directory: str
    log_path: str
    env: dict = field(default_factory=dict)

    def workers(self) -> List[int]:
        """The pids of the pool processes (forked by billiard; the same command line as the master)."""
        return _serving_children(self.pid)

    def descendants(self) -> List[int]:
        return sorted(child.pid for child in _children(self.pid, recursive=True))

    def log(self) -> str:
        return _read_log(self.log_path)

    def send_ping(self, n: int = 1) -> None:
        """Enqueue n ping tasks.

        From a subprocess of the servers python: the test process runs in lu's venv, which has no celery.
        The messages are written into an outbox and moved into the queue whole (see treeapp/tasks.py).
        """
        code = "from treeapp.tasks import ping\nfor _ in range(%d):\n    ping.delay()\n" % n
        broker = self.env["TREEAPP_BROKER_DIR"]
        outbox, queue = os.path.join(broker, "outbox"), os.path.join(broker, "queue")
        os.makedirs(outbox, exist_ok=True)
        sent = subprocess.run(
            [str(servers_python()), "-c", code],
            cwd=TARGETS,
            env=dict(os.environ, PYTHONPATH=TARGETS, TREEAPP_OUTBOX=outbox, **self.env),
            capture_output=True,
            text=True,
            timeout=30,
        )
        if sent.returncode != 0:
            raise RuntimeError("could not enqueue %d pings: %s" % (n, sent.stderr))
        for name in sorted(os.listdir(outbox)):
            os.rename(os.path.join(outbox, name), os.path.join(queue, name))

    def results(self) -> List[Tuple[int, str]]:
        """What the pings reported so far: (pid of the pool process that ran it, body), in order."""
        results = []
        for line in _read_log(self.env["TREEAPP_RESULTS"]).splitlines():
            pid, _, body = line.partition(" ")
            results.append((int(pid), body))
        return results

    def wait_results(self, count: int, timeout: float = 20.0) -> List[Tuple[int, str]]:
        """results() once it holds at least count of them; fails after timeout seconds."""
        deadline = time.monotonic() + timeout
        while len(self.results()) < count:
            if _exited(self.pid) or time.monotonic() > deadline:
                raise RuntimeError(
                    "%d of %d pings ran in %.0f s (results %s); the worker's log:\n%s"
                    % (len(self.results()), count, timeout, self.results(), self.log())
                )
            time.sleep(0.05)
        return self.results()


@contextlib.contextmanager
def celery_worker(
    concurrency: int = 2, extra_args: Sequence[str] = (), timeout: float = 20.0, stop_timeout: float = 10.0
) -> Iterator[CeleryWorker]:
    """A celery worker on kombu's filesystem transport (no broker server), once its pool processes exist.

    Its graceful stop takes about 5 s (the worker checks for shutdown between 2-second polls of the broker,
    then joins its pool): a test that does not need it can pass a smaller stop_timeout, after which the
    worker and its pool are killed.

    Its broker and results live in a temporary directory of its own, so workers of parallel tests share nothing.
    """
    python = servers_python()
    if python is None:
        pytest.skip(SERVERS_REASON)
    directory = tempfile.mkdtemp(prefix="lu-test-celery-")
    env = {
        "TREEAPP_BROKER_DIR": os.path.join(directory, "broker"),
        "TREEAPP_RESULTS": os.path.join(directory, "results"),
    }
    log_path = os.path.join(directory, "log")
    command = [python, "-m", "celery", "-A", "treeapp.tasks", "worker", "--pool", "prefork"]
    command += [
        "--concurrency",
        str(concurrency),
        "--loglevel",
        "WARNING",
        "--hostname",
        "treeapp-%d@localhost" % os.getpid(),
    ]
    # Gossip, mingle and heartbeats talk to other workers: there are none, and mingle makes starting slower.
    command += ["--without-gossip", "--without-mingle", "--without-heartbeat"] + list(extra_args)
    proc = _start(command, log_path, env)
    try:
        worker = CeleryWorker(proc.pid, proc, directory, log_path, env)
        deadline = time.monotonic() + timeout
        while len(worker.workers()) < concurrency:
            if _exited(proc.pid) or time.monotonic() > deadline:
                raise RuntimeError(
                    "celery: %d of %d pool processes in %.0f s; its log:\n%s"
                    % (len(worker.workers()), concurrency, timeout, worker.log())
                )
            time.sleep(0.05)
        yield worker
    finally:
        stop(proc, stop_timeout)
        shutil.rmtree(directory, ignore_errors=True)


@dataclass
class ForkPool:
    """tests/targets/fork_pool.py running: a parent with a multiprocessing "fork" Pool(3) mapping work() forever."""

    pid: int
    proc: subprocess.Popen
    results_path: str

    def workers(self) -> List[int]:
        """The pool's worker processes (forked; none before the pool exists)."""
        return _serving_children(self.pid)

    def wait_ready(self, timeout: float = 20.0) -> None:
        """Wait for the "ready <pid>" line the script prints once its pool exists."""
        assert self.proc.stdout is not None
        ready, _, _ = select.select([self.proc.stdout], [], [], timeout)
        line = self.proc.stdout.readline() if ready else ""
        if not line.startswith("ready"):
            stop(self.proc)
            raise RuntimeError(
                "fork_pool.py did not start: %r %s" % (line, self.proc.stderr.read() if self.proc.stderr else "")
            )

    def results(self) -> List[Tuple[int, str]]:
        """Every work() result so far: (pid of the pool worker, body)."""
        results = []
        for line in _read_log(self.results_path).splitlines():
            pid, _, body = line.partition(" ")
            results.append((int(pid), body))
        return results


@contextlib.contextmanager
def fork_pool(delay: float = 0.0, wait: bool = True, python: str = sys.executable) -> Iterator[ForkPool]:
    """fork_pool.py, which makes its pool delay seconds after it starts (a test can act on the parent before).

    It needs only the standard library, so it runs on lu's own python unless told otherwise. With wait, this
    returns once the pool exists; without, the test calls wait_ready() itself.
    """
    directory = tempfile.mkdtemp(prefix="lu-test-fork-pool-")
    results_path = os.path.join(directory, "results")
    proc = subprocess.Popen(
        [python, "-u", os.path.join(TARGETS, "fork_pool.py"), str(delay), results_path],
        cwd=directory,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    try:
        pool = ForkPool(proc.pid, proc, results_path)
        if wait:
            pool.wait_ready(delay + 20.0)
        yield pool
    finally:
        stop(proc)
        shutil.rmtree(directory, ignore_errors=True)


class Load:
    """A bounded client: sequential GETs on 127.0.0.1:port from a background thread until stopped.

    Used as `with Load(port) as load: ...` around an action on a live server, then `assert load.failed == 0`:
    the action must not make any request fail. At most `rate` requests a second, each on a fresh connection
    so that every worker gets some; any exception or non-200 answer counts as a failure.
    """

    def __init__(self, port: int, rate: float = 200.0, timeout: float = 5.0, path: str = "/") -> None:
        self.port = port
        self.path = path
        self.interval = 1.0 / rate
        self.timeout = timeout
        self.ok = 0
        self.failed = 0
        self.errors: List[str] = []  # the first few failures, as text
        self.answers: Counter[Tuple[int, bytes]] = Counter()  # (worker pid, body) -> how many times
        self._stop = threading.Event()
        self._busy = threading.Lock()  # held around each request; paused() takes it to hold the client still
        self._thread = threading.Thread(target=self._run, name="load-%d" % port, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            started = time.monotonic()
            with self._busy:
                try:
                    self.answers[http_get(self.port, self.path, timeout=self.timeout)] += 1
                    self.ok += 1
                except Exception as exc:
                    self.failed += 1
                    if len(self.errors) < 5:
                        self.errors.append(repr(exc))
            self._stop.wait(max(0.0, self.interval - (time.monotonic() - started)))

    def start(self) -> Load:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(self.timeout + 5)

    @contextlib.contextmanager
    def paused(self) -> Iterator[None]:
        """No request in flight for the duration: for what the test does to the server itself.

        SIGKILL of a worker drops the connection it has just accepted; that is the kill's doing, not lu's,
        so a test kills workers inside `with load.paused():` and counts failures only around lu's actions.
        """
        with self._busy:
            yield

    def bodies(self) -> Set[bytes]:
        """The distinct bodies answered so far."""
        return {body for _, body in list(self.answers)}

    def __enter__(self) -> Load:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def __repr__(self) -> str:
        return "Load(port=%d, ok=%d, failed=%d, errors=%r)" % (self.port, self.ok, self.failed, self.errors)
