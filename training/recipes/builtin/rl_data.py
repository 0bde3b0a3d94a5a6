"""The bundled RL demo tasks (`data=demo-rl`): short prompts with one checkable answer.

Regenerate with `python -m training.recipes.builtin.rl_data` (deterministic: the same file every
time; a test checks the bundled copy matches). Two kinds, alternating: single-digit sums
("What is 3 + 4?" -> "7") and reversing a short word ("Reverse 'cat'." -> "tac"). Each row has
`prompt`, `answer` (what `reward=exact` compares with) and `completion` (the same answer, so an
sft stage can warm up on the very same file).
"""

from __future__ import annotations

import json
import random
from pathlib import Path

RL_DEMO_PATH = Path(__file__).with_name("rl_demo.jsonl")
WORDS = ("cat dog sun map cup pen owl fox bee ant jam hat box kit log net "
         "star moon tree fish bird frog lamp rope ship door").split()


def _sum(rng: random.Random) -> dict:
    a, b = rng.randint(0, 9), rng.randint(0, 9)
    return {"prompt": f"What is {a} + {b}?", "answer": str(a + b), "kind": "sum"}


def _reverse(rng: random.Random) -> dict:
    word = rng.choice(WORDS)
    return {"prompt": f"Reverse '{word}'.", "answer": word[::-1], "kind": "reverse"}


def rl_rows(n: int = 256, seed: int = 11) -> list[dict]:
    rng = random.Random(seed)
    rows = [(_sum, _reverse)[i % 2](rng) for i in range(n)]
    return [{**row, "completion": row["answer"]} for row in rows]


def render(rows: list[dict]) -> str:
    return "".join(json.dumps(row, sort_keys=True) + "\n" for row in rows)


if __name__ == "__main__":
    RL_DEMO_PATH.write_text(render(rl_rows()))
    print(f"wrote {RL_DEMO_PATH}")
