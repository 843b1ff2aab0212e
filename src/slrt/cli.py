"""The `slrt` command: serve, worker, demo-data, projections rebuild."""

from __future__ import annotations

import argparse
import signal
import sys
import threading
import time
from collections.abc import Sequence

import structlog

from slrt.config import Settings
from slrt.logging import configure_logging
from slrt.runtime import build_runtime

log = structlog.get_logger("slrt.cli")


def _serve(settings: Settings, args: argparse.Namespace) -> int:
    import uvicorn

    from slrt.api.app import create_app

    app = create_app(settings, run_workers=not args.no_workers)
    uvicorn.run(app, host=args.host, port=args.port, log_config=None, workers=1)
    return 0


def _worker(settings: Settings, args: argparse.Namespace) -> int:
    runtime = build_runtime(settings)
    names = list(runtime.workers) if args.name == "all" else [args.name]
    unknown = [n for n in names if n not in runtime.workers]
    if unknown:
        print(f"unknown worker {unknown[0]}; choose from: all, {', '.join(runtime.workers)}")
        return 2
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    runtime.start_workers(names)
    log.info("worker.running", workers=names)
    while not stop.wait(5):
        for name in names:
            worker = runtime.workers[name]
            log.debug("worker.lag", worker=name, lag=worker.lag())
    runtime.close()
    return 0


def _demo_data(settings: Settings, args: argparse.Namespace) -> int:
    from slrt.demo import generate

    runtime = build_runtime(settings)
    try:
        if args.if_empty and (runtime.app.recorder.max_notification_id() or 0) > 0:
            print("the event store already has events; demo data not loaded")
            return 0
        started = time.perf_counter()
        summary = generate(settings, region=args.region, households=args.households, seed=args.seed)
        runtime.catch_up()
        elapsed = time.perf_counter() - started
        print(f"demo data: {summary} in {elapsed:.1f} s")
    finally:
        runtime.close()
    return 0


def _rebuild(settings: Settings, args: argparse.Namespace) -> int:
    runtime = build_runtime(settings)
    try:
        for name, worker in runtime.workers.items():
            if args.name not in ("all", name):
                continue
            started = time.perf_counter()
            worker.reset()
            read = worker.catch_up()
            print(f"{name}: applied {read} events in {time.perf_counter() - started:.1f} s")
    finally:
        runtime.close()
    return 0


def parser() -> argparse.ArgumentParser:
    root = argparse.ArgumentParser(prog="slrt", description=__doc__)
    commands = root.add_subparsers(dest="command", required=True)

    serve = commands.add_parser("serve", help="run the API and, by default, every worker")
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=8000)
    serve.add_argument(
        "--no-workers", action="store_true", help="API only (workers run as `slrt worker`)"
    )
    serve.set_defaults(run=_serve)

    worker = commands.add_parser("worker", help="run one background worker, or all")
    worker.add_argument("name", help="household_status, proposal_list or all")
    worker.set_defaults(run=_worker)

    demo = commands.add_parser("demo-data", help="load synthetic households through real commands")
    demo.add_argument("--region", default="64.74", help="kabupaten/kota code, e.g. 64.74")
    demo.add_argument("--households", type=int, default=10_000)
    demo.add_argument("--seed", type=int, default=2026)
    demo.add_argument("--if-empty", action="store_true", help="do nothing if events exist")
    demo.set_defaults(run=_demo_data)

    projections = commands.add_parser("projections", help="manage read models")
    projection_commands = projections.add_subparsers(dest="action", required=True)
    rebuild = projection_commands.add_parser("rebuild", help="rebuild read models from zero")
    rebuild.add_argument("name", nargs="?", default="all")
    rebuild.set_defaults(run=_rebuild)
    return root


def main(argv: Sequence[str] | None = None) -> int:
    args = parser().parse_args(argv)
    settings = Settings()
    configure_logging(settings)
    return int(args.run(settings, args))


if __name__ == "__main__":
    sys.exit(main())
