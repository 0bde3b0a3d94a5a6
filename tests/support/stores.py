"""Stores with injected faults, around the real file store: the boundary where a real fault
cannot be produced on demand."""

from __future__ import annotations


class FlakyStore:
    """The real file store behind a boundary that fails the first `failures` checkpoint uploads."""

    def __init__(self, inner, failures: int):
        self.inner, self.failures, self.calls = inner, failures, 0
        self.uri = inner.uri

    def upload_file(self, key, path):
        if "/checkpoints/" in key:
            self.calls += 1
            if self.calls <= self.failures:
                raise OSError(f"injected upload failure {self.calls}")
        return self.inner.upload_file(key, path)

    def __getattr__(self, name):
        return getattr(self.inner, name)
