"""Accepting one inbound message, the same way over HTTP, NATS and the ledger import.

Decode with the one contract, check that the envelope's ``source`` is the authenticated agency
(the API key's agency over HTTP, the subject's agency over NATS) and that its kind may record
the type, refuse what can never become valid (``core.door``: unknown org units and agencies,
times out of range), then record it exactly once.
"""

from __future__ import annotations

from datetime import datetime
from functools import partial
from typing import TYPE_CHECKING

from core.case_record import CaseRecord, Recorded
from core.contract import DEFAULT_LIMITS, WireLimits, decode_event
from core.door import check_at_the_door
from core.jurisdiction import check_within_jurisdiction
from core.registry import REGION_TZ, RegistryView
from domain.access import check_may_record, check_may_record_aid, check_source, may_search_by_id_number
from domain.errors import DomainError
from domain.identity_errors import IdNumberAlreadyRegistered
from domain.values import EARLIEST_OCCURRED

if TYPE_CHECKING:
    from core.waiting import Arrival, Waiting


class UnknownAgency(DomainError):
    """The authenticated agency is not (or no longer) in the registry."""

    code = "unknown-agency"

    def __init__(self, agency_id: str) -> None:
        super().__init__(f"agency {agency_id!r} is not in this region's registry today; ask the operator to add it")


class WrongRegion(DomainError):
    """The envelope's ``region`` extension names another deployment."""

    code = "wrong-region"

    def __init__(self, given: str, ours: str) -> None:
        super().__init__(
            f"the envelope is for region {given!r}, this service records region {ours!r}; "
            "send it to that region's service or drop the region attribute"
        )


def accept(
    case_record: CaseRecord,
    registry: RegistryView,
    raw: bytes,
    agency_id: str,
    via: str,
    imported: bool = False,
    *,
    earliest: datetime = EARLIEST_OCCURRED,
    limits: WireLimits = DEFAULT_LIMITS,
    waiting: Waiting | None = None,
    arrival: Arrival | None = None,
    key_id: str | None = None,
) -> Recorded:
    """Decode, authorise, check and record one message from ``agency_id`` (raises on refusal).

    ``earliest``: the deployment's SMD_EARLIEST_TIME (times and dates before it are refused).
    ``limits``: SMD_MAX_MESSAGE_BYTES and SMD_MAX_JSON_DEPTH (``core.contract.check_bytes``).
    ``waiting``: when given, a fact whose patient, suspected case, incident or move is not
    recorded yet is held there (outcome ``waiting``) instead of refused, and recording a message
    releases what waited for it, each through this same function (core.waiting). ``arrival``:
    the door it came through (to answer its sender there). ``key_id``: the API key that
    authenticated the message (kept on its receipt; a fact that waits keeps it while it waits).
    """
    if waiting is not None:  # the same door, without waiting
        resubmit = partial(accept, case_record, registry, earliest=earliest, limits=limits)
        return waiting.accept(resubmit, raw, agency_id, via, imported, arrival, key_id=key_id)
    event = decode_event(raw, limits)
    agency = registry.agency(agency_id)  # reads the registry as recorded now
    if agency is None:
        raise UnknownAgency(agency_id)
    check_source(event.source, agency_id, via)
    if event.region is not None and event.region != registry.region:
        raise WrongRegion(event.region, registry.region)
    check_may_record(agency_id, agency.kind, event.event_type)
    aid_type = getattr(event.data, "aid_type", None)
    if aid_type is not None:  # aid is recordable per aid type, not only per event type
        check_may_record_aid(agency_id, agency.kind, aid_type)
    now = case_record.clock()
    # the registry just read, on the day the rules will ask it (the recorded day, in the region)
    state = registry.state(as_of_position=registry.position)
    check_at_the_door(event, state, now, now.astimezone(REGION_TZ).date(), earliest)

    # -- writes within jurisdiction (docs/decisions/014): before anything about the subject is
    # answered, so a refused agency learns nothing of a patient outside its area
    check_within_jurisdiction(case_record, state, agency, event, now)

    try:
        return case_record.record(event, agency_id, imported=imported, key_id=key_id)
    except IdNumberAlreadyRegistered as e:
        # name the holder only to a kind that could find it by searching the same number
        raise e.for_caller(may_search_by_id_number(agency.kind)) from None
