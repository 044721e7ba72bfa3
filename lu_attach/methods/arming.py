"""The target's own interpreter, run from lu to arm it with PEP 768's sys.remote_exec.

The caller of sys.remote_exec must be the target's minor version with its
free-threading setting: the target's own binary (`/proc/PID/exe`) is that by
construction. It runs isolated (`-I -S`: no site, no environment, no user
directory), and as the target's own user unless the binary is root's and only
root can change it: root never runs a program a user can replace.

It does one more thing first: it compiles lu's bootstrap and hands lu the
code (marshal's bytes, which only that Python reads), so that the target
runs the bootstrap without compiling it. A compile holds the GIL in one
piece while the program's threads wait (0.2-0.4 ms for the bootstrap; lu's
other pieces run a tenth of a millisecond at a time at its switch interval);
bench/agent_start.py measures what that does to a program's pauses. The
exchange goes in two steps over the child's pipes: lu sends the source and
reads the code back, writes it where the launcher finds it, and only then
says "arm". A child that hears anything else (lu was killed meanwhile, and
its end of the pipe closed) arms nothing.
"""

from __future__ import annotations

import os
import signal
import subprocess
import threading
from dataclasses import dataclass
from typing import IO, Callable, List, Optional, Tuple

CODE_LIMIT = 1 << 20  # bytes: the bootstrap's code is 3 KB; anything larger is not it
SAID_LIMIT = 1 << 16  # bytes read of what the child says after the code, on each of its two pipes

# The bootstrap's code as the launcher reads it: this Python's magic number (the launcher runs no code that
# another bytecode's Python made), then marshal's bytes; b"" if the source does not compile.
CODE_OF = """\
def code_of(source, name):
    import marshal
    import sys

    try:
        magic = sys.modules["_frozen_importlib_external"].MAGIC_NUMBER
        return magic + marshal.dumps(compile(source, name, "exec"))
    except Exception:
        return b""
"""

FAILED_MARK = "LU-REMOTE-EXEC-FAILED"  # heads the child's line when sys.remote_exec raised

# Run by the target's binary: argv = pid, the launcher's path, the bootstrap's length, the bootstrap's path (as
# the code's file name). stdout: the code's length and the code (0 and none if it would not compile), then at
# most one line saying why sys.remote_exec failed.
_CALL = (
    CODE_OF
    + """
import sys
code = code_of(sys.stdin.buffer.read(int(sys.argv[3])), sys.argv[4])
sys.stdout.buffer.write(b"%d\\n" % len(code) + code)
sys.stdout.flush()
if sys.stdin.buffer.readline() != b"arm\\n":
    sys.exit(4)  # lu went away before it kept the code: nothing is armed
try:
    sys.remote_exec(int(sys.argv[1]), sys.argv[2])
except BaseException as exc:
    print("@FAILED@ %s: %s" % (type(exc).__name__, exc))
    sys.exit(3)
""".replace("@FAILED@", FAILED_MARK)
)


class CannotRun(Exception):
    """The target's binary could not be run, or did not finish in time (the message says which)."""


@dataclass
class Armed:
    """How the target's interpreter ended: its exit status and what it said after the code."""

    returncode: int
    said: List[str]  # its non-blank lines (stdout, then stderr)

    def failure(self) -> Optional[str]:
        """sys.remote_exec's own error ("TypeName: message"), if that is how it failed."""
        line = next((line for line in self.said if line.startswith(FAILED_MARK)), None)
        return line.split(" ", 1)[1] if line is not None else None


def credentials(pid: int, exe_stat: os.stat_result) -> Optional[Tuple[int, int, List[int]]]:
    """Whose identity runs the target's binary: None for lu's own, else the target's (uid, gid, groups).

    lu's own identity only when that adds nothing: lu is not root, or the
    binary is root's and no one else may change it.
    """
    if os.geteuid() != 0:
        return None
    if exe_stat.st_uid == 0 and not exe_stat.st_mode & 0o022:
        return None
    fields = {}
    with open("/proc/%d/status" % pid) as handle:
        for line in handle:
            key, _, value = line.partition(":")
            fields[key] = value.split()
    return int(fields["Uid"][1]), int(fields["Gid"][1]), [int(g) for g in fields.get("Groups", [])]


def _become(uid: int, gid: int, groups: List[int]) -> None:
    os.setgroups(groups)
    os.setgid(gid)
    os.setuid(uid)


def compile_and_arm(
    pid: int, launcher: str, bootstrap: bytes, bootstrap_path: str, keep_code: Callable[[bytes], None], timeout: float
) -> Armed:
    """The target's interpreter compiles `bootstrap`; `keep_code` stores the code; then it arms `pid` with
    `launcher`. Raises CannotRun (the binary cannot be read or run, or `timeout` passed: then the child is
    killed, and it armed at most a launcher whose bootstrap lu then takes back by its claim)."""
    exe = "/proc/%d/exe" % pid
    try:
        who = credentials(pid, os.stat(exe))
    except (OSError, KeyError, IndexError, ValueError):
        raise CannotRun("its interpreter binary cannot be read")
    try:
        child = subprocess.Popen(
            [exe, "-I", "-S", "-c", _CALL, str(pid), launcher, str(len(bootstrap)), bootstrap_path],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env={"PATH": "/usr/bin:/bin", "LC_ALL": "C"},
            cwd="/",
            preexec_fn=(lambda: _become(*who)) if who is not None else None,
        )
    except OSError as exc:
        raise CannotRun("its interpreter binary cannot be run from here (%s)" % exc.strerror)
    # one deadline for the whole exchange: past it the child is killed, which ends every read below
    expired = threading.Event()

    def expire() -> None:
        expired.set()
        child.kill()

    timer = threading.Timer(timeout, expire)
    timer.daemon = True
    timer.start()
    try:
        with child:
            assert child.stdin is not None and child.stdout is not None and child.stderr is not None
            try:
                child.stdin.write(bootstrap)
                child.stdin.flush()
                code = _read_code(child.stdout)
                if code:
                    keep_code(code)
                child.stdin.write(b"arm\n")
                child.stdin.close()
            except (BrokenPipeError, ValueError):
                pass  # it ended early (it could not start, or was killed): what it said tells why
            # bounded: the binary may be the target user's; one that says more is not lu's exchange
            out = child.stdout.read(SAID_LIMIT)
            err = child.stderr.read(SAID_LIMIT) if len(out) < SAID_LIMIT else b""
            chatty = len(out) == SAID_LIMIT or len(err) == SAID_LIMIT
            if chatty:
                child.kill()
            returncode = child.wait()
    finally:
        timer.cancel()
    if chatty:
        raise CannotRun("its interpreter said more than %d KB while arming it" % (SAID_LIMIT // 1024))
    if expired.is_set() and returncode == -signal.SIGKILL:
        raise CannotRun("its interpreter did not finish sys.remote_exec in time")
    text = (out + err).decode("utf-8", "replace")
    return Armed(returncode, [line for line in text.splitlines() if line.strip()])


def _read_code(stream: IO[bytes]) -> bytes:
    """The code the child sends: its length on a line, then that many bytes (b"" if it sent none, or
    anything else)."""
    header = stream.readline(32)
    try:
        length = int(header)
    except ValueError:
        return b""
    if not 0 < length <= CODE_LIMIT:
        return b""
    code = stream.read(length)
    return code if len(code) == length else b""
