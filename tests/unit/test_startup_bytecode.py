"""Bytecode kept aside for the agent's start (lu_payloads/startup.py).

Where the standard library has no bytecode and the program writes none, lu
keeps some in the agent's directory; only the thread that starts the agent
loads modules from there, and only while the bytecode matches the source.
"""

from __future__ import annotations

import importlib.util
import os
import py_compile
import sys
import threading

import pytest

from lu_payloads import startup


@pytest.fixture
def library(tmp_path, monkeypatch):
    """A module with no bytecode of its own, its bytecode aside, and a finder for this thread."""
    source_dir = tmp_path / "lib"
    source_dir.mkdir()
    source = source_dir / "lu_aside_probe.py"
    source.write_text("VALUE = 'from the source'\n")
    aside = str(tmp_path / "aside")
    py_compile.compile(str(source), cfile=aside + importlib.util.cache_from_source(str(source)), doraise=True)
    monkeypatch.setattr(sys, "dont_write_bytecode", True)  # so that the import writes none of its own
    monkeypatch.syspath_prepend(str(source_dir))
    monkeypatch.delitem(sys.modules, "lu_aside_probe", raising=False)
    finder = startup.AsideFinder(aside)
    yield source, finder
    sys.modules.pop("lu_aside_probe", None)


def test_the_starting_thread_loads_the_bytecode_kept_aside(library):
    _source, finder = library
    spec = finder.find_spec("lu_aside_probe")
    assert spec is not None and type(spec.loader).__name__ == "AsideLoader"
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    assert module.VALUE == "from the source"


def test_other_threads_imports_are_not_served(library):
    _source, finder = library
    seen = []
    thread = threading.Thread(target=lambda: seen.append(finder.find_spec("lu_aside_probe")))
    thread.start()
    thread.join()
    assert seen == [None]


def test_lus_own_modules_are_not_looked_for(library, monkeypatch):
    """lu's modules have their bytecode in lu's copy: the finder does not even ask the path finder."""
    _source, finder = library
    asked = []
    monkeypatch.setattr(finder, "path_finder", type("Asked", (), {"find_spec": lambda *a: asked.append(a)}))
    assert finder.find_spec("lu_payloads.engine") is None and finder.find_spec("lu_payloads") is None
    assert asked == []
    finder.find_spec("lu_aside_probe")
    assert len(asked) == 1


def test_a_module_with_bytecode_of_its_own_is_left_to_the_programs_finders(library):
    source, finder = library
    py_compile.compile(str(source), cfile=importlib.util.cache_from_source(str(source)), doraise=True)
    assert finder.find_spec("lu_aside_probe") is None


def test_bytecode_that_no_longer_matches_the_source_is_not_used(library):
    source, finder = library
    source.write_text("VALUE = 'edited, longer than before'\n")
    spec = finder.find_spec("lu_aside_probe")
    assert spec is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)  # the loader compiles the source instead
    assert module.VALUE == "edited, longer than before"


def test_a_missing_or_foreign_file_gives_no_code(tmp_path):
    source = tmp_path / "m.py"
    source.write_text("X = 1\n")
    bogus = tmp_path / "bogus.pyc"
    bogus.write_bytes(b"not bytecode at all")
    import marshal

    magic = importlib.util.MAGIC_NUMBER
    assert startup.aside_code(str(source), str(tmp_path / "absent.pyc"), magic, marshal.loads) is None
    assert startup.aside_code(str(source), str(bogus), magic, marshal.loads) is None


def test_before_314_lu_compiles_its_own_modules_in_the_starting_thread(tmp_path, monkeypatch):
    """No subinterpreter with a GIL of its own there: lu's missing bytecode is written by the agent's
    thread (once per version), and nothing is kept aside."""
    if startup.can_compile_aside():
        pytest.skip("this Python compiles aside")
    package = tmp_path / "pkg"
    package.mkdir()
    (package / "a.py").write_text("A = 1\n")
    monkeypatch.setattr(sys, "dont_write_bytecode", True)
    monkeypatch.setattr(sys, "pycache_prefix", None)
    report, finder = startup.prepare(str(package), str(tmp_path / "runtime"))
    assert report == {"modules": 1, "where": "agent thread"} and finder is None
    assert os.path.exists(importlib.util.cache_from_source(str(package / "a.py")))
    assert startup.prepare(str(package), str(tmp_path / "runtime")) == (None, None)  # once only
