"""Training data: read, tokenise once (cached on disk), pack to seq_len, and order by step.

Rows are JSON objects with `prompt` + `completion`, or chat `messages` (role/content). With a chat
template the model's own template renders them; the loss is on completions only (labels are
-100 on prompt tokens). Sources: `demo` and `demo-rl` (bundled), `s3://bucket/key.jsonl`, a local path or
`file://` URI, or a Hugging Face dataset name (`org/name` or `org/name:split`, needs `datasets`).

Packing concatenates examples into one stream cut into seq_len pieces (no cross-example attention
mask: the common, simple choice; each example ends with the eos so the model sees boundaries).
The order of sequences is a pure function of (seed, epoch), so a step number is the whole data
position: resuming at step N reads exactly the batches an uninterrupted run would have read.
No torch here: numpy arrays; the recipe turns them into tensors.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from urllib.parse import urlparse

import numpy as np

from schemas.errors import UserError

IGNORE = -100
FORMAT_VERSION = "1"  # bump when encoding changes, so old caches are not reused


class DataError(UserError):
    """The dataset cannot be read or a row is malformed: one line saying which and why."""


def load_rows(data: str) -> tuple[list[dict], str]:
    """The rows and a content hash (the cache key's data half)."""
    from training.recipes.builtin import builtin_path

    if (bundled := builtin_path(data)) is not None:
        return _parse_jsonl(bundled.read_bytes(), data)
    if data.startswith("s3://"):
        from schemas.store import open_store

        parsed = urlparse(data)
        blob = open_store(f"s3://{parsed.netloc}").read_bytes(parsed.path.lstrip("/"))
        if blob is None:
            raise DataError(f"data {data} does not exist; give an s3:// URI of a JSONL file")
        return _parse_jsonl(blob, data)
    path = Path(data[len("file://"):] if data.startswith("file://") else data).expanduser()
    if path.is_file():
        return _parse_jsonl(path.read_bytes(), str(path))
    if data.startswith(("file://", "/", ".")) or data.endswith((".jsonl", ".json")):
        raise DataError(f"data file {data} not found; give a JSONL path, s3:// URI or `demo`")
    return _load_hub(data)


def _parse_jsonl(blob: bytes, name: str) -> tuple[list[dict], str]:
    rows = []
    for number, line in enumerate(blob.decode("utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        try:
            rows.append(json.loads(line))
        except json.JSONDecodeError as exc:
            raise DataError(f"{name} line {number} is not JSON ({exc.msg}); one object per line") from exc
    if not rows:
        raise DataError(f"{name} holds no rows; expected JSON lines with prompt/completion or messages")
    return rows, hashlib.sha256(blob).hexdigest()


def _load_hub(name: str) -> tuple[list[dict], str]:
    try:
        import datasets
    except ImportError as exc:
        raise DataError(
            f"data {name!r} looks like a Hugging Face dataset but `datasets` is not installed; "
            "pip install datasets, or give a JSONL path, s3:// URI or `demo`"
        ) from exc
    dataset, _, split = name.partition(":")
    try:
        ds = datasets.load_dataset(dataset, split=split or "train")
    except Exception as exc:  # noqa: BLE001 - the Hub, the network and the format all raise their own
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:200]
        raise DataError(
            f"data {name!r}: the Hugging Face dataset could not be loaded ({first}); give a "
            "dataset id that exists (name or name:split), a JSONL path, an s3:// URI or `demo`"
        ) from exc
    rows = [dict(row) for row in ds]
    return rows, hashlib.sha256(f"{name}:{ds._fingerprint}".encode()).hexdigest()


def tokenizer_fingerprint(tokenizer) -> str:
    backend = getattr(tokenizer, "backend_tokenizer", None)
    body = backend.to_str() if backend is not None else json.dumps(tokenizer.get_vocab(), sort_keys=True)
    body += tokenizer.chat_template or ""
    return hashlib.sha256(body.encode()).hexdigest()[:16]


def segments(row: dict, tokenizer, number: int = 0) -> list[tuple[str, bool]]:
    """The row as (text, trainable) pieces: prompts are context, completions are trained on."""
    if "messages" in row:
        messages = row["messages"]
    elif "prompt" in row and "completion" in row:
        if not tokenizer.chat_template:
            return [(row["prompt"], False), (row["completion"] + (tokenizer.eos_token or ""), True)]
        messages = [{"role": "user", "content": row["prompt"]},
                    {"role": "assistant", "content": row["completion"]}]
    else:
        raise DataError(f"data row {number} has neither prompt+completion nor messages; keys: {sorted(row)}")
    if not tokenizer.chat_template:
        return [(f"{m['role']}: {m['content']}\n", m["role"] == "assistant") for m in messages]

    def render(msgs, generation=False) -> str:
        if not msgs:
            return ""
        return tokenizer.apply_chat_template(msgs, tokenize=False, add_generation_prompt=generation)

    pieces, done = [], ""
    for i, message in enumerate(messages):
        if message["role"] != "assistant":
            continue
        prefix, full = render(messages[:i], True), render(messages[: i + 1])
        if not (prefix.startswith(done) and full.startswith(prefix)):
            raise DataError(f"data row {number}: the chat template does not render turns as prefixes")
        pieces += [(prefix[len(done):], False), (full[len(prefix):], True)]
        done = full
    rest = render(messages)[len(done):]
    return pieces + ([(rest, False)] if rest else [])


def encode(row: dict, tokenizer, number: int = 0) -> tuple[list[int], list[int]]:
    ids: list[int] = []
    labels: list[int] = []
    for text, trainable in segments(row, tokenizer, number):
        piece = tokenizer(text, add_special_tokens=False)["input_ids"]
        ids += piece
        labels += piece if trainable else [IGNORE] * len(piece)
    return ids, labels


def tokenize_cached(rows, data_hash: str, tokenizer, cache_dir: Path) -> list[tuple[np.ndarray, np.ndarray]]:
    """Tokenise every row once; later runs (and resumed attempts) read the cache."""
    key = hashlib.sha256(f"{FORMAT_VERSION}:{tokenizer_fingerprint(tokenizer)}:{data_hash}".encode())
    path = Path(cache_dir) / f"tokens-{key.hexdigest()[:24]}.npz"
    if not path.exists():
        encoded = [encode(row, tokenizer, n) for n, row in enumerate(rows, start=1)]
        offsets = np.cumsum([0] + [len(ids) for ids, _ in encoded])
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.{os.getpid()}")
        with open(tmp, "wb") as handle:
            np.savez(handle, offsets=offsets,
                     ids=np.array([t for ids, _ in encoded for t in ids], dtype=np.int64),
                     labels=np.array([t for _, lab in encoded for t in lab], dtype=np.int64))
        os.replace(tmp, path)
    with np.load(path) as blob:
        offsets, ids, labels = blob["offsets"], blob["ids"], blob["labels"]
    return [(ids[a:b], labels[a:b]) for a, b in zip(offsets[:-1], offsets[1:], strict=True)]


@dataclass
class Packed:
    """Packed sequences and the step -> batch mapping."""

    input_ids: np.ndarray  # [n, seq_len]
    labels: np.ndarray  # [n, seq_len], -100 where no loss
    attention_mask: np.ndarray  # [n, seq_len], 0 on the final padding only
    batch_size: int
    total_steps: int
    seed: int

    def batch(self, step: int) -> np.ndarray:
        """Indices of the sequences for 0-based optimizer step `step`."""
        n = len(self.input_ids)
        positions = range(step * self.batch_size, (step + 1) * self.batch_size)
        return np.array([_permutation(self.seed, p // n, n)[p % n] for p in positions])


@lru_cache(maxsize=8)
def _permutation(seed: int, epoch: int, n: int) -> np.ndarray:
    return np.random.default_rng([seed, epoch]).permutation(n)


def pack(examples, seq_len: int, pad_id: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    ids = np.concatenate([e[0] for e in examples])
    labels = np.concatenate([e[1] for e in examples])
    n = -(-len(ids) // seq_len)
    pad = n * seq_len - len(ids)
    mask = np.concatenate([np.ones(len(ids), dtype=np.int64), np.zeros(pad, dtype=np.int64)])
    ids = np.concatenate([ids, np.full(pad, pad_id, dtype=np.int64)])
    labels = np.concatenate([labels, np.full(pad, IGNORE, dtype=np.int64)])
    shape = (n, seq_len)
    return ids.reshape(shape), labels.reshape(shape), mask.reshape(shape)


def prepare(spec, tokenizer, cache_dir: Path) -> Packed:
    """The spec's data, with max_samples, epochs and max_steps applied (whichever binds first)."""
    rows, data_hash = load_rows(spec.data)
    if getattr(spec, "eval_samples", 0):  # rows held out for the eval stage are never trained on
        from training.recipes.tasks import split

        rows, data_hash = split(rows, data_hash, spec).train_part()
    examples = tokenize_cached(rows, data_hash, tokenizer, cache_dir)
    if spec.max_samples and spec.max_samples < len(examples):
        chosen = np.sort(np.random.default_rng(spec.seed).permutation(len(examples))[: spec.max_samples])
        examples = [examples[i] for i in chosen]
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    input_ids, labels, mask = pack(examples, spec.seq_len, pad_id)
    total = max(1, -(-len(input_ids) * spec.epochs // spec.batch_size))
    if spec.max_steps:
        total = min(total, spec.max_steps)
    return Packed(input_ids, labels, mask, spec.batch_size, total, spec.seed)
