"""A repr that cannot hurt the target: bounded in size, and never raising.

Debug tools show values of the application's objects. An object whose
`__repr__` raises, recurses, or returns megabytes must neither break the
application's call nor flood the log: containers are abbreviated (reprlib),
strings cut, and failures shown as `<repr failed: ...>`.
"""

from __future__ import annotations

import reprlib
from typing import Any, Dict, Mapping

MAX_LEN = 500

_repr = reprlib.Repr()
_repr.maxlevel = 3
_repr.maxdict = 10
_repr.maxlist = 10
_repr.maxtuple = 10
_repr.maxset = 10
_repr.maxfrozenset = 10
_repr.maxdeque = 10
_repr.maxarray = 10
_repr.maxlong = 60
_repr.maxstring = 200
_repr.maxother = 200


def safe_repr(value: Any, limit: int = MAX_LEN) -> str:
    try:
        text = _repr.repr(value)
    except Exception as exc:  # a broken __repr__ is the application's business, not ours
        try:
            name = type(value).__name__
        except Exception:
            name = "object"
        return "<%s object; repr failed: %s>" % (name, type(exc).__name__)
    if not isinstance(text, str):
        return "<repr returned %s>" % type(text).__name__
    if len(text) > limit:
        text = text[: limit - 3] + "..."
    return text


def safe_dict(values: Mapping[Any, Any], limit: int = MAX_LEN) -> Dict[str, str]:
    return {str(k): safe_repr(v, limit) for k, v in values.items()}
