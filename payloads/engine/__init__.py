"""lu's live update engine: change functions of the running process in place.

    from lu_payloads.engine import Instrument, Redefine, UpdateManager, resolve_pattern

Targets and patterns
--------------------
`pkg.mod.func`, `pkg.mod.Class.meth` (plain, classmethod, staticmethod; a
property names all its accessors, `pkg.mod.Class.prop.fget`/`.fset`/`.fdel`
one of them), `pkg.mod.*` (functions and methods defined in that module's
file, including module attributes that are functions defined there such as
kept closures; lambdas are skipped), `pkg.mod.Class.*`, `pkg.mod.**` (also
every *loaded* submodule), `__main__.**`.  Nothing is imported.  A decorated
function is changed at the function the user wrote (`__wrapped__` is
followed), so wrappers keep working.  `resolve_pattern(p)` returns
`[(qualified_name, function)]` or raises LuError naming what was looked for.

Instrument(targets, points, description=None)
---------------------------------------------
`targets`: a name/pattern, a function object, or a list of them: ONE update
instruments every function they match (tools should pass their whole list).
`points` says what runs where: a `Points` (points.py), the one contract
between the engine and the tools, built with

    Points().before(hook, want="all")        hook(info, {param: value} of every parameter)
            .before(hook, want=["a", "self.x"])  -> hook(info, {those names})
            .before(hook, want=None)         -> hook(info)            (cheapest)
            .after(hook)                     hook(info, result, exc) on return (exc None) and on
                                             raise (result None, exc the exception)
            .lines("line_before", [12, 14], hook, want)   hook(info, lineno, locals) before the
                                             statement starting on that line
            .lines("line_after", [12], hook, want)        after it completes normally; for `return`
                                             after the value is computed; never after
                                             raise/break/continue; want=None -> hook(info, lineno)
            .suspend(hook) / .resume(hook)   hook(info) around every explicit yield, yield from
                                             and await (generators / coroutines)
            .timer(call_timer)               a CallTimer (timer.py) woven into the function itself

or the dict PyLiveUpdate used, converted by `Points.coerce` and nowhere else:
{'func_before': hook | (hook, want), 'func_after': hook, ('line_before', (12, 14)):
hook | (hook, want), ('line_after', (12,)): ..., 'suspend': hook, 'resume': hook,
'func_timer': call_timer} (a list of (point, hook) pairs works too, for keys
that cannot be hashed).

`func_timer` / `Points.timer`: the engine writes the timing into a plain
function's code (a thread-local lookup, two clock reads and a few list
updates per call, no Python hook call); generators and coroutines are timed
per resumption through the timer's before/after/suspend/resume hooks. The
engine owns the call-tree layout the woven code writes (timer.py: node =
[hits, total_s, children, info, parent, started_s], one CallTree per thread
in `timer.local.tree`); a tool subclasses CallTimer and reads the trees.

`info` is a FuncInfo (one per function, hashable): .name (dotted name used),
.qualname, .module, .filename, .firstlineno (of the original), .func, .code
(the original code object).  `locals` is a fresh dict (lu's own variables
removed).  Line numbers are lines of the file the running body comes from (the
module's source file, or the patch file for a redefined body); a line outside
the function or starting no statement is a LuError.  Several layers on one
point run in the order applied (func_after in reverse, like nested wrappers).

Generators and coroutines: func_before runs at the first start (first
next()/send()/await), func_after when it finishes (return, raise, or close():
exc is GeneratorExit).  Per-resumption timing: func_before, then
[suspend, resume]*, then func_after; a resumption by throw() reports no
resume; the implicit awaits of `async for`/`async with` are not reported.

Hooks never hurt the application: each hook call is wrapped in
`try/except Exception`; failures are counted per update (`hook_errors`,
`last_hook_error` in ls) and reported to listeners (`add_listener(cb)`,
cb({'event': 'hook_error', 'id', 'hook_errors', 'error'}), on the first error
and then at most once a second per update; listeners also hear
{'event': 'reverted', 'id'} after each revert, which is how the tools release
their sessions).  BaseExceptions such as
KeyboardInterrupt are not swallowed.  The function's own exceptions propagate
unchanged (no extra frames; original raise line).

How it is built: the function's source is parsed (ast), hooks are woven in and
the result is compiled inside synthetic scopes rebuilt from its qualified name
(same free variables in the same order, `__class__` for zero-argument super(),
same name mangling, same file, line numbers and co_qualname), then swapped into
`func.__code__`: identity, defaults, __dict__ and every reference are kept;
running frames finish on their old code.  Hooks are constants of the new code
object, never names in the module.  Before anything is built the source on
disk is compiled the same way and compared with the running code (bytecode,
constants, names, line table); if the file was edited since it was loaded, or
the function has no source (exec, REPL, lambda), it is a LuError.

Redefine(module, predefine, {'mod.func': new_func, ...})
--------------------------------------------------------
Replaces bodies in place (identity kept).  Keys are dotted names (absolute, or
relative to `module`); values are functions (a property maps accessor to
accessor; a function given for a property replaces its getter).  The new
body is recompiled from its source (the patch file) in the target's scopes, so
super(), mangling and the target's free variables work; a body needing other
free variables is a LuError (unused ones are kept).  It runs with the TARGET
function's globals (the function object keeps its `__globals__`; only code is
swapped).  Names the new body uses that the target module lacks but the patch
namespace defines (helpers, imports at the patch's top level) are copied into
the module; names the module already has are NOT overwritten (use predefine to
change them).  `predefine` (a function or None): its body runs in the
module's namespace before the swap (imports/helpers); names it adds or
changes are restored on revert.  The function takes the new function's
defaults, kwdefaults, annotations and docstring.  A key naming something that
does not exist is refused (a typo must not pass for a fix), naming the close
match if there is one; to add a new name to an existing module or class, put a
'+' before its key: {'+Cart.extra': extra} (removed on revert; a '+' on a
name that exists is refused too).  The kind (plain/generator/coroutine) must
not change.

UpdateManager
-------------
apply_update(u) -> id; ls() -> [{id, kind, targets, description, applied_at,
hook_errors, last_hook_error, inherited_from}] (and a patch waiting for its
module: kind "waiting", ids, waiting_for); revert(id); revert_all() -> [ids];
apply_patch(source, filename) -> [ids]; add_listener(cb)/remove_listener(cb).
Called on the class (PyLiveUpdate's way) they act on the process's default
manager; `UpdateManager()` is a manager of its own (tests). `manager.lock`
serialises every change (lu watch holds it while it matches a save).

Composition: per function lu keeps the pristine original (code, defaults,
kwdefaults, annotations, doc) and the ordered list of applied layers, and
regenerates the running code from scratch on every change: the body is the
last Redefine's (or the original), instrumented by every Instrument layer;
function-level points of every layer apply to whatever body runs, line points
only to the body their lines were given for (dormant otherwise).  Reverting
any update in any order leaves the others in force; when none is left the
function runs its original code object again (`is`).

Recode(filename, changes, actions) (lu watch; built by lu_payloads.livecode;
changes are NewBody and Moved records, updates.py):
bodies compiled from a new version of the module's own file, as one update.
A changed function gets the file's body (its def node is kept, so a later
Instrument uses the file's new lines: the source check is not needed for a
body that came from the file lu compiled).  A function that only moved gets
its running body shifted (`code.replace(co_firstlineno=...)`, recursively);
line points of earlier Instrument layers follow the move.  `actions` add,
rebind or prune attributes inside the same transaction.
`UpdateManager.file_body(func, filename)` tells which code of a function came
from its file last (what a new save is compared with).

Transactions: apply_update and apply_patch are all-or-nothing.  Inside
apply_patch, apply_update calls are collected; after the file ran, every update
is resolved, checked and compiled, then non-code side effects run (predefine,
copied names, new names; undone on failure), then all code objects are
swapped.  Errors are LuError with the patch's `file:line:` prefix; no id is
consumed by a failure.  One re-entrant lock serialises all changes.
"""

from .manager import UpdateManager
from .points import Capture, Points
from .records import FuncInfo
from .resolve import resolve_pattern
from .timer import CallTimer, CallTree
from .updates import Instrument, Moved, NewBody, Recode, Redefine

__all__ = [
    "CallTimer",
    "CallTree",
    "Capture",
    "FuncInfo",
    "Instrument",
    "Moved",
    "NewBody",
    "Points",
    "Recode",
    "Redefine",
    "UpdateManager",
    "resolve_pattern",
]
