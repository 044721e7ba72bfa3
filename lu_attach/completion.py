"""Completion for the interactive controller.

The names live in the target, so completion asks the agent: attributes of a
dotted name (looked up statically there, nothing is called), and module paths
inside the string argument of a tool call (`FuncProfiler.profile('shop.Ca`).
jedi adds Python's keywords; the objects themselves are never copied to the
host.

What is completed is a span at the end of the line (`Completion.start`): a
line editor replaces that span with a candidate and nothing else, so a string
that is open stays open (the quote is left as it was, none is added).
"""

from __future__ import annotations

import keyword
import re
from dataclasses import dataclass, field
from typing import List, Optional, Tuple

from .client import AgentClient

_DOTTED_TAIL = re.compile(r"([A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z_][A-Za-z0-9_]*)*\.?|)$")
_PATH = re.compile(r"[A-Za-z0-9_.]*")  # a dotted pattern being typed as a string's text


@dataclass(frozen=True)
class Completion:
    """Candidates that each replace the line from `start` to its end."""

    start: int
    candidates: List[str] = field(default_factory=list)


def open_string(line: str) -> Optional[int]:
    """Where the text of the string literal open at the end of line begins, or None when none is open.

    Follows Python's rules as far as a line being typed needs: single and
    triple quotes, backslash escapes (a backslash keeps the quote after it
    from closing the string in a raw string too), comments.
    """
    index = 0
    while index < len(line):
        char = line[index]
        if char == "#":
            return None
        if char not in "'\"":
            index += 1
            continue
        quote = char * 3 if line.startswith(char * 3, index) else char
        end = _string_end(line, index + len(quote), quote)
        if end is None:
            return index + len(quote)
        index = end
    return None


def _string_end(line: str, index: int, quote: str) -> Optional[int]:
    """The index just past the quote that closes a string whose text starts at index; None if it stays open."""
    while index < len(line):
        if line[index] == "\\":
            index += 2  # the character after a backslash never closes the string
            continue
        if line.startswith(quote, index):
            return index + len(quote)
        index += 1
    return None


def target(line: str) -> Optional[Tuple[int, str, str]]:
    """What to complete at the end of line: (start, text, kind), kind 'module_path' or 'name'; None for nothing.

    Inside a string whose text so far is a dotted pattern, that text is a
    module path (the argument of a tool call; any other string is not
    completed); elsewhere the dotted name at the end of the line is a
    Python name.
    """
    inside = open_string(line)
    if inside is not None:
        path = _PATH.fullmatch(line, inside)
        return (inside, path.group(0), "module_path") if path else None
    name = _DOTTED_TAIL.search(line)
    if name is None or not name.group(1):
        return None
    return name.start(1), name.group(1), "name"


def complete(client: AgentClient, line: str, timeout: Optional[float] = None) -> Completion:
    """The candidates for what ends the line, each a full replacement of the line from `start`."""
    wanted = target(line)
    if wanted is None:
        return Completion(len(line))
    start, text, kind = wanted
    if kind == "module_path":
        return Completion(start, list(client.request("complete", timeout=timeout, text=text, kind="module_path")))
    remote = client.request("complete", timeout=timeout, text=text, kind="name")
    head = text.rsplit(".", 1)[0] + "." if "." in text else ""
    candidates = [head + name for name in remote]
    if not head:
        candidates += _keywords(text)
    return Completion(start, sorted(set(candidates)))


def _keywords(text: str) -> List[str]:
    """Python's keywords that start with text (jedi knows the soft ones too; imported only when completing)."""
    found = [k for k in keyword.kwlist if k.startswith(text)]
    try:
        import jedi  # lazy: 0.15 s to import; only Tab needs it

        found += [
            c.name for c in jedi.Interpreter(text, [{}]).complete() if c.type == "keyword" and c.name.startswith(text)
        ]
    except Exception:
        pass
    return found


def editor_words(line: str, word: str, completion: Completion) -> List[str]:
    """The candidates as replacements of a line editor's current word (readline's), the last `word` of line.

    The editor splits words at its own delimiters, which need not agree with
    the span completed: its word may start before the span (at an opening
    quote) or inside it (after a '*'). A candidate that would change the line
    before the editor's word is dropped.
    """
    word_start = len(line) - len(word)
    words = []
    for candidate in completion.candidates:
        replaced = line[: completion.start] + candidate
        if replaced[:word_start] == line[:word_start]:
            words.append(replaced[word_start:])
    return words
