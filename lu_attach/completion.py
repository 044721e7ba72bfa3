"""Completion for the interactive controller.

The names live in the target, so completion asks the agent: attributes of a
dotted name (looked up statically there, nothing is called), and module paths
inside the string argument of a tool call (`FuncProfiler.profile('shop.Ca`).
jedi adds Python's keywords; the objects themselves are never copied to the
host.
"""

from __future__ import annotations

import keyword
import re
from typing import List

import jedi

from .client import AgentClient

_DOTTED_TAIL = re.compile(r"([A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z_][A-Za-z0-9_]*)*\.?|)$")
_STRING_TAIL = re.compile(r"""['"]([A-Za-z0-9_.*]*)$""")


def _inside_string(line: str) -> bool:
    """True when the cursor (end of line) is inside a string literal."""
    quotes = 0
    quote_char = None
    for char in line:
        if quote_char is None and char in "'\"":
            quote_char = char
            quotes += 1
        elif char == quote_char:
            quote_char = None
    return quote_char is not None


def complete(client: AgentClient, line: str) -> List[str]:
    """Full replacement candidates for the word at the end of line."""
    if _inside_string(line):
        match = _STRING_TAIL.search(line)
        if not match:
            return []
        prefix = match.group(1)
        return client.request("complete", text=prefix, kind="module_path")
    match = _DOTTED_TAIL.search(line)
    text = match.group(1) if match else ""
    if not text:
        return []
    remote = client.request("complete", text=text, kind="name")
    head = text.rsplit(".", 1)[0] + "." if "." in text else ""
    candidates = [head + name for name in remote]
    if not head:
        candidates += [k for k in keyword.kwlist if k.startswith(text)]
        try:
            candidates += [
                c.name
                for c in jedi.Interpreter(text, [{}]).complete()
                if c.type == "keyword" and c.name.startswith(text)
            ]
        except Exception:
            pass
    return sorted(set(candidates))
