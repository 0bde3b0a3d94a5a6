"""The final report's figures and its chart."""

from datetime import UTC, datetime, timedelta
from decimal import Decimal as D

from workers.rules.report import AttemptFacts, Interruption, render_chart, report_text, summarize

T0 = datetime(2026, 11, 1, 12, 0, tzinfo=UTC)


def test_two_attempts_with_an_interruption():
    attempts = [
        AttemptFacts("g5.xlarge", 1, "spot", T0, T0 + timedelta(hours=1), D("1.006")),
        AttemptFacts("g5.12xlarge", 4, "spot", T0 + timedelta(hours=1, minutes=5),
                     T0 + timedelta(hours=2, minutes=5), D("5.672")),
    ]
    r = summarize(
        status="succeeded", started_at=T0, ended_at=T0 + timedelta(hours=2, minutes=5),
        attempts=attempts, spent_usd=D("2.90"), quoted_usd=D("2.50"), tokens=2_000_000,
        final_loss=1.234, output_uri="s3://b/jobs/j/final/",
        interruptions=[Interruption(T0 + timedelta(hours=1), lost_s=120, down_s=300)],
    )
    assert r.instance_hours == 2.0
    assert r.gpu_hours == 5.0
    assert r.on_demand_usd == D("6.68")  # 1.006 + 5.672, rounded to the cent
    assert r.saved_usd == D("3.78")
    assert round(r.diff_pct) == 16
    assert r.usd_per_million_tokens == D("1.4500")
    assert r.interruption_cost_s == 420
    text = report_text(r, "j-1")
    assert "(+16%)" in text and "saved $3.78" in text and "Interruptions: 1" in text
    assert "s3://b/jobs/j/final/" in text


def test_on_demand_is_billed_like_the_meter_and_a_local_job_has_none():
    short = [AttemptFacts("g5.xlarge", 1, "spot", T0, T0 + timedelta(seconds=38), D("1.006"))]
    r = summarize(status="succeeded", started_at=T0, ended_at=T0 + timedelta(seconds=38),
                  attempts=short, spent_usd=D("0.01"), quoted_usd=D("0.01"), tokens=1,
                  final_loss=None, output_uri=None)
    assert r.on_demand_usd == D("0.02")  # 60 s minimum: 1.006 / 60, not 38 s of it
    assert "On-demand would have cost $0.02" in report_text(r, "j-1")
    local = [AttemptFacts("local", 0, "local", T0, T0 + timedelta(seconds=38), D("31.2"))]
    r = summarize(status="succeeded", started_at=T0, ended_at=T0 + timedelta(seconds=38),
                  attempts=local, spent_usd=D("0.52"), quoted_usd=D("0.52"), tokens=1,
                  final_loss=None, output_uri=None)
    assert r.local_only and "On-demand" not in report_text(r, "j-1")


def test_chart_is_a_png(tmp_path):
    loss = [(T0 + timedelta(minutes=i), 3.0 - i * 0.1) for i in range(10)]
    spend = [(T0 + timedelta(minutes=i), i * 0.5) for i in range(10)]
    path = render_chart(tmp_path / "chart.png", loss=loss, spend=spend, cap_usd=5, warn_usd=4,
                        interruptions=[T0 + timedelta(minutes=4)], title="j-1")
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 10_000
