"""lu_cli.output: what lu prints, with every terminal control character a target could send escaped."""

from __future__ import annotations

import pytest

from lu_cli.output import echo, print_table, printable


@pytest.mark.parametrize(
    "text, shown",
    [
        ("plain text", "plain text"),
        ("\x1b[31mred\x1b[0m", "\\x1b[31mred\\x1b[0m"),
        ("\x00\x07\x08", "\\x00\\x07\\x08"),
        ("carriage\rreturn", "carriage\\x0dreturn"),
        ("\x0b\x0c\x1f", "\\x0b\\x0c\\x1f"),
        ("del\x7f", "del\\x7f"),
        ("\x80\x85\x9b\x9f", "\\x80\\x85\\x9b\\x9f"),  # C1: NEL, CSI, ...
        ("two\nlines\tand a tab", "two\nlines\tand a tab"),  # kept
        (" ~\xa0caf\u00e9 \u65e5\u672c", " ~\xa0caf\u00e9 \u65e5\u672c"),  # just outside the ranges, and beyond
        ("admin\u202egnp.exe", "admin\\u202egnp.exe"),  # a right-to-left override
        ("\u2066x\u2069 \u200e\u200f\u061c", "\\u2066x\\u2069 \\u200e\\u200f\\u061c"),  # isolates, marks
        ("line\u2028separator\u2029", "line\\u2028separator\\u2029"),
    ],
)
def test_printable(text, shown):
    assert printable(text) == shown


@pytest.mark.parametrize(
    "text, shown",
    [
        ("two\nlines", "two\\x0alines"),
        ("a\tb", "a\\x09b"),
        ("\x1b]0;title\x07", "\\x1b]0;title\\x07"),
        ("caf\u00e9", "caf\u00e9"),
    ],
)
def test_printable_on_one_line(text, shown):
    assert printable(text, one_line=True) == shown


def test_echo_escapes(capsys):
    echo("\x1b[2Jgone\nnext")
    echo(42, err=True)
    captured = capsys.readouterr()
    assert captured.out == "\\x1b[2Jgone\nnext\n"
    assert captured.err == "42\n"


def test_print_table_escapes_and_aligns_cells(capsys):
    print_table(
        ["PID", "NAME", "COMMAND"],
        [
            [1, "a\x1bb", "run\nfake line"],
            [22, None, "x"],
        ],
    )
    assert capsys.readouterr().out.splitlines() == [
        "PID  NAME    COMMAND",
        "1    a\\x1bb  run\\x0afake line",  # widths count the escaped text; one row, one line
        "22           x",
    ]


def test_print_table_cuts_the_last_column(capsys):
    print_table(["ID", "WHAT"], [[7, "abcdefghij"], [8, "abcdef"]], max_last=6)
    assert capsys.readouterr().out.splitlines() == ["ID  WHAT", "7   abc...", "8   abcdef"]


def test_print_table_without_rows(capsys):
    print_table(["PID", "USER"], [])
    assert capsys.readouterr().out == "PID  USER\n"


def test_a_session_names_its_first_functions_and_counts_the_rest():
    from lu_cli.tool_session import NAMES_SHOWN, names_of

    assert names_of(["m.f"]) == "m.f"
    many = ["m.f%d" % n for n in range(NAMES_SHOWN + 2)]
    assert names_of(many) == ", ".join(many[:NAMES_SHOWN]) + " and 2 more"
