"""Benchmark: ``custseg serve`` under a long, steady, mixed load that includes malformed bodies.

Trains a model on the real UCI data (or uses ``--model DIR``), starts ``custseg serve`` on
127.0.0.1 in a child process and sends ``POST /v1/assign`` requests open-loop at ``--rate`` per
second for ``--seconds`` (default ten minutes), each at its scheduled time whether or not the earlier
ones were answered. The mix, drawn with ``--seed``: 85% one new customer (a real customer's first
one to three orders under a new id), 10% one hundred new customers in one body, 5% malformed bodies
of twelve kinds (broken JSON, missing or unknown fields, wrong types, NaN, a bad date, an empty list,
a body over the size limit, ...). Every answer's status is recorded, and the server's resident memory
(VmRSS) is sampled every second.

    python benchmarks/bench_api_load.py [--rate 8] [--seconds 600] [--model DIR]

Pass (issue 17): no 5xx and no dropped connection, every malformed body a 4xx, every valid body a
200, and the server's resident memory at the end within 10% of its size after the first minute.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import tempfile
import time
from pathlib import Path

import httpx2 as httpx
import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from bench_api import request_bodies, serving, trained_model  # noqa: E402
from measure import cpu_seconds  # noqa: E402

RESULTS = HERE / "results"
BATCH_CUSTOMERS = 100
SHARES = {"single": 0.85, "batch": 0.10, "malformed": 0.05}
WARM_UP_SECONDS = 60.0
MEMORY_TOLERANCE = 0.10
_DROP = object()
"""A field value meaning: leave the field out."""


def batch_bodies(singles: list[bytes], customers: int) -> list[bytes]:
    """Bodies of ``customers`` new customers each, from consecutive single-customer bodies."""
    bodies = []
    for start in range(0, len(singles) - customers + 1, customers):
        transactions = [row for body in singles[start : start + customers] for row in json.loads(body)["transactions"]]
        bodies.append(json.dumps({"transactions": transactions}).encode())
    return bodies


def malformed_bodies(single: bytes, max_body_bytes: int) -> dict[str, bytes]:
    """One body of each malformed kind, made from a valid single-customer body."""
    valid = json.loads(single)
    first = valid["transactions"][0]

    def with_first(**changes: object) -> bytes:
        row = {key: value for key, value in {**first, **changes}.items() if value is not _DROP}
        return json.dumps({"transactions": [row, *valid["transactions"][1:]]}).encode()

    oversized = {"transactions": valid["transactions"] * (max_body_bytes // len(single) + 2)}
    return {
        "truncated_json": single[: len(single) // 2],
        "not_json": b"customer 17850 bought six mugs",
        "top_level_list": json.dumps(valid["transactions"]).encode(),
        "transactions_not_a_list": b'{"transactions": "all of them"}',
        "no_transactions": b'{"transactions": []}',
        "missing_invoiced_at": with_first(invoiced_at=_DROP),
        "unknown_field": with_first(colour="red"),
        "quantity_text": with_first(quantity="six"),
        "quantity_nan": with_first(quantity=float("nan")),
        "price_infinity": with_first(unit_price=float("inf")),
        "bad_invoiced_at": with_first(invoiced_at="yesterday"),
        "bad_as_of": json.dumps({**valid, "as_of": "2011-13-01"}).encode(),
        "oversized": json.dumps(oversized).encode(),
    }


def resident_mb(pid: int) -> float:
    """Resident memory (VmRSS) of process ``pid`` now, in MB."""
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    raise RuntimeError(f"no VmRSS for process {pid}")


async def load(url: str, plan: list[tuple[str, str, bytes]], rate: float, pid: int) -> tuple[list[dict], list]:
    """Send ``plan`` (class, kind, body) at ``rate`` per second; return each answer and memory samples."""
    answers: list[dict] = []
    memory: list[tuple[float, float]] = []
    headers = {"content-type": "application/json"}
    limits = httpx.Limits(max_connections=1000, max_keepalive_connections=200)
    async with httpx.AsyncClient(timeout=60.0, limits=limits) as client:

        async def one(request_class: str, kind: str, body: bytes, scheduled: float) -> None:
            try:
                response = await client.post(url, content=body, headers=headers)
                status = response.status_code
            except httpx.HTTPError as error:
                status = type(error).__name__
            answers.append(
                {
                    "class": request_class,
                    "kind": kind,
                    "status": status,
                    "sent_s": scheduled - start,
                    "latency_ms": (time.perf_counter() - scheduled) * 1000,
                }
            )

        async def sample_memory() -> None:
            while True:
                memory.append((time.perf_counter() - start, resident_mb(pid)))
                await asyncio.sleep(1.0)

        start = time.perf_counter() + 0.1
        sampler = asyncio.create_task(sample_memory())
        tasks = []
        for index, (request_class, kind, body) in enumerate(plan):
            scheduled = start + index / rate
            delay = scheduled - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            tasks.append(asyncio.create_task(one(request_class, kind, body, scheduled)))
        await asyncio.gather(*tasks)
        memory.append((time.perf_counter() - start, resident_mb(pid)))
        sampler.cancel()
    return answers, memory


def latency(answers: list[dict]) -> dict:
    milliseconds = np.array([a["latency_ms"] for a in answers])
    if not len(milliseconds):
        return {"requests": 0}
    return {
        "requests": len(milliseconds),
        "p50_ms": round(float(np.percentile(milliseconds, 50)), 1),
        "p99_ms": round(float(np.percentile(milliseconds, 99)), 1),
        "max_ms": round(float(milliseconds.max()), 1),
    }


def summarise(answers: list[dict], memory: list[tuple[float, float]], seconds: float) -> dict:
    """The pass checks, status counts per class and kind, latency per class and per minute."""
    statuses: dict[str, dict[str, int]] = {}
    for answer in answers:
        key = answer["class"] if answer["class"] != "malformed" else f"malformed: {answer['kind']}"
        counts = statuses.setdefault(key, {})
        counts[str(answer["status"])] = counts.get(str(answer["status"]), 0) + 1
    server_errors = [a for a in answers if not isinstance(a["status"], int) or a["status"] >= 500]
    malformed = [a for a in answers if a["class"] == "malformed"]
    valid = [a for a in answers if a["class"] != "malformed"]
    after_warm_up = next(mb for t, mb in memory if t >= WARM_UP_SECONDS)
    at_end = memory[-1][1]
    minutes = []
    for minute in range(int(np.ceil(seconds / 60))):
        sent = [a for a in valid if minute * 60 <= a["sent_s"] < (minute + 1) * 60]
        rss = [mb for t, mb in memory if minute * 60 <= t < (minute + 1) * 60]
        minutes.append(
            {
                "minute": minute + 1,
                "single": latency([a for a in sent if a["class"] == "single"]),
                "batch": latency([a for a in sent if a["class"] == "batch"]),
                "rss_mb_last": round(rss[-1], 1) if rss else None,
            }
        )
    checks = {
        "no_5xx_or_dropped": not server_errors,
        "every_malformed_4xx": all(isinstance(a["status"], int) and 400 <= a["status"] < 500 for a in malformed),
        "every_valid_200": all(a["status"] == 200 for a in valid),
        "memory_within_10_percent": abs(at_end - after_warm_up) <= MEMORY_TOLERANCE * after_warm_up,
    }
    return {
        "checks": checks,
        "passed": all(checks.values()),
        "rss_mb_after_first_minute": round(after_warm_up, 1),
        "rss_mb_at_end": round(at_end, 1),
        "rss_mb_max": round(max(mb for _, mb in memory), 1),
        "rss_change": round(at_end / after_warm_up - 1, 4),
        "statuses": dict(sorted(statuses.items())),
        "latency": {c: latency([a for a in valid if a["class"] == c]) for c in ("single", "batch")},
        "per_minute": minutes,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rate", type=float, default=8.0, help="requests per second (all classes)")
    parser.add_argument("--seconds", type=float, default=600.0)
    parser.add_argument("--model", type=Path, help="output folder of custseg run (default: train on UCI)")
    parser.add_argument("--max-body-bytes", type=int, default=1_000_000, help="the server's limit (its default)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    rng = np.random.default_rng(args.seed)
    with tempfile.TemporaryDirectory() as folder:
        model_dir = trained_model(Path(folder), args.model)
        singles = request_bodies(model_dir, 4000, args.seed)
        bodies = {
            "single": {"single": singles[:2000]},
            "batch": {"batch": batch_bodies(singles[2000:], BATCH_CUSTOMERS)},
            "malformed": {kind: [body] for kind, body in malformed_bodies(singles[0], args.max_body_bytes).items()},
        }
        classes = rng.choice(list(SHARES), size=int(args.rate * args.seconds), p=list(SHARES.values()))
        plan = []
        for request_class in classes:
            kinds = bodies[request_class]
            kind = list(kinds)[rng.integers(len(kinds))]
            plan.append((request_class, kind, kinds[kind][rng.integers(len(kinds[kind]))]))
        with serving(model_dir) as (base, server):
            server_cpu, started = cpu_seconds(server.pid), time.perf_counter()
            answers, memory = asyncio.run(load(f"{base}/v1/assign", plan, args.rate, server.pid))
            elapsed = time.perf_counter() - started
            server_cores = round((cpu_seconds(server.pid) - server_cpu) / elapsed, 2)
    report = {
        "benchmark": "custseg serve, POST /v1/assign, a steady open-loop mix of single, 100-customer and "
        "malformed bodies",
        "command": f"python benchmarks/bench_api_load.py --rate {args.rate:g} --seconds {args.seconds:g}",
        "model": "trained on online_retail.parquet" if args.model is None else str(args.model),
        "rate_per_s": args.rate,
        "seconds": args.seconds,
        "shares": SHARES,
        "achieved_rate": round(len(plan) / elapsed, 2),
        "server_cores": server_cores,
        **summarise(answers, memory, args.seconds),
    }
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "api_load.json").write_text(json.dumps(report, indent=2) + "\n")
    (RESULTS / "api_load.md").write_text(markdown(report))
    print(markdown(report))


def markdown(report: dict) -> str:
    checks = "\n".join(f"- {name}: {'yes' if ok else 'NO'}" for name, ok in report["checks"].items())
    statuses = "\n".join(
        f"| {key} | {', '.join(f'{status}: {count}' for status, count in counts.items())} |"
        for key, counts in report["statuses"].items()
    )
    minutes = "\n".join(
        f"| {m['minute']} | {m['single'].get('requests', 0)} | {m['single'].get('p50_ms', '')} | "
        f"{m['single'].get('p99_ms', '')} | {m['batch'].get('requests', 0)} | {m['batch'].get('p50_ms', '')} | "
        f"{m['batch'].get('p99_ms', '')} | {m['rss_mb_last']} |"
        for m in report["per_minute"]
    )
    return (
        f"# custseg serve under a long mixed load\n\n`{report['command']}`\n\n"
        f"{report['rate_per_s']:g} requests/s for {report['seconds']:g} s (achieved {report['achieved_rate']:g}/s), "
        f"{', '.join(f'{share:.0%} {name}' for name, share in report['shares'].items())}; "
        f"server busy {report['server_cores']} cores. Resident memory {report['rss_mb_after_first_minute']} MB "
        f"after the first minute, {report['rss_mb_at_end']} MB at the end ({report['rss_change']:+.1%}), "
        f"{report['rss_mb_max']} MB at most.\n\n{checks}\n\nPassed: {'yes' if report['passed'] else 'no'}.\n\n"
        "| requests | answers |\n|---|---|\n"
        f"{statuses}\n\n"
        "| minute | single | p50 ms | p99 ms | 100 customers | p50 ms | p99 ms | RSS MB |\n"
        "|---|---|---|---|---|---|---|---|\n"
        f"{minutes}\n"
    )


if __name__ == "__main__":
    main()
