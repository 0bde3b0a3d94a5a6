"""The agent bundle and the machine's bootstrap.

The bundle is a zip of the `training` package and the part of `schemas` the agent speaks (the
spec, the store and its layout, errors; no database, settings or team config), stored once per content hash under `bundles/` in the object store. The bootstrap is
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

ROOT = Path(__file__).resolve().parents[2]
# The agent's side of the wire: a test imports the agent from a bundle alone to keep this honest.
AGENT_SCHEMAS = ("__init__.py", "errors.py", "spec.py", "job.py", "store.py", "checkpoints.py",
                 "redact.py", "data_access.py", "credentials.py")
_SKIP_DIRS = {"__pycache__"}
_SKIP_SUFFIXES = {".pyc", ".pyo"}


def _files() -> list[tuple[str, Path]]:
    out = []
    for path in sorted((ROOT / "training").rglob("*")):
        rel = path.relative_to(ROOT)
        if path.is_file() and not _SKIP_DIRS & set(rel.parts) and path.suffix not in _SKIP_SUFFIXES:
            out.append((rel.as_posix(), path))
    out += [(f"schemas/{name}", ROOT / "schemas" / name) for name in AGENT_SCHEMAS]
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


# The agent's Python packages at the versions CI tests (`bash .ci/lock` writes them), embedded in
# the user-data (comments dropped: EC2 caps it at 16 KB), so the machine needs only pip.
LOCKS = ROOT / "requirements"


def _lock(name: str) -> str:
    lines = (line.split("#", 1)[0].strip() for line in (LOCKS / name).read_text().splitlines())
    return "".join(f"{line}\n" for line in lines if line)


def user_data(*, job_id: str, attempt: int, spec_uri: str, bundle_uri: str, region: str,
              qlora: bool = False) -> str:
    """The instance's user-data script (EC2 base64-encodes it; boto3 does that for us).
    `qlora`: the job's method is qlora, so bitsandbytes (requirements/qlora.lock) goes in too."""
    keep_torch = 'import sys, torch; sys.exit(torch.__version__.split("+")[0] != "2.13.0")'
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
        "cat > requirements.txt <<'TRAINOPS_LOCK'",
        (_lock("agent.lock") + (_lock("qlora.lock") if qlora else "")).rstrip("\n"),
        "TRAINOPS_LOCK",
        "# An image whose Python has torch 2.13.0 already (with its own CUDA) keeps it.",
        f"if \"$PY\" -c {shlex.quote(keep_torch)} 2>/dev/null; then",
        "  grep -viE '^(torch|triton|nvidia-|cuda-)' requirements.txt > r.txt && mv r.txt requirements.txt",
        "fi",
        "\"$PY\" -m pip install --quiet -r requirements.txt || exit 1",
        f"\"$PY\" -c {shlex.quote(fetch)} {shlex.quote(bundle_uri)} || exit 1",
        "export PYTHONPATH=\"$WORK/bundle\"",
        f"\"$PY\" -m training.agent --spec {shlex.quote(spec_uri)}",
        "",
    ]
    return "\n".join(lines)
