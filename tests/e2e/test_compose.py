"""docker/compose.yaml, checked without docker: the services a team needs, their health checks
and start order, and that every variable the settings read reaches the trainops services.
(`docker compose -f docker/compose.yaml config` is the full check where compose is installed.)"""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
COMPOSE = ROOT / "docker" / "compose.yaml"


def _compose() -> dict:
    return yaml.safe_load(COMPOSE.read_text())


def test_services_health_checks_and_order():
    services = _compose()["services"]
    assert set(services) == {"redis", "postgres", "migrate", "bot", "worker", "beat"}
    for name in ("redis", "postgres", "bot", "worker"):
        assert services[name]["healthcheck"]["test"], f"{name} has no health check"
    for name in ("bot", "worker", "beat"):
        assert services[name]["depends_on"]["migrate"]["condition"] == \
            "service_completed_successfully"
        assert services[name]["command"][0] == "trainops"
    assert services["migrate"]["command"] == ["trainops", "db", "upgrade"]
    for name in ("redis", "postgres"):
        assert services["migrate"]["depends_on"][name]["condition"] == "service_healthy"
    assert {"redis-data", "postgres-data"} <= set(_compose()["volumes"])


def test_every_setting_reaches_the_services():
    from schemas.settings import Settings

    env = _compose()["services"]["worker"]["environment"]
    for field in Settings.model_fields.values():
        assert field.alias in env, f"{field.alias} is not passed to the trainops services"
    example = (ROOT / "docker" / ".env.example").read_text()
    named = set(re.findall(r"^([A-Z_]+)=", example, re.M))
    assert {f.alias for f in Settings.model_fields.values()} <= named


@pytest.mark.skipif(not (shutil.which("docker-compose") or shutil.which("docker")),
                    reason="no compose CLI on this machine")
def test_compose_config_is_valid():
    cli = ["docker-compose"] if shutil.which("docker-compose") else ["docker", "compose"]
    done = subprocess.run([*cli, "-f", str(COMPOSE), "config", "-q"], capture_output=True,
                          text=True, cwd=ROOT, timeout=60)
    if cli == ["docker", "compose"] and "is not a docker command" in done.stderr:
        pytest.skip("docker has no compose plugin here")
    assert done.returncode == 0, done.stderr
