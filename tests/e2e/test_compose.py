"""`docker compose config` on docker/compose.yaml, where a compose implementation is installed;
a clean skip wherever none is (no docker, or a docker without the compose plugin). The file's
structure is checked without docker in tests/unit/docker/test_compose_file.py."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
COMPOSE = ROOT / "docker" / "compose.yaml"
# What a docker without the compose plugin says (docker 20-27, and newer CLIs).
NO_PLUGIN = ("is not a docker command", "unknown command", "unknown shorthand flag")


def compose_cli() -> tuple[list[str] | None, str]:
    """The compose command this machine has, or None and why not."""
    tried = []
    if shutil.which("docker"):
        done = _run(["docker", "compose", "version"])
        if done is not None and done.returncode == 0:
            return ["docker", "compose"], ""
        tried.append("docker has no compose plugin" + _said(done))
    else:
        tried.append("no docker")
    if shutil.which("docker-compose"):
        done = _run(["docker-compose", "version"])
        if done is not None and done.returncode == 0:
            return ["docker-compose"], ""
        tried.append("docker-compose does not run" + _said(done))
    else:
        tried.append("no docker-compose")
    return None, "; ".join(tried)


def _run(argv: list[str]):
    try:
        return subprocess.run(argv, capture_output=True, text=True, cwd=ROOT, timeout=60)
    except (OSError, subprocess.TimeoutExpired):
        return None


def _said(done) -> str:
    if done is None:
        return ""
    lines = (done.stderr or done.stdout).strip().splitlines()
    return f" ({lines[0][:120]})" if lines else ""


def test_compose_config_is_valid():
    cli, why = compose_cli()
    if cli is None:
        pytest.skip(f"no compose implementation here: {why}")
    done = _run([*cli, "-f", str(COMPOSE), "config", "-q"])
    assert done is not None, "compose config did not finish within 60 s"
    if done.returncode != 0 and any(s in done.stderr for s in NO_PLUGIN):
        pytest.skip(f"{' '.join(cli)} cannot run here: {done.stderr.strip()[:200]}")
    assert done.returncode == 0, done.stderr


def test_no_docker_at_all_is_a_reason_to_skip(monkeypatch, tmp_path):
    monkeypatch.setenv("PATH", str(tmp_path))  # a machine with neither command
    assert compose_cli() == (None, "no docker; no docker-compose")


def test_a_docker_without_the_plugin_is_a_reason_to_skip(monkeypatch, tmp_path):
    """A `docker` that answers as docker does without the compose plugin."""
    fake = tmp_path / "docker"
    fake.write_text("#!/bin/sh\necho 'docker: unknown command: docker compose' >&2\nexit 1\n")
    fake.chmod(0o755)
    monkeypatch.setenv("PATH", str(tmp_path))
    cli, why = compose_cli()
    assert cli is None and "docker has no compose plugin (docker: unknown command" in why
