"""A registry file (the desired state) and its difference from the recorded registry.

The file is a parsed TOML document (``tomllib``)::

    region = "990101"                 # this deployment's region code (SMD_REGION)
    name = "Example district"         # optional, for people
    effective_from = 2025-01-01       # optional default for entries without their own

    [[org_units]]
    id = "990101-001"                 # stable id (patients' residence refers to it)
    kind = "township"                 # region | township | cluster | community | village
    name = "Example subdistrict"
    parent = "990101"                 # absent only for the region itself
    population = 41250                # optional; absent: the sum of its children
    effective_from = 2025-01-01       # optional when the file has a default

    [[agencies]]
    id = "police-east"                # lowercase letters, digits, '-' (a NATS subject token)
    kind = "police_station"           # see domain.registry.AgencyKind
    name = "East police station"
    jurisdiction = ["990101-001-c1"]  # org units; an agency covers everything under them

An id may appear several times with different ``effective_from`` dates: its history. Entries
the file leaves out are kept as recorded (nothing is retired by omission).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from domain.registry import (
    AgencyKind,
    AgencyVersion,
    Change,
    OrgUnitKind,
    OrgUnitVersion,
    RegistryState,
    check_agency_id,
)
from domain.registry_errors import (
    DuplicateRegistryEntry,
    KindCannotChange,
    RegionMismatch,
    RegistryFileInvalid,
    UnknownAgencyKind,
    UnknownOrgUnitKind,
)

_TOP_KEYS = {"region", "name", "effective_from", "org_units", "agencies"}
_UNIT_KEYS = {"id", "kind", "name", "parent", "population", "effective_from"}
_AGENCY_KEYS = {"id", "kind", "name", "jurisdiction", "effective_from"}


@dataclass(frozen=True, slots=True)
class RegistryFile:
    """What a registry file says the registry should be."""

    region: str
    org_units: tuple[OrgUnitVersion, ...]
    agencies: tuple[AgencyVersion, ...]


def _text(where: str, entry: Mapping[str, Any], key: str, *, required: bool = True) -> str | None:
    value = entry.get(key)
    if value is None:
        if required:
            raise RegistryFileInvalid(where, f"'{key}' is missing")
        return None
    if not isinstance(value, str) or not value.strip() or len(value) > 200:
        raise RegistryFileInvalid(where, f"'{key}' must be a non-empty text of at most 200 characters")
    return value.strip()


def _date(where: str, entry: Mapping[str, Any], default: date | None) -> date:
    value = entry.get("effective_from", default)
    if isinstance(value, str):
        try:
            value = date.fromisoformat(value)
        except ValueError:
            raise RegistryFileInvalid(where, f"effective_from {value!r} is not a date like 2025-01-01") from None
    if value is None:
        raise RegistryFileInvalid(where, "'effective_from' is missing (or set it at the top of the file)")
    if isinstance(value, datetime) or not isinstance(value, date):
        raise RegistryFileInvalid(where, "effective_from must be a date like 2025-01-01 (no time)")
    return value


def _check_keys(where: str, entry: Any, allowed: set[str]) -> None:
    if not isinstance(entry, Mapping):
        raise RegistryFileInvalid(where, "must be a table")
    unknown = sorted(set(entry) - allowed)
    if unknown:
        raise RegistryFileInvalid(where, f"unknown key(s) {', '.join(unknown)}; allowed: {', '.join(sorted(allowed))}")


def _entry(where: str, entry: Any, allowed: set[str]) -> tuple[str, str]:
    """The entry's id and a ``where`` that names it, after checking its keys."""
    if not isinstance(entry, Mapping):
        raise RegistryFileInvalid(where, "must be a table")
    ident = _text(where, entry, "id")
    assert ident is not None
    where = f"{where} (id {ident!r})"
    _check_keys(where, entry, allowed)
    return ident, where


def _org_unit(where: str, entry: Mapping[str, Any], default: date | None) -> OrgUnitVersion:
    uid, where = _entry(where, entry, _UNIT_KEYS)
    kind = _text(where, entry, "kind")
    if kind not in {k.value for k in OrgUnitKind}:
        raise UnknownOrgUnitKind(uid, str(kind), [k.value for k in OrgUnitKind])
    population = entry.get("population")
    if population is not None and (isinstance(population, bool) or not isinstance(population, int) or population < 0):
        raise RegistryFileInvalid(where, "population must be a whole number, 0 or more")
    return OrgUnitVersion(
        org_unit_id=uid,
        kind=OrgUnitKind(kind),
        name=_text(where, entry, "name") or "",
        parent=_text(where, entry, "parent", required=False),
        population=population,
        effective_from=_date(where, entry, default),
    )


def _agency(where: str, entry: Mapping[str, Any], default: date | None) -> AgencyVersion:
    agency_id, where = _entry(where, entry, _AGENCY_KEYS)
    check_agency_id(agency_id)
    kind = _text(where, entry, "kind")
    if kind not in {k.value for k in AgencyKind}:
        raise UnknownAgencyKind(agency_id, str(kind), [k.value for k in AgencyKind])
    jurisdiction = entry.get("jurisdiction", [])
    if not isinstance(jurisdiction, list) or not all(isinstance(u, str) and u for u in jurisdiction):
        raise RegistryFileInvalid(where, "jurisdiction must be a list of org unit ids")
    return AgencyVersion(
        agency_id=agency_id,
        kind=AgencyKind(kind),
        name=_text(where, entry, "name") or "",
        jurisdiction=frozenset(jurisdiction),
        effective_from=_date(where, entry, default),
    )


def parse_registry(doc: Mapping[str, Any]) -> RegistryFile:
    """Check a parsed registry document and turn it into versions; errors say where."""
    _check_keys("the file", doc, _TOP_KEYS)
    region = _text("the file", doc, "region")
    assert region is not None
    default = _date("the file", doc, None) if "effective_from" in doc else None
    units, agencies = doc.get("org_units", []), doc.get("agencies", [])
    if not isinstance(units, list) or not isinstance(agencies, list):
        raise RegistryFileInvalid("the file", "use [[org_units]] and [[agencies]] tables")
    return RegistryFile(
        region=region,
        org_units=tuple(_org_unit(f"org_units[{i}]", e, default) for i, e in enumerate(units)),
        agencies=tuple(_agency(f"agencies[{i}]", e, default) for i, e in enumerate(agencies)),
    )


def _ident(v: Change) -> tuple[str, str]:
    return ("org unit", v.org_unit_id) if isinstance(v, OrgUnitVersion) else ("agency", v.agency_id)


def diff(state: RegistryState, desired: RegistryFile) -> list[Change]:
    """The changes that make the recorded registry say what the file says; [] when it does.

    Each file entry says "from this date the unit (or agency) is this": it becomes a change
    only when the version in force on that date says something else. The result is checked
    as a whole (parents, jurisdictions, overlaps) before anything is returned.
    """
    if desired.region != state.region:
        raise RegionMismatch(desired.region, state.region)
    seen: set[tuple[str, str, date]] = set()
    for v in (*desired.org_units, *desired.agencies):
        key = (*_ident(v), v.effective_from)
        if key in seen:
            raise DuplicateRegistryEntry(key[0], key[1], v.effective_from)
        seen.add(key)
    work = state.copy()
    changes: list[Change] = []
    # By date, org units before agencies (a jurisdiction needs its units); stable: file order.
    entries = sorted(
        (*desired.org_units, *desired.agencies),
        key=lambda v: (v.effective_from, isinstance(v, AgencyVersion)),
    )
    for v in entries:
        what, ident = _ident(v)
        first = work.first_version(what, ident)
        if first is not None and first.kind != v.kind:
            raise KindCannotChange(what, ident, first.kind, v.kind)
        if isinstance(v, OrgUnitVersion):
            current: Change | None = work.org_unit(ident, v.effective_from)
        else:
            current = work.agency(ident, v.effective_from)
        if current is not None and current.same_as(v):  # type: ignore[arg-type]
            continue
        work.apply(v)
        changes.append(v)
    work.validate()
    return changes
