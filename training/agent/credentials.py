"""The agent's side of per-job store credentials (schemas/credentials.py).

When the spec says `job_credentials`, the agent writes its job's files with the job role's
credentials that the control plane handed over for this machine, not with the machine's role
(which may then only read). It finds them by who it is (STS GetCallerIdentity: for an instance
role, `<role id>:<instance id>`), waits for them (the control plane writes them right after
RunInstances returns, long before the bootstrap's install ends), and re-reads them whenever
botocore finds them near their end: the control plane renews them 20 minutes before that,
earlier than botocore's own 15-minute refresh, so the new ones are there when it looks.
"""

from __future__ import annotations

import logging
import time

from schemas.credentials import JobCredentials, channel_key
from schemas.store import S3Store, StoreError

log = logging.getLogger("trainops.agent")
WAIT_S = 600.0  # the control plane hands them over within seconds of the launch
POLL_S = 5.0


def whoami(session) -> str:
    """`aws:userid` of this machine's own credentials."""
    return session.client("sts").get_caller_identity()["UserId"]


def read_credentials(store: S3Store, key: str, job_id: str) -> JobCredentials | None:
    blob = store.read_bytes(key)
    if blob is None:
        return None
    found = JobCredentials.model_validate_json(blob)
    if found.job_id != job_id:  # never write one job's files with another's credentials
        raise StoreError(f"the credentials at {key} are for job {found.job_id}, not {job_id}")
    return found


def writing_with_job_credentials(store: S3Store, job_id: str, *, session=None,
                                 wait_s: float = WAIT_S, poll_s: float = POLL_S) -> S3Store:
    """`store`, its writes signed with this job's credentials (reads stay with the machine's
    role). Raises StoreError, saying what it waited for, when none come within `wait_s`."""
    import boto3
    from botocore.credentials import CredentialProvider, RefreshableCredentials
    from botocore.session import get_session

    session = session or boto3.Session()
    key = channel_key(whoami(session))
    deadline = time.monotonic() + wait_s
    first = read_credentials(store, key, job_id)
    while first is None:
        if time.monotonic() > deadline:
            raise StoreError(f"no per-job credentials at {store.uri}/{key} after {wait_s:.0f} s: "
                             "the control plane writes them right after the launch")
        time.sleep(poll_s)
        first = read_credentials(store, key, job_id)

    def refresh() -> dict:
        again = read_credentials(store, key, job_id)
        if again is None:  # withdrawn: the attempt ended; keep what we have until it lapses
            raise StoreError(f"the per-job credentials at {key} were withdrawn")
        log.info("per-job credentials renewed, valid until %s", again.expires_at.isoformat())
        return again.botocore()

    class FromTheChannel(CredentialProvider):
        METHOD = "trainops-job-credentials"

        def load(self):
            return RefreshableCredentials.create_from_metadata(
                metadata=first.botocore(), refresh_using=refresh, method=self.METHOD)

    core = get_session()
    # First in botocore's resolver chain: this client never falls back to the machine's role.
    core.get_component("credential_provider").insert_before("env", FromTheChannel())
    writer_session = boto3.Session(botocore_session=core, region_name=session.region_name)
    return store.writing_with(writer_session.client("s3"))
