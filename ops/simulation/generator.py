"""A seeded generator of a synthetic township: what its agencies' systems send in a year.

``generate(seed, patients)`` lives each fictional patient's year day by day (most stable, some
unstable, some relapsing into hospital, some lost, some refusing, a few dying; aid, incidents,
guardians, care-team contacts, reviews, suspected cases) and turns every fact into the CloudEvents
envelope the recording agency would send, with the delivery delays of real agencies: the health
center within hours and sometimes days late, the police in batches across its isolated network,
committees in a weekly sync. On top it sends what real systems also send: duplicates of the same
message, second reports of the same missed visit, and a share of invalid messages (each with the
reason it must be refused). The same seed gives the same township, byte for byte.

On top of the lives, ``ops.simulation.coordination`` adds the coordination facts (the hospital's new
patients, emergencies and their answers, tasks and their owners' acts, institutional care, v2
registrations), each part on its own random stream.

Pure: no I/O, no clock. The simulation (``ops.simulation.simulate``), the demo and the benchmarks
feed the deliveries to the real intake. Places and agencies come from the demo district's registry.
"""

from __future__ import annotations

import json
import random
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta, timezone
from pathlib import Path
from typing import Any
from uuid import UUID

from core.contract import encode
from domain.jurisdiction import covers
from domain.registry import AgencyKind, RegistryState
from integrations.agency_client import AgencyClient
from ops.data_files import DEMO_DISTRICT
from ops.simulation.people import pseudonym, relation

#: China Standard Time: agencies date what they did in local time.
CST = timezone(timedelta(hours=8))
START = date(2026, 1, 1)

#: Profiles of a year, with their share of the register (a township's usual mix).
PROFILES = {
    "stable": 0.48,
    "basically_stable": 0.20,
    "unstable": 0.09,
    "relapsing": 0.08,
    "lost": 0.07,
    "refusing": 0.04,
    "dying": 0.04,
}
#: Visit intervals by class (days): the norm's, with a health center's jitter on top.
INTERVAL = {"stable": 85, "basically_stable": 28, "unstable": 12}
LEVEL = {"stable": (0, 0), "basically_stable": (1, 2), "unstable": (3, 4)}
#: A registration, in either version (v2 adds the birth date and the household region).
REGISTRATION_TYPES = ("cn.smd.patient.registered.v1", "cn.smd.patient.registered.v2")
#: Household-registration regions (fictional county codes: no real province starts with 99);
#: most patients are registered where they live, some elsewhere (人户分离).
HOME_REGION, OTHER_REGIONS = "990101", ("990102", "990103")


@dataclass(frozen=True)
class Delivery:
    """One message as an agency's system sends it, at a simulated instant."""

    at: datetime  # when it reaches the intake (UTC; becomes the fact's recorded_at)
    agency: str
    raw: bytes
    kind: str  # "fact", "ledger", "duplicate" (the same message again), "invalid" (must be refused), "act"
    event_type: str
    why_invalid: str = ""  # for "invalid": what is wrong with it
    late: bool = False  # delivered more than a day after it occurred


@dataclass
class Township:
    """A generated township: its deliveries in delivery order, and what went into them."""

    seed: int
    start: date
    days: int
    deliveries: list[Delivery]
    profiles: Counter[str] = field(default_factory=Counter)
    planted: Counter[str] = field(default_factory=Counter)  # what the year contains, by kind
    moves: Any = None  # ops.simulation.moves.Moves: region B's side, when the year has movers

    @property
    def end(self) -> datetime:
        return datetime.combine(self.start + timedelta(days=self.days), time(), CST).astimezone(UTC)


def _uuid(rng: random.Random) -> UUID:
    return UUID(int=rng.getrandbits(128), version=4)


def _at(day: date, rng: random.Random, earliest: int = 8, latest: int = 18) -> datetime:
    """A local working-hours instant on ``day``."""
    return datetime.combine(day, time(rng.randint(earliest, latest - 1), rng.randrange(60)), CST)


class _Places:
    """The demo district's villages and who covers each (from the registry file)."""

    def __init__(self, path: Path = DEMO_DISTRICT) -> None:
        from core.registry import read_registry_file  # parsing only: no store

        desired = read_registry_file(path)
        self.region = desired.region
        self.state = RegistryState.of(desired.region, [*desired.org_units, *desired.agencies])
        units = [u for u in desired.org_units if u.kind in ("village", "community")]
        self.units = sorted({u.org_unit_id for u in units})
        sizes = {u.org_unit_id: u.population or 1000 for u in units}
        self.weights = [sizes[u] for u in self.units]

    def pick(self, rng: random.Random) -> str:
        return rng.choices(self.units, self.weights)[0]

    def agency(self, unit: str, kind: AgencyKind, on: date) -> str:
        found = self.state.responsible(unit, kind, on)
        assert found, f"the demo district covers {unit} with a {kind}"
        return found


class _Year:
    """Accumulates one township's messages."""

    def __init__(self, rng: random.Random, places: _Places, start: date, days: int) -> None:
        self.rng = rng
        self.places = places
        self.start = start
        self.days = days
        self.end = datetime.combine(start + timedelta(days=days), time(), CST)
        self.go_live = datetime.combine(start, time(9), CST)  # the agencies' ledgers are imported
        self.deliveries: list[Delivery] = []
        self.planted: Counter[str] = Counter()
        self.first_delivery: dict[UUID, datetime] = {}  # a subject exists from its first message

    # -- delivery ------------------------------------------------------------------------------

    def _delay(self, agency: str, occurred: datetime) -> datetime:
        """When the agency's system gets the message to us."""
        rng, kind = self.rng, self._kind(agency)
        if kind == AgencyKind.POLICE_STATION:  # batches across the isolated network: 02, 10, 18 h
            local = occurred.astimezone(CST)
            batch = next(
                datetime.combine(local.date() + timedelta(days=d), time(h), CST)
                for d in (0, 1)
                for h in (2, 10, 18)
                if datetime.combine(local.date() + timedelta(days=d), time(h), CST) > local
            )
            return batch + (timedelta(days=rng.randint(1, 3)) if rng.random() < 0.1 else timedelta(0))
        if kind == AgencyKind.COMMITTEE and rng.random() < 0.5:  # the weekly sync, Monday evening
            local = occurred.astimezone(CST).date()
            monday = local + timedelta(days=7 - local.weekday())
            return datetime.combine(monday, time(20), CST)
        roll = rng.random()
        if roll < 0.85:
            return occurred + timedelta(minutes=rng.randint(5, 360))
        if roll < 0.97:
            return occurred + timedelta(hours=rng.randint(24, 72))
        return occurred + timedelta(days=rng.randint(5, 12))

    def _kind(self, agency: str) -> AgencyKind:
        version = self.places.state.agency(agency, self.start)
        assert version is not None, agency
        return version.kind

    def send(
        self,
        agency: str,
        event_type: str,
        subject: UUID,
        data: dict[str, Any],
        occurred: datetime,
        *,
        not_before: datetime | None = None,
        at: datetime | None = None,
        ledger: bool = False,
        version: int = 1,
    ) -> datetime | None:
        """Send one fact; returns when it was delivered (None: after the year ended).

        ``ledger``: the fact is in the agency's register ledger, imported at go-live."""
        delivered = self.go_live if ledger else (at or self._delay(agency, occurred))
        floor = max(filter(None, (not_before, self.first_delivery.get(subject))), default=None)
        if floor is not None and delivered <= floor and not ledger:
            delivered = floor + timedelta(minutes=self.rng.randint(1, 30))
        if delivered >= self.end or occurred >= self.end:
            return None
        message_id = _uuid(self.rng)  # drawn before the actor: the year's draws stay in their order
        actor = f"staff-{self.rng.randint(1, 40):02d}"
        # built by the agency client, as the agencies' systems do: checked against the contract
        envelope = AgencyClient(agency).envelope(
            f"cn.smd.{event_type}.v{version}", subject, data, occurred=occurred, actor=actor, id=message_id
        )
        late = delivered - occurred > timedelta(days=1) and not ledger
        kind = "ledger" if ledger else "fact"
        self.deliveries.append(
            Delivery(delivered.astimezone(UTC), agency, encode(envelope), kind, envelope.event_type, late=late)
        )
        self.first_delivery.setdefault(subject, delivered)
        self.planted[event_type] += 1
        return delivered

    @contextmanager
    def drawing_from(self, rng: random.Random) -> Iterator[None]:
        """Draw from ``rng`` meanwhile (ids, staff, delays): what is added on a stream of its own
        leaves every other message of the year as it was, byte for byte."""
        was, self.rng = self.rng, rng
        try:
            yield
        finally:
            self.rng = was

    def act(self, at: datetime, agency: str, task: UUID, action: str = "complete") -> None:
        """An agency acts on its obligation for ``task`` in its work queue (no message: the
        owner's word, as the work queue's "done" button records it)."""
        if at < self.end:
            raw = json.dumps({"task": str(task), "action": action}).encode()
            self.deliveries.append(Delivery(at.astimezone(UTC), agency, raw, "act", f"act {action}"))
            self.planted[f"task {action}d by its owner"] += 1

    # -- what real systems also send ----------------------------------------------------------

    def add_duplicates(self, share: float) -> None:
        """The same message again (a retry after a lost ack, a re-run batch)."""
        for d in [d for d in self.deliveries if d.kind == "fact"]:
            if self.rng.random() < share:
                again = d.at + timedelta(minutes=self.rng.randint(1, 2880))
                if again < self.end:
                    self.deliveries.append(Delivery(again, d.agency, d.raw, "duplicate", d.event_type))
                    self.planted["duplicate"] += 1

    def add_invalid(self, share: float) -> None:
        """Messages that must be refused, each with what is wrong with it."""
        facts = [d for d in self.deliveries if d.kind == "fact" and "visit.recorded" in d.event_type]
        for d in self.rng.sample(facts, k=max(6, int(len(facts) * share))):
            doc = json.loads(d.raw)
            doc["id"] = str(_uuid(self.rng))
            why = self.rng.choice(
                ("unknown-field", "level-out-of-range", "not-allowed", "unknown-patient", "class-contradicts-level")
            )
            agency = d.agency
            if why == "unknown-field":
                doc["data"]["risk_levl"] = doc["data"]["risk_level"]
            elif why == "level-out-of-range":
                doc["data"]["risk_level"] = 7
            elif why == "not-allowed":  # a police station may not record a visit
                unit = self.places.pick(self.rng)
                agency = doc["source"] = self.places.agency(unit, AgencyKind.POLICE_STATION, self.start)
            elif why == "unknown-patient":
                doc["subject"] = str(_uuid(self.rng))
            else:
                doc["data"]["risk_level"], doc["data"]["risk_class"] = 4, "stable"
            at = d.at + timedelta(minutes=self.rng.randint(1, 600))
            if at < self.end:
                raw = json.dumps(doc).encode()
                self.deliveries.append(Delivery(at, agency, raw, "invalid", doc["type"], why_invalid=why))
                self.planted[f"invalid {why}"] += 1

    def add_outside_jurisdiction(self, rng: random.Random) -> None:
        """Writes from agencies that do not work where the patient lives (they must be refused, not recorded): a
        health center of another area records a level-5 visit, a committee of another area a
        refusal, a health center registers a patient in another health center's village. Each is
        refused ``outside-jurisdiction``. ``rng`` is this method's own: the year's draws, and so
        every valid message, stay what they were without it."""
        residence = {}
        for d in self.deliveries:
            if d.event_type in REGISTRATION_TYPES and d.kind in ("fact", "ledger"):
                doc = json.loads(d.raw)
                residence[doc["subject"]] = doc["data"]["residence"]
        visits = [d for d in self.deliveries if d.kind == "fact" and d.event_type == "cn.smd.visit.recorded.v1"]
        visits = [d for d in visits if json.loads(d.raw)["subject"] in residence]
        high = {"face_to_face": True, "risk_level": 5, "risk_class": "unstable"}
        for kind, event_type, data in (
            (AgencyKind.HEALTH_CENTER, "visit.recorded", high),
            (AgencyKind.COMMITTEE, "refusal.recorded", {"refusal": "visits"}),
            (AgencyKind.HEALTH_CENTER, "patient.registered", None),  # a new patient in another's village
        ):
            if not visits:
                return
            visit = rng.choice(visits)  # a patient on the register, and a day, of the year
            doc = json.loads(visit.raw)
            unit = residence[doc["subject"]]
            at = visit.at + timedelta(minutes=rng.randint(1, 600))  # the patient is on record by then
            days = (datetime.fromisoformat(doc["time"]).astimezone(CST).date(), at.astimezone(CST).date())
            outsiders = [
                a
                for a in sorted(self.places.state.agencies)
                if self._kind(a) == kind and not any(covers(self.places.state, a, unit, day) for day in days)
            ]
            if not outsiders or at >= self.end:
                continue
            if data is None:
                doc["subject"] = str(_uuid(rng))
                data = {"name": pseudonym(rng, 9000), "residence": unit}
            agency = rng.choice(outsiders)
            doc.update(id=str(_uuid(rng)), source=agency, type=f"cn.smd.{event_type}.v1", data=data)
            why = "outside-jurisdiction"
            self.deliveries.append(Delivery(at, agency, json.dumps(doc).encode(), "invalid", doc["type"], why))
            self.planted[f"invalid {why}"] += 1

    def add_early_visit(self, seed: int) -> None:
        """One visit that reaches the intake before its patient's registration (a late batch: it waits
        and is recorded when the registration arrives). Its own random stream, added after
        everything else: the rest of the year is the same, byte for byte, as without it.

        The patient: the first joiner whose registration took 40 minutes or more to arrive and
        whose first visit is stable and dated later than 10 minutes after the registration. The
        visit: the same findings, dated 10 minutes after the registration, sent 10 minutes later
        (so before the registration arrives) by the health center of the patient's village."""
        rng = random.Random(f"early-visit-{seed}")  # noqa: S311 - a reproducible fiction
        visits: dict[str, list[tuple[datetime, dict[str, Any]]]] = {}
        for d in self.deliveries:
            if d.kind == "fact" and d.event_type == "cn.smd.visit.recorded.v1":
                doc = json.loads(d.raw)
                visits.setdefault(doc["subject"], []).append((datetime.fromisoformat(doc["time"]), doc))
        registrations = [d for d in self.deliveries if d.kind == "fact" and d.event_type in REGISTRATION_TYPES]
        for reg in sorted(registrations, key=lambda d: d.at):
            doc = json.loads(reg.raw)
            registered = datetime.fromisoformat(doc["time"])
            occurred, sent = registered + timedelta(minutes=10), registered + timedelta(minutes=20)
            first = min(visits.get(doc["subject"], []), key=lambda v: v[0], default=None)
            if reg.at - registered < timedelta(minutes=40) or first is None:
                continue
            if first[0] <= occurred or first[1]["data"]["risk_class"] != "stable":
                continue
            unit = doc["data"]["residence"]
            agency = self.places.agency(unit, AgencyKind.HEALTH_CENTER, occurred.astimezone(CST).date())
            visit = {
                **first[1],
                "id": str(_uuid(rng)),
                "source": agency,
                "time": occurred.isoformat(),
                "actor": f"staff-{rng.randint(1, 40):02d}",
            }
            raw = json.dumps(visit).encode()
            self.deliveries.append(Delivery(sent.astimezone(UTC), agency, raw, "fact", visit["type"]))
            self.planted["visit sent before its registration"] += 1
            return


class _Life:
    """One fictional patient's year, as the agencies record it."""

    def __init__(self, year: _Year, n: int, profile: str, registered_on: date | None) -> None:
        self.y, self.rng = year, year.rng
        self.n = n
        self.id = _uuid(self.rng)
        self.profile = profile
        self.unit = year.places.pick(self.rng)
        self.cls = "unstable" if profile == "unstable" else ("basically_stable" if profile != "stable" else "stable")
        if profile in ("relapsing", "dying", "refusing", "lost"):
            self.cls = self.rng.choice(("stable", "basically_stable"))
        self.level = self.rng.randint(*LEVEL[self.cls])
        self.registered_on = registered_on  # None: on the register before the year began
        self.in_hospital_until: date | None = None
        self.gone = False  # deregistered
        self.lost_from: date | None = None
        self.missed = 0
        self.high_risk_since: date | None = None
        self.key = False  # R16: monthly care-team contact
        self.dies_on: date | None = None
        self.in_ledger = False  # facts before the year are in the agencies' ledgers

    # -- helpers ---------------------------------------------------------------------------

    def agency(self, kind: AgencyKind, on: date) -> str:
        return self.y.places.agency(self.unit, kind, on)

    def send(self, kind: AgencyKind, event_type: str, data: dict[str, Any], occurred: datetime, **kw: Any):
        kw.setdefault("ledger", self.in_ledger)
        if self.dies_on is not None and occurred.date() >= self.dies_on and event_type != "patient.deregistered":
            return None  # nothing happens to the patient after death
        return self.y.send(self.agency(kind, occurred.date()), event_type, self.id, data, occurred, **kw)

    def visit(self, day: date, *, joint: bool | None = None) -> None:
        if joint is None:
            joint = self.cls == "unstable" and self.rng.random() < 0.75
        data = {"face_to_face": True, "joint": joint, "risk_level": self.level, "risk_class": self.cls}
        self.send(AgencyKind.HEALTH_CENTER, "visit.recorded", data, _at(day, self.rng))
        self.next_visit = day + timedelta(days=INTERVAL[self.cls] + self.rng.randint(-3, 4))
        if self.rng.random() < 0.08:  # sometimes the next visit slips well past the interval (R4)
            self.next_visit += timedelta(days=self.rng.randint(10, 25))

    def assess(self, day: date, level: int, cls: str) -> None:
        self.level, self.cls = level, cls
        self.send(
            AgencyKind.HEALTH_CENTER, "risk.assessed", {"risk_level": level, "risk_class": cls}, _at(day, self.rng)
        )

    # -- the start: registration and the file as of go-live ----------------------------------

    def begin(self) -> None:
        rng, start = self.rng, self.y.start
        on = self.registered_on or start
        first = _at(on, rng) if self.registered_on else _at(start - timedelta(days=rng.randint(400, 3000)), rng)
        self.in_ledger = self.registered_on is None  # on the register already: in the ledgers
        sender = AgencyKind.PSYCHIATRIC_HOSPITAL if rng.random() < 0.2 else AgencyKind.HEALTH_CENTER
        data = {"name": pseudonym(rng, self.n), "residence": self.unit, "diagnosis": "schizophrenia"}
        self.y.send(self.agency(sender, on), "patient.registered", self.id, data, first, ledger=self.in_ledger)
        self.y.planted[f"profile {self.profile}"] += 1
        known = _at(on, rng) if self.registered_on else _at(start - timedelta(days=rng.randint(1, 20)), rng)
        # the file: circumstances, guardian, latest visit and pickup (go-live sends the current state)
        circumstances = {
            "lives_alone": rng.random() < 0.15,
            "can_drive": rng.random() < 0.06,
            "family_history": rng.random() < 0.1,
            "economic_status": rng.choices(
                ("ordinary", "minimum_living_allowance", "extreme_poverty", "unable_to_pay_treatment"), (80, 10, 4, 6)
            )[0],
        }
        self.send(AgencyKind.HEALTH_CENTER, "circumstances.recorded", circumstances, known)
        roll = rng.random()
        if roll < 0.80:
            contact = {"name": pseudonym(rng, 500 + self.n), "relation": relation(rng)}
            weak = rng.random() < 0.08
            self.send(AgencyKind.COMMITTEE, "guardian.assigned", {"contact": contact, "weak": weak}, known)
            self.needs_social_guardian = weak
        elif roll < 0.88:
            self.send(AgencyKind.COMMITTEE, "guardian.none-recorded", {}, known)
            self.needs_social_guardian = True
        else:
            self.needs_social_guardian = False
        last_visit = (on - timedelta(days=rng.randint(1, INTERVAL[self.cls]))) if not self.registered_on else on
        self.visit(last_visit)
        self.supply_end = on + timedelta(days=30 if self.registered_on else rng.randint(3, 29))
        data = {"dispensed_on": (self.supply_end - timedelta(days=30)).isoformat(), "days_supplied": 30}
        self.send(
            AgencyKind.HEALTH_CENTER, "medication.dispensed", data, _at(self.supply_end - timedelta(days=30), rng)
        )
        self.key = self.cls == "unstable" or sum(v is True for v in circumstances.values()) >= 1
        self.in_ledger = False
        if self.level >= 3:
            self.enter_high_risk(on, from_start=True)
        if self.profile == "lost":
            self.lost_from = start + timedelta(days=rng.randint(40, 260))
        self.refusal_from = start + timedelta(days=rng.randint(30, 250)) if self.profile == "refusing" else None
        self.relapse_on = start + timedelta(days=rng.randint(30, 300)) if self.profile == "relapsing" else None
        self.dies_on = start + timedelta(days=rng.randint(20, 340)) if self.profile == "dying" else None
        self.improves_on = start + timedelta(days=rng.randint(60, 220)) if self.profile == "unstable" else None
        self.social_guardian_on = on + timedelta(days=rng.randint(5, 50)) if self.needs_social_guardian else None
        self.aid_on = on + timedelta(days=rng.randint(1, 300)) if rng.random() < 0.12 else None

    # -- events of the year ---------------------------------------------------------------------

    def enter_high_risk(self, day: date, *, from_start: bool = False) -> None:
        """Level 3+: the police take the patient under management (usually in time), the care
        team gives the guardian the legal-duty notice, and the three-tier review runs."""
        rng = self.rng
        self.high_risk_since = day
        self.key = True
        occurred = _at(day, rng)
        if rng.random() < 0.85:  # R1: 列管 within hours; sometimes days late, sometimes never
            took = occurred + timedelta(hours=rng.randint(2, 20) if rng.random() < 0.8 else rng.randint(30, 120))
            self.send(AgencyKind.POLICE_STATION, "patient.taken-under-management", {}, took)
        if rng.random() < 0.8:
            given = day + timedelta(days=rng.randint(1, 20))
            data = {"given_on": given.isoformat()}
            self.send(AgencyKind.COMMITTEE, "legal-duty-notice.given", data, _at(given, rng))
        if not from_start and rng.random() < 0.7:  # three-tier review (R17)
            community = day + timedelta(days=rng.randint(0, 3))
            review = {"tier": "community", "risk_level": self.level, "risk_class": "unstable"}
            self.send(AgencyKind.HEALTH_CENTER, "review.recorded", review, _at(community, rng))
            township = community + timedelta(days=rng.randint(2, 10))
            self.send(AgencyKind.HEALTH_CENTER, "review.recorded", {**review, "tier": "township"}, _at(township, rng))
            city = township + timedelta(days=rng.randint(3, 20))
            self.send(AgencyKind.PSYCHIATRIC_HOSPITAL, "review.recorded", {**review, "tier": "city"}, _at(city, rng))

    def leave_high_risk(self, day: date, level: int, cls: str) -> None:
        self.assess(day, level, cls)
        self.high_risk_since = None
        if self.rng.random() < 0.5:
            self.send(AgencyKind.POLICE_STATION, "patient.released-from-management", {}, _at(day, self.rng))

    def admit(self, day: date) -> None:
        rng = self.rng
        kind = "involuntary" if rng.random() < 0.5 else "voluntary"
        data = {"hospital": "Lantern Bay Psychiatric Hospital", "admission_kind": kind}
        self.send(AgencyKind.PSYCHIATRIC_HOSPITAL, "patient.admitted", data, _at(day, rng))
        self.in_hospital_until = day + timedelta(days=rng.randint(18, 45))
        self.y.planted["admission"] += 1

    def discharge(self, day: date) -> None:
        rng = self.rng
        self.send(AgencyKind.PSYCHIATRIC_HOSPITAL, "patient.discharged", {}, _at(day, rng))
        self.in_hospital_until = None
        self.level, self.cls = rng.randint(1, 2), "basically_stable"
        self.high_risk_since = None
        first = day + timedelta(days=rng.randint(2, 6) if rng.random() < 0.85 else rng.randint(9, 15))  # R11
        self.next_visit = first
        self.supply_end = day + timedelta(days=30)
        data = {"dispensed_on": day.isoformat(), "days_supplied": 30, "long_acting_injection": rng.random() < 0.3}
        self.send(AgencyKind.HEALTH_CENTER, "medication.dispensed", data, _at(day, rng, 14, 18))

    def go_missing(self, day: date) -> None:
        """Lost: the scheduled visits are missed; sometimes a late report breaks the run."""
        rng = self.rng
        ending = rng.random()
        count = 3 if ending < 0.3 else rng.randint(3, 5)
        scheduled = [max(self.next_visit, day) + timedelta(days=30 * i) for i in range(count)]
        if scheduled[-1] + timedelta(days=3) >= self.y.start + timedelta(days=self.y.days):
            self.lost_from = None  # too close to the year's end to show
            return
        reporter = AgencyKind.COMMITTEE if rng.random() < 0.7 else AgencyKind.HEALTH_CENTER
        sent: list[datetime | None] = []
        for s in scheduled:
            data = {"scheduled_on": s.isoformat(), "reason": "not at home"}
            occurred = _at(s + timedelta(days=rng.randint(0, 2)), rng)
            sent.append(self.send(reporter, "visit.missed", data, occurred))
            if rng.random() < 0.15:  # the other agency reports the same scheduled visit
                other = AgencyKind.HEALTH_CENTER if reporter == AgencyKind.COMMITTEE else AgencyKind.COMMITTEE
                self.send(other, "visit.missed", data, occurred + timedelta(hours=3))
                self.y.planted["second report of a missed visit"] += 1
        if rng.random() < 0.3:
            declared = _at(scheduled[1] + timedelta(days=1), rng)
            self.send(AgencyKind.POLICE_STATION, "whereabouts.unknown-declared", {}, declared)
        after = scheduled[-1] + timedelta(days=rng.randint(3, 40))
        if ending < 0.3 and sent[2] is not None:
            # a visit that did happen between the 2nd and 3rd scheduled dates, reported late:
            # the misses were not consecutive after all (R5 must withdraw, not pile up)
            between = scheduled[1] + timedelta(days=max(1, (scheduled[2] - scheduled[1]).days // 2))
            late = sent[2] + timedelta(days=rng.randint(2, 6))
            data = {"face_to_face": True, "joint": False, "risk_level": self.level, "risk_class": self.cls}
            self.send(AgencyKind.HEALTH_CENTER, "visit.recorded", data, _at(between, rng), at=late)
            self.y.planted["late visit breaking a run of misses"] += 1
            after = max(after, late.astimezone(CST).date() + timedelta(days=1))
            self.next_visit = after
        elif ending < 0.65:
            self.send(AgencyKind.POLICE_STATION, "patient.located", {}, _at(after, rng))
            self.next_visit = after + timedelta(days=rng.randint(1, 5))
        elif ending < 0.85:
            self.next_visit = after  # found at home on a later visit
        else:
            self.gone_missing_for_good = True
        self.lost_until = after

    def incident(self, day: date) -> None:
        rng = self.rng
        incident_id = str(_uuid(rng))
        kind = rng.choice(("minor_trouble", "causing_trouble", "self_harm", "attempted_suicide"))
        data = {"incident_id": incident_id, "incident_kind": kind, "severity": rng.randint(1, 3)}
        occurred = _at(day, rng, 0, 24)
        reporter = AgencyKind.POLICE_STATION if rng.random() < 0.8 else AgencyKind.COMMITTEE
        reported = self.send(reporter, "incident.reported", data, occurred)
        if reported is None:
            return
        response = occurred + timedelta(hours=rng.randint(1, 20) if rng.random() < 0.85 else rng.randint(30, 72))
        self.send(
            AgencyKind.POLICE_STATION,
            "incident.police-responded",
            {"incident_id": incident_id, "action": "attended"},
            response,
            not_before=reported,
        )
        review = occurred + timedelta(days=rng.randint(1, 6) if rng.random() < 0.8 else rng.randint(8, 20))
        data = {"incident_id": incident_id, "outcome": "reviewed with the care team"}
        self.send(AgencyKind.GOVERNANCE_CENTER, "incident.reviewed", data, review, not_before=reported)
        self.key = True

    def day(self, day: date) -> None:
        """What happens to this patient on ``day``."""
        rng = self.rng
        if self.gone or (self.registered_on and day <= self.registered_on):
            return
        if self.dies_on == day:
            self.send(AgencyKind.HEALTH_CENTER, "patient.deregistered", {"reason": "death"}, _at(day, rng))
            self.gone = True
            return
        if self.in_hospital_until is not None:
            if day >= self.in_hospital_until:
                self.discharge(day)
            return
        if getattr(self, "gone_missing_for_good", False):
            return
        if self.lost_from is not None and day >= self.lost_from and not hasattr(self, "lost_until"):
            self.go_missing(day)
        if hasattr(self, "lost_until") and day < self.lost_until:
            return
        if self.relapse_on == day:  # a relapse: high risk, usually admitted
            self.assess(day, rng.randint(3, 4), "unstable")
            self.enter_high_risk(day)
            if rng.random() < 0.3:  # the family refuses admission (R10): an agreement instead
                data = {"refusal": "admission_by_family"}
                self.send(AgencyKind.COMMITTEE, "refusal.recorded", data, _at(day + timedelta(days=1), rng))
                signed = day + timedelta(days=rng.randint(2, 12))
                self.send(
                    AgencyKind.COMMITTEE,
                    "guardianship-agreement.signed",
                    {"signed_on": signed.isoformat()},
                    _at(signed, rng),
                )
            elif rng.random() < 0.75:
                self.admit(day + timedelta(days=rng.randint(1, 4)))
            self.next_visit = day + timedelta(days=rng.randint(8, 14))
            return
        if self.improves_on == day and self.high_risk_since is not None:
            self.leave_high_risk(day, rng.randint(1, 2), "basically_stable")
        if self.refusal_from == day:
            self.send(AgencyKind.COMMITTEE, "refusal.recorded", {"refusal": "visits"}, _at(day, rng))
            self.refusal_ends = day + timedelta(days=rng.randint(20, 90))
            self.key = True
        if getattr(self, "refusal_ends", None) == day:
            self.send(AgencyKind.COMMITTEE, "refusal.recorded", {"refusal": "visits", "ended": True}, _at(day, rng))
        refusing = getattr(self, "refusal_ends", None) is not None and self.refusal_from <= day < self.refusal_ends
        if day >= self.next_visit and not refusing:
            self.visit(day)
        if day >= self.supply_end - timedelta(days=rng.randint(0, 3)):
            late = rng.randint(2, 15) if rng.random() < 0.1 else 0  # R6: the supply runs out first
            on = day + timedelta(days=late)
            data = {"dispensed_on": on.isoformat(), "days_supplied": 30}
            self.send(AgencyKind.HEALTH_CENTER, "medication.dispensed", data, _at(on, rng))
            self.supply_end = on + timedelta(days=30)
        if self.key and day.day == 1 + self.n % 27 and rng.random() < 0.85:  # R16 monthly contact, R3
            outcome = "reached" if rng.random() < 0.9 else "not_reached"
            data = {"role": "community_worker", "mode": rng.choice(("visit", "phone")), "outcome": outcome}
            self.send(AgencyKind.COMMITTEE, "care-team-contact.recorded", data, _at(day, rng))
        if self.social_guardian_on == day:
            data = {"designated_by": self.agency(AgencyKind.COMMITTEE, day)}  # the villagers' committee's id
            self.send(AgencyKind.CIVIL_AFFAIRS, "guardian.social-designated", data, _at(day, rng))
        if self.aid_on == day:
            self.send(AgencyKind.CIVIL_AFFAIRS, "aid.applied", {"aid_type": "minimum_living_allowance"}, _at(day, rng))
            decided = day + timedelta(days=rng.randint(10, 45))
            if rng.random() < 0.7:
                data = {"aid_type": "minimum_living_allowance", "amount_yuan": rng.randint(400, 900)}
                self.send(AgencyKind.CIVIL_AFFAIRS, "aid.granted", data, _at(decided, rng))
            else:
                data = {"aid_type": "minimum_living_allowance", "reason": "household income above the line"}
                self.send(AgencyKind.CIVIL_AFFAIRS, "aid.found-ineligible", data, _at(decided, rng))
        if rng.random() < (0.002 if self.level >= 3 else 0.0002):
            self.incident(day)


def _suspected_case(year: _Year, n: int, day: date) -> _Life | None:
    """A committee reports a possible patient; the health center assesses and registers or dismisses."""
    rng, places = year.rng, year.places
    unit = places.pick(rng)
    case = _uuid(rng)
    committee = places.agency(unit, AgencyKind.COMMITTEE, day)
    hc = places.agency(unit, AgencyKind.HEALTH_CENTER, day)
    data = {"observed": "talks to himself at night and shouts at neighbours", "seen_in": unit}
    reported = year.send(committee, "suspected-case.reported", case, data, _at(day, rng))
    if reported is None:
        return None
    assessed = day + timedelta(days=rng.randint(2, 12) if rng.random() < 0.85 else rng.randint(16, 25))
    finding = "suspected_severe_disorder" if rng.random() < 0.4 else "no_severe_disorder"
    assessed_at = _at(assessed, rng)
    done = year.send(hc, "suspected-case.assessed", case, {"outcome": finding}, assessed_at, not_before=reported)
    if done is None:
        return None
    if finding == "no_severe_disorder":
        dismissal = {"reason": "no_severe_disorder"}
        year.send(
            hc,
            "suspected-case.dismissed",
            case,
            dismissal,
            assessed_at + timedelta(minutes=rng.randint(10, 120)),
            not_before=done,
        )
        return None
    life = _Life(year, n, rng.choice(("stable", "basically_stable")), assessed + timedelta(days=1))
    life.unit = unit
    life.begin()
    registered = year.first_delivery.get(life.id)
    if registered is not None:
        link = {"patient_id": str(life.id)}
        occurred = _at(assessed + timedelta(days=2), rng)
        year.send(hc, "suspected-case.registered", case, link, occurred, not_before=max(registered, done))
    return life


def generate(
    seed: int,
    patients: int = 200,
    *,
    start: date = START,
    days: int = 365,
    duplicates: float = 0.03,
    invalid: float = 0.01,
    suspected_cases: int | None = None,
    coordination: bool = True,
    movers: int = 0,
) -> Township:
    """The township of ``seed``: ``patients`` on the register (plus new registrations), a year.

    ``coordination``: add the hospital's new patients, emergencies, tasks and institutional care
    (``ops.simulation.coordination``; each on its own random stream). ``movers``: add that many
    patients who move, and a linked region B (``ops.simulation.moves``; its own stream)."""
    rng = random.Random(seed)  # noqa: S311 - a reproducible fiction, not a secret
    year = _Year(rng, _Places(), start, days)
    lives: list[_Life] = []
    names = list(PROFILES)
    for n in range(patients):
        profile = rng.choices(names, [PROFILES[p] for p in names])[0]
        joins = start + timedelta(days=rng.randint(10, max(11, days - 30))) if rng.random() < 0.06 else None
        life = _Life(year, n, profile, joins)
        life.begin()
        lives.append(life)
    cases = suspected_cases if suspected_cases is not None else max(3, patients // 15)
    for i in range(cases):
        life = _suspected_case(year, patients + i, start + timedelta(days=rng.randint(5, max(6, days - 40))))
        if life is not None:
            lives.append(life)
    for offset in range(days):
        day = start + timedelta(days=offset)
        for life in lives:
            life.day(day)
    from ops.simulation import coordination as issue_19  # it builds on this module's year

    issue_19.registrations_v2(year, random.Random(f"{seed}/registrations-v2"))  # noqa: S311 - fiction
    year.add_duplicates(duplicates)
    year.add_invalid(invalid)
    year.add_outside_jurisdiction(random.Random(f"{seed}/outside-jurisdiction"))  # noqa: S311 - fiction
    year.add_early_visit(seed)
    if coordination:
        issue_19.add_coordination(year, seed, lives, patients)
        from ops.simulation.reporting import add_reporting  # R21: reports on a stream of their own

        add_reporting(year, seed)
    moved = None
    if movers:
        from ops.simulation.moves import add_moves

        moved = add_moves(year, seed, movers)
    deliveries = sorted(year.deliveries, key=lambda d: d.at)
    township = Township(seed, start, days, deliveries, Counter(life.profile for life in lives), year.planted, moved)
    township.planted["late"] = sum(d.late for d in deliveries)
    return township


def by_day(township: Township) -> Iterator[tuple[date, list[Delivery]]]:
    """The deliveries grouped by their local delivery day."""
    current: date | None = None
    batch: list[Delivery] = []
    for d in township.deliveries:
        day = d.at.astimezone(CST).date()
        if current is not None and day != current:
            yield current, batch
            batch = []
        current = day
        batch.append(d)
    if current is not None:
        yield current, batch
