"""The S3 half of IAM's policy evaluation, for docker/iam-policy.json: is this action on this key
allowed for this caller? An explicit Deny wins, else any Allow whose action and resource match;
`*` and `?` in a resource match any characters, `/` included, as IAM's do. Policy variables
(`${aws:userid}`, `${aws:PrincipalTag/trainops:job}`) take the caller's values; a statement
whose variable the caller does not carry matches nothing, as in IAM. Conditions are not
evaluated: the object statements in our policies have none (the listing statements, which do,
are not asked)."""

from __future__ import annotations

import json
import re
from fnmatch import fnmatchcase
from pathlib import Path

POLICY = Path(__file__).resolve().parents[2] / "docker" / "iam-policy.json"
BUCKET, PREFIX = "team-bucket", "trainops"
_VARIABLE = re.compile(r"\$\{([^}]+)\}")


def policy(role: str) -> dict:
    """One of the documents, with BUCKET and PREFIX filled in as the README says."""
    text = POLICY.read_text().replace("BUCKET", BUCKET).replace("PREFIX", PREFIX)
    return json.loads(text)[role]


def shared_instance_role() -> dict:
    """instance_role with instance_role_without_job_role added, as the README says for a
    deployment without TRAINOPS_AWS_JOB_ROLE."""
    return {"Statement": policy("instance_role")["Statement"]
            + policy("instance_role_without_job_role")["Statement"]}


def machine(role_id: str, instance_id: str) -> dict[str, str]:
    """What a request signed with an instance role's credentials carries."""
    return {"aws:userid": f"{role_id}:{instance_id}"}


def job_session(job_id: str) -> dict[str, str]:
    """What a request signed with the job role's credentials, tagged with `job_id`, carries."""
    return {"aws:userid": f"AROAJOBROLE:trainops-{job_id}-1",
            "aws:PrincipalTag/trainops:job": job_id}


def allowed(document: dict, action: str, key: str, caller: dict[str, str] | None = None) -> bool:
    """Whether `action` (e.g. s3:PutObject) on the store key `key` is allowed to `caller`."""
    arn = f"arn:aws:s3:::{BUCKET}/{PREFIX}/{key}"
    verdicts = [s["Effect"] for s in document["Statement"]
                if _matches(s["Action"], action)
                and _matches(s["Resource"], arn, caller or {})]
    return "Allow" in verdicts and "Deny" not in verdicts


def _matches(patterns: str | list[str], value: str, caller: dict[str, str] | None = None) -> bool:
    for pattern in [patterns] if isinstance(patterns, str) else patterns:
        names = _VARIABLE.findall(pattern)
        if caller is not None and any(name not in caller for name in names):
            continue
        if caller is not None:
            pattern = _VARIABLE.sub(lambda m: caller[m.group(1)], pattern)
        if fnmatchcase(value, pattern):
            return True
    return False
