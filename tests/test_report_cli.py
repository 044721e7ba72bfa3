"""`lu report LOG --format NAME` and `-o PATH`, run as the real command on a log written here."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import List

import pytest
from conftest import assert_one_line_error, run_lu
from unit.records import calls, header, node

from lu_attach.report import RENDERERS, ReportError, find_pyspy, load_logs, record_pyspy, render_text
from lu_attach.report.model import walk


@pytest.fixture
def log(tmp_path: Path) -> str:
    records = [
        header(),
        calls([node("views.results", 10, 1390), node("views.results/manager.all", 20, 800)]),
        calls([node("jobs.run", 1, 250)], thread="worker-1", thread_id=2),
    ]
    path = tmp_path / "lu-4510.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in records))
    return str(path)


def rendered(log: str, name: str) -> str:
    return RENDERERS[name].render(load_logs([log]))


@pytest.mark.parametrize("name", list(RENDERERS))
def test_format_prints_what_the_renderer_renders(log: str, name: str) -> None:
    result = run_lu("report", log, "--format", name)
    assert result.returncode == 0, result.stderr
    assert result.stdout == rendered(log, name)
    assert result.stderr == ""


@pytest.mark.parametrize("name", list(RENDERERS))
def test_output_guesses_the_format_from_the_suffix(log: str, tmp_path: Path, name: str) -> None:
    out = tmp_path / ("profile" + RENDERERS[name].suffix)
    result = run_lu("report", log, "-o", str(out))
    assert result.returncode == 0, result.stderr
    assert result.stdout == ""  # -o takes the place of the terminal
    assert result.stderr == "wrote %s: %s\n" % (out, RENDERERS[name].description)
    assert out.read_text(encoding="utf-8") == rendered(log, name)


def test_format_wins_over_the_suffix(log: str, tmp_path: Path) -> None:
    out = tmp_path / "really-json.svg"
    result = run_lu("report", log, "--format", "json", "--output", str(out))
    assert result.returncode == 0, result.stderr
    assert json.loads(out.read_text())["processes"][0]["pid"] == 4510


def test_json_flag_is_format_json(log: str) -> None:
    assert run_lu("report", log, "--json").stdout == run_lu("report", log, "--format", "json").stdout
    assert run_lu("report", log, "--json", "--format", "json").returncode == 0


def test_older_file_flags_write_besides_the_text(log: str, tmp_path: Path) -> None:
    svg, scope, folded = tmp_path / "f.svg", tmp_path / "s.json", tmp_path / "f.folded"
    result = run_lu("report", log, "--flamegraph", str(svg), "--speedscope", str(scope), "--folded", str(folded))
    assert result.returncode == 0, result.stderr
    assert result.stdout == rendered(log, "text")
    assert result.stderr.splitlines() == [
        "wrote %s: %s" % (p, RENDERERS[name].description)
        for p, name in ((svg, "flamegraph"), (scope, "speedscope"), (folded, "folded"))
    ]
    assert scope.read_text() == rendered(log, "speedscope")  # the flag names the format, not the suffix
    assert svg.read_text() == rendered(log, "flamegraph") and folded.read_text() == rendered(log, "folded")


@pytest.mark.parametrize(
    "args,fragments",
    [
        (["--format", "xml"], ["unknown report format 'xml'", "text, json, flamegraph, speedscope, folded"]),
        (["-o", "{tmp}/graph.png"], ["cannot tell the report format of", "graph.png", ".svg (flamegraph)", "--format"]),
        (["-o", "{tmp}/no/such/dir/graph.svg"], ["cannot write", "No such file or directory"]),
        (["--format", "text", "-o", "{tmp}"], ["cannot write", "Is a directory"]),
        (["-o", "/dev/full", "--format", "folded"], ["cannot write /dev/full", "No space left on device"]),
        (["--flamegraph", "{tmp}/no/f.svg"], ["cannot write", "No such file or directory"]),
        (["--json", "--format", "folded"], ["--json and --format folded"]),
    ],
)
def test_bad_output_options_are_one_line(log: str, tmp_path: Path, args: List[str], fragments: List[str]) -> None:
    before = sorted(p.name for p in tmp_path.iterdir())
    result = run_lu("report", log, *[a.replace("{tmp}", str(tmp_path)) for a in args])
    assert_one_line_error(result, *fragments)
    assert result.stdout == ""
    assert sorted(p.name for p in tmp_path.iterdir()) == before  # nothing half written


# -- py-spy, on a real process ---------------------------------------------------------------

BUSY = textwrap.dedent("""\
    import threading, time
    def inner(n):
        return sum(i * i for i in range(n))
    def outer():
        while True:
            inner(20000)
    threading.Thread(target=outer, name="spinner", daemon=True).start()
    print("ready", flush=True)
    while True:
        time.sleep(0.05)
    """)


def test_pyspy_real_recording(tmp_path):
    exe = find_pyspy()
    if not exe:
        pytest.skip("py-spy is not installed (pip install py-spy)")
    script = tmp_path / "busy.py"
    script.write_text(BUSY)
    proc = subprocess.Popen([sys.executable, str(script)], stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout.readline().strip() == "ready"
        try:
            r = record_pyspy(proc.pid, duration=1, rate_hz=100)
        except ReportError as e:
            if "ermission" in str(e) or "ptrace" in str(e):
                pytest.skip(f"py-spy may not attach here: {e}")
            raise
    finally:
        proc.kill()
        proc.wait()
    t = next(t for t in r.processes[proc.pid].threads.values() if t.thread == "spinner")
    names = {node.function for _path, node in walk(t.roots)}
    assert "__main__.outer" in names and "__main__.inner" in names, names  # named as lu's profiles name them
    total = sum(x.hits for x in t.roots.values())
    assert 30 <= total <= 130  # about 100 samples in one second at 100 Hz
    assert "sampled profile (py-spy, 100 Hz)" in render_text(r)
