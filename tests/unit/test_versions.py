"""The supported-version gate of lu_attach.inject.check_target, and PythonProcess.version_tuple.

check_target runs on this test process itself (it exists, is ours and is not
a zombie); what discover would find in it and the ptrace scope are replaced,
so only the version decides.
"""

from __future__ import annotations

import os

import pytest

from lu_attach import discover, inject
from lu_attach.discover import PythonProcess
from lu_attach.errors import LuAttachError


def python_process(version: str) -> PythonProcess:
    return PythonProcess(pid=os.getpid(), user="someone", python=version, agent=False, cmdline="python app.py")


@pytest.mark.parametrize(
    "version, expected",
    [
        ("3.11.7", (3, 11)),
        ("3.11", (3, 11)),
        ("3.13.0rc1", (3, 13)),
        ("3.8.20", (3, 8)),
        ("3.10.0", (3, 10)),  # 10 after 9, not before 2
    ],
)
def test_version_tuple(version, expected):
    assert python_process(version).version_tuple() == expected


@pytest.mark.parametrize("version, error", [("3", IndexError), ("", ValueError), ("3.x", ValueError)])
def test_version_tuple_of_an_unreadable_version(version, error):
    with pytest.raises(error):
        python_process(version).version_tuple()


@pytest.fixture
def found_version(monkeypatch):
    """found_version(v): check_target(os.getpid()) then sees a CPython `v` and ptrace_scope 0."""

    def use(version: str) -> None:
        monkeypatch.setattr(discover, "inspect_process", lambda pid, probe_agent=True: python_process(version))
        monkeypatch.setattr(inject, "ptrace_scope", lambda: 0)

    return use


@pytest.mark.parametrize(
    "version", ["3.8", "3.8.0", "3.9.18", "3.11.7", "3.12.1", "3.13", "3.13.2", "3.14.0", "3.14", "3.15.2"]
)
def test_supported_versions_pass(found_version, version):
    found_version(version)
    assert inject.check_target(os.getpid()).python == version


@pytest.mark.parametrize("version", ["2.7.18", "3.7.17", "3.16.0", "3.16", "4.0"])
def test_unsupported_versions_are_refused(found_version, version):
    found_version(version)
    with pytest.raises(LuAttachError) as caught:
        inject.check_target(os.getpid())
    assert str(caught.value) == "process %d runs Python %s; lu supports CPython 3.8 to 3.15" % (os.getpid(), version)


@pytest.mark.parametrize("version", ["3.15.0a3", "3.14.0rc1", "3.16.0b1"])
def test_pre_releases_are_refused(found_version, version):
    found_version(version)
    with pytest.raises(LuAttachError) as caught:
        inject.check_target(os.getpid())
    message = str(caught.value)
    assert message.startswith("process %d runs Python %s" % (os.getpid(), version)) and "\n" not in message
    assert ("pre-release" in message) != version.startswith("3.16"), message


@pytest.mark.parametrize(
    "hexversion, suffix", [(0x030F00A3, "a3"), (0x030E00B1, "b1"), (0x030E00C2, "rc2"), (0x030E02F0, "")]
)
def test_the_release_level_is_read_from_the_hex_version(hexversion, suffix):
    from lu_attach.pythons import release_suffix

    assert release_suffix(hexversion) == suffix


@pytest.mark.parametrize("version", ["3", "three.eleven", ""])
def test_an_unreadable_version_is_refused(found_version, version):
    found_version(version)
    with pytest.raises(LuAttachError, match="runs a Python whose version lu cannot read"):
        inject.check_target(os.getpid())
