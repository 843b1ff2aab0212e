"""The SQLAlchemy engine for read models, on the same database as the events."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import DateTime, Dialect, Engine, MetaData, TypeDecorator, create_engine, event

from slrt.config import Settings

metadata = MetaData()


def create_read_engine(settings: Settings) -> Engine:
    if settings.is_postgres:
        timeout_ms = settings.postgres_lock_timeout_seconds * 1000
        return create_engine(
            settings.sqlalchemy_url(),
            pool_pre_ping=True,
            pool_size=settings.postgres_pool_size,
            connect_args={"options": f"-c lock_timeout={timeout_ms}"},
        )
    settings.sqlite_path.parent.mkdir(parents=True, exist_ok=True)
    engine = create_engine(
        settings.sqlalchemy_url(),
        connect_args={"timeout": settings.sqlite_lock_timeout_seconds, "check_same_thread": False},
    )

    @event.listens_for(engine, "connect")
    def _pragmas(dbapi_connection: Any, _record: Any) -> None:
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute(f"PRAGMA busy_timeout={settings.sqlite_lock_timeout_seconds * 1000}")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.close()

    return engine


class UtcDateTime(TypeDecorator[datetime]):
    """Timezone-aware on both backends: SQLite forgets the offset, so store UTC."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            msg = "naive datetimes are not stored; give a timezone"
            raise ValueError(msg)
        return value.astimezone(UTC)

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
