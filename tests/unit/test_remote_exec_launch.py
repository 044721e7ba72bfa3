"""PEP 768's way in, in pieces that need no 3.14: the launcher the target runs, and the arming exchange.

The launcher runs in the target's main thread at a safe point: it starts the
bootstrap in a thread of its own, from the code the arming interpreter
compiled where there is some, else from its source, and does nothing once
the injection's files are gone. The arming interpreter (the target's own
binary) compiles the bootstrap, hands lu the code, and arms only when lu says
so after keeping it. Here the "target" is a process of this interpreter,
which has no sys.remote_exec before 3.14: the exchange runs to its end and
the arming fails with the interpreter's own words.
"""

from __future__ import annotations

import marshal
import subprocess
import sys
import time
from importlib.util import MAGIC_NUMBER
from typing import List

import pytest

from lu_attach.methods import arming
from lu_attach.methods.remote_exec import LAUNCHER

# Stands in for lu's bootstrap: says which way it was run.
BOOTSTRAP = "import sys\nprint('ran from ' + sys._getframe().f_code.co_filename, flush=True)\n"


def run_launcher(tmp_path, code: bytes = b"", source: bool = True) -> str:
    """The launcher run as a program's main thread would run it, then the program goes on for a moment."""
    script = tmp_path / "inject-x.py"
    if source:
        script.write_text(BOOTSTRAP)
    if code:
        (tmp_path / "inject-x.code").write_bytes(code)
    launcher = LAUNCHER.format(code=str(tmp_path / "inject-x.code"), bootstrap=str(script))
    program = "exec(%r)\nimport time\ntime.sleep(0.3)\nprint('program went on', flush=True)\n" % launcher
    out = subprocess.run([sys.executable, "-I", "-c", program], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0 and not out.stderr, out.stderr
    return out.stdout


def kept(name: str = "kept code", magic: bytes = MAGIC_NUMBER) -> bytes:
    """The bootstrap's code as the arming interpreter hands it over: a .pyc's magic number, marshal's bytes."""
    return magic + marshal.dumps(compile(BOOTSTRAP, name, "exec"))


def test_the_launcher_runs_the_code_the_arming_interpreter_kept(tmp_path):
    assert run_launcher(tmp_path, code=kept()).splitlines() == ["ran from kept code", "program went on"]


@pytest.mark.parametrize(
    "code",
    [b"", b"not marshal", kept()[:-5], kept(magic=b"\x00\x00\r\n")],
    ids=["none", "garbage", "cut short", "another Python's"],
)
def test_without_usable_code_the_launcher_compiles_the_source(tmp_path, code):
    assert run_launcher(tmp_path, code=code).splitlines() == ["ran from <string>", "program went on"]


def test_a_launcher_that_runs_after_the_injection_is_over_does_nothing(tmp_path):
    assert run_launcher(tmp_path, source=False).splitlines() == ["program went on"]


def test_the_launcher_leaves_threading_as_the_program_had_it(tmp_path):
    """threading's start would wait for the thread; the bootstrap also needs to see whether the program had it."""
    launcher = LAUNCHER.format(code=str(tmp_path / "none.code"), bootstrap=str(tmp_path / "none.py"))
    program = "exec(%r)\nimport sys\nprint('threading' in sys.modules)\n" % launcher
    out = subprocess.run([sys.executable, "-I", "-S", "-c", program], capture_output=True, text=True, timeout=60)
    assert out.stdout.strip() == "False", out


@pytest.fixture
def target():
    """A process of this interpreter, as the process lu arms."""
    proc = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    yield proc
    proc.kill()
    proc.wait()


def test_the_arming_interpreter_hands_over_the_code_before_it_arms(target):
    handed: List[bytes] = []
    source = BOOTSTRAP.encode()
    done = arming.compile_and_arm(target.pid, "/nonexistent/launcher.py", source, "the bootstrap", handed.append, 30)
    (code,) = handed
    assert (
        code[:4] == MAGIC_NUMBER and marshal.loads(code[4:]).co_filename == "the bootstrap"
    )  # compiled by the target's binary, named as staged
    if sys.version_info >= (3, 14):
        assert done.returncode != 0 and "launcher.py" in (done.failure() or ""), done
    else:  # (this interpreter cannot arm: the exchange went through, and sys.remote_exec's absence says so)
        assert done.returncode == 3 and done.failure() == "AttributeError: module 'sys' has no attribute 'remote_exec'"


def test_a_bootstrap_that_does_not_compile_is_armed_without_code(target):
    handed: List[bytes] = []
    done = arming.compile_and_arm(target.pid, "/nonexistent/launcher.py", b"def (", "x", handed.append, 30)
    assert handed == [] and done.failure() is not None


def test_an_arming_interpreter_past_its_deadline_is_killed_and_said_so(target):
    slow = b"x = 1\n" * 200_000  # a second or more to compile
    began = time.monotonic()
    with pytest.raises(arming.CannotRun, match=r"did not finish sys\.remote_exec in time"):
        arming.compile_and_arm(target.pid, "/x.py", slow, "x", lambda code: None, 0.1)
    assert time.monotonic() - began < 1  # killed at its deadline, not waited for


def test_an_arming_interpreter_that_says_too_much_is_killed_at_once(target, monkeypatch):
    """The binary may be the target user's: lu reads a bounded answer, and one past the bound ends it."""
    chatty = "import sys, time\nsys.stdout.write('x' * 200000)\nsys.stdout.flush()\ntime.sleep(60)\n"
    monkeypatch.setattr(arming, "_CALL", chatty)
    began = time.monotonic()
    with pytest.raises(arming.CannotRun, match="said more than 64 KB"):
        arming.compile_and_arm(target.pid, "/x.py", b"", "x", lambda code: None, 30)
    assert time.monotonic() - began < 10  # not at its deadline


def test_a_process_that_is_gone_cannot_be_armed(target):
    target.kill()
    target.wait()
    with pytest.raises(arming.CannotRun, match="cannot be read"):
        arming.compile_and_arm(target.pid, "/x.py", b"", "x", lambda code: None, 30)
