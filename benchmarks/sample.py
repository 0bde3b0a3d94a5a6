"""A real quote for the benchmarks to approve: the grammar and the estimator on catalog prices,
so a benchmark exercises what users get and imports nothing from the tests."""

from __future__ import annotations

from bot.grammar.commands import parse_request
from schemas.config import load_config
from schemas.spec import Quote
from workers.quoting import PriceBook, make_quote

TEXT = "sft smoke model=tiny budget=100 max_steps=5 spot=yes"


def sample_quote(text: str = TEXT) -> Quote:
    config = load_config(None)
    return make_quote(parse_request(text, config), config, price_book=PriceBook(live=False))
