"""The SQLAlchemy engine for read models, on the same database as the events."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    ARRAY,
    Connection,
    DateTime,
    Dialect,
    Engine,
    MetaData,
    String,
    Table,
    TypeDecorator,
    any_,
    create_engine,
    event,
    literal,
    text,
)
from sqlalchemy.dialects import postgresql, sqlite

from slrt.config import Settings, joined_options

metadata = MetaData()

#: Ties are ordered by household id as Python orders strings (ADR 0002); PostgreSQL's
#: default collation would order them otherwise, so the ids compare bytewise ("C").
HouseholdId = String(36).with_variant(String(36, collation="C"), "postgresql")


def among(conn: Connection, column: Any, values: Sequence[str]) -> Any:
    """`column IN values` for a long list of ids: one array parameter on PostgreSQL
    (`= ANY(...)`), where an expanded IN list of thousands of parameters costs more to
    build and parse than to run; an IN list on SQLite."""
    if conn.dialect.name == "postgresql":
        return column == any_(literal(list(values), ARRAY(String)))
    return column.in_(list(values))


#: Ids per statement when a projection's batch looks rows up or deletes them by id.
ID_CHUNK = 5000


def among_each(conn: Connection, column: Any, values: Sequence[str]) -> Iterator[Any]:
    """`among` for the values ID_CHUNK at a time (none for no values): SQLite binds one
    parameter per value (at most 32,766 in a statement)."""
    for start in range(0, len(values), ID_CHUNK):
        yield among(conn, column, values[start : start + ID_CHUNK])


def empty_tables(conn: Connection, tables: Sequence[Table]) -> None:
    """Empties tables for a rebuild from zero: TRUNCATE on PostgreSQL (deleting 100,000
    households' rows one by one took seconds, and left dead rows that slowed the rebuild
    down: a rebuild of 300,000 events in two processes took 11.4 s instead of 7.2 s).
    It holds readers off until the transaction ends, so it is for short transactions."""
    if conn.dialect.name == "postgresql":
        names = ", ".join(conn.dialect.identifier_preparer.format_table(t) for t in tables)
        conn.execute(text(f"TRUNCATE TABLE {names}"))
        return
    for table in tables:
        conn.execute(table.delete())


def bulk_insert(
    conn: Connection,
    table: Table,
    columns: Sequence[str],
    rows: list[tuple[Any, ...]],
    *,
    binary: bool = False,
) -> None:
    """Inserts many rows in the caller's transaction: PostgreSQL's COPY (measured on
    100,000 ranking rows: 1.4 s against 2.1-2.8 s for batched INSERTs), executemany on
    SQLite. Values must already be in their stored form: PostgreSQL's COPY converts
    nothing (on SQLite each value goes through its column type's bind processor).

    `binary`: COPY in PostgreSQL's binary format, each value sent as its column's type
    (formatting 100,000 household_status rows took 0.3-0.4 s of the writer's CPU instead
    of 0.8 s as text). Every value must then be of that type's Python kind: an int for
    an integer column, a str for a text one, and so on."""
    if not rows:
        return
    raw: Any = conn.connection.driver_connection
    if conn.dialect.name == "postgresql":
        statement = f"COPY {table.name} ({', '.join(columns)}) FROM STDIN"
        types = _column_types(raw, table.name, tuple(columns)) if binary else None
        if types is not None:
            statement += " (FORMAT BINARY)"
        with raw.cursor() as cursor, cursor.copy(statement) as copy:
            if types is not None:
                copy.set_types(types)
            for row in rows:
                copy.write_row(row)
        return
    # SQLite: the driver's executemany of the rows as they are, each value through its
    # column type's bind processor (what an insert() would do): SQLAlchemy's own
    # executemany builds a parameter dict per row (100,000 ranking rows, alternating
    # runs: 1.4-1.9 s that way, 1.0-1.6 s this way).
    dialect = conn.dialect
    processors = [table.c[c].type.dialect_impl(dialect).bind_processor(dialect) for c in columns]
    if any(processors):
        rows = [
            tuple(v if p is None else p(v) for p, v in zip(processors, row, strict=True))
            for row in rows
        ]
    placeholders = ", ".join("?" for _ in columns)
    raw.executemany(
        f"INSERT INTO {table.name} ({', '.join(columns)}) VALUES ({placeholders})", rows
    )


def upsert(
    conn: Connection,
    table: Table,
    key: Sequence[str],
    rows: list[dict[str, Any]],
    *,
    added: Sequence[str] = (),
) -> None:
    """Inserts these rows, or updates the stored row with the same `key` (one statement,
    on PostgreSQL and on SQLite): for a few rows, one round trip instead of a delete and
    an insert. The `added` columns are added to the stored values, not put in place."""
    if not rows:
        return
    dialect = postgresql if conn.dialect.name == "postgresql" else sqlite
    statement = dialect.insert(table)
    statement = statement.on_conflict_do_update(
        index_elements=list(key),
        set_={
            c: table.c[c] + statement.excluded[c] if c in added else statement.excluded[c]
            for c in rows[0]
            if c not in key
        },
    )
    conn.execute(statement, rows)


#: The PostgreSQL type of each column, for a binary COPY: by database (a type of its
#: own has an oid of its own there), table and columns.
_COLUMN_TYPES: dict[tuple[str, int, str, str, tuple[str, ...]], list[int]] = {}


def _column_types(raw: Any, table: str, columns: tuple[str, ...]) -> list[int]:
    key = (raw.info.host, raw.info.port, raw.info.dbname, table, columns)
    types = _COLUMN_TYPES.get(key)
    if types is None:
        found = dict(
            raw.execute(
                "SELECT attname, atttypid FROM pg_attribute"
                " WHERE attrelid = to_regclass(%s) AND attnum > 0 AND NOT attisdropped",
                (table,),
            ).fetchall()
        )
        types = _COLUMN_TYPES[key] = [int(found[c]) for c in columns]
    return types


def create_read_engine(settings: Settings) -> Engine:
    if settings.is_postgres:
        timeout_ms = settings.postgres_lock_timeout_seconds * 1000
        return create_engine(
            settings.sqlalchemy_url(),
            pool_pre_ping=True,
            pool_size=settings.postgres_pool_size,
            # Replaces the URL's `options` (SQLAlchemy's connect_args win): kept after ours.
            connect_args={
                "options": joined_options(
                    f"-c lock_timeout={timeout_ms}", settings.postgres_parameters().get("options")
                )
            },
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


@contextmanager
def snapshot(engine: Engine) -> Iterator[Connection]:
    """A connection whose reads all see one state of the database, for an answer made of
    several statements (a household's row and its rank counted; a page, its total and
    its read model's position): REPEATABLE READ and read only on PostgreSQL, one deferred
    transaction on SQLite (in WAL mode its snapshot is taken at the first read)."""
    with engine.connect() as conn:
        if conn.dialect.name == "postgresql":
            conn = conn.execution_options(
                isolation_level="REPEATABLE READ", postgresql_readonly=True
            )
        else:
            conn.exec_driver_sql("BEGIN")
        yield conn


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
