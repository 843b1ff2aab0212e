"""Baseline: a FastAPI endpoint that validates the same request body and does nothing."""

from __future__ import annotations

from typing import Annotated

from fastapi import Body, FastAPI

from slrt.api.schemas.proposals import NewProposal

app = FastAPI()


@app.post("/noop", status_code=201)
def noop(body: Annotated[NewProposal, Body()]) -> dict[str, str]:
    return {"kind": body.kind}
