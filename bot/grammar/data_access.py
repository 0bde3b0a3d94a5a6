"""Where `data=` may read from (trainops.toml [data]): local paths under `local_roots`, S3 objects
under `s3_prefixes`. `demo` and Hugging Face Hub ids are always allowed. Pure.

The same rule runs twice: here when the quote is made (one clear line for the person) and in the
agent before it opens anything (training/agent/data_access.py mirrors it on the spec), so a job
record edited by hand, or a spec written by something else, cannot reach past the roots either.
"""

from __future__ import annotations

from schemas.config import TeamConfig
from schemas.data_access import data_refusal


def check_data(data: str, config: TeamConfig) -> str:
    """`data` unchanged when allowed; else ParseError naming what is allowed."""
    from bot.grammar.values import ParseError

    why = data_refusal(data, config.data.local_roots, config.data.s3_prefixes)
    if why:
        raise ParseError(why)
    return data
