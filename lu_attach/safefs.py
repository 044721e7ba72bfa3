"""Files in places another user controls, handled so that user cannot steer lu.

An on-call engineer runs lu as root against a service that runs as its own
user. Everything in that user's directories (`/tmp/lu-UID/`, the logs below
it, the source tree `lu watch` follows) is under the user's control, and the
user may plant symlinks, FIFOs, devices, huge files, or swap a name between
lu's check and lu's use. So every such operation here:

- goes through a directory descriptor that was opened without following a
  symlink and checked (owner, mode) before use, never through a path string;
- opens the last component with O_NOFOLLOW (and O_NONBLOCK for reads, so a
  FIFO cannot block), then checks what it opened with fstat (a regular file,
  a socket, the expected owner);
- creates with O_EXCL and sets modes on the descriptor (fchmod), never chown;
- reads a bounded number of bytes.

And while root works in a user's directory it can take that user's
filesystem identity for the thread (`acting_as`, setfsuid/setfsgid): the
kernel then refuses whatever the user could not do themselves, whatever
slipped past the checks. A thread started inside `acting_as` inherits it, so
the blocks stay short and start nothing.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import errno
import io
import os
import socket
import stat
import threading
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Callable, Iterator, List, Optional

from .errors import LuAttachError

_libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
_fs_lock = threading.Lock()

READ_FLAGS = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC
DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC


class UnsafePath(LuAttachError):
    """A path in another user's space is not what lu may safely use (one line for the user)."""


class NotASocket(UnsafePath):
    """Something other than a socket (a link, a FIFO, a file) sits where a socket was expected."""


def _set_fs_ids(uid: int, gid: int) -> None:
    _libc.setfsgid(gid)
    _libc.setfsuid(uid)
    if _libc.setfsuid(-1) != uid or _libc.setfsgid(-1) != gid:
        raise UnsafePath("could not take the file identity of uid %d" % uid)


@contextmanager
def acting_as(uid: int, gid: int) -> Iterator[None]:
    """Do this thread's file work as uid/gid (root only; otherwise a no-op).

    The kernel drops root's file capabilities for the duration (DAC override,
    chown, ...), so a planted symlink or a swapped name reaches only what the
    user can reach anyway.
    """
    if os.geteuid() != 0 or uid == 0:
        yield
        return
    with _fs_lock:  # one switch at a time keeps restoring simple
        _set_fs_ids(uid, gid)
        try:
            yield
        finally:
            _set_fs_ids(0, os.getegid())


@dataclass
class Dir:
    """An open, verified directory: every name below it is resolved from this descriptor."""

    fd: int
    path: str  # for messages only; never used to open anything
    uid: int

    def close(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1

    def __enter__(self) -> Dir:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def names(self) -> List[str]:
        return os.listdir(self.fd)

    def lstat(self, name: str) -> os.stat_result:
        return os.stat(name, dir_fd=self.fd, follow_symlinks=False)

    def unlink(self, name: str) -> bool:
        """Remove a name (a symlink is removed, never followed); False when it was not there."""
        try:
            os.unlink(name, dir_fd=self.fd)
            return True
        except FileNotFoundError:
            return False

    def read(self, name: str, limit: int, owner: Optional[int] = None) -> bytes:
        """The content of a regular file, at most `limit` bytes (else UnsafePath)."""
        fd = self.open_regular(name, owner)
        try:
            if os.fstat(fd).st_size > limit:
                raise UnsafePath("%s/%s is larger than %d bytes" % (self.path, name, limit))
            data = read_bounded(fd, limit + 1)
            if len(data) > limit:
                raise UnsafePath("%s/%s grew past %d bytes" % (self.path, name, limit))
            return data
        finally:
            os.close(fd)

    def open_regular(self, name: str, owner: Optional[int] = None) -> int:
        """A read descriptor of a regular file (no symlink, no FIFO, no device)."""
        fd = os.open(name, READ_FLAGS, dir_fd=self.fd)
        try:
            st = os.fstat(fd)
            if not stat.S_ISREG(st.st_mode):
                raise UnsafePath("%s/%s is not a regular file" % (self.path, name))
            if owner is not None and st.st_uid != owner:
                raise UnsafePath("%s/%s belongs to uid %d, not %d" % (self.path, name, st.st_uid, owner))
            os.set_blocking(fd, True)
            return fd
        except BaseException:
            os.close(fd)
            raise

    def write_new(self, name: str, data: bytes, mode: int = 0o600) -> None:
        """Create `name` (it must not exist) with exactly this content and mode."""
        fd = os.open(name, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, mode, dir_fd=self.fd)
        try:
            os.fchmod(fd, mode)
            view = memoryview(data)
            while view:
                written = os.write(fd, view)
                view = view[written:]
        finally:
            os.close(fd)

    def subdir(
        self, name: str, owner: Optional[int] = None, private: bool = False, create_mode: Optional[int] = None
    ) -> Dir:
        """Open (or create) a directory below this one, verified like `open_dir`."""
        if create_mode is not None:
            try:
                os.mkdir(name, create_mode, dir_fd=self.fd)
            except FileExistsError:
                pass
        try:
            fd = os.open(name, DIR_FLAGS, dir_fd=self.fd)
        except OSError as exc:
            _refuse_link(exc, "%s/%s" % (self.path, name), lambda: stat.S_ISLNK(self.lstat(name).st_mode))
            raise
        try:
            if create_mode is not None:
                st = os.fstat(fd)
                if st.st_uid == os.geteuid() and stat.S_IMODE(st.st_mode) != create_mode:
                    os.fchmod(fd, create_mode)  # mkdir's mode is cut by the umask
            return _verified(fd, "%s/%s" % (self.path, name), owner, private)
        except BaseException:
            os.close(fd)
            raise

    def connect(self, name: str, owner: int, timeout: float) -> socket.socket:
        """Connect to the unix socket `name`: refused when it is a symlink, not a socket, or not owner's."""
        fd = os.open(name, os.O_PATH | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=self.fd)
        try:
            st = os.fstat(fd)
            if not stat.S_ISSOCK(st.st_mode):
                raise NotASocket("%s/%s is not a socket" % (self.path, name))
            if st.st_uid != owner:
                raise UnsafePath("%s/%s belongs to uid %d, not %d" % (self.path, name, st.st_uid, owner))
            sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            sock.settimeout(timeout)
            try:
                # Through the descriptor: the name cannot be swapped for a link meanwhile.
                sock.connect("/proc/self/fd/%d" % fd)
            except BaseException:
                sock.close()
                raise
            return sock
        finally:
            os.close(fd)


def _verified(fd: int, path: str, owner: Optional[int], private: bool) -> Dir:
    st = os.fstat(fd)
    if not stat.S_ISDIR(st.st_mode):
        raise UnsafePath("%s is not a directory" % path)
    if owner is not None and st.st_uid != owner:
        raise UnsafePath("%s belongs to uid %d, not %d; lu will not use it (remove it)" % (path, st.st_uid, owner))
    mode = stat.S_IMODE(st.st_mode)
    if private and mode & 0o077:
        raise UnsafePath("%s is open to other users (mode %o); lu will not use it (remove it)" % (path, mode))
    if not private and mode & 0o022 and not (mode & stat.S_ISVTX and st.st_uid == 0):
        raise UnsafePath("%s is writable by other users (mode %o); lu will not use it" % (path, mode))
    return Dir(fd, path, st.st_uid)


def _refuse_link(exc: OSError, path: str, is_link: Callable[[], bool]) -> None:
    """Name a directory that is a symlink as such (O_NOFOLLOW | O_DIRECTORY fails with ENOTDIR on one)."""
    if exc.errno in (errno.ELOOP, errno.ENOTDIR):
        try:
            link = is_link()
        except OSError:
            return
        if link:
            raise UnsafePath("%s is a symlink; lu will not follow it" % path)


def open_dir(path: str, owner: Optional[int] = None, private: bool = False) -> Dir:
    """Open an absolute directory path whose every component may be trusted up to its last one.

    Used for roots lu trusts (`/proc/PID/root`, which is a kernel link); the
    last component is opened without following a symlink and verified.
    """
    try:
        fd = os.open(path, DIR_FLAGS)
    except OSError as exc:
        _refuse_link(exc, path, lambda: os.path.islink(path))
        raise
    try:
        return _verified(fd, path, owner, private)
    except BaseException:
        os.close(fd)
        raise


def open_root(pid: int) -> Dir:
    """The target's root directory (its mount namespace's `/`), as a descriptor."""
    path = "/proc/%d/root" % pid
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)  # a kernel link: followed on purpose
    return Dir(fd, path, os.fstat(fd).st_uid)


def open_image(path: str) -> io.BufferedReader:
    """A binary file a target maps (an ELF image), opened so that a FIFO or a device cannot block lu.

    The path comes from the target's own map; its user may have swapped the
    file for anything since. Links are followed (libraries live behind them),
    but what is opened must be a regular file.
    """
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise UnsafePath("%s is not a regular file" % path)
        os.set_blocking(fd, True)
        return io.BufferedReader(io.FileIO(fd, "rb", closefd=True))
    except BaseException:
        os.close(fd)
        raise


def read_bounded(fd: int, limit: int) -> bytes:
    """Up to `limit` bytes of an open descriptor."""
    chunks = []
    left = limit
    while left > 0:
        chunk = os.read(fd, min(left, 1 << 16))
        if not chunk:
            break
        chunks.append(chunk)
        left -= len(chunk)
    return b"".join(chunks)
