"""slrt.api.http: an answer leaves in one write; nothing is lost, reordered or sent
after the connection is closed."""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Callable, Coroutine
from typing import Any

import pytest
import uvicorn
from uvicorn.server import ServerState

from slrt.api.http import CoalescingTransport, HttpProtocol
from slrt.config import Settings


class RecordingTransport(asyncio.Transport):
    def __init__(self) -> None:
        super().__init__()
        self.writes: list[bytes] = []
        self.closed = False
        self.aborted = False
        self.paused = False

    def write(self, data: Any) -> None:
        assert not self.closed, "written after close"
        self.writes.append(bytes(data))

    def close(self) -> None:
        self.closed = True

    def abort(self) -> None:
        self.aborted = True
        self.closed = True

    def is_closing(self) -> bool:
        return self.closed

    def get_write_buffer_size(self) -> int:
        return 7

    def pause_reading(self) -> None:
        self.paused = True

    def resume_reading(self) -> None:
        self.paused = False

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return {"peername": ("127.0.0.1", 50000), "sockname": ("127.0.0.1", 8000)}.get(
            name, default
        )


def in_loop(test: Callable[..., Coroutine[Any, Any, None]]) -> Callable[..., None]:
    @functools.wraps(test)
    def run(*args: Any, **kwargs: Any) -> None:
        asyncio.run(test(*args, **kwargs))

    return run


async def one_turn() -> None:
    await asyncio.sleep(0)


@in_loop
async def test_writes_in_one_turn_leave_as_one_write_in_order() -> None:
    inner = RecordingTransport()
    transport = CoalescingTransport(inner, asyncio.get_running_loop())
    transport.write(b"HTTP/1.1 200 OK\r\n\r\n")
    transport.write(bytearray(b"ab"))
    transport.writelines([memoryview(b"c"), b"", b"d"])
    assert inner.writes == []
    assert transport.get_write_buffer_size() == 7 + len(b"HTTP/1.1 200 OK\r\n\r\nabcd")
    await one_turn()
    assert inner.writes == [b"HTTP/1.1 200 OK\r\n\r\nabcd"]
    transport.write(b"next")
    await one_turn()
    assert inner.writes[1:] == [b"next"]


@in_loop
async def test_close_sends_what_is_pending_first() -> None:
    inner = RecordingTransport()
    transport = CoalescingTransport(inner, asyncio.get_running_loop())
    transport.write(b"head")
    transport.write(b"body")
    transport.close()
    assert inner.writes == [b"headbody"]
    assert inner.closed
    await one_turn()  # the scheduled flush finds nothing left, and writes nothing
    assert inner.writes == [b"headbody"]


@in_loop
async def test_nothing_is_written_once_the_connection_is_closing() -> None:
    inner = RecordingTransport()
    transport = CoalescingTransport(inner, asyncio.get_running_loop())
    transport.write(b"late")
    inner.close()  # the peer went away meanwhile
    await one_turn()
    assert inner.writes == []


@in_loop
async def test_abort_drops_what_is_pending() -> None:
    inner = RecordingTransport()
    transport = CoalescingTransport(inner, asyncio.get_running_loop())
    transport.write(b"never")
    transport.abort()
    await one_turn()
    assert inner.aborted
    assert inner.writes == []


@in_loop
async def test_the_rest_is_the_wrapped_transports() -> None:
    inner = RecordingTransport()
    transport = CoalescingTransport(inner, asyncio.get_running_loop())
    transport.pause_reading()
    assert inner.paused
    assert transport.get_extra_info("peername") == ("127.0.0.1", 50000)
    assert not transport.is_closing()


async def hello(scope: dict[str, Any], receive: Any, send: Any) -> None:
    assert scope["type"] == "http"
    await send(
        {
            "type": "http.response.start",
            "status": 201,
            "headers": [(b"content-type", b"application/json"), (b"content-length", b"11")],
        }
    )
    await send({"type": "http.response.body", "body": b'{"id":"x1"}'})


def served(protocol: HttpProtocol, transport: RecordingTransport, request: bytes) -> None:
    protocol.connection_made(transport)
    protocol.data_received(request)


@pytest.mark.parametrize("connection", [b"keep-alive", b"close"])
@in_loop
async def test_uvicorn_sends_each_answer_in_one_write(connection: bytes) -> None:
    config = uvicorn.Config(hello, log_config=None, lifespan="off")
    protocol = HttpProtocol(config, ServerState(), {}, _loop=asyncio.get_running_loop())
    inner = RecordingTransport()
    request = b"POST /x HTTP/1.1\r\nHost: t\r\nContent-Length: 0\r\nConnection: "
    served(protocol, inner, request + connection + b"\r\n\r\n")
    for _ in range(20):
        await one_turn()
        if inner.writes:
            break
    assert len(inner.writes) == 1
    head, _, body = inner.writes[0].partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 201 Created\r\n")
    assert b"content-length: 11" in head
    assert body == b'{"id":"x1"}'
    assert inner.closed == (connection == b"close")


def test_slrt_serve_uses_it(monkeypatch: pytest.MonkeyPatch) -> None:
    """Both ways `slrt serve` starts uvicorn (one process, several) pass HttpProtocol."""
    import uvicorn.supervisors

    from slrt import cli

    seen: dict[str, Any] = {}
    monkeypatch.setattr(uvicorn, "run", lambda app, **options: seen.update(one=options["http"]))

    class Multiprocess:
        def __init__(self, config: uvicorn.Config, sockets: list[Any]) -> None:
            seen["several"] = config.http
            for sock in sockets:
                sock.close()

        def run(self) -> None:
            pass

    monkeypatch.setattr(uvicorn.supervisors, "Multiprocess", Multiprocess)
    monkeypatch.setattr("slrt.api.app.create_app", lambda *args, **kwargs: object())
    args = cli.parser().parse_args(["serve", "--no-workers", "--port", "0"])
    cli._serve(Settings(_env_file=None), args)
    cli.serve_in_processes("slrt.api.app:api_process", "127.0.0.1", 0, 2)
    assert seen == {"one": HttpProtocol, "several": HttpProtocol}
