"""RL throughput on this machine: generation tokens/s (what rl and eval spend most time on) and
GRPO optimizer steps/s, with the repo's own recipes and the built-in models.

    python benchmarks/rl_throughput.py                      # CPU: tiny model
    python benchmarks/rl_throughput.py --model random-llama-small --threads 2

Generation: `--prompts` demo-rl prompts x `--samples` completions each, `--new-tokens` tokens
(sampling at temperature 1; the random model rarely emits its end token, so nearly every
completion runs the full length). Tokens/s counts generated tokens only. GRPO: `--steps` steps of
`--batch` tasks x `--samples` completions, the `numeric` reward, LoRA; the first step is not timed.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
os.environ.setdefault("HF_HUB_OFFLINE", "1")

import torch  # noqa: E402

from schemas.job import JobSpec  # noqa: E402
from training.recipes.model import load_tokenizer, placement  # noqa: E402
from training.recipes.policy import load_policy, sample  # noqa: E402
from training.recipes.rl import RLRecipe  # noqa: E402
from training.recipes.tasks import prompt_text, training_tasks  # noqa: E402


def generation(spec: JobSpec, prompts: int, cache: Path, repeats: int = 3) -> float:
    tokenizer = load_tokenizer(spec)
    where = placement(spec)
    model = load_policy(spec, tokenizer, where, None)
    texts = [prompt_text(tokenizer, t["prompt"]) for t in training_tasks(spec, cache)[:prompts]]
    sample(model, tokenizer, texts[:2], 2, 4, 1.0, where.device)  # warm-up
    made, spent = 0, 0.0
    for _ in range(repeats):
        started = time.perf_counter()
        groups = sample(model, tokenizer, texts, spec.n_samples, spec.max_new_tokens, 1.0, where.device)
        spent += time.perf_counter() - started
        made += sum(n for group in groups for _, n in group)
    return made / spent


def grpo(spec: JobSpec, workdir: Path, cache: Path) -> float:
    recipe = RLRecipe(spec, workdir, cache)
    recipe.setup()
    marks: list[float] = []
    recipe.train(lambda step, loss, tokens: marks.append(time.perf_counter()))
    return (len(marks) - 1) / (marks[-1] - marks[0])


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--model", default="tiny")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--prompts", type=int, default=16)
    parser.add_argument("--samples", type=int, default=8)
    parser.add_argument("--new-tokens", type=int, default=32)
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--steps", type=int, default=11)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    spec = JobSpec(job_id="bench", store_uri="file:///unused", model=args.model, data="demo-rl", reward="numeric",
                   n_samples=args.samples, max_new_tokens=args.new_tokens, batch_size=args.batch,
                   max_steps=args.steps, learning_rate=1e-3, seq_len=128)
    with tempfile.TemporaryDirectory() as tmp:
        cache = Path(tmp) / "cache"
        rate = generation(spec, args.prompts, cache)
        print(f"generation: {rate:,.0f} tokens/s ({args.model}, {args.prompts} prompts x {args.samples} samples x "
              f"{args.new_tokens} tokens, {args.threads} thread(s), {placement(spec).device})")
        steps = grpo(spec, Path(tmp) / "grpo", cache)
        print(f"grpo: {steps:.2f} steps/s ({args.batch} tasks x {args.samples} samples x {args.new_tokens} "
              f"tokens per step, {steps * args.batch * args.samples * args.new_tokens:,.0f} completion tokens/s)")


if __name__ == "__main__":
    main()
