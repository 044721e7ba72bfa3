"""The target interpreters the suite runs against.

Every CPython 3.8-3.13 that pyenv has on the machine (shared-libpython builds)
plus the distribution's /usr/bin/python3 (libpython linked statically). A
version that is missing becomes a skipped parameter with a reason that says
so, never a silent omission.
"""

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
