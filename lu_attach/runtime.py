"""The host's view of a target: who it is, and the directory its agent lives in.

A target is known by more than its pid: pids are reused, and a forked child
or another process can sit behind a name lu reaches. So a `TargetProcess`
carries what identifies the process for as long as it lives (its start time
in clock ticks since boot, the same in every pid namespace), its pid as it
sees itself (which names its agent's files), and the effective user and group
that own those files. The agent's directory (`/tmp/lu-UID/` in the target's
mount namespace, see lu_payloads.paths) belongs to that user, so lu reaches
it only through safefs: verified descriptors and the user's own file identity.
"""

from __future__ import annotations

import os
import socket
import time
from dataclasses import dataclass
from typing import Optional

import psutil

from lu_payloads import paths

from . import safefs
from .errors import AgentAbsent, AgentBusy, LuAttachError


def process_gone(pid: int) -> bool:
    """True when pid has exited (a zombie has exited too: it only waits to be reaped)."""
    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True
    except psutil.Error:
        return False


def exiting(pid: int, within: float = 0.5) -> bool:
    """Whether pid is on its way out: gone, or a zombie, within `within` seconds.

    A process that exits closes its files (the agent's socket among them) and
    refuses tracing a moment before it is gone: callers that see either give
    it this long to finish before they call what they saw a failure.
    """
    deadline = time.monotonic() + within
    while not process_gone(pid):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.01)
    return True


def target_root(pid: int) -> str:
    return "/proc/%d/root" % pid


def start_ticks(pid: int) -> int:
    """The process's start time (clock ticks after boot): with the pid, it names one process forever."""
    with open("/proc/%d/stat" % pid, "rb") as handle:
        fields = handle.read().rsplit(b")", 1)[1].split()
    return int(fields[19])


@dataclass(frozen=True)
class TargetProcess:
    pid: int  # as the host sees it
    nspid: int  # as the target sees itself (its pid namespace)
    uid: int  # effective uid: the owner of the agent's files
    gid: int
    start_ticks: int

    @classmethod
    def of(cls, pid: int) -> TargetProcess:
        try:
            with open("/proc/%d/status" % pid) as handle:
                status = handle.read()
            ticks = start_ticks(pid)
        except FileNotFoundError:
            raise LuAttachError("no process with pid %d" % pid)
        except (OSError, ValueError, IndexError):
            raise LuAttachError("process %d: cannot read its state" % pid)
        fields = {}
        for line in status.splitlines():
            key, _, value = line.partition(":")
            fields[key] = value.split()
        try:
            uid, gid = int(fields["Uid"][1]), int(fields["Gid"][1])
            nspid = int(fields.get("NSpid", [pid])[-1])
        except (KeyError, IndexError, ValueError):
            raise LuAttachError("process %d: cannot read its state" % pid)
        return cls(pid=pid, nspid=nspid, uid=uid, gid=gid, start_ticks=ticks)

    @property
    def socket_name(self) -> str:
        return paths.socket_name(self.nspid)

    @property
    def info_name(self) -> str:
        return paths.info_name(self.nspid)

    def host_path(self, target_path: str) -> str:
        return target_root(self.pid) + target_path


def open_tmp(target: TargetProcess) -> safefs.Dir:
    """The target's /tmp: a directory only root (or a sticky bit) protects."""
    try:
        opened = safefs.open_root(target.pid)
    except (FileNotFoundError, ProcessLookupError):
        raise LuAttachError("process %d has exited" % target.pid)
    except OSError as exc:
        raise LuAttachError("process %d: cannot open its root (%s)" % (target.pid, exc.strerror or exc))
    with opened as root:
        try:
            return root.subdir(paths.BASE.strip("/"))
        except FileNotFoundError:
            raise LuAttachError("process %d has no %s" % (target.pid, paths.BASE))
        except OSError as exc:
            raise LuAttachError("process %d: cannot open its %s (%s)" % (target.pid, paths.BASE, exc.strerror or exc))


def open_runtime(target: TargetProcess, tmp: Optional[safefs.Dir] = None, create: bool = False) -> Optional[safefs.Dir]:
    """The agent's directory, verified private and the target user's; None when absent."""
    owned = tmp is None
    if tmp is None:
        tmp = open_tmp(target)
    name = os.path.basename(paths.runtime_dir(target.uid))
    try:
        with safefs.acting_as(target.uid, target.gid):
            return tmp.subdir(name, owner=target.uid, private=True, create_mode=0o700 if create else None)
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise LuAttachError("process %d: cannot use %s/%s (%s)" % (target.pid, paths.BASE, name, exc.strerror or exc))
    finally:
        if owned:
            tmp.close()


def connect_socket(target: TargetProcess, timeout: float) -> socket.socket:
    """A connection to the agent's socket (its identity is checked by the client's handshake).

    AgentAbsent: no socket or nobody listening; AgentBusy: a listener that
    does not take the connection in time (it is there, only busy).
    """
    runtime = open_runtime(target)
    if runtime is None:
        raise AgentAbsent("no lu agent runs in process %d" % target.pid)
    try:
        with safefs.acting_as(target.uid, target.gid):
            return runtime.connect(target.socket_name, target.uid, timeout)
    except (FileNotFoundError, ConnectionRefusedError, safefs.NotASocket):
        # Nothing listens there (a link or a FIFO is no agent either: the next agent replaces it).
        raise AgentAbsent("no lu agent runs in process %d" % target.pid)
    except (BlockingIOError, socket.timeout):
        raise AgentBusy("the agent of process %d does not accept connections right now" % target.pid)
    except safefs.UnsafePath as exc:
        raise LuAttachError("process %d: %s" % (target.pid, exc))
    except OSError as exc:
        raise AgentAbsent("cannot connect to the agent of process %d: %s" % (target.pid, exc.strerror or exc))
    finally:
        runtime.close()
