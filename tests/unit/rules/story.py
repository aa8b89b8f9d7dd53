"""A patient's story told to one rule at a time, with the pure domain objects (no store).

``Story`` records a patient's facts one by one (``record``) and asks a rule about the last one
(``then``). Every answer is decided twice: from ``FullHistory`` (the whole file walked again,
the oracle) and from a ``RuleState`` folded fact by fact as the policy process keeps it; the two
must agree. ``replay`` decides every fact of a story again from copies rebuilt event by event,
the way the property test of the incremental state does.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from itertools import count
from typing import Any
from uuid import UUID, uuid4

from domain.obligation import obligation_id
from domain.patient import Patient
from domain.personal import PersonalDetails
from domain.registry import AgencyKind
from domain.rules import PATIENT_RULES
from domain.rules.engine import IMPORTED, Decisions, Trigger
from domain.rules.entries import FullHistory
from domain.rules.settings import RuleSettings
from domain.rules.state import RuleState, entries_at
from domain.values import Provenance

NOW = datetime(2026, 11, 20, 4, 0, tzinfo=UTC)
#: One agency of each kind covers the patient's residence.
AGENCIES: Mapping[AgencyKind, str] = {
    AgencyKind.HEALTH_CENTER: "hc",
    AgencyKind.POLICE_STATION: "police",
    AgencyKind.COMMITTEE: "committee",
    AgencyKind.GOVERNANCE_CENTER: "gov",
    AgencyKind.CIVIL_AFFAIRS: "civil",
    AgencyKind.PSYCHIATRIC_HOSPITAL: "hospital",
}
SETTINGS = RuleSettings()


def responsible(kind: AgencyKind) -> str | None:
    """Every kind of agency is on record."""
    return AGENCIES.get(kind)


def without(*kinds: AgencyKind) -> dict[AgencyKind, str]:
    """The agencies on record with these kinds missing (the fallback paths)."""
    return {k: v for k, v in AGENCIES.items() if k not in kinds}


def ago(days: float) -> datetime:
    """An occurred time ``days`` before NOW."""
    return NOW - timedelta(days=days)


class Story:
    """One patient's facts, recorded one by one; ``then`` asks a rule about the last one."""

    def __init__(self, settings: RuleSettings = SETTINGS, agencies: Mapping[AgencyKind, str] = AGENCIES) -> None:
        self.n = count(1)
        self.settings = settings
        self.agencies = dict(agencies)
        self.patient = Patient.register(uuid4(), self.by(300), NOW, PersonalDetails(name="Test Person"), "v-01")
        self.state = RuleState(self.patient, PATIENT_RULES, settings)
        self.state.fold(1, entries_at(self.patient, 1))

    def responsible(self, kind: AgencyKind) -> str | None:
        return self.agencies.get(kind)

    def by(self, days_ago: float, key: str | None = None) -> Provenance:
        return Provenance("hc", None, ago(days_ago), key or f"hc:{next(self.n)}")

    def record(self, command: str, days_ago: float, key: str | None = None, **kw: Any) -> str:
        """Record a fact dated ``days_ago`` (the same number: the same occurred time); its message id."""
        by = self.by(days_ago, key)
        before = self.patient.version
        getattr(self.patient, command)(by, NOW, **kw)
        if self.patient.version != before:  # a repeated report records nothing
            self.state.fold(self.patient.version, entries_at(self.patient, self.patient.version))
        return by.message_id

    def trigger(self, topic: str | None = None) -> Trigger:
        last = self.patient.pending_events[-1]
        return Trigger(
            patient_id=self.patient.id,
            message_id=getattr(last, "message_id", "registration"),
            position=self.patient.version,
            recorded_at=NOW,
            residence="v-01",
            topic=topic or type(last).TOPIC,
            version=self.patient.version,
        )

    def then(self, rule: Any, topic: str | None = None) -> Decisions:
        """What ``rule`` decides for the last fact: the full walk's answer, checked against the
        incremental state's (a backfill is always answered by the full walk)."""
        settings = self.settings
        t = self.trigger(topic)
        decided = rule(t, self.history(), self.responsible, settings)
        if t.topic != IMPORTED:
            assert rule(t, self.state, self.responsible, settings) == decided, "RuleState differs from FullHistory"
        return decided

    def history(self) -> FullHistory:
        return FullHistory(self.patient, self.patient.version)

    def oid(self, rule: str, key: str, role: str, cycle: int | None = None) -> UUID:
        return obligation_id(self.patient.id, rule, key, role, cycle)

    def version_of(self, key: str) -> int:
        """The stream version of the fact recorded with message id ``key``."""
        return next(e.originator_version for e in self.patient.pending_events if getattr(e, "message_id", "") == key)


def _trigger_of(event: Any) -> Trigger:
    return Trigger(
        patient_id=event.originator_id,
        message_id=getattr(event, "message_id", "registration"),
        position=event.originator_version,
        recorded_at=event.timestamp,
        residence="v-01",
        topic=type(event).TOPIC,
        version=event.originator_version,
    )


def replay(story: Story, rule: Any) -> list[Decisions]:
    """``rule``'s decisions for each fact of ``story``, from copies of the patient rebuilt event by
    event: one walked whole (``FullHistory``), one folded fact by fact (``RuleState``). They must
    agree at every fact."""
    oracle: Any = None
    state: RuleState | None = None
    decided: list[Decisions] = []
    for event in story.patient.pending_events:
        oracle = event.mutate(oracle)
        v = event.originator_version
        if state is None:
            state = RuleState(event.mutate(None), PATIENT_RULES, story.settings)
        else:
            event.mutate(state.patient)
        state.fold(v, entries_at(state.patient, v))
        t = _trigger_of(event)
        full = rule(t, FullHistory(oracle, v), story.responsible, story.settings)
        assert rule(t, state, story.responsible, story.settings) == full, (t.topic, v)
        decided.append(full)
    return decided
