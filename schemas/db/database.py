"""Engine, sessions and migrations.

`get_database(settings)` is what the bot, the CLI and the workers use: one Database per URL per
process, with the migrations applied the first time. Tests use `Database(url).create_all()` or
`upgrade(url)` on a file SQLite or PostgreSQL (a Celery worker thread shares the process, so an
in-memory SQLite would be a different database per connection).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import sqlalchemy as sa
from sqlmodel import Session, SQLModel

from schemas.db import tables  # noqa: F401  (registers the tables on SQLModel.metadata)
from schemas.errors import UserError
from schemas.settings import Settings

log = logging.getLogger(__name__)
MIGRATIONS = Path(__file__).with_name("migrations")


class DatabaseError(UserError):
    """The database URL is wrong or the database cannot be reached."""


def _engine(url: str) -> sa.Engine:
    if url.startswith("sqlite"):
        if url.rstrip("/") in ("sqlite:", "sqlite:///:memory:", "sqlite://"):
            raise DatabaseError(f"{url}: use a file SQLite (sqlite:///path.db) or PostgreSQL")
        # Several threads (bot, worker pool) write; wait for the lock instead of failing at once.
        engine = sa.create_engine(url, connect_args={"timeout": 30, "check_same_thread": False})

        @sa.event.listens_for(engine, "connect")
        def _pragmas(conn, _record):
            conn.isolation_level = None  # we issue BEGIN ourselves, below
            cur = conn.cursor()
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA foreign_keys=ON")
            cur.execute("PRAGMA busy_timeout=30000")
            cur.close()

        @sa.event.listens_for(engine, "begin")
        def _begin(conn):
            # IMMEDIATE takes the write lock up front. A deferred transaction that reads and
            # then writes fails at once (SQLITE_BUSY_SNAPSHOT) when another writer committed
            # in between: exactly the two-clicks race the claims exist for.
            conn.exec_driver_sql("BEGIN IMMEDIATE")

        return engine
    return sa.create_engine(url, pool_pre_ping=True, pool_size=5, max_overflow=10)


class Database:
    def __init__(self, url: str):
        try:
            self.url = url
            self.engine = _engine(url)
        except sa.exc.ArgumentError as exc:
            raise DatabaseError(f"TRAINOPS_DATABASE_URL {url!r} is not a database URL ({exc})") from None

    @contextmanager
    def session(self) -> Iterator[Session]:
        """A session that commits when the block ends cleanly and rolls back otherwise."""
        with Session(self.engine, expire_on_commit=False) as session:
            try:
                yield session
                session.commit()
            except BaseException:
                session.rollback()
                raise

    def create_all(self) -> None:
        SQLModel.metadata.create_all(self.engine)

    def drop_all(self) -> None:
        SQLModel.metadata.drop_all(self.engine)
        with self.engine.begin() as conn:
            conn.execute(sa.text("DROP TABLE IF EXISTS alembic_version"))

    def dispose(self) -> None:
        self.engine.dispose()


def alembic_config(url: str):
    from alembic.config import Config

    # No alembic.ini: the script location is this package's folder, so `trainops db upgrade`
    # works from any directory and from an installed wheel.
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    cfg.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return cfg


# alembic keeps its migration context in a module global: two upgrades at once in one process
# (a worker thread and the main thread) clobber each other's, half-migrating a database.
_upgrade_lock = threading.Lock()


def upgrade(url: str, revision: str = "head") -> None:
    from alembic import command

    try:
        with _upgrade_lock:
            command.upgrade(alembic_config(url), revision)
    except sa.exc.OperationalError as exc:
        first = (str(exc.orig).strip().splitlines() or ["unknown error"])[0]
        raise DatabaseError(f"cannot reach the database at {_redact(url)}: {first}") from None


def _redact(url: str) -> str:
    try:
        return sa.make_url(url).render_as_string(hide_password=True)
    except sa.exc.ArgumentError:
        return "<unparseable URL>"


_cache: dict[str, Database] = {}
_lock = threading.Lock()


def get_database(settings: Settings) -> Database:
    url = settings.database_url
    with _lock:
        if url not in _cache:
            upgrade(url)
            _cache[url] = Database(url)
        return _cache[url]


def run_cli(args) -> int:
    """`trainops db upgrade`."""
    from schemas.settings import get_settings

    url = get_settings().database_url
    upgrade(url)
    print(f"database at {_redact(url)} is at the latest revision")
    return 0
