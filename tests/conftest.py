"""Fixtures that start real target processes and run the real `lu` command."""

from __future__ import annotations

import functools
import os
import subprocess
import sys
import threading
import time
from typing import Any, Callable, List, Optional

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
TARGETS = os.path.join(HERE, "targets")


class ReadyProcess:
    """A process that prints "ready ..." on its first line once it is up; killed by the test that started it."""

    def __init__(self, command: List[str], name: str, **popen: Any) -> None:
        self.proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, **popen)
        self.pid = self.proc.pid
        line = self.proc.stdout.readline()
        if not line.startswith("ready"):
            self.kill()
            raise RuntimeError("target %s did not start: %r %s" % (name, line, self.proc.stderr.read()))
        self.ready_line = line.strip()

    def alive(self) -> bool:
        return self.proc.poll() is None

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait(10)

    def stderr_text(self) -> str:
        """What the target printed on stderr (only after it was killed)."""
        try:
            return self.proc.stderr.read()
        except ValueError:
            return ""


class Target(ReadyProcess):
    """A running target process started from tests/targets/<script>."""

    def __init__(
        self,
        python: str,
        script: str,
        args: List[str] = (),
        user: Optional[str] = None,
        cwd: Optional[str] = None,
        env: Optional[dict] = None,
    ):
        targets = os.path.join(nobody_dir(), "targets") if user == "nobody" else TARGETS
        path = script if os.path.isabs(script) else os.path.join(targets, script)
        command = [python, "-u", path] + list(args)
        super().__init__(
            command,
            script,
            preexec_fn=as_nobody if user == "nobody" else None,
            cwd=cwd or "/tmp",
            env=dict(os.environ, **(env or {})),
        )


def pytest_configure(config: pytest.Config) -> None:
    """Under `--dist loadgroup` (./dev test), refuse a pytest whose tests' xdist_group marks would be ignored.

    Those marks keep tests that share a resource (lu's copy of its bytecode, the `nobody` runtime directory,
    the servers' venv) on one worker. pytest 9.2 names a test by a field pytest-xdist 3.8 does not set, so
    its groups were silently ignored and such tests ran side by side: flaky failures, not a clear one.
    """
    if config.getoption("dist", None) == "loadgroup" and tuple(pytest.version_tuple[:2]) >= (9, 2):
        raise pytest.UsageError(
            "pytest %s runs the tests' xdist_group marks apart (--dist loadgroup ignores them): install the "
            "version setup.cfg names (./dev does)" % pytest.__version__
        )


@pytest.fixture
def start_target():
    started: List[Target] = []

    def start(python: str, script: str, *args: str, **kwargs) -> Target:
        target = Target(python, script, list(args), **kwargs)
        started.append(target)
        return target

    yield start
    for target in started:
        target.kill()


SYSTEM_PYTHON = "/usr/bin/python3"


_NOBODY_PACKAGES = ("click", "psutil", "elftools", "jedi", "parso", "watchdog")


@functools.lru_cache(maxsize=None)
def nobody_dir() -> str:
    """A world-readable copy of what `nobody` needs to run lu and the test targets.

    `nobody` cannot enter /root, where pyenv's interpreters live, nor
    necessarily the checkout (a clone in a 0700 temporary directory, say). So
    tests that act as another user run the distribution's python3 (the same
    3.11 ABI as the test environment) on a private copy, made once per test
    process, of lu's packages, the dependencies lu imports, and the targets.
    """
    import shutil
    import site
    import tempfile

    base = tempfile.mkdtemp(prefix="lu-test-nobody-")
    os.chmod(base, 0o755)
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
    for package in ("lu_attach", "lu_cli"):
        shutil.copytree(os.path.join(REPO, package), os.path.join(base, package), ignore=ignore)
    shutil.copytree(os.path.join(REPO, "payloads"), os.path.join(base, "lu_payloads"), ignore=ignore)
    shutil.copytree(TARGETS, os.path.join(base, "targets"), ignore=ignore)
    for directory in site.getsitepackages():
        for package in _NOBODY_PACKAGES:
            source = os.path.join(directory, package)
            if os.path.isdir(source) and not os.path.exists(os.path.join(base, package)):
                shutil.copytree(source, os.path.join(base, package), ignore=ignore)
    for dirpath, _dirnames, filenames in os.walk(base):
        os.chmod(dirpath, 0o755)
        for name in filenames:
            os.chmod(os.path.join(dirpath, name), 0o644)
    return base


def nobody_pythonpath() -> str:
    """The PYTHONPATH under which the distribution's python3, run as `nobody`, imports lu."""
    return nobody_dir()


def as_nobody():
    os.setgid(65534)
    os.setgroups([])
    os.setuid(65534)


def run_lu(
    *args: str, user: Optional[str] = None, env: Optional[dict] = None, timeout: float = 60, input: Optional[str] = None
) -> subprocess.CompletedProcess:
    """Run the real `lu` command (the installed entry point's module) in a subprocess."""
    preexec = None
    python = sys.executable
    full_env = dict(os.environ)
    full_env.pop("LU_DEBUG", None)
    if user == "nobody":
        preexec = as_nobody
        python = SYSTEM_PYTHON
        full_env["PYTHONPATH"] = nobody_pythonpath()
        full_env["HOME"] = "/tmp"
    if env:
        full_env.update(env)
    return subprocess.run(
        [python, "-m", "lu_cli.main"] + [str(a) for a in args],
        capture_output=True,
        text=True,
        timeout=timeout,
        preexec_fn=preexec,
        env=full_env,
        input=input,
        cwd=REPO if user is None else "/tmp",
    )


def assert_one_line_error(result: subprocess.CompletedProcess, *fragments: str) -> None:
    """The bad-input contract: non-zero exit, one line on stderr, no traceback."""
    assert result.returncode != 0, result
    lines = [text for text in result.stderr.splitlines() if text.strip()]
    assert len(lines) == 1, result.stderr
    assert "Traceback" not in result.stderr
    assert lines[0].startswith("lu: error: "), lines
    for fragment in fragments:
        assert fragment in lines[0], (fragment, lines[0])


def lu_ok(*args: object, timeout: float = 120, input: Optional[str] = None, **kwargs: Any) -> str:
    """Run `lu` and return its stdout; it must succeed, with no traceback."""
    result = run_lu(*[str(a) for a in args], timeout=timeout, input=input, **kwargs)
    assert result.returncode == 0, (args, result.stdout, result.stderr)
    assert "Traceback" not in result.stderr, result.stderr
    return result.stdout


def until(condition: Callable[[], object], what: str, timeout: float = 20.0, every: float = 0.05) -> None:
    """Wait until condition() holds; fail naming `what` after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out waiting until " + what
        time.sleep(every)


@pytest.fixture
def lu():
    return run_lu


def concurrently(count: int, work: Callable[[int], None], timeout: float = 60) -> List[str]:
    """Run work(0) .. work(count - 1) in threads that start together; the errors they raised, as reprs."""
    errors: List[str] = []
    barrier = threading.Barrier(count)

    def run(n: int) -> None:
        try:
            barrier.wait(timeout)
            work(n)
        except Exception as exc:
            errors.append(repr(exc))

    threads = [threading.Thread(target=run, args=(n,)) for n in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout)
    return errors
