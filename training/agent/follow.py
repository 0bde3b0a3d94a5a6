"""Following a JSON-lines file another process appends to (a recipe's or a command's progress)."""

from __future__ import annotations

import json
import logging
from pathlib import Path

log = logging.getLogger("trainops.agent")


class Lines:
    """Follows a JSON-lines file; a line still being written waits for its newline."""

    def __init__(self, path: Path, on_row):
        self.path, self.on_row, self.offset = path, on_row, 0

    def read(self) -> None:
        if not self.path.exists():
            return
        with open(self.path, "rb") as handle:
            handle.seek(self.offset)
            chunk = handle.read()
        complete = chunk[: chunk.rfind(b"\n") + 1]
        self.offset += len(complete)
        for line in complete.decode(errors="replace").splitlines():
            try:
                self.on_row(json.loads(line))
            except ValueError:
                log.warning("progress line ignored: %.200s", line)
