"""The live update engine (lu_payloads.engine), exercised in real processes.

For every target interpreter, tests/engine_scenario.py runs in a fresh
process: it writes real module files into a temporary directory, loads
lu_payloads by path (the folder is named `payloads`, so PYTHONPATH cannot do
it), applies and reverts updates, and reports each check as JSON. One process
per interpreter keeps the matrix fast; each check is still its own test
(`test_engine_check[pyenv-3.12-redefine_in_place]`), so a failure names the
check and the interpreter, and the others still run.
"""

import json
import os
import subprocess
from typing import Dict, List, Tuple

import pytest

from tests.interpreters import EVERY

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
    "redefine_of_a_name_that_does_not_exist_is_refused_unless_it_says_it_adds",
    "annotations_are_carried_never_evaluated",
    "patterns_find_functions_a_patch_redefined_and_cells_of_a_module_without_a_file",
    "instrument_over_redefine",
    "hook_errors_counted_not_raised",
    "patch_file_transaction",
    "bad_patches_apply_nothing",
    "bad_inputs",
    "stale_source_refused",
    "no_global_tracing",
    "calltree_awaited_coroutines_sit_under_their_awaiter_with_running_and_wall_time",
    "calltree_exceptions_cancellation_generators_and_threads_keep_the_tree_straight",
    "calltree_calls_not_finished_are_shown_with_their_time_so_far",
    "calltree_async_with_and_async_for_suspend_the_call",
    "compiled_timer_gives_the_python_timers_trees",
    "compiled_timer_shows_calls_not_finished_and_survives_a_revert_under_them",
    "compiled_timer_is_chosen_only_where_it_can_time_every_call",
    "compiled_timer_is_freed_with_its_session",
    "compiled_line_timer_gives_the_python_timers_figures",
    "compiled_line_timer_is_chosen_unless_it_cannot_be",
]

Results = Dict[str, Tuple[bool, str]]
_runs: Dict[str, Results] = {}


def run_scenario(python: str, tmp_path_factory: pytest.TempPathFactory) -> Results:
    """The scenario's verdicts for one interpreter, run once per test worker."""
    if python not in _runs:
        work = tmp_path_factory.mktemp("engine")
        proc = subprocess.run(
            [python, "-X", "dev", "-W", "error", SCENARIO, PAYLOADS, str(work)],
            capture_output=True,
            text=True,
            timeout=120,
            cwd=str(work),
        )
        assert proc.returncode == 0, proc.stderr[-4000:]
        assert proc.stderr == "", proc.stderr[-4000:]  # the engine never writes to stderr
        _runs[python] = {
            name: (ok, detail) for name, (ok, detail) in json.loads(proc.stdout.strip().splitlines()[-1]).items()
        }
    return _runs[python]


def _params(with_checks: bool) -> List["pytest.param"]:
    """Every interpreter (skipped ones keep their reason), times every check; one worker per interpreter."""
    params = []
    for interpreter in EVERY:
        marks = list(interpreter.marks) + [pytest.mark.xdist_group("engine-%s" % interpreter.id)]
        for check in CHECKS if with_checks else [None]:
            name = interpreter.id if check is None else "%s-%s" % (interpreter.id, check)
            values = (interpreter.values[0], check) if with_checks else (interpreter.values[0],)
            params.append(pytest.param(*values, id=name, marks=marks))
    return params


@pytest.mark.parametrize("python, check", _params(with_checks=True))
def test_engine_check(python: str, check: str, tmp_path_factory: pytest.TempPathFactory) -> None:
    ok, detail = run_scenario(python, tmp_path_factory).get(check, (False, "the scenario did not run this check"))
    assert ok, detail


@pytest.mark.parametrize("python", _params(with_checks=False))
def test_engine_ran_exactly_the_checks(python: str, tmp_path_factory: pytest.TempPathFactory) -> None:
    """No check vanished, and no revert after a check failed (those report as NAME_revert_all)."""
    assert sorted(run_scenario(python, tmp_path_factory)) == sorted(CHECKS)
