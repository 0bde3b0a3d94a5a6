"""The `/train` grammar: text in, a validated request (or one clear error) out. Pure.

    /train STAGE [PRESET] [key=value ...]      e.g.  sft reduced budget=$100 gpu=a10g

The same text works in Slack and in `trainops quote "TEXT"`. Keys are case-insensitive and come
in any order; values are checked here so every mistake is one line naming what is valid.
"""

from __future__ import annotations

import re
import shlex
from dataclasses import dataclass

from pydantic import ValidationError

from bot.grammar.stages import STAGE_PLANS, check_plan
from bot.grammar.values import KEYS, ParseError, closest, model_of, money, show, value_of
from schemas.config import TeamConfig
from schemas.spec import TrainRequest
from training.recipes.builtin import builtin_rows
from workers.quoting.catalog import INSTANCES

__all__ = ["HELP_TEXT", "KEYS", "Cancel", "Command", "Help", "Jobs", "ParseError", "Resume",
           "Status", "Train", "parse_command", "parse_request"]


@dataclass(frozen=True)
class Train:
    request: TrainRequest


@dataclass(frozen=True)
class Status:
    job_id: str | None


@dataclass(frozen=True)
class Jobs:
    pass


@dataclass(frozen=True)
class Cancel:
    job_id: str


@dataclass(frozen=True)
class Help:
    pass


@dataclass(frozen=True)
class Resume:
    job_id: str
    budget_delta_usd: float | None
    budget_usd: float | None


Command = Train | Status | Jobs | Cancel | Help | Resume

STAGES = ("sft", "rl", "eval", "pipeline")
# No <, > or & (Slack's mrkdwn would read them as markup): show it as is, or in a code block.
HELP_TEXT = """\
/train STAGE [PRESET] [key=value ...]
  stage: sft (LoRA or full fine-tuning), rl (GRPO or best-of-n), eval, pipeline (prep,sft,rl,eval)
  preset: full (default), reduced (200 samples, 100 steps; RL 30 tasks x 5), smoke (a few steps)
  budget=100 (USD; $100 and 100usd work too)   cap=150 (hard stop, default = budget)
  warn=0.8 or warn=80% (warning at this share of the cap)
  model=Qwen/Qwen2.5-7B-Instruct or a size: model=7B, model=0.5B
  data=demo | s3://bucket/file.jsonl | ./path   samples=N  seq_len=N  epochs=N  max_steps=N
  peft=lora|qlora|none   precision=bf16|fp16|fp32
  gpu=a10g|a100|h100|l4|l40s|t4|v100   instance=g5.xlarge   spot=yes|no|auto
  region=us-east-1   deadline=24h (or 90m, 2d)   command="python train.py --lr 1e-4"
  sweep=learning_rate:1e-4,2e-4,5e-4 (or lora_r, seed, epochs): runs side by side, one machine
  rl/eval: from=JOB or s3://.../final/  method=grpo|best_of_n (or rl_method=)
    reward=exact|json|length|regex:PATTERN|file.py:fn (your file: an approver must approve)
    num_tasks=N n_samples=N top_k=N rounds=N eval_samples=N
  stages=prep,sft,rl,eval (which stages a pipeline runs)
Examples:
  /train sft reduced budget=100
  /train pipeline reduced budget=100
  /train sft model=7B samples=5000 peft=qlora gpu=a10g spot=yes
Other commands: status [JOB], jobs, cancel JOB, resume JOB budget=+50, help"""

_QUOTES = str.maketrans({"\u201c": '"', "\u201d": '"', "\u2018": "'", "\u2019": "'"})
_JOB_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")


def tokenize(text: str) -> list[str]:
    """Shell-like words, with Slack's curly quotes straightened; never raises but ParseError."""
    try:
        return shlex.split(text.translate(_QUOTES).replace("\0", " "), posix=True)
    except ValueError:
        raise ParseError("unbalanced quotes: close every \" or ' you open") from None


def _key(word: str) -> str:
    key = word.strip().lower().replace("-", "_")
    if key not in KEYS:
        raise ParseError(f"unknown key {show(word)}{closest(key, KEYS)}: valid keys are "
                         f"{', '.join(KEYS)}")
    return key


def parse_request(text: str, config: TeamConfig) -> TrainRequest:
    """What follows `/train` as a validated TrainRequest: team defaults, then the preset, then
    the keys the person gave."""
    words = tokenize(text)
    if not words:
        raise ParseError("say what to train: e.g. sft reduced budget=100 (try help)")
    presets = list(config.presets)
    stage = words[0].lower()
    if stage in STAGES:
        words = words[1:]
    elif "=" not in stage and stage not in config.presets:
        raise ParseError(f"unknown stage {show(words[0])}{closest(stage, STAGES)}: use "
                         f"{', '.join(STAGES)}, e.g. sft reduced budget=100")
    else:
        stage = "sft"
    preset = "full" if "full" in config.presets else presets[0]
    if words and "=" not in words[0]:
        word = words.pop(0).lower()
        if word not in config.presets:
            raise ParseError(f"unknown preset {show(word)}{closest(word, presets)}: use one of "
                             f"{', '.join(presets)}")
        preset = word

    given: dict[str, str] = {}
    for word in words:
        key_text, sep, raw = word.partition("=")
        if not sep:
            raise ParseError(f"unexpected word {show(word)}: after the stage and preset give "
                             "key=value pairs, e.g. budget=100")
        key = _key(key_text)
        if key in given:
            raise ParseError(f"{key} is given twice: give each key once")
        given[key] = raw

    d = config.defaults
    fields: dict = {
        "text": text, "stage": stage, "preset": preset, "budget_usd": d.budget_usd,
        "warn": d.warn, "data": d.data, "seq_len": d.seq_len, "batch_size": d.batch_size,
        "peft": d.peft, "precision": d.precision, "spot": d.spot, "region": d.region,
    }
    if d.model in config.models:
        fields.update(model=d.model, params_b=config.models[d.model].params_b)
    else:
        fields.update(zip(("model", "params_b"), model_of(d.model, config), strict=True))
    p = config.presets[preset]
    fields.update({k: v for k, v in (("samples", p.samples), ("epochs", p.epochs),
                                     ("max_steps", p.max_steps), ("seq_len", p.seq_len))
                   if v is not None})
    fields.update({k: v for k, v in (("num_tasks", p.num_tasks), ("n_samples", p.n_samples),
                                     ("top_k", p.top_k), ("rounds", p.rounds),
                                     ("eval_samples", p.eval_samples)) if v is not None})
    for key, raw in given.items():
        fields.update(value_of(key, raw, config))
    _plan(fields, set(given))
    _holds_out_less_than_all(fields)
    if "cap_usd" not in fields:
        if fields["budget_usd"] > config.limits.max_cap_usd:
            raise ParseError(f"the cap defaults to the budget, which is above the cap limit of "
                             f"${config.limits.max_cap_usd:,.0f}: give cap=")
        fields["cap_usd"] = fields["budget_usd"]
    if fields.get("instance") and fields.get("gpu"):
        family = INSTANCES[fields["instance"]].gpu
        if family != fields["gpu"]:
            raise ParseError(f"instance {fields['instance']} has {family} GPUs, not "
                             f"gpu={fields['gpu']}: drop one of the two")
    try:
        return TrainRequest(**fields)
    except ValidationError as exc:  # team defaults the grammar did not check, e.g. a bad peft
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        raise ParseError(f"invalid {where}: {first['msg']}") from None


def _plan(fields: dict, given: set[str]) -> None:
    """The stages the request runs: the stage word's, or stages= (issues #11, #12)."""
    if "stages" in fields:
        plan = fields["stages"]
        if plan == ["prep"]:
            raise ParseError("stages=prep alone trains nothing: add sft, rl or eval")
        core = [x for x in plan if x != "prep"]
        fields["stage"] = core[0] if len(core) == 1 else "pipeline"
    else:
        fields["stages"] = list(STAGE_PLANS[fields["stage"]])
    check_plan(fields, given)


def _holds_out_less_than_all(fields: dict) -> None:
    """On a bundled set the quote knows the rows: eval_samples must leave some to train on (the
    recipe's own check, said before anything is quoted)."""
    rows, held = builtin_rows(fields["data"]), fields.get("eval_samples")
    if rows is not None and held and held >= rows:
        raise ParseError(f"eval_samples={held} would hold out all {rows} rows of "
                         f"{fields['data']}; give eval_samples below {rows}")


def _job_id(word: str, command: str) -> str:
    if not _JOB_ID.match(word):
        raise ParseError(f"{command}: {show(word)} is not a job id (e.g. j-4f2a9c)")
    return word


def parse_command(text: str, config: TeamConfig) -> Command:
    """Any text after `/train`: a training request, or one of the job commands."""
    words = tokenize(text)
    head = words[0].lower() if words else "help"
    rest = words[1:]
    if head in ("help", "?", "-h", "--help"):
        return Help()
    if head == "jobs":
        if rest:
            raise ParseError("jobs takes nothing after it: use status JOB for one job")
        return Jobs()
    if head == "status":
        if len(rest) > 1:
            raise ParseError("status takes at most one job id: status or status j-4f2a9c")
        return Status(_job_id(rest[0], "status") if rest else None)
    if head == "cancel":
        if len(rest) != 1:
            raise ParseError("cancel takes one job id: cancel j-4f2a9c")
        return Cancel(_job_id(rest[0], "cancel"))
    if head == "resume":
        return _resume(rest, config)
    return Train(parse_request(text, config))


def _resume(rest: list[str], config: TeamConfig) -> Resume:
    usage = "resume takes a job id and optionally budget=+50 or budget=80"
    if not rest or len(rest) > 2:
        raise ParseError(usage)
    job_id = _job_id(rest[0], "resume")
    if len(rest) == 1:
        return Resume(job_id, None, None)
    key, sep, raw = rest[1].partition("=")
    if not sep or key.lower() != "budget":
        raise ParseError(usage)
    if raw.strip()[:1] in "+-" and raw.strip():
        delta = money("budget", raw, config.limits.max_budget_usd, signed=True)
        return Resume(job_id, delta, None)
    return Resume(job_id, None, money("budget", raw, config.limits.max_budget_usd))
