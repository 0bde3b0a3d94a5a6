"""The agent as a real subprocess against a file store, and recipe runs on the CPU with the
built-in tiny model: one thread (the CI machine is shared), no hub, one token/split cache per
session (keyed by content, so sharing is safe)."""

from __future__ import annotations

import pytest

from tests.support.agent import agent_env, fake_imds, file_store, token_cache  # noqa: F401


@pytest.fixture(scope="session", autouse=True)
def one_thread():
    import torch

    torch.set_num_threads(1)


@pytest.fixture(scope="session")
def cache_dir(tmp_path_factory):
    return tmp_path_factory.mktemp("stage-cache")
