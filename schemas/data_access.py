"""The data rule shared by the quote (bot/grammar) and the agent (training/agent): `data=` may
name `demo`, a Hugging Face Hub id, a local path under one of `local_roots`, or an S3 object under
one of `s3_prefixes`. Everything else is refused with one line that names what is allowed.
Pure: strings in, a reason (or None) out; paths are resolved so `..` and symlinks cannot escape.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from urllib.parse import urlparse

_HUB_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*/[A-Za-z0-9][A-Za-z0-9_.-]*$")
_LOCAL_HINT = re.compile(r"\.(jsonl?|csv|parquet|txt|arrow)$", re.IGNORECASE)


# Shipped with the agent (training/recipes/builtin/): nothing outside the package is read.
BUILTIN_DATA = ("demo", "demo-rl")


def _allowed_text(local_roots: list[str], s3_prefixes: list[str]) -> str:
    parts = [*BUILTIN_DATA, "a Hub id like org/name"]
    if local_roots:
        parts.append("a file under " + ", ".join(local_roots))
    if s3_prefixes:
        parts.append("an object under " + ", ".join(s3_prefixes))
    return "; allowed: " + ", ".join(parts) + (
        "" if local_roots or s3_prefixes else
        " (a team opens more in trainops.toml [data] local_roots / s3_prefixes)")


def _under(path: Path, root: str) -> bool:
    base = Path(os.path.expanduser(root)).resolve()
    return path == base or base in path.parents


def data_refusal(data: str, local_roots: list[str], s3_prefixes: list[str]) -> str | None:
    """Why `data` may not be read, or None when it may."""
    text = data.strip()
    if text.lower() in BUILTIN_DATA:
        return None
    allowed = _allowed_text(local_roots, s3_prefixes)
    if text.startswith("s3://"):
        parsed = urlparse(text)
        key = parsed.path.lstrip("/")
        if ".." in key.split("/"):
            return f"data={text} has '..' in its key{allowed}"
        for prefix in s3_prefixes:
            p = urlparse(prefix.rstrip("/") + "/")
            if parsed.netloc == p.netloc and (key + "/").startswith(p.path.lstrip("/")):
                return None
        return f"data={text} is outside the S3 locations this team allows{allowed}"
    is_local = (text.startswith(("/", "./", "../", "~", "file://"))
                or bool(_LOCAL_HINT.search(text)) or not _HUB_ID.match(text))
    if not is_local:
        return None  # a Hub dataset id (org/name): read from the Hub, not this machine
    path = Path(os.path.expanduser(text.removeprefix("file://"))).resolve()
    if any(_under(path, root) for root in local_roots):
        return None
    return f"data={text} is outside the folders this team allows{allowed}"
