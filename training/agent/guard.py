"""The agent's own security checks (issue #14), kept out of main.py so the training loop there
can change without them: what must hold before training starts, and how long the last upload may
take once the money has run out.
"""

from __future__ import annotations

from schemas.data_access import data_refusal
from schemas.errors import UserError


def preflight(spec, watchers) -> None:
    """Before any data is opened or any step is trained: `data=` is inside the roots the control
    plane wrote into the spec (checked again here, not only at the quote), and — when the spec
    requires one — control.json holds a money deadline. Raises UserError (exit 2)."""
    if spec.data_local_roots is not None or spec.data_s3_prefixes is not None:
        why = data_refusal(spec.data, spec.data_local_roots or [], spec.data_s3_prefixes or [])
        if why:
            raise UserError(why)
    watchers.require_deadline()


def upload_budget_at_deadline(signals, budget_s: float) -> float:
    """At the money deadline, the final upload may take only the money time left (the agent
    stopped `margin_s` early for it); past that the machine goes down with what is uploaded."""
    left = signals.seconds_left()
    if left is None:
        return budget_s
    return max(0.0, min(budget_s, left))
