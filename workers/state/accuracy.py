"""Quote accuracy over finished runs: each succeeded job's metered spend against the expected
cost of the option it was approved on (`trainops accuracy`, `/train jobs`)."""

from __future__ import annotations

from decimal import Decimal

from sqlmodel import select

from schemas.db.database import Database
from schemas.db.tables import Job, QuoteRecord
from schemas.status import JobStatus
from workers.rules.accuracy import Accuracy, error_pct, summary


def errors(db: Database, limit: int = 200) -> list[tuple[str, float, Decimal, Decimal, str]]:
    """(job id, error %, spent, expected, approved option) of the newest reported successes."""
    with db.session() as s:
        rows = s.exec(select(Job, QuoteRecord).join(QuoteRecord, QuoteRecord.job_id == Job.id)
                      .where(Job.status == JobStatus.succeeded.value,
                             Job.reported_at.is_not(None))
                      .order_by(Job.created_at.desc(), QuoteRecord.id.desc())).all()
    out, seen = [], set()
    for job, record in rows:
        if job.id in seen:
            continue
        seen.add(job.id)
        options = record.options or []
        rank = record.recommended_rank
        if rank is None or not 0 <= rank < len(options):
            continue
        option = options[rank]
        expected = Decimal(str(option.get("cost_usd", 0)))
        pct = error_pct(job.spend_usd, expected)
        if pct is None:
            continue
        label = f"{option.get('instance_type')} {option.get('market')}"
        out.append((job.id, pct, job.spend_usd, expected, label))
        if len(out) >= limit:
            break
    return out


def accuracy(db: Database) -> Accuracy | None:
    return summary([(job_id, pct) for job_id, pct, *_ in errors(db)])
