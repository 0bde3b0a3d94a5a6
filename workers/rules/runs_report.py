"""The final report's part for sweeps and pipelines (issues #11, #12). Pure: the agent's metrics
rows in, figures and lines out.

The agent's metrics lines (logs/metrics-attempt-N.jsonl) carry `run` and `stage`, `reward` on RL
steps, and evaluations as `{"stage": "eval", "eval": {"mean_reward", "pass_rate", "loss",
"label": "before_rl" | "after_rl"}}`. A sweep's runs are compared on their final loss; a
pipeline's stages on their time and cost, and RL on the evaluation before and after it.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal

STAGE_ORDER = ("prep", "sft", "rl", "eval")


@dataclass(frozen=True)
class Row:
    at: datetime
    step: int
    loss: float | None
    run: str | None
    stage: str | None
    reward: float | None = None
    eval: dict | None = None


def parse_rows(raw: bytes | None, launched_at: datetime) -> list[Row]:
    """One attempt's metrics log; `t` is seconds since that attempt's agent started. Lines cut
    short by an upload are skipped: the rest still counts."""
    out = []
    for line in (raw or b"").splitlines():
        try:
            d = json.loads(line)
            at = launched_at + timedelta(seconds=float(d["t"]))
            loss = d.get("loss")
            reward = d.get("reward")
            out.append(Row(at=at, step=int(d.get("step") or 0),
                           loss=None if loss is None else float(loss), run=d.get("run"),
                           stage=d.get("stage"),
                           reward=None if reward is None else float(reward),
                           eval=d["eval"] if isinstance(d.get("eval"), dict) else None))
        except (ValueError, KeyError, TypeError):
            continue
    return out


@dataclass(frozen=True)
class RunResult:
    name: str
    steps: int
    final_loss: float | None
    curve: list[tuple[int, float]] = field(default_factory=list)  # (step, loss)


def compare_runs(rows: Iterable[Row], names: Sequence[str]) -> list[RunResult]:
    """Each named run's loss curve (SFT steps, the newest value per step, as a resumed attempt
    repeats steps) and its final loss; in the sweep's order."""
    curves: dict[str, dict[int, float]] = {n: {} for n in names}
    for r in rows:
        if r.run in curves and r.loss is not None and r.stage in (None, "sft"):
            curves[r.run][r.step] = r.loss
    out = []
    for n in names:
        points = sorted(curves[n].items())
        out.append(RunResult(n, points[-1][0] if points else 0,
                             points[-1][1] if points else None, points))
    return out


def best_run(results: Sequence[RunResult]) -> RunResult | None:
    done = [r for r in results if r.final_loss is not None]
    return min(done, key=lambda r: r.final_loss) if done else None


def sweep_lines(results: Sequence[RunResult], weights_of) -> list[str]:
    """The comparison table and the best run with where its weights are."""
    width = max((len(r.name) for r in results), default=3)
    rows = [f"{'run':<{width}}  {'steps':>6}  final loss"]
    best = best_run(results)
    for r in results:
        loss = "n/a" if r.final_loss is None else f"{r.final_loss:.4f}"
        mark = "  ← best" if best is not None and r.name == best.name else ""
        rows.append(f"{r.name:<{width}}  {r.steps:>6}  {loss}{mark}")
    lines = [f"Sweep of {len(results)} runs:", "```", *rows, "```"]
    if best is None:
        lines.append("No run reported a loss: no best run to name")
    else:
        lines.append(f"Best run: {best.name} (final loss {best.final_loss:.4f}); weights: "
                     f"{weights_of(best.name)}")
    return lines


@dataclass(frozen=True)
class Evaluation:
    label: str
    mean_reward: float | None
    pass_rate: float | None
    loss: float | None


def evaluations(rows: Iterable[Row]) -> dict[str, Evaluation]:
    """The newest evaluation under each label (before_rl, after_rl, or the eval stage's own)."""
    out = {}
    for r in rows:
        if r.eval is None:
            continue
        e = r.eval
        label = str(e.get("label") or "eval")
        out[label] = Evaluation(label, _num(e.get("mean_reward")), _num(e.get("pass_rate")),
                                _num(e.get("loss")))
    return out


def _num(x) -> float | None:
    try:
        return None if x is None else float(x)
    except (TypeError, ValueError):
        return None


def stage_seconds(rows: Sequence[Row], launched: datetime, ended: datetime) -> dict[str, float]:
    """Wall seconds per stage: before the first row is prep (boot, download, data); then each
    stretch of rows of one stage runs from the previous stretch's last row to its own last row
    (a stage's start, its child process and model load, is its own; the evaluation before RL
    and the one after are two stretches of eval); the last stretch runs until the end."""
    marks: list[list] = []  # [stage, first row, last row]
    for r in sorted(rows, key=lambda r: r.at):
        if r.stage and (not marks or marks[-1][0] != r.stage):
            marks.append([r.stage, r.at, r.at])
        elif r.stage:
            marks[-1][2] = r.at
    out: dict[str, float] = {"prep": max(0.0, ((marks[0][1] if marks else ended) - launched)
                                         .total_seconds())}
    for i, (stage, first, last) in enumerate(marks):
        begin = marks[i - 1][2] if i else first
        end = ended if i + 1 == len(marks) else last
        out[stage] = out.get(stage, 0.0) + max(0.0, (end - begin).total_seconds())
    return out


def pipeline_lines(seconds: dict[str, float], spent_usd: Decimal, quoted: Sequence[dict],
                   evals: dict[str, Evaluation]) -> list[str]:
    """Per-stage time and cost (the metered spend shared by wall time, beside the quote's) and
    the SFT baseline against RL."""
    total = sum(seconds.values()) or 1.0
    quoted_cost = {q["stage"]: q["cost_usd"] for q in quoted}
    names = [s for s in STAGE_ORDER if s in seconds] + [s for s in seconds if s not in STAGE_ORDER]
    rows, left = [], spent_usd
    for i, st in enumerate(names):
        cost = left if i == len(names) - 1 else (
            spent_usd * Decimal(str(seconds[st] / total))).quantize(Decimal("0.01"))
        left -= cost
        q = f" (quoted ${quoted_cost[st]:,.2f})" if st in quoted_cost else ""
        rows.append(f"{st:<5} {_dur(seconds[st]):>8}  ${cost:,.2f}{q}")
    lines = ["Stages:", "```", *rows, "```"]
    before = evals.get("before_rl")
    after = evals.get("after_rl")
    if before and after:
        lines.append("SFT baseline vs RL: " + _compare(before, after))
    elif evals:
        only = next(iter(evals.values()))
        lines.append(f"Evaluation ({only.label.replace('_', ' ')}): " + _figures(only))
    return lines


def _compare(before: Evaluation, after: Evaluation) -> str:
    parts = []
    for name, a, b, pct in (("mean reward", before.mean_reward, after.mean_reward, False),
                            ("pass rate", before.pass_rate, after.pass_rate, True),
                            ("eval loss", before.loss, after.loss, False)):
        if a is None or b is None:
            continue
        fmt = (lambda x: f"{x:.0%}") if pct else (lambda x: f"{x:.3f}")
        delta = b - a
        parts.append(f"{name} {fmt(a)} → {fmt(b)} ({'+' if delta >= 0 else '−'}"
                     f"{fmt(abs(delta))})")
    return "; ".join(parts) or "no comparable figures"


def _figures(e: Evaluation) -> str:
    parts = [f"mean reward {e.mean_reward:.3f}" if e.mean_reward is not None else "",
             f"pass rate {e.pass_rate:.0%}" if e.pass_rate is not None else "",
             f"loss {e.loss:.3f}" if e.loss is not None else ""]
    return ", ".join(p for p in parts if p) or "no figures"


def _dur(seconds: float) -> str:
    s = int(round(seconds))
    h, rest = divmod(s, 3600)
    m, s = divmod(rest, 60)
    return f"{h}h {m:02d}m" if h else f"{m}m {s:02d}s"
