"""`training.report(step=..., loss=...)`: progress from a user's own training script.

With `command="python train.py"` the agent runs the script with TRAINOPS_PROGRESS_FILE set; each
call appends one JSON line there (the agent turns the newest into progress.json). Anything else
the script knows can go along (`tokens=`, `total_steps=`, `lr=`). Writing the lines by hand works
the same. No torch and no trainops dependencies here, so any script can import it. Outside the
agent (no TRAINOPS_PROGRESS_FILE) it does nothing, so the script runs the same on a laptop.
"""

from __future__ import annotations

import json
import os
import time


def report(step: int, loss: float | None = None, **extra) -> None:
    path = os.environ.get("TRAINOPS_PROGRESS_FILE")
    if not path:
        return
    line = json.dumps({"step": int(step), "loss": None if loss is None else float(loss),
                       "time": time.time(), **extra}, default=str)
    with open(path, "a") as handle:  # one write of one line: the reader never sees half of it
        handle.write(line + "\n")
