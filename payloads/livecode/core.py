"""Match a new version of a module's source against what the process runs, and apply it.

`apply_source(path, source)` is what `lu watch`, `lu_payloads.watch()` and
`@realtime` all end in.  Nothing is matched by line number:

1. the file's modules are found through `sys.modules[*].__file__` (realpaths);
2. the new source is parsed (a SyntaxError applies nothing) and compiled once,
   as a whole module, exactly as an import would compile it; every def in it
   gets its qualified name from where it sits in the tree (`Cart.total`,
   `make.<locals>.inner`), and its code object is taken from the compiled
   module's constants (so scopes, `__class__`, mangling are the compiler's);
3. the running functions are found by walking the module's dict and its
   classes' dicts (no gc scan): `engine.resolve.module_functions`;
4. pairs with the same qualified name are compared with the code that came
   from the file last (`UpdateManager.file_body`): same code -> nothing; same
   code moved by N lines -> the running body is shifted (line numbers only);
   otherwise -> the function gets the new body in place (`__code__`: identity
   kept).  New defs are added (module functions, methods of existing classes,
   new top-level classes); running functions missing from the file are
   reported (deleted with prune);
5. everything goes to the engine as ONE update (engine.Recode): all or nothing.

A function whose free variables changed cannot take the new code in place:
a method that starts (or stops) using zero-argument super() is *rebound*
(a new function object is put in the class: references taken earlier keep
the old body, and the output says so); any other closure is refused.
"""
from __future__ import annotations

import ast
import collections
import copy
import hashlib
import importlib
import importlib.util
import io
import logging
import os
import sys
import types

from .. import osthreads
from ..engine import Moved, NewBody, Recode, UpdateManager
from ..engine.resolve import module_file, module_functions
from ..engine.source import FUNC_NODES, code_qualname, same_code, shift_code, stmt_list_fields
from ..errors import LuError

_real_cache = {}
_bases = {}          # module file -> _Base of the source the process was last given
_class_callbacks = []
_lock = osthreads.RLock()


# --------------------------------------------------------------------------- files -> modules
def _realpath(path):
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


def target_path(path):
    """A host path as this process sees it (strip /proc/<our pid>/root)."""
    prefix = "/proc/%d/root" % os.getpid()
    if path.startswith(prefix + "/"):
        path = path[len(prefix):]
    return path


def modules_for(path):
    """[(module_name, module, filename)] of the loaded modules whose source is `path`."""
    real = _realpath(target_path(path))
    out = []
    for name, mod in list(sys.modules.items()):
        if not isinstance(mod, types.ModuleType):
            continue
        f = module_file(mod)
        if f and f.endswith(".py") and _realpath(f) == real:
            out.append((name, mod, f))
    out.sort(key=lambda item: (item[0] == "__main__", item[0]))
    return out


def module_files_under(directory):
    """{filename: [module names]} of loaded modules whose source is inside directory."""
    real = _realpath(target_path(directory)).rstrip("/") + "/"
    out = {}
    for name, mod in list(sys.modules.items()):
        if not isinstance(mod, types.ModuleType):
            continue
        f = module_file(mod)
        if f and f.endswith(".py") and _realpath(f).startswith(real):
            out.setdefault(_realpath(f), []).append(name)
    return out


# --------------------------------------------------------------------------- the base
class _Base:
    """What lu knows of the source the process was last given for a file:
    its module-level (and class-level) statements and each def's arguments."""

    def __init__(self, tree, defs=None, statements=None, classes=None):
        if statements is None:
            statements = _statements(tree)
        if defs is None:
            defs = _defs(tree)
        self.statements = collections.Counter(d for d, _ in statements)
        self.args = {}
        self.heads = {}
        for entry in defs:
            self.args[entry.qualname] = _args_dump(entry.node)
            self.heads[entry.qualname] = _head(entry.node)
        for entry in (classes if classes is not None else _class_defs(tree)):
            self.heads[entry.qualname] = _head(entry.node)


def remember_file(filename, source=None):
    """Record the file as it is now as what the process runs (the base)."""
    if source is None:
        try:
            with open(filename, "rb") as fh:
                source = fh.read()
        except OSError:
            return False
    try:
        tree = ast.parse(source, filename)
    except (SyntaxError, ValueError):
        return False
    with _lock:
        _bases[filename] = _Base(tree)
    return True


def _statements(tree):
    """(dump, node) of module-level and class-level statements other than defs."""
    out = []

    def walk(stmts, in_class):
        for node in stmts:
            if isinstance(node, FUNC_NODES):
                continue
            if isinstance(node, ast.ClassDef):
                walk(node.body, True)
                continue
            if isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant) \
                    and isinstance(node.value.value, str):
                continue   # docstrings
            if any(isinstance(n, FUNC_NODES + (ast.ClassDef,)) for n in ast.walk(node)):
                # a compound statement holding defs: its defs are matched; the rest is
                # compared without them
                for field in stmt_list_fields(node):
                    walk(field, in_class)
                continue
            out.append((ast.dump(node), node))

    walk(tree.body, False)
    return out


def _head(node):
    """A key for what a def or class statement applies around its body: decorators,
    bases, keywords (changes there are reported, not re-applied)."""
    if not node.decorator_list and not isinstance(node, ast.ClassDef):
        return ()
    parts = [ast.dump(d) for d in node.decorator_list]
    if isinstance(node, ast.ClassDef):
        parts += [ast.dump(b) for b in node.bases] + [ast.dump(k) for k in node.keywords]
    return tuple(parts)


def _class_defs(tree):
    classes = []
    _defs(tree, classes)
    return classes


def _args_dump(node):
    """A key for a def's default values (constants are cheap, other expressions dumped)."""
    a = node.args
    key = []
    for d in list(a.defaults) + list(a.kw_defaults):
        if d is None:
            key.append(None)
        elif type(d) is ast.Constant:
            key.append((type(d.value), d.value))
        else:
            key.append(ast.dump(d))
    return tuple(key)


# --------------------------------------------------------------------------- defs in the new source
class _Def:
    __slots__ = ("first", "kind", "node", "parent", "qualname")

    def __init__(self, qualname, node, first, parent, kind):
        self.qualname = qualname
        self.node = node
        self.first = first
        self.parent = parent     # qualname of the enclosing class, "" for the module, None in a function
        self.kind = kind         # "def" or "class"


def _first_line(node):
    return node.decorator_list[0].lineno if node.decorator_list else node.lineno


def _defs(tree, classes=None):
    out = []

    def walk(stmts, prefix, parent):
        for node in stmts:
            if isinstance(node, FUNC_NODES):
                qual = prefix + node.name
                out.append(_Def(qual, node, _first_line(node), parent, "def"))
                walk(node.body, qual + ".<locals>.", None)
            elif isinstance(node, ast.ClassDef):
                qual = prefix + node.name
                if classes is not None:
                    classes.append(_Def(qual, node, _first_line(node), parent, "class"))
                walk(node.body, qual + ".", qual if parent is not None else None)
            else:
                for field in stmt_list_fields(node):
                    walk(field, prefix, parent)

    walk(tree.body, "", "")
    return out


def _code_map(code, out=None):
    """(co_name, co_firstlineno) -> [code] for every code object inside `code`."""
    if out is None:
        out = {}
    code_type = type(code)
    for const in code.co_consts:
        if isinstance(const, code_type):
            out.setdefault((const.co_name, const.co_firstlineno), []).append(const)
            _code_map(const, out)
    return out


def _names_used(code, qualname, out):
    """name -> qualname of the first code object naming it (globals and attributes)."""
    code_type = type(code)
    for n in code.co_names:
        out.setdefault(n, qualname)
    for const in code.co_consts:
        if isinstance(const, code_type) and not const.co_name.startswith("<"):
            _names_used(const, (qualname + "." if qualname else "") + const.co_name, out)
        elif isinstance(const, code_type):
            _names_used(const, qualname, out)


# --------------------------------------------------------------------------- the plan
class Outcome:
    def __init__(self, filename):
        self.filename = filename
        self.lines = []      # one per change applied
        self.notes = []      # reported, not applied
        self.moved = 0
        self.id = None
        self.check = None
        self.reverted = False

    def as_dict(self):
        return {"file": self.filename, "lines": self.lines, "notes": self.notes, "moved": self.moved,
                "id": self.id, "check": self.check, "reverted": self.reverted}


def _lookup_class(mod, qualname):
    obj = mod
    for part in qualname.split("."):
        obj = getattr(obj, "__dict__", {}).get(part)
        if not isinstance(obj, type):
            return None
    return obj


def _eval_defaults(node, mod, cls, name):
    """(defaults, kwdefaults) of `node` evaluated as the def statement would."""
    args = _strip_annotations(node.args)
    stub = ast.FunctionDef(name="__lu_defaults__", args=args, body=[ast.Pass()], decorator_list=[],
                           returns=None, type_comment=None)
    if "type_params" in ast.FunctionDef._fields:
        stub.type_params = []
    module = ast.Module(body=[stub], type_ignores=[])
    ast.fix_missing_locations(ast.increment_lineno(module, 0))
    ns = dict(cls.__dict__) if cls is not None else {}
    try:
        exec(compile(module, "<lu defaults of %s>" % name, "exec", dont_inherit=True), mod.__dict__, ns)
    except Exception as e:
        raise LuError("cannot evaluate the default arguments of %s: %s: %s; nothing applied"
                      % (name, type(e).__name__, e))
    fn = ns["__lu_defaults__"]
    return fn.__defaults__, fn.__kwdefaults__


def _strip_annotations(args):
    args = copy.deepcopy(args)
    for a in list(args.posonlyargs) + list(args.args) + list(args.kwonlyargs) + [args.vararg, args.kwarg]:
        if a is not None:
            a.annotation = None
    return args


def _docstring(node):
    try:
        return ast.get_docstring(node, clean=False)
    except Exception:
        return None


def _build_function(code, mod, cls, entry, display):
    """A new function object for a def of the new source, decorators applied."""
    node = entry.node
    closure = None
    if code.co_freevars:
        if code.co_freevars == ("__class__",) and cls is not None:
            closure = (types.CellType(cls),)
        else:
            raise LuError("the new function %s uses free variables (%s) lu cannot provide; nothing applied"
                          % (display, ", ".join(code.co_freevars)))
    defaults, kwdefaults = _eval_defaults(node, mod, cls, display)
    fn = types.FunctionType(code, mod.__dict__, node.name, defaults, closure)
    fn.__kwdefaults__ = kwdefaults
    fn.__qualname__ = entry.qualname
    fn.__module__ = mod.__name__
    fn.__doc__ = _docstring(node)
    value = fn
    ns = dict(cls.__dict__) if cls is not None else None
    for dec in reversed(node.decorator_list):
        try:
            expr = ast.Expression(body=dec)
            ast.fix_missing_locations(expr)
            decorator = eval(compile(expr, code.co_filename, "eval", dont_inherit=True), mod.__dict__, ns)
            value = decorator(value)
        except Exception as e:
            raise LuError("%s:%d: the decorator of %s raised %s: %s; nothing applied"
                          % (code.co_filename, dec.lineno, display, type(e).__name__, e))
    return value


def _set_action(parent, attr, value, delete=False):
    """do() -> undo: set (or delete) parent.attr, restoring what was there on undo."""
    missing = object()

    def do():
        old = parent.__dict__.get(attr, missing)
        if delete:
            if old is not missing:
                delattr(parent, attr)
        else:
            setattr(parent, attr, value)

        def undo():
            current = parent.__dict__.get(attr, missing)
            if delete or current is value:
                if old is missing:
                    if current is not missing:
                        delattr(parent, attr)
                else:
                    setattr(parent, attr, old)
        return undo
    return do


def _exec_action(code, namespace, what):
    """do() -> undo: run statement(s) in the module namespace; undo restores changed names."""
    missing = object()

    def do():
        before = dict(namespace)
        try:
            exec(code, namespace)
        except BaseException as e:
            for k in list(namespace):
                if k not in before:
                    del namespace[k]
            namespace.update(before)
            raise LuError("%s raised %s: %s; nothing applied" % (what, type(e).__name__, e))
        changed = {k: before.get(k, missing) for k, v in namespace.items()
                   if before.get(k, missing) is not v}

        def undo():
            for k, old in changed.items():
                if old is missing:
                    namespace.pop(k, None)
                else:
                    namespace[k] = old
        return undo
    return do


def _attr_holder(parent_obj, attr, func):
    """Is func (or a wrapper of exactly it) the value of parent_obj.attr?"""
    value = getattr(parent_obj, "__dict__", {}).get(attr)
    if value is func:
        return True
    return bool(isinstance(value, (staticmethod, classmethod)) and value.__func__ is func)


def _running_frames(codes):
    frames = sys._current_frames()
    for tid, frame in frames.items():
        f = frame
        while f is not None:
            if f.f_code in codes:
                return tid
            f = f.f_back
    return None


_prepared = collections.OrderedDict()   # (filename, sha1) -> parsed and compiled source


def _compiled(filename, source):
    """(tree, module code, defs, classes, code map) of a source text; cached by content."""
    key = (filename, hashlib.sha1(source.encode("utf-8", "surrogatepass")).hexdigest())
    hit = _prepared.get(key)
    if hit is not None:
        return hit
    short = os.path.basename(filename)
    try:
        tree = ast.parse(source, filename)
        module_code = compile(tree, filename, "exec", dont_inherit=True)
    except SyntaxError as e:
        raise LuError("%s:%s: SyntaxError: %s; nothing applied" % (short, e.lineno, e.msg))
    except ValueError as e:
        raise LuError("%s: %s; nothing applied" % (short, e))
    classes = []
    defs = _defs(tree, classes)
    result = (tree, module_code, defs, classes, _code_map(module_code))
    with _lock:
        _prepared[key] = result
        while len(_prepared) > 2:
            _prepared.popitem(last=False)
    return result


def prepare(path, source):
    """Parse and compile a source text ahead of its apply (while the host debounces a save).

    Pure: nothing in the process changes; plan_and_apply then finds the work done.
    """
    modules = modules_for(path)
    if not modules:
        raise LuError("no module of this process was loaded from %s" % path)
    try:
        _compiled(modules[0][2], source)
    except LuError:
        return False
    return True


def plan_and_apply(path, source, prune=False, check=None, only=None, label="watch"):
    """Apply a new version of `path`'s source (see the module docstring). Returns Outcome.

    `only`: [(name, function)]: consider just these functions, not the module's
    whole dict, and add or remove nothing (@realtime).
    """
    if isinstance(source, bytes):
        try:
            source = source.decode("utf-8")
        except UnicodeDecodeError as e:
            raise LuError("%s is not UTF-8 (%s); nothing applied" % (path, e))
    modules = modules_for(path)
    if not modules:
        raise LuError("no module of this process was loaded from %s" % path)
    filename = modules[0][2]
    short = os.path.basename(filename)
    tree, module_code, defs, classes, codes = _compiled(filename, source)

    def code_of(entry):
        found = codes.get((entry.node.name, entry.first))
        return found[-1] if found else None

    with _lock, UpdateManager.lock:
        base = _bases.get(filename)
        out = Outcome(filename)
        changes, actions, targets, touched = [], [], [], collections.OrderedDict()
        used = None
        new_by_qual = collections.OrderedDict()
        for entry in defs:
            new_by_qual.setdefault(entry.qualname, []).append(entry)
        class_quals = {c.qualname for c in classes}
        for modname, mod, modfile in modules:
            if only is not None:
                running = [(n, f) for n, f in only if f.__module__ == modname or len(modules) == 1]
            else:
                running = []
                module_functions(mod, modname, running, set(), {})
            run_by_qual = collections.OrderedDict()
            for name, func in running:
                run_by_qual.setdefault(code_qualname(func), []).append((name, func))
            for qual, items in run_by_qual.items():
                news = new_by_qual.get(qual, [])
                refs = []
                for name, func in items:
                    ref, runs_it = UpdateManager.file_body(func, modfile)
                    refs.append((ref.co_firstlineno if ref is not None else 0, name, func, ref, runs_it))
                refs.sort(key=lambda r: r[0])
                for i, (_, name, func, ref, runs_it) in enumerate(refs):
                    if i >= len(news):
                        if "<locals>" not in qual and only is None:
                            if used is None:
                                used = {}
                                _names_used(module_code, "", used)
                            _removed(out, mod, modname, qual, name, func, class_quals, used, prune, actions,
                                     targets, touched)
                        continue
                    entry = news[i]
                    new = code_of(entry)
                    if new is None:
                        continue
                    _match(out, mod, modname, modfile, entry, name, func, ref, runs_it, new, base, changes,
                           actions, targets, touched)
            if only is not None:
                continue
            # added defs and classes
            for qual, entries in new_by_qual.items():
                have = len(run_by_qual.get(qual, ()))
                for entry in entries[have:]:
                    if entry.parent is None:
                        continue      # nested in a function: comes with its function
                    if entry.parent == "":
                        parent_obj = mod
                    else:
                        parent_obj = _lookup_class(mod, entry.parent)
                        if parent_obj is None:
                            continue  # part of a new class
                    attr = entry.node.name
                    existing = parent_obj.__dict__.get(attr)
                    if existing is not None and any(existing is f or _attr_holder(parent_obj, attr, f)
                                                    for _, f in running):
                        continue      # e.g. a second def of the same name; the first is matched
                    code = code_of(entry)
                    if code is None:
                        continue
                    display = "%s.%s" % (modname, qual)
                    value = _build_function(code, mod, parent_obj if parent_obj is not mod else None, entry,
                                            display)
                    actions.append(_set_action(parent_obj, attr, value))
                    out.lines.append("added %s" % display)
                    targets.append(display)
                    if isinstance(parent_obj, type):
                        touched.setdefault(parent_obj, []).append(attr)
            for entry in classes:
                if entry.parent != "" or entry.node.name in mod.__dict__:
                    continue
                stmt = ast.Module(body=[entry.node], type_ignores=[])
                code = compile(stmt, modfile, "exec", dont_inherit=True)
                display = "%s.%s" % (modname, entry.qualname)
                actions.append(_exec_action(code, mod.__dict__, "the new class %s" % display))
                out.lines.append("added %s" % display)
                targets.append(display)
            for entry in classes:
                if entry.parent not in ("", None) and _lookup_class(mod, entry.parent) is not None \
                        and _lookup_class(mod, entry.qualname) is None:
                    out.notes.append("not run: %s:%d: the new nested class %s.%s" % (
                        short, entry.node.lineno, modname, entry.qualname))
        # module-level statements
        statements = _statements(tree) if only is None else None
        if only is None and base is not None:
            seen = collections.Counter()
            for dump, node in statements:
                seen[dump] += 1
                if seen[dump] <= base.statements.get(dump, 0):
                    continue
                text = (ast.get_source_segment(source, node) or "").splitlines()
                first = text[0].strip() if text else type(node).__name__
                if len(first) > 60:
                    first = first[:57] + "..."
                if isinstance(node, (ast.Import, ast.ImportFrom)) and node.col_offset == 0 \
                        and node in tree.body:
                    code = compile(ast.Module(body=[node], type_ignores=[]), filename, "exec",
                                   dont_inherit=True)
                    for _, mod, _ in modules:
                        actions.append(_exec_action(code, mod.__dict__, "%s:%d: %s" % (short, node.lineno, first)))
                    out.lines.append("ran %s:%d: %s" % (short, node.lineno, first))
                else:
                    out.notes.append("not run: %s:%d: %s (module-level statements are not re-run)"
                                     % (short, node.lineno, first))
        if only is None and base is not None:
            for entry in list(defs) + list(classes):
                if entry.parent is None:
                    continue
                old = base.heads.get(entry.qualname)
                if old is not None and old != _head(entry.node):
                    what = "decorators" if entry.kind == "def" else "bases, keywords or decorators"
                    out.notes.append("not run: %s:%d: the %s of %s.%s changed (they are not re-applied)"
                                     % (short, entry.first, what, modules[0][0], entry.qualname))
        if changes or actions:
            description = "%s %s: %s" % (label, short, "; ".join(out.lines) if out.lines
                                         else "moved %d function%s" % (out.moved, "" if out.moved == 1 else "s"))
            if len(description) > 300:
                description = description[:297] + "..."
            out.id = UpdateManager.apply_update(Recode(filename, changes, actions, targets, description,
                                                     kind=label))
        if check and out.id is not None:
            ok, report = run_check(check)
            out.check = report
            if not ok:
                UpdateManager.revert(out.id)
                out.reverted = True
                return out
        if only is None:
            _bases[filename] = _Base(tree, defs, statements, classes)
    _notify(touched)
    return out


def _match(out, mod, modname, modfile, entry, name, func, ref, runs_it, new, base, changes, actions, targets,
           touched):
    node = entry.node
    defaults_changed = base is not None and base.args.get(entry.qualname) not in (None, _args_dump(node))
    cls = _lookup_class(mod, entry.parent) if entry.parent else None
    if ref is not None and not defaults_changed:
        if same_code(ref, new):
            return
        delta = new.co_firstlineno - ref.co_firstlineno
        if delta and same_code(shift_code(ref, delta), new):
            if runs_it:
                changes.append(Moved(name, func, node, new.co_firstlineno))
                out.moved += 1
            return
    if defaults_changed:
        defaults, kwdefaults = _eval_defaults(node, mod, cls, name)
    else:
        defaults, kwdefaults = func.__defaults__, func.__kwdefaults__
    freevars = func.__code__.co_freevars
    same_kind = (new.co_flags & 0x2a0) == (func.__code__.co_flags & 0x2a0)
    if set(new.co_freevars) <= set(freevars) and same_kind:
        changes.append(NewBody(name, func, node, new, defaults, kwdefaults, _docstring(node)))
        out.lines.append("updated %s" % name)
        targets.append(name)
        if cls is not None:
            touched.setdefault(cls, []).append(node.name)
        return
    # cannot take the new code in place: rebind when it is a module or class attribute
    why = ("its free variables changed (%s -> %s)" % (", ".join(freevars) or "none", ", ".join(new.co_freevars))
           if same_kind else "it changed between a plain function, a generator and a coroutine")
    parent_obj = cls if entry.parent else (mod if entry.parent == "" else None)
    extra = set(new.co_freevars) - {"__class__"}
    if parent_obj is None or extra or not _attr_holder(parent_obj, node.name, func):
        raise LuError("cannot apply %s in place: %s, and it is not a plain module or class attribute "
                      "that lu could rebind; nothing applied" % (name, why))
    value = _build_function(new, mod, cls, entry, name)
    actions.append(_set_action(parent_obj, node.name, value))
    out.lines.append("rebound %s (%s: a new function object; references taken earlier keep the old body)"
                     % (name, why))
    targets.append(name)
    if cls is not None:
        touched.setdefault(cls, []).append(node.name)


def _removed(out, mod, modname, qual, name, func, class_quals, used, prune, actions, targets, touched):
    parts = qual.split(".")
    parent_qual = ".".join(parts[:-1])
    if parent_qual and parent_qual not in class_quals:
        # its whole class is gone
        top = parts[0]
        key = "removed %s.%s" % (modname, top)
        if parent_qual.split(".")[0] not in class_quals and not any(key in n for n in out.notes + out.lines):
            cls = mod.__dict__.get(top)
            if prune and isinstance(cls, type) and cls.__module__ == modname:
                user = used.get(top)
                if user is not None:
                    raise LuError("%s.%s was removed from the file but %s still uses it; nothing applied"
                                  % (modname, top, _where_used(modname, user)))
                actions.append(_set_action(mod, top, None, delete=True))
                out.lines.append("pruned %s.%s" % (modname, top))
                targets.append("%s.%s" % (modname, top))
            else:
                out.notes.append("%s (still in the process; --prune deletes it)" % key)
        return
    attr = parts[-1]
    user = used.get(attr)
    if user is not None and user != qual:
        raise LuError("%s was removed from the file but %s still uses it; nothing applied"
                      % (name, _where_used(modname, user)))
    if not prune:
        out.notes.append("removed %s (still in the process; --prune deletes it)" % name)
        return
    parent_obj = mod if not parent_qual else _lookup_class(mod, parent_qual)
    if parent_obj is None or (not _attr_holder(parent_obj, attr, func) and \
            getattr(parent_obj, "__dict__", {}).get(attr) is None):
        out.notes.append("removed %s (lu cannot delete it: not a module or class attribute)" % name)
        return
    tid = _running_frames({func.__code__})
    if tid is not None:
        raise LuError("%s was removed from the file but is running right now (thread %s); nothing applied"
                      % (name, tid))
    actions.append(_set_action(parent_obj, attr, None, delete=True))
    out.lines.append("pruned %s" % name)
    targets.append(name)
    if isinstance(parent_obj, type):
        touched.setdefault(parent_obj, []).append(attr)


def _where_used(modname, user):
    return "%s.%s" % (modname, user) if user else "%s (module level)" % modname


# --------------------------------------------------------------------------- gatekeeping
def run_check(name):
    """Run a unittest module inside the process: (ok, {'ran', 'failures': [lines]})."""
    import unittest  # lazy: only --check runs tests, and unittest is large
    try:
        if name.endswith(".py") or os.sep in name:
            path = target_path(name)
            modname = "lu_check_" + os.path.splitext(os.path.basename(path))[0]
            spec = importlib.util.spec_from_file_location(modname, path)
            if spec is None:
                raise ImportError("no test module at %s" % path)
            module = importlib.util.module_from_spec(spec)
            spec.loader.exec_module(module)
        elif name in sys.modules:
            module = importlib.reload(sys.modules[name])
        else:
            module = importlib.import_module(name)
        suite = unittest.defaultTestLoader.loadTestsFromModule(module)
    except Exception as e:
        return False, {"ran": 0, "failures": ["cannot load the check %s: %s: %s" % (name, type(e).__name__, e)]}
    stream = io.StringIO()
    result = unittest.TextTestRunner(stream=stream, verbosity=0).run(suite)
    failures = []
    for test, text in list(result.failures) + list(result.errors):
        last = [entry for entry in text.strip().splitlines() if entry.strip()]
        failures.append("%s: %s" % (test.id(), last[-1].strip() if last else "failed"))
    return result.wasSuccessful(), {"ran": result.testsRun, "failures": failures}


def check_loadable(name):
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
def on_class_update(callback):
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


def remove_class_update(callback):
    with _lock:
        if callback in _class_callbacks:
            _class_callbacks.remove(callback)


def _notify(touched):
    if not touched:
        return
    callbacks = list(_class_callbacks)
    for cls, names in touched.items():
        for cb in callbacks:
            try:
                cb(cls, list(names))
            except Exception:
                logging.getLogger("lu_payloads.watch").exception("class update callback %r failed", cb)


def apply_file(path, prune=False, check=None):
    """Read `path` now and apply it (the in-process watcher's and tests' entry)."""
    with open(target_path(path), "rb") as fh:
        data = fh.read()
    return plan_and_apply(path, data, prune=prune, check=check)

