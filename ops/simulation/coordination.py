"""What the township's year adds for the coordination facts (decision 012), each on a random stream of its own.

The patients' lives (``generator._Life``) send what they always sent, byte for byte; on top, each
part below draws from its own ``random.Random(f"{seed}/<part>")``, so adding or tuning one part
changes no other message of the year:

- *Registrations v2*: half of the registrations (live and in the ledgers) are sent as
  ``cn.smd.patient.registered.v2`` with a birth date and a household-registration region (most
  the district's own code, some another county's: 人户分离). No ID number is ever generated, so
  the birth date cannot contradict one; the v1 half keeps the upcast path covered.
- *The hospital's new patients* (R19): patients the psychiatric hospital registers, or the health
  center registers and the hospital then diagnoses before any visit (half of those assessed at
  level 3 first: the police are told too). The health center's first visit comes within ten
  calendar days for three in four (so within ten working days), 16-30 days later for some, never
  for one in ten; then visits on the interval of the class.
- *Emergencies* (R20): danger reports (``cn.smd.risk.escalated.v1``) by the committee, the health
  center or the police, sent within minutes; some a second report of the same emergency by another
  agency, some sent the next day (over: nobody is dispatched). For every emergency that opens the
  flow, including the year's level 4-5 assessments recorded within hours, the police's response
  (``cn.smd.emergency.responded.v1``: in minutes for most, hours late for some, never for one in
  ten) and the governance center's coordination (``cn.smd.emergency.coordinated.v1``).
- *Tasks* (``cn.smd.task.assigned.v1``): the governance center, after its consultations, gives an
  agency of the place a task (about a patient or at a place) with a deadline of 3-14 days; the
  owner marks it done in its work queue (an ``act`` delivery, no message) in time for most, late
  for some, never for one in ten.
- *Institutional care* (``cn.smd.institutional-care.started.v1`` / ``.ended.v1``): civil affairs
  places some patients on the minimum living allowance or in extreme poverty in care for weeks or
  months (some still there at the year's end); their visits go on, the rules treat them as cared
  for away from home.
"""

from __future__ import annotations

import json
import random
from collections.abc import Sequence
from datetime import date, datetime, time, timedelta
from typing import Any
from uuid import UUID

from domain.registry import AgencyKind
from ops.simulation.generator import (
    CST,
    HOME_REGION,
    INTERVAL,
    LEVEL,
    OTHER_REGIONS,
    REGISTRATION_TYPES,
    Delivery,
    _at,
    _Life,
    _uuid,
    _Year,
)
from ops.simulation.people import pseudonym

#: R20's defaults (rule settings): an emergency recorded later than this after it occurred opens
#: nothing; the generator answers only what it expects to be an emergency.
TOO_LATE = timedelta(hours=6)
_PLACE = "Lantern Bay Care Home (fictional)"
_OBSERVED = ("threatening neighbours with a stick", "refusing food, talking of ending it", "smashing windows at home")
_ACTIONS = ("escorted to the psychiatric hospital", "calmed on site with the family", "searched the village")
_MEASURES = (
    "joint visit tomorrow; guardian to stay",
    "admission arranged with the hospital",
    "night watch by the committee",
)
_TASKS = ("会商后：联合上门随访", "会商后：核实监护人看护责任", "会商后：协助办理救助申请", "会商后：排查辖区疑似患者")


def birth_data(rng: random.Random) -> dict[str, str]:
    """A v2 registration's extra fields: a birth date and the household-registration region."""
    born = date(1950, 1, 1) + timedelta(days=rng.randrange(365 * 55))
    region = HOME_REGION if rng.random() < 0.85 else rng.choice(OTHER_REGIONS)
    return {"birth_date": born.isoformat(), "household_region": region}


def registrations_v2(year: _Year, rng: random.Random, share: float = 0.5) -> None:
    """Send ``share`` of the registrations (live and ledger) as v2 (before duplicates are made:
    a duplicate repeats the message as sent)."""
    for i, d in enumerate(year.deliveries):
        if d.event_type != REGISTRATION_TYPES[0] or d.kind not in ("fact", "ledger") or rng.random() >= share:
            continue
        doc = json.loads(d.raw)
        doc["type"] = REGISTRATION_TYPES[1]
        doc["data"].update(birth_data(rng))
        year.deliveries[i] = Delivery(d.at, d.agency, json.dumps(doc).encode(), d.kind, doc["type"], late=d.late)
        year.planted["registration v2"] += 1


def _day_at(day: date, hour: int = 18) -> datetime:
    return datetime.combine(day, time(hour), CST)


# -- R19: the hospital's new patients -------------------------------------------------------------


def hospital_new_patients(year: _Year, rng: random.Random, count: int) -> None:
    """New patients the psychiatric hospital pushes; the health center takes them over (or not)."""
    places = year.places
    last = year.days - 40
    for i in range(count):
        day = year.start + timedelta(days=rng.randint(10, max(11, last)))
        unit, pid = places.pick(rng), _uuid(rng)
        hospital = places.agency(unit, AgencyKind.PSYCHIATRIC_HOSPITAL, day)
        hc = places.agency(unit, AgencyKind.HEALTH_CENTER, day)
        data: dict[str, Any] = {"name": pseudonym(rng, 700 + i), "residence": unit, "diagnosis": "schizophrenia"}
        version = 2 if rng.random() < 0.6 else 1
        if version == 2:
            data.update(birth_data(rng))
        occurred = _at(day, rng)
        cls = rng.choice(("stable", "basically_stable"))
        level = rng.randint(*LEVEL[cls])
        if rng.random() < 0.7:  # the hospital registers the patient it diagnosed
            trigger = year.send(hospital, "patient.registered", pid, data, occurred, version=version)
            year.planted["r19 registered by the hospital"] += 1
            if trigger is not None and rng.random() < 0.25:  # and pushes the diagnosis again: opens nothing new
                again = occurred + timedelta(days=rng.randint(1, 3))
                year.send(hospital, "diagnosis.recorded", pid, {"diagnosis": "schizophrenia"}, again)
        else:  # the health center registers; the hospital's diagnosis comes before any visit
            registered = year.send(hc, "patient.registered", pid, data, occurred, version=version)
            if registered is None:
                continue
            if rng.random() < 0.5:  # assessed at level 3 at registration: the police are told too
                cls, level = "unstable", 3
                assessed = {"risk_level": level, "risk_class": cls}
                year.send(hc, "risk.assessed", pid, assessed, occurred + timedelta(hours=1), not_before=registered)
            diagnosed = occurred + timedelta(days=rng.randint(1, 4))
            trigger = year.send(hospital, "diagnosis.recorded", pid, {"diagnosis": "schizophrenia"}, diagnosed)
            year.planted["r19 diagnosed by the hospital"] += 1
            occurred = diagnosed
        if trigger is None:
            continue
        if level >= 3 and rng.random() < 0.8:
            police = places.agency(unit, AgencyKind.POLICE_STATION, day)
            year.send(police, "patient.taken-under-management", pid, {}, occurred + timedelta(hours=rng.randint(2, 20)))
        roll = rng.random()
        if roll >= 0.9:
            year.planted["r19 never taken over"] += 1
            continue
        late = roll >= 0.75
        year.planted["r19 taken over late" if late else "r19 taken over in time"] += 1
        first = trigger.astimezone(CST).date() + timedelta(days=rng.randint(16, 30) if late else rng.randint(1, 10))
        visit_day = first
        while visit_day < year.start + timedelta(days=year.days):
            joint = cls == "unstable" and rng.random() < 0.75
            visit = {"face_to_face": True, "joint": joint, "risk_level": level, "risk_class": cls}
            year.send(hc, "visit.recorded", pid, visit, _at(visit_day, rng), not_before=trigger)
            visit_day += timedelta(days=INTERVAL[cls] + rng.randint(-3, 4))


# -- R20: emergencies and their answers ------------------------------------------------------------


def _residences(year: _Year) -> dict[str, str]:
    found = {}
    for d in year.deliveries:
        if d.event_type in REGISTRATION_TYPES and d.kind in ("fact", "ledger"):
            doc = json.loads(d.raw)
            found.setdefault(doc["subject"], doc["data"]["residence"])
    return found


def answer_emergency(year: _Year, rng: random.Random, pid: UUID, unit: str, occurred: datetime, sent: datetime) -> None:
    """The police's response and the governance center's coordination of one emergency."""
    day = occurred.astimezone(CST).date()
    roll = rng.random()
    if roll < 0.9:
        late = roll >= 0.75
        at = sent + timedelta(minutes=rng.randint(45, 240) if late else rng.randint(5, 25))
        done = max(occurred + timedelta(minutes=1), at - timedelta(minutes=rng.randint(1, 4)))
        data = {
            "outcome": rng.choice(("sent_for_treatment", "calmed_on_site", "not_found")),
            "action": rng.choice(_ACTIONS),
        }
        police = year.places.agency(unit, AgencyKind.POLICE_STATION, day)
        if year.send(police, "emergency.responded", pid, data, done, at=at, not_before=sent) is not None:
            year.planted["r20 police responded late" if late else "r20 police responded in time"] += 1
    roll = rng.random()
    if roll < 0.9:
        late = roll >= 0.7
        at = sent + (timedelta(hours=rng.randint(3, 30)) if late else timedelta(minutes=rng.randint(20, 100)))
        done = max(occurred + timedelta(minutes=1), at - timedelta(minutes=rng.randint(1, 10)))
        gov = year.places.agency(unit, AgencyKind.GOVERNANCE_CENTER, day)
        data = {"measures": rng.choice(_MEASURES)}
        if year.send(gov, "emergency.coordinated", pid, data, done, at=at, not_before=sent) is not None:
            year.planted["r20 coordinated late" if late else "r20 coordinated in time"] += 1


def emergencies(year: _Year, rng: random.Random, lives: Sequence[_Life], count: int) -> None:
    """Danger reports on patients of the year, and the answers to every emergency (reports and the
    year's level 4-5 assessments recorded within hours)."""
    places = year.places
    residence = _residences(year)
    assessed = [
        d
        for d in year.deliveries
        if d.kind == "fact"
        and d.event_type in ("cn.smd.visit.recorded.v1", "cn.smd.risk.assessed.v1")
        and json.loads(d.raw)["data"]["risk_level"] >= 4
    ]
    for d in assessed:
        doc = json.loads(d.raw)
        occurred = datetime.fromisoformat(doc["time"])
        if d.at - occurred <= TOO_LATE and doc["subject"] in residence:
            answer_emergency(year, rng, UUID(doc["subject"]), residence[doc["subject"]], occurred, d.at)
    candidates = [
        life
        for life in lives
        if life.profile in ("stable", "basically_stable", "unstable", "relapsing", "refusing")
        and str(life.id) in residence
    ]
    reporters = (AgencyKind.COMMITTEE, AgencyKind.HEALTH_CENTER, AgencyKind.POLICE_STATION)
    for _ in range(count):
        life = rng.choice(candidates)
        first = max(year.start, (life.registered_on or year.start) + timedelta(days=2))
        last = min(year.start + timedelta(days=year.days - 2), (life.dies_on or date.max) - timedelta(days=2))
        if last <= first:
            continue
        day = first + timedelta(days=rng.randrange((last - first).days))
        unit = residence[str(life.id)]
        occurred = datetime.combine(day, time(rng.randint(0, 23), rng.randrange(60)), CST)
        kind = rng.choice(reporters)
        data = {"danger": rng.choice(("to_self", "to_others", "both")), "observed": rng.choice(_OBSERVED)}
        late = rng.random() < 0.1
        sent = occurred + (timedelta(hours=rng.randint(8, 30)) if late else timedelta(minutes=rng.randint(3, 40)))
        at = year.send(places.agency(unit, kind, day), "risk.escalated", life.id, data, occurred, at=sent)
        if at is None:
            continue
        year.planted["r20 danger report sent the next day" if late else "r20 danger report"] += 1
        if late:
            continue  # the emergency is over: nobody is dispatched for the past
        if rng.random() < 0.12:  # another agency reports the same emergency
            other = rng.choice([k for k in reporters if k != kind])
            again = occurred + timedelta(minutes=rng.randint(10, 60))
            year.send(
                places.agency(unit, other, day),
                "risk.escalated",
                life.id,
                data,
                again,
                at=again + timedelta(minutes=rng.randint(2, 10)),
                not_before=at,
            )
            year.planted["r20 second report of an emergency"] += 1
        answer_emergency(year, rng, life.id, unit, occurred, at)


# -- tasks the governance center assigns ------------------------------------------------------------


def tasks(year: _Year, rng: random.Random, lives: Sequence[_Life], count: int) -> None:
    """Tasks after consultations, about a patient or at a place; done in time, late, or never."""
    places = year.places
    residence = _residences(year)
    candidates = [life for life in lives if str(life.id) in residence and life.profile not in ("lost",)]
    kinds = (AgencyKind.HEALTH_CENTER, AgencyKind.COMMITTEE, AgencyKind.POLICE_STATION, AgencyKind.CIVIL_AFFAIRS)
    for _ in range(count):
        day = year.start + timedelta(days=rng.randint(3, year.days - 5))
        patient = None
        if rng.random() < 0.6:
            life = rng.choice(candidates)
            if (life.registered_on and life.registered_on >= day) or (life.dies_on and life.dies_on <= day):
                continue
            patient, unit = life.id, residence[str(life.id)]
        else:
            unit = places.pick(rng)
        gov = places.agency(unit, AgencyKind.GOVERNANCE_CENTER, day)
        assignee = places.agency(unit, rng.choices(kinds, (4, 3, 2, 1))[0], day)
        occurred = _at(day, rng)
        due = _day_at(day + timedelta(days=rng.randint(3, 14)))
        task = _uuid(rng)
        data: dict[str, Any] = {"assignee": assignee, "due_at": due.isoformat(), "text": rng.choice(_TASKS)}
        if patient is not None:
            data["patient_id"] = str(patient)
        else:
            data["place"] = unit
        floor = year.first_delivery.get(patient) if patient is not None else None
        sent = year.send(gov, "task.assigned", task, data, occurred, not_before=floor)
        if sent is None:
            continue
        year.planted["task about a patient" if patient else "task at a place"] += 1
        roll = rng.random()
        if roll < 0.7 and due > sent:
            year.act(sent + (due - sent) * rng.uniform(0.1, 0.9), assignee, task)
        elif roll < 0.9:
            year.act(max(due, sent) + timedelta(hours=rng.randint(2, 240)), assignee, task)
        else:
            year.planted["task never done"] += 1


# -- institutional care ------------------------------------------------------------------------------


def institutional_care(year: _Year, rng: random.Random, lives: Sequence[_Life], count: int) -> None:
    """Civil affairs places poor patients in institutional care (集中照料救治) for a while."""
    status: dict[str, str] = {}
    for d in year.deliveries:
        if d.event_type == "cn.smd.circumstances.recorded.v1" and d.kind in ("fact", "ledger"):
            doc = json.loads(d.raw)
            if doc["data"].get("economic_status"):
                status[doc["subject"]] = doc["data"]["economic_status"]
    kinds = ("minimum_living_allowance", "extreme_poverty")
    candidates = [
        life
        for life in lives
        if life.registered_on is None
        and life.profile in ("stable", "basically_stable", "unstable", "refusing")
        and status.get(str(life.id)) in kinds
    ]
    for life in rng.sample(candidates, k=min(count, len(candidates))):
        day = year.start + timedelta(days=rng.randint(20, max(21, year.days - 60)))
        civil = _agency_of(year, life, AgencyKind.CIVIL_AFFAIRS, day)
        data = {"place": _PLACE, "care_kind": status[str(life.id)]}
        started = year.send(civil, "institutional-care.started", life.id, data, _at(day, rng))
        if started is None:
            continue
        year.planted["institutional care started"] += 1
        if rng.random() < 0.8:
            ends = day + timedelta(days=rng.randint(25, 150))
            ended = year.send(
                _agency_of(year, life, AgencyKind.CIVIL_AFFAIRS, ends),
                "institutional-care.ended",
                life.id,
                {"reason": "returned home to the family"},
                _at(ends, rng),
                not_before=started,
            )
            if ended is not None:
                year.planted["institutional care ended"] += 1


def _agency_of(year: _Year, life: _Life, kind: AgencyKind, day: date) -> str:
    return year.places.agency(life.unit, kind, day)


def add_coordination(year: _Year, seed: int, lives: Sequence[_Life], patients: int) -> None:
    """Everything above, each part on its own random stream (after the lives' year is sent)."""

    def stream(part: str) -> random.Random:
        return random.Random(f"{seed}/{part}")  # noqa: S311 - a reproducible fiction

    for part, add in (
        ("hospital-new-patients", lambda r: hospital_new_patients(year, r, max(4, patients // 16))),
        ("institutional-care", lambda r: institutional_care(year, r, lives, max(3, patients // 25))),
        ("emergencies", lambda r: emergencies(year, r, lives, max(6, patients // 12))),
        ("tasks", lambda r: tasks(year, r, lives, max(8, patients // 4))),
    ):
        rng = stream(part)
        with year.drawing_from(rng):
            add(rng)
