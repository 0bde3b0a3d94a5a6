"""The published throughput points (throughput_points.toml) and how well the model explains them.

Read by the calibration test and by anyone who changes the throughput model: `score()` gives the
median error factor, the share within ±25%, and the worst points.
"""

from __future__ import annotations

import statistics
import tomllib
from dataclasses import dataclass
from functools import cache
from importlib import resources

from workers.quoting.throughput import Setup, tokens_per_s_per_gpu


@dataclass(frozen=True)
class Point:
    id: str
    source: str
    setup: Setup
    measured: float  # tokens/s per GPU
    arithmetic: str
    exclude: str | None = None


@cache
def load_points() -> tuple[Point, ...]:
    text = resources.files("workers.quoting").joinpath("throughput_points.toml").read_text()
    out = []
    for p in tomllib.loads(text)["point"]:
        setup = Setup(
            gpu=p["gpu"], method=p["method"], params=p["params_b"] * 1e9, layers=p["layers"],
            hidden=p["hidden"], seq_len=p["seq_len"], micro_batch=p["micro_batch"],
            gradient_checkpointing=p["grad_ckpt"], flash_attention=p["flash_attn"],
            n_gpus=p["gpus"], interconnect=p.get("interconnect", "none"), stack=p["stack"],
            sharded=p.get("sharded", False))
        out.append(Point(p["id"], p["source"], setup, float(p["tokens_per_s"]),
                         p["arithmetic"], p.get("exclude")))
    return tuple(out)


@dataclass(frozen=True)
class Scored:
    point: Point
    predicted: float

    @property
    def factor(self) -> float:
        """How far off, as a factor >= 1 whichever way."""
        r = self.predicted / self.point.measured
        return max(r, 1.0 / r)


@dataclass(frozen=True)
class Score:
    scored: list[Scored]
    excluded: list[Point]

    @property
    def median_factor(self) -> float:
        return statistics.median(s.factor for s in self.scored)

    @property
    def within_25(self) -> float:
        return sum(s.factor <= 1.25 for s in self.scored) / len(self.scored)

    def worst(self, n: int = 3) -> list[Scored]:
        return sorted(self.scored, key=lambda s: s.factor, reverse=True)[:n]

    def report(self) -> str:
        lines = [f"throughput model vs {len(self.scored)} published points "
                 f"({len(self.excluded)} excluded, reasons in throughput_points.toml):",
                 f"  median error factor {self.median_factor:.3f}; "
                 f"{self.within_25:.0%} within ±25%"]
        for s in self.worst():
            way = "over" if s.predicted > s.point.measured else "under"
            lines.append(f"  worst: {s.point.id}: predicted {s.predicted:,.0f} vs measured "
                         f"{s.point.measured:,.0f} tok/s/GPU ({s.factor:.2f}x {way})")
        for p in self.excluded:
            lines.append(f"  excluded: {p.id}")
        return "\n".join(lines)


def score(predict=tokens_per_s_per_gpu) -> Score:
    points = load_points()
    scored = [Scored(p, predict(p.setup)) for p in points if not p.exclude]
    return Score(scored, [p for p in points if p.exclude])
