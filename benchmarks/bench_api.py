"""Benchmark: latency of ``custseg serve`` for single-customer requests at a fixed request rate.

Trains a model on the real UCI data (or uses ``--model DIR``), starts ``custseg serve`` on
127.0.0.1 in a child process, and sends ``POST /v1/assign`` requests open-loop at ``--rate``
requests per second for ``--seconds``: each request is sent at its scheduled time whether or not
the earlier ones were answered, and its latency counts from that scheduled time (so a slow server
cannot hide its queue). Every request is one new customer: the first one to three orders of a real
customer, under a new id. The client runs on the same machine.

    python benchmarks/bench_api.py [--rates 20 100] [--seconds 30] [--model DIR]

Target (issue 7): p99 under 50 ms at 100 requests/s on the 2-core machine, no errors.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import duckdb
import httpx2 as httpx
import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from measure import cpu_seconds  # noqa: E402

DATA = HERE.parent.parent / "shared" / "data" / "online_retail.parquet"
RESULTS = HERE / "results"


def request_bodies(model_dir: Path, count: int, seed: int) -> list[bytes]:
    """Single-customer bodies: a real customer's first one to three orders (kept lines), renamed."""
    with duckdb.connect(str(model_dir / "custseg.duckdb"), read_only=True) as con:
        lines = con.sql(
            "select customer_id, invoice_id, strftime(invoiced_at, '%Y-%m-%dT%H:%M:%S') as invoiced_at, "
            "product_id, description, quantity, unit_price, country, "
            "dense_rank() over (partition by customer_id order by invoiced_at, invoice_id) as order_number "
            "from lines order by customer_id, row_id"
        ).df()
    rng = np.random.default_rng(seed)
    customers = lines.customer_id.unique()
    by_customer = dict(tuple(lines.groupby("customer_id")))
    bodies = []
    for number in range(count):
        rows = by_customer[customers[rng.integers(len(customers))]]
        rows = rows[rows.order_number <= rng.integers(1, 4)].drop(columns="order_number")
        records = rows.assign(customer_id=f"new-{number}").to_dict(orient="records")
        bodies.append(json.dumps({"transactions": records}).encode())
    return bodies


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


async def load(url: str, bodies: list[bytes], rate: float, seconds: float) -> dict:
    """Send ``rate`` requests per second for ``seconds``, open-loop; return latencies and errors."""
    total = int(rate * seconds)
    latencies: list[float] = []
    errors: list[str] = []
    headers = {"content-type": "application/json"}
    limits = httpx.Limits(max_connections=1000, max_keepalive_connections=200)
    async with httpx.AsyncClient(timeout=30.0, limits=limits) as client:

        async def one(index: int, scheduled: float) -> None:
            try:
                response = await client.post(url, content=bodies[index % len(bodies)], headers=headers)
                if response.status_code != 200:
                    errors.append(f"HTTP {response.status_code}")
                    return
            except httpx.HTTPError as error:
                errors.append(type(error).__name__)
                return
            latencies.append(time.perf_counter() - scheduled)

        start = time.perf_counter() + 0.1
        tasks = []
        for index in range(total):
            scheduled = start + index / rate
            delay = scheduled - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            tasks.append(asyncio.create_task(one(index, scheduled)))
        await asyncio.gather(*tasks)
        elapsed = time.perf_counter() - start
    milliseconds = np.array(latencies) * 1000
    return {
        "requests": total,
        "answered": len(latencies),
        "errors": len(errors),
        "error_kinds": sorted(set(errors)),
        "achieved_rate": round(total / elapsed, 1),
        "p50_ms": round(float(np.percentile(milliseconds, 50)), 1),
        "p90_ms": round(float(np.percentile(milliseconds, 90)), 1),
        "p99_ms": round(float(np.percentile(milliseconds, 99)), 1),
        "max_ms": round(float(milliseconds.max()), 1),
    }


@contextlib.contextmanager
def serving(model_dir: Path) -> Iterator[tuple[str, subprocess.Popen]]:
    """Start ``custseg serve`` on a free local port; yield its base URL and process, stop it after."""
    port = free_port()
    server = subprocess.Popen(
        [sys.executable, "-c", "from custseg.cli import app; app()", "serve", "--model", str(model_dir)]
        + ["--host", "127.0.0.1", "--port", str(port)],
        stderr=subprocess.PIPE,
        text=True,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.time() + 120
        while True:
            try:
                if httpx.get(f"{base}/healthz", timeout=1.0).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if server.poll() is not None or time.time() > deadline:
                raise RuntimeError(f"custseg serve did not start:\n{server.stderr.read()[-3000:]}")
            time.sleep(0.2)
        yield base, server
    finally:
        server.terminate()
        server.wait(timeout=30)


def trained_model(folder: Path, given: Path | None) -> Path:
    """The model folder to serve: ``given``, or a run on the UCI data into ``folder``."""
    if given is not None:
        return given
    model_dir = folder / "model"
    subprocess.run(
        [sys.executable, "-c", "from custseg.cli import app; app()", "run", str(DATA), "--out", str(model_dir)],
        check=True,
        stdout=subprocess.DEVNULL,
    )
    return model_dir


def serve_and_measure(model_dir: Path, rates: list[float], seconds: float, bodies: list[bytes]) -> list[dict]:
    with serving(model_dir) as (base, server):
        with httpx.Client() as warm:
            single = []
            for body in bodies[:100]:
                started = time.perf_counter()
                warm.post(f"{base}/v1/assign", content=body, headers={"content-type": "application/json"})
                single.append((time.perf_counter() - started) * 1000)
        one_at_a_time = round(float(np.median(single)), 1)
        measured = []
        for rate in rates:
            # Cores each side kept busy: a server near 1.0 is bound by its one Python thread.
            server_cpu, client_cpu, started = cpu_seconds(server.pid), time.process_time(), time.perf_counter()
            figures = asyncio.run(load(f"{base}/v1/assign", bodies, rate, seconds))
            elapsed = time.perf_counter() - started
            cores = {
                "server_cores": round((cpu_seconds(server.pid) - server_cpu) / elapsed, 2),
                "client_cores": round((time.process_time() - client_cpu) / elapsed, 2),
            }
            measured.append({"rate_per_s": rate, **figures, **cores, "one_at_a_time_median_ms": one_at_a_time})
            time.sleep(2)
        return measured


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rates", type=float, nargs="+", default=[20.0, 100.0], help="requests per second")
    parser.add_argument("--seconds", type=float, default=30.0)
    parser.add_argument("--model", type=Path, help="output folder of custseg run (default: train on UCI)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        model_dir = trained_model(Path(folder), args.model)
        bodies = request_bodies(model_dir, 2000, args.seed)
        measured = serve_and_measure(model_dir, args.rates, args.seconds, bodies)
    at_target = [m for m in measured if m["rate_per_s"] >= 100]
    report = {
        "benchmark": "custseg serve, POST /v1/assign with one new customer (1-3 orders), open-loop",
        "command": "python benchmarks/bench_api.py --rates "
        + " ".join(f"{r:g}" for r in args.rates)
        + f" --seconds {args.seconds:g}",
        "model": "trained on online_retail.parquet" if args.model is None else str(args.model),
        "seconds_per_rate": args.seconds,
        "results": measured,
        "target": "p99 under 50 ms at 100 requests/s, no errors",
        "target_met": bool(at_target) and all(m["p99_ms"] < 50 and m["errors"] == 0 for m in at_target),
    }
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "api.json").write_text(json.dumps(report, indent=2) + "\n")
    table = [
        "| rate (req/s) | achieved | requests | errors | p50 ms | p90 ms | p99 ms | max ms | server cores "
        "| client cores | one at a time, ms |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
        *(
            f"| {m['rate_per_s']:g} | {m['achieved_rate']:g} | {m['requests']} | {m['errors']} | {m['p50_ms']} | "
            f"{m['p90_ms']} | {m['p99_ms']} | {m['max_ms']} | {m['server_cores']} | {m['client_cores']} | "
            f"{m['one_at_a_time_median_ms']} |"
            for m in measured
        ),
    ]
    (RESULTS / "api.md").write_text(
        f"# custseg serve latency\n\n`{report['command']}`\n\n" + "\n".join(table) + f"\n\nTarget: {report['target']}"
        f" - {'met' if report['target_met'] else 'not met'}.\n"
    )
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
