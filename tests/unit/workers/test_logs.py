"""One logging set-up for the long-running processes: our story lines at the chosen level, the
libraries' INFO chatter dropped, their warnings kept. Real libraries log here, not stand-ins."""

from __future__ import annotations

import io
import logging

import pytest

from schemas.errors import UserError
from workers.logs import CELERY_KEPT, CHATTY, level_of, setup_logging
from workers.state.records import story_line


@pytest.fixture
def captured():
    root = logging.getLogger()
    saved = (root.level, list(root.handlers),
             {n: logging.getLogger(n).level for n in (*CHATTY, *CELERY_KEPT)})
    stream = io.StringIO()
    yield stream
    for handler in list(root.handlers):
        if handler not in saved[1]:
            root.removeHandler(handler)
    root.setLevel(saved[0])
    for name, level in saved[2].items():
        logging.getLogger(name).setLevel(level)


def test_library_chatter_is_dropped_and_our_lines_kept(captured, monkeypatch, tmp_path):
    import boto3

    from schemas.db.database import upgrade

    setup_logging("info", captured)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIDEXAMPLE")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "secret")
    assert boto3.Session(region_name="us-east-1").get_credentials() is not None  # botocore INFO
    upgrade(f"sqlite:///{tmp_path}/t.db")  # alembic INFO: context impl, running upgrade ...
    logging.getLogger("urllib3.connectionpool").info("Starting new HTTPS connection (1)")
    logging.getLogger("botocore.credentials").warning("a library's warning still shows")
    logging.getLogger("trainops.jobs").info(story_line("j-4f2a9c", 2, "launched",
                                                       "launched i-0ab: g5.xlarge spot"))
    text = captured.getvalue()
    assert "Found credentials" not in text and "alembic" not in text and "urllib3" not in text
    assert "a library's warning still shows" in text
    assert "trainops.jobs: j-4f2a9c attempt 2: launched i-0ab: g5.xlarge spot" in text
    assert len(text.splitlines()) == 2, text


def test_debug_shows_everything_and_setting_up_twice_adds_no_handler(captured):
    setup_logging("debug", captured)
    setup_logging("debug", captured)
    logging.getLogger("botocore.credentials").info("Found credentials in environment variables.")
    assert captured.getvalue().count("Found credentials") == 1


def test_log_levels_by_name_and_a_bad_one_in_one_line():
    assert level_of("info") == logging.INFO and level_of("WARNING") == logging.WARNING
    assert level_of(10) == logging.DEBUG
    with pytest.raises(UserError, match="log level 'loud': use one of debug, info, warning"):
        level_of("loud")


@pytest.mark.parametrize("attempt, kind, message, line", [
    (2, "launched", "launched i-1: g5.xlarge spot in us-east-1a at $0.4012/h",
     "j-1 attempt 2: launched i-1: g5.xlarge spot in us-east-1a at $0.4012/h"),
    (1, "provisioning", "attempt 1: finding a machine", "j-1 attempt 1: provisioning: finding a machine"),
    (None, "quoted", "", "j-1: quoted"),
    (3, "cap_reached", "spent $5", "j-1 attempt 3: cap reached: spent $5"),
])
def test_story_lines_name_the_job_the_attempt_and_what_happened(attempt, kind, message, line):
    assert story_line("j-1", attempt, kind, message) == line
