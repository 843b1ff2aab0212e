"""Settings: the only place that reads the environment."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Literal
from urllib.parse import parse_qsl, unquote, urlencode, urlparse

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    """Validated at start-up; every value comes from an `SLRT_` variable or a default."""

    # var/slrt.env is written by `slrt secrets` for a stand-alone install (`make run`).
    model_config = SettingsConfigDict(
        env_prefix="SLRT_", env_file=("var/slrt.env", ".env"), extra="ignore"
    )

    database_url: str = Field(
        default="sqlite:///var/slrt.db",
        description="sqlite:///path/to/file.db (embedded default) or postgresql://user@host/db",
    )
    cipher_key: str | None = Field(
        default=None,
        description="Base64 AES key; when set, stored events are encrypted at rest",
    )
    postgres_lock_timeout_seconds: int = 5
    postgres_pool_size: int = 10
    sqlite_lock_timeout_seconds: int = 10
    command_retries: int = Field(default=3, ge=0, le=10)
    submission_windows_enforced: bool = True
    timezone_default: str = "Asia/Jakarta"
    projection_poll_interval_seconds: float = Field(default=0.5, gt=0, le=60)
    projection_batch_size: int = Field(default=500, ge=1, le=100_000)
    #: A projection that is behind reads pages of `projection_batch_size` into one
    #: transaction up to this many notifications (see ProjectionWorker.run_once).
    projection_catch_up_batch_size: int = Field(default=50_000, ge=1, le=1_000_000)
    #: On PostgreSQL, a worker that starts from zero with at least this many events to
    #: apply rebuilds its projection in `projection_rebuild_processes` processes, if the
    #: projection can be (slrt.projections.parallel). Starting them costs ~2 s, which
    #: one process at ~30,000 events/s repays after ~120,000 events.
    projection_rebuild_in_processes_from: int = Field(default=200_000, ge=1)
    projection_rebuild_processes: int = Field(
        default=0, ge=0, le=64, description="Processes of a rebuild from zero; 0: one per core"
    )
    log_format: Literal["auto", "json", "console"] = "auto"
    log_level: str = "INFO"
    max_request_bytes: int = Field(default=1_000_000, ge=1024)

    group_commit: bool = Field(
        default=True,
        description=(
            "Save concurrent commands together in one transaction; on PostgreSQL, also "
            "read the records their decisions need together (slrt.group_read)"
        ),
    )
    group_commit_window_ms: float = Field(
        default=1.0,
        ge=0,
        le=100,
        description=(
            "How long a batch of the group committer's thread waits for more commands "
            "at most (a batch of commands that read first waits only while others are "
            "being decided). The thread saves on SQLite and for commands run from "
            "threads; on PostgreSQL an API process saves its commands on its event "
            "loop, without a window (ADR 0012)"
        ),
    )
    group_commit_max_batch: int = Field(default=200, ge=1, le=10_000)
    group_commit_in_flight: int = Field(
        default=2,
        ge=1,
        le=8,
        description=(
            "PostgreSQL: how many batches an API process's event loop may be saving at "
            "once, each on its own connection. Another starts only once as many "
            "commands wait as the smallest batch being saved holds (slrt.loop_commit)"
        ),
    )
    group_read_window_ms: float = Field(
        default=1.0,
        ge=0,
        le=100,
        description=(
            "How long a group read (PostgreSQL: the records commands decide on, read "
            "together) waits for more at most, while it holds fewer than the previous "
            "one read; 0: never waits (slrt.group_read)"
        ),
    )
    audit_anchor_interval_seconds: float = Field(
        default=3600.0, gt=0, description="How often the audit_anchor process extends the anchor"
    )
    sla_watch_interval_seconds: float = Field(default=30.0, gt=0, le=3600)
    sla_escalate_on_breach: bool = Field(
        default=True, description="A breached complaint goes up to the kecamatan, then kabupaten"
    )

    # Referrals over Kafka (ADR 0007). Without bootstrap servers the outbox and the inbox
    # do not run: referrals wait in the event store and go out once a broker is set.
    kafka_bootstrap_servers: str | None = Field(
        default=None, description="host:port[,host:port]; unset = referral outbox/inbox off"
    )
    kafka_security_protocol: Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"] = "PLAINTEXT"
    kafka_sasl_mechanism: Literal["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"] | None = None
    kafka_sasl_username: str | None = None
    kafka_sasl_password: str | None = None
    kafka_ssl_cafile: str | None = Field(default=None, description="CA bundle for TLS")
    kafka_topic_prefix: str = Field(
        default="slrt.", description="slrt. gives slrt.referrals.<agency>"
    )
    kafka_response_partitions: int = Field(default=3, ge=1, le=100)
    kafka_replication_factor: int = Field(default=1, ge=1, le=10)
    referral_outbox_batch_size: int = Field(default=500, ge=1, le=10_000)
    referral_poll_interval_seconds: float = Field(default=0.25, gt=0, le=60)

    jwt_issuer: str = "slrt"
    jwt_audience: str = "slrt-api"
    jwt_signing_key: str | None = Field(
        default=None,
        description="HS256 secret (32+ bytes) that `slrt users token` signs with",
    )
    jwt_signing_kid: str = "slrt-1"
    jwt_verification_keys: dict[str, str] = Field(
        default_factory=dict,
        description=(
            "kid -> HS256 secret or PEM public key (RS256/ES256) accepted for verification; "
            "keep an old key here while its tokens expire, to rotate"
        ),
    )
    token_ttl_minutes: int = Field(default=12 * 60, ge=1, le=60 * 24 * 31)
    token_leeway_seconds: int = Field(default=30, ge=0, le=300)

    @field_validator("database_url")
    @classmethod
    def _supported_database(cls, value: str) -> str:
        if not value.startswith(("sqlite://", "postgresql://", "postgres://")):
            msg = "SLRT_DATABASE_URL must start with sqlite:// or postgresql://"
            raise ValueError(msg)
        return value

    @property
    def is_postgres(self) -> bool:
        return self.database_url.startswith(("postgresql://", "postgres://"))

    @property
    def rebuild_processes(self) -> int:
        return self.projection_rebuild_processes or os.cpu_count() or 1

    @property
    def sqlite_path(self) -> Path:
        """The SQLite file named by `sqlite:///relative` or `sqlite:////absolute`."""
        return Path(self.database_url.removeprefix("sqlite:///"))

    def eventsourcing_env(self) -> dict[str, str]:
        """The eventsourcing library's own settings, derived from ours.

        POSTGRES_ENABLE_DB_FUNCTIONS is deliberately never set: it was measured
        to lose events for concurrent readers.
        """
        env: dict[str, str] = {}
        if self.is_postgres:
            url = urlparse(self.database_url)
            env.update(
                PERSISTENCE_MODULE="slrt.persistence.postgres",
                POSTGRES_DBNAME=url.path.lstrip("/") or "postgres",
                POSTGRES_HOST=url.hostname or "127.0.0.1",
                POSTGRES_PORT=str(url.port or 5432),
                POSTGRES_USER=unquote(url.username or "postgres"),
                POSTGRES_PASSWORD=unquote(url.password or ""),
                POSTGRES_LOCK_TIMEOUT=str(self.postgres_lock_timeout_seconds),
                POSTGRES_IDLE_IN_TRANSACTION_SESSION_TIMEOUT="30",
                POSTGRES_POOL_SIZE=str(self.postgres_pool_size),
                POSTGRES_PRE_PING="y",
            )
            if parameters := self.postgres_parameters():
                env["POSTGRES_CONNECTION_PARAMETERS"] = urlencode(parameters)
        else:
            self.sqlite_path.parent.mkdir(parents=True, exist_ok=True)
            env.update(
                PERSISTENCE_MODULE="slrt.persistence.sqlite",
                SQLITE_DBNAME=str(self.sqlite_path),
                SQLITE_LOCK_TIMEOUT=str(self.sqlite_lock_timeout_seconds),
            )
        if self.cipher_key:
            env.update(
                CIPHER_TOPIC="eventsourcing.cryptography:AESCipher",
                CIPHER_KEY=self.cipher_key,
            )
        return env

    def postgres_parameters(self) -> dict[str, str]:
        """The connection parameters in SLRT_DATABASE_URL's query (`sslmode`,
        `sslrootcert`, `application_name`, `options`, …: libpq's keywords), which every
        connection to PostgreSQL is made with: the event store's (slrt.persistence.postgres
        `Factory`), the read models' (slrt.db) and the listener's. The event store's used
        to get only the host, port, database, user and password, so `?sslmode=require`
        reached the read models but not the events."""
        return dict(parse_qsl(urlparse(self.database_url).query, keep_blank_values=True))

    def sqlalchemy_url(self) -> str:
        """The read models live in the same database as the events."""
        if self.is_postgres:
            rest = self.database_url.split("://", 1)[1]
            return f"postgresql+psycopg://{rest}"
        return f"sqlite:///{self.sqlite_path}"


def joined_options(ours: str, given: str | None) -> str:
    """Start-up `options` of SLRT's own followed by those given in the database URL
    (PostgreSQL applies them in order: where both set one, the URL's wins)."""
    return f"{ours} {given}" if given else ours
