"""Where machines come from: `aws` (EC2 spot and on-demand) or `local` (this machine)."""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING

from schemas.errors import UserError

if TYPE_CHECKING:
    from schemas.settings import Settings
    from workers.providers.base import Provider

PROVIDERS = ("local", "aws")


_cache: dict[tuple[str, str], Provider] = {}
_lock = threading.Lock()


def get_provider(name: str, settings: Settings) -> Provider:
    """One provider per name and settings per process: boto3 clients are thread-safe and
    costly to build, and the provider's caches (AMI, quotas, vCPUs) then last across tasks."""
    key = (name, settings.model_dump_json())
    with _lock:
        if key not in _cache:
            _cache[key] = _build(name, settings)
        return _cache[key]


def _build(name: str, settings: Settings) -> Provider:
    if name == "aws":
        from workers.providers.aws import AwsProvider  # boto3 only when AWS is used

        return AwsProvider(settings)
    if name == "local":
        from workers.providers.local import LocalProvider

        return LocalProvider(settings)
    raise UserError(f"unknown provider {name!r}; use one of: {', '.join(PROVIDERS)}")
