"""Reward functions for the `rl` and `eval` stages, from the spec's `reward` text. Pure: no torch,
so the control plane imports `check_reward_spec` to refuse a bad reward before anything launches.

A reward text is one term or several joined by " + ", each optionally weighted (`0.2*length:40`):

    exact           the completion equals the row's reference answer (whitespace collapsed, case
                    and a final period ignored): 1 or 0
    contains        the reference answer appears in the completion: 1 or 0
    numeric         share of the completion's non-space characters that are digits (a format
                    reward for number answers: 1 for "42", 0 for "forty-two")
    regex:PATTERN   PATTERN (Python `re`) matches somewhere in the completion: 1 or 0
    json            the completion is a JSON object: 1 or 0
    json:K=T,...    the completion is a JSON object holding keys K of type T (str, int, float,
                    number, bool, list, dict, any): 1 or 0
    length:N        1 at exactly N characters, falling linearly to 0 at 0 and 2N characters
    FILE.py:FN      a team's own function shipped with the job, called as
                    FN(prompt, completion, **fields) -> float, where fields are the data row's
                    other fields (its `completion`, the reference, arrives as `reference`)

The reference answer of a row is its `answer`, else its `completion`, else its last assistant
message. A sample passes when every term is at its best: the sum reaches the sum of the weights
(built-ins score in [0, 1]; a team's function counts as best at >= 1).
"""

from __future__ import annotations

import importlib.util
import json
import math
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from schemas.errors import UserError

VALID = ("exact, contains, numeric, regex:PATTERN, json:KEY=TYPE,..., length:N, "
         "or path/to/file.py:function (terms joined by ' + ', optionally weighted: 0.5*exact)")
SAMPLE_ROW = {"prompt": "What is 2 + 3?", "answer": "5"}
_TYPES = {"str": (str,), "int": (int,), "float": (float,), "number": (int, float), "bool": (bool,),
          "list": (list,), "dict": (dict,), "any": (object,)}
_WEIGHT = re.compile(r"^\s*([0-9]*\.?[0-9]+)\s*\*\s*(.+)$")


class RewardError(UserError):
    """The reward text names something that cannot score: one line saying what and what is valid."""


def reference(row: dict) -> str | None:
    if row.get("answer") is not None:
        return str(row["answer"])
    if row.get("completion") is not None:
        return str(row["completion"])
    for message in reversed(row.get("messages") or []):
        if message.get("role") == "assistant":
            return str(message.get("content", ""))
    return None


def prompt_of(row: dict) -> str:
    """The task's prompt: `prompt`, or the chat's messages up to the last assistant turn."""
    if "prompt" in row:
        return str(row["prompt"])
    messages = row.get("messages") or []
    last = max((i for i, m in enumerate(messages) if m.get("role") == "assistant"), default=len(messages))
    return "\n".join(str(m.get("content", "")) for m in messages[:last] if m.get("role") != "assistant")


def _norm(text: str) -> str:
    return " ".join(text.split()).casefold().rstrip(".").strip()


def _exact(prompt: str, completion: str, row: dict) -> float:
    return float(_norm(completion) == _norm(_need_reference(row)))


def _contains(prompt: str, completion: str, row: dict) -> float:
    return float(_norm(_need_reference(row)) in _norm(completion))


def _numeric(prompt: str, completion: str, row: dict) -> float:
    chars = [c for c in completion if not c.isspace()]
    return sum(c.isdigit() for c in chars) / len(chars) if chars else 0.0


def _need_reference(row: dict) -> str:
    ref = reference(row)
    if ref is None:
        raise RewardError(f"this reward compares with a reference answer, but the row has none "
                          f"(keys: {sorted(row)}); give rows an `answer` or `completion`")
    return ref


def _regex(pattern: str) -> Callable:
    try:
        compiled = re.compile(pattern)
    except re.error as exc:
        raise RewardError(f"reward regex:{pattern} is not a valid regular expression ({exc})") from exc
    return lambda prompt, completion, row: float(compiled.search(completion) is not None)


def _json(spec: str) -> Callable:
    required: dict[str, tuple[type, ...]] = {}
    for part in filter(None, (p.strip() for p in spec.split(","))):
        key, _, kind = part.partition("=")
        kind = kind.strip() or "any"
        if kind not in _TYPES:
            raise RewardError(f"reward json:{spec}: type {kind!r} of key {key!r} is not one of {', '.join(_TYPES)}")
        required[key.strip()] = _TYPES[kind]

    def score(prompt: str, completion: str, row: dict) -> float:
        try:
            value = json.loads(completion.strip())
        except ValueError:
            return 0.0
        if not isinstance(value, dict):
            return 0.0
        for key, kinds in required.items():
            if key not in value:
                return 0.0
            item = value[key]  # a JSON true is not a number, though Python's bool is an int
            if isinstance(item, bool) and bool not in kinds and object not in kinds:
                return 0.0
            if not isinstance(item, kinds):
                return 0.0
        return 1.0

    return score


def _length(arg: str) -> Callable:
    try:
        target = int(arg)
        assert target > 0
    except (ValueError, AssertionError):
        raise RewardError(f"reward length:{arg}: N must be a whole number of characters > 0, e.g. length:40") from None
    return lambda prompt, completion, row: max(0.0, 1.0 - abs(len(completion.strip()) - target) / target)


def team_file_local(path_text: str) -> Path:
    """The local copy of a team's reward file. The control plane ships the file with the job
    (a store URI under jobs/<id>/user/, its name keyed by content); it is fetched once into the
    cache folder. A plain path is used as it is."""
    if path_text.startswith("file://"):
        return Path(path_text[len("file://"):])
    if "://" not in path_text:
        return Path(path_text).expanduser()
    import os

    from schemas.store import open_store

    scheme, _, rest = path_text.partition("://")
    bucket, _, key = rest.partition("/")
    cache = Path(os.environ.get("TRAINOPS_CACHE_DIR") or Path.home() / ".cache" / "trainops")
    local = cache / "rewards" / bucket / key
    if not local.is_file():
        try:
            open_store(f"{scheme}://{bucket}").download_file(key, local)
        except Exception as exc:
            raise RewardError(f"reward file {path_text} could not be fetched: {type(exc).__name__}: {exc}") from None
    return local


def _team_function(path_text: str, name: str, text: str) -> Callable:
    path = team_file_local(path_text)
    if not path.is_file():
        raise RewardError(f"reward {text!r}: file {path_text} not found; give an existing .py file, or: {VALID}")
    module_name = f"trainops_reward_{abs(hash(str(path.resolve())))}"
    spec = importlib.util.spec_from_file_location(module_name, path)
    module = importlib.util.module_from_spec(spec)
    try:
        spec.loader.exec_module(module)
    except SyntaxError as exc:
        raise RewardError(f"reward {text!r}: {path_text} line {exc.lineno}: syntax error ({exc.msg})") from None
    except Exception as exc:
        raise RewardError(f"reward {text!r}: importing {path_text} failed: {type(exc).__name__}: {exc}") from None
    fn = getattr(module, name, None)
    if fn is None:
        raise RewardError(f"reward {text!r}: {path_text} has no function {name!r}")
    if not callable(fn) or isinstance(fn, type):
        raise RewardError(f"reward {text!r}: {name} in {path_text} is a {type(fn).__name__}, not a function")

    def score(prompt: str, completion: str, row: dict) -> float:
        fields = {k: v for k, v in row.items() if k not in ("prompt", "completion")}
        if "completion" in row:
            fields["reference"] = row["completion"]
        return fn(prompt, completion, **fields)

    return score


@dataclass
class Term:
    name: str
    fn: Callable[[str, str, dict], float]
    weight: float = 1.0


@dataclass
class ParsedReward:
    text: str
    terms: list[Term] = field(default_factory=list)

    @property
    def pass_at(self) -> float:
        return sum(t.weight for t in self.terms)

    def __call__(self, prompt: str, completion: str, row: dict) -> float:
        total = 0.0
        for term in self.terms:
            value = term.fn(prompt, completion, row)
            if isinstance(value, bool):
                value = float(value)
            if not isinstance(value, int | float) or not math.isfinite(value):
                raise RewardError(f"reward {term.name} returned {value!r}; it must return a finite number")
            total += term.weight * float(value)
        return total

    def passes(self, score: float) -> bool:
        return score >= self.pass_at - 1e-9


def _split_term(part: str) -> tuple[float, str]:
    if match := _WEIGHT.match(part):
        return float(match.group(1)), match.group(2).strip()
    return 1.0, part


_BUILTIN_HEADS = {"exact", "contains", "numeric", "json", "regex", "length"}


def _file_term(part: str, text: str) -> tuple[str, str] | None:
    """(file, function) when the term is a team's own code; None for a built-in."""
    if part.partition(":")[0].lower() in _BUILTIN_HEADS:  # regex:^a.py:b$ is a pattern
        return None
    head, colon, arg = part.rpartition(":")  # the last colon: a store URI has one of its own
    if not colon:
        head, arg = arg, ""
    if not (part.endswith(".py") or (colon and head.endswith(".py"))):
        return None
    if not arg.isidentifier():
        raise RewardError(f"reward {text!r}: name the function after the file, e.g. {head}:score")
    return head, arg


def _term(part: str, text: str) -> Term:
    weight, part = _split_term(part)
    if team := _file_term(part, text):
        return Term(part, _team_function(team[0], team[1], text), weight)
    head, colon, arg = part.partition(":")
    head = head.lower()
    builtins = {"exact": _exact, "contains": _contains, "numeric": _numeric,
                "json": lambda *a: _json("")(*a)}  # plain `json`: any JSON object
    if head in builtins and not colon:
        return Term(part, builtins[head], weight)
    makers = {"regex": _regex, "json": _json, "length": _length}
    if head in makers and colon:
        return Term(part, makers[head](arg), weight)
    raise RewardError(f"unknown reward {part!r}; valid: {VALID}")


def _parts(text: str) -> list[str]:
    parts = [p.strip() for p in (text or "").split(" + ")]
    if not text or not all(parts):
        raise RewardError(f"reward is empty; valid: {VALID}")
    return parts


def parse_reward(text: str) -> ParsedReward:
    """The reward without trying it; `check_reward_spec` also runs it on a sample row."""
    return ParsedReward(text, [_term(part, text) for part in _parts(text)])


def team_files(text: str) -> list[tuple[str, str]]:
    """The (file, function) pairs of a reward that are a team's own code. Raises RewardError for
    a malformed text. Runs nothing."""
    return [team for part in _parts(text) if (team := _file_term(_split_term(part)[1], text))]


def check_reward_syntax(text: str) -> None:
    """Every term well formed, running no user code: built-ins built (a regex compiles, a json
    spec and a length parse), a team's term names a file and a function. Raises RewardError."""
    for part in _parts(text):
        if _file_term(_split_term(part)[1], text) is None:
            _term(part, text)  # built-ins are pure: building one runs no user code


def check_reward_spec(text: str, sample_row: dict | None = None) -> ParsedReward:
    """Parse the reward and score one sample (the row's reference as the completion): raises
    RewardError with one line for a missing file, a non-function, bad syntax, a function that
    raises or returns a non-number, or an unknown built-in."""
    reward = parse_reward(text)
    row = dict(sample_row or SAMPLE_ROW)
    try:
        reward(prompt_of(row), reference(row) or "", row)
    except RewardError:
        raise
    except Exception as exc:
        raise RewardError(f"reward {text!r} raised on a sample row {row!r}: {type(exc).__name__}: {exc}") from None
    return reward
