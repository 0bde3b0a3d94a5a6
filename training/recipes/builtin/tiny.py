"""`model=tiny` (and other built-ins): a small random-initialised Llama and a tokenizer built here, with no downloads.

For smoke tests, the demo and CI. The tokenizer is a byte-level BPE trained on the bundled demo
data when first asked for (well under a second); the model is seeded, so every build of it is
the same model, which exact-resume tests rely on.
"""

from __future__ import annotations

import hashlib
from functools import lru_cache

TINY = "tiny"
VOCAB_SIZE = 384
SPECIALS = ("<|pad|>", "<|end|>", "<|user|>", "<|assistant|>", "<|system|>")
# One line per turn; the completion ends with <|end|> (the eos), so the model learns to stop.
CHAT_TEMPLATE = (
    "{% for m in messages %}<|{{ m['role'] }}|>\n{{ m['content'] }}<|end|>\n{% endfor %}"
    "{% if add_generation_prompt %}<|assistant|>\n{% endif %}"
)
MODEL_CONFIG = dict(
    hidden_size=64, intermediate_size=176, num_hidden_layers=2, num_attention_heads=4,
    num_key_value_heads=2, max_position_embeddings=4096, tie_word_embeddings=False,
)
# Built-in random-initialised Llamas: `tiny` for tests; the others have real models' shapes
# (Llama-3.2-1B, Llama-3.1-8B) for throughput benchmarks on a GPU with no download. They share
# the tiny tokenizer (its ids fit in any vocabulary); only their shape matters.
_LLAMA_1B = dict(hidden_size=2048, intermediate_size=8192, num_hidden_layers=16, num_attention_heads=32,
                 num_key_value_heads=8, vocab_size=128256, tie_word_embeddings=True)
_LLAMA_8B = dict(hidden_size=4096, intermediate_size=14336, num_hidden_layers=32, num_attention_heads=32,
                 num_key_value_heads=8, vocab_size=128256, tie_word_embeddings=False)
BUILTIN = {
    TINY: {},
    "random-llama-small": dict(hidden_size=256, intermediate_size=688, num_hidden_layers=4,
                               num_attention_heads=4, num_key_value_heads=4),
    "random-llama-1b": _LLAMA_1B,
    "random-llama-8b": _LLAMA_8B,
}


def is_tiny(model: str) -> bool:
    """A built-in model: made here, never downloaded."""
    return model in BUILTIN


@lru_cache(maxsize=1)
def _tokenizer_json() -> str:
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    from training.recipes.builtin.demo_data import DEMO_PATH

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=VOCAB_SIZE, special_tokens=list(SPECIALS), show_progress=False,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
    )
    tok.train_from_iterator(DEMO_PATH.read_text().splitlines(), trainer=trainer)
    return tok.to_str()


def tiny_tokenizer():
    """A PreTrainedTokenizerFast with pad, eos and a chat template."""
    from tokenizers import Tokenizer
    from transformers import PreTrainedTokenizerFast

    tok = PreTrainedTokenizerFast(
        tokenizer_object=Tokenizer.from_str(_tokenizer_json()),
        pad_token="<|pad|>", eos_token="<|end|>", bos_token=None,
    )
    tok.chat_template = CHAT_TEMPLATE
    return tok


def tokenizer_fingerprint() -> str:
    return hashlib.sha256(_tokenizer_json().encode()).hexdigest()[:16]


def tiny_model(vocab_size: int, seed: int = 0, name: str = TINY, device="cpu"):
    """A built-in Llama, initialised from `seed` (not the job's seed: the base model is fixed)."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    shape = {**MODEL_CONFIG, "vocab_size": vocab_size, **BUILTIN[name]}
    config = LlamaConfig(**shape)
    config._attn_implementation = "sdpa"
    device = torch.device(device)
    # fork_rng: building the base model must not move the job's RNG stream.
    with torch.random.fork_rng(devices=[device.index or 0] if device.type == "cuda" else []), device:
        torch.manual_seed(seed)
        model = LlamaForCausalLM(config)
    return model
