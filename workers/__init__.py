"""The job runner: Celery tasks around a pure core (quoting, budget, recovery) and IO adapters."""
