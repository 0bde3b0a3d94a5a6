"""Celery tasks: thin. Each takes ids, builds the world from settings, calls the module that
knows what to do, and returns a short string for the worker log.

Every task here is idempotent (claims, reconcile-by-tag, verified terminate), so every task is
`acks_late`: a worker that dies mid-task has its message delivered again. Only TransientError
(throttling, 5xx after boto3's own retries) is retried, with exponential backoff and jitter.
"""

from __future__ import annotations

import logging

from celery import shared_task

from schemas import tasks
from schemas.db.database import get_database
from schemas.settings import get_settings
from schemas.store import open_store
from workers.monitor import orphans
from workers.monitor.tick import tick
from workers.notify import notifier_for, safe_event
from workers.providers import get_provider, provisioning
from workers.providers.base import TransientError
from workers.queue.enqueue import enqueue
from workers.state import jobs

log = logging.getLogger(__name__)
RETRY = dict(autoretry_for=(TransientError,), retry_backoff=2, retry_backoff_max=60,
             retry_jitter=True, max_retries=6)


def _world():
    settings = get_settings()
    return settings, get_database(settings), notifier_for(settings)


@shared_task(name=tasks.PROVISION, acks_late=True, **RETRY)
def provision(job_id: str) -> str:
    settings, db, notifier = _world()
    return provisioning.provision(db, settings, job_id, notifier)


@shared_task(name=tasks.TERMINATE, acks_late=True, **RETRY)
def terminate(job_id: str) -> str:
    settings, db, notifier = _world()
    job = jobs.get_job(db, job_id)
    if job is None:
        return "no such job"
    provider = get_provider(job.provider or settings.provider, settings)
    ids = provisioning.terminate_job(db, job_id, provider, notifier, reason=job.status.value,
                                     store=open_store(settings.store))
    return ",".join(ids) or "nothing to terminate"


@shared_task(name=tasks.MONITOR_TICK, acks_late=True)
def monitor_tick() -> str:
    settings, db, notifier = _world()
    counts = tick(db, settings, notifier, enqueue=lambda job_id: enqueue(tasks.PROVISION, job_id))
    return str(counts)


@shared_task(name=tasks.REAP, acks_late=True, **RETRY)
def reap() -> str:
    settings, db, notifier = _world()
    names = {settings.provider} | _providers_in_use(db)
    reaped = []
    for name in sorted(names):
        reaped += orphans.reap(db, get_provider(name, settings), notifier)
    return ",".join(reaped) or "no orphans"


@shared_task(name=tasks.EXPIRE_QUOTES, acks_late=True)
def expire_quotes() -> str:
    from schemas.spec import utcnow

    settings, db, notifier = _world()
    expired = jobs.expire_quotes(db, utcnow())
    for job_id in expired:
        safe_event(notifier, jobs.get_job(db, job_id), "expired",
                   "the quote expired before anyone decided")
    return ",".join(expired) or "none"


def _providers_in_use(db) -> set[str]:
    from sqlmodel import select

    from schemas.db.tables import Attempt

    with db.session() as s:
        return set(s.exec(select(Attempt.provider).distinct()).all())
