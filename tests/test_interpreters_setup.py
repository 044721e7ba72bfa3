"""The interpreters scripts/pythons.sh makes (interpreters.NEW) are what their ids say.

Each present one runs from its own prefix, is the expected version and build
(free-threaded, shared libpython or static) and has the modules targets use.
Debian's static python3.14 reports Py_ENABLE_SHARED = 1 too (its sysconfig
data comes from the shared build), so the mapped files are what tell them apart.
"""

import functools
import json
import os
import subprocess

import pytest
from interpreters import FREE_THREADED, NEW, NEW_INTERPRETERS, PYTHONS

PROBE = r"""
import json, sys, sysconfig

def works(check):
    try:
        check()
        return "ok"
    except Exception as e:
        return repr(e)

def check_ssl():
    import ssl
    ssl.create_default_context()

def check_ctypes():
    import ctypes
    assert ctypes.CDLL(None).getpid() > 0

def check_sqlite3():
    import sqlite3
    assert sqlite3.connect(":memory:").execute("select 1").fetchone() == (1,)

def check_asyncio():
    import asyncio
    asyncio.run(asyncio.sleep(0))

def check_threading():
    import threading
    done = []
    thread = threading.Thread(target=done.append, args=(1,))
    thread.start()
    thread.join()
    assert done == [1]

modules = {name[len("check_"):]: works(check) for name, check in list(globals().items()) if name.startswith("check_")}
with open("/proc/self/maps") as f:
    mapped = sorted({line.split()[-1] for line in f if "libpython" in line})
gil_enabled = getattr(sys, "_is_gil_enabled", lambda: True)()
print(json.dumps({
    "version": "%d.%d" % sys.version_info[:2],
    "prefix": sys.prefix,
    "path": [p for p in sys.path if p],
    "gil_disabled": sysconfig.get_config_var("Py_GIL_DISABLED"),
    "enable_shared": sysconfig.get_config_var("Py_ENABLE_SHARED"),
    "libpython": mapped,
    "gil_enabled": gil_enabled,
    "modules": modules,
    "remote_exec": hasattr(sys, "remote_exec"),
}))
"""

EXPECTED_VERSION = {
    "debian-3.14": "3.14",
    "debian-3.15": "3.15",
    "shared-3.14": "3.14",
    "ft-3.13t": "3.13",
    "ft-3.14t": "3.14",
    "ft-3.15t": "3.15",
}

# Each of NEW with its id as a second value, for the expectations.
PARAMS = [pytest.param(p.values[0], p.id, id=p.id, marks=p.marks) for p in NEW]


@functools.lru_cache(maxsize=None)
def probe(python):
    out = subprocess.run([python, "-I", "-c", PROBE], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout)


def test_new_has_the_six_ids():
    assert [p.id for p in NEW] == list(EXPECTED_VERSION)


def test_an_interpreter_not_made_is_skipped_saying_why():
    for param in NEW:
        if param.values[0] is None:
            (mark,) = [m for m in param.marks if m.name == "skip"]
            directory = os.path.join(PYTHONS, {i: d for i, d, _exe in NEW_INTERPRETERS}[param.id])
            if os.path.exists(directory + ".missing"):  # ./dev test ran: the reason it found is given
                with open(directory + ".missing") as handle:
                    assert handle.read().strip() in mark.kwargs["reason"], mark


@pytest.mark.parametrize("python,ident", PARAMS)
def test_runs_from_its_own_prefix(python, ident):
    info = probe(python)
    assert info["version"] == EXPECTED_VERSION[ident]
    home = os.path.join(PYTHONS, os.path.relpath(python, PYTHONS).split(os.sep)[0])
    inside = [info["prefix"], *info["path"]]
    assert all(p == home or p.startswith(home + os.sep) for p in inside), inside


@pytest.mark.parametrize("python,ident", PARAMS)
def test_modules_targets_use_work(python, ident):
    assert probe(python)["modules"] == dict.fromkeys(["ssl", "ctypes", "sqlite3", "asyncio", "threading"], "ok")


@pytest.mark.parametrize("python,ident", PARAMS)
def test_free_threaded_only_for_313t(python, ident):
    info = probe(python)
    if ident in FREE_THREADED:
        assert info["gil_disabled"] == 1
        assert info["gil_enabled"] is False  # not turned back on by an extension module imported above
    else:
        assert info["gil_disabled"] != 1
        assert info["gil_enabled"] is True


@pytest.mark.parametrize("python,ident", PARAMS)
def test_libpython_shared_only_for_shared_314(python, ident):
    info = probe(python)
    if ident == "shared-3.14":
        assert info["enable_shared"] == 1
        assert any(os.path.basename(f).startswith("libpython3.14.so") for f in info["libpython"]), info["libpython"]
    else:
        assert info["libpython"] == []


@pytest.mark.parametrize("python,ident", PARAMS)
def test_remote_exec_from_314(python, ident):
    assert probe(python)["remote_exec"] == (EXPECTED_VERSION[ident] in ("3.14", "3.15"))
