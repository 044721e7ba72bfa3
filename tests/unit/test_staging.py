"""lu_attach.staging.mount_options: the options of the mount that holds a path, from /proc/PID/mountinfo."""

from __future__ import annotations

import builtins
import os

import pytest

from lu_attach import staging
from lu_attach.staging import mount_options

PID = 4242

# Deliberately out of order: the kernel lists mounts in mount order, not by path.
MOUNTINFO = """\
22 27 0:21 / /proc rw,nosuid,nodev,noexec,relatime - proc proc rw
27 1 254:0 / / rw,relatime - ext4 /dev/vda rw
30 27 0:30 / /tmp rw,nosuid,nodev,noexec - tmpfs tmpfs rw
31 30 0:31 / /tmp/deep ro,relatime - tmpfs tmpfs rw
32 27 0:32 / /mnt/my\\040disk ro,noexec - ext4 /dev/sdb rw
short line
"""


@pytest.fixture
def mountinfo(tmp_path, monkeypatch):
    """mountinfo(text): make mount_options(PID, ...) read `text` as /proc/PID/mountinfo."""
    fake = tmp_path / "mountinfo"

    def fake_open(path, *args, **kwargs):
        assert path == "/proc/%d/mountinfo" % PID
        return builtins.open(str(fake), *args, **kwargs)

    def use(text: str) -> None:
        fake.write_text(text)
        monkeypatch.setattr(staging, "open", fake_open, raising=False)  # the module's `open`, before builtins'

    return use


@pytest.mark.parametrize(
    "path, options",
    [
        ("/", ["rw", "relatime"]),
        ("/usr/lib", ["rw", "relatime"]),
        ("/proc", ["rw", "nosuid", "nodev", "noexec", "relatime"]),
        ("/tmp", ["rw", "nosuid", "nodev", "noexec"]),
        ("/tmp/lu-0/stage", ["rw", "nosuid", "nodev", "noexec"]),
        ("/tmp/deep", ["ro", "relatime"]),  # the longest mount point wins
        ("/tmp/deep/x", ["ro", "relatime"]),
        ("/tmp/deeper", ["rw", "nosuid", "nodev", "noexec"]),  # a prefix of the name is not a parent
        ("/tmpfs", ["rw", "relatime"]),
        ("/mnt/my disk/file", ["ro", "noexec"]),  # \\040 is a space
    ],
)
def test_the_longest_mount_point_holding_the_path_wins(mountinfo, path, options):
    mountinfo(MOUNTINFO)
    assert mount_options(PID, path) == options


def test_a_later_mount_over_the_same_point_wins(mountinfo):
    mountinfo(
        "30 27 0:30 / /tmp rw,noexec - tmpfs tmpfs rw\n"
        "27 1 254:0 / / rw - ext4 /dev/vda rw\n"
        "40 30 0:40 / /tmp rw,nosuid - tmpfs tmpfs rw\n"
    )
    assert mount_options(PID, "/tmp") == ["rw", "nosuid"]


@pytest.mark.parametrize("text", ["", "garbage\n", "30 27 0:30 / /tmp rw - tmpfs tmpfs rw\n"])
def test_no_mount_holding_the_path(mountinfo, text):
    mountinfo(text)
    assert mount_options(PID, "/var") is None


def test_a_process_that_does_not_exist():
    with open("/proc/sys/kernel/pid_max") as handle:
        beyond = int(handle.read()) + 1
    assert mount_options(beyond, "/") is None


FLAGS = [("ro", os.ST_RDONLY), ("nosuid", os.ST_NOSUID), ("nodev", os.ST_NODEV), ("noexec", os.ST_NOEXEC)]


@pytest.mark.parametrize("path", ["/", "/proc", "/proc/self"])
def test_the_real_mountinfo_of_this_process_agrees_with_statvfs(path):
    options = mount_options(os.getpid(), path)
    assert options is not None
    flags = os.statvfs(path).f_flag
    for option, flag in FLAGS:
        assert (option in options) == bool(flags & flag), (option, options)
    assert ("rw" in options) != ("ro" in options)
