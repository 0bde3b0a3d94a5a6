"""control.json (stop, interrupt), a checkpoint of another spec, a store that fails uploads,
and the custom-command path — the agent in-process (run() in a thread), real file store."""

from __future__ import annotations

import sys
import textwrap
import threading

import pytest

from tests.support.agent import Job
from tests.support.stores import FlakyStore
from training.agent import sync
from training.agent.main import run


class Background:
    def __init__(self, job: Job, workdir, **kwargs):
        self.code: int | None = None
        self.thread = threading.Thread(target=self._go, args=(job.uri, workdir), kwargs=kwargs, daemon=True)
        self.thread.start()

    def _go(self, uri, workdir, **kwargs):
        self.code = run(uri, workdir, **kwargs)

    def join(self, timeout: float = 60) -> int | None:
        self.thread.join(timeout)
        return self.code


@pytest.mark.parametrize("control, state, code", [
    ({"stop": True}, "stopped", 4),
    ({"interrupt": True}, "interrupted", 3),  # `trainops interrupt JOB`: the spot-notice path
])
def test_control_json_ends_the_run_with_a_checkpoint(file_store, tmp_path, control, state, code):
    job = Job(file_store, f"j-{state}", epochs=1000, checkpoint_every_steps=10**6)
    agent = Background(job, tmp_path / "work")
    job.wait_training(min_step=2)
    job.control(**control)
    assert agent.join() == code
    status = job.read("status.json")
    assert status["state"] == state and status["step"] >= 2
    assert job.manifests() == [status["step"]] == [status["last_checkpoint_step"]]


def test_resume_refuses_a_checkpoint_of_another_spec(file_store, tmp_path):
    job = Job(file_store, "j-mismatch", max_steps=4, checkpoint_every_steps=2)
    assert run(job.uri, tmp_path / "w1") == 0
    job.write_spec(attempt=2, learning_rate=1e-3)
    assert run(job.uri, tmp_path / "w2") == 2
    error = job.read("status.json")["error"]
    assert job.read("status.json")["state"] == "failed"
    assert "different spec" in error and "learning_rate 0.0002 -> 0.001" in error and "Start a new job" in error


def test_failed_uploads_are_retried_and_logged(file_store, tmp_path, monkeypatch):
    monkeypatch.setattr(sync, "BACKOFF_S", 0.01)
    monkeypatch.setattr(sync, "RETRIES", 2)
    job = Job(file_store, "j-flaky", max_steps=6, checkpoint_every_steps=2)
    flaky = []
    assert run(job.uri, tmp_path / "w", wrap_store=lambda s: flaky.append(FlakyStore(s, 3)) or flaky[0]) == 0
    assert flaky[0].calls > 3 and job.manifests()
    log = job.log()
    assert "injected upload failure 1" in log and "upload failing after 2 tries" in log
    assert job.read("status.json")["state"] == "succeeded"


SCRIPT = textwrap.dedent('''
    import json, os, pathlib, signal, sys, time
    import training
    ckpt = pathlib.Path(os.environ["TRAINOPS_CHECKPOINT_DIR"])
    start = int(os.environ.get("TRAINOPS_RESUME_STEP", "0"))
    if start:
        assert json.loads((ckpt / f"step-{start}" / "state.json").read_text())["step"] == start
    stop = []
    signal.signal(signal.SIGTERM, lambda *a: stop.append(1))
    steps = int(sys.argv[1])
    def save(step):
        tmp = ckpt / f".tmp-{step}"
        tmp.mkdir()
        (tmp / "state.json").write_text(json.dumps({"step": step}))
        tmp.rename(ckpt / f"step-{step}")
    for step in range(start + 1, steps + 1):
        training.report(step=step, loss=10.0 / step, total_steps=steps, tokens=128)
        if step % 3 == 0:
            save(step)
        if stop:
            if step % 3:  # a step of 3 was just saved above: saving it twice would fail
                save(step)
            print("saved on SIGTERM at", step, flush=True)
            sys.exit(0)
        time.sleep(0.05)
    pathlib.Path(os.environ["TRAINOPS_OUTPUT_DIR"], "model.txt").write_text("trained")
    print("done", flush=True)
''')


def _script_job(file_store, tmp_path, job_id, steps, **fields) -> Job:
    script = tmp_path / "train.py"
    script.write_text(SCRIPT)
    return Job(file_store, job_id, command=f"{sys.executable} {script} {steps}", **fields)


def test_custom_command_runs_syncs_and_reports(file_store, tmp_path):
    job = _script_job(file_store, tmp_path, "j-cmd", 7)
    assert run(job.uri, tmp_path / "w") == 0
    status = job.read("status.json")
    assert status["state"] == "succeeded" and status["step"] == 7 and status["final_loss"] == pytest.approx(10 / 7)
    assert job.read("final/MANIFEST.json")["files"][0]["path"] == "model.txt"
    assert job.manifests() == [6]  # step-3 was superseded before it went quiet
    assert job.read("progress.json")["total_steps"] == 7
    assert "done" in job.log()


def test_custom_command_stops_on_control_and_resumes(file_store, tmp_path):
    job = _script_job(file_store, tmp_path, "j-cmd-stop", 10**6, grace_s=10)
    agent = Background(job, tmp_path / "w1")
    job.wait_training(min_step=4)
    job.control(stop=True)
    assert agent.join() == 4
    status = job.read("status.json")
    assert status["state"] == "stopped" and job.manifests()[0] == status["last_checkpoint_step"] >= 4
    assert "saved on SIGTERM" in job.log()
    # The next attempt gets the checkpoint back and TRAINOPS_RESUME_STEP.
    resumed = status["last_checkpoint_step"]
    job.write_spec(attempt=2, command=job.spec.command.rsplit(" ", 1)[0] + f" {resumed + 2}")
    assert run(job.uri, tmp_path / "w2") == 2  # the command is part of the spec: refused
    job.write_spec(command=job.spec.command.rsplit(" ", 1)[0] + f" {10**6}")
    job.control()  # the control plane clears the stop before a relaunch
    agent = Background(job, tmp_path / "w3")
    job.wait_training(min_step=resumed + 1)
    job.control(interrupt=True)
    assert agent.join() == 3 and job.read("status.json")["state"] == "interrupted"


def test_failing_command_reports_its_tail(file_store, tmp_path):
    job = Job(file_store, "j-cmd-fail", command=f"{sys.executable} -c \"import sys; print('boom here'); sys.exit(7)\"")
    assert run(job.uri, tmp_path / "w") == 1
    status = job.read("status.json")
    assert status["state"] == "failed" and "exited with 7" in status["error"] and "boom here" in status["error"]


def test_full_fine_tuning_with_gradient_checkpointing(file_store, tmp_path):
    job = Job(file_store, "j-full", method="full", gradient_checkpointing=True, max_steps=3)
    assert run(job.uri, tmp_path / "w") == 0
    files = {f["path"] for f in job.read("final/MANIFEST.json")["files"]}
    assert "model.safetensors" in files and "config.json" in files


def test_qlora_without_a_gpu_is_a_clear_error(file_store, tmp_path):
    job = Job(file_store, "j-qlora", method="qlora", max_steps=2)
    assert run(job.uri, tmp_path / "w") == 2
    assert "method=qlora needs a CUDA GPU" in job.read("status.json")["error"]
