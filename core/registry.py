"""The registry as the rest of the service sees it: loaded from files, read from the global log.

``RegistryView`` follows the case record's notification log for the registry's topics only and
keeps every change with the log position it was recorded at. So it can answer "who was
responsible for this village on this date, as known at log position P" the same way on every
replay (DESIGN.md "Time, order and episodes"). ``load_file`` records the difference between a
registry file and the recorded registry, and nothing when there is none.
"""

from __future__ import annotations

import time
import tomllib
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta, timezone
from pathlib import Path
from uuid import UUID

from eventsourcing.application import AggregateNotFoundError, Application
from eventsourcing.persistence import IntegrityError

from core.as_of import AsOfView
from domain.registry import (
    REGISTRY_CHANGE_TOPICS,
    AgencyFact,
    AgencyKind,
    OrgUnitFact,
    Registry,
    RegistryState,
    registry_id,
)
from domain.registry_errors import RegionMismatch, RegistryFileInvalid
from domain.registry_file import RegistryFile, diff, parse_registry

#: Effective dates are calendar dates where the agencies are: China has one zone, no DST.
REGION_TZ = timezone(timedelta(hours=8), "CST")


def region_today() -> date:
    """Today's date in the region's zone (what "in force today" means)."""
    return datetime.now(REGION_TZ).date()


class RegistryWriteConflict(Exception):
    """Other writers kept changing the registry while a file was being loaded."""

    def __init__(self, attempts: int) -> None:
        super().__init__(f"the registry changed under us {attempts} times; load the file again")


@dataclass(frozen=True, slots=True)
class AgencyInfo:
    """An agency as the registry knows it on a date (what an API key resolves to)."""

    agency_id: str
    kind: AgencyKind
    name: str
    region: str
    jurisdiction: tuple[str, ...]


class RegistryView:
    """Registry changes read from the global log, queried as of a log position and a date."""

    def __init__(
        self,
        case_record: Application[UUID],
        region: str,
        *,
        today: Callable[[], date] = region_today,
        cache_size: int = 16,
    ) -> None:
        self.case_record = case_record
        self.region = region
        self.today = today
        self._refreshed_at = float("-inf")  # monotonic time of the last refresh
        # Registry changes are rare: the few distinct prefixes a replay needs fit in a small cache.
        self.log: AsOfView[RegistryState] = AsOfView(
            case_record,
            registry_id(region),
            REGISTRY_CHANGE_TOPICS,
            RegistryState(region),
            _with_change,
            cache_size=cache_size,
        )

    @property
    def position(self) -> int:
        """The log position up to which the view has read."""
        return self.log.position

    def refresh(self) -> int:
        """Read registry changes recorded since the last call; returns how many were new."""
        new = self.log.refresh()
        self._refreshed_at = time.monotonic()
        return new

    def recent_agency(self, agency_id: str, max_age: float = 1.0) -> AgencyInfo | None:
        """The agency as recorded at most ``max_age`` seconds ago (no read of the log when the
        view was refreshed since; one refresh when it was not, or when the agency is unknown):
        for authentication, where every request would otherwise read the log twice. Recording
        reads the registry as recorded now, whatever this says."""
        if time.monotonic() - self._refreshed_at > max_age:
            self.refresh()
        found = self.agency(agency_id, as_of_position=self.position)
        if found is None:  # look again after a refresh, even one that read nothing new: another
            self.refresh()  # thread (the scheduler) may have just read the change itself
            found = self.agency(agency_id, as_of_position=self.position)
        return found

    def state(self, as_of_position: int | None = None) -> RegistryState:
        """The registry as recorded up to ``as_of_position`` (default: everything). Read only."""
        return self.log.state(as_of_position)

    def current(self) -> tuple[int, RegistryState]:
        """The registry as recorded now (read from the log first) and its version: how many
        registry changes it folds, which grows with every change (a key for what is computed
        from it)."""
        version = self.log.count()
        return version, self.log.state_after(version)

    def responsible(
        self, org_unit_id: str, kind: AgencyKind | str, on: date, as_of_position: int | None = None
    ) -> str | None:
        """The agency of ``kind`` responsible for the org unit on ``on``, as recorded then."""
        return self.state(as_of_position).responsible(org_unit_id, AgencyKind(kind), on)

    def agency(self, agency_id: str, as_of_position: int | None = None, on: date | None = None) -> AgencyInfo | None:
        """The agency on ``on`` (default today), as recorded; None if it is not defined then."""
        version = self.state(as_of_position).agency(agency_id, on or self.today())
        if version is None:
            return None
        return AgencyInfo(
            agency_id=version.agency_id,
            kind=version.kind,
            name=version.name,
            region=self.region,
            jurisdiction=tuple(sorted(version.jurisdiction)),
        )


def _with_change(state: RegistryState, event: OrgUnitFact | AgencyFact) -> RegistryState:
    return state.with_change(event.version())


def open_registry(case_record: Application[UUID], region: str) -> RegistryView:
    """A registry view of the region, caught up with the log."""
    view = RegistryView(case_record, region)
    view.refresh()
    return view


def read_registry_file(path: Path) -> RegistryFile:
    """Parse a TOML registry file; RegistryFileInvalid says where it is wrong."""
    try:
        with open(path, "rb") as f:
            doc = tomllib.load(f)
    except FileNotFoundError:
        raise RegistryFileInvalid(str(path), "no such file") from None
    except tomllib.TOMLDecodeError as e:
        raise RegistryFileInvalid(str(path), f"not valid TOML: {e}") from None
    return parse_registry(doc)


def load_file(case_record: Application[UUID], path: Path, *, region: str | None = None, attempts: int = 5) -> int:
    """Record the changes that make the registry match the file; returns how many (0: none)."""
    desired = read_registry_file(path)
    if region is not None and desired.region != region:
        raise RegionMismatch(desired.region, region)
    clock: Callable[[], datetime] = getattr(case_record, "clock", lambda: datetime.now(UTC))
    for _ in range(attempts):
        try:
            registry: Registry = case_record.repository.get(registry_id(desired.region))
        except AggregateNotFoundError:
            registry = Registry.open(desired.region, clock())
        changes = diff(registry.state, desired)
        if not changes:
            return 0
        registry.record(changes, clock())
        try:
            case_record.save(registry)
        except IntegrityError:
            continue  # another load got there first: reload and diff again
        return len(changes)
    raise RegistryWriteConflict(attempts)
