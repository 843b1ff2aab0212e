"""Cost of the hash chain on the append path: the same appends with the library's
recorders and with SLRT's audited ones, on SQLite and on PostgreSQL.

    .venv/bin/python -m bench.audit_overhead [--n 2000] [--blocks 20]

Fresh databases; both variants run side by side in alternating blocks. Two workloads:
- `save`: `app.save` of a new one-event aggregate (the smallest possible append);
- `command`: `submit_proposal` of a register proposal (a real command: load the SLA
  policy, validate, save).
"""

from __future__ import annotations

import argparse
import logging
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any
from uuid import UUID

import psycopg
import structlog
from eventsourcing.application import Application
from eventsourcing.domain import Aggregate, event

from slrt.application import SlrtApplication
from slrt.config import Settings
from slrt.domain.common import Actor, Role
from slrt.domain.reference import Indicator

POSTGRES_URL = "postgresql://postgres@127.0.0.1:5432/postgres"
FRONT_OFFICE = Actor("fo-bench", Role.FRONT_OFFICE, "64.74.01.1001")


class Note(Aggregate):
    @event("Written")
    def __init__(self, text: str) -> None:
        self.text = text


Step = Callable[[int], None]
SETTINGS: dict[str, Any] = {"submission_windows_enforced": False, "postgres_pool_size": 2}


class PlainSettings(Settings):
    """Our settings, with the library's own (unaudited) persistence module."""

    def eventsourcing_env(self) -> dict[str, str]:
        env = super().eventsourcing_env()
        env["PERSISTENCE_MODULE"] = env["PERSISTENCE_MODULE"].replace(
            "slrt.persistence", "eventsourcing"
        )
        return env


class BenchApplication(Application[UUID]):
    name = "slrt"


@contextmanager
def database(backend: str) -> Iterator[str]:
    if backend == "sqlite":
        with tempfile.TemporaryDirectory() as tmp:
            yield f"sqlite:///{tmp}/bench.db"
        return
    name = f"slrt_bench_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(POSTGRES_URL, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    try:
        yield f"{POSTGRES_URL.rsplit('/', 1)[0]}/{name}"
    finally:
        with psycopg.connect(POSTGRES_URL, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def household(i: int) -> dict[str, Any]:
    return {
        "region": "64.74.01.1001",
        "address": "Jl. Mulawarman No. 12",
        "rt": "3",
        "rw": "5",
        "no_kk": f"647401010120{i:04d}",
        "members": [
            {"nik": f"647401150880{i + 1:04d}", "name": "Budi", "relationship": "head", "sex": "L"}
        ],
        "indicators": {indicator.value: i % 2 == 0 for indicator in Indicator},
    }


def application(settings: Settings, workload: str) -> tuple[Application[UUID], Step]:
    if workload == "save":
        app: Application[UUID] = BenchApplication(env=settings.eventsourcing_env())

        def save(i: int) -> None:
            app.save(Note(f"note {i}"))

        return app, save
    slrt = SlrtApplication(settings)

    def submit(i: int) -> None:
        slrt.submit_proposal(
            actor=FRONT_OFFICE, kind="register", payload={"household": household(i)}
        )

    return slrt, submit


def compare(backend: str, workload: str, n: int, blocks: int) -> tuple[float, float]:
    """Total seconds for n appends with the library's recorder and with the audited one.

    Both run side by side in one process, in alternating blocks, so that load from
    anything else on the machine falls on both alike."""
    with database(backend) as plain_url, database(backend) as audited_url:
        plain = application(
            PlainSettings(_env_file=None, database_url=plain_url, **SETTINGS), workload
        )
        audited = application(
            Settings(_env_file=None, database_url=audited_url, **SETTINGS), workload
        )
        totals = {id(plain): 0.0, id(audited): 0.0}
        try:
            for pair in (plain, audited):
                pair[1](0)  # warm up: connections, prepared statements, the SLA policy
            size = n // blocks
            for block in range(blocks):
                order = (plain, audited) if block % 2 == 0 else (audited, plain)
                for pair in order:
                    started = time.perf_counter()
                    for i in range(1 + block * size, 1 + (block + 1) * size):
                        pair[1](i)
                    totals[id(pair)] += time.perf_counter() - started
        finally:
            plain[0].close()
            audited[0].close()
        return totals[id(plain)], totals[id(audited)]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--n", type=int, default=2000)
    parser.add_argument("--blocks", type=int, default=20)
    parser.add_argument("--backends", default="sqlite,postgres")
    parser.add_argument("--workloads", default="save,command")
    args = parser.parse_args()
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.WARNING))
    print(f"{'backend':<9} {'workload':<8} {'library s':>10} {'audited s':>10} {'ratio':>6}")
    for backend in args.backends.split(","):
        for workload in args.workloads.split(","):
            p, a = compare(backend, workload, args.n, args.blocks)
            print(f"{backend:<9} {workload:<8} {p:>10.2f} {a:>10.2f} {a / p:>6.2f}")


if __name__ == "__main__":
    main()
