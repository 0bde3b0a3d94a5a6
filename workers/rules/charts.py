"""What every chart of a report shares: matplotlib without a display, and one way to write a
figure to its file (the folder made, the figure freed: a worker draws many over its life)."""

from __future__ import annotations

from pathlib import Path


def pyplot():
    """matplotlib.pyplot on the Agg backend (a worker has no display), imported only when a
    chart is drawn: the rules stay importable without it."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def save(fig, path: Path) -> Path:
    fig.autofmt_xdate()
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    pyplot().close(fig)
    return path
