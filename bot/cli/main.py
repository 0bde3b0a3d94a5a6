"""`trainops`: the one command-line entry point.

This module only parses arguments and hands each subcommand to the module that owns it, imported
when needed: `trainops quote` must not pay for Celery, SQLAlchemy or boto3 at start-up, and nothing
here ever imports torch. Errors that are the user's to fix (UserError) print one line on stderr and
exit 2; anything else is a bug and keeps its traceback.
"""

from __future__ import annotations

import argparse
import importlib
import sys

from schemas.errors import UserError

# subcommand -> "module:function"; each function takes the parsed argparse.Namespace and returns
# an exit code.
HANDLERS = {
    "quote": "bot.cli.quote:run",
    "train": "bot.cli.jobs:train",
    "status": "bot.cli.jobs:status",
    "cancel": "bot.cli.jobs:cancel",
    "interrupt": "bot.cli.jobs:interrupt",
    "serve": "bot.slack.serve:run",
    "worker": "workers.queue.app:run_worker",
    "beat": "workers.queue.app:run_beat",
    "demo": "bot.demo.main:run",
    "db": "schemas.db.database:run_cli",
    "accuracy": "bot.cli.accuracy:accuracy",
    "calibrate": "bot.cli.accuracy:calibrate",
}


class _Parser(argparse.ArgumentParser):
    # argparse's own errors already exit 2; keep them to one line plus usage.
    def error(self, message: str):  # noqa: D401
        self.print_usage(sys.stderr)
        self.exit(2, f"trainops: {message}\n")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="trainops", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    p = sub.add_parser("quote", help="quote a /train request on every suitable instance")
    p.add_argument("text", help='what follows /train, e.g. "sft reduced budget=100"')
    p.add_argument("--json", action="store_true", help="print the quote as JSON")

    p = sub.add_parser("train", help="quote, approve and run a job, following it to the end")
    p.add_argument("text")
    p.add_argument("--yes", action="store_true", help="approve as the operator (overruns too)")
    p.add_argument("--provider", choices=["local", "aws"], default=None)
    p.add_argument("--detach", action="store_true", help="return once the job is approved")
    p.add_argument("--json", action="store_true")

    p = sub.add_parser("status", help="recent jobs, or one job with its attempts and events")
    p.add_argument("job", nargs="?")
    p.add_argument("--json", action="store_true")

    p = sub.add_parser("cancel", help="stop a job in any live state and terminate its machine")
    p.add_argument("job")

    p = sub.add_parser("interrupt", help="rehearse a spot interruption (local provider)")
    p.add_argument("job")

    p = sub.add_parser("serve", help="the Slack bot (Socket Mode with SLACK_APP_TOKEN, else HTTP)")
    p.add_argument("--http", action="store_true", help="serve HTTP even if SLACK_APP_TOKEN is set")
    p.add_argument("--port", type=int, default=3000)
    p.add_argument("--host", default="0.0.0.0")
    _log_level(p)

    p = sub.add_parser("worker", help="a Celery worker")
    p.add_argument("--concurrency", type=int, default=None)
    _log_level(p)

    p = sub.add_parser("beat", help="Celery beat: the monitor and the reaper on their cadence")
    _log_level(p)

    p = sub.add_parser("demo", help="the whole flow on embedded defaults: no Slack, AWS or Redis")
    p.add_argument("--keep", action="store_true", help="keep the demo's working folder")
    p.add_argument("--pipeline", action="store_true",
                   help="a pipeline job instead: prep, sft, eval, rl, eval, and the report comparing RL")

    p = sub.add_parser("accuracy", help="how close finished runs came to their quotes")
    p.add_argument("--json", action="store_true")

    p = sub.add_parser("calibrate", help="measure this machine for the local provider's quotes")
    p.add_argument("--steps", type=int, default=40, help="steps of the tiny model to time")

    p = sub.add_parser("db", help="database migrations")
    p.add_argument("action", choices=["upgrade"])
    return parser


LOG_LEVELS = ("debug", "info", "warning", "error", "critical")


def _log_level(p: argparse.ArgumentParser) -> None:
    # --loglevel: Celery's spelling, kept for existing scripts.
    p.add_argument("--log-level", "--loglevel", dest="log_level", type=str.lower,
                   choices=LOG_LEVELS, default=None,
                   help="our lines at this level, other libraries' at warning "
                        "(default: TRAINOPS_LOG_LEVEL, else info)")


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    module_name, func_name = HANDLERS[args.command].split(":")
    try:
        handler = getattr(importlib.import_module(module_name), func_name)
        return int(handler(args) or 0)
    except UserError as exc:
        print(f"trainops: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("trainops: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
