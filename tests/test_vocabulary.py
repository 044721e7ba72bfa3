"""One vocabulary: a function sampled by py-spy and the same function timed by lu have the same name,
and lu's own threads show in neither view."""

from __future__ import annotations

import json

import pytest
from conftest import lu_ok

from lu_attach.report import find_pyspy


def functions(report: dict) -> set:
    names = set()
    for process in report["processes"]:
        for thread in process["threads"]:
            stack = list(thread["calls"])
            while stack:
                node = stack.pop()
                names.add(node["function"])
                stack.extend(node["children"])
    return names


@pytest.mark.skipif(find_pyspy() is None, reason="py-spy is not installed")
def test_sampled_and_instrumented_names_agree_and_lu_is_not_in_the_samples(start_target):
    target = start_target("/usr/bin/python3", "heartbeat.py", "busy")
    profiled = json.loads(lu_ok("profile", target.pid, "__main__.work", "--duration", "1", "--json"))
    assert functions(profiled) == {"__main__.work"}

    sampled = json.loads(lu_ok("sample", target.pid, "--duration", "1", "--idle", "--json"))  # idle: lu's too
    names = functions(sampled)
    assert "__main__.work" in names, sorted(names)
    assert not [n for n in names if "heartbeat." in n], sorted(names)  # not named after the script's file
    threads = [t["thread"] for p in sampled["processes"] for t in p["threads"]]
    assert not [t for t in threads if t.startswith("lu-")], threads
    assert not [n for n in names if "lu_payloads" in n or n.startswith(("agent.", "recorder."))], sorted(names)
