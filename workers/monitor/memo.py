"""What the monitor remembers between ticks, kept across a worker's restart.

Two caches in the worker's memory make a quiet tick cheap: the agents' documents by version
(reads.py) and the deadline and cap each job's control.json was last given (control.py). A
restarted worker used to start with both empty, so its first tick over 1,000 live jobs read every
document again and rewrote every control.json: 2,000 GETs, then 1,000 GETs and 1,000 PUTs
(benchmarks/RESULTS.md, docs/monitor-scale.md). Now a tick that changed either cache saves both
as one document in the store, `monitor/memo.json`, and a process loads it before its first tick.

Both are caches that can be stale but never wrong, so a memo written by another worker, or an old
one, costs reads and writes, never a missed change:
- a document is used only while the store's listing still shows the version it was read at;
- a deadline memo makes a write due whenever the deadline, the cap, the attempt seen alive or the
  refresh window differ from it; a write that failed was never remembered, so never saved.
The memo holds the live jobs only (about 600 bytes a job); an unreadable memo is ignored.
"""

from __future__ import annotations

import hashlib
import json
import logging
import threading
from datetime import datetime

from schemas.store import Store
from workers.monitor import control, reads

log = logging.getLogger(__name__)
MEMO_KEY = "monitor/memo.json"
VERSION = 1

_lock = threading.Lock()
_loaded: set[str] = set()  # store uris this process has loaded the memo of
_saved: dict[str, str] = {}  # store uri -> digest of the memo this process last saved


def warm(store: Store) -> bool:
    """Before this process's first tick on `store`: fill the empty caches from the saved memo.
    True when something was loaded."""
    with _lock:
        if store.uri in _loaded:
            return False
        _loaded.add(store.uri)
    try:
        blob = store.read_bytes(MEMO_KEY)
        memo = json.loads(blob) if blob else None
        if not memo or memo.get("version") != VERSION:
            return False
        docs = {(store.uri, key): (version, _model(key, text))
                for key, version, text in memo["docs"]}
        written = {job: (_when(d), cap, window, alive)
                   for job, (d, cap, window, alive) in memo["control"].items()}
    except Exception:  # noqa: BLE001 - a cache: without it the first tick reads everything
        log.warning("the monitor's memo %s/%s is unreadable; the first tick reads everything",
                    store.uri, MEMO_KEY, exc_info=True)
        return False
    reads.remember(docs)
    control.remember(written)
    log.info("the monitor remembered %d documents and %d deadlines from %s",
             len(docs), len(written), MEMO_KEY)
    return True


def keep(store: Store, live_jobs: list[str]) -> bool:
    """After a tick: save both caches for the live jobs when they changed since the last save.
    True when written. Never raises: the memo is a cache, and the tick still has progress to
    sample and interruptions to recover after it."""
    try:
        return _keep(store, set(live_jobs))
    except Exception:  # noqa: BLE001 - the next tick saves it again; a restart reads everything
        log.warning("could not save the monitor's memo to %s/%s", store.uri, MEMO_KEY,
                    exc_info=True)
        return False


def _keep(store: Store, live: set[str]) -> bool:
    docs = [[key, version, None if model is None else model.model_dump_json()]
            for (uri, key), (version, model) in sorted(reads.snapshot().items())
            if uri == store.uri and key.split("/")[1] in live]
    written = {job: [None if d is None else d.isoformat(), cap, window, alive]
               for job, (d, cap, window, alive) in sorted(control.snapshot().items())
               if job in live}
    if not docs and not written and store.uri not in _saved:
        return False  # nothing to remember, and no saved memo to empty
    blob = json.dumps({"version": VERSION, "docs": docs, "control": written},
                      separators=(",", ":")).encode()
    digest = hashlib.sha256(blob).hexdigest()
    if _saved.get(store.uri) == digest:
        return False
    store.write_bytes(MEMO_KEY, blob)
    _saved[store.uri] = digest
    return True


def forget() -> None:
    """As a new process starts (tests and the benchmark's --restart)."""
    with _lock:
        _loaded.clear()
        _saved.clear()


def _model(key: str, text: str | None):
    if text is None:
        return None
    return dict(reads.DOCS)[key.rsplit("/", 1)[-1]].model_validate_json(text)


def _when(text: str | None) -> datetime | None:
    return None if text is None else datetime.fromisoformat(text)
