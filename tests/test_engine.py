"""The live update engine (lu_payloads.engine), exercised in real processes.

For every target interpreter, tests/engine_scenario.py runs in a fresh
process: it writes real module files into a temporary directory, loads
lu_payloads by path (the folder is named `payloads`, so PYTHONPATH cannot do
it), applies and reverts updates, and reports each check as JSON.  One process
per interpreter keeps the whole matrix fast.
"""
import json
import os
import subprocess

import pytest

from tests.interpreters import ALL

HERE = os.path.dirname(os.path.abspath(__file__))
PAYLOADS = os.path.join(os.path.dirname(HERE), "payloads")
SCENARIO = os.path.join(HERE, "engine_scenario.py")

CHECKS = [
    "resolve_patterns",
    "plain_function_args_result_identity",
    "closure_kept_by_module",
    "methods_of_every_kind",
    "super_and_line_hooks",
    "decorated_function_changed_inside_wrapper",
    "generator_points",
    "async_points",
    "defaults_and_kwonly_preserved",
    "traceback_unchanged",
    "thread_running_while_swapped",
    "two_updates_reverted_in_both_orders",
    "redefine_in_place",
    "redefine_property_and_new_method",
    "instrument_over_redefine",
    "hook_errors_counted_not_raised",
    "patch_file_transaction",
    "bad_patches_apply_nothing",
    "bad_inputs",
    "stale_source_refused",
    "no_global_tracing",
]

_cache = {}


def run_scenario(python, tmp_path_factory):
    if python not in _cache:
        work = tmp_path_factory.mktemp("engine")
        proc = subprocess.run([python, "-X", "dev", "-W", "error", SCENARIO, PAYLOADS, str(work)],
                              capture_output=True, text=True, timeout=120, cwd=str(work))
        assert proc.returncode == 0, proc.stderr[-4000:]
        assert proc.stderr == "", proc.stderr[-4000:]   # the engine never writes to stderr
        _cache[python] = json.loads(proc.stdout.strip().splitlines()[-1])
    return _cache[python]


@pytest.mark.parametrize("python", ALL)
def test_engine_matrix(python, tmp_path_factory):
    results = run_scenario(python, tmp_path_factory)
    assert sorted(results) == sorted(CHECKS), "checks run: %s" % sorted(results)
    failed = {name: detail for name, (ok, detail) in results.items() if not ok}
    assert not failed, "\n\n".join("%s:\n%s" % kv for kv in failed.items())
