"""lu_attach.accel_build: the compiled timer is built once per source, and only when the host can build it."""

from __future__ import annotations

import importlib.machinery
import importlib.util
import os

from lu_attach import accel_build, native_helper
from lu_payloads.engine import accel


def fresh(monkeypatch, tmp_path):
    """No usable build in the package; lu's cache in tmp_path."""
    accel_build.accel_library.cache_clear()
    monkeypatch.setattr(accel_build, "in_package", lambda: None)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))


def test_a_build_made_here_loads_with_the_interface_the_payloads_expect(monkeypatch, tmp_path):
    fresh(monkeypatch, tmp_path)
    try:
        library = accel_build.accel_library()
        assert library is not None and library.startswith(str(tmp_path)) and library.endswith(".abi3.so")
        loader = importlib.machinery.ExtensionFileLoader(accel.MODULE, library)
        module = importlib.util.module_from_spec(importlib.util.spec_from_loader(accel.MODULE, loader))
        loader.exec_module(module)
        assert module.ABI == accel.ABI
        stamp = os.stat(library).st_mtime_ns
        accel_build.accel_library.cache_clear()
        assert accel_build.accel_library() == library and os.stat(library).st_mtime_ns == stamp  # built once
    finally:
        accel_build.accel_library.cache_clear()


def test_without_a_compiler_there_is_none_and_nothing_is_left(monkeypatch, tmp_path):
    fresh(monkeypatch, tmp_path)
    monkeypatch.setattr(native_helper.shutil, "which", lambda name: None)
    try:
        assert accel_build.accel_library() is None
        assert not (tmp_path / "lu").exists()
    finally:
        accel_build.accel_library.cache_clear()


def test_a_build_that_fails_leaves_no_half_written_file(monkeypatch, tmp_path):
    fresh(monkeypatch, tmp_path)
    monkeypatch.setenv("CC", "false")  # a "compiler" that fails
    monkeypatch.setattr(native_helper.shutil, "which", lambda name: "/bin/false")
    try:
        assert accel_build.accel_library() is None
        assert os.listdir(tmp_path / "lu") == []
    finally:
        accel_build.accel_library.cache_clear()


def test_an_in_package_build_older_than_the_source_is_not_used(monkeypatch, tmp_path):
    package = tmp_path / "lu_payloads"
    package.mkdir()
    stale = package / "_accel.abi3.so"
    stale.write_bytes(b"")
    os.utime(stale, (0, 0))
    monkeypatch.setattr(accel_build.lu_payloads, "__file__", str(package / "__init__.py"))
    assert accel_build.in_package() is None
    os.utime(stale, None)
    assert accel_build.in_package() == str(stale)
