"""--log-level on the long-running commands: a level by name, one line and exit 2 otherwise."""

from __future__ import annotations

import pytest

from bot.cli.main import build_parser, main


@pytest.mark.parametrize("command", ["worker", "beat", "serve"])
def test_log_level_by_name_with_celerys_spelling_kept(command):
    assert build_parser().parse_args([command, "--log-level", "DEBUG"]).log_level == "debug"
    assert build_parser().parse_args([command, "--loglevel", "warning"]).log_level == "warning"
    assert build_parser().parse_args([command]).log_level is None  # TRAINOPS_LOG_LEVEL


def test_a_bad_log_level_is_one_line_and_exit_2(capsys):
    with pytest.raises(SystemExit) as exit_:
        main(["worker", "--log-level", "loud"])
    assert exit_.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith("trainops: argument --log-level/--loglevel: invalid choice: 'loud'")
