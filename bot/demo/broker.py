"""The demo's Celery app: the real one (workers.queue.app), over kombu's filesystem transport.

`trainops demo` needs no Redis, so its broker is a folder: a message is a file that the sender
writes into the folder and the worker takes out of it. The worker and its embedded beat run as
`python -m celery -A bot.demo.broker worker -B` in a child process; the demo process itself
sends the approval's provision task through `configure(app, folder)` on the same app.
"""

from __future__ import annotations

import os
import time
import uuid
from pathlib import Path

from kombu.transport import TRANSPORT_ALIASES, filesystem
from kombu.utils.json import dumps

from schemas.settings import environment_value
from workers.logs import use_for_celery
from workers.queue.app import app

# The demo's worker (`celery -A bot.demo.broker worker`) logs the way `trainops worker` does.
use_for_celery()

FOLDER_ENV = "TRAINOPS_DEMO_BROKER_DIR"
POLL_S = 0.2  # the filesystem transport polls; the default (1 s) would slow every hop


class _AtomicChannel(filesystem.Channel):
    """kombu's filesystem channel writes a message in place, and its reader does not take the
    lock, so the worker may read a file still empty and die on the JSON. Here a message is
    written under a name the reader skips, then renamed into place (atomic on one file system)."""

    def _put(self, queue, payload, **kwargs):
        name = f"{int(round(time.monotonic() * 1000))}_{uuid.uuid4()}.{queue}.msg"
        part = os.path.join(self.data_folder_out, f".{name}.part")
        with open(part, "wb") as handle:
            handle.write(dumps(payload).encode())
        os.replace(part, os.path.join(self.data_folder_out, name))


class AtomicFilesystemTransport(filesystem.Transport):
    Channel = _AtomicChannel


TRANSPORT = "trainops-demo-fs"
TRANSPORT_ALIASES[TRANSPORT] = f"{__name__}:AtomicFilesystemTransport"


def configure(celery, folder: str | Path) -> None:
    """Point `celery` (already configured from Settings) at the message folder under `folder`."""
    messages = Path(folder) / "messages"
    processed = Path(folder) / "processed"
    messages.mkdir(parents=True, exist_ok=True)
    processed.mkdir(parents=True, exist_ok=True)
    celery.conf.update(
        broker_url=f"{TRANSPORT}://",
        broker_transport_options={
            # One folder both ways: what the demo writes, the worker reads.
            "data_folder_in": str(messages), "data_folder_out": str(messages),
            "processed_folder": str(processed), "store_processed": False,
            "polling_interval": POLL_S,
        },
        # The notifier prints the conversation on stdout; Celery must not turn it into log lines.
        worker_redirect_stdouts=False,
        worker_hijack_root_logger=False,
        beat_schedule_filename=str(Path(folder) / "beat-schedule"),
        # beat sleeps at most this long between looks at its schedule (default 5 min when a
        # custom scheduler is used): the demo's monitor ticks every few seconds.
        beat_max_loop_interval=1,
    )


if folder := environment_value(FOLDER_ENV):  # the worker child: configured before it consumes
    configure(app, folder)
