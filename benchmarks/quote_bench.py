"""Quote speed: quotes per second in-process with prices already in hand (p50/p90 ms per quote,
parse included), and `trainops quote --json` as a whole process (median of N runs).

    python benchmarks/quote_bench.py [--quotes 1000] [--runs 10]

Prints figures; asserts nothing. Aims: p50 under 5 ms in-process; the whole command under 1 s.
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

from bot.grammar.commands import parse_request
from schemas.config import load_config
from workers.quoting import PriceBook, make_quote

TEXTS = [
    "sft reduced budget=100",
    "sft model=8B peft=none samples=50k precision=fp16 budget=500",
    "sft model=0.5B samples=2000 gpu=a10g spot=yes",
    "sft smoke",
    "sft samples=100000 budget=1",  # over budget: the reduced alternative is quoted too
]


def in_process(n: int, live: bool = False) -> None:
    config = load_config(None)
    # Catalog: prices in hand. Live: read once from moto's server, then served from the cache,
    # which is what a warm worker sees between reads.
    book = PriceBook(live=live)
    for text in TEXTS:  # warm up
        make_quote(parse_request(text, config), config, price_book=book)
    times = []
    start = time.perf_counter()
    for i in range(n):
        t0 = time.perf_counter()
        make_quote(parse_request(TEXTS[i % len(TEXTS)], config), config, price_book=book)
        times.append((time.perf_counter() - t0) * 1000)
    total = time.perf_counter() - start
    q = statistics.quantiles(times, n=10)
    print(f"in-process ({'live, cached' if live else 'catalog'} prices): {n} quotes, {n / total:,.0f} quotes/s, "
          f"p50 {statistics.median(times):.2f} ms, p90 {q[8]:.2f} ms, max {max(times):.2f} ms")


def whole_process(runs: int) -> None:
    trainops = shutil.which("trainops")
    command = [trainops] if trainops else [sys.executable, "-m", "bot.cli.main"]
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "TRAINOPS_"))}
    with tempfile.TemporaryDirectory() as home:
        env.update(HOME=home, AWS_SHARED_CREDENTIALS_FILE=f"{home}/none",
                   AWS_CONFIG_FILE=f"{home}/none")
        times = []
        for _ in range(runs):
            t0 = time.perf_counter()
            subprocess.run([*command, "quote", "--json", TEXTS[0]], check=True, env=env,
                           cwd=home, stdout=subprocess.DEVNULL)
            times.append(time.perf_counter() - t0)
    print(f"whole process: `trainops quote --json` (catalog prices), {runs} runs, "
          f"median {statistics.median(times) * 1000:.0f} ms, "
          f"min {min(times) * 1000:.0f} ms, max {max(times) * 1000:.0f} ms")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quotes", type=int, default=1000)
    parser.add_argument("--runs", type=int, default=10)
    args = parser.parse_args()
    print(f"machine: {platform.machine()}, {os.cpu_count()} CPUs, Python "
          f"{platform.python_version()}, {platform.platform()}")
    in_process(args.quotes)
    with_moto(lambda: in_process(args.quotes, live=True))
    whole_process(args.runs)


def with_moto(run) -> None:
    import logging

    from moto.server import ThreadedMotoServer

    logging.getLogger("werkzeug").setLevel(logging.CRITICAL)  # moto's request log
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    saved = dict(os.environ)
    os.environ.update(AWS_ENDPOINT_URL=f"http://{host}:{port}", AWS_ACCESS_KEY_ID="bench",
                      AWS_SECRET_ACCESS_KEY="bench", AWS_DEFAULT_REGION="us-east-1")
    try:
        run()
    finally:
        os.environ.clear()
        os.environ.update(saved)
        server.stop()


if __name__ == "__main__":
    main()
