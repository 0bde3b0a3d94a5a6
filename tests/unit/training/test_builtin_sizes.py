"""The bundled sets' sizes the quote relies on (training/recipes/builtin/__init__.py), recomputed
from the files with the recipe's own tokenisation: rows, and mean tokens per row. And the steps
the quote derives from them are the steps the recipe runs."""

from __future__ import annotations

import pytest

from schemas.job import JobSpec
from training.recipes.builtin import BUILTIN_DATA, BUILTIN_TOKENS_PER_ROW, builtin_rows


@pytest.fixture(scope="module")
def tokenizer():
    from training.recipes.builtin.tiny import tiny_tokenizer

    return tiny_tokenizer()


@pytest.mark.parametrize("data", sorted(BUILTIN_DATA))
def test_the_recorded_tokens_per_row_are_the_files(data, tokenizer, tmp_path):
    from training.recipes.data import load_rows, tokenize_cached

    rows, data_hash = load_rows(data)
    examples = tokenize_cached(rows, data_hash, tokenizer, tmp_path)
    assert builtin_rows(data) == len(rows)
    mean = sum(len(e[0]) for e in examples) / len(examples)
    assert BUILTIN_TOKENS_PER_ROW[data] == pytest.approx(mean, abs=0.005), \
        f"{data}: {mean:.2f} tokens a row; update BUILTIN_TOKENS_PER_ROW"


@pytest.mark.parametrize(("data", "fields"), [
    ("demo", dict(seq_len=256, batch_size=8, epochs=3)),
    ("demo", dict(seq_len=64, batch_size=4, epochs=1, max_samples=64)),
    ("demo-rl", dict(seq_len=64, batch_size=8, epochs=2, eval_samples=16)),
    ("demo-rl", dict(seq_len=128, batch_size=2, epochs=50, max_steps=30)),
])
def test_the_quotes_steps_are_the_recipes(data, fields, tokenizer, tmp_path):
    from schemas.spec import TrainRequest
    from training.recipes.data import prepare
    from workers.quoting.workload import packed_steps, trainable_rows

    spec = JobSpec(job_id="j-steps", store_uri="file:///nowhere", data=data, model="tiny",
                   **fields)
    ran = prepare(spec, tokenizer, tmp_path).total_steps
    request = TrainRequest(text="t", model="tiny", data=data, budget_usd=1, cap_usd=1,
                           samples=fields.get("max_samples"), seq_len=fields["seq_len"],
                           batch_size=fields["batch_size"], epochs=fields["epochs"],
                           max_steps=fields.get("max_steps"),
                           eval_samples=fields.get("eval_samples"))
    quoted = packed_steps(request, trainable_rows(request), BUILTIN_TOKENS_PER_ROW[data])
    # The mean stands for the rows a samples= choice keeps: within a step of the recipe's count.
    assert abs(quoted - ran) <= max(1, 0.1 * ran), (quoted, ran)
