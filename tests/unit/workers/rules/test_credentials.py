"""When per-job credentials are renewed, and the STS session name that labels them."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from workers.rules.credentials import RENEW_BEFORE, renewal_due, session_name

NOW = datetime(2026, 12, 5, 12, 0, tzinfo=UTC)


@pytest.mark.parametrize("left, due", [
    (timedelta(hours=1), False), (RENEW_BEFORE + timedelta(seconds=1), False),
    (RENEW_BEFORE, True), (timedelta(minutes=5), True), (timedelta(minutes=-5), True)])
def test_credentials_are_renewed_twenty_minutes_before_they_lapse(left, due):
    assert renewal_due(NOW + left, NOW) is due


def test_credentials_this_process_never_issued_are_renewed_at_once():
    assert renewal_due(None, NOW)


def test_renewal_comes_before_botocores_own_refresh_on_the_machine():
    # botocore re-reads at 15 minutes left (advisory) and insists at 10 (mandatory).
    assert RENEW_BEFORE > timedelta(minutes=15)


def test_the_session_name_names_the_job_and_attempt_within_stss_limits():
    assert session_name("j-4f2a9c", 3) == "trainops-j-4f2a9c-3"
    odd = session_name("j/x y" + "z" * 80, 12)
    assert len(odd) == 64 and set(odd) <= set(
        "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789+=,.@_-")
