"""Finding 8: the agent's clock decided the cap, and the meter billed up to when it NOTICED an
end. Now the agent holds its deadline as a duration (control.json's seconds_left, counted on its
own monotonic clock from when it read it), and an attempt is billed up to when its machine
stopped: the local process's exit time, EC2's state transition time, or the agent's last
status when earlier — not up to a tick after a monitor outage."""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import boto3
from sqlmodel import select

from schemas.db.tables import Attempt
from schemas.settings import get_settings
from schemas.spec import utcnow
from schemas.store import open_store
from tests.integration.security.test_cap_faults import _running_job
from tests.support.agent import Job, agent_env, file_store, token_cache  # noqa: F401
from tests.support.slack_harness import wait_until
from training.agent import runtime
from training.agent.main import run
from workers.monitor import control
from workers.monitor.tick import tick
from workers.notify import ConsoleNotifier
from workers.providers.aws import AwsProvider

SLOW_S = 120


class SlowClock(datetime):
    """This machine's wall clock, running SLOW_S behind everyone else's."""

    @classmethod
    def now(cls, tz=None):
        return datetime.now(tz) - timedelta(seconds=SLOW_S)


def test_a_slow_agent_clock_cannot_extend_the_cap(file_store, tmp_path, monkeypatch):  # noqa: F811
    job = Job(file_store, "j-slowclock", epochs=1000, checkpoint_every_steps=10**6)
    monkeypatch.setattr(runtime, "datetime", SlowClock)
    result = {}
    thread = threading.Thread(target=lambda: result.update(code=run(job.uri, tmp_path / "w")),
                              daemon=True)
    thread.start()
    job.wait_training(timeout=120)
    # The monitor (its clock right) writes a deadline 25 s away; then it goes down.
    written = time.monotonic()
    control.write_deadline(open_store(file_store), "j-slowclock",
                           utcnow() + timedelta(seconds=25), Decimal("10"), force=True)
    thread.join(25 + 20)
    took = time.monotonic() - written
    assert result.get("code") == 5, f"no deadline stop {took:.0f} s after a 25 s deadline"
    assert took < 30, f"stopped {took:.0f} s after the control write for a 25 s deadline"


def test_the_meter_bills_up_to_the_exit_not_the_next_tick(worker, database, monkeypatch):
    monkeypatch.setenv("TRAINOPS_LOCAL_PRICE_PER_HOUR", "36")  # a cent a second
    get_settings.cache_clear()
    settings = get_settings()
    job_id, attempt = _running_job(database, "sleep 1")
    # No beat: the monitor is down while the agent finishes and its process exits.
    exit_file = Path(settings.store.removeprefix("file://")) / ".local-instances"
    exited = wait_until(lambda: next(iter(exit_file.glob(f"{job_id}-1-*.exit")), None),
                        timeout=60, what="the local agent's exit record")
    stamp = datetime.fromtimestamp(float(exited.read_text().split()[1]), UTC)
    wait_until(lambda: utcnow() > stamp + timedelta(seconds=6), timeout=20,
               what="six seconds of monitor outage")
    noticed = utcnow()
    tick(database, settings, ConsoleNotifier())
    with database.session() as s:
        ended = s.exec(select(Attempt).where(Attempt.id == attempt.id)).one().ended_at
    ended = ended if ended.tzinfo else ended.replace(tzinfo=UTC)
    assert ended <= stamp + timedelta(seconds=1), (ended, stamp)
    assert noticed - ended >= timedelta(seconds=5), "billed up to when the monitor noticed"
    get_settings.cache_clear()


def test_ec2_machines_are_billed_to_their_state_transition(moto_reset, sec_env):
    ec2 = boto3.client("ec2", region_name="us-east-1")
    ami = ec2.describe_images(Owners=["amazon"])["Images"][0]["ImageId"]
    iid = ec2.run_instances(ImageId=ami, MinCount=1, MaxCount=1, InstanceType="g5.xlarge",
                            TagSpecifications=[{"ResourceType": "instance", "Tags": [
                                {"Key": "trainops:job", "Value": "j-meter"},
                                {"Key": "trainops:attempt", "Value": "1"}]}]
                            )["Instances"][0]["InstanceId"]
    ec2.terminate_instances(InstanceIds=[iid])
    machine = AwsProvider(get_settings()).describe([iid])[iid]
    assert not machine.live and machine.stopped_at is not None
    assert abs((machine.stopped_at - utcnow()).total_seconds()) < 120
