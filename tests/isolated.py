"""Targets with a /tmp of their own, run as another user: room for a hostile user to plant things.

Each target runs in its own mount namespace with a fresh tmpfs on /tmp (as a
container or systemd's PrivateTmp would give it), as `nobody` (or root when
asked). lu reaches that /tmp through /proc/PID/root, exactly as it reaches a
container's. What the hostile user does happens in that private /tmp, so
these tests never disturb the agents of other tests running beside them.
"""

from __future__ import annotations

import os
import shutil
import stat
import subprocess
import tempfile
from pathlib import Path
from typing import List, Optional

from conftest import SYSTEM_PYTHON, ReadyProcess, nobody_dir

NOBODY = 65534
# The copy of lu and the targets lives under the host's /tmp: it is bound back in at the same path.
_SHELL = (
    'cd "$0" && mount -t tmpfs -o mode=1777$LU_TEST_TMP_OPTIONS lu-test /tmp && mkdir -p "$0" && '
    'mount --no-canonicalize --bind . "$0" && '
    'cd "$0" && exec setpriv --reuid=$LU_TEST_UID --regid=$LU_TEST_UID --clear-groups "$@"'
)


def isolation_available() -> Optional[str]:
    """None when targets can get a private /tmp here, else why not."""
    if os.geteuid() != 0:
        return "needs root to make mount namespaces and act as other users"
    for tool in ("unshare", "setpriv"):
        if shutil.which(tool) is None:
            return "%s (util-linux) is not installed" % tool
    return None


class IsolatedTarget(ReadyProcess):
    def __init__(self, script: str, *args: str, uid: int = NOBODY, python: str = SYSTEM_PYTHON, tmp_options: str = ""):
        self.uid = uid
        env = dict(os.environ, LU_TEST_UID=str(uid), LU_TEST_TMP_OPTIONS="," + tmp_options if tmp_options else "")
        super().__init__(
            [
                "unshare",
                "--mount",
                "--propagation",
                "private",
                "sh",
                "-c",
                _SHELL,
                nobody_dir(),
                python,
                "-u",
                os.path.join("targets", script),
            ]
            + list(args),
            "isolated " + script,
            env=env,
        )

    @property
    def tmp(self) -> str:
        """The target's /tmp, as root on the host sees it."""
        return "/proc/%d/root/tmp" % self.pid

    @property
    def home(self) -> str:
        """The target user's lu directory (/tmp/lu-UID), as root on the host sees it."""
        return os.path.join(self.tmp, "lu-%d" % self.uid)

    def as_user(self, code: str, timeout: float = 30) -> subprocess.CompletedProcess:
        """Run Python code as the target's user (it reaches the private /tmp through TMP, set for it)."""
        env = dict(os.environ, TMP_OF_TARGET=self.tmp, PID_OF_TARGET=str(self.pid))
        result = subprocess.run(
            ["setpriv", "--reuid=%d" % self.uid, "--regid=%d" % self.uid, "--clear-groups", SYSTEM_PYTHON, "-c", code],
            capture_output=True,
            text=True,
            timeout=timeout,
            env=env,
            cwd="/",
        )
        assert result.returncode == 0, result.stderr
        return result


class Victim:
    """Root's own files that a hostile user must not reach through lu: a 0700 directory with a 0600 file."""

    def __init__(self) -> None:
        self.dir = tempfile.mkdtemp(prefix="lu-victim-", dir="/var/tmp")
        self.file = os.path.join(self.dir, "important.conf")
        with open(self.file, "w") as handle:
            handle.write("PASSWORD=root-only\n")
        os.chmod(self.file, 0o600)
        self._before = self.state()

    def state(self) -> List[tuple]:
        entries = []
        for dirpath, _dirnames, filenames in os.walk(self.dir):
            for name in [dirpath] + [os.path.join(dirpath, f) for f in filenames]:
                st = os.lstat(name)
                content = Path(name).read_bytes() if stat.S_ISREG(st.st_mode) else b""
                entries.append((name, st.st_uid, st.st_gid, stat.S_IMODE(st.st_mode), content))
        return sorted(entries)

    def untouched(self) -> bool:
        return self.state() == self._before

    def remove(self) -> None:
        shutil.rmtree(self.dir, ignore_errors=True)
