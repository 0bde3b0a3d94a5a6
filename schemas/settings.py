"""Process settings from the environment (and a `.env` file), built once and passed down.

Secrets live here as SecretStr so that printing the settings, or logging them by accident,
shows `**********` and never the token.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from functools import lru_cache
from typing import Literal

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

SLACK_NOTIFIER = "bot.slack.notifier:SlackNotifier"


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_file=".env", extra="ignore", populate_by_name=True)

    database_url: str = Field(default="sqlite:///trainops.db", alias="TRAINOPS_DATABASE_URL")
    broker_url: str = Field(default="redis://localhost:6379/0", alias="TRAINOPS_BROKER_URL")
    store: str = Field(default="file://./.trainops-store", alias="TRAINOPS_STORE")
    provider: Literal["local", "aws"] = Field(default="local", alias="TRAINOPS_PROVIDER")
    config_path: str = Field(default="./trainops.toml", alias="TRAINOPS_CONFIG")
    approvers_raw: str = Field(default="", alias="TRAINOPS_APPROVERS")
    local_price_per_hour: float = Field(default=0.0, ge=0, alias="TRAINOPS_LOCAL_PRICE_PER_HOUR")
    monitor_interval_s: float = Field(default=30.0, gt=0, alias="TRAINOPS_MONITOR_INTERVAL")
    reaper_interval_s: float = Field(default=600.0, gt=0, alias="TRAINOPS_REAPER_INTERVAL")
    # How often a running job's progress card is refreshed in the thread.
    progress_every_s: float = Field(default=180.0, gt=0, alias="TRAINOPS_PROGRESS_EVERY")
    # Who tells people about jobs: "auto" (Slack when SLACK_BOT_TOKEN is set, else the console),
    # "console", or "package.module:Class" taking the settings. The runner owns the Notifier
    # protocol; which adapter fills it is configuration, so workers/ never imports bot/.
    notifier: str = Field(default="auto", alias="TRAINOPS_NOTIFIER")

    slack_bot_token: SecretStr | None = Field(default=None, alias="SLACK_BOT_TOKEN")
    slack_signing_secret: SecretStr | None = Field(default=None, alias="SLACK_SIGNING_SECRET")
    slack_app_token: SecretStr | None = Field(default=None, alias="SLACK_APP_TOKEN")
    slack_api_url: str = Field(default="https://slack.com/api/", alias="SLACK_API_URL")
    demo_channel: str | None = Field(default=None, alias="TRAINOPS_DEMO_CHANNEL")

    # AWS: boto3 reads AWS_* (and AWS_ENDPOINT_URL) itself; these are trainops' own choices.
    aws_region: str = Field(default="us-east-1", alias="AWS_DEFAULT_REGION")
    # A test server or proxy for every AWS client (boto3 reads it too); part of price cache keys.
    aws_endpoint_url: str = Field(default="", alias="AWS_ENDPOINT_URL")
    aws_ami: str | None = Field(default=None, alias="TRAINOPS_AWS_AMI")
    aws_instance_profile: str | None = Field(default=None, alias="TRAINOPS_AWS_INSTANCE_PROFILE")
    aws_subnets_raw: str = Field(default="", alias="TRAINOPS_AWS_SUBNETS")
    aws_security_groups_raw: str = Field(default="", alias="TRAINOPS_AWS_SECURITY_GROUPS")
    aws_key_name: str | None = Field(default=None, alias="TRAINOPS_AWS_KEY_NAME")
    # Per-job store credentials (schemas/credentials.py, docs/security.md): the ARN of the role
    # each attempt's credentials are assumed from, tagged with its job; unset, every machine
    # writes with the instance role, which can then write any job's files. Their lifetime:
    # assumed from the worker's own role (role chaining) AWS allows at most an hour.
    aws_job_role: str | None = Field(default=None, alias="TRAINOPS_AWS_JOB_ROLE")
    aws_job_credentials_s: int = Field(default=3600, ge=900, le=43200,
                                       alias="TRAINOPS_AWS_JOB_CREDENTIALS_S")

    # security (issue #14): read only so their values can be redacted from anything posted or
    # stored (schemas/redact.py); boto3 still reads its own credentials itself.
    aws_secret_access_key: SecretStr | None = Field(default=None, alias="AWS_SECRET_ACCESS_KEY")
    aws_session_token: SecretStr | None = Field(default=None, alias="AWS_SESSION_TOKEN")
    # Operations (issue #15). The Celery queue this deployment's workers and beat share: two
    # deployments (or two test runs) on one Redis stay apart by its name. The log level of
    # `trainops worker|beat|serve` when --log-level is not given (workers/logs.py).
    queue: str = Field(default="celery", min_length=1, alias="TRAINOPS_QUEUE")
    log_level: str = Field(default="INFO", alias="TRAINOPS_LOG_LEVEL")

    @property
    def notifier_path(self) -> str:
        if self.notifier != "auto":
            return self.notifier
        return SLACK_NOTIFIER if self.slack_bot_token is not None else "console"

    @property
    def approvers(self) -> frozenset[str]:
        return _split(self.approvers_raw)

    @property
    def aws_subnets(self) -> list[str]:
        return sorted(_split(self.aws_subnets_raw))

    @property
    def aws_security_groups(self) -> list[str]:
        return sorted(_split(self.aws_security_groups_raw))


def _split(raw: str) -> frozenset[str]:
    return frozenset(part.strip() for part in raw.replace(";", ",").split(",") if part.strip())


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return Settings()


# The process environment, read and written here alone: settings above, and the few places that
# start other processes (the demo, the local provider) or ask whether boto3 will find credentials.
AWS_CREDENTIAL_VARIABLES = (
    "AWS_ACCESS_KEY_ID", "AWS_PROFILE", "AWS_WEB_IDENTITY_TOKEN_FILE",
    "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI", "AWS_CONTAINER_CREDENTIALS_FULL_URI",
)


def aws_credentials_in_environment() -> bool:
    return any(os.environ.get(name) for name in AWS_CREDENTIAL_VARIABLES)


def aws_config_files() -> list[str]:
    """Where boto3 looks for credentials and profiles, as it would resolve them."""
    return [os.environ.get("AWS_SHARED_CREDENTIALS_FILE", "~/.aws/credentials"),
            os.environ.get("AWS_CONFIG_FILE", "~/.aws/config")]


def environment_value(name: str) -> str | None:
    """One variable that is not a setting of ours (a child process's marker, say)."""
    return os.environ.get(name)


def environment(**extra: str) -> dict[str, str]:
    """A copy of this process's environment with `extra` on top, for a child process that
    should see everything this one does (the demo's own worker)."""
    return {**os.environ, **extra}


def update_environment(values: Mapping[str, str | None], *, drop_prefixes: tuple[str, ...] = ()) -> None:
    """Set (or, for None and "", remove) variables in this process, then forget cached settings
    so the next get_settings() reads them."""
    for key, value in values.items():
        if value:
            os.environ[key] = value
        else:
            os.environ.pop(key, None)
    for key in [k for k in os.environ if k.startswith(drop_prefixes)] if drop_prefixes else []:
        os.environ.pop(key)
    get_settings.cache_clear()
