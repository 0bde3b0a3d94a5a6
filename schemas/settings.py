"""Process settings from the environment (and a `.env` file), built once and passed down.

Secrets live here as SecretStr so that printing the settings, or logging them by accident,
shows `**********` and never the token.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Literal

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict


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

    slack_bot_token: SecretStr | None = Field(default=None, alias="SLACK_BOT_TOKEN")
    slack_signing_secret: SecretStr | None = Field(default=None, alias="SLACK_SIGNING_SECRET")
    slack_app_token: SecretStr | None = Field(default=None, alias="SLACK_APP_TOKEN")
    slack_api_url: str = Field(default="https://slack.com/api/", alias="SLACK_API_URL")

    # AWS: boto3 reads AWS_* (and AWS_ENDPOINT_URL) itself; these are trainops' own choices.
    aws_region: str = Field(default="us-east-1", alias="AWS_DEFAULT_REGION")
    aws_ami: str | None = Field(default=None, alias="TRAINOPS_AWS_AMI")
    aws_instance_profile: str | None = Field(default=None, alias="TRAINOPS_AWS_INSTANCE_PROFILE")
    aws_subnets_raw: str = Field(default="", alias="TRAINOPS_AWS_SUBNETS")
    aws_security_groups_raw: str = Field(default="", alias="TRAINOPS_AWS_SECURITY_GROUPS")
    aws_key_name: str | None = Field(default=None, alias="TRAINOPS_AWS_KEY_NAME")

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
