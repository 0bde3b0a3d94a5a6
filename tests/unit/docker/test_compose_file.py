"""docker/compose.yaml, read as YAML with no docker at all: what a team's `docker compose up`
would start, in which order, from which image, with which command, environment and volumes.
(tests/e2e/test_compose.py runs `docker compose config` where a compose CLI exists.)"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[3]
COMPOSE = ROOT / "docker" / "compose.yaml"
TRAINOPS = ("migrate", "bot", "worker", "beat")


@pytest.fixture(scope="module")
def compose() -> dict:
    return yaml.safe_load(COMPOSE.read_text())  # merge keys (<<: *trainops) resolved


def test_the_services_a_team_needs(compose):
    assert set(compose["services"]) == {"redis", "postgres", *TRAINOPS}


def test_images_and_builds(compose):
    services = compose["services"]
    assert services["redis"]["image"].startswith("redis:")
    assert services["postgres"]["image"].startswith("postgres:")
    for name in TRAINOPS:  # one image, built from the repository's Dockerfile
        assert services[name]["image"] == "trainops:latest"
        build = services[name]["build"]
        assert (COMPOSE.parent / build["context"] / build["dockerfile"]).resolve() == \
            (ROOT / "docker" / "Dockerfile")


def test_commands(compose):
    services = compose["services"]
    assert services["migrate"]["command"] == ["trainops", "db", "upgrade"]
    assert services["migrate"]["restart"] == "no"  # runs once, then the others start
    assert services["bot"]["command"][:2] == ["trainops", "serve"]
    assert services["worker"]["command"][:2] == ["trainops", "worker"]
    assert services["beat"]["command"] == ["trainops", "beat"]
    assert services["redis"]["command"][0] == "redis-server"


def test_start_order_waits_on_health_checks(compose):
    services = compose["services"]
    for name in ("redis", "postgres", "bot", "worker"):
        check = services[name]["healthcheck"]
        assert check["test"][0] in ("CMD", "CMD-SHELL") and len(check["test"]) > 1, name
        assert check["retries"] >= 1 and check["interval"], name
    for name in ("redis", "postgres"):  # the schema is made once both answer
        assert services["migrate"]["depends_on"][name]["condition"] == "service_healthy"
    for name in ("bot", "worker", "beat"):  # and nothing runs before the schema is there
        assert services[name]["depends_on"]["migrate"]["condition"] == \
            "service_completed_successfully"


def test_the_trainops_services_reach_redis_and_postgres_by_service_name(compose):
    env = compose["services"]["worker"]["environment"]
    assert re.match(r"redis://redis:6379/\d+$", env["TRAINOPS_BROKER_URL"])
    pg = compose["services"]["postgres"]["environment"]
    assert env["TRAINOPS_DATABASE_URL"] == (
        f"postgresql+psycopg://{pg['POSTGRES_USER']}:{pg['POSTGRES_PASSWORD']}@postgres:5432/"
        f"{pg['POSTGRES_DB']}")
    for name in TRAINOPS:  # the same environment everywhere
        assert compose["services"][name]["environment"] == env


def test_every_setting_reaches_the_services_and_the_env_example(compose):
    from schemas.settings import Settings

    aliases = {f.alias for f in Settings.model_fields.values()}
    env = compose["services"]["worker"]["environment"]
    assert aliases <= set(env), f"not passed to the services: {sorted(aliases - set(env))}"
    example = (ROOT / "docker" / ".env.example").read_text()
    named = set(re.findall(r"^([A-Z_]+)=", example, re.M))
    assert aliases <= named, f"not in docker/.env.example: {sorted(aliases - named)}"
    for alias, value in env.items():  # secrets come from the environment, never the file
        if alias in ("SLACK_BOT_TOKEN", "SLACK_SIGNING_SECRET", "SLACK_APP_TOKEN",
                     "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN"):
            assert value == f"${{{alias}:-}}", alias


def test_volumes(compose):
    assert set(compose["volumes"]) == {"redis-data", "postgres-data", "store-data"}
    services = compose["services"]
    assert "redis-data:/data" in services["redis"]["volumes"]
    assert "postgres-data:/var/lib/postgresql/data" in services["postgres"]["volumes"]
    for name in TRAINOPS:
        volumes = services[name]["volumes"]
        assert "store-data:/data" in volumes
        config = next(v for v in volumes if v.endswith(":/config/trainops.toml:ro"))
        assert (COMPOSE.parent / config.split(":")[0]).resolve().exists(), config
