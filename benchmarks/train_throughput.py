"""Training throughput: this repo's sft recipe against the Hugging Face Trainer, same model, data,
batch and sequence length, in one run. Prints tokens/s and utilisation (model FLOPs / peak).

    python benchmarks/train_throughput.py                          # CPU: tiny model, seq 64
    python benchmarks/train_throughput.py --model random-llama-small --seq-len 128

On a GPU (random-initialised Llama shapes, nothing downloaded; bf16, SDPA):

    python benchmarks/train_throughput.py --model random-llama-1b --seq-len 2048 --batch 8 --steps 30
    python benchmarks/train_throughput.py --model random-llama-8b --seq-len 2048 --batch 8 \\
        --micro-batch 2 --gradient-checkpointing --steps 20

FLOPs per token: LoRA 4·N, full 6·N (N: base parameters without the input embedding), plus
attention, 12·L·d·seq for full and 8·L·d·seq for LoRA (PaLM accounting, no weight-gradient
GEMMs for frozen weights). Peak: the GPU's dense bf16 figure from shared/FACTS.md; on CPU the
fp32 GEMM rate measured here (so CPU "utilisation" is against what this CPU can do in matmuls).
The first --warmup steps of each side are not timed (allocation, compilation, caches).
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
os.environ.setdefault("HF_HUB_OFFLINE", "1")

import torch  # noqa: E402

from schemas.spec import JobSpec  # noqa: E402
from training.recipes.sft import SFTRecipe  # noqa: E402

PEAK_TFLOPS = {"H100": 989, "H200": 989, "A100": 312, "L40S": 362, "L4": 121, "A10G": 70, "A10": 125,
               "V100": 125, "T4": 65}


def peak_flops() -> tuple[float, str]:
    if torch.cuda.is_available():
        name = torch.cuda.get_device_name()
        for key, tflops in PEAK_TFLOPS.items():
            if key in name:
                return tflops * 1e12, f"{name} (datasheet {tflops} TFLOP/s bf16 dense)"
        return float("nan"), f"{name} (no datasheet figure)"
    n, best = 1024, float("inf")
    a, b = torch.randn(n, n), torch.randn(n, n)
    for _ in range(5):
        started = time.perf_counter()
        a @ b
        best = min(best, time.perf_counter() - started)
    rate = 2 * n**3 / best
    return rate, f"CPU, {torch.get_num_threads()} threads (measured fp32 GEMM {rate / 1e9:.1f} GFLOP/s)"


def flops_per_token(model, spec) -> float:
    base = model.get_base_model() if hasattr(model, "get_base_model") else model
    config = base.config
    n = sum(p.numel() for name, p in base.named_parameters() if "lora_" not in name)
    n -= base.get_input_embeddings().weight.numel() if not config.tie_word_embeddings else 0
    lora = spec.method != "full"
    attention = (8 if lora else 12) * config.num_hidden_layers * config.hidden_size * spec.seq_len
    return (4 if lora else 6) * n + attention


def time_recipe(spec, workdir: Path, warmup: int) -> tuple[float, SFTRecipe]:
    recipe = SFTRecipe(spec, workdir)
    recipe.setup()
    marks: list[tuple[float, int]] = []

    def on_step(step, loss, tokens):
        if step == warmup:
            _sync()
            marks.append((time.perf_counter(), 0))
        elif step > warmup:
            marks.append((time.perf_counter(), tokens))

    recipe.train(on_step)
    _sync()
    return _rate(marks), recipe


def time_trainer(spec, recipe: SFTRecipe, workdir: Path, warmup: int) -> float:
    """The Trainer with its defaults, on the same model build, data, batch and seq_len."""
    from transformers import Trainer, TrainerCallback, TrainingArguments

    from training.recipes.model import load_model

    data = recipe.data
    rows = [{"input_ids": torch.from_numpy(data.input_ids[i]), "labels": torch.from_numpy(data.labels[i]),
             "attention_mask": torch.from_numpy(data.attention_mask[i])} for i in range(len(data.input_ids))]
    model = load_model(spec, recipe.tokenizer, recipe.where)
    cuda = torch.cuda.is_available()
    args = TrainingArguments(
        output_dir=str(workdir / "hf"), per_device_train_batch_size=recipe.micro,
        gradient_accumulation_steps=max(1, spec.batch_size // recipe.micro), max_steps=recipe.total_steps,
        learning_rate=spec.learning_rate, warmup_steps=spec.warmup_steps, lr_scheduler_type="linear",
        bf16=cuda and spec.precision == "bf16", fp16=cuda and spec.precision == "fp16", use_cpu=not cuda,
        save_strategy="no", report_to=[], logging_steps=10**6, seed=spec.seed,
        gradient_checkpointing=spec.gradient_checkpointing, dataloader_num_workers=0, disable_tqdm=True,
    )
    marks: list[tuple[float, int]] = []
    tokens_per_step = spec.batch_size * spec.seq_len

    class Clock(TrainerCallback):
        def on_step_end(self, args, state, control, **kwargs):
            _sync()
            if state.global_step >= warmup:
                marks.append((time.perf_counter(), 0 if state.global_step == warmup else tokens_per_step))

    Trainer(model=model, args=args, train_dataset=rows, callbacks=[Clock()]).train()
    return _rate(marks)


def _rate(marks: list[tuple[float, int]]) -> float:
    if len(marks) < 2:
        return float("nan")
    return sum(t for _, t in marks[1:]) / (marks[-1][0] - marks[0][0])


def _sync() -> None:
    if torch.cuda.is_available():
        torch.cuda.synchronize()


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", default="tiny", help="tiny | random-llama-small | random-llama-1b | random-llama-8b")
    parser.add_argument("--method", default="lora", choices=["lora", "full", "qlora"])
    parser.add_argument("--seq-len", type=int, default=64)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--micro-batch", type=int, default=0)
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--repeats", type=int, default=1, help="runs per side; the median is printed")
    parser.add_argument("--gradient-checkpointing", action="store_true")
    parser.add_argument("--compile", action="store_true")
    args = parser.parse_args(argv)
    spec = JobSpec(job_id="bench", store_uri="file:///unused", model=args.model, method=args.method,
                   seq_len=args.seq_len, batch_size=args.batch, micro_batch_size=args.micro_batch,
                   max_steps=args.steps, epochs=1000, gradient_checkpointing=args.gradient_checkpointing,
                   compile=args.compile)
    peak, where = peak_flops()
    ours, theirs = [], []
    with tempfile.TemporaryDirectory() as tmp:
        for _ in range(args.repeats):
            rate, recipe = time_recipe(spec, Path(tmp), args.warmup)
            ours.append(rate)
            fpt = flops_per_token(recipe.model, spec)
            theirs.append(time_trainer(spec, recipe, Path(tmp), args.warmup))
            recipe.cleanup()
    mine, hf = statistics.median(ours), statistics.median(theirs)
    print(f"device: {where}")
    print(f"model {args.model} ({args.method}), seq_len {args.seq_len}, batch {args.batch} "
          f"(micro {recipe.micro}), {args.steps} steps ({args.warmup} untimed), {fpt / 1e6:.2f} MFLOP/token")
    print(f"{'':<16}{'tokens/s':>12}{'utilisation':>14}")
    for name, rate in (("trainops sft", mine), ("HF Trainer", hf)):
        print(f"{name:<16}{rate:>12.0f}{rate * fpt / peak:>13.1%}")
    print(f"speed-up: {mine / hf:.2f}x  (runs per side: {args.repeats}; all: ours {[round(r) for r in ours]}, "
          f"trainer {[round(r) for r in theirs]})")


if __name__ == "__main__":
    main()
