"""The files an injection leaves for the target to read, and the one it reads back.

Two places, with two owners, so that root never writes into a directory the
target's user controls:

- the *stage* (`/tmp/lu-stage-EUID/` in the target's mount namespace, owned by
  lu's user, 0755): lu's own files, readable by the target but writable only
  by lu. The helper library must be mapped executable, so when the target's
  /tmp is mounted noexec (hardened servers) the stage goes to the first of
  /var/tmp, /dev/shm and /run that is not. It holds a copy of `lu_payloads` (one per version), the spawn helper
  library (one per build; the target maps it once and lu reuses it), and one
  bootstrap script per injection. Every file is created through the stage's
  directory descriptor with O_EXCL and its mode set on the descriptor. If the
  name is taken by something lu does not own (a planted directory, a
  symlink), lu uses a fresh directory with a random name instead.
- the target user's *runtime directory* (`/tmp/lu-UID/`, 0700, the agent's
  home): lu works there only through a verified descriptor, with the user's
  own file identity (safefs.acting_as). It creates one empty *claim* file per
  injection and reads back one small *status* file the bootstrap writes.

Cancelling is atomic: the bootstrap, once it holds the GIL, removes the claim
file before it does anything; lu cancels by removing it too. Exactly one of
them succeeds, so lu either knows nothing will run or knows the agent is
starting. A lu killed before it could cancel (SIGKILL) leaves the claim:
so the bootstrap also carries the time lu stops waiting for it, and one
that first runs later than that does nothing.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import hashlib
import json
import os
import re
import secrets
import stat
import time
from dataclasses import dataclass
from functools import lru_cache
from typing import Callable, Iterator, List, Optional, Tuple

import lu_payloads
from lu_payloads import paths

from . import safefs
from .accel_build import STAGED_NAME, accel_library
from .errors import LuAttachError
from .native_helper import helper_library
from .runtime import TargetProcess, open_runtime

STAGE = "lu-stage-%d"
STATUS_LIMIT = 64 * 1024
STALE_SECONDS = 600
# Seconds between two sweeps for stale files of one user's agents' directory. A sweep lstat()s every file
# there (a host's week of agent logs: thousands), 20-40 ms of lu's CPU on two cores; one a minute is enough
# for files that wait for days, and a tree's injections share one.
SWEEP_EVERY = 60.0
SWEPT = "swept-%d"  # in lu's stage, per target user: its mtime is the last sweep's time
STARTING_SWITCH_INTERVAL = 0.0001  # seconds: sys.setswitchinterval while the agent starts (see BOOTSTRAP)


@lru_cache(maxsize=1)
def payloads_digest() -> str:
    """Names one version of the staged payloads: their sources and the compiled timer staged with them."""
    source = os.path.dirname(os.path.abspath(lu_payloads.__file__))
    digest = hashlib.sha256()
    library = accel_library()
    if library is not None:
        with open(library, "rb") as handle:
            digest.update(handle.read())
    for dirpath, dirnames, filenames in sorted(os.walk(source)):
        dirnames[:] = sorted(d for d in dirnames if d != "__pycache__")
        for name in sorted(filenames):
            if name.endswith(".py"):
                digest.update(os.path.relpath(os.path.join(dirpath, name), source).encode())
                with open(os.path.join(dirpath, name), "rb") as handle:
                    digest.update(handle.read())
    return digest.hexdigest()[:12]


@lru_cache(maxsize=4)
def _file_digest(path: str, stamp: tuple) -> str:
    with open(path, "rb") as handle:
        return hashlib.sha256(handle.read()).hexdigest()[:16]


def helper_name() -> str:
    """The helper's file name in the stage: it names the build, so a mapped copy can be reused."""
    library = helper_library()
    st = os.stat(library)
    return "lu_spawn-%s.so" % _file_digest(library, (st.st_ino, st.st_size, st.st_mtime))


# What the bootstrap runs when lu's package is not copied into the agent's directory yet (the first
# injection of this lu for this user): copying.py, read from lu's stage.
COPY = """\
copying = {"__name__": "_lu_copying"}
with open(stage + "/copying.py", "rb") as handle:
    exec(handle.read(), copying)
copying["copy_package"](stage, final, nonce)
"""


# What the bootstrap runs when it cannot load launch.py (which writes the status otherwise): the failure
# reported to lu, or nothing if even that fails.
FAILED = """\
try:
    import json, os

    fd = os.open(status + ".tmp", os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        json.dump({"ok": False, "error": "%s: %s" % (type(exc).__name__, exc), "began": began}, handle)
    os.replace(status + ".tmp", status)
except BaseException:
    pass
"""


# Compiled in the target on every injection, holding the GIL meanwhile, for as long as its code is long (its
# strings and comments cost next to nothing): 0.7 ms on 3.15 when it held the switch interval's and the
# copy's code, during which none of the program's threads runs. So it does only what must come before
# lu's files can be read (its claim, its expiry), then hands over to lu_payloads/launch.py, loaded from
# its bytecode in lu's private copy; what it runs only now and then is code in strings.
BOOTSTRAP = '''\
import sys
_threading_was_imported = "threading" in sys.modules


def _lu_bootstrap():
    import os, time
    began = time.monotonic()  # (reported: what of an injection's time the target spent running it)
    runtime, nonce = {runtime!r}, {nonce!r}
    try:
        os.unlink(runtime + "/inject-" + nonce + ".claim")
    except OSError:
        return  # lu cancelled this injection (or it was never meant for this process)
    if time.time() > {expires!r}:
        return  # lu stopped waiting long ago (it was killed before it could cancel): nothing runs
    try:
        final = runtime + "/" + {payloads_name!r}
        if not os.path.isfile(final + "/lu_payloads/launch.py"):
            # lu's package is not in the agent's directory yet (where its bytecode can be written): copied
            # by copying.py, from lu's stage, through code in a string, compiled only when it runs
            exec({copy!r}, {{"stage": {payloads!r}, "final": final, "nonce": nonce}})
        # through the import system's own functions (importlib would compile), from launch.py's bytecode
        spec = sys.modules["_frozen_importlib_external"].spec_from_file_location(
            "_lu_launch", final + "/lu_payloads/launch.py"
        )
        launch = sys.modules["_frozen_importlib"].module_from_spec(spec)
        spec.loader.exec_module(launch)
    except BaseException as exc:
        # (the report's code is a string, compiled only when it runs: this path is rare)
        exec({failed!r}, {{"exc": exc, "began": began, "status": runtime + "/inject-" + nonce + ".status"}})
    else:
        launch.bootstrap(runtime, nonce, final + "/lu_payloads", _threading_was_imported, {switch_interval!r}, began)


_lu_bootstrap()
'''


def bootstrap_script(runtime: str, nonce: str, expires: float, payloads: str, payloads_name: str) -> str:
    """The bootstrap of one injection: where the agent's directory and lu's package are, its claim, and
    the time after which it runs nothing."""
    return BOOTSTRAP.format(
        copy=COPY,
        failed=FAILED,
        runtime=runtime,
        nonce=nonce,
        expires=expires,
        switch_interval=STARTING_SWITCH_INTERVAL,
        payloads=payloads,
        payloads_name=payloads_name,
    )


@dataclass
class Stage:
    """lu's own directory in the target's /tmp, open."""

    dir: safefs.Dir
    target_path: str  # the same directory as the target names it

    def close(self) -> None:
        self.dir.close()


STAGE_PARENTS = ("/tmp", "/var/tmp", "/dev/shm", "/run")


def mount_options(pid: int, path: str) -> Optional[List[str]]:
    """The options of the mount holding `path` in the target's mount namespace (None: unknown)."""
    try:
        with open("/proc/%d/mountinfo" % pid) as handle:
            lines = handle.read().splitlines()
    except OSError:
        return None
    best: Optional[Tuple[str, List[str]]] = None
    for line in lines:
        fields = line.split()
        if len(fields) < 6:
            continue
        point = fields[4].replace("\\040", " ")
        covers = path == point or path.startswith(point.rstrip("/") + "/")
        if covers and (best is None or len(point) >= len(best[0])):  # later mounts over the same point win
            best = (point, fields[5].split(","))
    return best[1] if best else None


def open_stage(target: TargetProcess) -> Stage:
    """lu's stage in the first place of the target's file system that can hold an executable library."""
    refused = []
    for parent in STAGE_PARENTS:
        options = mount_options(target.pid, parent)
        if options is not None and "noexec" in options:
            refused.append("%s is mounted noexec" % parent)
            continue
        try:
            with safefs.open_root(target.pid) as root, root.subdir(parent.strip("/")) as directory:
                return _stage_in(directory, parent)
        except (OSError, LuAttachError) as exc:
            refused.append("%s: %s" % (parent, getattr(exc, "strerror", None) or exc))
    raise LuAttachError(
        "process %d: lu found no place for its files that the target may load a library from "
        "(%s)" % (target.pid, "; ".join(refused))
    )


def _stage_in(parent: safefs.Dir, parent_path: str) -> Stage:
    """The shared stage directory in `parent`, or a fresh private one when the name is taken by someone else."""
    euid = os.geteuid()
    name = STAGE % euid
    try:
        directory = parent.subdir(name, owner=euid, create_mode=0o755)
        return Stage(directory, parent_path + "/" + name)
    except (safefs.UnsafePath, OSError):
        pass
    for _ in range(10):
        name = "lu-stage-%d-%s" % (euid, secrets.token_hex(6))
        try:
            os.mkdir(name, 0o700, dir_fd=parent.fd)
        except FileExistsError:
            continue
        directory = parent.subdir(name, owner=euid)
        os.fchmod(directory.fd, 0o755)
        return Stage(directory, parent_path + "/" + name)
    raise LuAttachError("could not create lu's staging directory in the target's %s" % parent_path)


def _copy_tree(source: str, parent: safefs.Dir, name: str) -> None:
    """Copy a directory of lu's own into `parent/name` through descriptors (0755 dirs, 0644 files)."""
    os.mkdir(name, 0o700, dir_fd=parent.fd)
    with parent.subdir(name, owner=os.geteuid()) as here:
        for entry in sorted(os.listdir(source)):
            path = os.path.join(source, entry)
            if entry == "__pycache__" or entry.endswith((".pyc", ".so")):
                continue  # bytecode is made for each target; the compiled timer is staged apart
            if os.path.isdir(path):
                _copy_tree(path, here, entry)
            elif os.path.isfile(path):
                with open(path, "rb") as handle:
                    here.write_new(entry, handle.read(), 0o644)
        os.fchmod(here.fd, 0o755)


def _publish(stage: Stage, name: str, make: Callable[[str], None]) -> None:
    """Create `name` in the stage under a temporary name, then rename it into place (once)."""
    try:
        stage.dir.lstat(name)
        return
    except FileNotFoundError:
        pass
    tmp = "%s.%d.%s.tmp" % (name, os.getpid(), secrets.token_hex(4))
    make(tmp)
    try:
        os.rename(tmp, name, src_dir_fd=stage.dir.fd, dst_dir_fd=stage.dir.fd)
    except OSError as exc:
        if exc.errno not in (errno.EEXIST, errno.ENOTEMPTY):
            raise
    _remove(stage.dir, tmp)


def _remove(directory: safefs.Dir, name: str) -> None:
    """Remove a file or a whole tree below a directory descriptor, following no symlink."""
    try:
        st = directory.lstat(name)
    except FileNotFoundError:
        return
    if not stat.S_ISDIR(st.st_mode):
        directory.unlink(name)
        return
    with directory.subdir(name) as inner:
        for entry in inner.names():
            _remove(inner, entry)
    os.rmdir(name, dir_fd=directory.fd)


def ensure_payloads(stage: Stage) -> str:
    """The staged copy of lu_payloads for this version; returns its directory name in the stage."""
    name = "payloads-%s-%s" % (lu_payloads.__version__, payloads_digest())
    source = os.path.dirname(os.path.abspath(lu_payloads.__file__))

    def make(tmp: str) -> None:
        os.mkdir(tmp, 0o700, dir_fd=stage.dir.fd)
        with stage.dir.subdir(tmp, owner=os.geteuid()) as top:
            _copy_tree(source, top, "lu_payloads")
            library = accel_library()
            if library is not None:
                with top.subdir("lu_payloads", owner=os.geteuid()) as package, open(library, "rb") as handle:
                    package.write_new(STAGED_NAME, handle.read(), 0o644)
            os.fchmod(top.fd, 0o755)

    _publish(stage, name, make)
    return name


def ensure_helper(stage: Stage) -> str:
    name = helper_name()

    def make(tmp: str) -> None:
        with open(helper_library(), "rb") as handle:
            stage.dir.write_new(tmp, handle.read(), 0o644)

    _publish(stage, name, make)
    return name


def sweep_if_due(stage: Stage, target: TargetProcess, runtime: safefs.Dir, every: float = SWEEP_EVERY) -> bool:
    """remove_stale, unless an lu swept this user's directories less than `every` seconds ago; True if it ran.

    The stamp is in lu's own stage (root's when lu runs as root): the target's user cannot plant it there to
    keep stale files from going. Two lu that sweep at once both do; each removal is checked as it is made.
    """
    stamp = SWEPT % target.uid
    try:
        age = time.time() - os.stat(stamp, dir_fd=stage.dir.fd, follow_symlinks=False).st_mtime
    except FileNotFoundError:
        age = every  # never swept
    except OSError:
        return False  # lu's stage refuses: lu's next injection tries again
    if 0 <= age < every:  # (a stamp from the future, the clock set back, is due)
        return False
    try:
        fd = os.open(stamp, os.O_WRONLY | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600, dir_fd=stage.dir.fd)
        try:
            os.utime(fd)
        finally:
            os.close(fd)
    except OSError:
        return False
    remove_stale(stage, target, runtime)
    return True


def remove_stale(stage: Stage, target: TargetProcess, runtime: safefs.Dir) -> None:
    """Files of injections abandoned long ago (a killed lu), and of agents whose process is gone."""
    try:
        proc = safefs.open_root(target.pid)
    except OSError:
        _remove_stale_in(stage.dir)
        return
    with proc:

        def alive(nspid: int) -> bool:
            # The target's own /proc: pids there are those of its pid namespace.
            try:
                os.stat("proc/%d" % nspid, dir_fd=proc.fd)
                return True
            except FileNotFoundError:
                return False
            except OSError:
                return True  # cannot tell: keep its files

        _remove_stale_in(stage.dir, alive, pid_namespace(target.pid))
        with safefs.acting_as(target.uid, target.gid):
            _remove_stale_in(runtime, alive)
            try:
                with runtime.subdir(LOGS, owner=target.uid) as logs:
                    _remove_stale_in(logs, alive)
            except (OSError, safefs.UnsafePath):
                pass  # none yet, or not lu's to clean


_AGENT_FILE = re.compile(r"agent-(\d+)\.(sock|json|log|log\.1)$")
# A PEP 768 launcher (methods/remote_exec.py): armed in process NSPID, it may run whenever that process
# next reaches a safe point, so it stays until the process is gone.
# The name holds the pid namespace too: only a process of the same namespace tells whether NSPID is gone.
_LAUNCHER_FILE = re.compile(r"remote-(\d+)-(\d+)-[0-9a-f]+\.py$")


def pid_namespace(pid: int) -> int:
    """The inode of pid's pid namespace (0 when it cannot be read)."""
    try:
        return os.stat("/proc/%d/ns/pid" % pid).st_ino
    except OSError:
        return 0


def launcher_name(target: TargetProcess, nonce: str) -> str:
    """The file name of a PEP 768 launcher armed in target (see _LAUNCHER_FILE)."""
    return "remote-%d-%d-%s.py" % (pid_namespace(target.pid), target.nspid, nonce)


LOG_KEEP_SECONDS = 7 * 24 * 3600
LOGS = "logs"  # the sessions' default log directory in the agent's (payloads/recorder.py, default_log_dir)
# A session log there: lu-PID.jsonl, its rotated half (.1), or one set aside by a later process with the same
# pid (lu-PID.MTIME_NS.jsonl, whose process is gone by then).
_SESSION_LOG = re.compile(r"lu-(\d+)(\.\d+)?\.jsonl(\.1)?$")


def _remove_stale_in(directory: safefs.Dir, alive: Optional[Callable[[int], bool]] = None, namespace: int = 0) -> None:
    """Abandoned injection files; with `alive`, also the files of agents whose process is gone, and the
    session logs (of lu's default log directory) of processes gone for longer than agents' logs are kept.

    A session log is bounded (rotated once past 64 MB), but one is left per profiled process: on a host
    that recycles workers, and in a /tmp that is memory, they would pile up without end. A directory
    given with --log-dir is the user's and is never cleaned.
    """
    now = time.time()
    try:
        names = directory.names()
    except OSError:
        return
    for name in names:
        try:
            age = now - directory.lstat(name).st_mtime
            launcher = _LAUNCHER_FILE.match(name)
            if launcher:
                ours = namespace and int(launcher.group(1)) == namespace
                if ours and alive is not None and not alive(int(launcher.group(2))):
                    _remove(directory, name)
                continue
            # (a log is kept a week whatever its process does: whether that lives is asked only of older ones,
            # as a host's thousands of recent logs would make every injection ask /proc of each)
            session_log = _SESSION_LOG.match(name)
            if session_log:
                # set aside for a reused pid (group 2): its process is gone whatever runs under that pid now
                old = age > LOG_KEEP_SECONDS
                if (
                    old
                    and alive is not None
                    and (session_log.group(2) is not None or not alive(int(session_log.group(1))))
                ):
                    _remove(directory, name)
                continue
            match = _AGENT_FILE.match(name)
            if match and alive is not None:
                may_go = match.group(2) in ("sock", "json") or age > LOG_KEEP_SECONDS
                if may_go and not alive(int(match.group(1))):
                    _remove(directory, name)
            elif (name.startswith("inject-") or name.endswith(".tmp")) and age > STALE_SECONDS:
                _remove(directory, name)
        except (OSError, safefs.UnsafePath):
            pass


@contextlib.contextmanager
def one_injection_at_a_time(target: TargetProcess, wait: float) -> Iterator[None]:
    """Hold the target's injection lock (in lu's stage) while lu injects it; wait up to `wait` s for it.

    Two lu commands started at once on a process with no agent (two
    profiles, a profile and a watch) would otherwise both inject it: one
    finds the thread it needs traced by the other ("is a debugger
    attached?") or waits for a GIL the other holds still. The second waits
    its turn, then finds the agent the first started. flock's lock goes with
    the lu that holds it, killed or not.
    """
    stage = open_stage(target)
    try:
        fd = os.open(
            "inject-lock-%d" % target.pid,
            os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC,
            0o600,
            dir_fd=stage.dir.fd,
        )
    finally:
        stage.close()
    try:
        deadline = time.monotonic() + wait
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() > deadline:
                    raise LuAttachError(
                        "process %d: another lu has been starting its agent for %.0f s; retry when it is done"
                        % (target.pid, wait)
                    )
                time.sleep(0.05)
        os.utime(fd)  # fresh: the stale-file sweep leaves it while it is in use
        yield
    finally:
        os.close(fd)


@dataclass
class Injection:
    """One injection's files: where the target finds them, and how lu reads them back."""

    target: TargetProcess
    stage: Stage
    runtime: safefs.Dir
    nonce: str
    helper: str  # the helper library, as the target names it
    script: str  # the bootstrap script, as the target names it
    source: bytes  # the bootstrap script's text

    @property
    def code_name(self) -> str:
        """The bootstrap's code, compiled by the target's own interpreter (PEP 768's launcher runs that)."""
        return "inject-%s.code" % self.nonce

    @property
    def code(self) -> str:
        """The bootstrap's code as the target names it."""
        return os.path.join(os.path.dirname(self.script), self.code_name)

    def keep_code(self, code: bytes) -> None:
        """Keep the bootstrap's code beside it, where the launcher reads it. A speed-up only: if it cannot
        be written (or only in part), the launcher compiles the source."""
        try:
            self.stage.dir.write_new(self.code_name, code, 0o644)
        except (OSError, safefs.UnsafePath):
            try:
                self.stage.dir.unlink(self.code_name)  # (a part written is no code)
            except OSError:
                pass

    @property
    def claim_name(self) -> str:
        return "inject-%s.claim" % self.nonce

    @property
    def status_name(self) -> str:
        return "inject-%s.status" % self.nonce

    def status(self) -> Optional[dict]:
        """The bootstrap's report, once written (read as the target's user, bounded)."""
        try:
            with safefs.acting_as(self.target.uid, self.target.gid):
                data = self.runtime.read(self.status_name, STATUS_LIMIT, owner=self.target.uid)
        except FileNotFoundError:
            return None
        except (OSError, safefs.UnsafePath) as exc:
            raise LuAttachError("process %d: unreadable injection status (%s)" % (self.target.pid, exc))
        try:
            result = json.loads(data.decode("utf-8"))
        except (ValueError, UnicodeDecodeError, RecursionError):
            raise LuAttachError("process %d: malformed injection status" % self.target.pid)
        if not isinstance(result, dict):
            raise LuAttachError("process %d: malformed injection status" % self.target.pid)
        return result

    def cancel(self) -> bool:
        """Withdraw the injection. True: nothing will run; False: the bootstrap already claimed it."""
        with safefs.acting_as(self.target.uid, self.target.gid):
            return self.runtime.unlink(self.claim_name)

    def sweep_if_due(self) -> bool:
        """The stale-file sweep (sweep_if_due), once the agent answered: it is host work that would
        otherwise share the CPU with the target while the target reaches lu's script."""
        return sweep_if_due(self.stage, self.target, self.runtime)

    def cleanup(self) -> None:
        self.stage.dir.unlink(self.code_name)  # (before the script: a launcher that runs late finds neither)
        self.stage.dir.unlink(os.path.basename(self.script))
        with safefs.acting_as(self.target.uid, self.target.gid):
            for name in (self.claim_name, self.status_name, self.status_name + ".tmp"):
                self.runtime.unlink(name)
        self.runtime.close()
        self.stage.close()


def prepare(target: TargetProcess, expires: float) -> Injection:
    """Stage everything one injection into `target` needs; nothing in the target changes yet.

    `expires` (time.time()) is when lu stops waiting: a bootstrap first run after it does nothing.
    """
    stage = open_stage(target)
    try:
        runtime = open_runtime(target, create=True)
    except BaseException:
        stage.close()
        raise
    if runtime is None:
        stage.close()
        raise LuAttachError("process %d: could not create its agent's directory" % target.pid)
    try:
        payloads = ensure_payloads(stage)
        helper = ensure_helper(stage)
        nonce = secrets.token_hex(12)
        with safefs.acting_as(target.uid, target.gid):
            runtime.write_new("inject-%s.claim" % nonce, b"", 0o600)
        runtime_path = paths.runtime_dir(target.uid)
        script_name = "inject-%s.py" % nonce
        text = bootstrap_script(
            runtime=runtime_path,
            nonce=nonce,
            expires=round(expires, 3),
            payloads=stage.target_path + "/" + payloads + "/lu_payloads",
            payloads_name=payloads,
        )
        stage.dir.write_new(script_name, text.encode(), 0o644)
    except BaseException:
        runtime.close()
        stage.close()
        raise
    return Injection(
        target=target,
        stage=stage,
        runtime=runtime,
        nonce=nonce,
        helper=stage.target_path + "/" + helper,
        script=stage.target_path + "/" + script_name,
        source=text.encode(),
    )
