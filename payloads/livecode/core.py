"""Match a new version of a module's source against what the process runs, and apply it.

`plan_and_apply(path, source)` is what `lu watch`, `lu_payloads.watch()` and
`@realtime` all end in:

1. the file's modules are found through `sys.modules[*].__file__` (realpaths);
2. the new source is parsed and compiled once, as an import would compile it
   (`model.FileModel`; a SyntaxError applies nothing), usually while the
   host still debounces the save (`prepare`);
3. its defs are paired with the base's, the text the process was last given
   (`pairing`): same qualified name, same text first, then file order;
4. the functions the process runs for each base def are found by the code
   they run, through every wrapper and closure (`inventory`);
5. `plan` turns it into one engine update: new bodies in place, new and
   changed statements run in file order, decorators applied again, classes
   rebuilt and merged, removals; what cannot be done is refused or reported
   by name.  The engine applies it all or nothing, and the new text becomes
   the base.
"""

from __future__ import annotations

import collections
import importlib
import importlib.util
import io
import os
import sys
import types
from typing import Callable, Dict, List, Optional, Sequence, Tuple, TypeVar, Union

from .. import osthreads
from ..engine import Recode, UpdateManager
from ..engine.resolve import module_file
from ..errors import LuError
from . import inventory, pairing, plan
from .digest import text_digest
from .logs import WATCH, logger
from .model import FileModel, Shape
from .outcome import OUTCOME_KINDS, CheckReport, CheckResult, Outcome, OutcomeDict
from .plan import LoadedModule

__all__ = ["OUTCOME_KINDS", "CheckReport", "CheckResult", "LoadedModule", "Outcome", "OutcomeDict"]

ClassCallback = Callable[[type, List[str]], object]  # callback(cls, names of the attributes a save changed)
_CallbackT = TypeVar("_CallbackT", bound=ClassCallback)

_real_cache: Dict[str, str] = {}
_bases: Dict[str, Shape] = {}  # module file -> the shape of the source the process was last given
_class_callbacks: List[ClassCallback] = []
_lock = osthreads.RLock()


# --------------------------------------------------------------------------- files -> modules
def _realpath(path: str) -> str:
    hit = _real_cache.get(path)
    if hit is None:
        try:
            hit = os.path.realpath(path)
        except Exception:
            hit = path
        if len(_real_cache) > 10000:
            _real_cache.clear()
        _real_cache[path] = hit
    return hit


def target_path(path: str) -> str:
    """A host path as this process sees it (strip /proc/<our pid>/root)."""
    prefix = "/proc/%d/root" % os.getpid()
    if path.startswith(prefix + "/"):
        path = path[len(prefix) :]
    return path


def modules_for(path: str) -> List[LoadedModule]:
    """The loaded modules whose source is `path` (__main__ last)."""
    real = _realpath(target_path(path))
    out: List[LoadedModule] = []
    for name, mod in list(sys.modules.items()):
        if not isinstance(mod, types.ModuleType):
            continue
        f = module_file(mod)
        if f and f.endswith(".py") and _realpath(f) == real:
            out.append(LoadedModule(name, mod, f))
    out.sort(key=lambda item: (item.name == "__main__", item.name))
    return out


def module_files_under(directory: str) -> Dict[str, List[str]]:
    """{filename: [module names]} of loaded modules whose source is inside directory."""
    real = _realpath(target_path(directory)).rstrip("/") + "/"
    out: Dict[str, List[str]] = {}
    for name, mod in list(sys.modules.items()):
        if not isinstance(mod, types.ModuleType):
            continue
        f = module_file(mod)
        if f and f.endswith(".py") and _realpath(f).startswith(real):
            out.setdefault(_realpath(f), []).append(name)
    return out


# --------------------------------------------------------------------------- the base
def remember_file(filename: str, source: Union[str, bytes, None] = None) -> bool:
    """Record the file as it is now as what the process runs (the base)."""
    if source is None:
        try:
            with open(filename, "rb") as fh:
                source = fh.read()
        except OSError:
            return False
    try:
        if isinstance(source, bytes):
            source = decoded(source, filename)
        shape = FileModel(filename, source).shape()
    except LuError:
        return False
    with _lock:
        _bases[filename] = shape
    return True


def decoded(data: bytes, path: str) -> str:
    """A source file's bytes as an import reads them: the encoding of its coding line (PEP 263), else
    UTF-8, newlines made universal."""
    try:
        return importlib.util.decode_source(data)
    except (SyntaxError, LookupError, UnicodeDecodeError) as e:
        raise LuError("%s cannot be read as Python source (%s); nothing applied" % (os.path.basename(path), e))


_prepared: collections.OrderedDict[Tuple[str, str], FileModel] = collections.OrderedDict()  # (filename, sha1)


def _compiled(filename: str, source: str) -> FileModel:
    """A source text parsed and compiled; cached by content."""
    key = (filename, text_digest(source))
    hit = _prepared.get(key)
    if hit is not None:
        return hit
    model = FileModel(filename, source)
    with _lock:
        _prepared[key] = model
        while len(_prepared) > 2:
            _prepared.popitem(last=False)
    return model


def prepare(path: str, source: str) -> bool:
    """Parse and compile a source text ahead of its apply (while the host debounces a save).

    Pure: nothing in the process changes; plan_and_apply then finds the work done.
    """
    modules = modules_for(path)
    if not modules:
        raise LuError("no module of this process was loaded from %s" % path)
    try:
        _compiled(modules[0].filename, source)
    except LuError:
        return False
    return True


# --------------------------------------------------------------------------- applying
def plan_and_apply(
    path: str,
    source: Union[str, bytes],
    prune: bool = False,
    check: Optional[str] = None,
    only: Optional[Sequence[Tuple[str, types.FunctionType]]] = None,
    label: str = "watch",
) -> Outcome:
    """Apply a new version of `path`'s source (see the module docstring). Returns Outcome.

    `only`: [(name, function)]: consider just these functions, and run, add
    or remove nothing else (@realtime).
    """
    if isinstance(source, bytes):
        source = decoded(source, path)
    modules = modules_for(path)
    if not modules:
        raise LuError("no module of this process was loaded from %s" % path)
    filename = modules[0].filename
    new = _compiled(filename, source)
    manager = UpdateManager.default()
    touched: Dict[type, List[str]] = {}
    with _lock, manager.lock:
        out = Outcome(filename)
        base = _bases.get(filename) if only is None else None
        shape = base if base is not None else new.shape()  # no base: nothing but bodies can be told apart
        paired = pairing.pair(shape, new)
        if base is None:
            paired.new_statements = []
        changes: List[plan.Change] = []
        early: List[plan.Step] = []
        late: List[plan.Step] = []
        targets: List[str] = []
        for loaded in modules:
            inv = _inventory(loaded, shape, filename, manager, only)
            p = plan.Plan(new, shape, loaded, inv, paired, prune, out)
            if only is None and plan.needs_sweep(p):
                inventory.sweep(inv, [loaded.module], shape, filename, manager)
            plan.bodies(p)
            if only is None:
                plan.decorators(p)
                plan.removed(p)
                plan.added(p)
                plan.run_statements(p)
                plan.gone_statements(p)
                plan.stale_defaults(p)
                plan.classes(p)
            changes += p.changes
            early += p.early
            late += p.late
            targets += p.targets
            for cls, names in p.touched.items():
                touched.setdefault(cls, []).extend(names)
        if out.moved and not out.lines:
            out.lines.append("moved %d function%s (line numbers updated)" % (out.moved, "" if out.moved == 1 else "s"))
        if changes or early or late:
            description = "%s %s: %s" % (label, os.path.basename(filename), "; ".join(out.lines))
            if len(description) > 300:
                description = description[:297] + "..."
            out.id = manager.apply_update(
                Recode(
                    filename,
                    changes,
                    actions=[step.action for step in sorted(early, key=lambda step: step.line)],
                    late_actions=[step.action for step in sorted(late, key=lambda step: step.line)],
                    targets=targets,
                    description=description,
                    kind=label,
                )
            )
        if check and out.id is not None:
            result = run_check(check)
            out.check = result.report
            if not result.ok:
                manager.revert(out.id)
                out.reverted = True
                return out
        if only is None:
            _bases[filename] = new.shape()
    _notify(touched)
    return out


def _inventory(
    loaded: LoadedModule,
    shape: Shape,
    filename: str,
    manager: UpdateManager,
    only: Optional[Sequence[Tuple[str, types.FunctionType]]],
) -> inventory.Inventory:
    if only is None:
        return inventory.walk([loaded.module], shape, filename, manager)
    mine = [f for _, f in only if getattr(f, "__module__", None) == loaded.name]
    return inventory.given(mine or [f for _, f in only], shape, filename, manager)


# --------------------------------------------------------------------------- gatekeeping
def run_check(name: str) -> CheckResult:
    """Run a unittest module inside the process: whether it passed, and its report."""
    import unittest  # lazy: only --check runs tests, and unittest is large

    try:
        module: types.ModuleType
        if name.endswith(".py") or os.sep in name:
            path = target_path(name)
            modname = "lu_check_" + os.path.splitext(os.path.basename(path))[0]
            spec = importlib.util.spec_from_file_location(modname, path)
            if spec is None or spec.loader is None:
                raise ImportError("no test module at %s" % path)
            module = importlib.util.module_from_spec(spec)
            spec.loader.exec_module(module)
        elif name in sys.modules:
            module = importlib.reload(sys.modules[name])
        else:
            module = importlib.import_module(name)
        suite = unittest.defaultTestLoader.loadTestsFromModule(module)
    except Exception as e:
        return CheckResult(
            ok=False, report={"ran": 0, "failures": ["cannot load the check %s: %s: %s" % (name, type(e).__name__, e)]}
        )
    stream = io.StringIO()
    result = unittest.TextTestRunner(stream=stream, verbosity=0).run(suite)
    failures = []
    for test, text in list(result.failures) + list(result.errors):
        last = [entry for entry in text.strip().splitlines() if entry.strip()]
        failures.append("%s: %s" % (test.id(), last[-1].strip() if last else "failed"))
    return CheckResult(ok=result.wasSuccessful(), report={"ran": result.testsRun, "failures": failures})


def check_loadable(name: str) -> None:
    if name.endswith(".py") or os.sep in name:
        if not os.path.exists(target_path(name)):
            raise LuError("the check module %s does not exist in the target" % name)
        return
    try:
        found = name in sys.modules or importlib.util.find_spec(name) is not None
    except (ImportError, ValueError):
        found = False
    if not found:
        raise LuError("the target cannot import the check module %s" % name)


# --------------------------------------------------------------------------- class callbacks
def on_class_update(callback: _CallbackT) -> _CallbackT:
    """Call callback(cls, names) after a save changed, added or removed methods of cls.

    Returns the callback (so it can be used as a decorator).  Exceptions it
    raises are logged and ignored.
    """
    if not callable(callback):
        raise TypeError("on_class_update needs a callable")
    with _lock:
        if callback not in _class_callbacks:
            _class_callbacks.append(callback)
    return callback


def remove_class_update(callback: ClassCallback) -> None:
    with _lock:
        if callback in _class_callbacks:
            _class_callbacks.remove(callback)


def _notify(touched: Dict[type, List[str]]) -> None:
    if not touched:
        return
    callbacks = list(_class_callbacks)
    for cls, names in touched.items():
        for cb in callbacks:
            try:
                cb(cls, list(names))
            except Exception:
                logger(WATCH).exception("class update callback %r failed", cb)
