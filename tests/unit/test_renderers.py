"""The renderer registry: names, suffix guessing, writing, and what each format renders."""

from __future__ import annotations

import json
import os
import re
import xml.etree.ElementTree as ET
from typing import Any, Callable, Dict

import pytest

from lu_attach.report import (
    RENDERERS,
    Renderer,
    Report,
    ReportError,
    check_writable,
    guess_renderer,
    renderer_named,
    report_from_records,
    write_report,
)

from .records import calls, header, node


@pytest.fixture
def report() -> Report:
    """Two threads, a three-level tree, and names a terminal or a parser could trip on."""
    return report_from_records(
        [
            header(),
            calls(
                [
                    node("views.results", 3, 30),
                    node("views.results/db.query", 6, 20),
                    node("views.results/db.query/m.<lambda>&\"é\"", 1, 5),
                ]
            ),
            calls([node("jobs.run", 1, 4)], thread="worker-1", thread_id=2),
        ]
    )


def one_line(exc: pytest.ExceptionInfo) -> str:
    text = str(exc.value)
    assert text and "\n" not in text
    return text


# -- the registry ---------------------------------------------------------------------


def test_registry_names_and_records() -> None:
    assert list(RENDERERS) == ["text", "json", "flamegraph", "speedscope", "folded"]
    for name, renderer in RENDERERS.items():
        assert isinstance(renderer, Renderer) and renderer.name == name
        assert renderer.suffix.startswith(".") and renderer.description and callable(renderer.render)
    assert len({r.suffix for r in RENDERERS.values()}) == len(RENDERERS)  # each suffix names one format


@pytest.mark.parametrize("name", list(RENDERERS))
def test_renderer_named(name: str) -> None:
    assert renderer_named(name) is RENDERERS[name]
    assert renderer_named(name.upper()) is RENDERERS[name]


def test_unknown_name_is_one_line_listing_the_known() -> None:
    with pytest.raises(ReportError) as exc:
        renderer_named("xml")
    assert one_line(exc) == "unknown report format 'xml' (known: text, json, flamegraph, speedscope, folded)"


# -- suffix guessing ------------------------------------------------------------------


@pytest.mark.parametrize("name", list(RENDERERS))
def test_every_suffix_round_trips(name: str) -> None:
    suffix = RENDERERS[name].suffix
    assert guess_renderer("/some/dir/profile" + suffix) is RENDERERS[name]
    assert guess_renderer("PROFILE" + suffix.upper()) is RENDERERS[name]


@pytest.mark.parametrize(
    "path,name",
    [
        ("run.speedscope.json", "speedscope"),  # the longest suffix wins
        ("run.json", "json"),
        ("speedscope.json", "json"),  # ".speedscope.json" is the suffix, not the word
        ("a.b.svg", "flamegraph"),
        ("out.folded", "folded"),
        ("report.txt", "text"),
    ],
)
def test_suffix_rule(path: str, name: str) -> None:
    assert guess_renderer(path).name == name


@pytest.mark.parametrize("path", ["graph.png", "report", "folded", "dir.svg/x", ".svg", "x.svg.gz"])
def test_unknown_suffix_is_one_line(path: str) -> None:
    with pytest.raises(ReportError) as exc:
        guess_renderer(path)
    text = one_line(exc)
    assert text.startswith(f"cannot tell the report format of {path} from its suffix")
    assert ".speedscope.json (speedscope)" in text


# -- what each renders ----------------------------------------------------------------


def _check_text(out: str) -> None:
    assert out.startswith("instrumented profile (lu)\n") and "views.results" in out


def _check_json(out: str) -> None:
    data = json.loads(out)
    assert data["processes"][0]["pid"] == 4510
    assert out.isascii()  # safe on a terminal that escapes control characters


def _check_flamegraph(out: str) -> None:
    root = ET.fromstring(out)
    assert root.tag == "{http://www.w3.org/2000/svg}svg"
    assert "Flame graph: instrumented profile (lu) of process 4510" in out


def _check_speedscope(out: str) -> None:
    data = json.loads(out)
    assert data["$schema"] == "https://www.speedscope.app/file-format-schema.json"
    assert [p["name"] for p in data["profiles"]] == ["pid 4510 / MainThread", "pid 4510 / worker-1"]
    assert out.isascii()


def _check_folded(out: str) -> None:
    lines = out.splitlines()
    assert lines and all(re.fullmatch(r"[^;\n]+(;[^;\n]+)+ \d+", line) for line in lines)
    assert "pid 4510 / MainThread;views.results;db.query 15000" in lines


CHECKS: Dict[str, Callable[[str], None]] = {
    "text": _check_text,
    "json": _check_json,
    "flamegraph": _check_flamegraph,
    "speedscope": _check_speedscope,
    "folded": _check_folded,
}


def test_every_renderer_has_a_check() -> None:
    assert set(CHECKS) == set(RENDERERS)


@pytest.mark.parametrize("name", list(RENDERERS))
def test_renders_the_right_kind(report: Report, name: str) -> None:
    out = RENDERERS[name].render(report)
    assert out.endswith("\n")
    CHECKS[name](out)


# -- writing --------------------------------------------------------------------------


@pytest.mark.parametrize("name", list(RENDERERS))
def test_write_report_writes_what_renders(report: Report, tmp_path: Any, name: str) -> None:
    path = str(tmp_path / ("out" + RENDERERS[name].suffix))
    write_report(report, RENDERERS[name], path)
    with open(path, encoding="utf-8") as handle:
        assert handle.read() == RENDERERS[name].render(report)


def test_write_report_errors_are_one_line(report: Report, tmp_path: Any) -> None:
    with pytest.raises(ReportError) as exc:
        write_report(report, RENDERERS["text"], str(tmp_path / "missing" / "out.txt"))
    assert one_line(exc) == f"cannot write {tmp_path}/missing/out.txt: No such file or directory"
    with pytest.raises(ReportError) as exc:
        write_report(report, RENDERERS["text"], str(tmp_path))
    assert one_line(exc) == f"cannot write {tmp_path}: Is a directory"
    assert os.listdir(tmp_path) == []


def test_check_writable_refuses_before_any_work(tmp_path: Any) -> None:
    check_writable(str(tmp_path / "new.svg"))  # a new file in a directory that exists
    for path, reason in ((tmp_path, "Is a directory"), (tmp_path / "no" / "x.svg", "No such file or directory")):
        with pytest.raises(ReportError) as exc:
            check_writable(str(path))
        assert one_line(exc) == f"cannot write {path}: {reason}"
