"""Structured logs: JSON lines in production, console on a TTY, same shape for every logger.

A processor masks anything that looks like a NIK, No. KK or phone number wherever
it appears in an event (message or any field), not only in known fields.
"""

from __future__ import annotations

import contextlib
import logging
import re
import sys
from collections.abc import MutableMapping
from functools import partialmethod
from typing import Any

import structlog
from lokal import Samaran

from slrt.config import Settings

# 16 digits (NIK, No. KK), possibly split by spaces/dots/dashes, and Indonesian phones.
_LONG_ID = re.compile(r"(?<!\d)(\d{4})[\s.-]?(\d{4})[\s.-]?(\d{4})[\s.-]?(\d{4})(?!\d)")
_PHONE = re.compile(r"(?<![\d+])(?:\+62|62|0)8\d{1,2}[\s.-]?\d{3,4}[\s.-]?\d{3,5}(?!\d)")


# Something that could be a NIK, No. KK or phone: 9+ characters of digits and separators,
# not inside a longer number or a dashed id (so UUIDs and request ids cost nothing).
#: A Kemendagri region code (province, kabupaten/kota, kecamatan, desa): at most ten
#: digits in fixed dotted groups, so never a NIK, No. KK or phone number. Most log lines
#: carry one (the actor's region), and it would otherwise send each line through the
#: detector.
_REGION_CODE = re.compile(r"\d{2}(?:\.\d{2}(?:\.\d{2}(?:\.\d{4})?)?)?")
_CANDIDATE = re.compile(r"(?<![\d-])\+?\d[\d\s.-]{7,}\d(?!\d)")
#: An IPv4 address (each part at most 255): uvicorn's access line carries the client's,
#: and it is a candidate above. Sent through the detector, it cost ~0.5 ms per request,
#: more than the command itself (bench/README.md, eighth session).
_OCTET = r"(?:25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)"
_IPV4 = re.compile(rf"{_OCTET}(?:\.{_OCTET}){{3}}")
#: A UUID (aggregate, proposal, complaint ids): its hex groups often hold a run of
#: digits and dashes that `_CANDIDATE` takes, which sent about one command line in five
#: through the detector (bench/README.md, ninth session). UUIDs are left out of the
#: search for candidates; the rest of the text is searched as before.
_UUID = re.compile(r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}")
#: `_CANDIDATE` without its look-arounds. Every candidate, before or after the UUIDs are
#: taken out (that only removes characters), is such a run of the text, so text without
#: one is returned at once: one search for most fields (names, roles, outcomes) instead
#: of three and a list.
_RUN = re.compile(r"\d[\d\s.-]{7,}\d")


def mask_text(text: str) -> str:
    """Masks NIK, No. KK and phone numbers in free text.

    lokal-id's detector (made for Indonesian identifiers and their many spellings) runs
    only on text with a long run of digits, since it costs about half a millisecond; the
    regular expressions are a cheap backstop for anything it leaves.
    """
    if _RUN.search(text) is None or _REGION_CODE.fullmatch(text):
        return text
    candidates = [m.group() for m in _CANDIDATE.finditer(_UUID.sub("/", text))]
    if not candidates:
        return text
    if not all(_IPV4.fullmatch(c) for c in candidates):
        text = Samaran(mode="partial", types=["NIK", "KK", "PHONE"]).mask(text).text
    text = _LONG_ID.sub(lambda m: f"{m.group(1)}********{m.group(4)}", text)
    return _PHONE.sub(lambda m: m.group(0)[:4] + "****" + m.group(0)[-3:], text)


def _mask(value: Any) -> Any:
    if isinstance(value, str):
        return mask_text(value)
    if isinstance(value, dict):
        return {k: _mask(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return type(value)(_mask(v) for v in value)
    return value


#: Fields the logging itself adds: never personal data. (An ISO timestamp looks like a
#: candidate to `_CANDIDATE`, and sent every log line through the detector: ~0.5 ms.)
_OWN_FIELDS = frozenset({"timestamp", "level", "logger"})


def mask_personal_data(
    _logger: Any, _method: str, event_dict: MutableMapping[str, Any]
) -> MutableMapping[str, Any]:
    for key, value in list(event_dict.items()):
        if key not in _OWN_FIELDS:
            event_dict[key] = _mask(value)
    return event_dict


def cache_loggers() -> None:
    """For a serving process, whose logging is configured once at start: each logger
    binds the configuration on its first line instead of on every line (the lazy
    proxies cost ~2 % of a command's CPU). Not for a process that reconfigures logging
    later (tests capturing logs)."""
    structlog.configure(cache_logger_on_first_use=True)


class LevelBoundLogger(structlog.stdlib.BoundLogger):
    """structlog's standard-library bound logger, except that a line below its logger's
    level is dropped before its event dict is built (`filter_by_level` drops it only
    after the context is copied and merged: ~1.5 % of a registration's CPU at WARNING,
    for the one INFO line each command logs; bench/README.md, twenty-second session)."""

    def _proxy_to_logger(
        self, method_name: str, event: str | None = None, *event_args: str, **event_kw: Any
    ) -> Any:
        level = structlog.stdlib.NAME_TO_LEVEL.get(method_name)
        if level is not None and not self._logger.isEnabledFor(level):
            return None
        return super()._proxy_to_logger(method_name, event, *event_args, **event_kw)


class LineHandler(logging.StreamHandler):
    """The root handler `configure_logging` installs: the standard library's records
    through `ProcessorFormatter`, and SLRT's own lines, already rendered, straight to
    its stream (`LineWriter`)."""

    def write_line(self, line: str, level: int, name: str) -> None:
        """As `emit` writes a formatted record: under the lock, flushed, and a failure
        (a closed stream) reported by `handleError`, never raised to the caller."""
        try:
            with self.lock or contextlib.nullcontext():
                self.stream.write(line + self.terminator)
                self.flush()
        except Exception:
            self.handleError(_record(line, level, name))


class LineWriter:
    """The logger behind SLRT's own structlog loggers: the line structlog rendered is
    written by the root's `LineHandler`, without building a `LogRecord` and formatting
    it a second time through `ProcessorFormatter` (that was about half of what logging
    cost a command at INFO, bench/README.md, fourteenth session). The handler is looked
    up on each line, so a logger cached before logging was configured again writes
    where the new configuration says; without a `LineHandler` (logging configured by
    someone else) the line goes to the standard library as a record. Levels are the
    standard library's, so `SLRT_LOG_LEVEL` and per-logger levels apply alike."""

    def __init__(self, name: str = "slrt") -> None:
        self.name = name
        self._std = logging.getLogger(name)

    @property
    def disabled(self) -> bool:
        return self._std.disabled

    def isEnabledFor(self, level: int) -> bool:
        return self._std.isEnabledFor(level)

    def getEffectiveLevel(self) -> int:
        return self._std.getEffectiveLevel()

    def _write(self, level: int, line: str, *_args: Any, **_kwargs: Any) -> None:
        for handler in logging.getLogger().handlers:
            if isinstance(handler, LineHandler):
                handler.write_line(line, level, self.name)
                return
        self._std.handle(_record(line, level, self.name))

    debug = partialmethod(_write, logging.DEBUG)
    info = msg = partialmethod(_write, logging.INFO)
    warning = warn = partialmethod(_write, logging.WARNING)
    error = exception = partialmethod(_write, logging.ERROR)
    critical = fatal = partialmethod(_write, logging.CRITICAL)


def _record(line: str, level: int, name: str) -> logging.LogRecord:
    return logging.LogRecord(name, level, "", 0, line, None, None)


def configure_logging(settings: Settings) -> None:
    # What the standard library would otherwise look up for every record, and no line
    # here shows: the caller's source line, thread, process and process name (the
    # logging HOWTO's "Optimization"; ~10 % of a command's two log lines).
    logging._srcfile = None
    logging.logThreads = False
    logging.logProcesses = False
    logging.logMultiprocessing = False
    json_lines = settings.log_format == "json" or (
        settings.log_format == "auto" and not sys.stderr.isatty()
    )
    shared: list[Any] = [
        structlog.contextvars.merge_contextvars,
        structlog.stdlib.add_log_level,
        structlog.stdlib.add_logger_name,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        structlog.processors.format_exc_info,
        mask_personal_data,
    ]
    renderer: Any = (
        structlog.processors.JSONRenderer() if json_lines else structlog.dev.ConsoleRenderer()
    )
    handler = LineHandler()
    structlog.configure(
        # Lines below the level are dropped before any processor (masking) runs; the
        # rest are rendered here and written to the handler's stream by LineWriter.
        processors=[structlog.stdlib.filter_by_level, *shared, renderer],
        logger_factory=LineWriter,
        wrapper_class=LevelBoundLogger,
        cache_logger_on_first_use=False,
    )
    # The standard library's records (uvicorn, the libraries) through the same chain.
    handler.setFormatter(
        structlog.stdlib.ProcessorFormatter(
            foreign_pre_chain=[structlog.stdlib.ExtraAdder(), *shared],
            processors=[structlog.stdlib.ProcessorFormatter.remove_processors_meta, renderer],
        )
    )
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(settings.log_level.upper())
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access"):
        logging.getLogger(name).handlers[:] = []
        logging.getLogger(name).propagate = True
