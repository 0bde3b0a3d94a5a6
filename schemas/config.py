"""The team config: `trainops.toml` laid over the embedded `defaults.toml`.

Defaults, presets, the model table, limits and access rules live in a file a team can read and
review, not in code. A bad file is a clear one-line error naming the file and the field.
"""

from __future__ import annotations

import tomllib
from functools import lru_cache
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from schemas.errors import UserError

DEFAULTS_FILE = Path(__file__).with_name("defaults.toml")


class ConfigError(UserError):
    """trainops.toml is unreadable or invalid; the message names the file and the field."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Defaults(_Strict):
    budget_usd: float = Field(gt=0)
    warn: float = Field(gt=0, le=1)
    model: str
    data: str
    seq_len: int = Field(gt=0)
    batch_size: int = Field(gt=0)
    peft: str
    precision: str
    spot: str
    region: str
    quote_ttl_h: float = Field(gt=0)
    max_recoveries: int = Field(ge=0)


class Limits(_Strict):
    max_budget_usd: float = Field(gt=0)
    max_cap_usd: float = Field(gt=0)
    max_deadline_h: float = Field(gt=0)


class Access(_Strict):
    allowed_channels: list[str] = Field(default_factory=list)
    allowed_users: list[str] = Field(default_factory=list)


class Preset(_Strict):
    samples: int | None = Field(default=None, gt=0)
    epochs: int | None = Field(default=None, gt=0)
    max_steps: int | None = Field(default=None, gt=0)
    seq_len: int | None = Field(default=None, gt=0)
    # RL and eval stages (issue #12): tasks per round, completions per task, kept per task.
    num_tasks: int | None = Field(default=None, gt=0)
    n_samples: int | None = Field(default=None, gt=0)
    top_k: int | None = Field(default=None, gt=0)
    rounds: int | None = Field(default=None, gt=0)
    eval_samples: int | None = Field(default=None, gt=0)


class ModelInfo(_Strict):
    params_b: float = Field(gt=0)
    layers: int = Field(gt=0)
    hidden: int = Field(gt=0)
    family: str
    # Attention heads and key/value heads (the model's config.json): with grouped-query
    # attention the KV cache is kv_heads/heads of full width, which sets how many sequences
    # decode together in a generation quote. Unset: full width (the larger, dearer assumption).
    heads: int | None = Field(default=None, gt=0)
    kv_heads: int | None = Field(default=None, gt=0)

    @property
    def kv_width(self) -> int:
        if self.heads and self.kv_heads:
            return self.hidden * min(self.kv_heads, self.heads) // self.heads
        return self.hidden


# -- security (issue #14): who may run custom code, where data may come from ------------------
class Security(_Strict):
    # `command=` runs the requester's own shell code on the machine: off unless a team opts in,
    # and even then every such job needs an approver's click (workers/rules/budget.py).
    allow_commands: bool = False
    # The most a non-approver may approve for their own job, judged on the CAP (the most money
    # at risk), not the budget. 0: only approvers approve anything.
    self_approve_limit_usd: float = Field(default=500.0, ge=0)


class DataAccess(_Strict):
    # data= may name local paths only under these folders and S3 objects only under these
    # s3://bucket/prefix roots; `demo` and Hub ids are always allowed.
    local_roots: list[str] = Field(default_factory=list)
    s3_prefixes: list[str] = Field(default_factory=list)


class LocalMachine(_Strict):
    """`[local]`: the worker's own machine as a provider (issue 13). `gpus`/`gpu` left unset are
    detected once by the worker (training/agent in a subprocess) and cached in the store."""

    gpus: int | None = Field(default=None, ge=0)
    gpu: str | None = None  # "cpu", or a GPU family the catalog knows ("a10g", "h100", ...)


class TeamConfig(_Strict):
    defaults: Defaults
    limits: Limits
    access: Access = Field(default_factory=Access)
    presets: dict[str, Preset]
    models: dict[str, ModelInfo]
    # Utilisation overrides: "<gpu>/<method>" -> fraction of peak, e.g. "a10g/lora" = 0.3.
    calibration: dict[str, float] = Field(default_factory=dict)
    # security (issue #14)
    security: Security = Field(default_factory=Security)
    data: DataAccess = Field(default_factory=DataAccess)
    local: LocalMachine = Field(default_factory=LocalMachine)  # issue 13: the local provider
    source: str = "embedded defaults"


def _merge(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in over.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = _merge(out[key], value)
        else:
            out[key] = value
    return out


def load_config(path: str | Path | None = None) -> TeamConfig:
    """Embedded defaults, overlaid by `path` when it exists. A missing file is not an error
    (a fresh machine has none); an unreadable or invalid one is."""
    data = tomllib.loads(DEFAULTS_FILE.read_text())
    source = "embedded defaults"
    if path is not None and Path(path).is_file():
        try:
            team = tomllib.loads(Path(path).read_text())
        except (OSError, tomllib.TOMLDecodeError) as exc:
            raise ConfigError(f"{path}: not valid TOML ({exc})") from None
        data = _merge(data, team)
        source = str(path)
    try:
        return TeamConfig.model_validate({**data, "source": source})
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        raise ConfigError(f"{source}: {where}: {first['msg']}") from None


@lru_cache(maxsize=8)
def cached_config(path: str | None) -> TeamConfig:
    return load_config(path)
