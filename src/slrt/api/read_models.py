"""How current a list read from a read model is (shown on every page of one)."""

from __future__ import annotations

from sqlalchemy import Connection

from slrt.api.schemas.proposals import ReadModelState
from slrt.projections.base import read_model_state, read_progress
from slrt.runtime import Runtime


def state_of(runtime: Runtime, conn: Connection, name: str) -> ReadModelState:
    """Read before the list itself, on its connection: the list then includes at least
    the events the state says it does."""
    position, until = read_progress(conn, name)
    head = runtime.app.recorder.max_notification_id() or 0
    return ReadModelState(name=name, **read_model_state(position, head, until))
