"""Turn py-spy's raw (folded) output into a :class:`~.model.Report`.

py-spy ``record --format raw`` writes one line per unique stack, root first::

    process 5157:"python app.py";thread (5157): MainThread;<module> (app.py:24);work (app.py:15) 97

The ``process …`` frame is there with ``--subprocesses``, the ``thread (TID): NAME``
frame with ``--threads``; without ``--threads`` all threads are one, called
"all threads".

Frame names: ``Shop.total (shop/cart.py:7)`` becomes ``shop.cart.Shop.total``,
the module-ish dotted form that lu uses for instrumented functions (the
path without ``.py`` and ``/__init__``, with ``/`` as ``.``; an absolute path,
as ``--full-filenames`` writes, keeps only its file name).  Frames that are
not Python files (``<frozen …>``, native) keep py-spy's text.  Line numbers are
dropped from the name, so a function is one frame whatever line it was on
(the file and the first line seen are kept as ``CallNode.file``/``line``).

Figures: ``hits`` is the number of samples in which the frame was on the
stack, and ``total_ns`` the estimate samples / rate.  Say so when showing them.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import tempfile
from typing import Dict, List, Optional, Tuple

import psutil

from .model import SAMPLED, CallNode, Report, ReportError, ThreadProfile

_FRAME = re.compile(r"^(?P<func>.*?) \((?P<file>[^()]*?)(?::(?P<line>\d+))?\)$")
_THREAD = re.compile(r"^thread \((?P<tid>0x[0-9A-Fa-f]+|\d+)\)(?::\s*(?P<name>.*))?$")
_PROCESS = re.compile(r'^process (?P<pid>\d+):(?P<cmd>".*")?$')
_LINE = re.compile(r"^(?P<stack>.*)\s+(?P<count>\d+)$")


def frame_function(frame: str, main_script: Optional[str] = None) -> Tuple[str, Optional[str], Optional[int]]:
    """``"Shop.total (shop/cart.py:7)"`` → ``("shop.cart.Shop.total", "shop/cart.py", 7)``.

    A frame of the program's own script (``main_script``, as py-spy writes
    it) is named ``__main__.…``, as lu's instrumented profiles name it.
    """
    m = _FRAME.match(frame)
    if not m:
        return frame, None, None
    func, path, line = m.group("func"), m.group("file"), m.group("line")
    lineno = int(line) if line else None
    if not path.endswith(".py"):
        return f"{func} ({path})", path, lineno
    if main_script and _same_script(path, main_script):
        return f"__main__.{func}", path, lineno
    mod = path[:-3]
    if os.path.isabs(mod):
        mod = os.path.basename(mod)
    mod = mod.replace("\\", "/").strip("/").replace("/", ".")
    if mod.endswith(".__init__"):
        mod = mod[: -len(".__init__")]
    return (f"{mod}.{func}" if mod else func), path, lineno


def _same_script(path: str, main_script: str) -> bool:
    """Whether py-spy's (possibly shortened, relative) path names the program's script."""
    path = path.replace("\\", "/")
    return main_script == path or main_script.endswith("/" + path.lstrip("./"))


def _lu_thread(stack: List[str]) -> bool:
    """A thread of lu's own (its agent, recorder, event streams): the first frame past threading's is lu's."""
    for frame in stack:
        if "(threading.py:" in frame:
            continue
        return "lu_payloads/" in frame or "lu_payloads\\" in frame
    return False


def main_script_of(pid: int) -> Optional[str]:
    """The absolute path of the script process pid runs as __main__ (`python [opts] script.py`), if any."""
    try:
        proc = psutil.Process(pid)
        argv, cwd = proc.cmdline(), proc.cwd()
    except Exception:
        return None
    for arg in argv[1:]:
        if arg in ("-c", "-m"):
            return None
        if arg.startswith("-"):
            continue
        return os.path.normpath(os.path.join(cwd, arg)) if arg.endswith(".py") else None
    return None


def _split_stack(stack: str) -> List[str]:
    # a process frame may hold ';' inside its quoted command line
    if stack.startswith("process "):
        end = stack.find('";')
        if end > 0:
            return [stack[: end + 1]] + stack[end + 2 :].split(";")
    return stack.split(";")


def from_pyspy_raw(text: str, pid: int, rate_hz: float = 100.0, main_script: Optional[str] = None) -> Report:
    """A sampled :class:`Report` from the text of ``py-spy record --format raw``.

    Named as lu's instrumented reports name things (``__main__`` for the
    program's script), without lu's own threads (sampling an injected
    process must not show lu as its busiest thread).
    """
    if rate_hz <= 0:
        raise ReportError(f"sampling rate must be positive, not {rate_hz}")
    ns_per_sample = 1e9 / rate_hz
    report = Report(source=SAMPLED, rate_hz=float(rate_hz))
    counts: Dict[Tuple[int, object], Dict[Tuple[str, ...], int]] = {}
    info: Dict[Tuple[int, object], Tuple[str, Optional[int]]] = {}
    where: Dict[str, Tuple[Optional[str], Optional[int]]] = {}
    bad = 0
    first_bad = 0
    for lineno, line in enumerate(text.splitlines(), 1):
        line = line.strip()
        if not line:
            continue
        m = _LINE.match(line)
        if not m:
            bad += 1
            first_bad = first_bad or lineno
            continue
        frames = _split_stack(m.group("stack"))
        count = int(m.group("count"))
        p = pid
        if frames and _PROCESS.match(frames[0]):
            p = int(_PROCESS.match(frames[0]).group("pid"))  # type: ignore[union-attr]
            frames = frames[1:]
        key: object = "all"
        name, tid = "all threads", None
        if frames:
            tm = _THREAD.match(frames[0])
            if tm:
                raw_tid = tm.group("tid")
                tid = int(raw_tid, 16) if raw_tid.lower().startswith("0x") else int(raw_tid)
                name = (tm.group("name") or "").strip() or str(tid)
                key = tid
                frames = frames[1:]
        if not frames:
            continue
        if _lu_thread(frames):
            continue
        path: List[str] = []
        for fr in frames:
            func, file, lno = frame_function(fr, main_script)
            path.append(func)
            if func not in where:
                where[func] = (file, lno)
        tkey = (p, key)
        info[tkey] = (name, tid)
        paths = counts.setdefault(tkey, {})
        tp = tuple(path)
        paths[tp] = paths.get(tp, 0) + count
    for (p, key), paths in counts.items():
        name, tid = info[(p, key)]
        t = ThreadProfile(p, name, tid)
        report.process(p).threads[key] = t
        for sampled_stack, count in paths.items():
            # every frame on the stack gets the sample (inclusive), once per
            # node even if recursion repeats the function
            node: Optional[CallNode] = None
            for func in sampled_stack:
                if node is None:
                    node = t.roots.get(func)
                    if node is None:
                        node = t.roots[func] = CallNode(func)
                else:
                    node = node.child(func)
                if node.file is None:
                    node.file, node.line = where.get(func, (None, None))
                node.hits += count
        for r in t.roots.values():
            stack = [r]
            while stack:
                n = stack.pop()
                n.total_ns = round(n.hits * ns_per_sample)
                stack.extend(n.children.values())
    if pid not in report.processes and not report.processes:
        report.process(pid)
    if bad:
        report.warnings.append(f"py-spy output: skipped {bad} unreadable lines (first at line {first_bad})")
    return report.finish()


def find_pyspy() -> Optional[str]:
    """The py-spy executable: $LU_PYSPY if set, else on PATH, or next to this Python's scripts."""
    chosen = os.environ.get("LU_PYSPY")
    if chosen:
        return chosen if os.access(chosen, os.X_OK) else None
    found = shutil.which("py-spy")
    if found:
        return found
    cand = os.path.join(os.path.dirname(sys.executable), "py-spy")
    return cand if os.access(cand, os.X_OK) else None


def pyspy_command(
    pid: int, duration: float, output: str, rate_hz: int = 100, idle: bool = False, py_spy: str = "py-spy"
) -> List[str]:
    """The py-spy command line that :func:`record_pyspy` runs (checked with py-spy 0.4.3)."""
    cmd = [
        py_spy,
        "record",
        "--pid",
        str(pid),
        "--duration",
        str(max(1, round(duration))),
        "--rate",
        str(int(rate_hz)),
        "--format",
        "raw",
        "--output",
        output,
        "--threads",
        "--nonblocking",
    ]
    if idle:
        cmd.append("--idle")
    return cmd


def pyspy_error(output: str) -> str:
    """py-spy's own error line ("Error: ..."), not the last line of the backtrace it prints after it."""
    lines = [line.strip() for line in output.strip().splitlines() if line.strip()]
    for line in lines:
        if line.startswith("Error:"):
            return line[len("Error:") :].strip()
    return lines[-1] if lines else ""


def pyspy_cannot_read(pid: int, py_spy: str) -> Optional[str]:
    """Why py-spy cannot read `pid` (its error line), or None when a quick dump works."""
    try:
        proc = subprocess.run(
            [py_spy, "dump", "--pid", str(pid), "--nonblocking"], capture_output=True, text=True, timeout=30
        )
    except subprocess.TimeoutExpired:
        return "py-spy dump did not finish within 30 s"
    if proc.returncode == 0:
        return None
    return pyspy_error(proc.stderr or proc.stdout or "") or "exit status %d" % proc.returncode


def record_pyspy(
    pid: int, duration: float = 5.0, rate_hz: int = 100, idle: bool = False, py_spy: Optional[str] = None
) -> Report:
    """Run py-spy on ``pid`` for ``duration`` seconds and return the sampled report.

    ``--nonblocking`` keeps the target running while it is sampled (a few
    inconsistent stacks are possible); ``--duration`` takes whole seconds.
    Raises :class:`ReportError` with py-spy's own message when it fails.
    """
    exe = py_spy or find_pyspy()
    if not exe:
        raise ReportError("py-spy is not installed (pip install py-spy)")
    with tempfile.TemporaryDirectory(prefix="lu-sample-") as tmp:
        out = os.path.join(tmp, "raw.txt")
        cmd = pyspy_command(pid, duration, out, rate_hz, idle, exe)
        try:
            proc = subprocess.run(cmd, capture_output=True, text=True, timeout=duration + 60)
        except subprocess.TimeoutExpired:
            raise ReportError(f"py-spy did not finish within {duration + 60:.0f} s") from None
        if proc.returncode != 0 or not os.path.exists(out):
            reason = pyspy_error(proc.stderr or proc.stdout or "") or f"exit status {proc.returncode}"
            raise ReportError(f"py-spy failed on process {pid}: {reason}")
        with open(out, encoding="utf-8", errors="replace") as fh:
            text = fh.read()
    report = from_pyspy_raw(text, pid, rate_hz, main_script_of(pid))
    report.files = []
    return report
