"""Logs never carry a full NIK, No. KK or phone number."""

from __future__ import annotations

import json
import logging
import re

import pytest
import structlog

from slrt.logging import configure_logging, mask_text
from tests.api.conftest import Api
from tests.api.test_proposals_api import PROPOSALS, approve, verify
from tests.builders import FRONT_OFFICE, household


@pytest.mark.parametrize(
    "text",
    [
        "NIK 6474011508800001",
        "no kk: 6474-0101-0120-0001",
        "hp 0812-3456-7890",
        "wa +62 812 3456 7890",
    ],
)
def test_identifiers_are_masked_in_free_text(text: str) -> None:
    masked = mask_text(text)
    digits = re.sub(r"\D", "", masked)
    assert "*" in masked
    assert len(digits) <= 8


@pytest.mark.parametrize("code", ["64", "64.74", "64.74.01", "64.74.01.1001"])
def test_a_region_code_on_its_own_is_left_as_it_is(code: str) -> None:
    assert mask_text(code) == code
    beside_a_nik = mask_text(f"region {code} nik 6474011508800001")
    assert "6474011508800001" not in beside_a_nik and code in beside_a_nik


def test_a_full_scenario_logs_no_full_nik(api: Api, capsys: pytest.CaptureFixture[str]) -> None:
    configure_logging(api.runtime.settings.model_copy(update={"log_format": "json"}))
    try:
        data = household(members=3)
        identifiers = [m["nik"] for m in data["members"]] + [data["no_kk"]]
        answer = api.post(PROPOSALS, FRONT_OFFICE, {"kind": "register", "household": data})
        proposal_id = answer.json()["id"]
        approve(api, proposal_id)
        verify(api, proposal_id)
        api.runtime.catch_up()
        api.get(f"/api/v1/households?q={identifiers[0]}", FRONT_OFFICE)
        bad = dict(data, members=[{**data["members"][0], "sex": "P"}])
        api.post(PROPOSALS, FRONT_OFFICE, {"kind": "register", "household": bad})
        # Anything that logs personal data by mistake, through structlog or stdlib logging:
        structlog.get_logger("test").warning("careless", note=f"warga NIK {identifiers[1]}")
        logging.getLogger("eventsourcing").warning("careless %s", identifiers[2])

        output = capsys.readouterr()
        logs = output.out + output.err
        assert "careless" in logs and '"command"' in logs
        for identifier in identifiers:
            assert identifier not in logs
    finally:
        logging.getLogger().handlers[:] = []  # they write to capsys's stream, closed next
        structlog.reset_defaults()


def test_the_logs_own_fields_skip_the_detector_and_the_rest_is_masked() -> None:
    from slrt.logging import mask_personal_data

    line = mask_personal_data(
        None,
        "info",
        {
            "timestamp": "2026-11-23T22:32:10.615989Z",
            "level": "info",
            "event": "NIK 6474010301500001 dicek",
            "phone": "0812-3456-7890",
        },
    )
    assert line["timestamp"] == "2026-11-23T22:32:10.615989Z"
    assert "6474010301500001" not in line["event"] and "3456-7890" not in line["phone"]


@pytest.mark.usefixtures("no_detector")
def test_the_access_line_skips_the_detector_and_keeps_the_client_address() -> None:
    # uvicorn's access line carries the client's address, which looks like a candidate;
    # the detector costs ~0.5 ms, more than a command.
    line = '10.20.255.7:41234 - "POST /api/v1/proposals HTTP/1.1" 201'
    assert mask_text(line) == line


@pytest.mark.parametrize(
    "text",
    [
        "10.20.255.7:41234 - hp 0812-3456-7890",
        "192.168.1.20 nik 6474011508800001",
        "hp 081.234.567.890",  # dotted like an address, but not one (567 > 255)
        "nik 6474.0115.0880.0001",
    ],
)
def test_an_address_beside_an_identifier_does_not_save_the_identifier(text: str) -> None:
    masked = mask_text(text)
    assert "*" in masked
    assert "3456-7890" not in masked and "15088000" not in masked.replace(".", "")


#: UUIDs whose hex groups hold long runs of digits and dashes, like many random ids.
DIGIT_HEAVY_UUIDS = [
    "5f1c2d6e-0d7b-4a3b-9a51-201012345678",
    "1234abcd-5678-4901-8234-5678abcdef01",
    "a1234567-8901-4234-8678-90123456789b",
]


@pytest.mark.usefixtures("no_detector")
@pytest.mark.parametrize("uuid", DIGIT_HEAVY_UUIDS)
def test_a_uuid_skips_the_detector(uuid: str) -> None:
    line = f"command ok aggregate_id={uuid} version=3"
    assert mask_text(line) == line
    assert mask_text(uuid) == uuid


@pytest.mark.parametrize("uuid", DIGIT_HEAVY_UUIDS)
def test_an_identifier_beside_a_uuid_is_still_masked(uuid: str) -> None:
    for text in (f"{uuid} nik 6474011508800001", f"hp 0812-3456-7890 for {uuid}"):
        masked = mask_text(text)
        assert "6474011508800001" not in masked and "3456-7890" not in masked


def test_structlog_lines_are_written_whole_at_the_standard_librarys_levels(
    capsys: pytest.CaptureFixture[str],
) -> None:
    from concurrent.futures import ThreadPoolExecutor

    from slrt.config import Settings

    configure_logging(Settings(_env_file=None, log_format="json", log_level="INFO"))
    quiet = logging.getLogger("slrt.quiet")
    try:
        quiet.setLevel(logging.WARNING)
        log = structlog.get_logger("slrt.loud")
        log.debug("below the level")
        structlog.get_logger("slrt.quiet").info("below this logger's level")
        structlog.get_logger("slrt.quiet").warning("at this logger's level")

        def write(n: int) -> None:
            for i in range(200):
                log.info("line", thread=n, i=i, payload="x" * 500)

        with ThreadPoolExecutor(4) as pool:
            list(pool.map(write, range(4)))

        lines = capsys.readouterr().err.splitlines()
        parsed = [json.loads(line) for line in lines]  # every line whole
        assert [p["event"] for p in parsed[:1]] == ["at this logger's level"]
        assert sum(p["event"] == "line" for p in parsed) == 800 == len(parsed) - 1
        assert {p["logger"] for p in parsed} == {"slrt.quiet", "slrt.loud"}
    finally:
        quiet.setLevel(logging.NOTSET)
        logging.getLogger().handlers[:] = []
        structlog.reset_defaults()


def test_a_logger_cached_before_logging_is_configured_again_writes_where_it_says_now(
    capsys: pytest.CaptureFixture[str],
) -> None:
    import io

    from slrt.config import Settings
    from slrt.logging import cache_loggers

    settings = Settings(_env_file=None, log_format="json", log_level="INFO")
    try:
        configure_logging(settings)
        cache_loggers()
        log = structlog.get_logger("slrt.cached")
        log.info("first")
        first = logging.getLogger().handlers[0]
        first.stream = closed = io.StringIO()
        closed.close()  # as a test's capture stream once the test is over
        log.warning("to a closed stream")  # reported by the handler, not raised
        assert "Logging error" in capsys.readouterr().err

        configure_logging(settings)  # a new handler, on the stream of now
        log.info("second")
        assert [json.loads(line)["event"] for line in capsys.readouterr().err.splitlines()] == [
            "second"
        ]
    finally:
        logging.getLogger().handlers[:] = []
        structlog.reset_defaults()


def test_a_line_below_the_level_reaches_no_processor(
    capsys: pytest.CaptureFixture[str],
) -> None:
    from slrt.config import Settings

    configure_logging(Settings(_env_file=None, log_format="json", log_level="WARNING"))
    seen: list[str] = []

    def spy(_logger: object, _method: str, event_dict: dict[str, object]) -> dict[str, object]:
        seen.append(str(event_dict["event"]))
        return event_dict

    processors = structlog.get_config()["processors"]
    structlog.configure(processors=[spy, *processors])
    try:
        log = structlog.get_logger("slrt.level")
        log.info("below the level", nik="6474011508800001")
        log.debug("below it too")
        log.warning("at the level")
        log.error("above it")
        assert seen == ["at the level", "above it"]
        written = [json.loads(line)["event"] for line in capsys.readouterr().err.splitlines()]
        assert written == ["at the level", "above it"]
    finally:
        logging.getLogger().handlers[:] = []
        structlog.reset_defaults()
