"""Secrets out of text that leaves the process: what the bot posts, what the events table keeps,
what status.json says. Two nets: the known secret values of this deployment (settings), and the
shapes secrets have (Slack tokens, AWS key ids, long opaque values after `=` or `:`).

Used by the control plane (records.add_event, the Slack notifier) and by the agent on its own
error text (it has no settings: the patterns alone).
"""

from __future__ import annotations

import re
from collections.abc import Iterable

MASK = "[redacted]"
_PATTERNS = [
    re.compile(r"xox[abeoprs]-[A-Za-z0-9-]{6,}"),  # Slack bot/user/app/refresh tokens
    re.compile(r"xapp-[A-Za-z0-9-]{6,}"),
    re.compile(r"\b(?:AKIA|ASIA|AROA|AIDA)[A-Z0-9]{12,}\b"),  # AWS access key / role ids
    re.compile(r"-----BEGIN [A-Z ]*PRIVATE KEY-----[\s\S]*?(?:-----END [A-Z ]*PRIVATE KEY-----|$)"),
]
# key=VALUE or key: VALUE where VALUE is long and opaque (a secret key, a signing secret, a
# password in a URL): the name stays, the value goes.
_ASSIGNED = re.compile(
    r"(?i)((?:secret|token|password|passwd|signing|api[_-]?key|access[_-]?key|credential|awskey)"
    r"[A-Za-z0-9_.-]*\s*[=:]\s*)([^\s'\"&<>]{8,})")
_OPAQUE = re.compile(r"(=\s*)([A-Za-z0-9+/_-]{32,}={0,2})(?=[\s'\"&;,]|$)")
_URL_PASSWORD = re.compile(r"(://[^:/\s@]+:)([^@\s]+)(@)")


def redact(text: str | None, known: Iterable[str] = ()) -> str:
    """`text` with every known secret value and every secret-shaped token masked."""
    if not text:
        return text or ""
    for value in sorted({k for k in known if k and len(k) >= 6}, key=len, reverse=True):
        text = text.replace(value, MASK)
    for pattern in _PATTERNS:
        text = pattern.sub(MASK, text)
    text = _ASSIGNED.sub(lambda m: m.group(1) + MASK, text)
    text = _OPAQUE.sub(lambda m: m.group(1) + MASK, text)
    return _URL_PASSWORD.sub(lambda m: m.group(1) + MASK + m.group(3), text)


def known_secrets(settings) -> list[str]:
    """This deployment's secret values: Slack tokens, the signing secret, the AWS secret key (and
    session token) and the database password, whatever their shape."""
    from urllib.parse import urlparse

    out = []
    for name in ("slack_bot_token", "slack_signing_secret", "slack_app_token",
                 "aws_secret_access_key", "aws_session_token"):
        value = getattr(settings, name, None)
        if value is not None:
            out.append(value.get_secret_value())
    for url in (getattr(settings, "database_url", ""), getattr(settings, "broker_url", "")):
        password = urlparse(url).password if url else None
        if password:
            out.append(password)
    return [v for v in out if v]


def redact_for(settings, text: str | None) -> str:
    return redact(text, known_secrets(settings))
