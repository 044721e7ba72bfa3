"""Completion in the controller: what is completed, and how readline's word is replaced, strings kept open."""

from __future__ import annotations

from typing import Any, Dict, List

import pytest

from lu_attach.completion import Completion, complete, editor_words, open_string, target
from lu_cli.controller import COMPLETER_DELIMS


@pytest.mark.parametrize(
    "line, start",
    [
        ("x = 1", None),
        ("'", 1),
        ("f('abc", 3),
        ('f("a.b', 3),
        ("f('done') + g('x", 15),
        ("'it''s", 5),  # two strings side by side, the second still open
        ('"a\\"b', 1),  # an escaped quote does not close it
        ("r'a\\'b", 2),  # nor in a raw string
        ('"a\\\\"', None),  # an escaped backslash, then the closing quote
        ("'''one ' two", 3),  # a triple-quoted string goes on past a single quote
        ("'''done''' + 'x", 14),
        ("x = 1  # it's", None),  # a quote in a comment opens nothing
        ("'#' + 'a", 7),
        ('"it\'s', 1),
    ],
)
def test_open_string_finds_where_the_open_string_text_starts(line, start):
    assert open_string(line) == start


@pytest.mark.parametrize(
    "line, wanted",
    [
        ("FuncProfiler.profile(['shoplib.pr", (23, "shoplib.pr", "module_path")),
        ('LU.revert("', (11, "", "module_path")),
        ("x = 'shoplib.Ca", (5, "shoplib.Ca", "module_path")),
        ("FuncProfiler.profile(['a.b', 'shop", (30, "shop", "module_path")),
        ("print('hello wor", None),  # prose in a string is not a module path
        ("os.pa", (0, "os.pa", "name")),
        ("x = os.path.jo", (4, "os.path.jo", "name")),
        ("LU.", (0, "LU.", "name")),
        ("f(x, ", None),
        ("", None),
        ("'done'.up", (7, "up", "name")),
    ],
)
def test_target_says_what_ends_the_line(line, wanted):
    assert target(line) == wanted


def test_quotes_are_not_readline_delimiters():
    """A word that starts at a quote would make GNU readline close the string after a unique match."""
    assert "'" not in COMPLETER_DELIMS and '"' not in COMPLETER_DELIMS
    assert "[" in COMPLETER_DELIMS and "(" in COMPLETER_DELIMS and "." not in COMPLETER_DELIMS


@pytest.mark.parametrize(
    "line, word, start, candidates, words",
    [
        # Inside a string readline's word starts at the quote: the quote stays, nothing is added after the name.
        (
            "FuncProfiler.profile(['shoplib.pr",
            "'shoplib.pr",
            23,
            ["shoplib.price", "shoplib.pricing"],
            ["'shoplib.price", "'shoplib.pricing"],
        ),
        ('LU.revert("', '"', 11, ["os", "sys"], ['"os', '"sys']),
        ("x = 'shoplib.Ca", "'shoplib.Ca", 5, ["shoplib.Cart"], ["'shoplib.Cart"]),
        # Outside strings the word and the completed span agree.
        ("x = os.pa", "os.pa", 4, ["os.path", "os.pardir"], ["os.path", "os.pardir"]),
        # readline's word may be only the tail of the span (after a delimiter it has and Python names lack).
        ("f('a.b", "a.b", 3, ["a.b", "a.bc"], ["a.b", "a.bc"]),
        ("'done'.up", "'done'.up", 7, ["upper"], ["'done'.upper"]),
        # A candidate that would change what comes before readline's word is dropped.
        ("x = 'ab", "ab", 5, ["abc", "zz"], ["abc", "zz"]),
    ],
)
def test_editor_words_replace_only_readline_word(line, word, start, candidates, words):
    assert line.endswith(word)
    assert editor_words(line, word, Completion(start, candidates)) == words
    for replaced in words:  # the whole line after completion: the string is still open where it was
        after = line[: len(line) - len(word)] + replaced
        assert (open_string(after) is None) == (open_string(line) is None)


def test_editor_words_drop_a_candidate_that_changes_text_before_the_word():
    assert editor_words("a.b*c.d", "c.d", Completion(0, ["a.b*c.de", "x.y"])) == ["c.de"]


class FakeClient:
    def __init__(self, answers: Dict[str, List[str]]) -> None:
        self.answers = answers
        self.asked: List[Dict[str, Any]] = []

    def request(self, op: str, timeout: Any = None, **args: Any) -> List[str]:
        self.asked.append(dict(args, op=op, timeout=timeout))
        return self.answers[args["kind"]]


def test_complete_asks_for_module_paths_inside_a_string():
    client = FakeClient({"module_path": ["shoplib.price", "shoplib.pricing"]})
    found = complete(client, "FuncProfiler.profile(['shoplib.pr", timeout=5.0)  # type: ignore[arg-type]
    assert found == Completion(23, ["shoplib.price", "shoplib.pricing"])
    assert client.asked == [{"op": "complete", "text": "shoplib.pr", "kind": "module_path", "timeout": 5.0}]


def test_complete_asks_for_names_outside_strings_and_adds_keywords():
    client = FakeClient({"name": ["import_it"]})
    found = complete(client, "x = im")  # type: ignore[arg-type]
    assert found.start == 4
    assert "import" in found.candidates and "import_it" in found.candidates
    dotted = complete(FakeClient({"name": ["path"]}), "os.pa")  # type: ignore[arg-type]
    assert dotted == Completion(0, ["os.path"])


def test_complete_asks_nothing_for_a_string_that_is_not_a_pattern():
    client = FakeClient({})
    assert complete(client, "print('hello wor").candidates == []  # type: ignore[arg-type]
    assert client.asked == []
