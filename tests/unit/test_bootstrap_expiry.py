"""The injected bootstrap: one that first runs after lu stopped waiting for it runs nothing.

lu cancels an injection by taking its claim back; a lu killed (SIGKILL)
before it could cancel leaves the claim, and the target would start an
agent whenever it next reached the bootstrap. The bootstrap carries the time
lu stops waiting: past it, it takes the claim and does nothing else.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from typing import Any, Dict, NamedTuple, Tuple

from lu_attach.staging import bootstrap_script


def run_bootstrap(runtime, expires):
    nonce = "0" * 24
    (runtime / ("inject-%s.claim" % nonce)).write_bytes(b"")
    script = bootstrap_script(
        runtime=str(runtime), nonce=nonce, expires=expires, payloads="/nonexistent/lu_payloads", payloads_name="x"
    )
    out = subprocess.run([sys.executable, "-I", "-c", script], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    return sorted(os.listdir(str(runtime)))


def test_an_expired_bootstrap_takes_the_claim_and_does_nothing(tmp_path):
    assert run_bootstrap(tmp_path, time.time() - 1) == []  # no claim left, no status: nothing ran


def test_a_bootstrap_in_time_goes_on_and_reports(tmp_path):
    left = run_bootstrap(tmp_path, time.time() + 60)
    assert left == ["inject-%s.status" % ("0" * 24)], left  # it tried (the payloads are not there) and said so
    text = (tmp_path / left[0]).read_text()
    assert '"ok": false' in text and "nonexistent" in text, text


class Started(NamedTuple):
    output: str  # what the program printed after the bootstrap
    status: Dict[str, Any]  # what the bootstrap reported to lu


def start_agent_in(
    tmp_path, program_before: str = "", program_after: str = "", broken: str = "", appended: Tuple[str, str] = ("", "")
) -> Started:
    """The bootstrap run for real (lu's package copied, `broken` made to fail, `appended` = (file, code) added
    to one of its modules) inside a program."""
    import shutil

    import lu_payloads

    package = tmp_path / "staged" / "lu_payloads"
    shutil.copytree(os.path.dirname(os.path.abspath(lu_payloads.__file__)), str(package))
    if broken:
        (package / broken).write_text("raise RuntimeError('broken on purpose')\n")
    if appended[0]:
        with open(str(package / appended[0]), "a") as handle:
            handle.write("\n" + appended[1])
    runtime = tmp_path / "runtime"
    runtime.mkdir(exist_ok=True)
    nonce = "3" * 24
    (runtime / ("inject-%s.claim" % nonce)).write_bytes(b"")
    script = bootstrap_script(
        runtime=str(runtime), nonce=nonce, expires=time.time() + 60, payloads=str(package), payloads_name="copy"
    )
    program = "import gc\n" + program_before + "\n" + script + "\n" + program_after + "\n"
    out = subprocess.run([sys.executable, "-I", "-c", program], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    return Started(out.stdout.strip(), json.loads((runtime / ("inject-%s.status" % nonce)).read_text()))


def test_the_agent_starts_when_its_bytecode_step_fails(tmp_path):
    """Making bytecode away from the program's GIL is a way to start faster, never a reason not to start."""
    status = start_agent_in(tmp_path, broken="startup.py").status
    assert status["ok"] is True and status["compiled"] is None, status


def test_a_launch_module_that_fails_to_load_is_reported_and_the_program_goes_on(tmp_path):
    """The bootstrap hands the start to lu_payloads/launch.py; if that cannot even be loaded, lu hears why
    and the program runs on as it was (its switch interval, no agent)."""
    program_after = "import sys; print(sys.getswitchinterval(), 'lu_payloads' in sys.modules)"
    started = start_agent_in(
        tmp_path,
        program_before="import sys; sys.setswitchinterval(0.02)",
        program_after=program_after,
        broken="launch.py",
    )
    assert started.status["ok"] is False and "broken on purpose" in started.status["error"], started.status
    assert isinstance(started.status["began"], float), started.status  # (and when it tried)
    assert started.output == "0.02 False"


# The program knocks on the agent's door (its first client): the agent loads, and greets it.
KNOCK_AT = """
import socket, struct, sys
knock = socket.socket(socket.AF_UNIX)
knock.connect(%s)
size = struct.unpack(">I", knock.recv(4, socket.MSG_WAITALL))[0]
greeting = knock.recv(size, socket.MSG_WAITALL)
"""
KNOCK = KNOCK_AT % 'sys.modules["lu_payloads.door"].current().path'
# After the greeting: the door's thread finishes its load (the greeting may go out a moment before it does).
LOADED = """
import time
end = time.monotonic() + 10
while sys.modules["lu_payloads.door"].current() is not None and time.monotonic() < end:
    time.sleep(0.01)
"""


def test_the_injection_opens_the_door_and_the_first_client_loads_the_agent(tmp_path):
    """What the injection runs in the program is the door alone (door.py says why): not lu's package, not a
    module of the standard library that the program had not imported (typing, json, select, __future__,
    ...); the door's two helpers are loaded by their paths, not entered in sys.modules. The first client
    loads lu's package and the agent, which greets it."""
    before = "import socket, sys, threading, time\nhad = set(sys.modules)"
    after = (
        "print(sorted(set(sys.modules) - had))\n"
        + KNOCK
        + "print(b'hello' in greeting, 'lu_payloads.agent' in sys.modules, 'lu_payloads.door' in sys.modules)\n"
        + LOADED
        + "print(sys.modules['lu_payloads'].running(), sys.modules['lu_payloads.door'].current())\n"
        + "print(sys.modules['lu_payloads'].door is sys.modules['lu_payloads.door'])"
    )
    started = start_agent_in(tmp_path, program_before=before, program_after=after)
    assert started.status["ok"] is True and started.status["was_running"] is False, started.status
    imported, loaded, after_load, named = started.output.splitlines()
    assert eval(imported) == ["lu_payloads.door"], imported
    assert loaded == "True True True" and after_load == "True None" and named == "True", started.output
    assert started.status["socket"].endswith("/agent-%d.sock" % started.status["pid"]), started.status


def test_in_a_program_without_socket_or_threading_the_injection_imports_neither(tmp_path):
    """The door listens on the C module under socket; threading waits for the first knock, which imports it
    from the door's thread. Up to 3.12 threading then takes that thread for the main one (threadfix.py): the
    program's main thread is its main thread again, and its exit does not wait for lu's thread."""
    before = "import sys\nhad = set(sys.modules)"
    after = (
        "print(sorted(set(sys.modules) - had))\n"
        + KNOCK
        + LOADED
        + "import threading, _thread\n"
        + "print(threading.main_thread().ident == _thread.get_ident(), threading.current_thread().name)\n"
    )
    started = start_agent_in(tmp_path, program_before=before, program_after=after)
    imported, main = started.output.splitlines()
    assert [name for name in eval(imported) if name not in ("_socket", "lu_payloads.door")] == [], imported
    assert main == "True MainThread", started.output


def test_the_status_says_when_the_bootstrap_ran_on_the_hosts_clock(tmp_path):
    """The bootstrap's start and end, as CLOCK_MONOTONIC stamps that lu (on the same clock) can set beside
    its own steps: within the program's run, in order, the start before the program's next line."""
    started_at = time.monotonic()
    started = start_agent_in(tmp_path, program_after="import time\nprint(repr(time.monotonic()))")
    finished_at = time.monotonic()
    began, ended, after = started.status["began"], started.status["ended"], float(started.output)
    assert started_at < began <= ended <= after < finished_at, (started_at, began, ended, after, finished_at)


def test_the_programs_collector_runs_again_after_the_agent_loads(tmp_path):
    """Paused while the agent loads (lu_payloads/collector.py), on again after, nothing left frozen."""
    after = KNOCK + "print(gc.isenabled(), gc.get_freeze_count(), 'lu_payloads.agent' in sys.modules)"
    started = start_agent_in(tmp_path, program_after=after)
    assert started.status["ok"] is True and started.output == "True 0 True"


# collector.py's resume, wrapped to say whether the agent listened already when it ran
RESUME_SEES_AGENT = """
_resume = resume


def resume(paused):
    import sys

    service = sys.modules.get("lu_payloads.service")
    print("agent listening at resume:", service is not None and service.current() is not None)
    _resume(paused)
"""


def test_the_collector_runs_again_before_the_agent_listens(tmp_path):
    """A client that reaches the agent never finds the program's collector paused (it asked for its state
    the moment a killed lu left the start to finish alone, and once read it still off)."""
    started = start_agent_in(
        tmp_path, program_after=KNOCK + "print(gc.isenabled())", appended=("collector.py", RESUME_SEES_AGENT)
    )
    assert started.status["ok"] is True and started.output.splitlines() == ["agent listening at resume: False", "True"]


def test_a_collector_the_program_turned_off_stays_off_and_frozen_objects_stay_frozen(tmp_path):
    after = "print(gc.isenabled(), 0 < gc.get_freeze_count() <= frozen)"  # (frozen objects may be freed)
    before = "gc.disable(); gc.freeze(); frozen = gc.get_freeze_count()"
    assert start_agent_in(tmp_path, before, KNOCK + after).output == "False True"
    before = "gc.freeze(); frozen = gc.get_freeze_count()"
    assert start_agent_in(tmp_path / "2", before, KNOCK + after).output == "True True"


def test_the_agent_starts_with_the_collector_on_when_that_step_fails(tmp_path):
    started = start_agent_in(tmp_path, program_after=KNOCK + "print(gc.isenabled())", broken="collector.py")
    assert started.status["ok"] is True and started.output == "True"


# an audit hook that notes each module imported before the agent's start reads startup.py: in the
# bootstrap, in launch.py, and in the copy of lu's package
IMPORTS_BEFORE_LAUNCH = """
import sys
imported, launched = [], []


def note(event, args):
    if event == "open" and str(args[0]).endswith("/startup.py"):
        launched.append(True)
    elif event == "import" and not launched:
        imported.append(args[0])


sys.addaudithook(note)
"""


def test_lus_package_is_copied_into_the_agents_directory_with_os_alone(tmp_path):
    """The first injection after lu changed copies its package into the agent's directory. A copy through
    shutil imported a dozen modules into the program (shutil, fnmatch, bz2, lzma, ...), each compiled
    while it held the GIL where the standard library ships no bytecode: 30 ms on 3.14. Nor does the
    bootstrap import the importlib package to load launch.py (the import system's own functions do)."""
    started = start_agent_in(tmp_path, IMPORTS_BEFORE_LAUNCH, "print(sorted(set(imported)))")
    assert started.status["ok"] is True, started.status
    assert eval(started.output) == []  # no module imported before the agent's start
    source, copy = tmp_path / "staged" / "lu_payloads", tmp_path / "runtime" / "copy" / "lu_payloads"

    def files(top):
        return {
            os.path.relpath(os.path.join(where, name), str(top)): os.stat(os.path.join(where, name)).st_mode & 0o777
            for where, dirs, names in os.walk(str(top))
            if "__pycache__" not in where
            for name in names
        }

    assert files(copy) == files(source)  # every file, with its mode (the compiled timer's among them)
    assert (copy / "engine" / "manager.py").read_bytes() == (source / "engine" / "manager.py").read_bytes()


def test_a_copy_that_loses_the_race_is_removed(tmp_path):
    """Two injections copying at once (two programs of one user): the one whose rename fails removes its
    own copy and leaves the other's in place."""
    (tmp_path / "runtime" / "copy" / "lu_payloads").mkdir(parents=True)  # the other's, still without launch.py
    (tmp_path / "runtime" / "copy" / "lu_payloads" / "__init__.py").write_text("")
    started = start_agent_in(tmp_path)
    assert started.status["ok"] is False, started.status  # (the other's copy is not complete yet)
    assert sorted(os.listdir(str(tmp_path / "runtime"))) == ["copy", "inject-%s.status" % ("3" * 24)]


def test_an_agent_that_cannot_be_loaded_tells_each_client_and_the_door_stays(tmp_path):
    """A client that knocks gets one line saying why there is no agent, instead of a greeting; the next
    knock tries again; the program runs on."""
    after = (
        KNOCK
        + "print(greeting)\n"
        + KNOCK
        + "print(greeting)\n"
        + "print(sys.modules['lu_payloads'].running(), sys.modules['lu_payloads.door'].current().failures)"
    )
    started = start_agent_in(tmp_path, program_after=after, broken="service.py")
    assert started.status["ok"] is True, started.status
    first, second, state = started.output.splitlines()
    for greeting in (first, second):
        error = json.loads(eval(greeting))
        assert error["ok"] is False and "could not be loaded" in error["error"], error
        assert "RuntimeError: broken on purpose" in error["error"], error
    assert state == "True 2"


# The program imports lu_payloads itself (an embedding program), from its own copy of lu.
IMPORT_OWN = "sys.path.insert(0, %r)\nimport lu_payloads\n"


def test_an_embedding_programs_start_takes_over_from_an_open_door(tmp_path):
    """The program calls lu_payloads.start() itself after lu was injected: the door gives way to the agent,
    which listens at the same path and greets its clients; stop() then removes it all."""
    after = (
        "import os, sys, time\n"
        + IMPORT_OWN % str(tmp_path / "staged")
        + "door = sys.modules['lu_payloads.door'].current()\n"
        "path = sys.modules['lu_payloads'].start()\n"
        "print(path == door.path, door.state, sys.modules['lu_payloads.door'].current())\n"
        + KNOCK_AT
        % "path"
        + "print(b'hello' in greeting)\n"
        "sys.modules['lu_payloads'].stop()\n"
        "print(os.path.exists(path), sys.modules['lu_payloads'].running())\n"
    )
    started = start_agent_in(tmp_path, program_after=after)
    assert started.output.splitlines() == ["True closed None", "True", "False False"], started.output


def test_a_door_nobody_knocked_on_is_closed_by_stop(tmp_path):
    after = (
        "import os, sys\n"
        + IMPORT_OWN % str(tmp_path / "staged")
        + "door = sys.modules['lu_payloads.door'].current()\n"
        "sys.modules['lu_payloads'].stop()\n"
        "print(os.path.exists(door.path), door.state, 'lu_payloads.agent' in sys.modules)\n"
    )
    assert start_agent_in(tmp_path, program_after=after).output == "False closed False"


# The program forks while the door's thread loads the agent (a client knocked from another thread).
FORK_DURING_LOAD = (
    """
import os, sys, threading, time
door = sys.modules["lu_payloads.door"].current()
knocker = threading.Thread(target=exec, args=(%r, {}))
knocker.start()
end = time.monotonic() + 10
while door.state == "open" and time.monotonic() < end:
    time.sleep(0.0005)
was = door.state
time.sleep(0.01)  # (into the agent's imports)
child = os.fork()
if child == 0:
    half = [name for name, module in list(sys.modules.items())
            if getattr(getattr(module, "__spec__", None), "_initializing", False)]
    os.write(1, ("child: %%s %%s\\n" %% (half, "lu_payloads.service" in sys.modules)).encode())
    os._exit(0)
os.waitpid(child, 0)
knocker.join()
print("parent:", was)
"""
    % KNOCK
)


def test_a_fork_while_the_agent_loads_waits_for_it(tmp_path):
    """A child forked while the door's thread imports the agent's modules would copy them half-done (and
    the standard library's it was importing: the program's own import of one would find it so). The fork
    waits for the load, and the child has the agent's modules whole."""
    started = start_agent_in(tmp_path, program_after=FORK_DURING_LOAD)
    assert started.output.splitlines() == ["child: [] True", "parent: loading"], started.output


# The program imports logging after the injection (its fork hook, which takes logging's lock, is then
# newer than the door's and runs first), and forks deep in the load, while live coding's modules import.
FORK_AFTER_LOGGING = (
    """
import logging, os, sys, threading, time
door = sys.modules["lu_payloads.door"].current()
knocker = threading.Thread(target=exec, args=(%r, {}))
knocker.start()
end = time.monotonic() + 10
while "lu_payloads.livecode" not in sys.modules and time.monotonic() < end:
    time.sleep(0.0001)
was = door.state
began = time.monotonic()
child = os.fork()
if child == 0:
    half = [name for name, module in list(sys.modules.items())
            if getattr(getattr(module, "__spec__", None), "_initializing", False)]
    os.write(1, ("child: %%s\\n" %% (half,)).encode())
    os._exit(0)
took = time.monotonic() - began
os.waitpid(child, 0)
knocker.join()
print("parent:", was, took < 2)
"""
    % KNOCK
)


def test_a_fork_deep_in_the_load_of_a_program_that_imported_logging_waits_for_it_and_no_longer(tmp_path):
    """logging's fork hook takes logging's lock before the door's hook waits for the load; a load that
    asked logging for a logger then waited for the fork, and the fork for the load, until the door's hook
    gave up (5 s): the child had lu's modules half imported. The load does not touch logging now."""
    started = start_agent_in(tmp_path, program_after=FORK_AFTER_LOGGING)
    assert started.output.splitlines() == ["child: []", "parent: loading True"], started.output


def test_the_agent_loads_at_the_short_switch_interval_and_the_programs_comes_back(tmp_path):
    """At the first knock the door's thread loads the agent as the bootstrap starts it: with a short switch
    interval (the program's threads get their turns; the load gets the GIL back soon after each of its
    reads, which took seconds beside a busy server's threads), then the program's own again."""
    started = start_agent_in(
        tmp_path,
        program_before="import sys; sys.setswitchinterval(0.02)",
        program_after=KNOCK + LOADED + "print(sys.getswitchinterval())",
        appended=("service.py", "import sys as _sys\nprint('while it loads: %.4f' % _sys.getswitchinterval())"),
    )
    assert started.output.splitlines() == ["while it loads: 0.0001", "0.02"], started.output


def test_the_door_opens_at_the_short_switch_interval_and_the_programs_comes_back(tmp_path):
    """launch.py opens the door with the short switch interval, then puts the program's back."""
    started = start_agent_in(
        tmp_path,
        program_before="import sys; sys.setswitchinterval(0.02)",
        program_after="print(sys.getswitchinterval())",
        appended=("door.py", "import sys as _sys\nprint('while it opens: %.4f' % _sys.getswitchinterval())"),
    )
    assert started.output.splitlines() == ["while it opens: 0.0001", "0.02"], started.output


def test_a_switch_interval_the_program_changed_meanwhile_is_left_as_it_is():
    from lu_payloads.launch import ShortSwitchInterval

    program = sys.getswitchinterval()
    try:
        with ShortSwitchInterval(0.0001):
            assert abs(sys.getswitchinterval() - 0.0001) < 1e-6  # (held in whole microseconds)
        assert sys.getswitchinterval() == program  # put back
        with ShortSwitchInterval(0.0001):
            sys.setswitchinterval(0.003)  # the program's own choice, made while lu's code ran
        assert abs(sys.getswitchinterval() - 0.003) < 1e-6
        with ShortSwitchInterval(1.0):  # never longer than the program's
            assert abs(sys.getswitchinterval() - 0.003) < 1e-6
    finally:
        sys.setswitchinterval(program)


def test_a_door_whose_socket_was_removed_opens_again_with_the_loader_it_had(tmp_path):
    """A /tmp cleaner removed the socket of a door nobody knocked on; the next injection opens it again, and
    keeps the first injection's loader (which imported lu with the bytecode kept aside, its collector's
    pause): the second's loader, given here as one that fails, is not used."""
    after = (
        "import os, sys\n"
        "old = sys.modules['lu_payloads.door'].current()\n"
        "os.unlink(old.path)\n"
        "def second(listening, first):\n"
        "    raise RuntimeError('the second injection loader')\n"
        "path = sys.modules['lu_payloads.door'].open_door(second)\n"
        "print(path == old.path, old.state, os.path.exists(path))\n" + KNOCK + "print(b'hello' in greeting)\n"
    )
    assert start_agent_in(tmp_path, program_after=after).output.splitlines() == ["True closed True", "True"]


def test_a_programs_own_lu_payloads_from_before_the_door_is_started_as_before(tmp_path):
    """The program imported a lu_payloads of its own that has no door (an older lu): the injection starts
    its agent with its start(), as injections did then."""
    before = (
        "import sys, threading, types\n"
        "own = types.ModuleType('lu_payloads')\n"
        "own.running = lambda: False\n"
        "own.start = lambda: '/its/own/agent.sock'\n"
        "sys.modules['lu_payloads'] = own\n"
    )
    status = start_agent_in(tmp_path, program_before=before).status
    assert status["ok"] is True and status["socket"] == "/its/own/agent.sock", status


def test_a_first_client_that_vanishes_mid_load_leaves_the_agent_loaded_and_serving(tmp_path):
    """lu killed while the door's thread loads the agent for it: the load finishes, the agent drops the dead
    connection, and the next client is greeted."""
    after = (
        "import socket, sys\n"
        "gone = socket.socket(socket.AF_UNIX)\n"
        "gone.connect(sys.modules['lu_payloads.door'].current().path)\n"
        "path = sys.modules['lu_payloads.door'].current().path\n"
        "gone.close()\n"
        + LOADED
        + KNOCK_AT % "path"
        + "print(b'hello' in greeting, sys.modules['lu_payloads'].running())\n"
    )
    assert start_agent_in(tmp_path, program_after=after).output == "True True"
