"""`trainops train | status | cancel | interrupt`, in-process through bot.cli.main.main."""

from __future__ import annotations

import json

import pytest

from bot.cli.main import main
from schemas.job import Control
from schemas.status import JobStatus
from schemas.store import open_store, read_model
from tests.support.factories import quote
from tests.support.runner import wait_for
from workers.state import jobs

S = JobStatus


def _one_line_error(capsys, code):
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1 and "Traceback" not in err, err
    return err


def test_unknown_job_ids_are_one_line(runner_env, capsys):
    for argv in (["status", "j-nope00"], ["cancel", "j-nope00"], ["interrupt", "j-nope00"]):
        assert "no job 'j-nope00'" in _one_line_error(capsys, main(argv))


def test_a_broker_that_is_down_writes_nothing(runner_env, db, monkeypatch, capsys):
    monkeypatch.setenv("TRAINOPS_BROKER_URL", "redis://127.0.0.1:1/0")
    runner_env.cache_clear()
    err = _one_line_error(capsys, main(["train", "sft smoke model=tiny", "--yes", "--detach"]))
    assert "cannot reach the broker at redis://127.0.0.1:1/0" in err
    assert jobs.list_jobs(db) == []


def test_a_bad_provider_is_one_line(runner_env, monkeypatch, capsys):
    monkeypatch.setenv("TRAINOPS_PROVIDER", "gcp")
    runner_env.cache_clear()
    err = _one_line_error(capsys, main(["status"]))
    assert "TRAINOPS_PROVIDER" in err and "'local' or 'aws'" in err
    with pytest.raises(SystemExit) as exit_:
        main(["train", "sft smoke", "--provider", "gcp"])
    assert exit_.value.code == 2


def test_train_detach_then_status_json(runner_env, worker, db, capsys):
    assert main(["train", "sft smoke model=tiny", "--yes", "--detach", "--json"]) == 0
    job_id = json.loads(capsys.readouterr().out)["job_id"]
    wait_for(lambda: jobs.get_job(db, job_id).status != S.approved)
    wait_for(lambda: jobs.get_job(db, job_id).status != S.provisioning)
    capsys.readouterr()  # the worker thread's console notifications share this stdout
    assert main(["status", "--json"]) == 0
    [row] = json.loads(capsys.readouterr().out)
    assert row["job_id"] == job_id and set(row) == {
        "job_id", "status", "requester", "budget_usd", "cap_usd", "spend_usd"}
    assert main(["status", job_id, "--json"]) == 0
    one = json.loads(capsys.readouterr().out)
    assert one["events"][0]["kind"] == "quoted"
    assert {"kind", "actor", "message", "at"} <= set(one["events"][0])
    assert main(["cancel", job_id]) == 0
    assert main(["cancel", job_id]) == 0  # idempotent
    assert jobs.get_job(db, job_id).status in (S.cancelled, S.succeeded)


def test_interrupt_writes_the_flag_into_control_json(runner_env, db, capsys):
    job_id = jobs.open_job(db, quote(), "UREQ")
    assert "only a running job" in _one_line_error(capsys, main(["interrupt", job_id]))
    from sqlalchemy import update

    from schemas.db.tables import Job

    with db.session() as s:
        s.exec(update(Job).where(Job.id == job_id).values(status=S.running.value))
    assert main(["interrupt", job_id]) == 0
    store = open_store(runner_env().store)
    assert read_model(store, f"jobs/{job_id}/control.json", Control).interrupt is True
