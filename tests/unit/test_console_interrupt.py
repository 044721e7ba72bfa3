"""Interrupting a controller statement (lu_payloads.console), in this process on threads of its own.

A statement runs on one thread (the agent's connection thread in a target);
interrupt(token) comes from another. KeyboardInterrupt must reach that
statement only: never another thread, never lu's own code it is in, and
never the thread after the statement has ended.
"""

from __future__ import annotations

import threading
import time
from typing import Any, Dict, Iterator, Optional

import pytest

from lu_payloads import console


@pytest.fixture(autouse=True)
def streams_back() -> Iterator[None]:
    """console.run puts its routers before sys.stdout and sys.stderr; this process gets its own back."""
    yield
    console.uninstall_capture()


class Running:
    """console.run(source, token) on a thread of its own; `result` once it is over."""

    def __init__(self, source: str, token: str, namespace: Optional[Dict[str, Any]] = None) -> None:
        self.namespace: Dict[str, Any] = {} if namespace is None else namespace
        self.result: Optional[Dict[str, Optional[str]]] = None
        self.after: Optional[str] = None  # what the thread met after run() returned
        self.thread = threading.Thread(target=self._run, args=(source, token), daemon=True)
        self.thread.start()

    def _run(self, source: str, token: str) -> None:
        self.result = console.run(source, self.namespace, token=token)
        try:  # the thread goes on with Python code: nothing may be left pending for it
            deadline = time.monotonic() + 0.1
            while time.monotonic() < deadline:
                pass
            self.after = "nothing"
        except KeyboardInterrupt:
            self.after = "KeyboardInterrupt"

    def wait(self, timeout: float = 10.0) -> Dict[str, Optional[str]]:
        self.thread.join(timeout)
        assert not self.thread.is_alive(), "the statement did not end"
        assert self.result is not None
        return self.result


def until_running(namespace: Dict[str, Any], key: str = "started") -> None:
    deadline = time.monotonic() + 10
    while key not in namespace:
        assert time.monotonic() < deadline, "the statement never started"
        time.sleep(0.01)


def test_a_loop_is_interrupted_and_its_output_kept():
    running = Running("print('before')\nstarted = 1\nwhile True:\n    pass\n", token="loop")
    until_running(running.namespace)
    assert console.interrupt("loop") == "sent"
    result = running.wait()
    assert result["output"] == "before\n"
    assert result["error"] is not None and result["error"].endswith("KeyboardInterrupt")
    assert 'File "<lu>"' in result["error"] and "console.py" not in result["error"]
    assert running.after == "nothing"
    assert console.interrupt("loop") == "finished"


def test_an_interrupt_is_asked_once_then_withdrawn_when_the_statement_ends_on_its_own():
    # A sleep cannot be cut short: the interrupt waits, and the statement's own return comes first.
    running = Running("import time\nstarted = 1\ntime.sleep(0.6)\n", token="sleep")
    until_running(running.namespace)
    assert console.interrupt("sleep") == "sent"
    assert console.interrupt("sleep") == "pending"
    result = running.wait()
    assert result["error"] is None or result["error"].endswith("KeyboardInterrupt")
    assert running.after == "nothing"  # whatever happened, nothing was left for the thread's later code


def test_only_the_statement_thread_is_interrupted():
    bystander = {"count": 0, "stop": False, "interrupted": False}

    def application() -> None:
        try:
            while not bystander["stop"]:
                bystander["count"] += 1
        except KeyboardInterrupt:
            bystander["interrupted"] = True

    app = threading.Thread(target=application, daemon=True)
    app.start()
    running = Running("started = 1\nwhile True:\n    pass\n", token="mine")
    until_running(running.namespace)
    assert console.interrupt("mine") == "sent"
    running.wait()
    bystander["stop"] = True
    app.join(5)
    assert not bystander["interrupted"] and bystander["count"] > 0


def test_lu_code_is_never_cut_short(monkeypatch):
    """While the statement is in lu's own code the interrupt waits; it lands once the statement is back."""
    monkeypatch.setattr(console, "SHIELD_WAIT", 0.2)
    lu_module: Dict[str, Any] = {"__name__": "lu_payloads.fake_operation", "time": time}
    exec(
        "def operation(seconds, done):\n"
        "    deadline = time.monotonic() + seconds\n"
        "    while time.monotonic() < deadline:\n"
        "        pass\n"
        "    done.append(1)\n",
        lu_module,
    )
    namespace: Dict[str, Any] = {"operation": lu_module["operation"], "done": []}
    running = Running(
        "started = 1\noperation(0.6, done)\nwhile True:\n    pass\n", token="shielded", namespace=namespace
    )
    until_running(namespace)
    time.sleep(0.1)
    assert console.interrupt("shielded") == "busy"  # inside the operation for longer than SHIELD_WAIT
    assert namespace["done"] == []
    deadline = time.monotonic() + 10
    answer = "busy"
    while answer == "busy":
        assert time.monotonic() < deadline
        answer = console.interrupt("shielded")
    assert answer == "sent"
    result = running.wait()
    assert namespace["done"] == [1]  # the operation ran to its end
    assert result["error"] is not None and result["error"].endswith("KeyboardInterrupt")


def test_interrupt_refuses_a_missing_token_and_knows_no_stranger():
    with pytest.raises(console.LuError):
        console.interrupt("")
    assert console.interrupt("never-sent") == "finished"


def test_a_statement_without_token_runs_as_before():
    result = console.run("print(6 * 7)", {})
    assert result == {"output": "42\n", "error": None}
    assert console.run("1/0", {})["error"].endswith("ZeroDivisionError: division by zero")


def test_an_update_being_prepared_is_cancelled_with_nothing_applied(tmp_path, monkeypatch):
    """Interrupted while lu prepares an update (lu's code: never cut short), the preparation stops before the swap."""
    import importlib
    import sys

    from lu_payloads.engine import Instrument, UpdateManager, progress

    preparing = threading.Event()
    step = progress.Watch.step

    def first_step_seen(watch: progress.Watch) -> None:
        preparing.set()
        step(watch)

    monkeypatch.setattr(progress.Watch, "step", first_step_seen)

    source = "".join("def f%d(x):\n    return x + %d\n\n\n" % (i, i) for i in range(3000))
    (tmp_path / "lu_cancel_probe.py").write_text(source)
    monkeypatch.syspath_prepend(str(tmp_path))
    module = importlib.import_module("lu_cancel_probe")
    monkeypatch.setitem(sys.modules, "lu_cancel_probe", module)
    before = module.f7.__code__
    manager = UpdateManager()
    namespace: Dict[str, Any] = {"manager": manager, "Instrument": Instrument, "hook": lambda info: None}
    running = Running(
        "started = 1\nmanager.apply_update(Instrument('lu_cancel_probe.*', {'func_before': (hook, None)}))\n",
        token="preparing",
        namespace=namespace,
    )
    assert preparing.wait(30), "the update was never prepared"
    answer = console.interrupt("preparing")
    result = running.wait(60)
    assert answer in ("finished", "pending", "busy"), answer
    assert result["error"] is not None and "nothing was applied" in result["error"], result
    assert manager.ls() == []
    assert module.f7.__code__ is before
