"""The final chart of a sweep or a pipeline (issues #11, #12), written to a PNG with matplotlib.

Top panel: a sweep draws one loss line per run against its steps (the best run thicker); a
pipeline draws the SFT loss and, on its own axis, the RL reward over time, with the evaluations
before and after RL marked. Bottom panel: cumulative spend with the warning and the cap, as in
the single-run chart (workers/rules/report.py).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from pathlib import Path

from workers.rules.runs_report import Evaluation, Row, RunResult


def render_runs_chart(path: Path, *, spend: Sequence[tuple[datetime, float]], cap_usd: float,
                      warn_usd: float, runs: Sequence[RunResult] = (), best: str | None = None,
                      rows: Sequence[Row] = (), evals: dict[str, Evaluation] | None = None,
                      title: str = "") -> Path:
    from workers.rules.charts import pyplot

    plt = pyplot()

    fig, (top, ax_spend) = plt.subplots(2, 1, figsize=(8, 7), dpi=100,
                                        gridspec_kw={"height_ratios": [3, 2]})
    if runs:
        for r in runs:
            if not r.curve:
                continue
            steps, losses = zip(*r.curve, strict=True)
            bold = r.name == best
            top.plot(steps, losses, linewidth=2.6 if bold else 1.2,
                     label=f"{r.name}{' (best)' if bold else ''}")
        top.set_xlabel("step")
        top.set_ylabel("loss")
        top.legend(loc="upper right", fontsize="small")
    else:
        _stages_panel(top, rows, evals or {})
    top.set_title(title)
    if spend:
        ax_spend.plot([t for t, _ in spend], [v for _, v in spend], color="tab:green",
                      label="spend (USD)")
    ax_spend.axhline(warn_usd, color="tab:orange", linestyle="--",
                     label=f"warning ${warn_usd:.2f}")
    ax_spend.axhline(cap_usd, color="tab:red", linestyle="-", label=f"cap ${cap_usd:.2f}")
    ax_spend.set_ylim(bottom=0, top=max(cap_usd * 1.1,
                                        max((v for _, v in spend), default=0) * 1.1))
    ax_spend.set_ylabel("spend (USD)")
    ax_spend.set_xlabel("time (UTC)")
    ax_spend.legend(loc="upper left", fontsize="small")
    from workers.rules.charts import save

    return save(fig, path)


def _stages_panel(ax, rows: Sequence[Row], evals: dict[str, Evaluation]) -> None:
    """SFT loss and RL reward over time; evaluations as labelled points on the reward axis."""
    loss = [(r.at, r.loss) for r in rows if r.loss is not None and r.stage in (None, "sft")]
    reward = [(r.at, r.reward) for r in rows if r.reward is not None and r.stage == "rl"]
    handles = []
    if loss:
        handles += ax.plot([t for t, _ in loss], [v for _, v in loss], color="tab:blue",
                           label="SFT loss")
    ax.set_ylabel("loss")
    ax_reward = ax.twinx()
    if reward:
        handles += ax_reward.plot([t for t, _ in reward], [v for _, v in reward],
                                  color="tab:purple", label="RL reward")
    marks = [(r.at, r.eval) for r in rows if r.eval is not None]
    for at, e in marks:
        label = str(e.get("label") or "eval")
        value = evals.get(label)
        if value is None or value.mean_reward is None:
            continue
        handles.append(ax_reward.scatter([at], [value.mean_reward], marker="D", zorder=3,
                                         label=f"eval {label.replace('_', ' ')}"))
    ax_reward.set_ylabel("reward")
    if handles:
        ax.legend(handles=handles, loc="upper right", fontsize="small")
