"""The bundled demo dataset (`data=demo`): short instructions with checkable answers.

Regenerate with `python -m training.recipes.builtin.demo_data` (deterministic: the same file every time; a test
checks the bundled copy matches). Real, small tasks — arithmetic, word reversal, capitals,
letter counting, unit conversion — so a loss curve on it means something even for a tiny model.
Most rows are prompt/completion; some are chat `messages`, so both formats are exercised.
"""

from __future__ import annotations

import json
import random
from pathlib import Path

DEMO_PATH = Path(__file__).with_name("demo.jsonl")

CAPITALS = {
    "France": "Paris", "Germany": "Berlin", "Italy": "Rome", "Spain": "Madrid",
    "Portugal": "Lisbon", "Japan": "Tokyo", "Canada": "Ottawa", "Australia": "Canberra",
    "Brazil": "Brasilia", "Egypt": "Cairo", "Kenya": "Nairobi", "India": "New Delhi",
    "Mexico": "Mexico City", "Norway": "Oslo", "Sweden": "Stockholm", "Finland": "Helsinki",
    "Poland": "Warsaw", "Greece": "Athens", "Turkey": "Ankara", "Peru": "Lima",
    "Chile": "Santiago", "Argentina": "Buenos Aires", "Ireland": "Dublin", "Austria": "Vienna",
}
WORDS = (
    "planet river garden window silver forest candle bridge rocket pencil orange thunder "
    "marble castle dragon harbor jungle lantern meadow puzzle saddle tunnel violin wizard "
    "anchor basket cactus dolphin engine falcon glacier hammer island jacket kettle ladder"
).split()


def _arithmetic(rng: random.Random) -> dict:
    a, b = rng.randint(2, 99), rng.randint(2, 99)
    op = rng.choice("+-*")
    answer = {"+": a + b, "-": a - b, "*": a * b}[op]
    return {"prompt": f"What is {a} {op} {b}?", "completion": f"{a} {op} {b} = {answer}."}


def _reverse(rng: random.Random) -> dict:
    word = rng.choice(WORDS)
    return {"prompt": f"Reverse the word '{word}'.", "completion": word[::-1]}


def _capital(rng: random.Random) -> dict:
    country = rng.choice(sorted(CAPITALS))
    return {
        "messages": [
            {"role": "user", "content": f"What is the capital of {country}?"},
            {"role": "assistant", "content": f"The capital of {country} is {CAPITALS[country]}."},
        ]
    }


def _count(rng: random.Random) -> dict:
    word = rng.choice(WORDS)
    letter = rng.choice(sorted(set(word)))
    n = word.count(letter)
    return {
        "prompt": f"How many times does the letter '{letter}' appear in '{word}'?",
        "completion": f"{n} time{'s' if n != 1 else ''}.",
    }


def _convert(rng: random.Random) -> dict:
    km = rng.randint(1, 500)
    return {"prompt": f"Convert {km} km to metres.", "completion": f"{km} km = {km * 1000} m."}


TASKS = (_arithmetic, _reverse, _capital, _count, _convert)


def demo_rows(n: int = 400, seed: int = 7) -> list[dict]:
    rng = random.Random(seed)
    return [TASKS[i % len(TASKS)](rng) for i in range(n)]


def render(rows: list[dict]) -> str:
    return "".join(json.dumps(row, sort_keys=True) + "\n" for row in rows)


if __name__ == "__main__":
    DEMO_PATH.write_text(render(demo_rows()))
    print(f"wrote {DEMO_PATH}")
