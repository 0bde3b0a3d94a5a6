"""Loading the model and tokenizer for a spec: precision, LoRA/QLoRA/full, attention.

Precision decision: on CUDA the spec's precision applies (bf16 falls back to fp16 on GPUs without
bf16, e.g. T4/V100). LoRA/QLoRA keep the frozen base in that dtype and the adapters in fp32 under
autocast; full fine-tuning keeps fp32 master weights under autocast (fp16 adds a GradScaler).
On CPU everything runs in fp32 whatever the spec says: bf16 autocast on CPU is slow on most
CPUs, and CPU runs are for smoke tests and CI, where exact, reproducible losses matter most.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass

import torch

from schemas.errors import UserError
from training.recipes.builtin.tiny import is_tiny, tiny_model, tiny_tokenizer

log = logging.getLogger("trainops.recipe")

_ALL_PROJ = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]
# LoRA target modules per model family (config.model_type). Others: peft's "all-linear".
TARGET_MODULES = {"llama": _ALL_PROJ, "mistral": _ALL_PROJ, "qwen2": _ALL_PROJ, "qwen3": _ALL_PROJ}
_DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16, "fp32": torch.float32}


@dataclass
class Placement:
    device: torch.device
    weight_dtype: torch.dtype  # the frozen base (LoRA) or master weights (full)
    autocast: torch.dtype | None  # None: no autocast

    @property
    def scaled(self) -> bool:
        """fp16 needs loss scaling; bf16 and fp32 do not."""
        return self.autocast is torch.float16


def placement(spec, device: torch.device | None = None) -> Placement:
    """`device`: this rank's GPU under torchrun (default: the current CUDA device)."""
    if not torch.cuda.is_available():
        return Placement(torch.device("cpu"), torch.float32, None)
    precision = spec.precision
    if precision == "bf16" and not torch.cuda.is_bf16_supported():
        log.warning("this GPU has no bf16; using fp16 with loss scaling")
        precision = "fp16"
    dtype = _DTYPES[precision]
    autocast = None if dtype is torch.float32 else dtype
    weight = torch.float32 if spec.method == "full" else dtype
    return Placement(device or torch.device("cuda"), weight, autocast)


def load_tokenizer(spec):
    if is_tiny(spec.model):
        return tiny_tokenizer()
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(spec.model)
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    return tokenizer


def load_model(spec, tokenizer, where: Placement, empty: bool = False):
    """The base model on its device, with LoRA applied when the spec asks. `empty`: the same
    architecture with no weights read (parameters on the meta device), for sharded loading
    (training/recipes/sharded.py)."""
    quantization = None
    if spec.method == "qlora":
        quantization = _qlora_config(where)
    if empty:
        model = _empty(spec, tokenizer, where)
    elif is_tiny(spec.model):
        model = tiny_model(len(tokenizer), name=spec.model, device=where.device).to(where.weight_dtype)
    else:
        from transformers import AutoModelForCausalLM

        model = AutoModelForCausalLM.from_pretrained(
            spec.model, dtype=where.weight_dtype, attn_implementation="sdpa",
            quantization_config=quantization, token=os.environ.get("HF_TOKEN"),
            # 4-bit weights are placed as they load: on this rank's GPU, not always GPU 0.
            device_map={"": where.device} if quantization is not None else None,
        )
    model.config.use_cache = False  # the KV cache is for generation; training only wastes memory
    if quantization is None and not empty:
        model.to(where.device)
    if spec.gradient_checkpointing:
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
    if spec.method == "full":
        return model
    from peft import LoraConfig, get_peft_model, prepare_model_for_kbit_training

    if quantization is not None:
        model = prepare_model_for_kbit_training(model, use_gradient_checkpointing=spec.gradient_checkpointing)
    config = LoraConfig(
        r=spec.lora_r, lora_alpha=spec.lora_alpha, lora_dropout=spec.lora_dropout,
        target_modules=TARGET_MODULES.get(model.config.model_type, "all-linear"),
        task_type="CAUSAL_LM",
    )
    return get_peft_model(model, config)  # adapters in fp32 (peft's autocast_adapter_dtype)


def _empty(spec, tokenizer, where: Placement):
    meta = torch.device("meta")
    if is_tiny(spec.model):
        return tiny_model(len(tokenizer), name=spec.model, device=meta).to(where.weight_dtype)
    from transformers import AutoConfig, AutoModelForCausalLM

    config = AutoConfig.from_pretrained(spec.model, token=os.environ.get("HF_TOKEN"))
    with meta:
        return AutoModelForCausalLM.from_config(config, dtype=where.weight_dtype,
                                                attn_implementation="sdpa")


def _qlora_config(where: Placement):
    if where.device.type != "cuda":
        raise UserError("method=qlora needs a CUDA GPU (bitsandbytes 4-bit); use method=lora or full on CPU")
    try:
        import bitsandbytes  # noqa: F401
    except ImportError as exc:
        raise UserError("method=qlora needs the bitsandbytes package; pip install bitsandbytes, or use method=lora") from exc
    from transformers import BitsAndBytesConfig

    return BitsAndBytesConfig(
        load_in_4bit=True, bnb_4bit_quant_type="nf4", bnb_4bit_use_double_quant=True,
        bnb_4bit_compute_dtype=where.autocast or torch.bfloat16,
    )


def micro_batch(spec, where: Placement) -> int:
    """The spec's micro batch, or: the whole batch on CPU; on GPU the largest divisor of the
    batch that keeps a micro batch at <= 16k tokens (activations scale with tokens)."""
    if spec.micro_batch_size:
        return min(spec.micro_batch_size, spec.batch_size)
    if where.device.type == "cpu":
        return spec.batch_size
    fits = [d for d in range(1, spec.batch_size + 1) if spec.batch_size % d == 0 and d * spec.seq_len <= 16384]
    return max(fits or [1])
