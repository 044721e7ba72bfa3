"""The live-coding matrix (tests/targets/livecode_cases.py) in real processes, on every interpreter.

Each case: a module imported by the target, references taken to it, a save
applied through the watcher's own entry point, the behaviour checked, the
update reverted, the original behaviour checked.  Run two ways:

- in-process: the program imports lu's payloads and runs the cases itself
  (the `lu_payloads.watch()` path);
- injected: a program with no lu code in it, `lu inject`, then the cases
  run by the injected agent (the `lu watch` path);

both on every interpreter, free-threaded 3.13 included.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
from conftest import REPO, TARGETS, run_lu
from interpreters import EVERY

from lu_attach.session import connect

sys.path.insert(0, TARGETS)
import livecode_cases  # the cases are plain data the target also imports

RUN_ALL = (
    "import sys, json\nsys.path.insert(0, %r)\nimport livecode_cases\nprint(json.dumps(livecode_cases.run_all(%r)))\n"
)


def check(results):
    """Every case's outcome against what it expects; all problems at once, named by case."""
    problems = []
    for case in livecode_cases.CASES:
        got = results.get(case.name)
        if got is None or "crashed" in got:
            problems.append("%s crashed: %s" % (case.name, (got or {}).get("crashed")))
            continue
        for when in ("before", "after", "reverted"):
            if got[when] != getattr(case, when):
                problems.append("%s: %s %r, expected %r" % (case.name, when, got[when], getattr(case, when)))
        if case.error:
            if not got["error"] or case.error not in got["error"]:
                problems.append("%s: refusal %r, expected %r" % (case.name, got["error"], case.error))
        elif got["error"]:
            problems.append("%s: refused: %s" % (case.name, got["error"]))
        wanted = [after for _, after in case.more]
        if got["more"] != wanted:
            problems.append("%s: later saves gave %r, expected %r" % (case.name, got["more"], wanted))
        said = "\n".join(got["lines"] + got["notes"])
        for fragment in case.lines:
            if fragment not in "\n".join(got["lines"]):
                problems.append("%s: no %r in %r" % (case.name, fragment, got["lines"]))
        for fragment in case.notes:
            if fragment not in "\n".join(got["notes"]):
                problems.append("%s: no %r in %r" % (case.name, fragment, got["notes"]))
        for fragment in case.absent:
            if fragment in said:
                problems.append("%s: %r in %r" % (case.name, fragment, said))
        if got.get("teardown"):
            problems.append("%s: after the revert: %s" % (case.name, got["teardown"]))
    assert not problems, "\n".join(problems)


@pytest.mark.parametrize("python", EVERY)
def test_livecode_matrix_in_process(python, tmp_path):
    (tmp_path / "lu_payloads").symlink_to(os.path.join(REPO, "payloads"))
    cases = tmp_path / "cases"
    cases.mkdir()
    out = subprocess.run(
        [python, os.path.join(TARGETS, "livecode_cases.py"), str(cases), str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=str(tmp_path),
    )
    assert out.returncode == 0, out.stderr
    check(json.loads(out.stdout.strip().splitlines()[-1]))


@pytest.mark.parametrize("python", EVERY)
def test_livecode_matrix_injected(python, start_target, tmp_path):
    target = start_target(python, "sleeper.py")
    assert run_lu("inject", target.pid).returncode == 0
    os.chmod(str(tmp_path), 0o755)
    with connect(target.pid) as client:
        reply = client.request("exec", source=RUN_ALL % (TARGETS, str(tmp_path)))
    assert reply["error"] is None, reply["error"]
    check(json.loads(reply["output"].strip().splitlines()[-1]))
    assert target.proc.poll() is None  # the target carries on
