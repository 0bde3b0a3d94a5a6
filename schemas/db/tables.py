"""The database tables (sqlmodel). The migrations in schemas/migrations create exactly these.

Money is a Decimal end to end (`Money`): PostgreSQL stores NUMERIC(14, 6); SQLite, which has no
decimal type and would turn a NUMERIC column into a float, stores the decimal's text. Times are
always aware UTC (`UTCDateTime`): SQLite keeps no time zone, so it is put back on read.
"""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import sqlalchemy as sa
from sqlmodel import Field, SQLModel

from schemas.spec import utcnow


class UTCDateTime(sa.types.TypeDecorator):
    impl = sa.DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime: trainops stores aware UTC times only")
        return value.astimezone(UTC)

    def process_result_value(self, value: datetime | None, dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value


class Money(sa.types.TypeDecorator):
    impl = sa.Numeric(14, 6)
    cache_ok = True

    def load_dialect_impl(self, dialect):
        if dialect.name == "sqlite":
            return dialect.type_descriptor(sa.String(40))
        return dialect.type_descriptor(sa.Numeric(14, 6, asdecimal=True))

    def process_bind_param(self, value: Any, dialect) -> Any:
        if value is None:
            return None
        # str(float) keeps what a person typed (100.1, not 100.0999999...).
        exact = value if isinstance(value, Decimal) else Decimal(str(value))
        return str(exact) if dialect.name == "sqlite" else exact

    def process_result_value(self, value: Any, dialect) -> Decimal | None:
        return None if value is None else Decimal(str(value))


def _money(**kw) -> Any:
    return Field(sa_type=Money, **kw)


def _time(**kw) -> Any:
    return Field(sa_type=UTCDateTime, **kw)


class Job(SQLModel, table=True):
    __tablename__ = "jobs"

    id: str = Field(primary_key=True, max_length=32)
    status: str = Field(index=True, max_length=32)
    failure_cause: str | None = Field(default=None, max_length=64)
    requester: str = Field(max_length=128)
    channel: str | None = Field(default=None, max_length=64)
    root_ts: str | None = Field(default=None, max_length=64)
    text: str = ""
    request: dict = Field(default_factory=dict, sa_type=sa.JSON)
    provider: str | None = Field(default=None, max_length=16)
    budget_usd: Decimal = _money()
    cap_usd: Decimal = _money()
    warn: float = 0.8
    spend_usd: Decimal = _money(default=Decimal(0))
    # What the approval allows the launch plan to spend and use (workers/rules/budget.py decides).
    allowance_usd: Decimal | None = _money(default=None)
    on_demand_ok: bool = False
    approved_by: str | None = Field(default=None, max_length=128)
    decided_at: datetime | None = _time(default=None)
    quote_expires_at: datetime | None = _time(default=None)
    # Why a graceful stop was asked for ("cap" or "user"): decides stopped_at_cap vs cancelled.
    stop_reason: str | None = Field(default=None, max_length=16)
    recoveries: int = 0
    # A provision task holds the job until this time; a redelivered task waits it out.
    lease_until: datetime | None = _time(default=None)
    created_at: datetime = _time(default_factory=utcnow)
    updated_at: datetime = _time(default_factory=utcnow)
    # --- the spend guard (migration 0002) ---
    # The cap the last spend warning was for: one warning per cap, re-armed by an extension.
    warned_at_cap: Decimal | None = _money(default=None)
    # When control.json was told stop=true; the machine is terminated STOP_GRACE after this.
    stop_requested_at: datetime | None = _time(default=None)
    # The progress message in the thread (Slack ts), when it was last posted, at which phase.
    progress_ref: str | None = Field(default=None, max_length=64)
    progress_at: datetime | None = _time(default=None)
    progress_phase: str | None = Field(default=None, max_length=16)
    # Zones lost to interruptions: a recovery launches elsewhere.
    avoid_zones: list | None = Field(default=None, sa_type=sa.JSON)
    # The job this one resumes (`/train resume`), and when the final report was posted (once).
    resume_of: str | None = Field(default=None, max_length=32)
    reported_at: datetime | None = _time(default=None)


class QuoteRecord(SQLModel, table=True):
    """The quote a job was approved on, kept whole: the options' order is the launch order."""

    __tablename__ = "quotes"

    id: int | None = Field(default=None, primary_key=True)
    job_id: str = Field(foreign_key="jobs.id", index=True, max_length=32)
    payload: dict = Field(sa_type=sa.JSON)  # schemas.spec.Quote as JSON, options included
    options: list = Field(default_factory=list, sa_type=sa.JSON)  # [QuoteOption], cheapest first
    recommended_rank: int | None = None  # index into options
    over_budget_usd: Decimal = _money(default=Decimal(0))
    created_at: datetime = _time(default_factory=utcnow)


class Approval(SQLModel, table=True):
    __tablename__ = "approvals"

    id: int | None = Field(default=None, primary_key=True)
    job_id: str = Field(foreign_key="jobs.id", index=True, max_length=32)
    actor: str = Field(max_length=128)
    decision: str = Field(max_length=32)  # approve | approve_on_demand | reject
    over_budget: bool = False
    as_approver: bool = False
    at: datetime = _time(default_factory=utcnow)


class Attempt(SQLModel, table=True):
    """One machine for one job: the first launch, each fallback that got a machine, each recovery."""

    __tablename__ = "attempts"
    __table_args__ = (sa.UniqueConstraint("job_id", "attempt", name="uq_attempt_job_number"),)

    id: int | None = Field(default=None, primary_key=True)
    job_id: str = Field(foreign_key="jobs.id", index=True, max_length=32)
    attempt: int
    provider: str = Field(max_length=16)
    instance_id: str | None = Field(default=None, index=True, max_length=64)
    instance_type: str | None = Field(default=None, max_length=64)
    zone: str | None = Field(default=None, max_length=64)
    market: str | None = Field(default=None, max_length=16)
    hourly_usd: Decimal | None = _money(default=None)
    launched_at: datetime | None = _time(default=None)
    ended_at: datetime | None = _time(default=None)
    end_reason: str | None = None
    created_at: datetime = _time(default_factory=utcnow)
    # The idempotency key of the launch in flight (EC2's ClientToken; the local provider's launch
    # key), written before the provider is called: a provision re-run after a crash sends the
    # same one, and an operator can look the machine up by it (EC2 keeps it on the instance).
    client_token: str | None = Field(default=None, max_length=64)


class SpendEntry(SQLModel, table=True):
    """One metered interval of one attempt: amount = billed_seconds / 3600 x price, by `rule`."""

    __tablename__ = "spend_entries"

    id: int | None = Field(default=None, primary_key=True)
    job_id: str = Field(foreign_key="jobs.id", index=True, max_length=32)
    attempt_id: int | None = Field(default=None, foreign_key="attempts.id")
    interval_start: datetime = _time()
    interval_end: datetime = _time()
    billed_seconds: int
    price_usd_per_hour: Decimal = _money()
    amount_usd: Decimal = _money()
    rule: str  # e.g. "per-second, 60 s minimum per start; spot price us-east-1a at 12:00"
    created_at: datetime = _time(default_factory=utcnow)
    # Where the price came from: "spot us-east-1a (price history)", "on-demand (quote)", ...
    price_source: str | None = Field(default=None, max_length=128)


class ProgressSample(SQLModel, table=True):
    """What the agent reported at one monitor tick, with the spend then: the final chart."""

    __tablename__ = "progress_samples"

    id: int | None = Field(default=None, primary_key=True)
    job_id: str = Field(foreign_key="jobs.id", index=True, max_length=32)
    attempt: int
    at: datetime = _time(default_factory=utcnow)
    step: int = 0
    total_steps: int = 0
    loss: float | None = None
    tokens_seen: int = 0
    tokens_per_s: float = 0.0
    spend_usd: Decimal = _money(default=Decimal(0))


class MeasuredRun(SQLModel, table=True):
    """Throughput of one finished run, fed back into the quotes' calibration."""

    __tablename__ = "measured_runs"

    id: int | None = Field(default=None, primary_key=True)
    job_id: str = Field(foreign_key="jobs.id", unique=True, max_length=32)
    gpu: str = Field(max_length=16)  # the catalog's family name, e.g. "a10g"
    gpu_count: int = 1
    instance_type: str = Field(max_length=64)
    params_b: float
    method: str = Field(max_length=8)
    gradient_checkpointing: bool = False
    tokens_per_s: float  # per GPU
    seq_len: int = 0
    at: datetime = _time(default_factory=utcnow)


class Event(SQLModel, table=True):
    """Append-only: every move and everything worth telling the thread, with who did it."""

    __tablename__ = "events"

    id: int | None = Field(default=None, primary_key=True)
    job_id: str = Field(foreign_key="jobs.id", index=True, max_length=32)
    kind: str = Field(max_length=32)
    actor: str = Field(max_length=128)
    message: str = ""
    at: datetime = _time(default_factory=utcnow)
