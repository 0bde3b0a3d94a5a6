"""The job runner against both databases, a file store, moto and a real Celery worker."""

from tests.support.runner import aws_env, db, db_url, runner_env, runner_worker, worker  # noqa: F401
