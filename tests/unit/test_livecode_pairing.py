"""Which def of a save is which def of the base, and which statements are new (no process needed)."""

from __future__ import annotations

import textwrap

from lu_payloads.livecode.model import BESIDE_DEFS, MAIN_GUARD, MODULE, FileModel
from lu_payloads.livecode.pairing import pair


def model(text: str) -> FileModel:
    return FileModel("/tmp/m.py", textwrap.dedent(text).lstrip("\n"))


def paired_lines(base_text: str, new_text: str):
    """[(qualname, base def line, new def line)] and the pairing itself."""
    base, new = model(base_text), model(new_text)
    shape = base.shape()
    got = pair(shape, new)
    return [(k[0], shape.defs[k].line, d.node.lineno) for k, d in got.pairs], got, shape


OVERLOADS = """
    from typing import overload

    @overload
    def f(x: int) -> int: ...
    @overload
    def f(x: str) -> str: ...
    def f(x):
        return x * 2
"""


def test_an_edited_implementation_stays_paired_with_itself_not_with_a_stub():
    lines, got, _ = paired_lines(OVERLOADS, OVERLOADS.replace("x * 2", "x * 3"))
    assert sorted(lines) == [("f", 4, 4), ("f", 6, 6), ("f", 7, 7)]
    assert not got.added and not got.removed


def test_a_stub_removed_above_an_edited_implementation():
    new = OVERLOADS.replace("    @overload\n    def f(x: str) -> str: ...\n", "").replace("x * 2", "x * 5")
    lines, got, shape = paired_lines(OVERLOADS, new)
    assert sorted(lines) == [("f", 4, 4), ("f", 7, 5)]
    assert [shape.defs[k].line for k in got.removed] == [6]


def test_property_accessors_and_dispatch_handlers_pair_by_text():
    text = """
        class Box:
            @property
            def v(self):
                return self._v

            @v.setter
            def v(self, value):
                self._v = value

        @show.register(int)
        def _(x):
            return "int"

        @show.register(list)
        def _(x):
            return "list"
    """
    lines, got, shape = paired_lines(text, text.replace('"list"', '"LIST"').replace("self._v = value", "self._v = 2"))
    assert sorted(lines) == [("Box", 1, 1), ("Box.v", 3, 3), ("Box.v", 7, 7), ("_", 11, 11), ("_", 15, 15)]
    heads = {(k, d.node.lineno): (shape.defs[k].head == d.head) for k, d in got.pairs}
    assert all(heads.values())  # no "decorators changed" for any of them


def test_a_renamed_argument_keeps_the_pair_through_the_body():
    text = """
        @register
        def _(x: int):
            return x

        @register
        def _(y: str):
            return y + "!"
    """
    new = text.replace("def _(y: str):\n            return y", "def _(z: str):\n            return z")
    lines, _got, _ = paired_lines(text, new)
    assert sorted(lines) == [("_", 2, 2), ("_", 6, 6)]


def test_a_statement_moved_into_a_class_is_new_there():
    _, got, _ = paired_lines("LIMIT = 5\n\nclass K:\n    pass\n", "class K:\n    LIMIT = 5\n")
    assert [(s.scope, s.node.lineno) for s in got.new_statements] == [("K", 2)]


def test_changed_statements_are_new_in_their_scope_and_the_same_ones_are_not():
    base = "A = 1\nB = 2\n\nclass K:\n    C = 3\n    D = 4\n"
    _, got, _ = paired_lines(base, base.replace("B = 2", "B = 20").replace("D = 4", "D = 40"))
    assert [(s.scope, s.node.lineno) for s in got.new_statements] == [(MODULE, 2), ("K", 6)]


def test_statements_that_are_never_run_alone_say_why():
    m = model(
        """
        import sys
        try:
            import fast
        except ImportError:
            def fast():
                pass
        if __name__ == "__main__":
            main()
        """
    )
    held = {s.node.lineno: s.held for s in m.statements}
    assert held[1] == ""
    assert held[3] == BESIDE_DEFS
    assert held[7] == MAIN_GUARD


def test_a_def_is_known_by_the_code_it_compiled_to():
    m = model(OVERLOADS)
    shape = m.shape()
    impl = next(d for d in m.defs if d.node.lineno == 7)
    assert shape.def_of(m.code_of(impl)) == impl.key == ("f", 2)


def test_a_saved_file_is_read_in_the_encoding_its_coding_line_names():
    import pytest

    from lu_attach.errors import LuAttachError
    from lu_attach.watch import source_text

    latin = "# -*- coding: latin-1 -*-\nCAFE = 'caf\u00e9'\n".encode("latin-1")
    assert "caf\u00e9" in source_text(latin, "/x/m.py")
    with pytest.raises(LuAttachError, match=r"^m.py cannot be read as Python source .*nothing applied$"):
        source_text(b"CAFE = 'caf\xe9'\n", "/x/m.py")  # no coding line: UTF-8, and this is not
