"""`lu attach PID` on a terminal, every interpreter: Ctrl-C interrupts the statement, Tab keeps a string open.

The controller runs on a pseudo-terminal it has as its controlling
terminal, so Ctrl-C is what a user's is: the byte 0x03 typed, turned into
SIGINT by the terminal. The target is the shop service: after every
interrupt it must still answer HTTP requests, with its own threads untouched.
"""

from __future__ import annotations

import fcntl
import json
import os
import re
import select
import subprocess
import sys
import termios
import time
import urllib.request

import pytest
from conftest import REPO
from interpreters import ALL, EVERY

CTRL_C = "\x03"
CTRL_D = "\x04"


class Terminal:
    """`lu attach ...` on a pseudo-terminal: what a user types, and what they see."""

    def __init__(self, *args: object) -> None:
        self.master, slave = os.openpty()
        env = dict(os.environ, TERM="dumb", HOME=os.environ.get("HOME", "/tmp"))
        env.pop("LU_DEBUG", None)
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "lu_cli.main", "attach"] + [str(a) for a in args],
            stdin=slave,
            stdout=slave,
            stderr=slave,
            cwd=REPO,
            env=env,
            start_new_session=True,
            preexec_fn=lambda: fcntl.ioctl(0, termios.TIOCSCTTY, 0),  # the terminal turns Ctrl-C into SIGINT
        )
        os.close(slave)
        self.seen = ""  # everything shown so far
        self.read_to = 0  # where the next expect() starts looking

    def type(self, text: str) -> None:
        os.write(self.master, text.encode())

    def expect(self, pattern: str, timeout: float = 15.0) -> re.Match:
        """Wait until the screen shows `pattern` (a regex) after what the last expect() matched."""
        deadline = time.monotonic() + timeout
        while True:
            found = re.compile(pattern).search(self.seen, self.read_to)
            if found:
                self.read_to = found.end()
                return found
            left = deadline - time.monotonic()
            assert left > 0, "the terminal never showed %r after:\n%s\n(unmatched: %r)" % (
                pattern,
                self.seen[: self.read_to][-2000:],
                self.seen[self.read_to :],
            )
            ready, _, _ = select.select([self.master], [], [], min(left, 0.1))
            if ready:
                try:
                    chunk = os.read(self.master, 65536)
                except OSError:  # the controller exited: nothing more will come
                    chunk = b""
                if not chunk:
                    assert re.compile(pattern).search(self.seen, self.read_to), (
                        "lu exited before showing %r; it showed:\n%s" % (pattern, self.seen[self.read_to :])
                    )
                self.seen += chunk.decode(errors="replace").replace("\r\n", "\n")

    def run(self, statement: str, shows: str) -> None:
        """Type a statement and wait for what it shows, then for the next prompt."""
        self.type(statement + "\n")
        self.expect(shows)
        self.expect(r">>> ")

    def exit_code(self, timeout: float = 15.0) -> int:
        try:
            return self.proc.wait(timeout)
        finally:
            self.close()

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)
        try:
            os.close(self.master)
        except OSError:
            pass


@pytest.fixture
def terminal():
    opened = []

    def open_terminal(*args: object) -> Terminal:
        opened.append(Terminal(*args))
        return opened[-1]

    yield open_terminal
    for term in opened:
        term.close()


def lu_traceback(screen: str) -> bool:
    """Whether lu itself showed a traceback (a statement's own, in <lu>, is what the user asked to see)."""
    return any(name in screen for name in ("lu_cli/", "lu_attach/", "lu_payloads/", "payloads/"))


def serves(port: int) -> bool:
    with urllib.request.urlopen("http://127.0.0.1:%d/all" % port, timeout=10) as response:
        return response.status == 200 and "price" in json.loads(response.read())


def shop(start_target, python):
    target = start_target(python, "shop_service.py")
    return target, int(target.ready_line.split()[1])


@pytest.mark.parametrize("python", EVERY)
def test_ctrl_c_interrupts_a_running_statement_and_the_controller_stays(python, start_target, terminal):
    target, port = shop(start_target, python)
    term = terminal(target.pid)
    term.expect(r"lu controller: process %d" % target.pid)
    term.expect(r">>> ")

    # At the prompt Ctrl-C drops the line being typed, like Python's prompt. (Once the line is shown: a
    # Ctrl-C that comes before readline waits for keys is only seen at the next key, a person is never that fast.)
    term.type("1 +")
    term.expect(r"1 \+")
    time.sleep(0.2)
    term.type(CTRL_C)
    term.expect(r"KeyboardInterrupt\n>>> ")
    term.run("2 + 3", r"\n5\n")

    term.run("n = 0", r"")
    term.type("while True: n += 1\n\n")
    term.expect(r"\.\.\. ")
    time.sleep(0.5)  # well inside the loop
    term.type(CTRL_C)
    term.expect(r'File "<lu>", line 1, in <module>\nKeyboardInterrupt\n>>> ', timeout=10)
    assert "still runs" not in term.seen  # a loop stops at once: no notice

    # The connection still works, the loop really stopped, and the program never noticed.
    term.run("stopped_at = n; n > 0", r"\nTrue\n")
    term.run("import time; time.sleep(0.2); n == stopped_at", r"\nTrue\n")
    assert serves(port)

    # Ctrl-C pressed twice in a row: the statement stops, and the controller stays.
    term.type("while True: n += 1\n\n")
    term.expect(r"\.\.\. ")
    time.sleep(0.3)
    term.type(CTRL_C + CTRL_C)
    term.expect(r"KeyboardInterrupt\n>>> ", timeout=10)
    term.run("print('on', 'and', 'on')", r"on and on")
    assert serves(port)
    term.type(CTRL_D)
    assert term.exit_code() == 0
    assert not lu_traceback(term.seen), term.seen
    assert target.alive() and serves(port)
    target.kill()
    assert "Traceback" not in target.stderr_text()


@pytest.mark.parametrize("python", EVERY)
def test_ctrl_c_in_a_blocking_call_says_it_still_runs_then_leaves_cleanly(python, start_target, terminal):
    target, port = shop(start_target, python)
    term = terminal(target.pid)
    term.expect(r">>> ")

    # A sleep cannot be cut short: lu says so, and the statement stops when the sleep returns.
    term.type("import time; time.sleep(1.8); print('woke ' * 2)\n")
    time.sleep(0.3)
    term.type(CTRL_C)
    term.expect(r"lu: the statement still runs in process %d: it is in a call Python cannot interrupt" % target.pid)
    term.expect(r"KeyboardInterrupt\n>>> ", timeout=10)
    assert "woke woke" not in term.seen  # the statement's next line never ran
    term.run("print('still', 'here')", r"still here")
    assert serves(port)

    # A second Ctrl-C within a moment tells at once; a third leaves, saying what still runs.
    term.type("time.sleep(30)\n")
    time.sleep(0.3)
    term.type(CTRL_C)
    term.type(CTRL_C)
    term.expect(r"still runs in process %d" % target.pid, timeout=2)
    term.type(CTRL_C)
    term.expect(r"lu: left the controller while its statement still runs in process %d" % target.pid)
    assert term.exit_code() == 130
    assert not lu_traceback(term.seen), term.seen

    # The target serves on, and lu reaches its agent as before.
    assert target.alive() and serves(port)
    listed = subprocess.run(
        [sys.executable, "-m", "lu_cli.main", "ls", str(target.pid)], capture_output=True, text=True, cwd=REPO
    )
    assert listed.returncode == 0, listed.stderr
    target.kill()
    assert "Traceback" not in target.stderr_text()


def test_tab_inside_a_string_keeps_it_open(start_target, terminal):
    python = next(p.values[0] for p in ALL if p.values[0])
    target, _port = shop(start_target, python)
    term = terminal(target.pid)
    term.expect(r">>> ")
    term.type("FuncProfiler.profile(['shoplib.pri\t")
    term.expect(r"\['shoplib\.price")
    term.type("'])\n")  # what the user types after the name: the string was left open for it
    term.expect(r"\n1\n>>> ")  # the update's id: the pattern was read whole
    term.run("LU.revert(1)", r"\[1\]\n")
    term.type(CTRL_D)
    assert term.exit_code() == 0
