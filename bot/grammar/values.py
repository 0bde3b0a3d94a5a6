"""Values in a `/train` text: amounts, counts, durations, models, datasets. Each parser takes the
user's word and returns the value, or raises ParseError naming what is valid. Pure."""

from __future__ import annotations

import difflib
import math
import re

from schemas.config import TeamConfig
from schemas.errors import UserError
from workers.quoting.catalog import GPU_FAMILIES, INSTANCES


class ParseError(UserError):
    """The text is not a valid command; the message says what is wrong and what is valid."""


KEYS = ("budget", "cap", "warn", "model", "data", "samples", "seq_len", "epochs", "max_steps",
        "batch_size", "peft", "precision", "gpu", "instance", "spot", "region", "deadline",
        "command")
# Sweeps, stages and RL (issues #11, #12; bot/grammar/stages.py parses them).
STAGE_KEYS = ("sweep", "stages", "from", "method", "rl_method", "reward", "n_samples", "top_k",
              "num_tasks", "rounds", "eval_samples")
KEYS = KEYS + STAGE_KEYS
CHOICES = {
    "peft": {"lora": "lora", "qlora": "qlora", "none": "none", "full": "none"},
    "precision": {"bf16": "bf16", "fp16": "fp16", "fp32": "fp32"},
    "spot": {"yes": "yes", "no": "no", "auto": "auto", "true": "yes", "false": "no",
             "on": "yes", "off": "no"},
}
# Sane upper bounds: beyond these a value is a typo, not a plan.
COUNT_LIMITS = {"samples": 10**10, "seq_len": 1 << 20, "epochs": 1000, "max_steps": 10**9,
                "batch_size": 65536,
                "n_samples": 1024, "top_k": 1024, "num_tasks": 10**7, "rounds": 1000,
                "eval_samples": 10**6}

# [0-9], not \d: \d also matches other scripts' digits (full-width ５), which float() accepts.
_SIZE = re.compile(r"^([0-9]+(?:\.[0-9]+)?)\s*([bm])$", re.IGNORECASE)
_DURATION = re.compile(r"([0-9]+(?:\.[0-9]+)?)\s*([smhd])", re.IGNORECASE)
_REGION = re.compile(r"^[a-z]{2}(-gov)?-[a-z]+-\d$")


def show(text: str, limit: int = 40) -> str:
    """A user's word, quoted for an error line: one line, bounded length."""
    text = " ".join(text.split())
    text = text if len(text) <= limit else text[: limit - 1] + "…"
    return f"'{text}'"


def _known(key: str, raw: str, names: list[str], what: str) -> str:
    """A name from a fixed list (GPU families, instance types), or one line naming them all."""
    name = raw.strip().lower()
    if name not in names:
        raise ParseError(f"unknown {key} {show(raw)}{closest(name, names)}: known {what} are "
                         f"{', '.join(names)}")
    return name


def closest(word: str, valid: list[str] | tuple[str, ...]) -> str:
    match = difflib.get_close_matches(word.lower(), [v.lower() for v in valid], n=1, cutoff=0.6)
    return f" (did you mean {match[0]}?)" if match else ""


def money(key: str, raw: str, limit: float, *, signed: bool = False) -> float:
    text = raw.strip().lower().replace(",", "").replace("_", "")
    sign = 1.0
    if signed and text[:1] in "+-" and text:
        sign, text = (-1.0 if text[0] == "-" else 1.0), text[1:]
    text = text.removeprefix("$").removesuffix("usd").removesuffix("$").strip()
    try:
        if not text.isascii():  # ASCII digits only: float() would read ５０ as 50
            raise ValueError(text)
        value = float(text)
    except ValueError:
        raise ParseError(f"{key}={show(raw)} is not an amount: use e.g. {key}=100, "
                         f"{key}=$100 or {key}=100usd") from None
    if not math.isfinite(value) or value <= 0:
        raise ParseError(f"{key} must be a finite amount above $0, got {show(raw)}")
    if value > limit:
        raise ParseError(f"{key}={show(raw)} is above the limit of ${limit:,.0f}")
    return sign * value


def _count(key: str, raw: str) -> int:
    text = raw.strip().lower().replace(",", "").replace("_", "")
    scale = {"k": 1_000, "m": 1_000_000}.get(text[-1:], 1)
    digits = text[:-1] if scale > 1 else text
    if not digits.isascii() or not digits.isdigit() or len(digits) > 12:
        raise ParseError(f"{key} must be a positive whole number (e.g. {key}=1000 or 5k), "
                         f"got {show(raw)}")
    value = int(digits) * scale
    if value <= 0 or value > COUNT_LIMITS[key]:
        raise ParseError(f"{key} must be between 1 and {COUNT_LIMITS[key]:,}, got {show(raw)}")
    return value


def _warn(raw: str) -> float:
    text = raw.strip()
    try:
        number = text[:-1] if text.endswith("%") else text
        if not number.isascii():
            raise ValueError(number)
        value = float(number) / 100.0 if text.endswith("%") else float(number)
    except ValueError:
        value = math.nan
    if not (math.isfinite(value) and 0 < value <= 1):
        raise ParseError(f"warn must be a share of the cap in (0, 1], e.g. warn=0.8 or warn=80%, "
                         f"got {show(raw)}")
    return value


def _duration(raw: str, max_h: float) -> int:
    text = raw.strip().lower().replace(" ", "")
    parts = _DURATION.findall(text)
    if not parts or "".join(n + u for n, u in parts) != text:
        raise ParseError(f"deadline must be a duration like 24h, 90m, 2d or 1h30m, "
                         f"got {show(raw)}")
    unit = {"s": 1, "m": 60, "h": 3600, "d": 86400}
    seconds = sum(float(n) * unit[u] for n, u in parts)
    if not math.isfinite(seconds) or seconds < 60 or seconds > max_h * 3600:
        raise ParseError(f"deadline must be between 1m and {max_h:g}h, got {show(raw)}")
    return int(seconds)


def model_of(raw: str, config: TeamConfig) -> tuple[str, float]:
    by_lower = {name.lower(): name for name in config.models}
    name = by_lower.get(raw.strip().lower())
    if name is not None:
        return name, config.models[name].params_b
    size = _SIZE.match(raw.strip())
    if size:
        params_b = float(size.group(1)) / (1000.0 if size.group(2).lower() == "m" else 1.0)
        if 0 < params_b <= 1000:
            return f"{size.group(1)}{size.group(2).upper()}", params_b
    known = ", ".join(sorted(config.models))
    raise ParseError(f"unknown model {show(raw)}{closest(raw, list(config.models))}: use one of "
                     f"{known}, or a size like 7B or 500M")


def _data(raw: str) -> str:
    text = raw.strip()
    if text.lower() in ("demo", "demo-rl"):  # the bundled sets: instruction rows, RL tasks
        return text.lower()
    if re.match(r"^s3://[a-z0-9][a-z0-9.\-]{1,62}(/.*)?$", text) or text.startswith("file://"):
        return text
    if text.startswith(("/", "./", "../", "~")) or "/" in text or re.search(
            r"\.(jsonl?|csv|parquet|txt|arrow)$", text, re.IGNORECASE):
        return text
    raise ParseError(f"data={show(raw)} is not a dataset: use demo, demo-rl, s3://bucket/file.jsonl "
                     "or a path like ./train.jsonl")


def value_of(key: str, raw: str, config: TeamConfig) -> dict:
    """The TrainRequest fields that one `key=value` sets."""
    limits = config.limits
    if key == "budget":
        return {"budget_usd": money(key, raw, limits.max_budget_usd)}
    if key == "cap":
        return {"cap_usd": money(key, raw, limits.max_cap_usd)}
    if key == "warn":
        return {"warn": _warn(raw)}
    if key == "model":
        model, params_b = model_of(raw, config)
        return {"model": model, "params_b": params_b}
    if key == "data":
        from bot.grammar.data_access import check_data

        return {"data": check_data(_data(raw), config)}
    if key in STAGE_KEYS:
        from bot.grammar.stages import stage_value  # it imports this module

        return stage_value(key, raw)
    if key in COUNT_LIMITS:
        return {key: _count(key, raw)}
    if key in CHOICES:
        choice = CHOICES[key].get(raw.strip().lower())
        if choice is None:
            valid = "|".join(dict.fromkeys(CHOICES[key].values()))
            raise ParseError(f"{key}={show(raw)} is not valid: use {key}={valid}")
        return {key: choice}
    if key == "gpu":
        return {"gpu": _known("gpu", raw, list(GPU_FAMILIES), "families")}
    if key == "instance":
        return {"instance": _known("instance", raw, list(INSTANCES), "types")}
    if key == "region":
        region = raw.strip().lower()
        if not _REGION.match(region):
            raise ParseError(f"region={show(raw)} is not an AWS region: use e.g. us-east-1")
        return {"region": region}
    if key == "deadline":
        return {"deadline_s": _duration(raw, limits.max_deadline_h)}
    # command: the user's own script, as given — only where the team allows custom code
    if not config.security.allow_commands:
        raise ParseError("command= is turned off for this team: custom code runs only where "
                         "trainops.toml sets [security] allow_commands = true (and an approver "
                         "approves each job)")
    if not raw.strip():
        raise ParseError('command is empty: use command="python train.py --epochs 1"')
    return {"command": raw}
