"""Running a command from an async route, without holding a worker thread while the
command's commit waits for its group-commit batch (ADR 0009)."""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

from starlette.concurrency import run_in_threadpool

from slrt.application import Command, Outcome
from slrt.runtime import Runtime

T = TypeVar("T")


async def run_command(runtime: Runtime, command: Command, answer: Callable[[Outcome], T]) -> T:
    """Runs the command (deciding in the thread pool if it reads stored state) and
    builds the answer; the answer to a replayed Idempotency-Key is read in the pool."""
    outcome = await runtime.app.run_async(command, offload=run_in_threadpool)
    if outcome.aggregate is None:
        return await run_in_threadpool(answer, outcome)
    return answer(outcome)
