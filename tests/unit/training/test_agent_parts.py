"""The pieces around training, without torch: demo data, encoding and packing, manifests,
uploads that fail, spec mismatch, the IMDS client, control.json and training.report."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pytest

from schemas.job import Control, JobSpec
from schemas.store import FileStore
from tests.support.stores import FlakyStore
from training.agent import sync
from training.agent.runtime import Signals, Tracker
from training.agent.spot import Imds
from training.recipes import data as training_data
from training.recipes.builtin.demo_data import DEMO_PATH, demo_rows, render


def test_bundled_demo_data_is_what_the_generator_makes():
    assert DEMO_PATH.read_text() == render(demo_rows())
    rows = demo_rows()
    assert len(rows) == 400 and any("messages" in r for r in rows) and any("prompt" in r for r in rows)


def test_importing_training_does_not_import_torch():
    code = "import sys, training, training.agent.main; training.report(step=1); print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_report_appends_json_lines(tmp_path, monkeypatch):
    import training

    path = tmp_path / "progress.jsonl"
    monkeypatch.setenv("TRAINOPS_PROGRESS_FILE", str(path))
    training.report(step=3, loss=1.5, tokens=64)
    training.report(step=4, loss=1.25)
    rows = [json.loads(line) for line in path.read_text().splitlines()]
    assert [(r["step"], r["loss"]) for r in rows] == [(3, 1.5), (4, 1.25)] and rows[0]["tokens"] == 64


@pytest.fixture(scope="module")
def tokenizer():
    from training.recipes.builtin.tiny import tiny_tokenizer

    return tiny_tokenizer()


@pytest.mark.parametrize("row, trained", [
    ({"prompt": "What is 2 + 3?", "completion": "2 + 3 = 5."}, "2 + 3 = 5.<|end|>\n"),
    ({"messages": [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi"},
                   {"role": "assistant", "content": "Hello."}, {"role": "user", "content": "Bye"},
                   {"role": "assistant", "content": "Goodbye."}]}, "Hello.<|end|>\nGoodbye.<|end|>\n"),
])
def test_loss_only_on_completions(tokenizer, row, trained):
    ids, labels = training_data.encode(row, tokenizer)
    assert len(ids) == len(labels)
    kept = [t for t, label in zip(ids, labels, strict=True) if label != training_data.IGNORE]
    assert tokenizer.decode(kept) == trained
    assert "<|user|>" in tokenizer.decode(ids)


def test_bad_rows_and_sources_say_what_is_wrong(tokenizer, tmp_path):
    with pytest.raises(training_data.DataError, match="neither prompt"):
        training_data.encode({"text": "x"}, tokenizer, 7)
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"prompt": "a", "completion": "b"}\nnot json\n')
    with pytest.raises(training_data.DataError, match="line 2 is not JSON"):
        training_data.load_rows(str(bad))
    with pytest.raises(training_data.DataError, match="not found"):
        training_data.load_rows(str(tmp_path / "missing.jsonl"))
    # Offline (as every test is): one line naming the dataset and what is valid, not the Hub's
    # traceback.
    with pytest.raises(training_data.DataError, match="'someorg/some-dataset'.*JSONL path"):
        training_data.load_rows("someorg/some-dataset")


def test_prepare_packs_caches_and_orders_by_step(tokenizer, tmp_path):
    spec = JobSpec(job_id="j", store_uri="file:///x", model="tiny", seq_len=64, batch_size=4,
                   max_samples=50, epochs=3)
    packed = training_data.prepare(spec, tokenizer, tmp_path)
    assert len(list(tmp_path.glob("tokens-*.npz"))) == 1
    assert packed.input_ids.shape[1] == 64 and packed.total_steps == -(-len(packed.input_ids) * 3 // 4)
    assert (packed.labels[packed.attention_mask == 0] == training_data.IGNORE).all()
    again = training_data.prepare(spec, tokenizer, tmp_path)  # from the cache
    assert np.array_equal(again.input_ids, packed.input_ids)
    n = len(packed.input_ids)
    seen = np.concatenate([packed.batch(s) for s in range(-(-n // 4))])[:n]
    assert sorted(seen) == list(range(n))  # one epoch visits every sequence once
    assert np.array_equal(packed.batch(5), again.batch(5))
    capped = training_data.prepare(spec.model_copy(update={"max_steps": 3}), tokenizer, tmp_path)
    assert capped.total_steps == 3


# -- checkpoints in the store ------------------------------------------------------------------

def _spec(**changes) -> JobSpec:
    return JobSpec(job_id="j", store_uri="file:///x", model="tiny", **changes)


def _local_checkpoint(root: Path, step: int) -> Path:
    folder = root / f"step-{step}"
    folder.mkdir(parents=True)
    (folder / "weights.bin").write_bytes(bytes([step]) * 100)
    (folder / "sub").mkdir()
    (folder / "sub" / "state.json").write_text(json.dumps({"step": step}))
    return folder


def test_manifest_last_keep_k_and_verified_download(tmp_path):
    store = FileStore(tmp_path / "store")
    for step in (2, 4, 6, 20):
        sync.upload_dir(store, f"jobs/j/checkpoints/step-{step}", _local_checkpoint(tmp_path / "l", step), step,
                        sync.spec_meta(_spec()))
    store.write_bytes("jobs/j/checkpoints/step-3/weights.bin", b"half an upload, no manifest")
    assert sync.manifested_steps(store, "jobs/j") == [20, 6, 4, 2]
    assert sync.prune(store, "jobs/j", keep=2) == [2, 3, 4]
    assert sync.manifested_steps(store, "jobs/j") == [20, 6]
    # The newest is damaged: the reader falls back to the one before it.
    store.write_bytes("jobs/j/checkpoints/step-20/weights.bin", b"bit rot")
    manifest, local = sync.fetch_latest(store, "jobs/j", tmp_path / "dl")
    assert manifest["step"] == 6 and (local / "sub" / "state.json").exists()
    assert {f["path"] for f in manifest["files"]} == {"weights.bin", "sub/state.json"}


def test_a_checkpoint_of_another_spec_is_refused_with_a_hint():
    manifest = {"step": 8, **sync.spec_meta(_spec(learning_rate=1e-4))}
    sync.check_spec(manifest, _spec(learning_rate=1e-4), "store")
    with pytest.raises(sync.SpecMismatch, match=r"learning_rate 0\.0001 -> 0\.0002.*Start a new job"):
        sync.check_spec(manifest, _spec(), "store")



def test_failing_uploads_are_retried_and_reported_in_progress(tmp_path, caplog):
    store = FlakyStore(FileStore(tmp_path / "store"), failures=10**9)
    uploader = sync.Uploader(store, "jobs/j", keep=2, retries=2, backoff_s=0.01, max_backoff_s=0.05)
    tracker = Tracker(1, tmp_path / "metrics.jsonl")
    tracker.uploader = uploader
    uploader.submit(5, _local_checkpoint(tmp_path / "l", 5))
    assert not uploader.wait(timeout=0.5)  # still failing, still trying
    assert store.calls >= 3
    assert "step-5 upload failing after" in tracker.snapshot().upload_error
    assert "injected upload failure" in caplog.text
    store.failures = 0  # the store recovers: the same checkpoint lands, the error clears
    assert uploader.wait(timeout=5)
    assert uploader.uploaded_step == 5 and tracker.snapshot().upload_error is None
    assert sync.manifested_steps(store, "jobs/j") == [5]
    uploader.close()


def test_uploads_retried_then_succeed(tmp_path):
    store = FlakyStore(FileStore(tmp_path / "store"), failures=2)
    uploader = sync.Uploader(store, "jobs/j", keep=2, retries=5, backoff_s=0.01)
    uploader.submit(1, _local_checkpoint(tmp_path / "l", 1))
    assert uploader.wait(timeout=5) and uploader.error is None and uploader.failures == 2
    assert not (tmp_path / "l" / "step-1").exists()  # local copy dropped once it is up
    uploader.close()


# -- IMDS, control.json --------------------------------------------------------------------------

def test_imds_notice_and_rebalance(fake_imds):
    imds = Imds(fake_imds.endpoint, timeout_s=1)
    assert imds.poll() == (None, None)
    fake_imds.rebalance()
    assert imds.poll() == (None, {"noticeTime": "2030-01-01T00:00:00Z"})
    fake_imds.notice()
    assert imds.poll()[0]["action"] == "terminate"
    assert fake_imds.requests.count("PUT /latest/api/token") == 1  # the token is reused


def test_imds_unreachable_is_no_notice(caplog):
    caplog.set_level("INFO")
    imds = Imds("http://127.0.0.1:9", timeout_s=0.2)
    assert imds.poll() == (None, None) and imds.poll() == (None, None)
    assert caplog.text.count("spot notices off") == 1


# Deadlines are offsets from the moment the test runs, not from collection: a full
# suite can run for over an hour between the two, which once turned "an hour from now"
# into a deadline already past.
@pytest.mark.parametrize("fields, reason", [
    ({}, None),
    ({"stop": True}, "stopped"),
    ({"interrupt": True}, "interrupted"),
    ({"deadline_in": timedelta(hours=1)}, None),
    ({"deadline_in": timedelta(seconds=5)}, "deadline"),  # inside the margin
    ({"deadline_in": -timedelta(seconds=1), "naive": True}, "deadline"),
])
def test_control_json_sets_the_reason(fields, reason):
    fields = dict(fields)
    if "deadline_in" in fields:
        deadline = datetime.now(UTC) + fields.pop("deadline_in")
        if fields.pop("naive", False):
            deadline = deadline.replace(tzinfo=None)
        fields["deadline"] = deadline
    signals = Signals()
    signals.apply_control(Control(**fields))
    assert signals.check() == reason


def test_first_reason_wins():
    signals = Signals()
    signals.raise_reason("interrupted", "notice")
    signals.apply_control(Control(stop=True))
    assert signals.check() == "interrupted"


def test_tracker_rate_and_eta(tmp_path):
    tracker = Tracker(2, tmp_path / "m.jsonl")
    tracker.total_steps = 10
    tracker.start_training(0, 0)
    time.sleep(0.05)
    tracker.record(2, 1.5, 256)
    snap = tracker.snapshot()
    assert snap.step == 2 and snap.tokens_seen == 256 and snap.tokens_per_s > 0 and snap.eta_s > 0
    assert snap.attempt == 2 and json.loads((tmp_path / "m.jsonl").read_text())["loss"] == 1.5
