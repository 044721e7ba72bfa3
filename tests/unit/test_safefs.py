"""lu_attach.safefs: files in directories another user controls, in a temporary directory of ours."""

from __future__ import annotations

import errno
import os
import pathlib
import shutil
import socket
import stat
import tempfile

import pytest

from lu_attach import safefs
from lu_attach.safefs import NotASocket, UnsafePath

OTHER_UID = 65534


@pytest.fixture
def top(tmp_path):
    """tmp_path opened as a verified safefs.Dir (tmp_path is ours and 0700)."""
    with safefs.open_dir(str(tmp_path)) as directory:
        yield directory


@pytest.fixture
def umask():
    old = os.umask(0o077)
    yield
    os.umask(old)


def fs_uid() -> int:
    """This thread's filesystem uid (the fourth field of Uid:)."""
    with open("/proc/thread-self/status") as handle:
        for line in handle:
            if line.startswith("Uid:"):
                return int(line.split()[4])
    raise AssertionError("no Uid line")


# -- Dir.read -----------------------------------------------------------------------------------------------


def test_read_a_regular_file_up_to_its_limit(top, tmp_path):
    (tmp_path / "f").write_bytes(b"x" * 100)
    assert top.read("f", 100) == b"x" * 100
    with pytest.raises(UnsafePath, match="larger than 99 bytes"):
        top.read("f", 99)


def test_read_refuses_a_symlink(top, tmp_path):
    (tmp_path / "real").write_bytes(b"secret")
    os.symlink("real", str(tmp_path / "link"))
    with pytest.raises(OSError) as caught:
        top.read("link", 100)
    assert caught.value.errno == errno.ELOOP


def test_read_refuses_a_fifo_without_blocking(top, fifo, promptly):
    with pytest.raises(UnsafePath, match="not a regular file"):
        promptly(lambda: top.read(os.path.basename(fifo), 100))


def test_read_refuses_a_directory(top, tmp_path):
    (tmp_path / "d").mkdir()
    with pytest.raises(UnsafePath, match="not a regular file"):
        top.read("d", 100)


def test_read_checks_the_owner(top, tmp_path):
    (tmp_path / "f").write_bytes(b"data")
    assert top.read("f", 100, owner=os.geteuid()) == b"data"
    with pytest.raises(UnsafePath, match="belongs to uid %d, not %d" % (os.geteuid(), os.geteuid() + 1)):
        top.read("f", 100, owner=os.geteuid() + 1)


def test_read_refuses_a_file_of_another_user(root_only, top, tmp_path):
    (tmp_path / "f").write_bytes(b"planted")
    os.chown(str(tmp_path / "f"), OTHER_UID, OTHER_UID)
    with pytest.raises(UnsafePath, match="belongs to uid %d, not 0" % OTHER_UID):
        top.read("f", 100, owner=0)
    assert top.read("f", 100, owner=OTHER_UID) == b"planted"


# -- Dir.write_new, unlink ----------------------------------------------------------------------------------


def test_write_new_sets_content_and_exact_mode(top, tmp_path, umask):
    top.write_new("new", b"content", mode=0o644)
    assert (tmp_path / "new").read_bytes() == b"content"
    assert stat.S_IMODE(os.stat(str(tmp_path / "new")).st_mode) == 0o644  # not cut by the umask


def test_write_new_refuses_an_existing_name(top, tmp_path):
    (tmp_path / "f").write_bytes(b"old")
    with pytest.raises(FileExistsError):
        top.write_new("f", b"new")
    assert (tmp_path / "f").read_bytes() == b"old"


def test_write_new_does_not_follow_a_symlink(top, tmp_path):
    os.symlink(str(tmp_path / "victim"), str(tmp_path / "link"))  # dangling: following it would create victim
    with pytest.raises(FileExistsError):
        top.write_new("link", b"new")
    assert not (tmp_path / "victim").exists()


def test_unlink_removes_a_symlink_not_its_target(top, tmp_path):
    (tmp_path / "real").write_bytes(b"keep")
    os.symlink("real", str(tmp_path / "link"))
    assert top.unlink("link") is True
    assert top.unlink("link") is False
    assert (tmp_path / "real").read_bytes() == b"keep"


# -- Dir.connect --------------------------------------------------------------------------------------------


@pytest.fixture
def listening(tmp_path):
    server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    server.bind(str(tmp_path / "sock"))
    server.listen(1)
    yield server
    server.close()


def test_connect_reaches_a_listening_socket(top, listening):
    with top.connect("sock", owner=os.geteuid(), timeout=5) as client:
        accepted, _ = listening.accept()
        with accepted:
            client.sendall(b"ping")
            assert accepted.recv(4) == b"ping"


@pytest.mark.parametrize("kind", ["symlink", "file", "fifo", "directory"])
def test_connect_refuses_what_is_not_a_socket(top, tmp_path, listening, fifo, promptly, kind):
    name = os.path.basename(fifo) if kind == "fifo" else "name"
    if kind == "symlink":
        os.symlink("sock", str(tmp_path / name))  # to the real, listening socket
    elif kind == "file":
        (tmp_path / name).write_bytes(b"")
    elif kind == "directory":
        (tmp_path / name).mkdir()
    with pytest.raises(NotASocket, match="not a socket"):
        promptly(lambda: top.connect(name, owner=os.geteuid(), timeout=5))


def test_connect_checks_the_owner(top, listening):
    with pytest.raises(UnsafePath, match="belongs to uid") as caught:
        top.connect("sock", owner=os.geteuid() + 1, timeout=5)
    assert not isinstance(caught.value, NotASocket)


# -- Dir.subdir and open_dir --------------------------------------------------------------------------------


def make_dir(tmp_path, mode: int, owner: int = -1) -> str:
    path = tmp_path / "d"
    path.mkdir()
    os.chmod(str(path), mode)
    if owner >= 0:
        os.chown(str(path), owner, -1)
    return "d"


@pytest.mark.parametrize(
    "mode, private, refusal",
    [
        (0o755, False, None),
        (0o700, False, None),
        (0o775, False, "writable by other users"),
        (0o757, False, "writable by other users"),
        (0o1777, False, "writable by other users"),  # sticky, but not root's
        (0o700, True, None),
        (0o750, True, "open to other users"),
        (0o755, True, "open to other users"),
        (0o701, True, "open to other users"),
    ],
)
def test_subdir_modes(top, tmp_path, mode, private, refusal):
    name = make_dir(tmp_path, mode, OTHER_UID if os.geteuid() == 0 else -1)
    owner = os.stat(str(tmp_path / name)).st_uid
    if refusal is None:
        with top.subdir(name, private=private) as sub:
            assert sub.uid == owner
            assert sub.path == "%s/%s" % (top.path, name)
    else:
        with pytest.raises(UnsafePath, match=refusal):
            top.subdir(name, private=private)


def test_a_sticky_directory_of_root_is_accepted():
    tmp = os.stat("/tmp")
    if tmp.st_uid != 0 or stat.S_IMODE(tmp.st_mode) != 0o1777:
        pytest.skip("/tmp is not root's sticky, world-writable directory here")
    with safefs.open_dir("/") as root, root.subdir("tmp") as sub:
        assert sub.uid == 0


def test_subdir_checks_the_owner(top, tmp_path):
    name = make_dir(tmp_path, 0o700)
    with top.subdir(name, owner=os.geteuid(), private=True):
        pass
    with pytest.raises(UnsafePath, match="belongs to uid %d, not %d" % (os.geteuid(), os.geteuid() + 1)):
        top.subdir(name, owner=os.geteuid() + 1)


def test_subdir_creates_with_the_exact_mode(top, tmp_path, umask):
    with top.subdir("made", create_mode=0o755) as sub:
        assert sub.uid == os.geteuid()
    assert stat.S_IMODE(os.stat(str(tmp_path / "made")).st_mode) == 0o755


def test_subdir_refuses_a_symlink(top, tmp_path):
    (tmp_path / "real").mkdir(mode=0o700)
    os.symlink("real", str(tmp_path / "link"))
    with pytest.raises(UnsafePath, match="link is a symlink"):
        top.subdir("link")


def test_open_dir_names_a_symlink_as_such(tmp_path):
    (tmp_path / "real").mkdir(mode=0o700)
    os.symlink("real", str(tmp_path / "link"))
    with pytest.raises(UnsafePath, match="is a symlink"):
        safefs.open_dir(str(tmp_path / "link"))


# -- open_image ---------------------------------------------------------------------------------------------


def test_open_image_reads_a_regular_file_through_a_link(tmp_path):
    (tmp_path / "libx.so.1").write_bytes(b"\x7fELF")
    os.symlink("libx.so.1", str(tmp_path / "libx.so"))  # libraries live behind links
    with safefs.open_image(str(tmp_path / "libx.so")) as handle:
        assert handle.read() == b"\x7fELF"


def test_open_image_refuses_a_fifo_without_blocking(fifo, promptly):
    with pytest.raises(UnsafePath, match="not a regular file"):
        promptly(lambda: safefs.open_image(fifo))


def test_open_image_refuses_a_directory(tmp_path):
    with pytest.raises(UnsafePath, match="not a regular file"):
        safefs.open_image(str(tmp_path))


# -- acting_as ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("euid, uid", [(1000, OTHER_UID), (0, 0)])
def test_acting_as_is_a_no_op_unless_root_acts_for_another_user(monkeypatch, euid, uid):
    before = fs_uid()
    monkeypatch.setattr(safefs.os, "geteuid", lambda: euid)  # a non-root lu (or root acting as root)
    with safefs.acting_as(uid, uid):
        assert fs_uid() == before
    assert fs_uid() == before


@pytest.fixture
def traversable():
    """A directory under /tmp that every user can enter (tmp_path's parents are 0700)."""
    path = tempfile.mkdtemp(prefix="lu-unit-")
    os.chmod(path, 0o755)
    yield pathlib.Path(path)
    shutil.rmtree(path)


def test_acting_as_takes_the_users_file_identity(root_only, traversable):
    (traversable / "roots").write_bytes(b"root only")
    os.chmod(str(traversable / "roots"), 0o600)
    (traversable / "public").write_bytes(b"anyone")
    os.chmod(str(traversable / "public"), 0o644)
    with safefs.acting_as(OTHER_UID, OTHER_UID):
        assert fs_uid() == OTHER_UID
        assert (traversable / "public").read_bytes() == b"anyone"
        with pytest.raises(PermissionError):
            (traversable / "roots").read_bytes()
    assert fs_uid() == 0
    assert (traversable / "roots").read_bytes() == b"root only"
