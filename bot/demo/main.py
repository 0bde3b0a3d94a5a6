"""`trainops demo`: the main job, end to end, on this machine, with nothing to set up.

A temporary folder holds everything (SQLite, the Celery message folder, the object store, the
agents' scratch space). A Celery worker with beat embedded runs as a child process over kombu's
filesystem transport; the local provider runs the training agent as a grandchild, on the tiny
model and the demo data. The demo plays the people: it types the `/train`, clicks Approve,
rehearses a spot interruption the way `trainops interrupt` does, and answers the spend warning.
Everything the bot says comes from the real Notifier in the worker and is drawn as a Slack
thread in the terminal; with SLACK_BOT_TOKEN and TRAINOPS_DEMO_CHANNEL set, it goes to that
channel instead.
"""

from __future__ import annotations

import contextlib
import shutil
import sys
import tempfile
import time
from argparse import Namespace
from pathlib import Path

from bot.demo.script import DEMO_PRICE_PER_HOUR, Script
from schemas.errors import UserError


def run(args: Namespace) -> int:
    """Exit 0 when the job succeeded and every step the demo shows happened; 1 otherwise, with one
    line saying which step did not."""
    from bot.demo.runtime import Worker, apply_env, demo_env, stop_local_machines

    started = time.monotonic()
    slack = _slack_wanted()
    folder = Path(tempfile.mkdtemp(prefix="trainops-demo-"))
    apply_env(demo_env(folder, DEMO_PRICE_PER_HOUR, slack=slack is not None))
    from schemas.settings import get_settings

    settings = get_settings()
    worker = Worker(folder)
    try:
        from bot.demo.broker import configure
        from schemas.db.database import get_database
        from workers.queue.app import app

        db = get_database(settings)  # migrations first: the worker finds the tables made
        configure(app, folder / "broker")
        # The worker starts once this machine is measured (Script.play): its start-up would
        # otherwise compete with the calibration run for the CPU and slow the measurement.
        play = Script
        if getattr(args, "pipeline", False):
            from bot.demo.pipeline import PipelineScript as play
        result = play(db, settings, worker, folder, slack_channel=slack).play(started)
    except UserError:
        raise
    except KeyboardInterrupt:
        print("trainops demo: interrupted", file=sys.stderr)
        return 130
    except Exception as exc:  # noqa: BLE001 - one line for the user; the log has the rest
        from bot.demo.script import Result

        result = Result(False, f"{type(exc).__name__}: {exc}")
    finally:
        worker.stop()
        with contextlib.suppress(Exception):
            stop_local_machines(settings)
    elapsed = time.monotonic() - started
    if result.ok:
        print(f"\ntrainops demo: done in {elapsed:.0f} s"
              + (f"; the chart is at {result.chart}" if result.chart else ""))
    else:
        print(f"trainops demo: {result.message} (after {elapsed:.0f} s; worker log kept in "
              f"{folder})", file=sys.stderr)
    if result.ok and not args.keep:
        shutil.rmtree(folder, ignore_errors=True)
    elif result.ok:
        print(f"trainops demo: its working folder is kept at {folder}")
    return 0 if result.ok else 1


def _slack_wanted() -> str | None:
    """The channel to post in when Slack is configured; None for the terminal."""
    from schemas.settings import get_settings

    settings = get_settings()
    if settings.slack_bot_token is None:
        return None
    channel = settings.demo_channel
    if not channel:
        raise UserError("SLACK_BOT_TOKEN is set but TRAINOPS_DEMO_CHANNEL is not; set it to the "
                        "id of a channel the app is in (e.g. C0123ABCD), or unset "
                        "SLACK_BOT_TOKEN to see the demo in this terminal")
    return channel
