"""A region's rule settings as the service sees them: loaded from a file, read from the global log.

``RuleSettingsView.settings(on, as_of_position)`` is what a policy uses: the settings in force on
the trigger's date, as recorded up to the trigger's log position, so a replay decides the same
(DESIGN.md "Time, order and episodes"). ``load_file`` records the difference between the file
and the recorded settings, and nothing when there is none.
"""

from __future__ import annotations

import tomllib
from collections import OrderedDict
from collections.abc import Callable
from datetime import UTC, date, datetime
from pathlib import Path
from uuid import UUID

from eventsourcing.application import AggregateNotFoundError, Application
from eventsourcing.persistence import IntegrityError

from core.as_of import AsOfView
from domain.rule_settings import (
    RULE_SETTINGS_TOPICS,
    RegionRuleSettings,
    RuleSettingsFile,
    RuleSettingsInvalid,
    RuleSettingsState,
    diff,
    parse_rule_settings,
    rule_settings_id,
)
from domain.rules.settings import RuleSettings


class RuleSettingsWriteConflict(Exception):
    """Other writers kept changing the settings while a file was being loaded."""

    def __init__(self, attempts: int) -> None:
        super().__init__(f"the rule settings changed under us {attempts} times; load the file again")


class RuleSettingsView:
    """Rule-settings changes read from the global log, queried by date and log position."""

    def __init__(self, case_record: Application[UUID], region: str, cache_size: int = 64) -> None:
        self.region = region
        self.log: AsOfView[RuleSettingsState] = AsOfView(
            case_record,
            rule_settings_id(region),
            RULE_SETTINGS_TOPICS,
            RuleSettingsState(region),
            _with_change,
            cache_size=cache_size,
        )
        self._settings: OrderedDict[tuple[int, date], RuleSettings] = OrderedDict()
        self._cache_size = cache_size

    @property
    def position(self) -> int:
        """The log position up to which the view has read."""
        return self.log.position

    def refresh(self) -> int:
        """Read changes recorded since the last call; returns how many were new."""
        return self.log.refresh()

    def state(self, as_of_position: int | None = None) -> RuleSettingsState:
        """Every value by date as recorded up to ``as_of_position`` (default: everything). Read only."""
        return self.log.state(as_of_position)

    def settings(self, on: date, as_of_position: int | None = None) -> RuleSettings:
        """The settings in force on ``on``, as recorded up to ``as_of_position``."""
        count = self.log.count(as_of_position)
        with self.log.lock:
            key = (count, on)
            found = self._settings.get(key)
            if found is None:
                found = self._settings[key] = self.log.state_after(count).settings(on)
                if len(self._settings) > self._cache_size:
                    self._settings.popitem(last=False)
            return found


def _with_change(state: RuleSettingsState, event: RegionRuleSettings.RuleSettingsChanged) -> RuleSettingsState:
    return state.with_change(event.effective_from, event.values)


def open_rule_settings(case_record: Application[UUID], region: str) -> RuleSettingsView:
    """A rule-settings view of the region, caught up with the log."""
    view = RuleSettingsView(case_record, region)
    view.refresh()
    return view


def read_rule_settings_file(path: Path) -> RuleSettingsFile:
    """Parse a settings file; RuleSettingsInvalid says where it is wrong."""
    try:
        with open(path, "rb") as f:
            doc = tomllib.load(f)
    except FileNotFoundError:
        raise RuleSettingsInvalid(str(path), "no such file") from None
    except tomllib.TOMLDecodeError as e:
        raise RuleSettingsInvalid(str(path), f"not valid TOML: {e}") from None
    return parse_rule_settings(doc)


def load_file(case_record: Application[UUID], path: Path, *, region: str | None = None, attempts: int = 5) -> int:
    """Record the changes that make the settings match the file; returns how many (0: none)."""
    desired = read_rule_settings_file(path)
    if region is not None and desired.region != region:
        raise RuleSettingsInvalid(
            str(path), f"the file is for region {desired.region!r} but this deployment serves {region!r}"
        )
    clock: Callable[[], datetime] = getattr(case_record, "clock", lambda: datetime.now(UTC))
    for _ in range(attempts):
        try:
            aggregate: RegionRuleSettings = case_record.repository.get(rule_settings_id(desired.region))
        except AggregateNotFoundError:
            aggregate = RegionRuleSettings.open(desired.region, clock())
        changes = diff(aggregate.state, desired)
        if not changes:
            return 0
        aggregate.record(changes, clock())
        try:
            case_record.save(aggregate)
        except IntegrityError:
            continue  # another load got there first: reload and diff again
        return len(changes)
    raise RuleSettingsWriteConflict(attempts)
