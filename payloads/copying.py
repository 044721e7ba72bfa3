"""lu's package copied into the agent's own directory, the first time an injection of this lu needs it.

The bootstrap runs this file's code (read from lu's stage, compiled there)
only when the copy is missing: the bootstrap itself is compiled in the
target on every injection, holding the GIL, and this is most injections'
dead weight. In the copy, the agent's bytecode can be written.

With `os` alone: shutil would import a dozen modules into the program, 30 ms
holding the GIL where the standard library has no bytecode to import them
from. No `from __future__ import annotations` either (it would import
__future__ before lu can serve its bytecode).
"""

import os


def _unreadable(error: OSError) -> None:
    raise error  # lu's package cannot be read: say why, copy nothing


def copy_package(source: str, final: str, nonce: str) -> None:
    """Copy the package at `source` to `final`/lu_payloads, each file with its mode (masked to 0o755),
    through a temporary tree named by the injection's nonce and renamed into place. If another injection's
    copy got there first, this one's is removed."""
    tmp = final + "." + nonce + ".tmp"
    for where, _dirs, files in os.walk(source, onerror=_unreadable):
        into = tmp + "/lu_payloads" + where[len(source) :]
        os.makedirs(into)
        for name in files:
            with open(where + "/" + name, "rb") as handle:
                data, mode = handle.read(), os.fstat(handle.fileno()).st_mode & 0o755
            fd = os.open(into + "/" + name, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
            with os.fdopen(fd, "wb") as out:
                out.write(data)
    try:
        os.rename(tmp, final)
    except OSError:  # another injection copied it first
        for where, _dirs, files in os.walk(tmp, topdown=False):
            for name in files:
                os.unlink(where + "/" + name)
            os.rmdir(where)
