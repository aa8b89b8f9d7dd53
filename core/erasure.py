"""Carrying out approved erasures: crypto-shredding of a subject's data key (decision 004).

An erasure is approved like a restriction (``core.restrictions``) and waits out the cooling-off;
then ``erase_due`` retires the subject's ID-number markers (search and registration answer
nothing for the number), records ``DataErased`` with them in one transaction, and destroys the
data key. Every sealed value under the subject — in events, snapshots, read models, request
reasons — reads as erased from then on; no stored byte changes, so the hash chain still
verifies. The subject's messages in the NATS intake and rejection streams are deleted by
``integrations.erasure`` (this layer has no NATS).

A patient of a handover with a linked region: the same transaction queues a signed erasure notice
to each such region (``Handovers.erasure_notices``, decision 049); a notice received from one makes
the erasure due here at once where no retention applies (``notice_decision``), and this run
carries it out like any other.

Order: the facts first, then the key. A crash between the two leaves a recorded erasure with a
key still there; the next run destroys it (``DataErased`` recorded, key present: destroy).
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any
from uuid import UUID

import structlog
from eventsourcing.application import AggregateNotFoundError
from eventsourcing.persistence import IntegrityError

from core.case_record import CaseRecord
from core.identity import markers_held
from core.restrictions import _erasable
from domain.erasure_notice import CrossRegionErasure, NoticeDecision
from domain.errors import PatientNotFound
from domain.patient import Patient
from domain.restriction import ERASURE_TOPICS, PatientUnderManagement, Restriction, RetentionApplies, restriction_id

if TYPE_CHECKING:
    from core.handover import Handovers

log = structlog.get_logger(__name__)


@dataclass(frozen=True, slots=True)
class Erasure:
    """One erasure carried out: the subject, the markers retired, whether a key row was deleted."""

    subject_id: UUID
    markers_retired: int
    key_destroyed: bool
    notified: tuple[str, ...] = ()  # the linked regions an erasure notice was queued to


def erase_due(
    case_record: CaseRecord, now: datetime | None = None, handovers: Handovers | None = None
) -> list[Erasure]:
    """Carry out every approved erasure whose cooling-off has passed, and every one a linked
    region's notice made due (and finish any whose key survived a crash). With ``handovers``,
    each erasure queues a notice to the other region of each of the patient's handovers, in its
    transaction. Returns what was done, in subject order."""
    now = now or case_record.clock()
    ids: set[UUID] = set()
    for topic in ERASURE_TOPICS:
        ids |= case_record.originators_of(topic)
    done: list[Erasure] = []
    for restriction in sorted(case_record.load_many(ids).values(), key=lambda r: str(r.subject_id)):
        if not isinstance(restriction, Restriction):
            continue
        if restriction.erased_at is not None:
            if _destroy(case_record, restriction.subject_id):  # recorded, but the key survived a crash
                done.append(Erasure(restriction.subject_id, 0, True))
            continue
        if restriction.erase_due(now):
            done.append(_erase(case_record, restriction.subject_id, now, handovers))
    return done


def _erase(case_record: CaseRecord, subject_id: UUID, now: datetime, handovers: Handovers | None) -> Erasure:
    for _ in range(case_record.max_attempts):
        restriction: Restriction = case_record.repository.get(restriction_id(subject_id))
        if not restriction.erase_due(now):
            break  # another process carried it out meanwhile
        markers = _markers(case_record, subject_id)
        for marker in markers:
            marker.retire("erasure", now)
        restriction.record_erased(len(markers), now)
        # the region whose notice caused this erasure knows already
        notices = handovers.erasure_notices(subject_id, now, restriction.noticed_by) if handovers else []
        try:
            case_record.save(restriction, *markers, *notices)
        except IntegrityError:
            continue
        notified = tuple(sorted(n.receiver for n in notices if isinstance(n, CrossRegionErasure)))
        log.info("erasure recorded", subject_id=str(subject_id), markers_retired=len(markers), notified=len(notified))
        # the handovers' details are sealed under the patient's key too: out of the cache with it
        also = handovers.handovers_about(subject_id) if handovers else ()
        return Erasure(subject_id, len(markers), _destroy(case_record, subject_id, also), notified)
    return Erasure(subject_id, 0, _destroy(case_record, subject_id))


def _markers(case_record: CaseRecord, subject_id: UUID) -> list[Any]:
    """The live ID-number markers the patient holds (read while its key still opens the number)."""
    try:
        patient = case_record.repository.get(subject_id)
    except AggregateNotFoundError:
        return []
    if not isinstance(patient, Patient):
        return []  # a suspected case claims no number
    number = patient.personal.id_number
    return markers_held(case_record, number, subject_id) if number else []


def _destroy(case_record: CaseRecord, subject_id: UUID, also: Collection[UUID] = ()) -> bool:
    """Delete the data key and drop the subject (and ``also``: other aggregates with values sealed
    under its key) from this process's aggregate cache (it holds unsealed values)."""
    destroyed = case_record.mapper.keystore.destroy(subject_id)
    cache = case_record.repository.cache
    if cache is not None:
        for aggregate_id in (subject_id, *also):
            try:
                cache.get(aggregate_id, evict=True)
            except KeyError:
                pass
    if destroyed:
        log.info("data key destroyed", subject_id=str(subject_id))
    return destroyed


def notice_decision(case_record: CaseRecord, subject_id: UUID) -> tuple[NoticeDecision, str | None]:
    """What this region does with a linked region's erasure notice about ``subject_id``: erase
    where its own law keeps nothing (no file here, a registration made in error, a dismissed
    suspected case), else keep the file with the reason a local erasure would be refused."""
    try:
        restriction = case_record.repository.get(restriction_id(subject_id))
    except AggregateNotFoundError:
        restriction = None
    if restriction is not None and restriction.erased_at is not None:
        return NoticeDecision.ALREADY_ERASED, None
    try:
        _erasable(case_record, subject_id)
    except PatientNotFound:
        return NoticeDecision.ERASE, None  # only what the handovers brought: the request's details
    except (PatientUnderManagement, RetentionApplies) as refused:
        return NoticeDecision.KEPT, refused.code
    return NoticeDecision.ERASE, None


def erased_subjects(case_record: CaseRecord) -> list[UUID]:
    """Every subject whose erasure was carried out (what the NATS streams must not hold)."""
    ids = case_record.originators_of(Restriction.Erased.TOPIC)
    return sorted((r.subject_id for r in case_record.load_many(ids).values()), key=str)
