"""Checkpoints in the object store: manifests, background upload with retries, keep-last-K,
and finding + verifying the newest one. No torch: the custom-command path uses it too.

Layout: `<unit>/checkpoints/step-N/<files>` (a unit: the job, or one run / stage of it, see
schemas/checkpoints.py) and `MANIFEST.json` (files, sizes, sha256) written
LAST. A checkpoint without a manifest does not exist: a machine that dies mid-upload leaves a
folder that every reader ignores. Upload failures are retried with backoff and, when they keep
failing, reported (progress.json `upload_error` and the log) — checkpoints that silently stopped
syncing are how other tools lost days of training.
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
import shutil
import threading
import time
from datetime import UTC, datetime
from pathlib import Path

from schemas.checkpoints import MANIFEST, manifested_steps
from schemas.errors import UserError

log = logging.getLogger("trainops.sync")
RETRIES, BACKOFF_S = 4, 1.0  # upload tries before the error is reported; first retry delay


class CheckpointCorrupt(UserError):
    """A checkpoint's files do not match its manifest."""


class SpecMismatch(UserError):
    """A checkpoint written under another spec: resuming would silently train something else."""


def spec_meta(spec) -> dict:
    """What a manifest records about the spec that wrote it."""
    return {"spec_hash": spec.spec_hash(),
            "training_fields": {k: getattr(spec, k) for k in spec.TRAINING_FIELDS}}


def check_spec(manifest: dict, spec, where: str) -> None:
    """SpecMismatch naming the changed fields when the checkpoint was written for another spec."""
    if manifest.get("spec_hash") == spec.spec_hash():
        return
    saved = manifest.get("training_fields", {})
    changed = [f"{k} {saved.get(k)!r} -> {getattr(spec, k)!r}" for k in spec.TRAINING_FIELDS
               if json.dumps(saved.get(k), default=str) != json.dumps(getattr(spec, k), default=str)]
    raise SpecMismatch(
        f"checkpoint step-{manifest.get('step')} at {where} was written for a different spec "
        f"(changed: {', '.join(changed) or 'unknown'}); resuming would train something else. "
        "Start a new job, or delete that checkpoints/ folder to start this one from scratch."
    )


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def build_manifest(local_dir: Path, step: int, meta: dict | None = None) -> dict:
    files = sorted(p for p in Path(local_dir).rglob("*") if p.is_file() and p.name != MANIFEST)
    return {
        "step": step,
        "created_at": datetime.now(UTC).isoformat(),
        **(meta or {}),
        "files": [
            {"path": str(p.relative_to(local_dir)), "size": p.stat().st_size, "sha256": sha256_file(p)}
            for p in files
        ],
    }


def upload_dir(store, key_prefix: str, local_dir: Path, step: int, meta: dict | None = None) -> dict:
    """Every file, then the manifest: the manifest is the commit."""
    manifest = build_manifest(local_dir, step, meta)
    for entry in manifest["files"]:
        store.upload_file(f"{key_prefix}/{entry['path']}", Path(local_dir) / entry["path"])
    store.write_bytes(f"{key_prefix}/{MANIFEST}", json.dumps(manifest, indent=2).encode())
    return manifest



def prune(store, job_prefix: str, keep: int) -> list[int]:
    """Delete all but the newest `keep` checkpoints, and manifest-less leftovers older than the
    newest (an upload that died); only ever called after a newer manifest is up."""
    steps = manifested_steps(store, job_prefix)
    if not steps:
        return []
    present = {int(m.group(1)) for key in store.list(f"{job_prefix}/checkpoints/")
               if (m := re.search(r"checkpoints/step-(\d+)/", key))}
    doomed = sorted(s for s in present if s not in steps[:keep] and s < steps[0])
    for step in doomed:
        store.delete(f"{job_prefix}/checkpoints/step-{step}/")
    return doomed


def download_checkpoint(store, job_prefix: str, step: int, local_dir: Path) -> dict:
    return download_dir(store, f"{job_prefix}/checkpoints/step-{step}", local_dir, f"checkpoint step-{step}")


def download_dir(store, key_prefix: str, local_dir: Path, what: str) -> dict:
    """A manifested folder (a checkpoint, a final/), every file verified against the manifest."""
    manifest = json.loads(store.read_bytes(f"{key_prefix}/{MANIFEST}"))
    for entry in manifest["files"]:
        target = Path(local_dir) / entry["path"]
        store.download_file(f"{key_prefix}/{entry['path']}", target)
        if target.stat().st_size != entry["size"] or sha256_file(target) != entry["sha256"]:
            raise CheckpointCorrupt(f"{what}: {entry['path']} does not match its manifest")
    return manifest


def fetch_latest(store, job_prefix: str, local_root: Path) -> tuple[dict, Path] | None:
    """The newest checkpoint whose files verify, downloaded; older ones are tried when the
    newest is damaged. None when there is none."""
    for step in manifested_steps(store, job_prefix):
        local_dir = Path(local_root) / f"step-{step}"
        shutil.rmtree(local_dir, ignore_errors=True)
        try:
            return download_checkpoint(store, job_prefix, step, local_dir), local_dir
        except Exception as exc:  # a damaged or half-readable checkpoint: try the one before it
            log.error("checkpoint step-%d cannot be used (%s); trying an older one", step, exc)
    return None


def seed_from(store, job_prefix: str, source_uri: str, local_root: Path) -> int | None:
    """`/train resume`: when this job has no checkpoint of its own yet, copy the newest verified
    checkpoint of the job at `source_uri` (`<store>/jobs/<old id>`) into this job's
    checkpoints/, manifest last. Returns the step copied, or None (nothing to do)."""
    if manifested_steps(store, job_prefix):
        return None  # this job already checkpointed (a later attempt): never go back
    from schemas.store import split_job_uri

    source, source_prefix = split_job_uri(source_uri.rstrip("/") + "/")
    source_prefix = source_prefix.rstrip("/")
    found = fetch_latest(source, source_prefix, Path(local_root))
    if found is None:
        log.warning("nothing to resume from at %s: starting from scratch", source_uri)
        return None
    manifest, local_dir = found
    key_prefix = f"{job_prefix}/checkpoints/step-{manifest['step']}"
    for entry in manifest["files"]:
        store.upload_file(f"{key_prefix}/{entry['path']}", Path(local_dir) / entry["path"])
    store.write_bytes(f"{key_prefix}/{MANIFEST}", json.dumps(manifest, indent=2).encode())
    log.info("resuming %s from step-%d of %s", job_prefix, manifest["step"], source_uri)
    return manifest["step"]


def retry(action, *, what: str, tries: int = 5, backoff_s: float = 1.0):
    """Run action(), retrying with exponential backoff; the last error propagates."""
    for attempt in range(1, tries + 1):
        try:
            return action()
        except Exception as exc:
            if attempt == tries:
                raise
            log.warning("%s failed (%s); retry %d/%d", what, exc, attempt, tries - 1)
            time.sleep(min(backoff_s * 2 ** (attempt - 1), 30.0))


class Uploader:
    """Uploads checkpoints on a background thread, newest first; never blocks training.

    Only the newest pending checkpoint matters: a newer one replaces one still waiting. A failing
    upload is retried with exponential backoff; after `retries` tries `error` is set (the agent
    puts it in progress.json) and it keeps retrying at the capped backoff until it succeeds or a
    newer checkpoint replaces it.
    """

    def __init__(self, store, job_prefix: str, keep: int, *, meta: dict | None = None, retries: int | None = None,
                 backoff_s: float | None = None, max_backoff_s: float = 30.0, delete_local: bool = True):
        self.store, self.job_prefix, self.keep = store, job_prefix, keep
        self.retries, self.backoff_s = retries or RETRIES, backoff_s or BACKOFF_S
        self.max_backoff_s = max_backoff_s
        self.delete_local, self.meta = delete_local, meta
        self.uploaded_step: int | None = None
        self.error: str | None = None
        self.failures = 0
        self.last_upload_s = 0.0  # how long the last good upload took: sizes the deadline margin
        self._pending: tuple[int, Path] | None = None
        self._busy = False
        self._closed = False
        self._cond = threading.Condition()
        self._thread = threading.Thread(target=self._run, name="checkpoint-upload", daemon=True)
        self._thread.start()

    def submit(self, step: int, local_dir: Path) -> None:
        with self._cond:
            if self._pending is not None:
                log.warning("checkpoint step-%d replaced by step-%d before upload", self._pending[0], step)
            self._pending = (step, Path(local_dir))
            self._cond.notify_all()

    def wait(self, timeout: float | None = None) -> bool:
        """True when everything submitted is in the store."""
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._cond:
            while self._pending is not None or self._busy:
                left = None if deadline is None else deadline - time.monotonic()
                if left is not None and left <= 0:
                    return False
                self._cond.wait(left)
            return True

    def close(self) -> None:
        with self._cond:
            self._closed = True
            self._cond.notify_all()

    def _run(self) -> None:
        while True:
            with self._cond:
                while self._pending is None and not self._closed:
                    self._cond.wait()
                if self._pending is None:
                    return
                step, local_dir = self._pending
                self._pending, self._busy = None, True
            try:
                self._upload_with_retries(step, local_dir)
            finally:
                with self._cond:
                    self._busy = False
                    self._cond.notify_all()

    def _upload_with_retries(self, step: int, local_dir: Path) -> None:
        tries, started = 0, time.monotonic()
        while True:
            try:
                upload_dir(self.store, f"{self.job_prefix}/checkpoints/step-{step}", local_dir, step, self.meta)
                break
            except Exception as exc:
                tries += 1
                self.failures += 1
                delay = min(self.backoff_s * 2 ** (tries - 1), self.max_backoff_s)
                if tries >= self.retries:
                    self.error = f"checkpoint step-{step} upload failing after {tries} tries: {exc}"
                    log.error("%s; retrying in %.0f s", self.error, delay)
                else:
                    log.warning("checkpoint step-%d upload failed (%s); retry in %.1f s", step, exc, delay)
                with self._cond:
                    if self._pending is not None or self._closed:
                        return  # a newer checkpoint supersedes this one / shutting down
                    self._cond.wait(delay)
        self.uploaded_step, self.error = step, None
        self.last_upload_s = time.monotonic() - started
        log.info("checkpoint step-%d uploaded", step)
        try:
            prune(self.store, self.job_prefix, self.keep)
        except Exception as exc:  # pruning is housekeeping: a failure costs storage, not work
            log.warning("could not prune old checkpoints: %s", exc)
        if self.delete_local:
            shutil.rmtree(local_dir, ignore_errors=True)
