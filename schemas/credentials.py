"""Per-job store credentials on AWS (issue 14): the contract between the control plane, which
issues them, and the agent on the GPU machine, which writes its job's files with them.

Every GPU machine runs as one instance role, and an IAM policy can narrow a request only by
what the request's credentials carry: the role and the instance, never the job. So, when a
deployment names a job role (`TRAINOPS_AWS_JOB_ROLE`), the control plane assumes it for each
attempt with the session tag `trainops:job=<job id>`; that role may write only
`jobs/${aws:PrincipalTag/trainops:job}/...` (docker/iam-policy.json). It hands the credentials
to the one machine that may read them through the store, at

    credentials/<role id>:<instance id>.json

The instance role may read exactly `credentials/${aws:userid}.json`, and for an instance role
`aws:userid` is `<role id>:<instance id>`: a machine reads its own credentials and no other's.
The agent learns that id from STS GetCallerIdentity, the control plane from the instance
profile's role and the instance it launched. docs/security.md has the whole design.
"""

from __future__ import annotations

import json
from datetime import datetime

from pydantic import BaseModel, SecretStr

CREDENTIALS = "credentials"
SESSION_TAG = "trainops:job"


def principal(role_id: str, instance_id: str) -> str:
    """What `aws:userid` reads for a request signed with `instance_id`'s instance-role
    credentials."""
    return f"{role_id}:{instance_id}"


def channel_key(principal_id: str) -> str:
    return f"{CREDENTIALS}/{principal_id}.json"


class JobCredentials(BaseModel):
    """Temporary credentials of the job role, tagged with one job. The secrets are SecretStr, so
    a log line or repr of this document never shows them; `to_store`/`botocore` reveal them
    only where they go."""

    job_id: str
    attempt: int
    access_key_id: str
    secret_access_key: SecretStr
    session_token: SecretStr
    expires_at: datetime

    def to_store(self) -> bytes:
        doc = self.model_dump(mode="json")
        doc["secret_access_key"] = self.secret_access_key.get_secret_value()
        doc["session_token"] = self.session_token.get_secret_value()
        return json.dumps(doc, indent=2).encode()

    def botocore(self) -> dict:
        """The metadata botocore's RefreshableCredentials is built from and refreshed with."""
        return {"access_key": self.access_key_id,
                "secret_key": self.secret_access_key.get_secret_value(),
                "token": self.session_token.get_secret_value(),
                "expiry_time": self.expires_at.isoformat()}
