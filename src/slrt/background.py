"""The thread every background worker runs in: projections, the breach watcher, the
audit anchor, the Kafka outbox and inbox, the agency simulator and the event listener."""

from __future__ import annotations

import threading
from abc import ABC, abstractmethod


class BackgroundLoop(ABC):
    """Runs `_loop` in a daemon thread from `start()` until `stop()`. The loop waits on
    `self._stop` (set by `stop`) and, where saves matter to it, on `self._wake` (set by
    `wake`, e.g. after a save in this process)."""

    def __init__(self) -> None:
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._thread: threading.Thread | None = None

    @property
    def thread_name(self) -> str:
        return str(getattr(self, "name", type(self).__name__))

    @abstractmethod
    def _loop(self) -> None:
        """Works until `self._stop` is set."""

    def _stopped(self) -> None:  # noqa: B027 - optional hook
        """Releases what the loop held (connections), after its thread has ended."""

    def wake(self) -> None:
        self._wake.set()

    def start(self) -> None:
        self._stop.clear()
        self._thread = threading.Thread(target=self._loop, name=self.thread_name, daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 10.0) -> None:
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout)
        self._stopped()
