"""`slrt projections rebuild` on PostgreSQL while the tables are in use."""

from __future__ import annotations

import pytest
from sqlalchemy import text

from slrt.cli import main
from slrt.config import Settings
from slrt.runtime import build_runtime


@pytest.mark.parametrize("processes", ["1", "2"])
def test_a_rebuild_that_cannot_take_the_tables_says_so_and_changes_nothing(
    postgres_settings: Settings,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    processes: str,
) -> None:
    monkeypatch.setenv("SLRT_DATABASE_URL", str(postgres_settings.database_url))
    monkeypatch.setenv("SLRT_POSTGRES_LOCK_TIMEOUT_SECONDS", "1")
    monkeypatch.setenv("SLRT_LOG_LEVEL", "WARNING")
    runtime = build_runtime(postgres_settings)
    try:
        worker = runtime.workers["household_status"]
        worker.catch_up()
        before = worker.position()
        with runtime.engine.connect() as batch:  # a worker's batch, still open
            batch.execute(text("LOCK TABLE household_status IN ROW EXCLUSIVE MODE"))
            code = main(["projections", "rebuild", "household_status", "--processes", processes])
            batch.rollback()
        assert code == 1
        assert "stayed in use" in capsys.readouterr().out
        assert worker.position() == before
    finally:
        runtime.close()
