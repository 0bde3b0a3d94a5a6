"""The final report of a job (pure figures) and its chart (matplotlib, written to a PNG).

Every figure here derives from the attempts, the metered spend and the agent's progress; nothing
is re-priced from today's catalog (users of other tools complain about exactly that).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from pathlib import Path

from workers.rules.billing import MIN_BILLED_S, SECONDS_PER_HOUR


@dataclass(frozen=True)
class AttemptFacts:
    instance_type: str
    gpu_count: int
    market: str
    launched_at: datetime
    ended_at: datetime
    on_demand_usd_per_hour: Decimal  # what the same hours would have cost on-demand
    end_reason: str = ""


@dataclass(frozen=True)
class Interruption:
    at: datetime
    lost_s: float  # work redone: time from the last verified checkpoint to the notice
    down_s: float  # time without a machine, until the next attempt ran


@dataclass(frozen=True)
class FinalReport:
    status: str
    wall_s: float
    instance_hours: float
    gpu_hours: float
    spent_usd: Decimal
    quoted_usd: Decimal
    diff_pct: float
    on_demand_usd: Decimal
    saved_usd: Decimal
    interruptions: int
    interruption_cost_s: float
    tokens: int
    usd_per_million_tokens: Decimal | None
    final_loss: float | None
    output_uri: str | None
    lines: list[str] = field(default_factory=list)
    # Quotes a team can hold us to (issue 13): the approved option, its P90, and which part of
    # the cost differed from it (workers/rules/accuracy.py).
    quoted_p90_usd: Decimal | None = None
    approved: str = ""
    differences: dict[str, Decimal] = field(default_factory=dict)
    local_only: bool = False  # every attempt ran on the local provider


def summarize(
    *,
    status: str,
    started_at: datetime,
    ended_at: datetime,
    attempts: Sequence[AttemptFacts],
    spent_usd: Decimal,
    quoted_usd: Decimal,
    tokens: int,
    final_loss: float | None,
    output_uri: str | None,
    interruptions: Sequence[Interruption] = (),
    quoted_p90_usd: Decimal | None = None,
    approved: str = "",
    differences: dict[str, Decimal] | None = None,
) -> FinalReport:
    hours = [(a.ended_at - a.launched_at).total_seconds() / 3600 for a in attempts]
    instance_hours = sum(hours)
    gpu_hours = sum(h * a.gpu_count for h, a in zip(hours, attempts, strict=True))
    # The same seconds on-demand, billed by the meter's rule (60 s at least per start), so a
    # short run is not shown as cheaper on-demand than what the meter charged.
    on_demand = sum(
        (Decimal(max(MIN_BILLED_S, round(h * 3600))) / SECONDS_PER_HOUR * a.on_demand_usd_per_hour
         for h, a in zip(hours, attempts, strict=True)),
        Decimal(0),
    ).quantize(Decimal("0.01"))
    diff = float((spent_usd - quoted_usd) / quoted_usd * 100) if quoted_usd else 0.0
    per_m = (spent_usd / Decimal(tokens) * Decimal(1_000_000)).quantize(Decimal("0.0001")) if tokens else None
    return FinalReport(
        status=status,
        wall_s=(ended_at - started_at).total_seconds(),
        instance_hours=instance_hours,
        gpu_hours=gpu_hours,
        spent_usd=spent_usd.quantize(Decimal("0.01")),
        quoted_usd=quoted_usd.quantize(Decimal("0.01")),
        diff_pct=diff,
        on_demand_usd=on_demand,
        saved_usd=max(Decimal(0), on_demand - spent_usd).quantize(Decimal("0.01")),
        interruptions=len(interruptions),
        interruption_cost_s=sum(i.lost_s + i.down_s for i in interruptions),
        tokens=tokens,
        usd_per_million_tokens=per_m,
        final_loss=final_loss,
        output_uri=output_uri,
        quoted_p90_usd=quoted_p90_usd.quantize(Decimal("0.01")) if quoted_p90_usd else None,
        approved=approved,
        differences=dict(differences or {}),
        local_only=bool(attempts) and all(a.market == "local" for a in attempts),
    )


def report_text(r: FinalReport, job_id: str) -> str:
    sign = "+" if r.diff_pct >= 0 else ""
    lines = [
        f"*Job {job_id} {r.status.replace('_', ' ')}*",
        f"Wall time {_duration(r.wall_s)} · {r.instance_hours:.2f} instance-hours · "
        f"{r.gpu_hours:.2f} GPU-hours",
        _against(r, sign),
    ]
    if not r.local_only:  # this machine has no on-demand twin to compare with
        lines.append(f"On-demand would have cost ${r.on_demand_usd}: saved ${r.saved_usd}")
    if r.differences:
        from workers.rules.accuracy import explain

        lines.append(f"Where it differed from the quote: {explain(r.differences)}")
    if r.interruptions:
        lines.append(f"Interruptions: {r.interruptions}, costing {_duration(r.interruption_cost_s)} "
                     f"of redone work and waiting")
    if r.usd_per_million_tokens is not None:
        lines.append(f"{r.tokens:,} tokens · ${r.usd_per_million_tokens} per million tokens")
    if r.final_loss is not None:
        lines.append(f"Final loss {r.final_loss:.4f}")
    if r.output_uri:
        lines.append(f"Trained weights: {r.output_uri}")
    return "\n".join(lines)


def render_chart(
    path: Path,
    *,
    loss: Sequence[tuple[datetime, float]],
    spend: Sequence[tuple[datetime, float]],
    cap_usd: float,
    warn_usd: float,
    interruptions: Sequence[datetime] = (),
    title: str = "",
) -> Path:
    """Loss and cumulative spend over time, the warning and cap lines, interruptions marked."""
    from workers.rules.charts import pyplot

    plt = pyplot()

    fig, ax_loss = plt.subplots(figsize=(8, 4.5), dpi=100)
    ax_spend = ax_loss.twinx()
    if loss:
        ax_loss.plot([t for t, _ in loss], [v for _, v in loss], color="tab:blue", label="loss")
    if spend:
        ax_spend.plot([t for t, _ in spend], [v for _, v in spend], color="tab:green",
                      label="spend (USD)")
    ax_spend.axhline(warn_usd, color="tab:orange", linestyle="--", label=f"warning ${warn_usd:.2f}")
    ax_spend.axhline(cap_usd, color="tab:red", linestyle="-", label=f"cap ${cap_usd:.2f}")
    for i, moment in enumerate(interruptions):
        ax_loss.axvline(moment, color="grey", linestyle=":",
                        label="interruption" if i == 0 else None)
    ax_loss.set_ylabel("loss")
    ax_spend.set_ylabel("spend (USD)")
    ax_spend.set_ylim(bottom=0, top=max(cap_usd * 1.1, max((v for _, v in spend), default=0) * 1.1))
    ax_loss.set_xlabel("time (UTC)")
    ax_loss.set_title(title)
    handles = ax_loss.get_legend_handles_labels()
    handles2 = ax_spend.get_legend_handles_labels()
    ax_loss.legend(handles[0] + handles2[0], handles[1] + handles2[1], loc="upper right",
                   fontsize="small")
    from workers.rules.charts import save

    return save(fig, path)


def _against(r: FinalReport, sign: str) -> str:
    if not r.approved:
        return f"Cost ${r.spent_usd} against a quote of ${r.quoted_usd} ({sign}{r.diff_pct:.0f}%)"
    p90 = ""
    if r.quoted_p90_usd is not None:
        within = "within" if r.spent_usd <= r.quoted_p90_usd else "over"
        p90 = f", P90 ${r.quoted_p90_usd}; {within} P90"
    return (f"Cost ${r.spent_usd} against the approved quote ({r.approved}) of ${r.quoted_usd} "
            f"expected ({sign}{r.diff_pct:.0f}%{p90})")


def _duration(seconds: float) -> str:
    seconds = int(round(seconds))
    h, rest = divmod(seconds, 3600)
    m, s = divmod(rest, 60)
    return f"{h}h {m:02d}m" if h else f"{m}m {s:02d}s"
