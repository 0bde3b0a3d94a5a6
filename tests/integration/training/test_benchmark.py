"""benchmarks/train_throughput.py --smoke: the GPU benchmark's whole path on CPU (tiny model,
1 and 2 gloo processes, the recipe and the Hugging Face Trainer), its table appended to a file."""

from __future__ import annotations

import subprocess
import sys

import pytest

from tests.support.agent import REPO

pytestmark = pytest.mark.slow


def test_throughput_smoke_measures_both_sides_on_one_and_two_processes(tmp_path):
    results = tmp_path / "RESULTS.md"
    results.write_text("# Benchmark results\n")
    out = subprocess.run([sys.executable, "benchmarks/train_throughput.py", "--smoke", "--results", str(results)],
                         cwd=REPO, capture_output=True, text=True, timeout=280)
    assert out.returncode == 0, out.stdout[-2000:] + out.stderr[-2000:]
    text = results.read_text()
    assert text.startswith("# Benchmark results\n") and "## Training throughput, " in text
    rows = [line.split("|")[1:-1] for line in text.splitlines() if line.startswith("| tiny")]
    assert [(r[1].strip(), r[2].strip()) for r in rows] == [("recipe", "1"), ("recipe", "2"),
                                                             ("trainer", "1"), ("trainer", "2")]
    for row in rows:
        assert float(row[3].replace(",", "")) > 0 and row[4].strip().endswith("%")
    assert rows[1][5].strip().endswith("%") and rows[3][5].strip().endswith("%")  # scaling efficiency
