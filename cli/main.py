"""``invoicing``: dev, server, worker, migrate, seed, process-pending, create-token and the benches."""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import sys
from collections.abc import Sequence

from invoicing.kernel.errors import InvoicingError
from invoicing.kernel.settings import Settings

logger = logging.getLogger("invoicing")


def _configure_logging(settings: Settings) -> None:
    logging.basicConfig(
        level=settings.log_level,
        format="%(asctime)s %(levelname)-7s %(name)s: %(message)s",
        stream=sys.stderr,
    )


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="invoicing", description="Batch invoicing service.")
    commands = parser.add_subparsers(dest="command", required=True)
    dev = commands.add_parser("dev", help="run everything locally (embedded PostgreSQL/Redis if no URLs)")
    dev.add_argument("--host", default="127.0.0.1")
    dev.add_argument("--port", type=int, default=8000)
    dev.add_argument("--workers", type=int, default=1, help="worker processes to run (default 1)")
    server = commands.add_parser("server", help="run the HTTP/WebSocket server")
    server.add_argument("--host", default="127.0.0.1")
    server.add_argument("--port", type=int, default=8000)
    server.add_argument("--processes", type=int, default=1, help="server processes sharing the port")
    worker = commands.add_parser("worker", help="run a worker (processes jobs, runs the minute sweep)")
    worker.add_argument("--burst", action="store_true", help="exit when the queue is empty")
    commands.add_parser("migrate", help="apply database migrations")
    seed = commands.add_parser("seed", help="create demo organizations, users and orders; prints JSON")
    seed.add_argument("--orgs", type=int, default=2)
    seed.add_argument("--orders", type=int, default=200)
    seed.add_argument("--invalid-ratio", type=float, default=0.1)
    commands.add_parser("process-pending", help="run the sweep now: enqueue pending, resume stalled jobs")
    create_token = commands.add_parser(
        "create-token", help="create an API token for a user; prints only the token (shown once)"
    )
    create_token.add_argument("--email", required=True, help="the user's email")
    create_token.add_argument("--name", default="command line", help="a name to recognize the token by")
    create_token.add_argument(
        "--organization", metavar="ORG_ID", help="the organization (required if the user is in several)"
    )
    bench_ws = commands.add_parser(
        "bench-websockets", help="measure progress delivery delay and memory per WebSocket client"
    )
    bench_ws.add_argument("--clients", default="1,100,1000", help="comma-separated client counts")
    bench_ws.add_argument("--orders", type=int, default=2000, help="orders in each round's job")
    bench_ws.add_argument("--processes", type=int, default=1, help="server processes to run")
    bench_ws.add_argument("--json", action="store_true", help="print one JSON document")
    bench = commands.add_parser(
        "bench", help="measure invoices per second: PostgreSQL ceiling, end to end, one request per order"
    )
    bench.add_argument("--sizes", default="1000,10000,100000", help="comma-separated numbers of orders")
    bench.add_argument("--workers-list", default="1,2", help="comma-separated worker process counts")
    bench.add_argument("--naive-sample", type=int, default=5000, help="most orders for the naive path")
    bench.add_argument("--json", action="store_true", help="print one JSON document")
    _add_bench_load(commands)
    _add_bench_orders(commands)
    _add_bench_fairness(commands)
    return parser


def _add_bench_fairness(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    bench_fairness = commands.add_parser(
        "bench-fairness", help="measure another organization's small job, an urgent job, more workers"
    )
    add = bench_fairness.add_argument
    add("--big-jobs", type=int, default=10, help="jobs organization A submits first")
    add("--big-size", type=int, default=20_000, help="orders in each of A's jobs")
    add("--small-size", type=int, default=100, help="orders in organization B's job")
    add("--workers-list", default="1,2", help="comma-separated worker counts for the small job")
    add("--scaling-size", type=int, default=200_000, help="orders in the one job of the scaling runs")
    add("--scaling-workers", default="1,2,4", help="comma-separated worker counts for scaling")
    add("--json", action="store_true", help="print one JSON document")


def _add_bench_orders(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    bench_orders = commands.add_parser(
        "bench-orders", help="measure the order list, its count and totals at month-end size, jobs running"
    )
    add = bench_orders.add_argument
    add("--orders", type=int, default=100_000, help="orders of each of the two organizations")
    add("--invoiced", type=int, default=50_000, help="orders of the first organization invoiced in bulk")
    add("--own-job", type=int, default=20_000, help="orders in the first organization's running job")
    add("--readers", type=int, default=4, help="clients reading the list at once")
    add("--reads", type=int, default=600, help="page and count reads in all, in turn")
    add("--totals-readers", type=int, default=1, help="clients reading the per-currency totals meanwhile")
    add("--json", action="store_true", help="print one JSON document")


def _add_bench_load(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    bench_load = commands.add_parser(
        "bench-load", help="measure read latency while many clients submit large batches at once"
    )
    add = bench_load.add_argument
    add("--pollers", type=int, default=200, help="clients polling a job of the submitting organization")
    add("--list-readers", type=int, default=20, help="clients reading the job list or the order list")
    add("--other-pollers", type=int, default=20, help="clients polling a job of a second organization")
    add("--submitters", type=int, default=30, help="clients submitting at once, a token each")
    add("--batches", type=int, default=60, help="batches submitted in the burst")
    add("--batch-size", type=int, default=4000, help="order ids in each batch")
    add("--orders", type=int, default=20000, help="confirmed orders the batches are drawn from")
    add("--poll-interval", type=float, default=2.0, help="seconds between one reader's requests")
    add("--baseline-seconds", type=float, default=6.0, help="reads alone before the burst")
    add("--after-seconds", type=float, default=6.0, help="reads measured after the burst")
    add("--processes", type=int, default=1, help="server processes to run")
    add("--json", action="store_true", help="print one JSON document")


def _check_seed_args(args: argparse.Namespace) -> None:
    if not 1 <= args.orgs <= 100:
        raise SystemExit("invoicing seed: --orgs must be between 1 and 100")
    if not 0 <= args.orders <= 1_000_000:
        raise SystemExit("invoicing seed: --orders must be between 0 and 1000000")
    if not 0.0 <= args.invalid_ratio <= 1.0:
        raise SystemExit("invoicing seed: --invalid-ratio must be between 0 and 1")


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        settings = Settings.from_env()
        _configure_logging(settings)
        return _run(args, settings)
    except InvoicingError as exc:
        print(f"invoicing {args.command}: {exc.message}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


def _run(args: argparse.Namespace, settings: Settings) -> int:
    from cli import commands
    from devtools.dev import run_dev, with_running_dev_services

    if args.command == "dev":
        return run_dev(settings, host=args.host, port=args.port, workers=args.workers)
    settings = with_running_dev_services(settings)
    if args.command == "server":
        return commands.serve(settings, host=args.host, port=args.port, processes=max(1, args.processes))
    if args.command == "worker":
        return commands.work(settings, burst=args.burst)
    if args.command == "migrate":
        applied = asyncio.run(commands.migrate_database(settings))
        print(f"migrations applied: {applied or 'none (up to date)'}")
        return 0
    if args.command == "seed":
        _check_seed_args(args)
        result = asyncio.run(commands.seed_database(settings, args.orgs, args.orders, args.invalid_ratio))
        print(json.dumps(result, indent=2))
        return 0
    if args.command.startswith("bench"):
        return _run_bench(args, settings)
    if args.command == "create-token":
        token = asyncio.run(commands.create_token(settings, args.email, args.name, args.organization))
        print(token)
        print(
            "invoicing create-token: this token is shown only once; store it now (revoke it in Settings).",
            file=sys.stderr,
        )
        return 0
    if args.command == "process-pending":
        print(json.dumps(asyncio.run(commands.process_pending(settings))))
        return 0
    raise AssertionError(args.command)


#: What the benchmarks need beyond the product (pyproject.toml's ``dev`` extra).
DEV_EXTRA_MODULES = frozenset({"httpx"})


def _run_bench(args: argparse.Namespace, settings: Settings) -> int:
    try:
        return _bench(args, settings)
    except ModuleNotFoundError as missing:
        if missing.name not in DEV_EXTRA_MODULES:
            raise
        print(
            f"invoicing {args.command}: the benchmarks need the development tools "
            f"({missing.name} is missing): pip install -e '.[dev]'",
            file=sys.stderr,
        )
        return 2


def _bench(args: argparse.Namespace, settings: Settings) -> int:
    if args.command == "bench-websockets":
        from devtools.bench_websockets import run as run_websockets

        counts = [int(part) for part in args.clients.split(",") if part.strip()]
        return run_websockets(
            settings, clients=counts, orders=args.orders, processes=args.processes, as_json=args.json
        )
    if args.command == "bench":
        from devtools.bench import run as run_bench

        sizes = [int(part) for part in args.sizes.split(",") if part.strip()]
        workers = [int(part) for part in args.workers_list.split(",") if part.strip()]
        return run_bench(
            settings, sizes=sizes, workers_list=workers, naive_sample=args.naive_sample, as_json=args.json
        )
    if args.command == "bench-load":
        from dataclasses import fields

        from devtools.bench_load import LoadOptions
        from devtools.bench_load import run as run_load

        options = {field.name: getattr(args, field.name) for field in fields(LoadOptions)}
        return run_load(settings, LoadOptions(**options), as_json=args.json)
    if args.command == "bench-orders":
        from dataclasses import fields

        from devtools.bench_orders import Options
        from devtools.bench_orders import run as run_orders

        chosen = {field.name: getattr(args, field.name) for field in fields(Options)}
        return run_orders(settings, Options(**chosen), as_json=args.json)
    if args.command == "bench-fairness":
        from devtools.bench_fairness import FairnessOptions
        from devtools.bench_fairness import run as run_fairness

        fairness = FairnessOptions(
            big_jobs=args.big_jobs,
            big_size=args.big_size,
            small_size=args.small_size,
            workers_list=_counts(args.workers_list),
            scaling_size=args.scaling_size,
            scaling_workers=_counts(args.scaling_workers),
        )
        return run_fairness(settings, fairness, as_json=args.json)
    raise AssertionError(args.command)


def _counts(text: str) -> tuple[int, ...]:
    """``"1,2,4"`` as numbers."""
    return tuple(int(part) for part in text.split(",") if part.strip())
