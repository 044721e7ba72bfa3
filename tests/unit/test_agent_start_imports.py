"""What starting the agent loads into the program.

Loading an extension module is one call that holds the GIL, and OpenSSL's is
the longest (a dlopen of libcrypto: about 5 ms on Debian's 3.14, every thread
of the program waiting). The agent's request table imports everything the
agent serves; none of it may need OpenSSL, nor logging (whose fork hook
takes a lock the load would then wait for, see livecode/logs.py).
"""

from __future__ import annotations

import os
import subprocess
import sys

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
OPENSSL = ("_hashlib", "_hmac", "_ssl", "hashlib", "hmac", "secrets", "ssl")


def test_the_agent_and_everything_it_serves_load_no_openssl():
    code = (
        "import importlib, importlib.util, sys\n"
        "spec = importlib.util.spec_from_file_location('lu_payloads', %r, submodule_search_locations=[%r])\n"
        "pkg = importlib.util.module_from_spec(spec); sys.modules['lu_payloads'] = pkg\n"
        "spec.loader.exec_module(pkg)\n"
        "before = set(sys.modules)\n"
        "importlib.import_module('lu_payloads.service')\n"
        "print(sorted(set(sys.modules) - before))\n"
        % (os.path.join(REPO, "payloads", "__init__.py"), os.path.join(REPO, "payloads"))
    )
    result = subprocess.run([sys.executable, "-I", "-c", code], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr[-2000:]
    loaded = eval(result.stdout)
    assert "lu_payloads.requests" in loaded and "lu_payloads.livecode.core" in loaded  # the whole table
    assert [name for name in OPENSSL if name in loaded] == []
    # logging's fork hook takes its lock, which a load that used logging would wait for while the fork
    # waits for the load (door.py): live coding imports it when it first logs (livecode/logs.py)
    assert "logging" not in loaded


def test_the_livecode_digests_are_sha1():
    import hashlib

    from lu_payloads.livecode.digest import bytes_digest, text_digest

    assert bytes_digest(b"def f(): pass\n") == hashlib.sha1(b"def f(): pass\n").hexdigest()
    assert text_digest("x = '\udcff'\n") == hashlib.sha1("x = '\udcff'\n".encode("utf-8", "surrogatepass")).hexdigest()
