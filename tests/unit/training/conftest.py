"""The agent's parts: a fake instance-metadata service on loopback, the tiny model."""

from tests.support.agent import agent_env, fake_imds, file_store, token_cache  # noqa: F401
