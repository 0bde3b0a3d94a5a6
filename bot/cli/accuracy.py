"""`trainops accuracy` and `trainops calibrate`: how close finished runs came to their quotes,
and measuring this machine for the local provider's quotes (issue 13)."""

from __future__ import annotations

import json

from bot.cli.jobs import _db, get_settings


def accuracy(args) -> int:
    from workers.rules.accuracy import summary
    from workers.state.accuracy import errors

    rows = errors(_db(get_settings()))
    found = summary([(job_id, pct) for job_id, pct, *_ in rows])
    if getattr(args, "json", False):
        print(json.dumps({
            "runs": [{"job_id": j, "error_pct": round(p, 2), "spent_usd": str(s),
                      "expected_usd": str(e), "approved": o} for j, p, s, e, o in rows],
            "median_abs_error_pct": found.median_abs_pct if found else None,
            "worst": {"job_id": found.worst_job, "error_pct": found.worst_pct} if found else None,
        }, indent=2))
        return 0
    if found is None:
        print("no finished runs yet: accuracy shows once a job has succeeded and been reported")
        return 0
    for job_id, pct, spent, expected, option in rows[:20]:
        print(f"{job_id}  spent ${spent:.2f}  quoted ${expected:.2f} ({option})  "
              f"{'+' if pct >= 0 else ''}{pct:.0f}%")
    print(found.line())
    return 0


def calibrate(args) -> int:
    from schemas.config import cached_config
    from workers.providers.local_calibration import calibrate as run

    settings = get_settings()
    profile = run(settings, cached_config(settings.config_path), steps=args.steps,
                  say=lambda line: print(f"trainops calibrate: {line}", flush=True))
    print(f"trainops calibrate: {len(profile.measurements)} measurement(s) of this machine kept "
          "in the store; local quotes use them")
    return 0
