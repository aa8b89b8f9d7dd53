"""People of concern (重点关注人员, Qingyang task 6): incident and dispute records collided with the register.

The governance center uploads non-police incident reports and known disputes as source lists
(``domain.sources``: ``incident-records``, ``dispute-records``; sealed, brief). A run collides
each record with the registered patients (by ID number: a name alone never puts a person on
this list) and the open suspected cases (the same name in the org unit where the case was
seen: the case is a lead about an unidentified person already) and scores what it finds with
the **collision rules**: data with a version (``ConcernRules``: which record types count and
how much, the time window, the threshold). A person whose records within the window weigh at
least the threshold is on the list (``ConcernEntry``) with the reasons (list, record type,
date, weight) and the version of the rules that put them there.

Re-runs change only what they should: an entry whose reasons are the same under the new rules
keeps the version that listed it; one whose reasons or weights changed is revised (naming the
new version); one the rules no longer list is taken off (naming it); a new one is listed.

A listing (and a re-listing) notifies the police station and the governance center responsible
for the place (notices) and, for a patient at risk level ≥ 3, gives the police station an
obligation to look into it (``ACTION``). The list is separate from R16's focus grade
(DESIGN.md R16, docs/decisions/011): nothing here changes a patient's focus categories.

Pure: the rules, the planning and the aggregate. Collision and saving are ``core.concern``.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from enum import StrEnum
from typing import Any
from uuid import UUID, uuid5

from eventsourcing.domain import Aggregate

from domain.errors import DomainError
from domain.obligation import obligation_id
from domain.registry import AgencyKind
from domain.sources import CONCERN_LISTS, ListKind

CONCERN_NAMESPACE = UUID("9a3c6f1e-52d4-4b8e-a0c7-5d2e81f4b7a9")
RULE = "CONCERN"

#: A patient at this risk level or above on the list: the police station must look into it.
OBLIGATION_LEVEL = 3
#: The police station's action on a listed patient at level ≥ 3, and how soon (our default).
ACTION = "review_person_of_concern"
WITHIN = timedelta(days=7)
#: Who is told of a listing (notices).
NOTIFIED = (AgencyKind.POLICE_STATION, AgencyKind.GOVERNANCE_CENTER)
#: Who may read the list (DESIGN.md section 4: the police and the governance center act on it,
#: the health center keeps the file, the auditor reads everything; never the committee, civil
#: affairs, the hospital or the federation: a record of trouble is not theirs to see).
READERS = frozenset(
    {AgencyKind.POLICE_STATION, AgencyKind.GOVERNANCE_CENTER, AgencyKind.HEALTH_CENTER, AgencyKind.AUDITOR}
)


class SubjectKind(StrEnum):
    PATIENT = "patient"
    SUSPECTED_CASE = "suspected_case"


class ConcernRulesInvalid(DomainError):
    """A collision-rules document that does not say what it must."""

    code = "invalid-concern-rules"


@dataclass(frozen=True, slots=True)
class ConcernRules:
    """One version of the collision rules: the record types that count (per list) and their
    weights, the window (days back from the run's date) and the threshold to be listed."""

    version: int
    effective_from: date
    window_days: int
    threshold: int
    weights: dict[str, dict[str, int]]  # list kind → record type → weight

    def weight(self, kind: ListKind, record_type: str | None) -> int:
        return self.weights.get(kind.value, {}).get(record_type or "", 0)


def parse_rules(doc: dict[str, Any]) -> ConcernRules:
    """One version from its JSON form (``ops/concern_rules.json`` holds the versions)."""
    try:
        version, window, threshold = int(doc["version"]), int(doc["window_days"]), int(doc["threshold"])
        effective = date.fromisoformat(str(doc["effective_from"]))
        weights = {str(k): {str(t): int(w) for t, w in v.items()} for k, v in dict(doc["weights"]).items()}
    except (KeyError, TypeError, ValueError, AttributeError) as e:
        raise ConcernRulesInvalid(
            f"collision rules need version, effective_from, window_days, threshold and weights ({e})"
        ) from None
    bad = [k for k in weights if k not in {c.value for c in CONCERN_LISTS}]
    if bad or version < 1 or not 1 <= window <= 3660 or threshold < 1:
        raise ConcernRulesInvalid(
            f"version {version}: weights name lists {sorted(weights)} (only {sorted(c.value for c in CONCERN_LISTS)}),"
            f" window {window} days (1–3660), threshold {threshold} (≥ 1)"
        )
    if any(w < 0 for v in weights.values() for w in v.values()):
        raise ConcernRulesInvalid(f"version {version}: a weight is negative")
    return ConcernRules(version, effective, window, threshold, weights)


def parse_rule_versions(text: str) -> list[ConcernRules]:
    """Every version of a rules file (a JSON list of versions), ordered by version."""
    try:
        docs = json.loads(text)
    except ValueError as e:
        raise ConcernRulesInvalid(f"the rules file is not JSON ({e})") from None
    versions = sorted((parse_rules(d) for d in (docs if isinstance(docs, list) else [docs])), key=lambda r: r.version)
    if len({r.version for r in versions}) != len(versions):
        raise ConcernRulesInvalid("two rule sets have the same version")
    return versions


def rules_in_force(versions: Iterable[ConcernRules], on: date) -> ConcernRules:
    """The newest version in effect on ``on``."""
    found = [r for r in versions if r.effective_from <= on]
    if not found:
        raise ConcernRulesInvalid(f"no collision rules are in effect on {on.isoformat()}")
    return max(found, key=lambda r: r.version)


# -- the planning -----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Collision:
    """A record that collided with a person we know (no personal value: the subject's id)."""

    subject_id: UUID
    subject_kind: SubjectKind
    place: str  # the patient's residence, or the org unit where the case was seen
    risk_level: int | None
    kind: ListKind
    record_type: str | None
    occurred_on: date


@dataclass(frozen=True, slots=True)
class Planned:
    """A person the rules put on the list, with the reasons."""

    entry_id: UUID
    subject_id: UUID
    subject_kind: SubjectKind
    place: str
    risk_level: int | None
    reasons: tuple[tuple[str, str, str, int], ...]  # (list kind, record type, date, weight), sorted
    score: int


def entry_id(subject_id: UUID) -> UUID:
    """The one entry a person can have on the list."""
    return uuid5(CONCERN_NAMESPACE, str(subject_id))


def plan(collisions: Iterable[Collision], rules: ConcernRules, today: date) -> dict[UUID, Planned]:
    """The entries the collisions give under ``rules`` on ``today`` (keyed by entry id)."""
    since = today - timedelta(days=rules.window_days)
    by_subject: dict[UUID, list[Collision]] = {}
    for c in collisions:
        if since <= c.occurred_on <= today and rules.weight(c.kind, c.record_type) > 0:
            by_subject.setdefault(c.subject_id, []).append(c)
    planned: dict[UUID, Planned] = {}
    for subject, found in by_subject.items():
        reasons = tuple(
            sorted(
                {
                    (c.kind.value, c.record_type or "", c.occurred_on.isoformat(), rules.weight(c.kind, c.record_type))
                    for c in found
                }
            )
        )
        score = sum(r[3] for r in reasons)
        if score >= rules.threshold:
            first = found[0]
            eid = entry_id(subject)
            planned[eid] = Planned(eid, subject, first.subject_kind, first.place, first.risk_level, reasons, score)
    return planned


# -- the fact ---------------------------------------------------------------------------------------


def _reasons(reasons: Iterable[Iterable[Any]]) -> list[dict[str, Any]]:
    return [{"source": s, "record_type": t, "occurred_on": d, "weight": int(w)} for s, t, d, w in reasons]


class ConcernEntry(Aggregate):
    """A person on the list of people of concern: listed, revised, taken off, listed again."""

    TOPIC = "smd.ConcernEntry"

    class Created(Aggregate.Created):
        """Never recorded: the library requires a topic on its default first event."""

        TOPIC = "smd.ConcernEntry.Created"

    class Listed(Aggregate.Created):
        """ConcernListed: the rules of ``rules_version`` put the person on the list for ``reasons``
        (list kind, record type, date, weight: no personal value)."""

        TOPIC = "smd.ConcernListed"
        occurred_at: datetime
        message_id: str
        subject_id: UUID
        subject_kind: str
        place: str
        risk_level: int | None
        reasons: list[dict[str, Any]]
        score: int
        rules_version: int
        run_id: UUID

    def __init__(
        self,
        occurred_at: datetime,
        message_id: str,
        subject_id: UUID,
        subject_kind: str,
        place: str,
        risk_level: int | None,
        reasons: list[dict[str, Any]],
        score: int,
        rules_version: int,
        run_id: UUID,
    ) -> None:
        self.subject_id = subject_id
        self.subject_kind = SubjectKind(subject_kind)
        self._set(occurred_at, message_id, place, risk_level, reasons, score, rules_version, run_id)
        self.listed_at = occurred_at
        self.on_list = True
        self.listings = 1  # which listing this is (a re-listing notifies again)

    def _set(
        self,
        occurred_at: datetime,
        message_id: str,
        place: str,
        risk_level: int | None,
        reasons: list[dict[str, Any]],
        score: int,
        rules_version: int,
        run_id: UUID,
    ) -> None:
        self.occurred_at = occurred_at
        self.message_id = message_id
        self.place = place
        self.risk_level = risk_level
        self.reasons = [dict(r) for r in reasons]
        self.score = score
        self.rules_version = rules_version
        self.run_id = run_id

    @classmethod
    def list_(cls, p: Planned, *, now: datetime, rules: ConcernRules, run_id: UUID) -> ConcernEntry:
        return cls._create(
            cls.Listed,
            id=p.entry_id,
            timestamp=now,
            occurred_at=now,
            message_id=f"concern:{run_id}:{p.entry_id}",
            subject_id=p.subject_id,
            subject_kind=p.subject_kind.value,
            place=p.place,
            risk_level=p.risk_level,
            reasons=_reasons(p.reasons),
            score=p.score,
            rules_version=rules.version,
            run_id=run_id,
        )

    def same_as(self, p: Planned) -> bool:
        """Whether the planned entry says what this one says (the version aside)."""
        return self.on_list and self.reasons == _reasons(p.reasons) and self.score == p.score

    class Revised(Aggregate.Event):
        """ConcernRevised: still listed, the reasons (or their weights) changed under ``rules_version``."""

        TOPIC = "smd.ConcernRevised"
        occurred_at: datetime
        message_id: str
        place: str
        risk_level: int | None
        reasons: list[dict[str, Any]]
        score: int
        rules_version: int
        run_id: UUID

        def apply(self, aggregate: ConcernEntry) -> None:
            aggregate._set(
                self.occurred_at,
                self.message_id,
                self.place,
                self.risk_level,
                self.reasons,
                self.score,
                self.rules_version,
                self.run_id,
            )

    class Relisted(Revised):
        """ConcernRelisted: taken off earlier, listed again (notified again)."""

        TOPIC = "smd.ConcernRelisted"

        def apply(self, aggregate: ConcernEntry) -> None:
            super().apply(aggregate)
            aggregate.on_list = True
            aggregate.listed_at = self.occurred_at
            aggregate.listings += 1

    class Delisted(Aggregate.Event):
        """ConcernDelisted: the rules of ``rules_version`` no longer list the person (or the
        records left the window)."""

        TOPIC = "smd.ConcernDelisted"
        occurred_at: datetime
        message_id: str
        rules_version: int
        run_id: UUID

        def apply(self, aggregate: ConcernEntry) -> None:
            aggregate.occurred_at = self.occurred_at
            aggregate.message_id = self.message_id
            aggregate.rules_version = self.rules_version
            aggregate.run_id = self.run_id
            aggregate.on_list = False

    def revise(self, p: Planned, *, now: datetime, rules: ConcernRules, run_id: UUID) -> None:
        """The rules (or the records in the window) changed the reasons; re-listed if it was off."""
        self.trigger_event(
            self.Revised if self.on_list else self.Relisted,
            timestamp=now,
            occurred_at=now,
            message_id=f"concern:{run_id}:{self.id}",
            place=p.place,
            risk_level=p.risk_level,
            reasons=_reasons(p.reasons),
            score=p.score,
            rules_version=rules.version,
            run_id=run_id,
        )

    def take_off(self, *, now: datetime, rules: ConcernRules, run_id: UUID) -> None:
        """The rules in force no longer list the person (or the records left the window)."""
        self.trigger_event(
            self.Delisted,
            timestamp=now,
            occurred_at=now,
            message_id=f"concern:{run_id}:{self.id}",
            rules_version=rules.version,
            run_id=run_id,
        )


LISTED_TOPICS = frozenset({ConcernEntry.Listed.TOPIC, ConcernEntry.Relisted.TOPIC})
DELISTED_TOPIC = ConcernEntry.Delisted.TOPIC


def concern_obligation_id(entry: UUID, listing: int, role: str) -> UUID:
    """The one notice or obligation a listing gives ``role`` (police, governance, police-action)."""
    return obligation_id(entry, RULE, f"{entry}|{listing}", role)
