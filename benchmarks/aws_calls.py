"""Counts every AWS API call botocore makes in this process, by (service, operation): the
benchmarks report calls per job and per tick from it."""

from __future__ import annotations

import threading
from collections import Counter

CALLS: Counter = Counter()
_lock = threading.Lock()


def count_aws_calls() -> None:
    from botocore.client import BaseClient

    real = BaseClient._make_api_call

    def counted(self, operation, params):
        with _lock:
            CALLS[(self.meta.service_model.service_name, operation)] += 1
        return real(self, operation, params)

    BaseClient._make_api_call = counted
