"""Demo data: six months of a kabupaten/kota's SLRT work, replayed through the real commands.

Nothing is written behind the application's back. Every household reaches the
registry the way a real one does: a front office submits a register proposal
inside the DTKS window, the musyawarah desa approves it with a berita acara, and
Dinsos verifies it. So the demo data obeys the same rules as real use (access,
submission windows, berita acara) and the read models are built from real events.

The whole timeline is planned first, from one seeded random generator, as a list
of steps (time, action). The steps then run in time order against a clock the
demo controls, so every event carries the time it would have happened. Steps
that fall after "now" are not run: they are the proposals still pending.
"""

from __future__ import annotations

import hashlib
import math
import random
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from enum import Enum
from functools import lru_cache
from typing import Any
from uuid import UUID
from zoneinfo import ZoneInfo

from eventsourcing.utils import get_topic
from lokal.holidays import HOLIDAY_YEARS, is_working_day
from lokal.wilayah import list_wilayah

from slrt.application import SlrtApplication
from slrt.config import Settings
from slrt.domain.common import Actor, DomainError, InvalidInput, Role
from slrt.domain.household import deprivation_count
from slrt.domain.proposal import ProposalKind, ProposalStatus
from slrt.domain.reference import (
    POOR_HOUSEHOLD_THRESHOLD,
    Indicator,
    Programme,
    Relationship,
    RemovalReason,
    region_name,
    region_timezone,
    require_region,
)
from slrt.domain.scoring import DEFAULT_HOUSEHOLD_SIZE_WEIGHT, DEFAULT_INTERCEPT, DEFAULT_WEIGHTS
from slrt.domain.sla import SlaPolicy
from slrt.domain.user import User
from slrt.domain.windows import SubmissionPolicy
from slrt.runtime import build_runtime

TIMELINE = timedelta(days=183)
MODEL_V2_BEFORE_NOW = timedelta(days=12)

# -- names and places ------------------------------------------------------------

MALE_NAMES = (
    "Ahmad", "Budi", "Agus", "Joko", "Slamet", "Rudi", "Hendra", "Andi", "Muhammad", "Rahmat",
    "Dedi", "Eko", "Yusuf", "Arif", "Bambang", "Hasan", "Ridwan", "Fajar", "Syamsul", "Irfan",
    "Wahyu", "Darmawan", "Sabri", "Jumadi", "Anwar", "Herman", "Rizky", "Dimas", "Bayu", "Iwan",
)  # fmt: skip
MALE_SECOND_NAMES = (
    "Hidayat", "Santoso", "Prasetyo", "Wijaya", "Kurniawan", "Setiawan", "Gunawan", "Saputra",
    "Firmansyah", "Ramadhan", "Nugroho", "Syahputra", "Maulana", "Hakim", "Pratama",
)  # fmt: skip
FEMALE_NAMES = (
    "Siti", "Sri", "Nur", "Dewi", "Rina", "Wati", "Ani", "Yuni", "Fitri", "Aisyah",
    "Endang", "Lestari", "Nurhayati", "Hasnah", "Kartini", "Indah", "Putri", "Ratna", "Sulastri",
    "Halimah", "Rosmini", "Jumiati", "Suryani", "Marlina", "Nurul", "Ayu", "Dian", "Rahma",
)  # fmt: skip
FEMALE_SECOND_NAMES = (
    "Wulandari", "Handayani", "Rahayu", "Susanti", "Anggraini", "Puspita", "Safitri",
    "Maharani", "Amelia", "Kusuma", "Permata", "Sari", "Novitasari", "Aprilia", "Utami",
)  # fmt: skip
STREETS = (
    "Merdeka", "Pattimura", "Ahmad Yani", "Sudirman", "Diponegoro", "Imam Bonjol", "Kartini",
    "Cut Nyak Dien", "Pelabuhan", "Awang Long", "MT Haryono", "Gajah Mada", "Hasanuddin",
    "Sultan Agung", "Melati", "Mawar", "Kenanga", "Cendana", "Flamboyan", "Anggrek", "Nelayan",
    "Poros", "Pisang", "Kelapa", "Rambutan", "Durian", "Sejahtera", "Gotong Royong",
)  # fmt: skip

#: How far along the latent poverty scale (0 well-off … 1 poorest) each deprivation
#: becomes likely. Non-electric lighting is rare even for the poor; poor diet and
#: no savings are common well above the poverty line.
DEPRIVATION_THRESHOLDS: dict[Indicator, float] = {
    Indicator.FLOOR_AREA: 0.55,
    Indicator.FLOOR_MATERIAL: 0.55,
    Indicator.WALL_MATERIAL: 0.50,
    Indicator.SANITATION: 0.45,
    Indicator.LIGHTING: 0.85,
    Indicator.DRINKING_WATER: 0.50,
    Indicator.COOKING_FUEL: 0.60,
    Indicator.PROTEIN: 0.30,
    Indicator.CLOTHING: 0.35,
    Indicator.MEALS: 0.65,
    Indicator.MEDICAL_CARE: 0.40,
    Indicator.HEAD_OCCUPATION: 0.35,
    Indicator.HEAD_EDUCATION: 0.35,
    Indicator.SAVINGS: 0.30,
}
#: Beta(2, 2.4) with a slope of 8 puts about 36% of households at 9+ deprivations.
POVERTY_BETA = (2.0, 2.4)
DEPRIVATION_SLOPE = 8.0

#: Relative weights of the programmes a poor household is proposed for.
PROGRAMME_WEIGHTS: dict[Programme, float] = {
    Programme.PBI_JK: 0.30,
    Programme.BPNT: 0.25,
    Programme.PKH: 0.20,
    Programme.KIP: 0.10,
    Programme.KKS: 0.10,
    Programme.RASTRA: 0.05,
}

VILLAGE_REJECTION_REASONS = (
    "Musyawarah desa menilai keluarga mampu",
    "Data rumah tidak sesuai hasil kunjungan lapangan",
    "Keluarga sudah terdaftar di desa lain",
)
DINSOS_RETURN_REASONS = (
    "NIK kepala keluarga tidak cocok dengan data Dukcapil",
    "Foto rumah belum dilampirkan",
    "Berita acara belum ditandatangani lengkap",
)
WITHDRAWAL_REASONS = (
    "Keluarga membatalkan usulan",
    "Usulan ganda, sudah diusulkan oleh RT",
    "Keluarga pindah sebelum musyawarah",
)


# -- the clock ---------------------------------------------------------------------


class DemoClock:
    """The application's clock, set by the demo before each command so that every
    event is stamped with the time it happens on the demo's timeline."""

    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


# -- places and staff --------------------------------------------------------------


@dataclass(frozen=True)
class Desa:
    code: str
    name: str

    @property
    def kecamatan_digits(self) -> str:
        """The six digits every NIK and No. KK issued in this kecamatan starts with."""
        return self.code[:8].replace(".", "")


def desas_of(region: str) -> list[Desa]:
    """The desa/kelurahan of a kabupaten/kota, through its kecamatan, from Kemendagri's list.
    Anything but a known kabupaten/kota code is refused with a ValueError that says why."""
    try:
        require_region(region)
    except InvalidInput as error:
        raise ValueError(error.detail) from None
    if len(region) != 5:
        msg = f"region must be a kabupaten/kota code NN.NN (e.g. 64.74), not {region}"
        raise ValueError(msg)
    desas = [
        Desa(code=desa.code, name=desa.name)
        for kecamatan in list_wilayah(region)
        for desa in list_wilayah(kecamatan.code)
    ]
    if not desas:
        msg = f"Kemendagri lists no desa/kelurahan in {region}"
        raise ValueError(msg)
    return desas


@dataclass(frozen=True)
class Staff:
    """Who acts where: each command needs the role and region that `authorize` expects."""

    kabupaten: str

    @property
    def admin(self) -> Actor:
        return Actor(user_id="demo-admin", role=Role.ADMIN, region="ID")

    @property
    def verifier(self) -> Actor:
        return Actor(
            user_id=f"demo-dinsos-{self.kabupaten}",
            role=Role.DINSOS_VERIFIER,
            region=self.kabupaten,
        )

    @staticmethod
    def front_office(desa: Desa) -> Actor:
        return Actor(user_id=f"demo-fo-{desa.code}", role=Role.FRONT_OFFICE, region=desa.code)

    @staticmethod
    def village_head(desa: Desa) -> Actor:
        return Actor(user_id=f"demo-kades-{desa.code}", role=Role.VILLAGE_HEAD, region=desa.code)


# -- synthetic families ------------------------------------------------------------


@dataclass(frozen=True)
class Person:
    """A household member; the birth date is kept to know ages (PKH, KIP, a newborn)."""

    nik: str
    name: str
    relationship: Relationship
    sex: str
    birth_date: date

    def age_on(self, day: date) -> int:
        before_birthday = (day.month, day.day) < (self.birth_date.month, self.birth_date.day)
        return day.year - self.birth_date.year - before_birthday

    def as_member(self) -> dict[str, str]:
        return {
            "nik": self.nik,
            "name": self.name,
            "relationship": self.relationship.value,
            "sex": self.sex,
        }


@dataclass
class Family:
    """A synthetic household. `poverty` is the latent welfare (0 well-off … 1 poorest)
    that its indicators are drawn from; the registry never sees it."""

    desa: Desa
    poverty: float
    people: list[Person]
    address: str
    rt: str
    rw: str
    no_kk: str
    indicators: dict[str, bool]
    pmks: list[str]

    @property
    def deprivations(self) -> int:
        return deprivation_count(self.indicators)

    @property
    def head(self) -> Person:
        return next(p for p in self.people if p.relationship is Relationship.HEAD)

    def as_household(self) -> dict[str, Any]:
        return {
            "region": self.desa.code,
            "address": self.address,
            "rt": self.rt,
            "rw": self.rw,
            "no_kk": self.no_kk,
            "members": [p.as_member() for p in self.people],
            "indicators": dict(self.indicators),
            "pmks": list(self.pmks),
        }


class FamilyFactory:
    """Draws plausible families. NIKs and No. KKs are unique across the whole data set
    because their serial counts up per kecamatan and date."""

    def __init__(self, rng: random.Random) -> None:
        self.rng = rng
        self._serials: Counter[str] = Counter()

    def _serial_number(self, prefix: str) -> str:
        self._serials[prefix] += 1
        if self._serials[prefix] > 9999:
            msg = f"more than 9999 identifiers issued for {prefix}"
            raise OverflowError(msg)
        return f"{prefix}{self._serials[prefix]:04d}"

    def nik(self, desa: Desa, sex: str, birth_date: date) -> str:
        """Kecamatan code, DDMMYY with 40 added to the day for women, then a serial."""
        day = birth_date.day + (40 if sex == "P" else 0)
        return self._serial_number(f"{desa.kecamatan_digits}{day:02d}{birth_date:%m%y}")

    def no_kk(self, desa: Desa, issued_on: date) -> str:
        return self._serial_number(f"{desa.kecamatan_digits}{issued_on:%d%m%y}")

    def name(self, sex: str) -> str:
        first, second = (
            (MALE_NAMES, MALE_SECOND_NAMES) if sex == "L" else (FEMALE_NAMES, FEMALE_SECOND_NAMES)
        )
        given = self.rng.choice(first)
        return f"{given} {self.rng.choice(second)}" if self.rng.random() < 0.6 else given

    def birth_date(self, age: int, on: date) -> date:
        """A birth date that makes someone `age` years old on `on`."""
        return on - timedelta(days=round(age * 365.25) + self.rng.randrange(365))

    def person(self, desa: Desa, relationship: Relationship, sex: str, born: date) -> Person:
        return Person(
            nik=self.nik(desa, sex, born),
            name=self.name(sex),
            relationship=relationship,
            sex=sex,
            birth_date=born,
        )

    def family(self, desa: Desa, on: date) -> Family:
        poverty = self.rng.betavariate(*POVERTY_BETA)
        people = self._people(desa, poverty, on)
        indicators = self._indicators(poverty)
        family = Family(
            desa=desa,
            poverty=poverty,
            people=people,
            address=f"Jl. {self.rng.choice(STREETS)} No. {self.rng.randint(1, 150)}",
            rt=f"{self.rng.randint(1, 15):03d}",
            rw=f"{self.rng.randint(1, 8):03d}",
            no_kk=self.no_kk(desa, on - timedelta(days=self.rng.randrange(30, 15 * 365))),
            indicators=indicators,
            pmks=[],
        )
        family.pmks = self._pmks(family, on)
        return family

    def _people(self, desa: Desa, poverty: float, on: date) -> list[Person]:
        """A head; usually a spouse; children, more in poorer families; sometimes a parent."""
        rng = self.rng
        head_age = rng.randint(22, 75)
        head_sex = "L" if rng.random() < 0.85 else "P"
        people = [self.person(desa, Relationship.HEAD, head_sex, self.birth_date(head_age, on))]
        mother_age = head_age
        if head_sex == "L" and rng.random() < (0.85 if head_age < 65 else 0.55):
            mother_age = max(18, head_age + rng.randint(-8, 2))
            born = self.birth_date(mother_age, on)
            people.append(self.person(desa, Relationship.SPOUSE, "P", born))
        # Children still at home: born when the mother was 18 to 45, and at most 25 now.
        youngest, eldest = max(0, mother_age - 45), min(25, mother_age - 18)
        children = min(rng.randint(0, 3) + round(poverty * rng.randint(0, 3)), 5)
        for _ in range(children if youngest <= eldest else 0):
            child_age = rng.randint(youngest, eldest)
            sex = rng.choice("LP")
            people.append(
                self.person(desa, Relationship.CHILD, sex, self.birth_date(child_age, on))
            )
        if head_age < 60 and len(people) < 8 and rng.random() < 0.1:
            parent_age = min(head_age + rng.randint(20, 30), 90)
            sex = "P" if rng.random() < 0.7 else "L"
            born = self.birth_date(parent_age, on)
            people.append(self.person(desa, Relationship.PARENT, sex, born))
        return people[:8]

    def _indicators(self, poverty: float) -> dict[str, bool]:
        """Each deprivation is likelier the poorer the family, from its own threshold."""
        return {
            indicator.value: self.rng.random()
            < 1 / (1 + math.exp(-DEPRIVATION_SLOPE * (poverty - threshold)))
            for indicator, threshold in DEPRIVATION_THRESHOLDS.items()
        }

    def _pmks(self, family: Family, on: date) -> list[str]:
        """A minority of families, mostly poor ones, fall in a PMKS category that fits them."""
        chance = 0.25 if family.deprivations >= POOR_HOUSEHOLD_THRESHOLD else 0.04
        if self.rng.random() >= chance:
            return []
        fitting = ["Fakir Miskin", "Penyandang Disabilitas", "Korban Bencana Alam", "Pemulung"]
        if any(p.age_on(on) >= 60 for p in family.people):
            fitting.append("Lanjut Usia Terlantar")
        if family.head.sex == "P":
            fitting.append("Perempuan Rawan Sosial Ekonomi")
        if any(p.age_on(on) < 5 for p in family.people):
            fitting.append("Anak Balita Terlantar")
        return [self.rng.choice(fitting)]

    def baby(self, family: Family, born: date) -> Person | None:
        """A newborn, if the family has a mother of child-bearing age."""
        mothers = [
            p
            for p in family.people
            if p.sex == "P"
            and p.relationship in (Relationship.HEAD, Relationship.SPOUSE)
            and 18 <= p.age_on(born) <= 42
        ]
        if not mothers:
            return None
        return self.person(family.desa, Relationship.CHILD, self.rng.choice("LP"), born)


# -- the calendar ------------------------------------------------------------------


@lru_cache(maxsize=4096)
def office_open(day: date) -> bool:
    """Offices close at weekends, and on national holidays and cuti bersama in the
    years whose SKB 3 Menteri calendar lokal-id carries."""
    if day.weekday() >= 5:
        return False
    return day.year not in HOLIDAY_YEARS or is_working_day(day)


@dataclass(frozen=True)
class Calendar:
    """Office days and hours in the region's own time zone, and the submission windows
    of the application's policy: a front office can only submit when a window is open."""

    tz: ZoneInfo
    policy: SubmissionPolicy

    def local_day(self, at: datetime) -> date:
        return at.astimezone(self.tz).date()

    def office_time(self, rng: random.Random, day: date) -> datetime:
        """Some minute between 08:00 and 15:30 local time, as UTC."""
        minute = rng.randrange(8 * 60, 15 * 60 + 30)
        local = datetime.combine(day, time(minute // 60, minute % 60), self.tz)
        return local.astimezone(UTC)

    @staticmethod
    def workday_from(day: date) -> date:
        while not office_open(day):
            day += timedelta(days=1)
        return day

    @staticmethod
    def workday_before(day: date) -> date:
        day -= timedelta(days=1)
        while not office_open(day):
            day -= timedelta(days=1)
        return day

    def later(self, rng: random.Random, after: datetime, min_days: int, max_days: int) -> datetime:
        """An office hour on the first workday `min_days`–`max_days` days after `after`."""
        day = self.local_day(after) + timedelta(days=rng.randint(min_days, max_days))
        return self.office_time(rng, self.workday_from(day))

    def accepts(self, kind: ProposalKind, programme: Programme | None, day: date) -> bool:
        """A workday on which every window that applies to this kind of proposal is open."""
        programme_code = programme.value if programme else None
        return office_open(day) and all(
            window.is_open_on(day)
            for window in self.policy.windows
            if window.applies_to(kind.value, programme_code)
        )

    def submission_days(
        self, kind: ProposalKind, programme: Programme | None, first: date, last: date
    ) -> list[date]:
        days = (first + timedelta(days=n) for n in range((last - first).days + 1))
        return [day for day in days if self.accepts(kind, programme, day)]

    def submission_time(
        self,
        rng: random.Random,
        kind: ProposalKind,
        programme: Programme | None,
        earliest: date,
    ) -> datetime:
        """An office hour on an open day within a month of `earliest`; every window
        opens at least once a month."""
        days = self.submission_days(kind, programme, earliest, earliest + timedelta(days=30))
        return self.office_time(rng, rng.choice(days))


# -- the plan ----------------------------------------------------------------------


class Fate(Enum):
    """How a proposal's path through the musyawarah and Dinsos ends, if time allows."""

    VERIFIED = "verified"
    REJECTED_AT_VILLAGE = "rejected at village"
    RETURNED_THEN_VERIFIED = "returned, then verified"
    RETURNED_THEN_WITHDRAWN = "returned, then withdrawn"
    WITHDRAWN = "withdrawn"


FATE_WEIGHTS: dict[Fate, float] = {
    Fate.VERIFIED: 0.88,
    Fate.REJECTED_AT_VILLAGE: 0.04,
    Fate.RETURNED_THEN_VERIFIED: 0.03,
    Fate.RETURNED_THEN_WITHDRAWN: 0.015,
    Fate.WITHDRAWN: 0.035,
}


@dataclass
class Case:
    """One proposal as the demo follows it. A follow-up (update, remove, enrol) names
    the register case that created its household."""

    kind: ProposalKind
    desa: Desa
    payload: dict[str, Any]
    note: str | None = None
    origin: Case | None = None
    proposal_id: UUID | None = None
    status: ProposalStatus | None = None
    household_id: UUID | None = None


@dataclass(order=True)
class Step:
    at: datetime
    seq: int
    run: Callable[[], None] = field(compare=False)
    what: str = field(compare=False)


class Desk:
    """The commands each step issues, as the right member of staff, at the clock's time."""

    def __init__(self, app: SlrtApplication, staff: Staff) -> None:
        self.app = app
        self.staff = staff
        self._berita_acara: dict[tuple[str, date], dict[str, str]] = {}
        self._musyawarah_count: Counter[tuple[str, int]] = Counter()

    def berita_acara(self, desa: Desa) -> dict[str, str]:
        """One musyawarah per desa and day: its decisions share one berita acara."""
        day = self.app.clock().astimezone(region_timezone(desa.code)).date()
        key = (desa.code, day)
        if key not in self._berita_acara:
            self._musyawarah_count[(desa.code, day.year)] += 1
            number = f"BA/{desa.code}/{self._musyawarah_count[(desa.code, day.year)]}/{day.year}"
            document = f"Berita acara musyawarah {desa.name} {number} {day.isoformat()}"
            self._berita_acara[key] = {
                "number": number,
                "date": day.isoformat(),
                "sha256": hashlib.sha256(document.encode()).hexdigest(),
            }
        return self._berita_acara[key]

    def household_of(self, case: Case) -> UUID:
        """The household a register case created; known once Dinsos verified it."""
        if case.household_id is None:
            assert case.proposal_id is not None
            case.household_id = self.app.get_proposal(case.proposal_id).household_id
        assert case.household_id is not None, "the register proposal is not applied yet"
        return case.household_id

    def _proposal(self, case: Case) -> UUID:
        assert case.proposal_id is not None, "the proposal was never submitted"
        return case.proposal_id

    def submit(self, case: Case) -> None:
        household_id = self.household_of(case.origin) if case.origin else None
        outcome = self.app.submit_proposal(
            actor=self.staff.front_office(case.desa),
            kind=case.kind.value,
            payload=case.payload,
            household_id=household_id,
            note=case.note,
        )
        case.proposal_id = outcome.id
        case.status = ProposalStatus.SUBMITTED

    def approve(self, case: Case) -> None:
        self.app.decide_at_village(
            actor=self.staff.village_head(case.desa),
            proposal_id=self._proposal(case),
            approve=True,
            berita_acara=self.berita_acara(case.desa),
        )
        case.status = ProposalStatus.VILLAGE_APPROVED

    def reject(self, case: Case, reason: str) -> None:
        self.app.decide_at_village(
            actor=self.staff.village_head(case.desa),
            proposal_id=self._proposal(case),
            approve=False,
            berita_acara=self.berita_acara(case.desa),
            reason=reason,
        )
        case.status = ProposalStatus.VILLAGE_REJECTED

    def verify(self, case: Case) -> None:
        """Dinsos verifies; the application applies the proposal in the same transaction."""
        self.app.decide_at_dinsos(
            actor=self.staff.verifier, proposal_id=self._proposal(case), verify=True
        )
        case.status = ProposalStatus.APPLIED

    def send_back(self, case: Case, reason: str) -> None:
        self.app.decide_at_dinsos(
            actor=self.staff.verifier, proposal_id=self._proposal(case), verify=False, reason=reason
        )
        case.status = ProposalStatus.RETURNED

    def withdraw(self, case: Case, reason: str) -> None:
        self.app.withdraw_proposal(
            actor=self.staff.front_office(case.desa),
            proposal_id=self._proposal(case),
            reason=reason,
        )
        case.status = ProposalStatus.WITHDRAWN

    def publish_model(self, *, weights: dict[str, float], size_weight: float, note: str) -> None:
        self.app.publish_scoring_model(
            actor=self.staff.admin,
            intercept=DEFAULT_INTERCEPT,
            weights=weights,
            household_size_weight=size_weight,
            note=note,
        )


class Planner:
    """Plans the timeline: register proposals in the DTKS windows, each proposal's path
    through the musyawarah and Dinsos, then updates, removals and enrolments of the
    households that were registered."""

    def __init__(
        self,
        rng: random.Random,
        desk: Desk,
        calendar: Calendar,
        *,
        start: datetime,
        now: datetime,
    ) -> None:
        self.rng = rng
        self.desk = desk
        self.calendar = calendar
        self.start = start
        self.now = now
        self.factory = FamilyFactory(rng)
        self.steps: list[Step] = []
        self.cases: list[Case] = []

    def add(self, at: datetime, what: str, run: Callable[[], None]) -> None:
        self.steps.append(Step(at=at, seq=len(self.steps), run=run, what=what))

    # -- the scoring model ---------------------------------------------------------

    def scoring_models(self) -> None:
        """Version 1 before the first proposal; version 2 near the end, so ranks move
        for a model change as well as for data changes."""
        v1 = {Indicator(k).value: w for k, w in DEFAULT_WEIGHTS.items()}
        v2 = {
            **v1,
            Indicator.SANITATION.value: v1[Indicator.SANITATION] + 1.0,
            Indicator.DRINKING_WATER.value: v1[Indicator.DRINKING_WATER] + 1.0,
            Indicator.FLOOR_AREA.value: v1[Indicator.FLOOR_AREA] - 1.0,
            Indicator.LIGHTING.value: v1[Indicator.LIGHTING] - 0.5,
        }
        calendar = self.calendar
        before_start = calendar.workday_before(calendar.local_day(self.start))
        near_the_end = calendar.workday_from(calendar.local_day(self.now - MODEL_V2_BEFORE_NOW))
        self.add(
            calendar.office_time(self.rng, before_start),
            "publish scoring model v1",
            lambda: self.desk.publish_model(
                weights=v1,
                size_weight=DEFAULT_HOUSEHOLD_SIZE_WEIGHT,
                note="Model awal: bobot PMT standar",
            ),
        )
        self.add(
            calendar.office_time(self.rng, near_the_end),
            "publish scoring model v2",
            lambda: self.desk.publish_model(
                weights=v2,
                size_weight=DEFAULT_HOUSEHOLD_SIZE_WEIGHT + 0.5,
                note="Kalibrasi ulang: sanitasi dan air minum lebih berat, luas lantai lebih "
                "ringan",
            ),
        )

    # -- one proposal's path -------------------------------------------------------

    def proposal(self, case: Case, submitted_at: datetime) -> datetime | None:
        """Plans the submission and the decisions after it; returns when the proposal
        is applied, or None if it never is."""
        rng, later, desk = self.rng, self.calendar.later, self.desk
        self.cases.append(case)
        label = f"{case.kind.value} proposal in {case.desa.code}"
        self.add(submitted_at, f"submit {label}", lambda: desk.submit(case))
        fate = rng.choices(list(FATE_WEIGHTS), weights=list(FATE_WEIGHTS.values()))[0]
        if fate is Fate.WITHDRAWN:
            reason = rng.choice(WITHDRAWAL_REASONS)
            at = later(rng, submitted_at, 1, 5)
            self.add(at, f"withdraw {label}", lambda: desk.withdraw(case, reason))
            return None
        approved_at = later(rng, submitted_at, 1, 10)
        if fate is Fate.REJECTED_AT_VILLAGE:
            reason = rng.choice(VILLAGE_REJECTION_REASONS)
            self.add(approved_at, f"reject {label}", lambda: desk.reject(case, reason))
            return None
        self.add(approved_at, f"approve {label}", lambda: desk.approve(case))
        decided_at = later(rng, approved_at, 2, 14)
        if fate is Fate.VERIFIED:
            self.add(decided_at, f"verify {label}", lambda: desk.verify(case))
            return decided_at
        reason = rng.choice(DINSOS_RETURN_REASONS)
        self.add(decided_at, f"return {label}", lambda: desk.send_back(case, reason))
        if fate is Fate.RETURNED_THEN_WITHDRAWN:
            why = rng.choice(WITHDRAWAL_REASONS)
            at = later(rng, decided_at, 2, 10)
            self.add(at, f"withdraw {label}", lambda: desk.withdraw(case, why))
            return None
        reapproved_at = later(rng, decided_at, 3, 15)
        self.add(reapproved_at, f"re-approve {label}", lambda: desk.approve(case))
        verified_at = later(rng, reapproved_at, 2, 14)
        self.add(verified_at, f"verify {label}", lambda: desk.verify(case))
        return verified_at

    # -- register proposals --------------------------------------------------------

    def registrations(self, desas: Sequence[Desa], households: int) -> None:
        """Spreads the register proposals over the DTKS windows of the timeline (up to
        yesterday, so each is submitted) and over the desa, some busier than others."""
        calendar = self.calendar
        yesterday = calendar.local_day(self.now) - timedelta(days=1)
        days = calendar.submission_days(
            ProposalKind.REGISTER, None, calendar.local_day(self.start), yesterday
        )
        if not days:
            msg = "no register window is open in the demo timeline"
            raise ValueError(msg)
        busyness = [self.rng.uniform(0.5, 1.5) for _ in desas]
        for desa in self.rng.choices(desas, weights=busyness, k=households):
            submitted_at = calendar.office_time(self.rng, self.rng.choice(days))
            family = self.factory.family(desa, calendar.local_day(submitted_at))
            case = Case(
                kind=ProposalKind.REGISTER, desa=desa, payload={"household": family.as_household()}
            )
            applied_at = self.proposal(case, submitted_at)
            if applied_at is not None:
                self.follow_ups(case, family, applied_at)

    # -- what happens to a registered household ------------------------------------

    def follow_ups(self, register: Case, family: Family, applied_at: datetime) -> None:
        """A few households are later removed; others have their data updated or are
        enrolled in programmes, the poorest most often. A removed household takes no
        further proposals, so removal excludes the rest."""
        if self.rng.random() < 0.03:
            self.removal(register, family, applied_at)
            return
        if self.rng.random() < 0.10:
            self.update(register, family, applied_at)
        self.enrolments(register, family, applied_at)

    def _follow_up(
        self,
        register: Case,
        kind: ProposalKind,
        payload: dict[str, Any],
        submitted_at: datetime,
        note: str | None = None,
    ) -> None:
        case = Case(kind=kind, desa=register.desa, payload=payload, note=note, origin=register)
        self.proposal(case, submitted_at)

    def _submission_after(
        self, applied_at: datetime, kind: ProposalKind, programme: Programme | None = None
    ) -> datetime:
        earliest = self.calendar.local_day(applied_at) + timedelta(days=self.rng.randint(3, 60))
        return self.calendar.submission_time(self.rng, kind, programme, earliest)

    def removal(self, register: Case, family: Family, applied_at: datetime) -> None:
        """Removal for one of the official reasons; the old are likelier to have died,
        the better-off to have become mampu."""
        submitted_at = self._submission_after(applied_at, ProposalKind.REMOVE)
        head_age = family.head.age_on(self.calendar.local_day(submitted_at))
        weights = {
            RemovalReason.WELL_OFF: 1.0 - family.poverty,
            RemovalReason.MOVED: 0.4,
            RemovalReason.DECEASED: 0.6 if head_age >= 65 and len(family.people) == 1 else 0.05,
        }
        reason = self.rng.choices(list(weights), weights=list(weights.values()))[0]
        self._follow_up(register, ProposalKind.REMOVE, {"reason": reason.value}, submitted_at)

    def update(self, register: Case, family: Family, applied_at: datetime) -> None:
        """One change in the household's life: electricity, LPG, lost work, a new baby
        or a move within the desa."""
        submitted_at = self._submission_after(applied_at, ProposalKind.UPDATE)
        changes: list[tuple[str, dict[str, Any]]] = []
        for indicator, now_deprived, note in (
            (Indicator.LIGHTING, False, "Sambungan listrik PLN sudah terpasang"),
            (Indicator.COOKING_FUEL, False, "Sudah memasak dengan LPG"),
            (Indicator.HEAD_OCCUPATION, True, "Kepala keluarga kehilangan pekerjaan"),
        ):
            if family.indicators[indicator] != now_deprived:
                indicators = {**family.indicators, indicator.value: now_deprived}
                changes.append((note, {"indicators": indicators}))
        submitted_on = self.calendar.local_day(submitted_at)
        since_registered = (submitted_on - self.calendar.local_day(applied_at)).days
        born = submitted_on - timedelta(days=self.rng.randint(1, min(since_registered, 60)))
        baby = self.factory.baby(family, born)
        if baby is not None and len(family.people) < 8:
            members = [p.as_member() for p in [*family.people, baby]]
            changes.append(("Kelahiran anggota keluarga baru", {"members": members}))
        street = f"Jl. {self.rng.choice(STREETS)} No. {self.rng.randint(1, 150)}"
        rt, rw = f"{self.rng.randint(1, 15):03d}", f"{self.rng.randint(1, 8):03d}"
        changes.append(("Pindah rumah dalam desa", {"address": street, "rt": rt, "rw": rw}))
        note, payload = self.rng.choice(changes)
        self._follow_up(register, ProposalKind.UPDATE, {"changes": payload}, submitted_at, note)

    def enrolments(self, register: Case, family: Family, applied_at: datetime) -> None:
        """Poorer households are proposed for more programmes; each programme only once,
        and only where it fits (PKH for children or elders, KIP for school-age children)."""
        if family.deprivations >= POOR_HOUSEHOLD_THRESHOLD:
            chance = 0.6
        else:
            chance = 0.2 if family.deprivations >= 7 else 0.03
        if self.rng.random() >= chance:
            return
        on = self.calendar.local_day(applied_at)
        ages = [p.age_on(on) for p in family.people]
        fitting = dict(PROGRAMME_WEIGHTS)
        if not any(age < 18 or age >= 60 for age in ages):
            del fitting[Programme.PKH]
        if not any(6 <= age <= 21 for age in ages):
            del fitting[Programme.KIP]
        for _ in range(self.rng.randint(1, 3)):
            if not fitting:
                break
            programme = self.rng.choices(list(fitting), weights=list(fitting.values()))[0]
            del fitting[programme]
            submitted_at = self._submission_after(applied_at, ProposalKind.ENROL, programme)
            payload = {"programme": programme.value}
            self._follow_up(register, ProposalKind.ENROL, payload, submitted_at)


# -- running it --------------------------------------------------------------------


def run_steps(steps: list[Step], clock: DemoClock, now: datetime) -> int:
    """Runs the steps in time order, each at its own time; stops at `now`. Returns how
    many commands ran."""
    done = 0
    for step in sorted(steps):
        if step.at > now:
            break
        clock.now = step.at
        try:
            step.run()
        except DomainError as error:
            msg = f"demo step '{step.what}' at {step.at.isoformat()} was refused: {error}"
            raise RuntimeError(msg) from error
        done += 1
    return done


def summarize(region: str, planner: Planner, *, commands: int, models: int) -> str:
    """One line: how many households were registered, and where every proposal stands."""
    submitted = [c for c in planner.cases if c.status is not None]
    registers = [c for c in submitted if c.kind is ProposalKind.REGISTER]
    registered = sum(1 for c in registers if c.status is ProposalStatus.APPLIED)
    removed = sum(
        1 for c in submitted if c.kind is ProposalKind.REMOVE and c.status is ProposalStatus.APPLIED
    )
    kinds = Counter(c.kind.value for c in submitted)
    statuses = Counter(c.status.value for c in submitted if c.status is not None)
    by_kind = ", ".join(f"{kind} {n}" for kind, n in sorted(kinds.items()))
    by_status = ", ".join(f"{status} {n}" for status, n in statuses.most_common())
    return (
        f"{region} {region_name(region)}, {planner.start:%Y-%m-%d} to {planner.now:%Y-%m-%d}: "
        f"{registered} households registered "
        f"({removed} since removed) from {len(registers)} register proposals; "
        f"{len(submitted)} proposals ({by_kind}) now {by_status}; "
        f"scoring model v{models} current; {commands} commands"
    )


def generate(
    settings: Settings,
    *,
    region: str,
    households: int,
    seed: int,
    now: datetime | None = None,
) -> str:
    """Loads six months of synthetic SLRT work for one kabupaten/kota into the store
    named by `settings`, through the application's commands; returns a one-line summary.

    `households` is how many register proposals the front offices submit; those
    rejected, withdrawn or still pending do not become households. The data depends
    only on `seed` and on `now` (default: the current time), which ends the timeline:
    steps after it are left undone, as pending proposals. Household and proposal ids
    are random (uuid4), so equal scores may rank differently from one load to another."""
    desas = desas_of(region)
    if households < 1:
        msg = f"households must be at least 1, not {households}"
        raise ValueError(msg)
    now = now or datetime.now(UTC)
    if now.tzinfo is None:
        msg = "now must be an aware datetime"
        raise ValueError(msg)
    start = now - TIMELINE
    clock = DemoClock(start)
    runtime = build_runtime(settings, clock=clock)
    try:
        app = runtime.app
        rng = random.Random(seed)
        calendar = Calendar(tz=region_timezone(region), policy=app.submission_policy)
        planner = Planner(rng, Desk(app, Staff(region)), calendar, start=start, now=now)
        planner.scoring_models()
        planner.registrations(desas, households)
        commands = run_steps(planner.steps, clock, now)
        model = app.get_scoring_model()
        versions = len(model.versions) if model else 0
    finally:
        runtime.close()
    return summarize(region, planner, commands=commands, models=versions)


#: What SLRT records in any store by itself or to let people in: the default SLA policy
#: (stored when a runtime starts) and user accounts (their events' topic prefixes).
_SETUP_TOPICS = tuple(f"{get_topic(cls)}." for cls in (SlaPolicy, User))


def holds_case_data(app: SlrtApplication, *, page: int = 500) -> bool:
    """Whether the store holds anything but setup (the SLA policy, users): `demo-data
    --if-empty` loads only into a store that does not."""
    start = 1
    while True:
        notifications = app.recorder.select_notifications(start=start, limit=page)
        if any(not n.topic.startswith(_SETUP_TOPICS) for n in notifications):
            return True
        if len(notifications) < page:
            return False
        start = notifications[-1].id + 1
