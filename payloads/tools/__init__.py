"""The ready-made tools, on lu's engine: PyLiveUpdate's five, and lu's own.

    FuncProfiler.profile(['__main__.**', 'module1.**'])   -> update id
    LineProfiler.profile('mod.func', [11, 12])
    FuncDebugger.debug('mod.func')
    LineDebugger.debug('mod.func', [11, 12])
    VarDebugger.debug('mod.func', 'b')
    ExceptionCounter.count(['mod.**'])

Each call applies one ordinary update (listed by `LU.ls()`, undone by
`LU.revert(id)`). Profiles aggregate inside the target and are written to the
process's log by the recorder; debug events are logged and streamed live to
every connected client. `lu report` renders the log.

Adding a tool: write one module that builds a `registry.Tool` (its name,
controller object, help line, requests, how its events print, optionally a
CLI command) and add it to TOOLS below. Nothing else needs to change.
"""

from . import debuggers, exceptions, funcprofiler, lineprofiler
from .debuggers import FuncDebugger, LineDebugger, VarDebugger
from .exceptions import ExceptionCounter
from .funcprofiler import FuncProfiler
from .lineprofiler import LineProfiler
from .registry import Registry

TOOLS = Registry(
    [
        funcprofiler.TOOL,
        lineprofiler.TOOL,
        debuggers.FUNC,
        debuggers.LINE,
        debuggers.VAR,
        exceptions.TOOL,
    ]
)

# PyLiveUpdate's short names
FP, LP, FD, LD, VD = FuncProfiler, LineProfiler, FuncDebugger, LineDebugger, VarDebugger

__all__ = [
    "FD",
    "FP",
    "LD",
    "LP",
    "TOOLS",
    "VD",
    "ExceptionCounter",
    "FuncDebugger",
    "FuncProfiler",
    "LineDebugger",
    "LineProfiler",
    "VarDebugger",
]
