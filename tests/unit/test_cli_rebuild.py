"""`slrt projections rebuild` tells an administrator what it did not do, and why."""

from __future__ import annotations

from pathlib import Path

import pytest

from slrt.cli import main


@pytest.fixture(autouse=True)
def _sqlite_store(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SLRT_DATABASE_URL", f"sqlite:///{tmp_path / 'slrt.db'}")
    monkeypatch.setenv("SLRT_LOG_LEVEL", "WARNING")


def test_a_read_model_that_does_not_exist_is_named_with_those_that_do(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert main(["projections", "rebuild", "household_statuses"]) == 1
    out = capsys.readouterr().out
    assert "no read model 'household_statuses'" in out
    assert "household_status, " in out


def test_a_rebuild_in_several_processes_needs_postgresql(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert main(["projections", "rebuild", "household_status", "--processes", "2"]) == 1
    assert "needs PostgreSQL" in capsys.readouterr().out
