"""Quotes: what a training request costs on each suitable instance, and which to pick.

`make_quote` is the one door: it reads prices (live or catalog) and hands values to the pure
estimator. Only the standard library and pydantic load here; boto3 waits for a live read.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from schemas.config import TeamConfig
from schemas.errors import UserError
from schemas.spec import Quote, TrainRequest
from workers.quoting.calibration import Calibration, Measured
from workers.quoting.estimator import candidates, estimate
from workers.quoting.prices import PriceBook, credentials_configured
from workers.quoting.rewards import check_reward_file

if TYPE_CHECKING:
    from schemas.settings import Settings

__all__ = ["Calibration", "Measured", "PriceBook", "make_quote"]


def make_quote(request: TrainRequest, config: TeamConfig, *, settings: Settings | None = None,
               live: bool | None = None, calibration: Calibration | None = None,
               price_book: PriceBook | None = None) -> Quote:
    """Live prices when AWS credentials exist (or live=True), the catalog otherwise. Never raises
    for an AWS problem: what could not be read comes from the catalog, with a note."""
    # A reward file is checked before anything is priced or launched (issue #12).
    problem = check_reward_file(request.reward)
    if problem:
        raise UserError(problem)
    if price_book is None:
        if live is None:
            live = credentials_configured(settings.provider if settings else "local")
        price_book = PriceBook(live=live)
    types = sorted({inst.type for inst, _ in candidates(request)})
    prices, notes = price_book.prices(types, request.region)
    cal = calibration or Calibration.from_config(config.calibration)
    quote = estimate(request, config, prices, cal, notes=notes)
    if settings is not None and settings.provider == "local":
        # Issue 13: the worker runs jobs on this machine, so this machine is what is quoted.
        from schemas.store import open_store
        from workers.quoting.local_option import for_this_machine, read_profile

        quote = for_this_machine(quote, config, read_profile(open_store(settings.store)),
                                 settings.local_price_per_hour,
                                 monitor_s=settings.monitor_interval_s)
    return quote
