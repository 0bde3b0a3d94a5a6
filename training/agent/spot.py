"""Spot notices from the instance metadata service (IMDSv2).

Two signals, polled every spec.notice_poll_s (5 s: AWS gives two minutes' notice, best effort):
`spot/instance-action` (the instance WILL be stopped or terminated: checkpoint, upload, exit) and
`events/recommendations/rebalance` (elevated risk, often earlier: checkpoint now, keep going).
The endpoint comes from AWS_EC2_METADATA_SERVICE_ENDPOINT, botocore's own override, so tests
and the local provider can serve a fake one on loopback. No endpoint reachable means no notice
(a laptop, the local provider): logged once, never an error.
"""

from __future__ import annotations

import json
import logging
import os
import urllib.error
import urllib.request

log = logging.getLogger("trainops.imds")

DEFAULT_ENDPOINT = "http://169.254.169.254"
TOKEN_TTL_S = 21600
ACTION_PATH = "/latest/meta-data/spot/instance-action"
REBALANCE_PATH = "/latest/meta-data/events/recommendations/rebalance"


class Imds:
    def __init__(self, endpoint: str | None = None, timeout_s: float = 1.0):
        self.endpoint = (endpoint or os.environ.get("AWS_EC2_METADATA_SERVICE_ENDPOINT")
                         or DEFAULT_ENDPOINT).rstrip("/")
        self.timeout_s = timeout_s
        self._token: str | None = None
        self._unreachable_logged = False

    def _request(self, path: str, method: str = "GET", headers: dict | None = None) -> tuple[int, bytes]:
        req = urllib.request.Request(self.endpoint + path, method=method, headers=headers or {})
        try:
            with urllib.request.urlopen(req, timeout=self.timeout_s) as resp:
                return resp.status, resp.read()
        except urllib.error.HTTPError as exc:
            return exc.code, b""

    def _get(self, path: str) -> bytes | None:
        """The document at path, None on 404 (nothing to report)."""
        for _ in range(2):  # a second try after refreshing an expired token (401)
            if self._token is None:
                status, body = self._request("/latest/api/token", "PUT",
                                             {"X-aws-ec2-metadata-token-ttl-seconds": str(TOKEN_TTL_S)})
                if status != 200:
                    raise OSError(f"IMDS token request answered {status}")
                self._token = body.decode()
            status, body = self._request(path, headers={"X-aws-ec2-metadata-token": self._token})
            if status == 401:
                self._token = None
                continue
            if status == 404:
                return None
            if status != 200:
                raise OSError(f"IMDS {path} answered {status}")
            return body
        return None

    def poll(self) -> tuple[dict | None, dict | None]:
        """(instance-action, rebalance) documents; (None, None) when nothing or unreachable."""
        try:
            action = self._get(ACTION_PATH)
            rebalance = self._get(REBALANCE_PATH)
        except (OSError, ValueError) as exc:  # URLError, timeouts and refused connections are OSError
            if not self._unreachable_logged:
                log.info("no instance metadata at %s (%s): spot notices off", self.endpoint, exc)
                self._unreachable_logged = True
            return None, None
        return _parse(action), _parse(rebalance)


def _parse(body: bytes | None) -> dict | None:
    if body is None:
        return None
    try:
        doc = json.loads(body)
    except ValueError:
        doc = {"raw": body.decode(errors="replace")}
    return doc if isinstance(doc, dict) else {"raw": doc}
