"""Per-job store credentials, the control plane's side (schemas/credentials.py has the design).

For each attempt on a machine: assume the job role with the session tag `trainops:job=<job>`,
write the credentials where only that machine may read them, renew them before they lapse
(workers/rules/credentials.py), and withdraw them when the machine goes.
"""

from __future__ import annotations

import hashlib
import json
import logging
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from functools import cached_property

from botocore.exceptions import ClientError

from schemas.credentials import SESSION_TAG, JobCredentials, channel_key, principal
from schemas.settings import Settings
from schemas.store import Store, open_store
from workers.providers.base import LaunchError
from workers.rules.credentials import renewal_due, session_name

log = logging.getLogger(__name__)
CHAINED_MAX_S = 3600  # AWS's limit for a role assumed with another role's credentials
RENEW_THREADS = 16  # STS and S3 calls in flight at once while renewing
# The monitor's record of when each machine's credentials end: the control plane's own file
# (no machine may read monitor/), beside the monitor's memo.
ISSUED_KEY = "monitor/credentials.json"


class JobCredentialsIssuer:
    """Does nothing where the deployment names no job role (`enabled` is False): there every
    machine writes with its instance role."""

    def __init__(self, settings: Settings, session, store: Store | None = None):
        self.settings, self._session, self._store = settings, session, store
        self.enabled = bool(settings.aws_job_role)
        self._duration_s = settings.aws_job_credentials_s
        self._role_id: str | None = None
        self._issued: dict[str, tuple[str, int, datetime]] = {}  # instance -> job, attempt, end
        self._loaded, self._saved = False, ""  # ISSUED_KEY read once; the digest last written

    @cached_property
    def store(self) -> Store:
        return self._store or open_store(self.settings.store)

    @cached_property
    def sts(self):
        return self._session.client("sts")

    @cached_property
    def iam(self):
        return self._session.client("iam")

    def check(self) -> None:
        """Before a launch: a misconfiguration fails before a machine exists."""
        if self.enabled:
            self.role_id()

    def role_id(self) -> str:
        """The unique id of the role the machines run as: half of their `aws:userid`."""
        if self._role_id is None:
            profile = self.settings.aws_instance_profile
            if not profile:
                raise LaunchError("JobCredentials", "TRAINOPS_AWS_JOB_ROLE needs "
                                  "TRAINOPS_AWS_INSTANCE_PROFILE: the machine reads its "
                                  "credentials as that profile's role")
            name = profile.rsplit("/", 1)[-1]
            try:
                roles = self.iam.get_instance_profile(
                    InstanceProfileName=name)["InstanceProfile"]["Roles"]
            except ClientError as exc:
                raise LaunchError("JobCredentials", f"cannot read instance profile {name}: "
                                  f"{exc}") from None
            if not roles:
                raise LaunchError("JobCredentials", f"instance profile {name} holds no role")
            self._role_id = roles[0]["RoleId"]
        return self._role_id

    def hand_over(self, job_id: str, attempt: int, instance_id: str) -> JobCredentials | None:
        """Issue this attempt's credentials and write them for `instance_id` alone."""
        if not self.enabled:
            return None
        issued = self._assume(job_id, attempt)
        self.store.write_bytes(channel_key(principal(self.role_id(), instance_id)),
                               issued.to_store())
        self._issued[instance_id] = (job_id, attempt, issued.expires_at)
        log.info("per-job credentials for %s #%d on %s, valid until %s", job_id, attempt,
                 instance_id, issued.expires_at.isoformat())
        return issued

    def renew(self, live: list[tuple[str, int, str]], now: datetime) -> int:
        """For each (job, attempt, instance) whose machine is up: renew what is due. Withdraw
        the credentials of machines this process issued that are no longer up. The count
        renewed. Machines this process has not seen (a restarted worker, or one another worker
        process launched) are first looked up in the store, so a restart re-reads their
        expiry instead of issuing every machine's again. Both run RENEW_THREADS at a time:
        a tick over 1,000 machines must not make 1,000 round trips in a row."""
        if not self.enabled:
            return 0
        self.role_id()  # once, before the threads
        self._load_issued()
        self._parallel(self._learn, [x for x in live if x[2] not in self._issued])
        due = [x for x in live if renewal_due(self._end(*x), now)]
        renewed = sum(self._parallel(lambda x: self.hand_over(*x) is not None, due))
        gone = set(self._issued) - {instance for _, _, instance in live}
        for instance_id in sorted(gone):
            self.withdraw(instance_id)
        self._save_issued()
        return renewed

    def _load_issued(self) -> None:
        """Once a process: the ends the monitor last saved (ISSUED_KEY), so a restarted worker
        neither issues nor reads every machine's credentials again."""
        if self._loaded:
            return
        self._loaded = True
        try:
            blob = self.store.read_bytes(ISSUED_KEY)
            for instance, (job_id, attempt, end) in (json.loads(blob) if blob else {}).items():
                self._issued.setdefault(instance, (job_id, attempt, datetime.fromisoformat(end)))
        except Exception:  # noqa: BLE001 - a cache: without it each machine's is read once
            log.warning("%s is unreadable; each machine's credentials are looked up", ISSUED_KEY)

    def _save_issued(self) -> None:
        blob = json.dumps({i: [j, a, end.isoformat()] for i, (j, a, end)
                           in sorted(self._issued.items())}, separators=(",", ":")).encode()
        digest = hashlib.sha256(blob).hexdigest()
        if digest == self._saved:
            return
        try:
            self.store.write_bytes(ISSUED_KEY, blob)
            self._saved = digest
        except Exception:  # noqa: BLE001 - the next tick saves it again
            log.warning("could not save %s", ISSUED_KEY)

    def _end(self, job_id: str, attempt: int, instance_id: str) -> datetime | None:
        held = self._issued.get(instance_id)
        return held[2] if held and held[:2] == (job_id, attempt) else None

    def _learn(self, item: tuple[str, int, str]) -> bool:
        """What the store holds for this machine, if it is this attempt's."""
        job_id, attempt, instance_id = item
        blob = self.store.read_bytes(channel_key(principal(self.role_id(), instance_id)))
        if blob is None:
            return False
        held = JobCredentials.model_validate_json(blob)
        if (held.job_id, held.attempt) == (job_id, attempt):
            self._issued[instance_id] = (job_id, attempt, held.expires_at)
        return True

    def _parallel(self, fn, items: list) -> list:
        """fn over items, RENEW_THREADS at a time; a failure is logged and counts as False
        (the next tick tries again; the machine's credentials still hold until they lapse)."""
        def safe(item):
            try:
                return fn(item)
            except Exception:  # noqa: BLE001 - one machine's trouble must not stop the others
                log.exception("per-job credentials for %s", item)
                return False

        if not items:
            return []
        with ThreadPoolExecutor(max_workers=min(RENEW_THREADS, len(items))) as pool:
            return list(pool.map(safe, items))

    def withdraw(self, instance_id: str) -> None:
        self._issued.pop(instance_id, None)
        self.store.delete(channel_key(principal(self.role_id(), instance_id)))

    def withdraw_all(self, instance_ids: list[str]) -> None:
        """As machines are terminated; a failure is only logged: they lapse on their own."""
        for instance_id in instance_ids if self.enabled else []:
            try:
                self.withdraw(instance_id)
            except Exception as exc:  # noqa: BLE001 - the terminate matters, not this
                log.warning("could not withdraw %s's credentials: %s", instance_id, exc)

    def _assume(self, job_id: str, attempt: int) -> JobCredentials:
        args = {"RoleArn": self.settings.aws_job_role,
                "RoleSessionName": session_name(job_id, attempt),
                "Tags": [{"Key": SESSION_TAG, "Value": job_id}],
                "DurationSeconds": self._duration_s}
        try:
            reply = self.sts.assume_role(**args)
        except ClientError as exc:
            # A worker on a role may assume another for an hour at most (role chaining); say
            # so once and keep to it.
            if "DurationSeconds" not in str(exc) or self._duration_s <= CHAINED_MAX_S:
                raise
            log.warning("the job role allows no %d s session from these credentials; "
                        "using %d s (role chaining)", self._duration_s, CHAINED_MAX_S)
            self._duration_s = args["DurationSeconds"] = CHAINED_MAX_S
            reply = self.sts.assume_role(**args)
        c = reply["Credentials"]
        return JobCredentials(job_id=job_id, attempt=attempt, access_key_id=c["AccessKeyId"],
                              secret_access_key=c["SecretAccessKey"],
                              session_token=c["SessionToken"], expires_at=c["Expiration"])
