"""The agent bundle and the machine's bootstrap.

The bundle is a zip of the `training` and `schemas` packages (the agent and the shared
language), stored once per content hash under `bundles/` in the object store. The bootstrap is
the instance's user-data: it fetches the bundle and the job's spec from the store and runs
`python -m training.agent --spec URI` with TRAINOPS_POWER_OFF_AT_DEADLINE=1, so the agent powers
the machine off at the money deadline by itself (and the instance's shutdown behaviour,
terminate, makes "off" mean "gone").
"""

from __future__ import annotations

import hashlib
import io
import shlex
import time
import zipfile
from pathlib import Path

from schemas.store import Store

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("training", "schemas")
_SKIP_DIRS = {"__pycache__", "migrations"}  # the agent never runs migrations
_SKIP_SUFFIXES = {".pyc", ".pyo"}


def _files() -> list[tuple[str, Path]]:
    out = []
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*")):
            rel = path.relative_to(ROOT)
            if path.is_file() and not _SKIP_DIRS & set(rel.parts) \
                    and path.suffix not in _SKIP_SUFFIXES:
                out.append((rel.as_posix(), path))
    return out


def build_bundle() -> bytes:
    """A deterministic zip (fixed timestamps), so the same code always has the same hash."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, path in _files():
            info = zipfile.ZipInfo(name, date_time=(2020, 1, 1, 0, 0, 0))
            info.external_attr = 0o644 << 16
            zf.writestr(info, path.read_bytes(), zipfile.ZIP_DEFLATED)
    return buf.getvalue()


RECHECK_S = 600.0
_uploaded: dict[str, tuple[float, str]] = {}  # store URI -> (checked at, bundle URI)


def upload_bundle(store: Store) -> str:
    """Upload the bundle if this content is not there yet; returns its URI. Checked once per
    store every 10 minutes per process (not once per launch), so a wiped store heals."""
    seen = _uploaded.get(store.uri)
    if seen and time.monotonic() - seen[0] < RECHECK_S:
        return seen[1]
    data = build_bundle()
    key = f"bundles/agent-{hashlib.sha256(data).hexdigest()[:16]}.zip"
    if store.read_bytes(key) is None:
        store.write_bytes(key, data)
    _uploaded[store.uri] = (time.monotonic(), f"{store.uri}/{key}")
    return _uploaded[store.uri][1]


# Python packages the agent needs beyond what the PyTorch Deep Learning AMI ships.
AGENT_PIP = "'transformers>=4.45' 'peft>=0.13' 'accelerate>=0.34' 'pydantic>=2.7,<3' 'pydantic-settings>=2.3' boto3"

def user_data(*, job_id: str, attempt: int, spec_uri: str, bundle_uri: str, region: str) -> str:
    """The instance's user-data script (EC2 base64-encodes it; boto3 does that for us)."""
    fetch = (
        "import sys, zipfile, boto3\n"
        "from urllib.parse import urlparse\n"
        "u = urlparse(sys.argv[1])\n"
        "boto3.client('s3').download_file(u.netloc, u.path.lstrip('/'), 'bundle.zip')\n"
        "zipfile.ZipFile('bundle.zip').extractall('bundle')\n"
    )
    lines = [
        "#!/bin/bash",
        f"# trainops bootstrap for job {job_id}, attempt {attempt}",
        "set -uo pipefail",
        "exec >>/var/log/trainops-bootstrap.log 2>&1",
        "# Whatever happens below, a machine whose agent is gone powers off (and so terminates).",
        "trap 'shutdown -h now' EXIT",
        "export TRAINOPS_POWER_OFF_AT_DEADLINE=1",
        f"export AWS_DEFAULT_REGION={shlex.quote(region)}",
        "WORK=/opt/trainops; mkdir -p \"$WORK\" && cd \"$WORK\" || exit 1",
        "PY=python3; [ -x /opt/pytorch/bin/python ] && PY=/opt/pytorch/bin/python",
        f"\"$PY\" -m pip install --quiet {AGENT_PIP} || exit 1",
        f"\"$PY\" -c {shlex.quote(fetch)} {shlex.quote(bundle_uri)} || exit 1",
        "export PYTHONPATH=\"$WORK/bundle\"",
        f"\"$PY\" -m training.agent --spec {shlex.quote(spec_uri)}",
        "",
    ]
    return "\n".join(lines)
