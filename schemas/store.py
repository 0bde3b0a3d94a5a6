"""The object store both sides share: `s3://bucket/prefix` in production, `file://path` locally.

The layout under a job's folder is a contract (docs/store-layout.md):

    jobs/<job_id>/spec.json         written by the worker
    jobs/<job_id>/control.json      written by the control plane (stop flag, deadline, cap)
    jobs/<job_id>/progress.json     written by the agent, at least every 30 s
    jobs/<job_id>/status.json       the agent's last word about an attempt
    jobs/<job_id>/checkpoints/step-N/...  with MANIFEST.json written last
    jobs/<job_id>/final/            the trained adapter or model
    jobs/<job_id>/logs/
    heartbeats/<job_id>/progress.json, status.json   the agent's copies, for the monitor

The heartbeats/ folder holds, for each job with an agent, a copy of its progress.json and
status.json written right after the original (write_agent_doc). The monitor lists that one folder
(ListObjectsV2, 1,000 keys a page: two pages for 1,000 live jobs, however many checkpoints they
keep) and reads only the copies whose version changed since its last tick (workers/monitor/
reads.py); the originals under jobs/ stay the contract every other reader uses.

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
# The S3 client's connection pool (botocore's default is 10): the monitor reads and writes up to
# this many documents at once, and a smaller pool would open and drop a connection per extra call.
S3_MAX_CONNECTIONS = 16


class StoreError(UserError):
    """The store could not be read or written (bad URI, unreachable bucket, missing key)."""


class Store(Protocol):
    uri: str

    def read_bytes(self, key: str) -> bytes | None: ...
    def write_bytes(self, key: str, data: bytes) -> None: ...
    def upload_file(self, key: str, path: Path) -> None: ...
    def download_file(self, key: str, path: Path) -> None: ...
    def list(self, prefix: str) -> list[str]: ...
    def list_versions(self, prefix: str) -> dict[str, str]: ...
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

    def list_versions(self, prefix: str) -> dict[str, str]:
        """{key: version} under `prefix`, in one walk. The version is inode, mtime_ns and size:
        every write replaces the file (a new inode), so a rewrite within the clock's granularity
        with the same size still shows as changed."""
        base = self._path(prefix) if prefix else self.root
        out: dict[str, str] = {}
        stack = [base] if base.is_dir() else []
        while stack:
            try:
                entries = list(os.scandir(stack.pop()))
            except FileNotFoundError:  # removed while we walked: nothing to read there
                continue
            for entry in entries:
                if entry.name.startswith("."):
                    continue
                try:
                    if entry.is_dir(follow_symlinks=False):
                        stack.append(Path(entry.path))
                        continue
                    st = entry.stat(follow_symlinks=False)
                except FileNotFoundError:
                    continue
                key = str(Path(entry.path).relative_to(self.root))
                out[key] = f"{st.st_ino}-{st.st_mtime_ns}-{st.st_size}"
        return out

    def delete(self, key: str) -> None:
        path = self._path(key)
        if path.is_dir():
            shutil.rmtree(path, ignore_errors=True)
        else:
            path.unlink(missing_ok=True)


class S3Store:
    """`client` reads and lists; `writer` (`client` unless given) writes and deletes: an agent
    with per-job credentials (schemas/credentials.py) writes with them alone."""

    def __init__(self, bucket: str, prefix: str = "", client=None, writer=None):
        self.bucket = bucket
        self.prefix = prefix.strip("/")
        self.uri = f"s3://{bucket}/{self.prefix}".rstrip("/")
        if client is None:
            import boto3  # only here: file:// users never pay for the import
            from botocore.config import Config

            # honours AWS_ENDPOINT_URL; as many pooled connections as the monitor has reads or
            # writes in flight (workers/monitor/reads.py, control.py)
            client = boto3.client("s3", config=Config(max_pool_connections=S3_MAX_CONNECTIONS))
        self.client = client
        self.writer = writer or client

    def writing_with(self, writer) -> S3Store:
        """This store, its writes and deletes signed by `writer`'s credentials."""
        return S3Store(self.bucket, self.prefix, client=self.client, writer=writer)

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
            self.writer.put_object(Bucket=self.bucket, Key=self._key(key), Body=data)
        except Exception as exc:
            raise StoreError(f"cannot write s3://{self.bucket}/{self._key(key)}: {exc}") from exc

    def upload_file(self, key: str, path: Path) -> None:
        try:
            self.writer.upload_file(str(path), self.bucket, self._key(key))
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

    def list_versions(self, prefix: str) -> dict[str, str]:
        """{key: ETag} under `prefix`: ListObjectsV2 pages of 1,000 (the ETag changes whenever
        the content does, so a reader can skip the GET of an object it already holds)."""
        full = self._key(prefix)
        out: dict[str, str] = {}
        paginator = self.client.get_paginator("list_objects_v2")
        try:
            for page in paginator.paginate(Bucket=self.bucket, Prefix=full,
                                           PaginationConfig={"PageSize": 1000}):
                for item in page.get("Contents", []):
                    key = item["Key"]
                    key = key[len(self.prefix) + 1:] if self.prefix else key
                    out[key] = item["ETag"]
        except Exception as exc:
            raise StoreError(f"cannot list s3://{self.bucket}/{full}: {exc}") from exc
        return out

    def delete(self, key: str) -> None:
        """The object `key` and everything under `key/` — not other keys that merely start with
        the same characters (deleting `step-2` must leave `step-20` alone)."""
        folder = key.rstrip("/")
        for k in [*self.list(folder + "/"), folder]:
            self.writer.delete_object(Bucket=self.bucket, Key=self._key(k))


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


HEARTBEATS = "heartbeats"


def heartbeat_key(job_id: str, name: str) -> str:
    return f"{HEARTBEATS}/{job_id}/{name}"


def write_agent_doc(store: Store, prefix: str, name: str, value: BaseModel) -> None:
    """The agent's progress.json or status.json: the document under its job's folder (the
    contract), then its copy under heartbeats/ that the monitor lists (module docstring)."""
    data = value.model_dump_json(indent=2).encode()
    store.write_bytes(f"{prefix}/{name}", data)
    store.write_bytes(heartbeat_key(prefix.rstrip("/").rsplit("/", 1)[-1], name), data)


def read_model(store: Store, key: str, model: type[M]) -> M | None:
    data = store.read_bytes(key)
    if data is None:
        return None
    return model.model_validate_json(data)


def write_model(store: Store, key: str, value: BaseModel) -> None:
    store.write_bytes(key, value.model_dump_json(indent=2).encode())


def write_json(store: Store, key: str, value: object) -> None:
    store.write_bytes(key, json.dumps(value, indent=2, default=str).encode())
