"""A throw-away Kafka-protocol broker (noida-db) for tests.

``KafkaBroker`` runs ``noida-db up --only kafka`` on a free port of 127.0.0.1 with a fresh
temporary data directory, checks that the port answers a Kafka ApiVersions request, and
always cleans up (``stop()``/``close()``, a context manager, and an ``atexit`` hook).

Use the session-scoped fixture from a test module or a conftest::

    from tests.kafka_broker import kafka_broker  # noqa: F401

    def test_something(kafka_broker: KafkaBroker) -> None:
        producer = KafkaProducer(bootstrap_servers=kafka_broker.bootstrap)

Tests that restart or kill the broker should start their own ``KafkaBroker`` (it costs
about 0.2 s) rather than disturb the shared one.  See docs/kafka-broker-notes.md.
"""

from __future__ import annotations

import atexit
import contextlib
import json
import os
import shutil
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from types import TracebackType

import pytest

HOST = "127.0.0.1"
_GLIBC_NOISE = "weak version `GLIBC_"  # harmless loader warning printed on every run

# Brokers this module stopped or killed.  `up` daemonizes, so they are children of PID 1,
# which on these machines reaps them only every ~2 s; until then `pgrep -af noida` lists a
# "[noida-db] <defunct>" (not running).  wait_for_reaping() waits that out, once, at the end.
_stopped_pids: set[int] = set()


class KafkaBrokerError(RuntimeError):
    """The broker could not be started, reached or stopped."""


def find_noida_db() -> str:
    """The noida-db launcher: the running interpreter's bin dir first, then PATH."""
    # Not resolved: in a venv sys.executable is .venv/bin/python, a symlink to the base
    # interpreter, and noida-db lives next to the symlink.
    candidate = Path(sys.executable).parent / "noida-db"
    if candidate.is_file() and os.access(candidate, os.X_OK):
        return str(candidate)
    found = shutil.which("noida-db")
    if found:
        return found
    raise KafkaBrokerError(
        "noida-db not found next to the interpreter or on PATH; "
        "install it with: .venv/bin/pip install 'noida-db==0.2.3'"
    )


def free_port(host: str = HOST) -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def kafka_api_versions_ok(host: str, port: int, timeout: float = 1.0) -> bool:
    """True when host:port answers an ApiVersions (v0) request without an error code."""
    client_id = b"slrt-tests"
    body = struct.pack(">hhih", 18, 0, 0x51A7, len(client_id)) + client_id
    try:
        with socket.create_connection((host, port), timeout=timeout) as sock:
            sock.sendall(struct.pack(">i", len(body)) + body)
            (size,) = struct.unpack(">i", _recv_exactly(sock, 4))
            data = _recv_exactly(sock, size)
    except (OSError, struct.error):
        return False
    correlation_id, error_code = struct.unpack(">ih", data[:6])
    return correlation_id == 0x51A7 and error_code == 0


def _recv_exactly(sock: socket.socket, n: int) -> bytes:
    chunks = bytearray()
    while len(chunks) < n:
        chunk = sock.recv(n - len(chunks))
        if not chunk:
            raise OSError("connection closed")
        chunks += chunk
    return bytes(chunks)


def wait_for_reaping(timeout: float = 10.0) -> None:
    """Wait (at most timeout) until the brokers stopped here have left the process table."""
    deadline = time.monotonic() + timeout
    while _stopped_pids:
        _stopped_pids.difference_update(
            [pid for pid in _stopped_pids if not Path(f"/proc/{pid}").exists()]
        )
        if not _stopped_pids or time.monotonic() >= deadline:
            return
        time.sleep(0.05)


atexit.register(wait_for_reaping)


def _process_alive(pid: int) -> bool:
    """True while pid runs; a zombie (killed, not yet reaped by init) counts as gone."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[-1].split()[0] != "Z"


class KafkaBroker:
    """One noida-db process serving only Kafka on 127.0.0.1.

    ``port`` and ``data_dir`` default to a free port and a fresh temporary directory; both
    stay the same across ``restart()``.  A data dir created here is deleted by ``close()``.
    """

    def __init__(
        self,
        *,
        port: int | None = None,
        data_dir: str | Path | None = None,
        start_timeout: float = 20.0,
        stop_timeout: float = 20.0,
        executable: str | None = None,
    ) -> None:
        self._fixed_port = port is not None
        self.port = port if port is not None else free_port()
        self._owns_data_dir = data_dir is None
        self.data_dir = Path(data_dir) if data_dir is not None else None
        self.start_timeout = start_timeout
        self.stop_timeout = stop_timeout
        self.executable = executable or find_noida_db()
        self._running = False
        self._pid: int | None = None
        self._atexit_registered = False

    # -- public API ----------------------------------------------------------------------

    @property
    def bootstrap(self) -> str:
        return f"{HOST}:{self.port}"

    @property
    def pid(self) -> int | None:
        return self._pid

    @property
    def running(self) -> bool:
        return self._running

    def start(self) -> KafkaBroker:
        """Start the broker (no-op if running) and wait until it answers Kafka requests."""
        if self._running:
            return self
        if self.data_dir is None:
            self.data_dir = Path(tempfile.mkdtemp(prefix="slrt-kafka-"))
        if not self._atexit_registered:
            atexit.register(self.close)
            self._atexit_registered = True
        deadline = time.monotonic() + self.start_timeout
        attempts = 1 if self._fixed_port else 3
        for attempt in range(attempts):
            result = self._up(deadline)
            if result.returncode == 0:
                break
            self._stop_quietly()
            port_taken = "already in use" in (result.stdout + result.stderr)
            if port_taken and attempt + 1 < attempts:
                self.port = free_port()  # lost a race for the port we picked
                continue
            raise KafkaBrokerError(
                f"`noida-db up` failed (exit {result.returncode}) for {self.bootstrap}:\n"
                f"{_clean(result.stdout + result.stderr)}\n{self._log_excerpt()}"
            )
        self._running = True
        self._pid = self._read_pid()
        self._wait_ready(deadline)
        self._fixed_port = True  # restart() must come back on the same port
        return self

    def stop(self) -> None:
        """Stop the broker gracefully (data is saved); kill it if `down` doesn't."""
        if self.data_dir is None:
            return
        pid = self._pid or self._read_pid()
        result = self._run("down", timeout=self.stop_timeout, check=False)
        if pid is not None:
            _stopped_pids.add(pid)
            if not self._wait_gone(pid, self.stop_timeout):
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
                self._wait_gone(pid, 5.0)
        self._running = False
        self._pid = None
        if result is not None and result.returncode != 0:
            raise KafkaBrokerError(
                f"`noida-db down` failed (exit {result.returncode}):\n"
                f"{_clean(result.stdout + result.stderr)}"
            )

    def kill(self) -> None:
        """SIGKILL the broker, as a crash would: writes of about the last second are lost."""
        pid = self._pid or self._read_pid()
        if pid is not None:
            _stopped_pids.add(pid)
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
            self._wait_gone(pid, 5.0)
        self._running = False
        self._pid = None

    def restart(self) -> KafkaBroker:
        """Stop, then start again on the same port with the same data dir."""
        self.stop()
        return self.start()

    def close(self) -> None:
        """Stop the broker and delete the data dir if this object created it."""
        try:
            if self._running or (self.data_dir is not None and self._read_pid() is not None):
                self._stop_quietly()
        finally:
            if self._owns_data_dir and self.data_dir is not None:
                shutil.rmtree(self.data_dir, ignore_errors=True)
                self.data_dir = None
            if self._atexit_registered:
                atexit.unregister(self.close)
                self._atexit_registered = False

    def log(self) -> str:
        """The broker's log (noida.log in the data dir; rewritten by each `up`)."""
        if self.data_dir is None:
            return ""
        try:
            return _clean((self.data_dir / "noida.log").read_text(errors="replace"))
        except OSError:
            return ""

    def __enter__(self) -> KafkaBroker:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        state = "running" if self._running else "stopped"
        return f"<KafkaBroker {self.bootstrap} {state} data_dir={self.data_dir}>"

    # -- internals -----------------------------------------------------------------------

    def _up(self, deadline: float) -> subprocess.CompletedProcess[str]:
        timeout = max(deadline - time.monotonic(), 1.0)
        args = ["up", "--only", "kafka", "--host", HOST, "--kafka-port", str(self.port)]
        result = self._run(*args, timeout=timeout, check=True)
        assert result is not None
        return result

    def _run(
        self, command: str, *args: str, timeout: float, check: bool
    ) -> subprocess.CompletedProcess[str] | None:
        assert self.data_dir is not None
        argv = [self.executable, command, *args, "--data-dir", str(self.data_dir)]
        try:
            return subprocess.run(
                argv,
                stdin=subprocess.DEVNULL,
                capture_output=True,
                text=True,
                timeout=timeout,
                check=False,
            )
        except subprocess.TimeoutExpired as exc:
            if not check:
                return None
            self._stop_quietly()
            raise KafkaBrokerError(
                f"`noida-db {command}` did not return within {timeout:.1f}s\n{self._log_excerpt()}"
            ) from exc

    def _wait_ready(self, deadline: float) -> None:
        while True:
            if kafka_api_versions_ok(HOST, self.port):
                return
            if self._pid is not None and not _process_alive(self._pid):
                problem = f"the broker process {self._pid} exited"
                break
            if time.monotonic() >= deadline:
                problem = f"no Kafka ApiVersions answer within {self.start_timeout:.1f}s"
                break
            time.sleep(0.05)
        self._stop_quietly()
        raise KafkaBrokerError(
            f"noida-db Kafka on {self.bootstrap} not ready: {problem}\n{self._log_excerpt()}"
        )

    def _read_pid(self) -> int | None:
        if self.data_dir is None:
            return None
        try:
            control = json.loads((self.data_dir / "noida.control.json").read_text())
            pid = int(control["pid"])
        except (OSError, ValueError, KeyError, TypeError):
            return None
        return pid if _process_alive(pid) else None

    @staticmethod
    def _wait_gone(pid: int, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while _process_alive(pid):
            if time.monotonic() >= deadline:
                return False
            time.sleep(0.05)
        return True

    def _stop_quietly(self) -> None:
        with contextlib.suppress(Exception):
            self.stop()

    def _log_excerpt(self, lines: int = 40) -> str:
        text = self.log().strip()
        if not text:
            return f"(no broker log in {self.data_dir})"
        tail = "\n".join(text.splitlines()[-lines:])
        return f"--- {self.data_dir}/noida.log (last {lines} lines) ---\n{tail}"


def _clean(text: str) -> str:
    return "\n".join(line for line in text.splitlines() if _GLIBC_NOISE not in line)


@pytest.fixture(scope="session")
def kafka_broker() -> Iterator[KafkaBroker]:
    """One broker for the whole test session; tests isolate themselves by topic name."""
    broker = KafkaBroker()
    try:
        broker.start()
        yield broker
    finally:
        broker.close()
        wait_for_reaping()
