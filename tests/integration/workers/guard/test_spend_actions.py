"""The spend actions as services (no worker): who may do what, what each changes, and
`/train resume` quoting the work left and starting from the old job's checkpoint."""

from __future__ import annotations

import json
from decimal import Decimal

import pytest
import sqlalchemy as sa

from schemas.checkpoints import manifested_steps
from schemas.config import load_config
from schemas.db.tables import Job, MeasuredRun
from schemas.errors import UserError
from schemas.job import Progress
from schemas.settings import get_settings
from schemas.status import JobStatus
from schemas.store import job_prefix, open_store, write_model
from tests.support.factories import quote
from training.agent.sync import seed_from, upload_dir
from workers.monitor import control
from workers.rules.cards import ProgressCard, WarningCard, bar, default_extend_by
from workers.state import jobs, spend_actions
from workers.state.measured import measured_calibration, quote_measured

S = JobStatus
APPROVERS = frozenset({"UAPP"})


def _job(db, status: S, **fields) -> str:
    job_id = jobs.open_job(db, quote(budget=20.0, cap=25.0), "UREQ", provider="local")
    with db.session() as s:
        s.exec(sa.update(Job).where(Job.id == job_id).values(status=status.value, **fields))
    return job_id


def _checkpoint(store, job_id: str, step: int, tmp_path) -> None:
    local = tmp_path / f"ck-{job_id}-{step}"
    local.mkdir()
    (local / "weights.safetensors").write_bytes(b"w" * 10)
    upload_dir(store, f"{job_prefix(job_id)}/checkpoints/step-{step}", local, step,
               {"spec_hash": "h"})


def test_only_approvers_extend_and_the_warning_is_rearmed(runner_env, db):
    job_id = _job(db, S.running, warned_at_cap=Decimal(25))
    out = spend_actions.extend_cap(db, job_id, "UREQ", Decimal(5), APPROVERS)
    assert not out.ok and "approver" in out.message
    assert not spend_actions.extend_cap(db, job_id, "UAPP", Decimal(0), APPROVERS).ok
    out = spend_actions.extend_cap(db, job_id, "UAPP", Decimal(5), APPROVERS)
    assert out.ok and out.job.cap_usd == 30.0 and out.job.warned_at_cap is None
    assert control.read_control(open_store(get_settings().store), job_id).cap_usd == 30.0
    assert out.job.events[-1]["kind"] == "cap_extended" and out.job.events[-1]["actor"] == "UAPP"
    ended = _job(db, S.succeeded)
    assert not spend_actions.extend_cap(db, ended, "UAPP", Decimal(5), APPROVERS).ok


def test_stop_now_and_let_run(runner_env, db):
    job_id = _job(db, S.running)
    assert not spend_actions.stop_now(db, job_id, "UOTHER", APPROVERS).ok
    out = spend_actions.stop_now(db, job_id, "UAPP", APPROVERS)
    assert out.ok and out.job.status == S.stopping and out.job.stop_requested_at is not None
    assert control.read_control(open_store(get_settings().store), job_id).stop is True
    waiting = _job(db, S.interrupted)
    assert spend_actions.stop_now(db, waiting, "UREQ", APPROVERS).job.status == S.cancelled
    out = spend_actions.let_run(db, job_id, "UREQ")
    assert out.ok and "$25.00 cap" in out.message
    assert out.job.events[-1]["kind"] == "let_run"


def test_continue_recovery_needs_a_waiting_job(runner_env, db):
    job_id = _job(db, S.running)
    out = spend_actions.continue_recovery(db, job_id, "UAPP", APPROVERS)
    assert not out.ok and "not waiting" in out.message


def test_resume_quotes_the_work_left_from_the_last_checkpoint(runner_env, db, tmp_path):
    store = open_store(get_settings().store)
    old = _job(db, S.stopped_at_cap, spend_usd=Decimal("24.9"))
    config = load_config(None)
    with pytest.raises(UserError, match="no verified checkpoint"):
        spend_actions.resume(db, old, "UREQ", config=config, settings=get_settings())
    _checkpoint(store, old, 2, tmp_path)
    write_model(store, f"{job_prefix(old)}/progress.json",
                Progress(phase="done", step=3, total_steps=5))
    new_id, q = spend_actions.resume(db, old, "UREQ", budget_delta_usd=Decimal(50),
                                     config=config, settings=get_settings())
    job = jobs.get_job(db, new_id)
    assert job.status == S.awaiting_approval and job.resume_of == old
    assert job.budget_usd == 50.0
    assert any("from checkpoint step 2 of 5" in n for n in q.notes)
    with pytest.raises(UserError, match="only a job stopped"):
        spend_actions.resume(db, new_id, "UREQ", config=config, settings=get_settings())
    # The agent's side: the new job starts from a copy of the old job's checkpoint.
    copied = seed_from(store, job_prefix(new_id), f"{store.uri}/{job_prefix(old)}",
                       tmp_path / "seed")
    assert copied == 2 and manifested_steps(store, job_prefix(new_id)) == [2]
    assert seed_from(store, job_prefix(new_id), f"{store.uri}/{job_prefix(old)}",
                     tmp_path / "seed2") is None  # it has its own now


def test_measured_runs_calibrate_the_next_quote(runner_env, db):
    config = load_config(None)
    request = quote().request.model_copy(update={"model": "Qwen/Qwen2.5-7B-Instruct",
                                                 "params_b": 7.62, "gpu": "a10g"})
    before = quote_measured(request, config, db, live=False)
    job_id = _job(db, S.succeeded)
    with db.session() as s:
        s.add(MeasuredRun(job_id=job_id, gpu="a10g", instance_type="g5.xlarge",
                          params_b=7.62, method="lora", tokens_per_s=900.0))
    assert measured_calibration(db, config).utilisation("a10g", "lora")[1] == "measured (1 run)"
    after = quote_measured(request, config, db, live=False)
    a10g = [o for o in after.options if o.gpu == "A10G"]
    assert a10g and all(o.calibration == "measured (1 run)" for o in a10g)
    assert any("our own finished runs" in n for n in after.notes)
    assert not any("our own finished runs" in n for n in before.notes)


def test_cards():
    assert bar(0.5, 8) == "▓▓▓▓░░░░" and bar(2, 4) == "▓▓▓▓" and bar(-1, 4) == "░░░░"
    assert default_extend_by(Decimal("10")) == Decimal(3)  # 25% rounded up to whole dollars
    assert default_extend_by(Decimal("1")) == Decimal(1)
    from datetime import UTC, datetime
    card = ProgressCard("j-1", 50, 200, 1.5, 1000.0, 300.0, Decimal("4"), Decimal("10"),
                        Decimal("8"), Decimal("12"), "g5.xlarge", "spot", 1, "train",
                        datetime(2026, 1, 1, tzinfo=UTC))
    text = "\n".join(card.lines())
    assert "step 50/200 (25%)" in text and "$4.00 of $10.00" in text and "over the cap" in text
    warning = WarningCard("j-1", "UREQ", Decimal("8"), Decimal("10"), None, "80%")
    assert warning.extend_by_usd == Decimal(3) and "<@UREQ>" in warning.lines()[0]
    assert json.dumps(card.lines())
