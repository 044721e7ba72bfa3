"""Where an agent keeps its files: one private directory per user.

`/tmp/lu-<uid>/` (mode 0700, owned by that uid) holds the agent's socket
(`agent-<pid>.sock`, 0600), a small description of it (`agent-<pid>.json`),
its log, and the files of injections in progress. The uid is the process's
effective uid, which owns the files it creates; the pid is the process's own
(in its pid namespace). The host finds a target's agent through
`/proc/<pid>/root` plus the same path, so a target in another mount namespace
works too. A directory that exists but is not private and owned by the right
user is refused: someone else could have planted it.
"""

import os
import stat

BASE = "/tmp"


def runtime_dir(uid: int, root: str = "") -> str:
    return os.path.join(root + BASE, "lu-%d" % uid)


def socket_name(pid: int) -> str:
    return "agent-%d.sock" % pid


def info_name(pid: int) -> str:
    return "agent-%d.json" % pid


def socket_path(pid: int, uid: int, root: str = "") -> str:
    return os.path.join(runtime_dir(uid, root), socket_name(pid))


def info_path(pid: int, uid: int, root: str = "") -> str:
    return os.path.join(runtime_dir(uid, root), info_name(pid))


def ensure_private_dir(path: str, uid: int, gid: int = -1) -> str:
    """Create `path` 0700 for uid, or check an existing one is exactly that (never through a symlink)."""
    try:
        os.mkdir(path, 0o700)
    except FileExistsError:
        pass
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW)
    try:
        st = os.fstat(fd)
    finally:
        os.close(fd)
    if not stat.S_ISDIR(st.st_mode) or st.st_uid != uid or (st.st_mode & 0o077):
        raise PermissionError(
            "%s is not a private directory of uid %d (owner %d, mode %o); remove it"
            % (path, uid, st.st_uid, st.st_mode & 0o777)
        )
    return path
