"""Health: is the database reachable, and how far behind is each projection."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from fastapi.responses import JSONResponse

from slrt.api.deps import RuntimeDep

router = APIRouter(prefix="/api/v1", tags=["health"])


@router.get("/health")
def health(runtime: RuntimeDep) -> JSONResponse:
    try:
        head = runtime.app.recorder.max_notification_id() or 0
        projections: dict[str, Any] = {}
        for name, worker in runtime.workers.items():
            projections[name] = worker.state(head)
        outbox = runtime.processes.get("referral_outbox")
        referral_outbox = outbox.status() if outbox is not None else None
    except Exception:
        return JSONResponse({"status": "unavailable", "database": "unreachable"}, status_code=503)
    return JSONResponse(
        {
            "status": "ok",
            "database": "postgresql" if runtime.settings.is_postgres else "sqlite",
            "events": head,
            "projections": projections,
            "referral_outbox": referral_outbox,
            # PostgreSQL: whether this process's workers are woken by other processes'
            # commits (null when it runs no workers; they poll either way).
            "listening": runtime.listener.listening if runtime.listener else None,
        }
    )
