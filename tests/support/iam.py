"""The S3 half of IAM's policy evaluation, for docker/iam-policy.json: is this action on this key
allowed? An explicit Deny wins, else any Allow whose action and resource match; `*` and `?` in a
resource match any characters, `/` included, as IAM's do. Conditions are not evaluated: the
object statements in our policy have none (the listing statements, which do, are not asked)."""

from __future__ import annotations

import json
from fnmatch import fnmatchcase
from pathlib import Path

POLICY = Path(__file__).resolve().parents[2] / "docker" / "iam-policy.json"
BUCKET, PREFIX = "team-bucket", "trainops"


def policy(role: str) -> dict:
    """One of the two documents, with BUCKET and PREFIX filled in as the README says."""
    text = POLICY.read_text().replace("BUCKET", BUCKET).replace("PREFIX", PREFIX)
    return json.loads(text)[role]


def allowed(document: dict, action: str, key: str) -> bool:
    """Whether `action` (e.g. s3:PutObject) on the store key `key` is allowed."""
    arn = f"arn:aws:s3:::{BUCKET}/{PREFIX}/{key}"
    verdicts = [s["Effect"] for s in document["Statement"]
                if _matches(s["Action"], action) and _matches(s["Resource"], arn)]
    return "Allow" in verdicts and "Deny" not in verdicts


def _matches(patterns: str | list[str], value: str) -> bool:
    return any(fnmatchcase(value, p) for p in ([patterns] if isinstance(patterns, str) else patterns))
