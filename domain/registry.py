"""The org-unit registry and agencies of one region, versioned with effective dates.

Org units nest region → township → cluster (新村) or community → village. An agency has a kind
and a jurisdiction: a set of org units, not always one subtree (Jiaobei's two police stations
each cover some villages). Every change says from which date it holds (``effective_from``);
a second change for the same id and date corrects the first.

The registry is one aggregate per region, so its changes are events in the global log and a
policy can ask "who was responsible, as recorded up to this log position" (DESIGN.md "Time,
order and episodes"). ``RegistryState`` answers the questions; the aggregate only records.
"""

from __future__ import annotations

import re
from bisect import insort
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import date, datetime
from enum import StrEnum
from typing import TypeVar
from uuid import NAMESPACE_URL, UUID, uuid5

from eventsourcing.domain import Aggregate

from domain.registry_errors import (
    InvalidAgencyId,
    OverlappingJurisdictions,
    RegistryFileInvalid,
    UnknownOrgUnit,
    UnknownOrgUnitInJurisdiction,
    UnknownParent,
    WrongParentKind,
    WrongRegionUnit,
)

#: Namespace of registry ids; never change it (stored registries would stop matching).
REGISTRY_NAMESPACE = uuid5(NAMESPACE_URL, "urn:smd:registry")

#: Same pattern as core.contract.AgencyId: agency ids are NATS subject tokens.
AGENCY_ID = re.compile(r"^[a-z0-9][a-z0-9-]{1,62}$")


def registry_id(region: str) -> UUID:
    """The id of a region's registry aggregate."""
    return uuid5(REGISTRY_NAMESPACE, region)


class OrgUnitKind(StrEnum):
    """Levels of the org-unit tree."""

    REGION = "region"  # county-level (区县)
    TOWNSHIP = "township"  # township or subdistrict (乡镇 / 街道)
    CLUSTER = "cluster"  # new-village cluster (新村), one care team each
    COMMUNITY = "community"  # urban community (社区 / 居委会)
    VILLAGE = "village"  # village (村)


#: Which kinds a unit of each kind may hang under.
PARENT_KINDS: dict[OrgUnitKind, tuple[OrgUnitKind, ...]] = {
    OrgUnitKind.REGION: (),
    OrgUnitKind.TOWNSHIP: (OrgUnitKind.REGION,),
    OrgUnitKind.CLUSTER: (OrgUnitKind.TOWNSHIP,),
    OrgUnitKind.COMMUNITY: (OrgUnitKind.TOWNSHIP, OrgUnitKind.CLUSTER),
    OrgUnitKind.VILLAGE: (OrgUnitKind.CLUSTER, OrgUnitKind.COMMUNITY, OrgUnitKind.TOWNSHIP),
}


class AgencyKind(StrEnum):
    """Agency kinds of DESIGN.md section 4."""

    HEALTH_CENTER = "health_center"
    POLICE_STATION = "police_station"
    CIVIL_AFFAIRS = "civil_affairs"
    COMMITTEE = "committee"  # village / community committee with its care team
    GOVERNANCE_CENTER = "governance_center"
    DISABLED_PERSONS_FEDERATION = "disabled_persons_federation"
    PSYCHIATRIC_HOSPITAL = "psychiatric_hospital"
    AUDITOR = "auditor"
    #: A department of the township government that is none of the kinds above (司法所, 城建办,
    #: 财政所, 卫健办, 社区治理办): it owes reports (R21) and records progress on the work plan's
    #: tasks; it reads only its own obligations, never a patient's file.
    DEPARTMENT = "department"


#: Kinds where one org unit may have several agencies: auditors and departments are never
#: "responsible" for a patient (no rule asks for them).
SHARED_KINDS = frozenset({AgencyKind.AUDITOR, AgencyKind.DEPARTMENT})


@dataclass(frozen=True, slots=True)
class OrgUnitVersion:
    """An org unit as it is from ``effective_from`` on (until its next version)."""

    org_unit_id: str
    kind: OrgUnitKind
    name: str
    parent: str | None
    population: int | None  # resident population; None: the sum of its children's
    effective_from: date

    def same_as(self, other: OrgUnitVersion) -> bool:
        """True when both say the same, whatever their dates."""
        return (self.kind, self.name, self.parent, self.population) == (
            other.kind,
            other.name,
            other.parent,
            other.population,
        )


@dataclass(frozen=True, slots=True)
class AgencyVersion:
    """An agency as it is from ``effective_from`` on (until its next version)."""

    agency_id: str
    kind: AgencyKind
    name: str
    jurisdiction: frozenset[str]
    effective_from: date

    def same_as(self, other: AgencyVersion) -> bool:
        """True when both say the same, whatever their dates."""
        return (self.kind, self.name, self.jurisdiction) == (
            other.kind,
            other.name,
            other.jurisdiction,
        )


Change = OrgUnitVersion | AgencyVersion


def check_agency_id(agency_id: str) -> None:
    """Raise InvalidAgencyId unless the id can be a NATS subject token."""
    if not AGENCY_ID.match(agency_id):
        raise InvalidAgencyId(agency_id)


V = TypeVar("V", OrgUnitVersion, AgencyVersion)


def _in_force(versions: list[V], on: date) -> V | None:
    """The version with the latest ``effective_from`` on or before ``on``."""
    found = None
    for v in versions:  # sorted by effective_from; a handful per id
        if v.effective_from > on:
            break
        found = v
    return found


def _by_date(v: Change) -> date:
    return v.effective_from


@dataclass
class RegistryState:
    """Every version of every org unit and agency of a region; answers questions by date."""

    region: str
    org_units: dict[str, list[OrgUnitVersion]] = field(default_factory=dict)
    agencies: dict[str, list[AgencyVersion]] = field(default_factory=dict)

    @classmethod
    def of(cls, region: str, changes: Iterable[Change]) -> RegistryState:
        """The state after the given changes, in recording order."""
        state = cls(region)
        for change in changes:
            state.apply(change)
        return state

    def copy(self) -> RegistryState:
        """An independent copy (versions are immutable, lists are not)."""
        return RegistryState(
            self.region,
            {k: list(v) for k, v in self.org_units.items()},
            {k: list(v) for k, v in self.agencies.items()},
        )

    def with_change(self, change: Change) -> RegistryState:
        """A copy with the change applied (this state is left as it is)."""
        after = self.copy()
        after.apply(change)
        return after

    def apply(self, change: Change) -> None:
        """Add a version; one recorded later for the same id and date replaces it (correction)."""
        if isinstance(change, OrgUnitVersion):
            self._put(self.org_units.setdefault(change.org_unit_id, []), change)
        else:
            self._put(self.agencies.setdefault(change.agency_id, []), change)

    @staticmethod
    def _put(versions: list, change: Change) -> None:
        versions[:] = [v for v in versions if v.effective_from != change.effective_from]
        insort(versions, change, key=_by_date)

    # -- questions by date -----------------------------------------------------------------

    def org_unit(self, org_unit_id: str, on: date) -> OrgUnitVersion | None:
        """The org unit as it is on ``on``, or None if not defined then."""
        return _in_force(self.org_units.get(org_unit_id, []), on)

    def agency(self, agency_id: str, on: date) -> AgencyVersion | None:
        """The agency as it is on ``on``, or None if not defined then."""
        return _in_force(self.agencies.get(agency_id, []), on)

    def first_version(self, what: str, ident: str) -> Change | None:
        """The earliest version of an org unit (what="org unit") or agency, or None."""
        versions = self.org_units.get(ident) if what == "org unit" else self.agencies.get(ident)
        return versions[0] if versions else None

    def chain(self, org_unit_id: str, on: date) -> list[str]:
        """The unit and its ancestors on ``on``, nearest first; UnknownOrgUnit if undefined."""
        unit = self.org_unit(org_unit_id, on)
        if unit is None:
            raise UnknownOrgUnit(org_unit_id, on)
        chain = [org_unit_id]
        # Bounded: kinds nest strictly (validated), the bound only guards an unvalidated log.
        while unit is not None and unit.parent is not None and len(chain) < 8:
            chain.append(unit.parent)
            unit = self.org_unit(unit.parent, on)
        return chain

    def covering(self, org_unit_id: str, kind: AgencyKind, on: date) -> list[str]:
        """Ids of the agencies of ``kind`` whose jurisdiction holds the unit or an ancestor."""
        chain = set(self.chain(org_unit_id, on))
        found = []
        for agency_id in sorted(self.agencies):
            agency = self.agency(agency_id, on)
            if agency is not None and agency.kind == kind and chain & agency.jurisdiction:
                found.append(agency_id)
        return found

    def responsible(self, org_unit_id: str, kind: AgencyKind, on: date) -> str | None:
        """The one agency of ``kind`` covering the unit on ``on``, or None when none does."""
        found = self.covering(org_unit_id, kind, on)
        if len(found) > 1 and kind not in SHARED_KINDS:
            raise OverlappingJurisdictions(kind, org_unit_id, found, on)
        return found[0] if found else None

    def population(self, org_unit_id: str, on: date) -> int:
        """Resident population on ``on``: the unit's own figure, else its children's sum."""
        unit = self.org_unit(org_unit_id, on)
        if unit is None:
            raise UnknownOrgUnit(org_unit_id, on)
        if unit.population is not None:
            return unit.population
        return sum(self.population(child, on) for child in self.children(org_unit_id, on))

    def children(self, org_unit_id: str, on: date) -> list[str]:
        """Ids of the units directly under ``org_unit_id`` on ``on``, sorted."""
        return sorted(
            uid for uid in self.org_units if (u := self.org_unit(uid, on)) is not None and u.parent == org_unit_id
        )

    def dates(self) -> list[date]:
        """Every date on which something changes, sorted."""
        found = {v.effective_from for vs in self.org_units.values() for v in vs}
        found |= {v.effective_from for vs in self.agencies.values() for v in vs}
        return sorted(found)

    # -- consistency -------------------------------------------------------------------------

    def validate(self) -> None:
        """Raise the first broken rule: parents, jurisdictions, overlapping agencies."""
        for versions in self.org_units.values():
            for v in versions:
                self._check_parent(v)
        for versions in self.agencies.values():
            for a in versions:
                for uid in sorted(a.jurisdiction):
                    if self.org_unit(uid, a.effective_from) is None:
                        raise UnknownOrgUnitInJurisdiction(a.agency_id, uid, a.effective_from)
        for on in self.dates():
            self._check_no_overlap(on)

    def _check_parent(self, v: OrgUnitVersion) -> None:
        if v.kind == OrgUnitKind.REGION:
            if v.org_unit_id != self.region:
                raise WrongRegionUnit(v.org_unit_id, self.region)
            if v.parent is not None:
                raise RegistryFileInvalid(f"org unit {v.org_unit_id!r}", "a region has no parent; remove it")
            return
        parent = None if v.parent is None else self.org_unit(v.parent, v.effective_from)
        if v.parent is None or parent is None:
            raise UnknownParent(v.org_unit_id, v.parent, v.effective_from)
        allowed = PARENT_KINDS[v.kind]
        if parent.kind not in allowed:
            raise WrongParentKind(v.org_unit_id, v.kind, v.parent, parent.kind, allowed)

    def _check_no_overlap(self, on: date) -> None:
        # Index jurisdictions once per date, then walk each unit's chain: units x depth.
        listed: dict[str, list[AgencyVersion]] = {}
        for agency_id in sorted(self.agencies):
            a = self.agency(agency_id, on)
            if a is not None and a.kind not in SHARED_KINDS:
                for uid in a.jurisdiction:
                    listed.setdefault(uid, []).append(a)
        for uid in sorted(self.org_units):  # sorted: the same error on every run
            if self.org_unit(uid, on) is None:
                continue
            by_kind: dict[AgencyKind, set[str]] = {}
            for link in self.chain(uid, on):
                for a in listed.get(link, ()):
                    by_kind.setdefault(a.kind, set()).add(a.agency_id)
            for kind, ids in by_kind.items():
                if len(ids) > 1:
                    raise OverlappingJurisdictions(kind, uid, ids, on)

    def __iter__(self) -> Iterator[Change]:
        """Every version, org units first, by date."""
        yield from sorted((v for vs in self.org_units.values() for v in vs), key=_by_date)
        yield from sorted((v for vs in self.agencies.values() for v in vs), key=_by_date)


# -- the aggregate ---------------------------------------------------------------------------


class OrgUnitFact(Aggregate.Event):
    """Base of org-unit events: the unit as it is from ``effective_from`` on."""

    org_unit_id: str
    kind: str
    name: str
    parent: str | None
    population: int | None
    effective_from: date

    def version(self) -> OrgUnitVersion:
        """The version this event records."""
        return OrgUnitVersion(
            self.org_unit_id,
            OrgUnitKind(self.kind),
            self.name,
            self.parent,
            self.population,
            self.effective_from,
        )

    def apply(self, aggregate: Registry) -> None:
        aggregate.state.apply(self.version())


class AgencyFact(Aggregate.Event):
    """Base of agency events: the agency as it is from ``effective_from`` on."""

    agency_id: str
    kind: str
    name: str
    jurisdiction: list[str]  # sorted org unit ids (JSON has no sets)
    effective_from: date

    def version(self) -> AgencyVersion:
        """The version this event records."""
        return AgencyVersion(
            self.agency_id,
            AgencyKind(self.kind),
            self.name,
            frozenset(self.jurisdiction),
            self.effective_from,
        )

    def apply(self, aggregate: Registry) -> None:
        aggregate.state.apply(self.version())


class Registry(Aggregate):
    """A region's org units and agencies, each change an event in the global log."""

    TOPIC = "smd.Registry"

    class Opened(Aggregate.Created):
        """RegistryOpened: the region's registry exists (empty)."""

        TOPIC = "smd.RegistryOpened"
        region: str

    class OrgUnitDefined(OrgUnitFact):
        """OrgUnitDefined: an org unit's first version."""

        TOPIC = "smd.OrgUnitDefined"

    class OrgUnitChanged(OrgUnitFact):
        """OrgUnitChanged: an org unit's name, parent or population from a date."""

        TOPIC = "smd.OrgUnitChanged"

    class AgencyDefined(AgencyFact):
        """AgencyDefined: an agency's first version."""

        TOPIC = "smd.AgencyDefined"

    class AgencyChanged(AgencyFact):
        """AgencyChanged: an agency's name or jurisdiction from a date."""

        TOPIC = "smd.AgencyChanged"

    class Created(Aggregate.Created):
        """Never recorded: the library requires a topic on its default first event."""

        TOPIC = "smd.Registry.Created"

    def __init__(self, region: str) -> None:
        self.region = region
        self.state = RegistryState(region)

    @classmethod
    def open(cls, region: str, now: datetime) -> Registry:
        """A new, empty registry for ``region``."""
        return cls._create(cls.Opened, id=registry_id(region), timestamp=now, region=region)

    def record(self, changes: Iterable[Change], now: datetime) -> int:
        """Record each change as an event (defined the first time an id is seen)."""
        count = 0
        for c in changes:
            if isinstance(c, OrgUnitVersion):
                known = c.org_unit_id in self.state.org_units
                self.trigger_event(
                    self.OrgUnitChanged if known else self.OrgUnitDefined,
                    timestamp=now,
                    org_unit_id=c.org_unit_id,
                    kind=str(c.kind),
                    name=c.name,
                    parent=c.parent,
                    population=c.population,
                    effective_from=c.effective_from,
                )
            else:
                known = c.agency_id in self.state.agencies
                self.trigger_event(
                    self.AgencyChanged if known else self.AgencyDefined,
                    timestamp=now,
                    agency_id=c.agency_id,
                    kind=str(c.kind),
                    name=c.name,
                    jurisdiction=sorted(c.jurisdiction),
                    effective_from=c.effective_from,
                )
            count += 1
        return count


#: Topics of the registry's events in the global log (what a registry follower selects).
REGISTRY_TOPICS = (
    Registry.Opened.TOPIC,
    Registry.OrgUnitDefined.TOPIC,
    Registry.OrgUnitChanged.TOPIC,
    Registry.AgencyDefined.TOPIC,
    Registry.AgencyChanged.TOPIC,
)

#: Topics of the registry's changes: every topic above but the opening (what a registry view folds).
REGISTRY_CHANGE_TOPICS = (
    Registry.OrgUnitDefined.TOPIC,
    Registry.OrgUnitChanged.TOPIC,
    Registry.AgencyDefined.TOPIC,
    Registry.AgencyChanged.TOPIC,
)
