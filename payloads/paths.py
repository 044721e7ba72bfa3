"""Where an agent keeps its files: one private directory per user.

`/tmp/lu-<uid>/` (mode 0700, owned by that uid) holds the agent's socket
(`agent-<pid>.sock`, 0600), a small description of it (`agent-<pid>.json`)
and the files of injections in progress. The host finds a target's agent
through `/proc/<pid>/root` plus the same path, so a target in another mount
namespace works too. A directory that exists but is not private and owned by
the right user is refused: someone else could have planted it.
"""
import os
import stat

BASE = "/tmp"


def runtime_dir(uid, root=""):
    return os.path.join(root + BASE, "lu-%d" % uid)


def socket_path(pid, uid, root=""):
    return os.path.join(runtime_dir(uid, root), "agent-%d.sock" % pid)


def info_path(pid, uid, root=""):
    return os.path.join(runtime_dir(uid, root), "agent-%d.json" % pid)


def ensure_private_dir(path, uid, gid=-1):
    """Create `path` 0700 for uid, or check an existing one is exactly that."""
    try:
        os.mkdir(path, 0o700)
        if os.getuid() == 0 and uid != 0:
            os.chown(path, uid, gid)
    except FileExistsError:
        pass
    st = os.lstat(path)
    if not stat.S_ISDIR(st.st_mode) or st.st_uid != uid or (st.st_mode & 0o077):
        raise PermissionError(
            "%s is not a private directory of uid %d (owner %d, mode %o); remove it"
            % (path, uid, st.st_uid, st.st_mode & 0o777))
    return path
