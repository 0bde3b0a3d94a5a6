"""Training throughput: the sft recipe against the Hugging Face Trainer, on 1 GPU and on every GPU.

    python benchmarks/train_throughput.py            # NVIDIA GPUs: ~1B and ~8B Llama shapes, LoRA
    python benchmarks/train_throughput.py --smoke    # CPU: the tiny model, 1 and 2 gloo processes

For each shape and each side (recipe, Trainer) it starts one worker on 1 GPU and one under
torchrun on all GPUs, same model (random-initialised from config: nothing downloaded), seq len,
per-GPU batch, LoRA settings and bf16. Prints tokens/s, MFU (model FLOPs / peak) and scaling
efficiency (tokens/s on N GPUs / (N x on 1)), and appends a dated section to
benchmarks/RESULTS.md (--results). The per-GPU batch is fixed, so N GPUs train a global batch N
times larger (weak scaling): the figure that says whether the quote's N GPUs do N GPUs' work.

FLOPs per token: LoRA 4·N, full 6·N (N: base parameters without the input embedding), plus
attention, 12·L·d·seq for full and 8·L·d·seq for LoRA (no weight-gradient GEMMs for frozen
weights). Peak: the GPU's dense bf16 datasheet figure (docs/multi-gpu.md); on CPU the fp32 GEMM
rate measured here. The first --warmup steps of each worker are not timed.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
PEAK_TFLOPS = {"H100": 989, "H200": 989, "B200": 2250, "A100": 312, "L40S": 362, "L4": 121, "A10G": 70,
               "A10": 125}
# (model, per-GPU batch, micro batch, gradient checkpointing) at seq 2048, bf16, LoRA r16.
GPU_SHAPES = [("random-llama-1b", 8, 4, False), ("random-llama-8b", 4, 1, True)]


def peak_flops() -> tuple[float, str]:
    import torch

    if torch.cuda.is_available():
        name = torch.cuda.get_device_name()
        tflops = next((v for k, v in PEAK_TFLOPS.items() if k in name), float("nan"))
        return tflops * 1e12, f"{name} (datasheet {tflops} TFLOP/s bf16 dense)"
    n, best = 1024, float("inf")
    a, b = torch.randn(n, n), torch.randn(n, n)
    for _ in range(5):
        started = time.perf_counter()
        a @ b
        best = min(best, time.perf_counter() - started)
    return 2 * n**3 / best, f"CPU (measured fp32 GEMM {2 * n**3 / best / 1e9:.1f} GFLOP/s per process)"


def flops_per_token(model, spec) -> float:
    base = model.get_base_model() if hasattr(model, "get_base_model") else model
    base = getattr(base, "module", base)
    config = base.config
    n = sum(p.numel() for name, p in base.named_parameters() if "lora_" not in name)
    n -= base.get_input_embeddings().weight.numel() if not config.tie_word_embeddings else 0
    lora = spec.method != "full"
    attention = (8 if lora else 12) * config.num_hidden_layers * config.hidden_size * spec.seq_len
    return (4 if lora else 6) * n + attention


# -- workers (one per launch; rank 0 writes the result) -----------------------------------------
def worker(args) -> None:
    import torch

    from schemas.job import JobSpec
    from training.recipes import dist

    world = int(os.environ.get("WORLD_SIZE", "1"))
    spec = JobSpec(job_id="bench", store_uri="file:///unused", model=args.model, method="lora",
                   seq_len=args.seq_len, batch_size=args.batch * world, micro_batch_size=args.micro,
                   max_steps=args.steps, epochs=1000, gradient_checkpointing=args.gc, precision="bf16")
    marks: list[float] = []
    sync = torch.cuda.synchronize if torch.cuda.is_available() else (lambda: None)
    with tempfile.TemporaryDirectory() as tmp:
        if args.worker == "recipe":
            from training.recipes.sft import SFTRecipe

            recipe = SFTRecipe(spec, Path(tmp))
            recipe.setup()

            def on_step(step, loss, tokens):
                sync()
                marks.append(time.perf_counter())

            recipe.train(on_step)
            model, ctx = recipe.model, recipe.ctx
        else:
            model, ctx = trainer(spec, Path(tmp), marks, sync)
        if ctx.main:
            timed = marks[args.warmup:]
            rate = (len(timed) - 1) * spec.batch_size * spec.seq_len / (timed[-1] - timed[0])
            Path(args.out).write_text(json.dumps({"tokens_per_s": rate, "world": world,
                                                  "flops_per_token": flops_per_token(model, spec)}))
    dist.close()


def trainer(spec, workdir: Path, marks: list, sync):
    """The Trainer with its defaults on the same model build, data, batch and seq len."""
    import torch
    from transformers import Trainer, TrainerCallback, TrainingArguments

    from training.recipes import dist
    from training.recipes.data import prepare
    from training.recipes.model import load_model, load_tokenizer, micro_batch, placement

    ctx = dist.context()
    where = placement(spec, ctx.device())
    tokenizer = load_tokenizer(spec)
    data = prepare(spec, tokenizer, workdir / "cache")
    rows = [{"input_ids": torch.from_numpy(data.input_ids[i]), "labels": torch.from_numpy(data.labels[i]),
             "attention_mask": torch.from_numpy(data.attention_mask[i])} for i in range(len(data.input_ids))]
    model = load_model(spec, tokenizer, where)
    micro, per_rank = micro_batch(spec, where), spec.batch_size // ctx.world
    cuda = torch.cuda.is_available()
    args = TrainingArguments(
        output_dir=str(workdir / "hf"), per_device_train_batch_size=min(micro, per_rank),
        gradient_accumulation_steps=max(1, per_rank // min(micro, per_rank)), max_steps=spec.max_steps,
        learning_rate=spec.learning_rate, lr_scheduler_type="linear", bf16=cuda, use_cpu=not cuda,
        save_strategy="no", report_to=[], logging_steps=10**6, seed=spec.seed,
        gradient_checkpointing=spec.gradient_checkpointing, dataloader_num_workers=0, disable_tqdm=True,
        ddp_backend="gloo" if ctx.distributed and not cuda else None, ddp_find_unused_parameters=False,
    )

    class Clock(TrainerCallback):
        def on_step_end(self, args, state, control, **kwargs):
            sync()
            marks.append(time.perf_counter())

    Trainer(model=model, args=args, train_dataset=rows, callbacks=[Clock()]).train()
    return model, ctx


# -- the driver ---------------------------------------------------------------------------------
def launch(side: str, nproc: int, shape: tuple, opts, out: Path) -> dict:
    model, batch, micro, gc = shape
    args = [str(Path(__file__).resolve()), "--worker", side, "--out", str(out), "--model", model,
            "--batch", str(batch), "--micro", str(micro), "--seq-len", str(opts.seq_len),
            "--steps", str(opts.steps), "--warmup", str(opts.warmup)] + (["--gc"] if gc else [])
    prefix = [sys.executable] if nproc == 1 else [sys.executable, "-m", "torch.distributed.run",
                                                   "--standalone", f"--nproc_per_node={nproc}"]
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    done = subprocess.run(prefix + args, env=env, capture_output=True, text=True, timeout=opts.timeout)
    if done.returncode != 0 or not out.exists():
        return {"error": (done.stderr or done.stdout).strip().splitlines()[-1:] or ["no output"]}
    return json.loads(out.read_text())


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--smoke", action="store_true", help="CPU: tiny model, 1 and 2 gloo processes")
    parser.add_argument("--seq-len", type=int, default=2048)
    parser.add_argument("--steps", type=int, default=12)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--timeout", type=float, default=600)
    parser.add_argument("--results", default=str(ROOT / "benchmarks" / "RESULTS.md"))
    # worker-only
    parser.add_argument("--worker", choices=["recipe", "trainer"])
    parser.add_argument("--out")
    parser.add_argument("--model", default="tiny")
    parser.add_argument("--batch", type=int, default=2)
    parser.add_argument("--micro", type=int, default=0)
    parser.add_argument("--gc", action="store_true")
    opts = parser.parse_args(argv)
    if opts.worker:
        worker(opts)
        return 0
    import torch

    gpus = torch.cuda.device_count()
    if opts.smoke:
        shapes, counts = [("tiny", 2, 0, False)], [1, 2]
        opts.seq_len, opts.steps, opts.warmup = min(opts.seq_len, 64), min(opts.steps, 10), min(opts.warmup, 3)
    elif gpus == 0:
        print("no NVIDIA GPU here: run with --smoke on a CPU", file=sys.stderr)
        return 2
    else:
        shapes, counts = GPU_SHAPES, sorted({1, gpus})
    peak, where = peak_flops()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for shape in shapes:
            for side in ("recipe", "trainer"):
                for n in counts:
                    got = launch(side, n, shape, opts, Path(tmp) / f"{shape[0]}-{side}-{n}.json")
                    rows.append((shape, side, n, got))
                    print(shape[0], side, n, got, flush=True)
    table = render(rows, peak, where, opts)
    print(table)
    with open(opts.results, "a") as handle:
        handle.write(table)
    return 0 if all("error" not in r[3] for r in rows) else 1


def render(rows, peak: float, where: str, opts) -> str:
    one = {(s[0], side): r.get("tokens_per_s") for s, side, n, r in rows if n == 1}
    lines = [f"\n## Training throughput, {datetime.now(UTC):%Y-%m-%d %H:%M} UTC — "
             f"`python benchmarks/train_throughput.py{' --smoke' if opts.smoke else ''}`\n",
             f"{where}; seq {opts.seq_len}, LoRA r16 all projections, bf16 on GPU (fp32 on CPU), "
             f"{opts.steps} steps of which {opts.warmup} untimed; per-GPU batch fixed (weak scaling).\n",
             "| model | side | GPUs | tokens/s | MFU | scaling efficiency |", "|---|---|---|---|---|---|"]
    for shape, side, n, r in rows:
        if "error" in r:
            lines.append(f"| {shape[0]} | {side} | {n} | failed: {r['error'][0][:80]} | | |")
            continue
        rate, base = r["tokens_per_s"], one.get((shape[0], side))
        mfu = rate * r["flops_per_token"] / (peak * n)
        scaling = f"{rate / (n * base):.0%}" if base and n > 1 else "—"
        lines.append(f"| {shape[0]} (batch {shape[1]}/GPU) | {side} | {n} | {rate:,.0f} | {mfu:.1%} | {scaling} |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    sys.exit(main())
