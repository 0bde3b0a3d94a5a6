"""The environment a child process gets: built from an allow-list, never a copy of the parent's.

The worker's environment holds the Slack token, the signing secret, the database URL and AWS keys;
a training machine needs none of them. The local provider gives the agent `agent_env(...)`, and
the agent gives a user's command `command_env(...)` (no store credentials at all: the agent, not
the script, talks to the store).
"""

from __future__ import annotations

from collections.abc import Mapping

# What a Python training process needs to start and find its caches.
BASE = ("PATH", "HOME", "USER", "LOGNAME", "LANG", "LC_ALL", "LC_CTYPE", "TZ", "TMPDIR", "TERM",
        "PYTHONPATH", "PYTHONHASHSEED", "PYTHONUNBUFFERED", "VIRTUAL_ENV", "CUDA_VISIBLE_DEVICES",
        "OMP_NUM_THREADS", "MKL_NUM_THREADS", "TOKENIZERS_PARALLELISM")
PREFIXES = ("HF_", "TRANSFORMERS_", "HUGGINGFACE_HUB_CACHE", "TORCH_HOME", "XDG_CACHE_HOME",
            "NCCL_", "TORCHINDUCTOR_")
# The agent's own knobs. Never TRAINOPS_DATABASE_URL or TRAINOPS_BROKER_URL: control-plane only.
AGENT_KEYS = ("TRAINOPS_WORKDIR", "TRAINOPS_CACHE_DIR", "TRAINOPS_ON_EC2")
# What reading an s3:// store needs when no instance role is there (the local provider with an
# S3 store, or moto in tests). On AWS the agent uses the instance role and gets none of these.
AWS_STORE_KEYS = ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN",
                  "AWS_DEFAULT_REGION", "AWS_REGION", "AWS_ENDPOINT_URL", "AWS_PROFILE",
                  "AWS_SHARED_CREDENTIALS_FILE", "AWS_CONFIG_FILE")


def _base(environ: Mapping[str, str]) -> dict[str, str]:
    return {k: v for k, v in environ.items()
            if k in BASE or k.startswith(PREFIXES)}


def agent_env(environ: Mapping[str, str], store_uri: str, **extra: str) -> dict[str, str]:
    """For the agent process: the base, its own knobs and — only for an s3:// store — the
    credentials that store needs (a file:// store needs none)."""
    env = _base(environ)
    env.update({k: environ[k] for k in AGENT_KEYS if k in environ})
    if store_uri.startswith("s3://"):
        env.update({k: environ[k] for k in AWS_STORE_KEYS if k in environ})
    env.update(extra)
    return env


def command_env(environ: Mapping[str, str], **extra: str) -> dict[str, str]:
    """For a user's command: the base and what the agent tells it (TRAINOPS_CHECKPOINT_DIR…),
    no credentials of any kind."""
    env = _base(environ)
    env.update(extra)
    return env
