"""Content digests of source files and texts, without loading OpenSSL into the program.

`hashlib` loads its OpenSSL backend first: a dlopen of libcrypto that holds the
GIL for about 5 ms (measured on Debian's 3.14), during which every thread of
the program waits. The interpreter's own SHA-1 (`_sha1`, built in or a small
module of the standard library's) gives the same digest with nothing to load.
lu compares versions of a file with these digests; nothing depends on their
being cryptographic.
"""

from __future__ import annotations

try:
    from _sha1 import sha1 as _new  # type: ignore[import-not-found]  # (no stubs for the built-in module)
except ImportError:  # an interpreter built without it: hashlib's, whatever backend it has
    from hashlib import sha1 as _new


def bytes_digest(data: bytes) -> str:
    """The SHA-1 of `data`, in hex."""
    return str(_new(data).hexdigest())


def text_digest(text: str) -> str:
    """The SHA-1 of `text` as UTF-8 (lone surrogates kept, as a source may hold them), in hex."""
    return bytes_digest(text.encode("utf-8", "surrogatepass"))
