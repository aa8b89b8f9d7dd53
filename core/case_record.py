"""The case record: the one eventsourcing application whose notification log is the global log.

Every aggregate lives here: patients, receipts (idempotency markers), and later registry
changes, rule settings, obligations and handovers. Its notification log is the single ordered
log that policies, projections, the hash chain and the outbox follow (docs/decisions/002).
Its recorder is a *process* recorder, so a policy follower can store the events it derives and
its tracked position in one transaction, in the same store.

Application methods have one shape: load, decide (the aggregate's public method), save; they
return plain data and translate infrastructure errors at this boundary.
"""

from __future__ import annotations

import hashlib
import hmac
import random
import time
from collections.abc import Callable, Collection
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, ClassVar
from uuid import UUID

from eventsourcing.application import AggregateNotFoundError, Application
from eventsourcing.persistence import IntegrityError, JSONTranscoder, ProcessRecorder, StoredEvent
from eventsourcing.postgres import PostgresAggregateRecorder
from eventsourcing.sqlite import SQLiteAggregateRecorder

from core import identity, suspected_cases
from core.contract import (
    IdentityConfirmedV1,
    IdentityConfirmedV2,
    InboundEvent,
    PatientRegisteredUnidentifiedV1,
    PatientRegisteredV1,
    PatientRegisteredV2,
    RiskAssessedV1,
    TaskAssignedV1,
    VisitMissedV1,
    VisitRecordedV1,
    canonical_bytes,
)
from core.file_commands import FILE_COMMANDS
from core.keystore import KeyStore
from core.mapper import PersonalDataMapper, register_transcodings
from domain.errors import DuplicateMessageConflict, PatientAlreadyRegistered, PatientNotFound
from domain.patient import Patient
from domain.receipt import Receipt, receipt_id
from domain.suspected_case import SuspectedCase
from domain.task import AssignedTask, TaskAlreadyAssigned, TaskNeedsAPlace
from domain.values import Provenance, RiskClass

Clock = Callable[[], datetime]

#: Message ids of facts imported from an agency's ledger start with this (see record()).
IMPORTED_PREFIX = "ledger:"


def utc_now() -> datetime:
    """The service clock (tests pass their own)."""
    return datetime.now(UTC)


class ConcurrentWriteConflict(Exception):
    """Writers kept colliding on the same aggregate; the caller may retry later."""

    code = "concurrent-write"

    def __init__(self, key: str, attempts: int) -> None:
        super().__init__(f"message {key}: the patient changed under us {attempts} times; send it again")
        self.detail = str(self)


@dataclass(frozen=True, slots=True)
class Recorded:
    """What recording one inbound message did."""

    key: str
    outcome: str  # "recorded" | "duplicate" | "no-change"
    notification_id: int | None  # position of the last event stored (None if nothing new)
    subject: UUID

    @property
    def is_new(self) -> bool:
        """True when this call stored the message (not a redelivery)."""
        return self.outcome != "duplicate"


class CaseRecord(Application[UUID]):
    """The append-only record of every agency's facts."""

    name = "CaseRecord"
    snapshotting_intervals: ClassVar[dict[type[Any], int]] = {Patient: 50}
    max_attempts = 20

    def __init__(
        self,
        env: dict[str, str],
        keystore: KeyStore,
        digest_key: bytes,
        clock: Clock = utc_now,
        snapshot_every: int | None = None,
    ) -> None:
        self.keystore = keystore
        self.digest_key = digest_key
        self.clock = clock
        self.retries = 0  # optimistic-concurrency retries so far (read by tests and metrics)
        if snapshot_every is not None:
            self.snapshotting_intervals = {Patient: snapshot_every}
        super().__init__(env)

    # -- wiring (called by the library's constructor) ---------------------------------------

    def construct_mapper(self) -> PersonalDataMapper:
        mapper = self.factory.mapper(transcoder=self.construct_transcoder(), mapper_class=PersonalDataMapper)
        assert isinstance(mapper, PersonalDataMapper)
        mapper.keystore = self.keystore
        return mapper

    def register_transcodings(self, transcoder: JSONTranscoder) -> None:
        super().register_transcodings(transcoder)
        register_transcodings(transcoder)

    def construct_recorder(self) -> ProcessRecorder:
        return self.factory.process_recorder()

    # -- commands ------------------------------------------------------------------------------

    def record(
        self, event: InboundEvent, agency_id: str, imported: bool = False, key_id: str | None = None
    ) -> Recorded:
        """Record one inbound message exactly once (idempotent on ``<source>:<id>``).

        ``imported``: the message is a row of an agency's existing ledger (a backfill): its facts
        carry the message id ``ledger:<source>:<id>`` so the rules open nothing for the past.
        ``key_id``: the API key that authenticated it, kept on the message's receipt (saved in the
        same transaction as its facts).
        """
        key = event.idempotency_key
        digest = hmac.new(self.digest_key, canonical_bytes(event), hashlib.sha256).hexdigest()
        duplicate = self._check_receipt(key, digest, event.subject)
        if duplicate:
            return duplicate
        for attempt in range(self.max_attempts):
            now = self.clock()
            changed, outcome = self._decide(event, agency_id, now, imported)
            receipt = Receipt.issue(
                key=key,
                digest=digest,
                event_type=event.event_type,
                subject=str(event.subject),
                agency_id=agency_id,
                outcome=outcome,
                now=now,
                key_id=key_id,
            )
            try:
                recordings = self.save(receipt, *changed)
            except IntegrityError:
                duplicate = self._check_receipt(key, digest, event.subject)
                if duplicate:
                    return duplicate
                self.retries += 1
                # another writer changed the patient first: back off (jittered), reload, decide again
                time.sleep(random.uniform(0, min(0.2, 0.005 * 2 ** min(attempt, 6))))  # noqa: S311 - jitter, not crypto
                continue
            position = max(r.notification.id for r in recordings) if recordings else None
            return Recorded(key=key, outcome=outcome, notification_id=position, subject=event.subject)
        raise ConcurrentWriteConflict(key, self.max_attempts)

    def _check_receipt(self, key: str, digest: str, subject: UUID) -> Recorded | None:
        try:
            receipt: Receipt = self.repository.get(receipt_id(key))
        except AggregateNotFoundError:
            return None
        if not hmac.compare_digest(receipt.digest, digest):
            raise DuplicateMessageConflict(key)
        return Recorded(key=key, outcome="duplicate", notification_id=None, subject=subject)

    def _decide(
        self, event: InboundEvent, agency_id: str, now: datetime, imported: bool = False
    ) -> tuple[list[Any], str]:
        """Load what the event is about and call the domain; return aggregates to save."""
        by = Provenance(
            agency_id=agency_id,
            staff_id=event.actor,
            occurred_at=event.time,
            message_id=(IMPORTED_PREFIX if imported else "") + event.idempotency_key,
        )
        match event:
            case PatientRegisteredV1(subject=patient_id) | PatientRegisteredV2(subject=patient_id):
                if self._exists(patient_id):
                    raise PatientAlreadyRegistered(patient_id)
                return identity.register(self, event, by, now), "recorded"  # with its ID-number marker
            case PatientRegisteredUnidentifiedV1(subject=patient_id):
                if self._exists(patient_id):
                    raise PatientAlreadyRegistered(patient_id)
                return identity.register_unidentified(self, event, by, now), "recorded"
            case IdentityConfirmedV1() | IdentityConfirmedV2():
                return identity.confirm(self, event, by, now), "recorded"  # with its ID-number marker
            case VisitRecordedV1(data=d):
                patient = self.patient(event.subject)
                patient.record_visit(
                    by,
                    now,
                    face_to_face=d.face_to_face,
                    joint=d.joint,
                    risk_level=d.risk_level,
                    risk_class=RiskClass(d.risk_class),
                )
                return [patient], "recorded"
            case VisitMissedV1(data=d):
                patient = self.patient(event.subject)
                new = patient.record_missed_visit(by, now, scheduled_on=d.scheduled_on, reason=d.reason)
                return ([patient], "recorded") if new else ([], "no-change")
            case RiskAssessedV1(data=d):
                patient = self.patient(event.subject)
                patient.assess_risk(by, now, risk_level=d.risk_level, risk_class=RiskClass(d.risk_class))
                return [patient], "recorded"
            case TaskAssignedV1(data=d):
                return [self._assign_task(event, d, by, now)], "recorded"
            case _ if type(event) in suspected_cases.EVENTS:
                return suspected_cases.decide(self, event, by, now), "recorded"  # case (+ patient when registered)
            case _ if type(event) in FILE_COMMANDS:
                patient = self.patient(event.subject)
                changed = FILE_COMMANDS[type(event)](patient, by, now, event.data)
                return ([patient], "recorded") if changed is not False else ([], "no-change")
        raise TypeError(f"no handler for {type(event).__name__}")  # pragma: no cover

    def mark_history_imported(
        self, patient_id: UUID, agency_id: str, ledger: str, rows: int, owner_kind: str | None = None
    ) -> Recorded:
        """After a backfill: one fact per patient that makes the rules assess its current state
        (``owner_kind``: a late join's agency kind, whose rules alone assess)."""
        return self._service_fact(
            patient_id,
            agency_id,
            f"import:{ledger}:{patient_id}",  # not "ledger:": this fact must reach the rules
            "smd.HistoryImported",
            lambda p, by, now: p.mark_history_imported(by, now, ledger=ledger, rows=rows, owner_kind=owner_kind),
        )

    def mark_go_live_joined(self, patient_id: UUID, agency_id: str, ledger: str) -> Recorded:
        """A ledger imported for the go-live holds the patient: the rules wait for its completion."""
        return self._service_fact(
            patient_id,
            agency_id,
            f"golive:{ledger}:{patient_id}",
            "smd.GoLiveJoined",
            lambda p, by, now: p.mark_go_live_joined(by, now, ledger=ledger),
        )

    def _service_fact(
        self, patient_id: UUID, agency_id: str, key: str, event_type: str, command: Callable[..., None]
    ) -> Recorded:
        """A fact the service records about a patient (once per key, like a message)."""
        digest = hmac.new(self.digest_key, key.encode(), hashlib.sha256).hexdigest()
        duplicate = self._check_receipt(key, digest, patient_id)
        if duplicate:
            return duplicate
        for _ in range(self.max_attempts):
            now = self.clock()
            patient = self.patient(patient_id)
            command(patient, Provenance(agency_id, None, now, key), now)
            receipt = Receipt.issue(
                key=key,
                digest=digest,
                event_type=event_type,
                subject=str(patient_id),
                agency_id=agency_id,
                outcome="recorded",
                now=now,
            )
            try:
                recordings = self.save(receipt, patient)
            except IntegrityError:
                if self._check_receipt(key, digest, patient_id):
                    return Recorded(key=key, outcome="duplicate", notification_id=None, subject=patient_id)
                continue
            return Recorded(
                key=key,
                outcome="recorded",
                notification_id=max(r.notification.id for r in recordings),
                subject=patient_id,
            )
        raise ConcurrentWriteConflict(key, self.max_attempts)

    # -- queries -------------------------------------------------------------------------------

    def patient(self, patient_id: UUID) -> Patient:
        """The patient's current file, or PatientNotFound."""
        try:
            patient = self.repository.get(patient_id)
        except AggregateNotFoundError:
            raise PatientNotFound(patient_id) from None
        if not isinstance(patient, Patient):
            raise PatientNotFound(patient_id)
        return patient

    def suspected_case(self, case_id: UUID) -> SuspectedCase:
        """The suspected case, or SuspectedCaseNotFound."""
        return suspected_cases.load(self, case_id)

    def originators_of(self, topic: str) -> set[UUID]:
        """The aggregates with at least one recorded event of ``topic`` (one query)."""
        recorder: Any = self.recorder
        table = getattr(recorder, "events_table_name", None)
        if isinstance(recorder, PostgresAggregateRecorder) and table:
            with recorder.datastore.get_connection() as conn, conn.cursor() as cursor:
                cursor.execute(f"SELECT DISTINCT originator_id FROM {table} WHERE topic = %s", [topic])  # noqa: S608 (the recorder's own table name)
                return {row["originator_id"] for row in cursor.fetchall()}
        if isinstance(recorder, SQLiteAggregateRecorder) and table:
            with recorder.datastore.transaction(commit=False) as cursor:
                cursor.execute(f"SELECT DISTINCT originator_id FROM {table} WHERE topic = ?", [topic])  # noqa: S608 (the recorder's own table name)
                return {UUID(row["originator_id"]) for row in cursor.fetchall()}
        # the in-memory store of unit tests: walk the log
        return {n.originator_id for n in self.notification_log.select(1, 10**9, topics=[topic])}

    def load_many(self, ids: Collection[UUID]) -> dict[UUID, Any]:
        """The current state of those of these aggregates that are recorded, read in one query:
        for aggregates never snapshotted (obligations, lost episodes), whose events are all there
        is. The rules name a patient's candidate obligations, most of which were never opened."""
        wanted = list(dict.fromkeys(ids))
        if not wanted:
            return {}
        recorder: Any = self.recorder
        table = getattr(recorder, "events_table_name", None)
        columns = "originator_id, originator_version, topic, state"
        order = "ORDER BY originator_id, originator_version"
        if isinstance(recorder, PostgresAggregateRecorder) and table:
            with recorder.datastore.get_connection() as conn, conn.cursor() as cursor:
                cursor.execute(f"SELECT {columns} FROM {table} WHERE originator_id = ANY(%s) {order}", [wanted])  # noqa: S608
                rows = [(r["originator_id"], r["originator_version"], r["topic"], bytes(r["state"])) for r in cursor]
        elif isinstance(recorder, SQLiteAggregateRecorder) and table:
            marks = ",".join("?" * len(wanted))
            with recorder.datastore.transaction(commit=False) as cursor:
                cursor.execute(
                    f"SELECT {columns} FROM {table} WHERE originator_id IN ({marks}) {order}",  # noqa: S608
                    [i.hex for i in wanted],  # the SQLite recorder stores ids as hex
                )
                rows = [
                    (UUID(r["originator_id"]), r["originator_version"], r["topic"], r["state"])
                    for r in cursor.fetchall()
                ]
        else:  # the in-memory store of unit tests
            return {i: self.repository.get(i) for i in wanted if self._exists(i)}
        found: dict[UUID, Any] = {}
        for originator, version, topic, state in rows:
            event = self.mapper.to_domain_event(StoredEvent(originator, version, topic, state))
            found[originator] = event.mutate(found.get(originator))
        return found

    def _assign_task(self, event: TaskAssignedV1, d: Any, by: Provenance, now: datetime) -> AssignedTask:
        """A task: about a patient (its residence is the place) or at a place it names."""
        if self._exists(event.subject):
            raise TaskAlreadyAssigned(event.subject)
        place = self.patient(d.patient_id).residence if d.patient_id is not None else d.place
        if place is None:
            raise TaskNeedsAPlace()
        return AssignedTask.assign(
            event.subject,
            by,
            now,
            assignee=d.assignee,
            due_at=d.due_at,
            text=d.text,
            place=place,
            patient_id=d.patient_id,
        )

    def _exists(self, aggregate_id: UUID) -> bool:
        try:
            self.repository.get(aggregate_id)
        except AggregateNotFoundError:
            return False
        return True
