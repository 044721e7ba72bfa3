"""Tree updates inside one process: prepared then committed or aborted, and patches that wait for their module.

Each test has a manager of its own and a module of its own (a fresh name in a
temporary directory on sys.path), so nothing leaks between tests.
"""

from __future__ import annotations

import importlib
import itertools
import sys
from typing import Iterator

import pytest

from lu_payloads.engine import UpdateManager
from lu_payloads.engine import waiting as waiting_module
from lu_payloads.engine.patches import prepare_patch
from lu_payloads.engine.waiting import WaitingPatch
from lu_payloads.errors import LuError, ModuleNotLoaded

_names = itertools.count()


@pytest.fixture
def module(tmp_path) -> Iterator[str]:
    """The name of a module `def body(): return "original"` that is not imported yet."""
    name = "lu_unit_waiting_%d" % next(_names)
    (tmp_path / (name + ".py")).write_text('def body():\n    return "original"\n')
    sys.path.insert(0, str(tmp_path))
    yield name
    sys.path.remove(str(tmp_path))
    sys.modules.pop(name, None)


def patch_for(name: str, value: str = "patched") -> str:
    return (
        "from lu_payloads import Redefine, UpdateManager\n"
        "def body():\n    return %r\n"
        "UpdateManager.apply_update(Redefine(%r, None, {%r: body}))\n" % (value, name, name + ".body")
    )


@pytest.fixture
def manager() -> Iterator[UpdateManager]:
    """The process's manager (a patch file's `UpdateManager` is that one), clean before and after."""
    default = UpdateManager.default()
    default.revert_all()
    yield default
    default.revert_all()


def test_a_prepared_patch_changes_nothing_until_committed(manager, module):
    mod = importlib.import_module(module)
    first = manager.next_id + 5
    prepared = prepare_patch(manager, patch_for(module), "fix.py", first_id=first)
    assert prepared.ids == [first]
    assert mod.body() == "original" and manager.ls() == []
    assert prepared.commit() == [first]
    assert mod.body() == "patched"
    assert [u["id"] for u in manager.ls()] == [first]
    assert manager.next_id == first + 1


def test_an_aborted_patch_leaves_the_process_and_its_ids_as_they_were(manager, module):
    mod = importlib.import_module(module)
    before = manager.next_id
    prepared = prepare_patch(manager, patch_for(module), "fix.py", first_id=before + 3)
    prepared.abort()
    assert mod.body() == "original" and manager.ls() == []
    assert manager.next_id == before


def test_a_first_id_below_the_next_free_one_is_refused(manager, module):
    importlib.import_module(module)
    (taken,) = manager.apply_patch(patch_for(module), "one.py")
    with pytest.raises(LuError, match="update id %d is taken" % taken):
        prepare_patch(manager, patch_for(module, "again"), "two.py", first_id=taken)


def test_a_commit_after_the_process_changed_meanwhile_applies_nothing(manager, module):
    mod = importlib.import_module(module)
    prepared = prepare_patch(manager, patch_for(module), "fix.py", first_id=manager.next_id)
    (other,) = manager.apply_patch(patch_for(module, "other"), "other.py")  # another update in between
    with pytest.raises(LuError, match="changed between preparing and applying"):
        prepared.commit()
    assert mod.body() == "other"
    assert [u["id"] for u in manager.ls()] == [other]


def test_a_module_that_is_not_loaded_is_its_own_kind_of_refusal(manager, module):
    with pytest.raises(ModuleNotLoaded) as caught:
        manager.apply_patch(patch_for(module), "fix.py")
    assert caught.value.wanted == module
    assert "fix.py:4: " in str(caught.value)  # the line of the apply_update call, as for any refusal


def test_a_waiting_patch_applies_right_after_its_module_is_imported_under_its_ids(manager, module):
    first = manager.next_id + 2
    manager.add_waiting(WaitingPatch([first, first + 1], patch_for(module), "fix.py", module))
    assert manager.next_id == first + 2  # its ids are kept
    assert [(u["id"], u["kind"], u["waiting_for"]) for u in manager.ls()] == [(first, "waiting", module)]
    mod = importlib.import_module(module)
    assert mod.body() == "patched"  # before the importer saw the module
    assert [(u["id"], u["kind"]) for u in manager.ls()] == [(first, "redefine")]
    assert not any(isinstance(f, waiting_module.ImportWatcher) for f in sys.meta_path)  # nothing left waiting
    assert type(mod.__loader__).__name__ == "SourceFileLoader" and "exec_module" not in vars(mod.__loader__)


def test_a_waiting_patch_that_fails_on_import_says_why_and_the_import_succeeds(manager, module):
    broken = patch_for(module).replace("body})", "1})")  # maps the name to a number: refused once it can run
    manager.add_waiting(WaitingPatch([manager.next_id], broken, "f.py", module))
    mod = importlib.import_module(module)
    assert mod.body() == "original"
    (entry,) = manager.ls()
    assert entry["kind"] == "waiting" and entry["waiting_for"] is None and entry["last_hook_error"]


def test_reverting_a_waiting_patch_drops_it_and_its_finder(manager, module):
    uid = manager.next_id
    manager.add_waiting(WaitingPatch([uid], patch_for(module), "fix.py", module))
    manager.revert(uid)
    assert manager.ls() == []
    assert not any(isinstance(f, waiting_module.ImportWatcher) and f.manager is manager for f in sys.meta_path)
    assert importlib.import_module(module).body() == "original"
