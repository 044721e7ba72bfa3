"""`lu --help` lists every command with a whole sentence, and `lu profile --help` says what patterns mean."""

from __future__ import annotations

from click.testing import CliRunner

from lu_cli.main import cli


def test_every_command_has_a_whole_sentence_in_the_list():
    out = CliRunner().invoke(cli, ["--help"]).output
    listed = out.split("Commands:", 1)[1]
    assert "..." not in listed, listed
    for name, command in cli.commands.items():
        short = command.get_short_help_str(200)
        assert short and short[0].isupper() and short.endswith("."), (name, short)


def test_profile_help_explains_the_patterns():
    out = CliRunner().invoke(cli, ["profile", "--help"]).output
    for fragment in ("shop.views.*", "shop.**", "__main__.**", "every loaded submodule"):
        assert fragment in out, fragment
