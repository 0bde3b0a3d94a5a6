"""What the agents said since the last tick: one listing, then reads of what changed.

The agents write a copy of progress.json and status.json under heartbeats/<job_id>/ (schemas/
store.py, write_agent_doc). A tick lists that folder once — ListObjectsV2 returns each key's ETag,
1,000 keys a page, so 1,000 live jobs cost two LIST calls — and GETs only the documents whose
version differs from the one this process read before. Unchanged documents come from the cache
(key -> (version, parsed model)), so a tick over quiet jobs reads nothing, and a document an agent
rewrote is read in the very tick that lists it: a change is seen within one tick.

A live job with nothing under heartbeats/ (an agent older than the copies, or a test writing the
documents by hand) is read the old way: both documents under jobs/<job_id>/, uncached.

The cache lives for the process (a worker's threads share it) and forgets jobs that are no longer
live, so it holds at most two small documents per live job.
"""

from __future__ import annotations

import logging
import threading
from concurrent.futures import ThreadPoolExecutor

from pydantic import BaseModel

from schemas.job import AgentStatus, Progress
from schemas.store import (
    HEARTBEATS,
    S3_MAX_CONNECTIONS,
    Store,
    heartbeat_key,
    job_prefix,
    read_model,
)

log = logging.getLogger(__name__)
DOCS: tuple[tuple[str, type[BaseModel]], ...] = (("status.json", AgentStatus),
                                                 ("progress.json", Progress))
PARALLEL_GETS = S3_MAX_CONNECTIONS  # S3 GETs are round trips: overlap them (one connection each)

_cache: dict[tuple[str, str], tuple[str, BaseModel | None]] = {}
_FAILED = object()  # a read that failed this tick (kept apart from "absent")
_lock = threading.Lock()

Docs = dict[str, tuple[AgentStatus | None, Progress | None]]


def read_docs(store: Store, job_ids: list[str]) -> Docs:
    """{job_id: (status, progress)} for the live jobs, reading only what changed."""
    ids = sorted(set(job_ids))
    if not ids:
        return {}
    try:
        versions = store.list_versions(f"{HEARTBEATS}/")
    except Exception:  # noqa: BLE001 - no listing this tick: read every document directly
        log.warning("could not list %s/%s; reading every job's documents", store.uri, HEARTBEATS)
        versions = {}
    with _lock:
        cached = dict(_cache)
    fetch: list[tuple[str, str, str | None]] = []  # (job_id, key, version or None: uncached)
    listed = {key.split("/")[1] for key in versions if key.count("/") == 2}
    for job_id in ids:
        for name, _model in DOCS:
            if job_id in listed:
                key = heartbeat_key(job_id, name)
                version = versions.get(key)
                hit = cached.get((store.uri, key))
                if version is None or (hit is not None and hit[0] == version):
                    continue  # absent (None below), or unchanged (the cache has it)
                fetch.append((job_id, key, version))
            else:
                fetch.append((job_id, f"{job_prefix(job_id)}/{name}", None))
    got = dict(zip(((job_id, key) for job_id, key, _v in fetch), _get_all(store, fetch),
                   strict=True))
    out: Docs = {}
    live_keys = set()
    with _lock:
        for job_id, key, version in fetch:
            if version is not None and got[(job_id, key)] is not _FAILED:
                _cache[(store.uri, key)] = (version, got[(job_id, key)])
        for job_id in ids:
            docs = []
            for name, _model in DOCS:
                if job_id in listed:
                    key = heartbeat_key(job_id, name)
                    live_keys.add((store.uri, key))
                    hit = _cache.get((store.uri, key)) if key in versions else None
                    docs.append(hit[1] if hit is not None else None)
                else:  # read directly; a failed read is None, as an absent document
                    value = got[(job_id, f"{job_prefix(job_id)}/{name}")]
                    docs.append(None if value is _FAILED else value)
            out[job_id] = (docs[0], docs[1])
        for stale in [k for k in _cache if k[0] == store.uri and k not in live_keys]:
            del _cache[stale]
    return out


def _get_all(store: Store, fetch: list[tuple[str, str, str | None]]) -> list:
    models = dict(DOCS)

    def one(item):
        job_id, key, _version = item
        try:
            return read_model(store, key, models[key.rsplit("/", 1)[-1]])
        except Exception:  # noqa: BLE001 - a half-written or unreadable file: next tick
            log.warning("could not read %s of %s", key.rsplit("/", 1)[-1], job_id)
            return _FAILED

    if len(fetch) <= 4:
        return list(map(one, fetch))
    with ThreadPoolExecutor(max_workers=PARALLEL_GETS) as pool:
        return list(pool.map(one, fetch))


def snapshot() -> dict[tuple[str, str], tuple[str, BaseModel | None]]:
    """A copy of the cache, for the memo a restarted worker starts from (memo.py)."""
    with _lock:
        return dict(_cache)


def remember(entries: dict[tuple[str, str], tuple[str, BaseModel | None]]) -> None:
    """Fill the cache from a saved memo; what this process read itself wins."""
    with _lock:
        for key, value in entries.items():
            _cache.setdefault(key, value)


def forget() -> None:
    """Drop the cache (tests that swap stores under one uri)."""
    with _lock:
        _cache.clear()
