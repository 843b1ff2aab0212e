"""Baseline: a FastAPI endpoint that validates the same request body and does nothing."""

from __future__ import annotations

from typing import Annotated

from fastapi import Body, FastAPI

from slrt.api.schemas.proposals import NewProposal

app = FastAPI()


def create() -> FastAPI:
    """For `python -m bench.noop_app PORT PROCESSES`, served as `slrt serve --processes`."""
    return app


@app.post("/noop", status_code=201)
def noop(body: Annotated[NewProposal, Body()]) -> dict[str, str]:
    return {"kind": body.kind}


if __name__ == "__main__":
    import sys

    from slrt.cli import serve_in_processes

    serve_in_processes("bench.noop_app:create", "127.0.0.1", int(sys.argv[1]), int(sys.argv[2]))
