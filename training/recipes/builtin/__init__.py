"""What ships with the package so a run needs no download: the tiny model and the demo data.

Importing this package stays cheap (no torch): the control plane reads the bundled sets' sizes
from here to quote the rows a run will actually train on."""

from __future__ import annotations

from functools import cache
from pathlib import Path

# `data=` names of the bundled sets -> their files beside this module.
BUILTIN_DATA = {"demo": "demo.jsonl", "demo-rl": "rl_demo.jsonl"}
# Mean tokens per row of each bundled set as the recipe tokenises it (the tiny model's tokenizer
# and chat template, training/recipes/data.py), so the quote can pack rows into seq_len
# sequences as the recipe does (docs/throughput-model.md). Another model's tokenizer splits the
# same short rows into a similar count (its chat template's markers are most of a row); a test
# recomputes these figures from the files.
BUILTIN_TOKENS_PER_ROW = {"demo": 28.93, "demo-rl": 17.23}


def builtin_path(data: str) -> Path | None:
    name = BUILTIN_DATA.get(data)
    return Path(__file__).with_name(name) if name else None


@cache
def builtin_rows(data: str) -> int | None:
    """The rows of a bundled set (one JSON object per non-blank line); None for any other data,
    whose size the control plane cannot know without reading it."""
    path = builtin_path(data)
    if path is None:
        return None
    return sum(1 for line in path.read_text().splitlines() if line.strip())
