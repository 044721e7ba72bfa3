"""The five tools against a real multi-threaded, asyncio-running service, every interpreter.

Each `--duration` command must leave nothing applied; results are checked for
what a user reads in them (call tree shape, counts, values, async timing).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
import urllib.request
import xml.etree.ElementTree as ET

import pytest
from conftest import REPO, assert_one_line_error, run_lu
from interpreters import ALL, EVERY, is_free_threaded

PY = next(p.values[0] for p in ALL if p.values[0])


class Load:
    """Requests against the service from a background thread, bounded in time; counts failures."""

    def __init__(self, port, path="/item"):
        self.port, self.path = port, path
        self.ok, self.failures = 0, []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self):
        deadline = time.monotonic() + 120
        while not self._stop.is_set() and time.monotonic() < deadline:
            try:
                with urllib.request.urlopen("http://127.0.0.1:%d%s" % (self.port, self.path), timeout=10) as r:
                    json.loads(r.read())
                self.ok += 1
            except Exception as exc:
                self.failures.append(repr(exc))
            time.sleep(0.002)

    def stop(self):
        self._stop.set()
        self._thread.join()
        return self


def find(calls, name):
    for call in calls:
        if call["function"] == name:
            return call
        found = find(call["children"], name)
        if found:
            return found
    return None


def nothing_applied(pid):
    out = run_lu("ls", pid, "--json")
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout) == []


@pytest.fixture
def service(start_target):
    def start(python):
        target = start_target(python, "tools_service.py")
        return target, int(target.ready_line.split()[1])

    return start


@pytest.mark.parametrize("python", EVERY)
def test_profilers_under_requests(python, service):
    """Two profiles at once: the plain functions and lines with lu's compiled timer, the coroutines with Python's."""
    target, port = service(python)
    load = Load(port)
    compiled = "python" if is_free_threaded(python) else "compiled"  # no compiled timer for a free-threaded build
    try:
        coroutines = subprocess.Popen(
            [sys.executable, "-m", "lu_cli.main", "profile", str(target.pid), "__main__.handle_batch"]
            + ["__main__.fetch", "--duration", "2", "--json"],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            cwd=REPO,
        )
        plain = run_lu(
            "profile",
            target.pid,
            "__main__.Cart.*",
            "__main__.price",
            "__main__.fib",
            "--lines",
            "__main__.Cart.total:14,16",
            "--timer",
            compiled,
            "--duration",
            "2",
            "--json",
            timeout=120,
        )
        async_out, async_err = coroutines.communicate(timeout=120)
    finally:
        load.stop()
    assert plain.returncode == 0, plain.stderr
    assert coroutines.returncode == 0, async_err
    timer = "compiled timer" if compiled == "compiled" else "Python timer, as asked"
    assert "functions timed by lu's %s; lines timed by lu's %s" % (timer, timer) in plain.stderr, plain.stderr
    assert "functions timed by lu's Python timer: generators and coroutines" in async_err, async_err
    assert not load.failures, load.failures[:3]
    assert load.ok > 5
    assert nothing_applied(target.pid)

    report = json.loads(plain.stdout)
    (process,) = report["processes"]
    assert process["pid"] == target.pid
    threads = {t["thread"]: t for t in process["threads"]}
    # Requests run on per-request threads: a method on instances created before the profile is seen.
    request_threads = [t for name, t in threads.items() if name not in ("asyncio-loop", "MainThread")]
    assert request_threads
    total = sum(
        find(t["calls"], "__main__.Cart.total")["hits"]
        for t in request_threads
        if find(t["calls"], "__main__.Cart.total")
    )
    prices = sum(
        find(t["calls"], "__main__.price")["hits"] for t in request_threads if find(t["calls"], "__main__.price")
    )
    assert total > 0 and prices == 5 * total  # price is Cart.total's child, 5 items per cart
    some = next(t for t in request_threads if find(t["calls"], "__main__.Cart.total"))
    cart_total = find(some["calls"], "__main__.Cart.total")
    assert [c["function"] for c in cart_total["children"]] == ["__main__.price"]
    # Recursion: fib(8) nests under fib.
    fib = find(some["calls"], "__main__.fib")
    assert fib["children"] and fib["children"][0]["function"] == "__main__.fib"
    # Async: per-resumption time, so the 4 ms awaited in fetch is not charged to it.
    (process,) = json.loads(async_out)["processes"]
    loop = {t["thread"]: t for t in process["threads"]}["asyncio-loop"]
    fetch = find(loop["calls"], "__main__.fetch")
    batch = find(loop["calls"], "__main__.handle_batch")
    assert fetch["hits"] >= 3 and batch["hits"] >= 1
    assert fetch["per_hit_ms"] < 2.0, fetch
    assert batch["per_hit_ms"] < 4.0, batch
    # Lines of Cart.total: line 16 runs 5 times per call of line 14.
    lines = {(row["function"], row["line"]): row for t in request_threads for row in t["lines"]}
    assert ("__main__.Cart.total", 14) in lines and ("__main__.Cart.total", 16) in lines
    hits14 = sum(row["hits"] for t in request_threads for row in t["lines"] if row["line"] == 14)
    hits16 = sum(row["hits"] for t in request_threads for row in t["lines"] if row["line"] == 16)
    assert hits16 == 5 * hits14


@pytest.mark.parametrize("python", EVERY)
def test_debuggers_stream_values(python, service):
    target, port = service(python)
    load = Load(port, "/boom")
    try:
        calls = run_lu("debug", target.pid, "__main__.shout", "--duration", "1", timeout=60)
        var = run_lu("debug", target.pid, "__main__.Cart.total", "--var", "s", "--duration", "1", timeout=60)
        line = run_lu("debug", target.pid, "__main__.Cart.total", "--lines", "16", "--duration", "1", timeout=60)
        loud = run_lu("debug", target.pid, "__main__.Loud.__repr__", "--duration", "0.5", timeout=60)
    finally:
        load.stop()
    assert not load.failures, load.failures[:3]
    for result in (calls, var, line, loud):
        assert result.returncode == 0, result.stderr
        assert "Traceback" not in result.stderr
    assert "call __main__.shout" in calls.stdout and "(word='hi')" in calls.stdout
    assert "-> 'HI'" in calls.stdout
    assert "raised ValueError: ValueError('no boom')" in calls.stdout
    values = [text.split("s = ", 1)[1] for text in var.stdout.splitlines() if " s = " in text]
    assert values[:6] == ["0", "0", "2", "6", "12", "20"], values[:6]
    assert "uses " in line.stdout and "x=" in line.stdout and "s=" in line.stdout
    assert "sets s=" in line.stdout
    assert nothing_applied(target.pid)
    assert target.alive()


@pytest.mark.parametrize("python", ALL[-1:] + ALL[:1])
def test_profile_left_in_force_then_report_outputs(python, service, tmp_path):
    target, port = service(python)
    load = Load(port)
    try:
        started = run_lu("profile", target.pid, "__main__.**", "--log-dir", str(tmp_path))
        assert started.returncode == 0, started.stderr
        update_id = int(started.stdout.split("(update ")[1].split(")")[0])
        time.sleep(2.5)  # the recorder flushes every 2 s
        log = tmp_path / ("lu-%d-%d.jsonl" % (target.pid, update_id))  # the session's own file
        assert log.exists()
        svg, speedscope, folded = tmp_path / "f.svg", tmp_path / "s.json", tmp_path / "f.folded"
        text = run_lu("report", str(log))
        files = run_lu(
            "report",
            str(log),
            "--pid",
            target.pid,
            "--flamegraph",
            svg,
            "--speedscope",
            speedscope,
            "--folded",
            folded,
            "--json",
        )
    finally:
        load.stop()
    assert text.returncode == 0 and files.returncode == 0, (text.stderr, files.stderr)
    assert text.stdout.startswith("instrumented profile (lu)")
    assert "in process %d, thread" % target.pid in text.stdout
    assert "__main__.Handler.do_GET" in text.stdout
    data = json.loads(files.stdout)
    assert data["processes"][0]["pid"] == target.pid
    root = ET.parse(svg).getroot()
    assert root.tag.endswith("svg")
    titles = [t.text for t in root.iter("{http://www.w3.org/2000/svg}title")]
    assert any("__main__.Cart.total" in (t or "") for t in titles)
    assert root.find(".//{http://www.w3.org/2000/svg}script") is not None
    scope = json.loads(speedscope.read_text())
    assert scope["$schema"] == "https://www.speedscope.app/file-format-schema.json"
    assert scope["profiles"] and all(p["type"] == "sampled" for p in scope["profiles"])
    # Folded stacks: "pid P / thread;outer;inner microseconds", every frame charged once, where it was spent.
    stacks = [line.rsplit(" ", 1) for line in folded.read_text().splitlines()]
    assert stacks and all(int(value) > 0 for _stack, value in stacks)
    assert all(stack.startswith("pid %d / " % target.pid) for stack, _value in stacks)
    assert any(stack.split(";")[-2:] == ["__main__.Handler.do_GET", "__main__.Cart.total"] for stack, _ in stacks), (
        stacks
    )
    # In force until reverted, then nothing is left.
    listed = json.loads(run_lu("ls", target.pid, "--json").stdout)
    assert [u["id"] for u in listed] == [update_id]
    assert run_lu("revert", target.pid, update_id).returncode == 0
    assert nothing_applied(target.pid)


@pytest.mark.parametrize("python", ALL[-1:])
def test_profile_names_what_it_profiles(python, service):
    target, _port = service(python)
    left = run_lu("profile", target.pid, "__main__.Cart.*", "--json")
    assert left.returncode == 0, left.stderr
    started = json.loads(left.stdout)  # left in force: what a script needs to follow it up
    assert sorted(started["targets"]) == ["__main__.Cart.__init__", "__main__.Cart.total"]
    assert started["log"].endswith("lu-%d.jsonl" % target.pid) and len(started["ids"]) == 1
    timed = run_lu("profile", target.pid, "__main__.price", "--duration", "0.5")
    assert timed.returncode == 0, timed.stderr
    assert "profiling 1 function in process %d for 0.5 s: __main__.price (Ctrl-C" % target.pid in timed.stderr
    assert run_lu("revert", target.pid, "--all").returncode == 0
    assert nothing_applied(target.pid)


@pytest.mark.parametrize("python", ALL[:1])
def test_sample_and_a_timed_profile_write_every_format_titled(python, service, tmp_path):
    target, port = service(python)
    load = Load(port)
    files = {}
    try:
        for kind, command in (
            ("sampled", ["sample", target.pid, "--duration", "1"]),
            ("instrumented", ["profile", target.pid, "__main__.Cart.*", "--duration", "1"]),
        ):
            files[kind] = {suffix: tmp_path / (kind + suffix) for suffix in (".svg", ".speedscope.json", ".folded")}
            result = run_lu(
                *command,
                "--flamegraph",
                files[kind][".svg"],
                "--speedscope",
                files[kind][".speedscope.json"],
                "--folded",
                files[kind][".folded"],
                timeout=120,
            )
            assert result.returncode == 0, result.stderr
            assert "self time in µs" in result.stderr, result.stderr  # the folded file says its unit
            if kind == "sampled":
                assert "est. time" in result.stdout, result.stdout
    finally:
        load.stop()
    for kind, written in files.items():
        titles = [t.text or "" for t in ET.parse(written[".svg"]).getroot().iter("{http://www.w3.org/2000/svg}text")]
        assert any("Flame graph: %s" % kind in t and "process %d" % target.pid in t for t in titles), titles
        scope = json.loads(written[".speedscope.json"].read_text())
        assert scope["$schema"] == "https://www.speedscope.app/file-format-schema.json" and scope["profiles"]
        stacks = [line.rsplit(" ", 1) for line in written[".folded"].read_text().splitlines()]
        assert stacks and all(int(value) > 0 for _stack, value in stacks), kind
    assert nothing_applied(target.pid)


@pytest.mark.parametrize("python", ALL[:1])
def test_sample_with_pyspy(python, service):
    target, port = service(python)
    load = Load(port)
    try:
        result = run_lu("sample", target.pid, "--duration", "1", "--json", timeout=60)
    finally:
        load.stop()
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    assert data["source"] == "sampled"
    assert data["processes"][0]["pid"] == target.pid
    text = run_lu("sample", target.pid, "--duration", "1", timeout=60)
    assert text.stdout.startswith("sampled profile (py-spy")


def test_bad_input_of_the_tools(service, tmp_path):
    target, _port = service(PY)
    assert_one_line_error(run_lu("profile", target.pid, "__main__.nothing_like_this"), "__main__.nothing_like_this")
    assert_one_line_error(run_lu("profile", target.pid, "no_such_module.*"), "no_such_module")
    assert_one_line_error(run_lu("profile", target.pid, "--lines", "__main__.price:999", "--duration", "1"), "999")
    assert_one_line_error(run_lu("profile", target.pid, "--lines", "price:abc"), "--lines takes FUNC:L1,L2")
    assert_one_line_error(run_lu("profile", target.pid), "name functions to profile")
    assert_one_line_error(run_lu("debug", target.pid, "__main__.Cart.total", "--lines", "400"), "400")
    assert_one_line_error(
        run_lu("debug", target.pid, "__main__.Cart.total", "--var", "nope"), "has no variable 'nope'", "s"
    )
    assert_one_line_error(run_lu("debug", target.pid, "__main__.Cart.*", "--var", "s"), "one function")
    assert_one_line_error(
        run_lu("sample", target.pid, "--duration", "1", env={"LU_PYSPY": "/nonexistent/py-spy"}),
        "py-spy is not installed",
    )
    assert nothing_applied(target.pid)
    # Logs that are not ours, or cut short.
    foreign = tmp_path / "foreign.log"
    foreign.write_text("hello\nworld\n")
    assert_one_line_error(run_lu("report", str(foreign)), "not an lu log")
    assert_one_line_error(run_lu("report", str(tmp_path / "missing.jsonl")), "no such file")
    good = tmp_path / "cut.jsonl"
    good.write_text(
        json.dumps({"lu": 1, "type": "header", "pid": 7, "python": "3.11.7", "argv": ["x"]})
        + "\n"
        + json.dumps(
            {
                "lu": 1,
                "type": "calls",
                "pid": 7,
                "session": "1",
                "thread": "MainThread",
                "thread_id": 1,
                "time": 1.0,
                "nodes": [{"path": ["m.f"], "hits": 2, "total_ns": 4000000}],
            }
        )
        + "\n"
        + '{"lu": 1, "type": "calls", "pid": 7, "nod'
    )
    cut = run_lu("report", str(good))
    assert cut.returncode == 0
    assert "m.f" in cut.stdout and "cut short" in cut.stderr
    assert "Traceback" not in cut.stderr


@pytest.mark.skipif(os.getuid() != 0, reason="needs root to act as another user")
def test_sample_refused_for_another_users_process(service):
    target, _ = service(PY)
    assert_one_line_error(run_lu("sample", target.pid, "--duration", "1", user="nobody"), "belongs to user root")


@pytest.mark.parametrize("python", ALL[:1] + ALL[-1:])
def test_profile_counts_calls_that_raise(python, service):
    """A call that raises is timed and counted, and the tree stays right after it."""
    target, port = service(python)
    load = Load(port, "/boom")
    try:
        result = run_lu(
            "profile",
            target.pid,
            "__main__.Handler.do_GET",
            "__main__.shout",
            "--duration",
            "1.5",
            "--json",
            timeout=60,
        )
    finally:
        load.stop()
    assert result.returncode == 0, result.stderr
    threads = json.loads(result.stdout)["processes"][0]["threads"]
    get = sum(
        find(t["calls"], "__main__.Handler.do_GET")["hits"]
        for t in threads
        if find(t["calls"], "__main__.Handler.do_GET")
    )
    shout = [find(t["calls"], "__main__.Handler.do_GET") for t in threads]
    nested = sum(c["hits"] for node in shout if node for c in node["children"] if c["function"] == "__main__.shout")
    # One raising call and one normal call per request; requests in flight when the
    # profile starts or is snapshotted may be off by their own calls.
    assert get > 10 and abs(nested - 2 * get) <= 6, (get, nested)


# -- ExceptionCounter: a tool that only declares itself in the registry ------------------------------------

RAISE_SEVEN = (
    "import __main__\n"
    "for word in ['boom'] * 7 + ['calm'] * 3:\n"
    "    try:\n"
    "        __main__.shout(word)\n"
    "    except ValueError:\n"
    "        pass\n"
)


def tables_of(report_json: dict) -> list:
    return [
        table for process in report_json["processes"] for thread in process["threads"] for table in thread["tables"]
    ]


@pytest.mark.parametrize("python", EVERY)
def test_exception_counter_counts_exactly(python, service, tmp_path):
    target, _port = service(python)
    started = run_lu("exceptions", target.pid, "__main__.shout", "--log-dir", str(tmp_path))
    assert started.returncode == 0, started.stderr
    update_id = int(started.stdout.split("(update ")[1].split(")")[0])
    attach = run_lu("attach", target.pid, input=RAISE_SEVEN + "\n")
    assert attach.returncode == 0 and "Traceback" not in attach.stdout, (attach.stdout, attach.stderr)
    assert run_lu("revert", target.pid, update_id).returncode == 0  # a reverted session writes its last figures
    log = tmp_path / ("lu-%d-%d.jsonl" % (target.pid, update_id))
    report = json.loads(run_lu("report", str(log), "--json").stdout)
    (table,) = tables_of(report)
    assert table["title"] == "exceptions raised" and table["columns"] == ["function", "exception", "count"]
    # Requests of the running service call shout("hi") meanwhile: those raise nothing and are not counted.
    assert table["rows"] == [["__main__.shout", "ValueError", 7]]
    text = run_lu("report", str(log))
    assert "exceptions raised" in text.stdout and "__main__.shout" in text.stdout and "ValueError" in text.stdout
    assert nothing_applied(target.pid)


@pytest.mark.parametrize("python", ALL[-1:] + ALL[:1])
def test_exception_counter_under_requests(python, service):
    target, port = service(python)
    load = Load(port, "/boom")
    try:
        result = run_lu(
            "exceptions", target.pid, "__main__.shout", "__main__.Handler.*", "--duration", "1.5", "--json", timeout=120
        )
    finally:
        load.stop()
    assert result.returncode == 0, result.stderr
    assert not load.failures, load.failures[:3]
    (table,) = tables_of(json.loads(result.stdout))
    rows = {(function, exception): count for function, exception, count in table["rows"]}
    # Each /boom request makes shout raise once, and do_GET catches it: only shout is charged.
    assert set(rows) == {("__main__.shout", "ValueError")}, rows
    assert 0 < rows[("__main__.shout", "ValueError")] <= load.ok + 1
    assert nothing_applied(target.pid)


def test_exception_counter_in_the_controller(service):
    target, _port = service(PY)
    session = run_lu(
        "attach",
        target.pid,
        input="uid = EC.count(['__main__.shout'])\n"  # PyLiveUpdate-style alias
        + RAISE_SEVEN
        + "\nprint(LU.ls())\nhelp()\n",
    )
    assert session.returncode == 0, session.stderr
    assert "Error" not in session.stdout, session.stdout
    assert any(
        line.split()[1:3] == ["instrument", "__main__.shout"]
        for line in session.stdout.splitlines()
        if len(line.split()) > 3
    ), session.stdout
    assert "ExceptionCounter.count(['m.**'])" in session.stdout  # the registry's line in the controller's help
    assert run_lu("revert", target.pid, "--all").returncode == 0
    assert nothing_applied(target.pid)


def test_exception_counter_bad_input(service):
    target, _port = service(PY)
    assert_one_line_error(run_lu("exceptions", target.pid, "__main__.nope"), "__main__.nope")
    assert_one_line_error(run_lu("exceptions", target.pid, "__main__.shout", "--duration", "0"), "--duration")
    missing = run_lu("exceptions", target.pid)
    assert missing.returncode != 0 and "Traceback" not in missing.stderr
    assert nothing_applied(target.pid)
