"""What every listener needs, built once per process by `build_app` and passed down."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from workers.queue.enqueue import enqueue

if TYPE_CHECKING:
    from schemas.config import TeamConfig
    from schemas.db.database import Database
    from schemas.settings import Settings


@dataclass
class Deps:
    """What every listener needs, built once per process and passed down."""

    settings: Settings
    config: TeamConfig
    db: Database
    celery: Any  # a Celery app; only `send_task` is used, so the bot never imports the tasks

    def enqueue(self, name: str, **kwargs: Any) -> None:
        # Named, not imported: the bot process stays free of the workers' task code.
        enqueue(name, app=self.celery, **kwargs)
