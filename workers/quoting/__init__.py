"""Quotes: what a training request costs on each suitable instance, and which to pick.

`make_quote` is the one door: it reads prices (live or catalog) and hands values to the pure
estimator. Only the standard library and pydantic load here; boto3 waits for a live read.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from schemas.config import TeamConfig
from schemas.spec import Quote, TrainRequest
from workers.quoting.calibration import Calibration, Measured
from workers.quoting.estimator import candidates, estimate
from workers.quoting.prices import PriceBook, credentials_configured

if TYPE_CHECKING:
    from schemas.settings import Settings

__all__ = ["Calibration", "Measured", "PriceBook", "make_quote"]


def make_quote(request: TrainRequest, config: TeamConfig, *, settings: Settings | None = None,
               live: bool | None = None, calibration: Calibration | None = None,
               price_book: PriceBook | None = None) -> Quote:
    """Live prices when AWS credentials exist (or live=True), the catalog otherwise. Never raises
    for an AWS problem: what could not be read comes from the catalog, with a note."""
    if price_book is None:
        if live is None:
            live = credentials_configured(settings.provider if settings else "local")
        price_book = PriceBook(live=live)
    types = sorted({inst.type for inst, _ in candidates(request)})
    prices, notes = price_book.prices(types, request.region)
    cal = calibration or Calibration.from_config(config.calibration)
    return estimate(request, config, prices, cal, notes=notes)
