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
) -> FinalReport:
    hours = [(a.ended_at - a.launched_at).total_seconds() / 3600 for a in attempts]
    instance_hours = sum(hours)
    gpu_hours = sum(h * a.gpu_count for h, a in zip(hours, attempts, strict=True))
    on_demand = sum(
        (Decimal(str(h)) * a.on_demand_usd_per_hour for h, a in zip(hours, attempts, strict=True)),
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
    )


def report_text(r: FinalReport, job_id: str) -> str:
    sign = "+" if r.diff_pct >= 0 else ""
    lines = [
        f"*Job {job_id} {r.status.replace('_', ' ')}*",
        f"Wall time {_duration(r.wall_s)} · {r.instance_hours:.2f} instance-hours · "
        f"{r.gpu_hours:.2f} GPU-hours",
        f"Cost ${r.spent_usd} against a quote of ${r.quoted_usd} ({sign}{r.diff_pct:.0f}%)",
        f"On-demand would have cost ${r.on_demand_usd}: saved ${r.saved_usd}",
    ]
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
    import matplotlib

    matplotlib.use("Agg")  # no display on a worker
    import matplotlib.pyplot as plt

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
    fig.autofmt_xdate()
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    plt.close(fig)
    return path


def _duration(seconds: float) -> str:
    seconds = int(round(seconds))
    h, rest = divmod(seconds, 3600)
    m, s = divmod(rest, 60)
    return f"{h}h {m:02d}m" if h else f"{m}m {s:02d}s"
