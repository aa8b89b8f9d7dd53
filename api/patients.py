"""`POST /v1/patients/search` and `POST /v1/patients/search/by-name`: find patients by ID number,
or by exact name and birth date, through keyed blind indexes only.

POST, so the number or name travels in the body and never in a URL, an access log or a proxy's
log. The answer holds patient ids and nothing personal; reading a file is another request,
filtered by what the caller's kind may see. The name search goes through a marker keyed by the
name and the birth date together (``core.identity.find_by_name``): a name alone is never
matched. Only kinds in ``domain.access.MAY_SEARCH_BY_ID_NUMBER`` may search (committees see the
ID number masked; the disabled persons' federation does not search).
"""

from __future__ import annotations

import asyncio
from datetime import date
from typing import Annotated, Any
from uuid import UUID

import msgspec
from litestar import Controller, Request, post
from litestar.di import NamedDependency, Provide

from api.auth import Caller, agency_guard, provide_caller
from api.obligations import StaffId
from api.patient_files import Purpose
from api.ports import PatientReadPort, Port
from api.problems import status_for
from api.reads import commit
from core.access_log import AccessEntry
from core.identity import find_by_id_number, find_by_name
from core.restrictions import hidden_from
from domain.access import NotAllowedToSearch, may_search_by_id_number
from domain.errors import DomainError
from domain.read_filter import check_purpose
from domain.registry import AgencyKind


class IdNumberSearch(msgspec.Struct, forbid_unknown_fields=True):
    """The ID number to look for (18 characters; a lower-case x is accepted)."""

    id_number: Annotated[str, msgspec.Meta(min_length=1, max_length=32)]


class NameSearch(msgspec.Struct, forbid_unknown_fields=True):
    """The exact name (spaces, full-width letters and middle-dot variants do not matter) and the
    birth date (``YYYY-MM-DD``)."""

    name: Annotated[str, msgspec.Meta(min_length=1, max_length=200)]
    birth_date: date


class PatientMatch(msgspec.Struct):
    """A patient holding the ID number (no personal fields: fetch the file if allowed)."""

    patient_id: UUID


class SearchResult(msgspec.Struct):
    """The matching patients: none, or one (one patient per ID number per region)."""

    patients: list[PatientMatch]


class InvalidSearch(DomainError):
    """The search body is not ``{"id_number": "..."}``."""

    code = "invalid-search"

    def __init__(self) -> None:
        # msgspec's message could quote the value: say what to send instead
        super().__init__('send a JSON body {"id_number": "<18 characters>"} and nothing else')


class InvalidNameSearch(DomainError):
    """The search body is not ``{"name": "...", "birth_date": "YYYY-MM-DD"}``."""

    code = "invalid-search"

    def __init__(self) -> None:
        super().__init__(
            'send a JSON body {"name": "<as on the ID card>", "birth_date": "YYYY-MM-DD"} and nothing else'
        )


_decoder = msgspec.json.Decoder(IdNumberSearch)
_name_decoder = msgspec.json.Decoder(NameSearch)


class PatientSearchController(Controller):
    """Finding a patient by a personal identifier, without the identifier being stored."""

    path = "/v1/patients/search"
    tags = ["patients"]  # noqa: RUF012
    guards = [agency_guard]  # noqa: RUF012
    dependencies = {"caller": Provide(provide_caller)}  # noqa: RUF012

    @post(
        operation_id="searchPatientsByIdNumber",
        summary="Find patients by ID number",
        description=(
            'Body: `{"id_number": "..."}`. Answers the ids of patients holding the number (at most '
            "one per region), matched through a keyed blind index. For health centers, police "
            "stations, civil affairs, psychiatric hospitals, governance centers and auditors; others "
            "get 403. An invalid number is a 422 naming the part that is wrong. `X-Purpose` defaults to "
            "`assigned-duty`; every answer (the patient ids, never the number) is recorded in the access log."
        ),
        status_code=200,
    )
    async def search(
        self,
        request: Request[Any, Any, Any],
        caller: NamedDependency[Caller],
        services: Port[PatientReadPort],
        purpose: Purpose = None,
        staff_id: StaffId = None,
    ) -> SearchResult:
        return await _search(request, caller, services, purpose, staff_id, "POST /v1/patients/search", _by_id_number)

    @post(
        "/by-name",
        operation_id="searchPatientsByName",
        summary="Find patients by exact name and birth date",
        description=(
            'Body: `{"name": "...", "birth_date": "YYYY-MM-DD"}`. Answers the ids of patients with '
            "exactly this name (spaces, full-width letters and middle-dot variants ignored) and birth "
            "date, matched through a keyed blind index of the two together: several people may share "
            "both, and a name alone is never searched. The same kinds as the ID-number search; every "
            "answer (the patient ids, never the name) is recorded in the access log."
        ),
        status_code=200,
    )
    async def search_by_name(
        self,
        request: Request[Any, Any, Any],
        caller: NamedDependency[Caller],
        services: Port[PatientReadPort],
        purpose: Purpose = None,
        staff_id: StaffId = None,
    ) -> SearchResult:
        return await _search(request, caller, services, purpose, staff_id, "POST /v1/patients/search/by-name", _by_name)


def _by_id_number(record: Any, body: bytes) -> list[UUID]:
    try:  # the body passed api.bodies.json_body_hook: JSON, bounded, UTF-8, shallow, no repeated member
        query = _decoder.decode(body)
    except (msgspec.ValidationError, msgspec.DecodeError):
        raise InvalidSearch() from None
    return find_by_id_number(record, query.id_number, record.clock())


def _by_name(record: Any, body: bytes) -> list[UUID]:
    try:
        query = _name_decoder.decode(body)
    except (msgspec.ValidationError, msgspec.DecodeError):
        raise InvalidNameSearch() from None
    return find_by_name(record, query.name, query.birth_date, record.clock())


def _visible(find: Any, record: Any, kind: str, body: bytes) -> list[UUID]:
    """What ``find`` answers, without the patients the caller's kind may not be told of (a
    restricted patient only to the auditor: to everyone else the search answers nothing)."""
    found: list[UUID] = find(record, body)
    hidden = hidden_from(kind, record, found)
    return [p for p in found if p not in hidden]


async def _search(
    request: Request[Any, Any, Any],
    caller: Caller,
    services: PatientReadPort,
    purpose: str | None,
    staff_id: str | None,
    endpoint: str,
    find: Any,
) -> SearchResult:
    """Check the caller, find, and record the answer (the patient ids) in the access log."""
    record = services.case_record
    # today's clients send no purpose: their searches are their duty (an auditor's, an audit)
    stated = purpose or ("audit" if caller.kind == AgencyKind.AUDITOR else "assigned-duty")
    found: list[UUID] = []
    status = 500
    try:
        check_purpose(caller.kind, stated)
        if not may_search_by_id_number(caller.kind):
            raise NotAllowedToSearch(caller.agency_id, caller.kind)
        body = await request.body()
        found = await asyncio.to_thread(_visible, find, record, caller.kind, body)
        status = 200
        return SearchResult(patients=[PatientMatch(patient_id=p) for p in found])
    except DomainError as e:
        status = status_for(e.code)
        raise
    finally:
        entry = AccessEntry(
            at=record.clock(),
            agency_id=caller.agency_id,
            key_id=caller.key_id,
            staff_id=staff_id,
            purpose=stated[:32],
            endpoint=endpoint,
            status=status,
            patient_ids=tuple(found),
            fields=("patient_id",) if found else (),
        )
        if status < 500:
            await commit(services.access_log, entry)
