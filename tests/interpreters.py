"""The target interpreters the suite runs against.

Every CPython 3.8-3.13 that pyenv has on the machine (shared-libpython builds)
plus the distribution's /usr/bin/python3 (libpython linked statically). A
version that is missing becomes a skipped parameter with a reason that says
so, never a silent omission. That is ALL, what lu supports today.

NEW lists the interpreters lu is being made to support (Debian's 3.14 and
3.15, a shared-libpython 3.14, a free-threaded 3.13) and EVERY is ALL + NEW.
"""

import functools
import glob
import os
import subprocess

import pytest

SUPPORTED = ["3.8", "3.9", "3.10", "3.11", "3.12", "3.13"]
PYENV_ROOT = os.environ.get("PYENV_ROOT", os.path.expanduser("~/.pyenv"))


def _pyenv_python(minor):
    candidates = sorted(glob.glob(os.path.join(PYENV_ROOT, "versions", minor + ".*", "bin", "python" + minor)))
    return candidates[-1] if candidates else None


def _version_of(exe):
    out = subprocess.run(
        [exe, "-c", "import sys; print('%d.%d' % sys.version_info[:2])"], capture_output=True, text=True, timeout=30
    )
    return out.stdout.strip()


def interpreter_params():
    """pytest params: one per supported interpreter, skipped when absent."""
    params = []
    for minor in SUPPORTED:
        exe = _pyenv_python(minor)
        if exe:
            params.append(pytest.param(exe, id="pyenv-" + minor))
        else:
            params.append(
                pytest.param(
                    None,
                    id="pyenv-" + minor,
                    marks=pytest.mark.skip(reason="pyenv has no CPython %s on this machine" % minor),
                )
            )
    system = "/usr/bin/python3"
    if os.path.exists(system) and _version_of(system) in SUPPORTED:
        params.append(pytest.param(system, id="system-" + _version_of(system)))
    else:
        params.append(
            pytest.param(
                None,
                id="system",
                marks=pytest.mark.skip(reason="no supported distribution python3 at /usr/bin/python3"),
            )
        )
    return params


ALL = interpreter_params()


# Interpreters lu is being made to support, made by scripts/pythons.sh (which
# `./dev test` runs) under .cache/pythons: Debian's static 3.14 and 3.15, a
# 3.14 whose main links libpython3.14.so, and a free-threaded 3.13. Each is
# (id, directory, interpreter within it).
PYTHONS = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), ".cache", "pythons")
NEW_INTERPRETERS = [
    ("debian-3.14", "py3.14", "usr/bin/python3.14"),
    ("debian-3.15", "py3.15", "usr/bin/python3.15"),
    ("shared-3.14", "py3.14-shared", "usr/bin/python3.14"),
    ("ft-3.13t", "py3.13t", "bin/python3.13t"),
    ("ft-3.14t", "py3.14t", "bin/python3.14t"),
    ("ft-3.15t", "py3.15t", "bin/python3.15t"),
]
FREE_THREADED = ("ft-3.13t", "ft-3.14t", "ft-3.15t")


def new_interpreter_params():
    """pytest params: one per interpreter of NEW_INTERPRETERS, skipped (saying why) when not made."""
    params = []
    for ident, directory, exe in NEW_INTERPRETERS:
        path = os.path.join(PYTHONS, directory, exe)
        if os.access(path, os.X_OK):
            params.append(pytest.param(path, id=ident))
            continue
        reason = "no %s in .cache/pythons (./dev test makes it)" % os.path.basename(exe)
        try:
            with open(os.path.join(PYTHONS, directory + ".missing")) as f:
                reason += ": " + f.read().strip()
        except OSError:
            pass
        params.append(pytest.param(None, id=ident, marks=pytest.mark.skip(reason=reason)))
    return params


NEW = new_interpreter_params()
EVERY = ALL + NEW
# The new builds with a GIL. Tests run on EVERY interpreter, the free-threaded build included, except
# where it does not apply: PEP 768 needs 3.14.
NEW_GIL = [p for p in NEW if p.id not in FREE_THREADED]


@functools.lru_cache(maxsize=None)
def is_free_threaded(python: str) -> bool:
    """Whether this interpreter is a free-threaded build (its ABI flags say "t")."""
    out = subprocess.run([python, "-c", "import sys; print(sys.abiflags)"], capture_output=True, text=True, timeout=30)
    return "t" in out.stdout
