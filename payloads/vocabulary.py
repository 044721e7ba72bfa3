"""The names predefined in the interactive controller, as PyLiveUpdate users know them.

`LU.info()`, `LU.ls()`, `LU.revert(n)`, `patch('f.py')`, `help`, and the
update engine's `Instrument`, `Redefine`, `UpdateManager`. The profiling and
debugging tools add themselves through `TOOL_NAMES` when they are available.
"""
import os
import sys
import threading
import time

HELP = """lu controller: statements run inside the target process.

  LU.info()                 the process and the agent
  LU.ls()                   updates in force (id, kind, targets, when)
  LU.revert(1) / LU.revert(1, 2) / LU.revert_all()
  patch('fix.py')           apply a patch file as one transaction
  main                      the program's __main__ module (import its other modules by name)
  Instrument, Redefine, UpdateManager   the update engine (see DESIGN.md)
  FuncProfiler, LineProfiler, FuncDebugger, LineDebugger, VarDebugger   tools, when installed

Ctrl-D leaves the controller; the target keeps running and updates stay in force."""


class _Help(object):
    def __repr__(self):
        return HELP

    def __call__(self, *args):
        if args:
            import pydoc
            return pydoc.help(*args)
        print(HELP)


class _UpdateTable(list):
    """A list of updates that prints as a table at the prompt."""

    def __repr__(self):
        if not self:
            return "no updates applied"
        rows = ["%4s  %-11s %-40s %s" % ("id", "kind", "targets", "applied at")]
        for item in self:
            targets = ", ".join(item.get("targets", []))
            if len(targets) > 40:
                targets = targets[:37] + "..."
            rows.append("%4s  %-11s %-40s %s" % (item.get("id"), item.get("kind"), targets, item.get("applied_at")))
            errors = item.get("hook_errors")
            if errors:
                rows.append("      hook errors: %s (last: %s)" % (errors, item.get("last_hook_error")))
        return "\n".join(rows)


class LU(object):
    """The controller's handle on the agent and the update engine."""

    @staticmethod
    def info():
        from .ops import process_info
        return process_info()

    @staticmethod
    def ls():
        from .ops import list_updates
        return _UpdateTable(list_updates())

    @staticmethod
    def revert(*ids):
        from .ops import revert_updates
        flat = []
        for item in ids:
            flat.extend(item if isinstance(item, (list, tuple)) else [item])
        return revert_updates(flat)

    @staticmethod
    def revert_all():
        from .ops import revert_everything
        return revert_everything()


def patch(path):
    """Apply a patch file (read in the target's file system) as one transaction."""
    from .ops import apply_patch_source
    with open(os.path.expanduser(path)) as handle:
        source = handle.read()
    return apply_patch_source(source, os.path.basename(path))


def make_namespace():
    namespace = {"__name__": "__lu_console__", "__builtins__": __builtins__,
                 "LU": LU, "help": _Help(), "patch": patch, "os": os, "sys": sys,
                 "threading": threading, "time": time, "main": sys.modules.get("__main__")}
    try:
        from . import engine
        for name in ("Instrument", "Redefine", "UpdateManager"):
            namespace[name] = getattr(engine, name)
    except Exception:
        pass
    try:
        from . import tools
        namespace.update(tools.controller_names())
    except ImportError:
        pass
    return namespace
