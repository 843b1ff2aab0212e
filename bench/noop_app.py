"""Baseline: a FastAPI endpoint that validates the same request body and does nothing."""

from __future__ import annotations

from typing import Annotated

from fastapi import Body, FastAPI

from slrt.api.schemas.proposals import NewProposal

app = FastAPI()


def create() -> FastAPI:
    """For `python -m bench.noop_app PORT PROCESSES`, served as `slrt serve` serves."""
    return app


@app.post("/noop", status_code=201)
def noop(body: Annotated[NewProposal, Body()]) -> dict[str, str]:
    return {"kind": body.kind}


if __name__ == "__main__":
    import sys

    import uvicorn

    from slrt.api.http import HttpProtocol
    from slrt.cli import serve_in_processes

    port, processes = int(sys.argv[1]), int(sys.argv[2])
    if processes > 1:
        serve_in_processes("bench.noop_app:create", "127.0.0.1", port, processes)
    else:  # as `slrt serve` with one process
        uvicorn.run(app, host="127.0.0.1", port=port, log_config=None, http=HttpProtocol)
