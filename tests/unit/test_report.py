"""Host-side reports: log reading, text, JSON, flame graph, speedscope, folded, py-spy."""

from __future__ import annotations

import json
import re
import textwrap
import xml.etree.ElementTree as ET

import pytest

from lu_attach.report import (
    ReportError,
    folded_lines,
    from_pyspy_raw,
    load_logs,
    reading,
    render_flamegraph,
    render_folded,
    render_json,
    render_speedscope,
    render_text,
    to_json,
    to_speedscope,
)
from lu_attach.report.flamegraph import PAD_X, WIDTH

MS = 1_000_000
SVG = "{http://www.w3.org/2000/svg}"


def rec(type_, pid=4510, session="3", thread="MainThread", thread_id=1, time_=1.0, **kw):
    d = {
        "lu": 1,
        "type": type_,
        "pid": pid,
        "session": session,
        "thread": thread,
        "thread_id": thread_id,
        "time": time_,
    }
    d.update(kw)
    return d


def node(path, hits, ms):
    return {"path": path.split("/"), "hits": hits, "total_ns": int(ms * MS)}


def write_log(path, records, tail=""):
    with open(path, "w") as f:
        f.write("".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in records))
        f.write(tail)
    return str(path)


MAIN_TREE = [
    node("views.results", 10, 1390),
    node("views.results/manager.all", 20, 800),
    node("views.results/manager.all/db.query", 20, 600),
    node("views.results/render", 10, 300),
]


@pytest.fixture
def log(tmp_path):
    return write_log(
        tmp_path / "a.jsonl",
        [
            {"lu": 1, "type": "header", "pid": 4510, "python": "3.11.7", "argv": ["app.py"], "started": 1.0},
            rec("calls", time_=1.0, nodes=[node("views.results", 5, 695)]),  # superseded
            rec("calls", time_=2.0, nodes=MAIN_TREE),
            rec(
                "calls",
                thread="worker-1",
                thread_id=2,
                time_=2.0,
                nodes=[node("jobs.run", 1, 250), node("jobs.run/db.query", 3, 90)],
            ),
            rec(
                "lines",
                session="4",
                time_=2.0,
                lines=[
                    {"function": "shop.Cart.total", "line": 12, "hits": 100, "total_ns": 5000},
                    {"function": "shop.Cart.total", "line": 13, "hits": 100, "total_ns": 25000},
                ],
            ),
            rec("event", session="5", kind="call", function="m.f", line=3, data={}),
            "this is not json",
            '["json", "but not lu"]',
        ],
        tail='{"lu":1,"type":"calls","pid":4510,"ses',  # killed mid-write
    )


def calls_of(report, pid=4510, thread="MainThread"):
    for t in report.processes[pid].threads.values():
        if t.thread == thread:
            return t
    raise KeyError(thread)


# -- reading logs -------------------------------------------------------------------


def test_superseding_threads_lines_and_warnings(log):
    r = load_logs([log])
    main = calls_of(r)
    root = main.roots["views.results"]
    assert (root.hits, root.total_ns) == (10, 1390 * MS)  # last snapshot, not summed
    assert root.children["manager.all"].children["db.query"].hits == 20
    assert calls_of(r, thread="worker-1").roots["jobs.run"].total_ns == 250 * MS
    assert main.lines[("shop.Cart.total", 13)].total_ns == 25000
    assert main.events == 1 and r.events == 1
    assert r.processes[4510].python == "3.11.7"
    w = "\n".join(r.warnings)
    assert "skipped 1 non-JSON line (line 7)" in w
    assert "1 JSON line that is not an lu record (line 8)" in w
    assert "last line (9) is cut short" in w


def test_sessions_sum_and_older_snapshot_read_later_loses(tmp_path):
    p = write_log(
        tmp_path / "s.jsonl",
        [
            rec("calls", session="1", time_=5.0, nodes=[node("a.f", 2, 20)]),
            rec("calls", session="1", time_=4.0, nodes=[node("a.f", 1, 10)]),  # older: ignored
            rec("calls", session="2", time_=1.0, nodes=[node("a.f", 3, 30), node("a.f/a.g", 3, 6)]),
        ],
    )
    t = calls_of(load_logs([p]))
    assert (t.roots["a.f"].hits, t.roots["a.f"].total_ns) == (5, 50 * MS)
    assert t.roots["a.f"].children["a.g"].hits == 3
    assert sorted(t.sessions) == ["1", "2"]


def test_two_pids_two_files_and_pid_filter(tmp_path):
    a = write_log(tmp_path / "a.jsonl", [rec("calls", pid=1, nodes=[node("m.f", 1, 1)])])
    b = write_log(tmp_path / "b.jsonl", [rec("calls", pid=2, nodes=[node("m.g", 1, 2)])])
    assert sorted(load_logs([a, b]).processes) == [1, 2]
    assert sorted(load_logs([tmp_path]).processes) == [1, 2]  # a directory of logs
    only = load_logs([a, b], pid=2)
    assert list(only.processes) == [2]
    with pytest.raises(ReportError, match="no records of process 3"):
        load_logs([a, b], pid=3)


def test_not_an_lu_log_and_missing_file(tmp_path):
    bad = tmp_path / "notes.txt"
    bad.write_text("hello\n{\"a\": 1}\n")
    with pytest.raises(ReportError) as e:
        load_logs([bad])
    assert str(e.value) == f"{bad} is not an lu log"
    (tmp_path / "empty.jsonl").write_text("")
    with pytest.raises(ReportError, match="is not an lu log"):
        load_logs([tmp_path / "empty.jsonl"])
    with pytest.raises(ReportError, match="no such file"):
        load_logs([tmp_path / "nope.jsonl"])


def test_malformed_records_and_missing_prefixes(tmp_path):
    p = write_log(
        tmp_path / "m.jsonl",
        [
            rec("calls", nodes=[node("a.f/b.g/c.h", 2, 8), {"path": "oops"}, node("a.f/b.x", 1, 2)]),
            {"lu": 1, "type": "calls", "session": "1", "nodes": []},  # no pid
            {"lu": 1, "type": "mystery", "pid": 4510},
        ],
    )
    r = load_logs([p])
    a = calls_of(r).roots["a.f"]
    assert (a.hits, a.total_ns) == (0, 10 * MS)  # synthesised from its children
    assert a.children["b.g"].total_ns == 8 * MS
    w = "\n".join(r.warnings)
    assert "1 malformed lu record (line 2: no pid)" in w
    assert "1 lu record of unknown type" in w
    assert "1 malformed entries inside snapshots" in w


# -- text ----------------------------------------------------------------------------


def test_text_tree_and_reading(log):
    r = load_logs([log])
    out = render_text(r)
    lines = out.splitlines()
    assert lines[0] == "instrumented profile (lu)"
    assert lines[1] == (
        "in process 4510, thread MainThread, views.results was called 10 times at"
        " 139 ms each and called manager.all 20 times, which took 58% of its time."
    )
    assert re.search(r"^    function\s+hits\s+total\s+per hit$", out, re.M)
    assert re.search(r"^    views\.results\s+10\s+1\.39 s\s+139 ms$", out, re.M)
    assert re.search(r"^      manager\.all\s+20\s+800 ms\s+40 ms$", out, re.M)
    assert re.search(r"^        db\.query\s+20\s+600 ms\s+30 ms$", out, re.M)
    assert re.search(r"^    shop\.Cart\.total\s+13\s+100\s+25 µs\s+250 ns$", out, re.M)
    assert "thread worker-1" in out and "1 debug event: `lu events 4510` prints them" in out


@pytest.mark.parametrize(
    "nodes,sentence",
    [
        ([node("m.f", 1, 139)], "m.f was called once and took 139 ms."),
        ([node("m.f", 3, 3)], "m.f was called 3 times at 1 ms each."),
        (
            [node("m.f", 1, 2000), node("m.f/m.g", 1, 500)],
            "m.f was called once and took 2 s and called m.g once, which took 25% of its time.",
        ),
    ],
)
def test_reading_edge_cases(tmp_path, nodes, sentence):
    r = load_logs([write_log(tmp_path / "e.jsonl", [rec("calls", nodes=nodes)])])
    assert reading(r) == "in process 4510, thread MainThread, " + sentence


def test_reading_without_calls(tmp_path):
    p = write_log(tmp_path / "l.jsonl", [rec("event", kind="call", function="m.f", line=1, data={})])
    assert reading(load_logs([p])) == "no profile data in the logs (1 debug events)."


# -- JSON ----------------------------------------------------------------------------


def test_json_schema(log):
    data = json.loads(render_json(load_logs([log])))
    assert data["source"] == "instrumented"
    (proc,) = data["processes"]
    assert {"pid", "threads"} <= set(proc) and proc["pid"] == 4510
    assert [t["thread"] for t in proc["threads"]] == ["MainThread", "worker-1"]

    def check_call(c):
        assert {"function", "hits", "total_ms", "per_hit_ms", "children"} <= set(c)
        assert isinstance(c["function"], str) and isinstance(c["hits"], int)
        assert isinstance(c["total_ms"], float) and isinstance(c["per_hit_ms"], float)
        for k in c["children"]:
            check_call(k)

    main = proc["threads"][0]
    for c in main["calls"]:
        check_call(c)
    top = main["calls"][0]
    assert (top["function"], top["hits"], top["total_ms"], top["per_hit_ms"]) == ("views.results", 10, 1390.0, 139.0)
    assert [k["function"] for k in top["children"]] == ["manager.all", "render"]
    line = main["lines"][0]
    assert {"function", "line", "hits", "total_ms"} <= set(line)
    assert (line["function"], line["line"], line["hits"], line["total_ms"]) == ("shop.Cart.total", 12, 100, 0.005)


# -- flame graph -----------------------------------------------------------------------


def frames_of(svg):
    root = ET.fromstring(svg)
    frames = root.find(f".//{SVG}g[@id='frames']")
    out = []
    for g in frames.findall(f"{SVG}g"):
        r = g.find(f"{SVG}rect")
        out.append(
            {
                "name": g.get("data-name"),
                "depth": int(g.get("data-d")),
                "ns": int(g.get("data-ns")),
                "parent": int(g.get("data-p", -1)),
                "x": float(r.get("x")),
                "w": float(r.get("width")),
                "title": g.find(f"{SVG}title").text,
            }
        )
    return root, out


def test_flamegraph_structure_and_widths(log):
    svg = render_flamegraph(load_logs([log]))
    root, fs = frames_of(svg)
    assert root.find(f"{SVG}script") is not None and "function zoom" in root.find(f"{SVG}script").text
    assert root.find(".//{http://www.w3.org/1999/xhtml}input") is not None  # search box
    assert [f["name"] for f in fs[:2]] == ["all", "pid 4510 / MainThread"]
    total = (1390 + 250) * MS
    assert fs[0]["ns"] == total and fs[0]["w"] == pytest.approx(WIDTH - 2 * PAD_X)
    scale = fs[0]["w"] / fs[0]["ns"]
    for f in fs:
        assert f["w"] == pytest.approx(f["ns"] * scale, abs=2e-3)  # proportional to time
    # a parent = its self time + its children: widths of children never exceed it
    for i, f in enumerate(fs):
        kids = [k for k in fs if k["parent"] == i]
        assert sum(k["ns"] for k in kids) <= f["ns"]
        if kids:
            assert min(k["x"] for k in kids) == pytest.approx(f["x"], abs=2e-3)
    by = {(f["name"], f["depth"]): f for f in fs}
    assert by[("views.results", 2)]["ns"] == 1390 * MS
    assert by[("db.query", 4)]["ns"] == 600 * MS
    # self times add up to the total: nothing counted twice
    self_sum = sum(f["ns"] - sum(k["ns"] for k in fs if k["parent"] == i) for i, f in enumerate(fs) if f["depth"] >= 2)
    assert self_sum == total
    t = by[("manager.all", 3)]["title"]
    assert t.startswith("manager.all\n20 calls · 800 ms in all · 40 ms per call")
    assert svg == render_flamegraph(load_logs([log]))  # deterministic


def test_flamegraph_clamps_and_escapes(tmp_path):
    p = write_log(
        tmp_path / "c.jsonl",
        [rec("calls", nodes=[node("m.<lambda>&\"x\"", 1, 10), node("m.<lambda>&\"x\"/m.g", 1, 15)])],
    )  # child > parent
    _, fs = frames_of(render_flamegraph(load_logs([p])))
    by = {f["name"]: f for f in fs}
    assert by['m.<lambda>&"x"']["ns"] == 15 * MS == by["m.g"]["ns"]
    assert fs[0]["ns"] == 15 * MS


def test_flamegraph_empty_report(tmp_path):
    p = write_log(tmp_path / "e.jsonl", [rec("event", kind="call", function="m.f", line=1, data={})])
    root, fs = frames_of(render_flamegraph(load_logs([p])))
    assert fs == [] and "no call data" in ET.tostring(root, encoding="unicode")


# -- speedscope and folded -------------------------------------------------------------


def test_speedscope(log):
    data = json.loads(render_speedscope(load_logs([log])))
    assert data["$schema"] == "https://www.speedscope.app/file-format-schema.json"
    frames = data["shared"]["frames"]
    assert all(set(f) <= {"name", "file", "line", "col"} for f in frames)
    assert [p["name"] for p in data["profiles"]] == ["pid 4510 / MainThread", "pid 4510 / worker-1"]
    for p in data["profiles"]:
        assert set(p) == {"type", "name", "unit", "startValue", "endValue", "samples", "weights"}
        assert p["type"] == "sampled" and p["unit"] == "nanoseconds"
        assert len(p["samples"]) == len(p["weights"])
        assert p["startValue"] == 0 and p["endValue"] == sum(p["weights"])
        assert all(0 <= i < len(frames) for s in p["samples"] for i in s)
    main = data["profiles"][0]
    assert sum(main["weights"]) == 1390 * MS
    stacks = {tuple(frames[i]["name"] for i in s): w for s, w in zip(main["samples"], main["weights"])}
    assert stacks[("views.results", "manager.all")] == 200 * MS
    assert stacks[("views.results",)] == 290 * MS


def test_folded(tmp_path, log):
    lines = folded_lines(load_logs([log]))
    pat = re.compile(r"^(.*)\s+(\d+)$")  # what flamegraph.pl and inferno parse
    assert all(pat.match(text) for text in lines)
    assert "pid 4510 / MainThread;views.results;manager.all 200000" in lines
    assert sum(int(text.rsplit(" ", 1)[1]) for text in lines) == (1390 + 250) * 1000
    p = write_log(tmp_path / "s.jsonl", [rec("calls", nodes=[node("m.a;b", 1, 1)])])
    assert render_folded(load_logs([p])) == "pid 4510 / MainThread;m.a:b 1000\n"


# -- py-spy ---------------------------------------------------------------------------

PYSPY_RAW = textwrap.dedent("""\
    thread (5157): MainThread;<module> (busy.py:24);work (busy.py:16) 97
    thread (5157): MainThread;<module> (busy.py:24);work (busy.py:15);leaf (busy.py:11);Shop.total (busy.py:7) 2
    thread (5199): worker-1;Thread._bootstrap (threading.py:1002);Thread.run (threading.py:982);other (busy.py:20) 35
    thread (5199): worker-1;Thread._bootstrap (threading.py:1002);Thread.run (threading.py:982);other (busy.py:20);other.<locals>.<genexpr> (busy.py:20) 64
    thread (5199): worker-1;Thread._bootstrap (threading.py:1002);Thread.run (threading.py:982);other (busy.py:19) 1
    process 77:"python x.py; y";thread (0x7F01): T;f (pkg/mod/__init__.py:3) 4
    garbage
    """)


def test_pyspy_conversion():
    r = from_pyspy_raw(PYSPY_RAW, pid=5157, rate_hz=100)
    assert r.sampled and sorted(r.processes) == [77, 5157]
    main = calls_of(r, 5157)
    mod = main.roots["busy.<module>"]
    assert mod.hits == 99 and mod.total_ns == 990 * MS
    assert mod.children["busy.work"].children["busy.leaf"].children["busy.Shop.total"].hits == 2
    worker = calls_of(r, 5157, "worker-1")
    other = worker.roots["threading.Thread._bootstrap"].children["threading.Thread.run"].children["busy.other"]
    assert other.hits == 100  # lines 19 and 20 are one function
    assert other.file == "busy.py"
    assert calls_of(r, 77, "T").roots["pkg.mod.f"].hits == 4
    assert any("skipped 1 unreadable line" in w for w in r.warnings)
    out = render_text(r)
    assert out.startswith(
        "sampled profile (py-spy, 100 Hz)\nin process 5157, thread worker-1, busy.other was on the stack"
        " in 100 samples (about 1 s), 64% of them in busy.other.<locals>.<genexpr>."
    )
    assert "samples / 100 Hz" in out
    data = to_json(r)
    assert data["source"] == "sampled" and data["rate_hz"] == 100
    assert "pid 5157 / MainThread;busy.<module>;busy.work 97" in folded_lines(r)
    ss = to_speedscope(r)
    assert sum(sum(p["weights"]) for p in ss["profiles"]) == (99 + 100 + 4) * 10 * MS
    assert ET.fromstring(render_flamegraph(r)) is not None


def _paths(roots):
    from lu_attach.report.model import walk

    for path, n in walk(roots):
        yield path, n.function


def test_compact_nodes_with_parent_indices_read_like_paths(tmp_path):
    """The recorder names each node's parent by index; that reads exactly like full paths."""
    compact = [
        {"function": "views.results", "parent": -1, "hits": 10, "total_ns": int(1390 * MS)},
        {"function": "manager.all", "parent": 0, "hits": 20, "total_ns": int(800 * MS)},
        {"function": "db.query", "parent": 1, "hits": 20, "total_ns": int(600 * MS)},
        {"function": "render", "parent": 0, "hits": 10, "total_ns": int(300 * MS)},
        {"function": "orphan", "parent": 17, "hits": 1, "total_ns": 1},  # bad index: skipped, reported
    ]
    by_path = load_logs([write_log(tmp_path / "a.jsonl", [rec("calls", nodes=MAIN_TREE)])])
    by_index = load_logs([write_log(tmp_path / "b.jsonl", [rec("calls", nodes=compact)])])
    assert to_json(by_index)["processes"] == to_json(by_path)["processes"]
    assert any("malformed" in w or "skipped" in w for w in by_index.warnings)


def test_sampled_names_follow_lus_and_lus_own_threads_are_left_out():
    raw = (
        "thread (11): MainThread;<module> (app.py:30);work (app.py:15) 90\n"
        "thread (12): lu-agent;Thread._bootstrap (threading.py:995);Thread.run (threading.py:975);"
        "Agent._accept_loop (lu_payloads/agent.py:170) 50\n"
        "thread (14): lu-recorder;_loop (lu_payloads/recorder.py:280) 50\n"
        "thread (13);serve (lib/shop.py:3) 5\n"
    )
    report = from_pyspy_raw(raw, 77, 100.0, main_script="/srv/app.py")
    names = {t.thread: list(t.roots) for t in report.threads()}
    assert names == {"MainThread": ["__main__.<module>"], "13": ["lib.shop.serve"]}
    assert list(report.threads()[0].roots["__main__.<module>"].children) == ["__main__.work"]


# -- coroutines (running and wall time apart) and calls not finished ----------------


def test_running_wall_and_unfinished_calls_are_read_rendered_and_merged(tmp_path):
    handler = dict(node("app.handler", 3, 90), wall_ns=340 * MS, open=1, open_ns=5 * MS, open_wall_ns=60 * MS)
    leaf = dict(node("app.handler/app.leaf", 3, 60), wall_ns=210 * MS)
    stuck = dict(node("app.stuck", 2, 2000), open=1, open_ns=700 * MS, open_wall_ns=700 * MS)
    path = write_log(
        tmp_path / "async.jsonl",
        [rec("calls", nodes=[handler, leaf]), rec("calls", thread="stuck", thread_id=2, nodes=[stuck])],
    )
    report = load_logs([path])
    main = calls_of(report).roots["app.handler"]
    assert (main.hits, main.total_ns, main.wall_ns, main.open, main.open_wall_ns) == (3, 90 * MS, 340 * MS, 1, 60 * MS)
    assert main.children["app.leaf"].wall_per_hit_ns == 70 * MS
    plain = calls_of(report, thread="stuck").roots["app.stuck"]
    assert plain.wall_ns is None and plain.wall_per_hit_ns == plain.per_hit_ns == 1000 * MS

    text = render_text(report)
    assert "wall per hit" in text and "not finished" in text and "awaits included" in text, text
    row = next(line for line in text.splitlines() if line.strip().startswith("app.handler"))
    assert "30 ms" in row and "113 ms" in row and "1 (60 ms so far)" in row, row

    data = to_json(report)
    threads = {t["thread"]: t for t in data["processes"][0]["threads"]}
    (call,) = threads["MainThread"]["calls"]
    assert call["wall_ms"] == 340 and call["wall_per_hit_ms"] == pytest.approx(113.333, abs=0.001)
    assert (call["open"], call["open_ms"], call["open_wall_ms"]) == (1, 5, 60)
    assert "wall_ms" not in threads["stuck"]["calls"][0]

    from lu_attach.report.processors import merge_threads

    (merged,) = merge_threads(report).processes[4510].threads.values()
    assert merged.roots["app.handler"].wall_ns == 340 * MS and merged.roots["app.stuck"].open == 1


def test_a_thread_of_plain_finished_calls_keeps_the_short_table(log):
    text = render_text(load_logs([log]))
    assert "wall per hit" not in text and "not finished" not in text


def test_calls_from_before_the_profile_read_as_lower_bounds(tmp_path):
    def before(path):
        return dict(node(path, 0, 0), open=1, open_ns=12_000 * MS, open_wall_ns=12_000 * MS, open_before=1)

    log = write_log(tmp_path / "b.jsonl", [rec("calls", nodes=[before("app.outer"), before("app.outer/app.inner")])])
    report = load_logs([log])
    sentence = reading(report)
    assert "app.outer has not finished: 1 call running for 12 s so far (it started before the profile" in sentence
    assert "in a call of app.inner that has not finished either" in sentence, sentence
    row = next(line for line in render_text(report).splitlines() if line.strip().startswith("app.inner"))
    assert "1 (at least 12 s, started before)" in row, row
    (outer,) = to_json(report)["processes"][0]["threads"][0]["calls"]
    assert outer["open_before"] == 1 and outer["children"][0]["open_before"] == 1


def test_a_call_that_never_finished_is_what_the_reading_names(tmp_path):
    stuck = dict(node("app.stuck", 0, 0), open=1, open_ns=12_000 * MS, open_wall_ns=12_000 * MS)
    path = write_log(tmp_path / "c.jsonl", [rec("calls", nodes=[stuck, node("app.quick", 5, 1)])])
    sentence = reading(load_logs([path]))
    assert "app.stuck has not finished: 1 call running for 12 s so far" in sentence, sentence
