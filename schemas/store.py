"""The object store both sides share: `s3://bucket/prefix` in production, `file://path` locally.

The layout under a job's folder is a contract (DESIGN.md):

    jobs/<job_id>/spec.json         written by the worker
    jobs/<job_id>/control.json      written by the control plane (stop flag, deadline, cap)
    jobs/<job_id>/progress.json     written by the agent, at least every 30 s
    jobs/<job_id>/status.json       the agent's last word about an attempt
    jobs/<job_id>/checkpoints/step-N/...  with MANIFEST.json written last
    jobs/<job_id>/final/            the trained adapter or model
    jobs/<job_id>/logs/

This module is deliberately small and imports boto3 only when an s3:// store is used, so the
agent and the CLI stay light. JSON writes are atomic: a reader sees the old or the new document,
never half of one (rename on a filesystem, a single PUT on S3).
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Protocol, TypeVar
from urllib.parse import urlparse

from pydantic import BaseModel

from schemas.errors import UserError

M = TypeVar("M", bound=BaseModel)


class StoreError(UserError):
    """The store could not be read or written (bad URI, unreachable bucket, missing key)."""


class Store(Protocol):
    uri: str

    def read_bytes(self, key: str) -> bytes | None: ...
    def write_bytes(self, key: str, data: bytes) -> None: ...
    def upload_file(self, key: str, path: Path) -> None: ...
    def download_file(self, key: str, path: Path) -> None: ...
    def list(self, prefix: str) -> list[str]: ...
    def delete(self, key: str) -> None: ...


class FileStore:
    def __init__(self, root: str | Path):
        self.root = Path(root).resolve()
        self.uri = f"file://{self.root}"

    def _path(self, key: str) -> Path:
        path = (self.root / key).resolve()
        if path != self.root and self.root not in path.parents:
            raise StoreError(f"key {key!r} leaves the store at {self.root}")
        return path

    def read_bytes(self, key: str) -> bytes | None:
        try:
            return self._path(key).read_bytes()
        except FileNotFoundError:
            return None

    def write_bytes(self, key: str, data: bytes) -> None:
        path = self._path(key)
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
        os.replace(tmp, path)

    def upload_file(self, key: str, path: Path) -> None:
        target = self._path(key)
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.")
        os.close(fd)
        shutil.copyfile(path, tmp)
        os.replace(tmp, target)

    def download_file(self, key: str, path: Path) -> None:
        source = self._path(key)
        if not source.exists():
            raise StoreError(f"{self.uri}/{key} does not exist")
        path.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(source, path)

    def list(self, prefix: str) -> list[str]:
        base = self._path(prefix) if prefix else self.root
        if not base.exists():
            return []
        return sorted(
            str(p.relative_to(self.root))
            for p in base.rglob("*")
            if p.is_file() and not p.name.startswith(".")
        )

    def delete(self, key: str) -> None:
        path = self._path(key)
        if path.is_dir():
            shutil.rmtree(path, ignore_errors=True)
        else:
            path.unlink(missing_ok=True)


class S3Store:
    def __init__(self, bucket: str, prefix: str = "", client=None):
        self.bucket = bucket
        self.prefix = prefix.strip("/")
        self.uri = f"s3://{bucket}/{self.prefix}".rstrip("/")
        if client is None:
            import boto3  # only here: file:// users never pay for the import

            client = boto3.client("s3")  # honours AWS_ENDPOINT_URL
        self.client = client

    def _key(self, key: str) -> str:
        return f"{self.prefix}/{key}".lstrip("/") if self.prefix else key

    def read_bytes(self, key: str) -> bytes | None:
        try:
            return self.client.get_object(Bucket=self.bucket, Key=self._key(key))["Body"].read()
        except self.client.exceptions.NoSuchKey:
            return None
        except Exception as exc:  # botocore's ClientError: 404 on some servers, 403 on others
            if _status(exc) in (404,):
                return None
            raise StoreError(f"cannot read s3://{self.bucket}/{self._key(key)}: {exc}") from exc

    def write_bytes(self, key: str, data: bytes) -> None:
        try:
            self.client.put_object(Bucket=self.bucket, Key=self._key(key), Body=data)
        except Exception as exc:
            raise StoreError(f"cannot write s3://{self.bucket}/{self._key(key)}: {exc}") from exc

    def upload_file(self, key: str, path: Path) -> None:
        try:
            self.client.upload_file(str(path), self.bucket, self._key(key))
        except Exception as exc:
            raise StoreError(f"cannot upload to s3://{self.bucket}/{self._key(key)}: {exc}") from exc

    def download_file(self, key: str, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        try:
            self.client.download_file(self.bucket, self._key(key), str(path))
        except Exception as exc:
            raise StoreError(f"cannot download s3://{self.bucket}/{self._key(key)}: {exc}") from exc

    def list(self, prefix: str) -> list[str]:
        full = self._key(prefix)
        keys: list[str] = []
        paginator = self.client.get_paginator("list_objects_v2")
        try:
            for page in paginator.paginate(Bucket=self.bucket, Prefix=full):
                for item in page.get("Contents", []):
                    key = item["Key"]
                    keys.append(key[len(self.prefix) + 1:] if self.prefix else key)
        except Exception as exc:
            raise StoreError(f"cannot list s3://{self.bucket}/{full}: {exc}") from exc
        return sorted(keys)

    def delete(self, key: str) -> None:
        """The object `key` and everything under `key/` — not other keys that merely start with
        the same characters (deleting `step-2` must leave `step-20` alone)."""
        folder = key.rstrip("/")
        for k in [*self.list(folder + "/"), folder]:
            self.client.delete_object(Bucket=self.bucket, Key=self._key(k))


def _status(exc: Exception) -> int | None:
    response = getattr(exc, "response", None) or {}
    return response.get("ResponseMetadata", {}).get("HTTPStatusCode")


def open_store(uri: str) -> Store:
    """`s3://bucket/prefix` or `file://path` (a bare path is taken as a file path)."""
    parsed = urlparse(uri)
    if parsed.scheme == "s3":
        if not parsed.netloc:
            raise StoreError(f"store {uri!r} names no bucket; use s3://bucket/prefix")
        return S3Store(parsed.netloc, parsed.path)
    if parsed.scheme == "file":
        # file://./rel and file:///abs both work; netloc holds "." for the relative form.
        return FileStore((parsed.netloc or "") + parsed.path)
    if parsed.scheme == "":
        return FileStore(uri)
    raise StoreError(f"store {uri!r}: use s3://bucket/prefix or file://path")


def split_job_uri(uri: str) -> tuple[Store, str]:
    """A spec URI such as `s3://b/p/jobs/J/spec.json` -> (store at `s3://b/p`, `jobs/J/spec.json`).

    The agent is handed the URI of its spec; the store root is everything before `jobs/`.
    """
    marker = "/jobs/"
    at = uri.rfind(marker)
    if at < 0:
        raise StoreError(f"{uri!r} is not inside a store's jobs/ folder")
    return open_store(uri[:at]), uri[at + 1:]


def job_prefix(job_id: str) -> str:
    return f"jobs/{job_id}"


def read_model(store: Store, key: str, model: type[M]) -> M | None:
    data = store.read_bytes(key)
    if data is None:
        return None
    return model.model_validate_json(data)


def write_model(store: Store, key: str, value: BaseModel) -> None:
    store.write_bytes(key, value.model_dump_json(indent=2).encode())


def write_json(store: Store, key: str, value: object) -> None:
    store.write_bytes(key, json.dumps(value, indent=2, default=str).encode())
