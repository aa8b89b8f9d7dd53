"""A region's rule settings with effective dates: changes recorded in the global log.

The fields are those of ``domain.rules.settings.RuleSettings``; its defaults are the seeds' values.
Each ``RuleSettingsChanged`` says "from ``effective_from`` on, these fields have these values";
a field set to null withdraws that date's value (the earlier one holds again). The settings on
a date fold every change dated on or before it, in date order (a later recording for the same
date and field corrects the earlier one). Stored values are plain JSON: a duration is an ISO
8601 duration string limited to weeks, days, hours, minutes and seconds ("PT24H", "P3D"; a day
is 24 hours, China has no DST), a count is an integer. A field this code does not know, or a
value it cannot read, is ignored (reported by ``ignored``): the default or an earlier value
holds, so adding or retiring fields never breaks stored events.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Any
from uuid import NAMESPACE_URL, UUID, uuid5

from eventsourcing.domain import Aggregate

from domain.errors import DomainError
from domain.rules.r21_reporting_duties import check_kinds
from domain.rules.settings import RuleSettings

#: Namespace of rule-settings ids; never change it (stored settings would stop matching).
RULE_SETTINGS_NAMESPACE = uuid5(NAMESPACE_URL, "urn:smd:rule-settings")

#: Keys of a settings-file change that are not settings.
RESERVED = frozenset({"effective_from", "reason"})

_DURATION = re.compile(r"^P(?:(\d+)W)?(?:(\d+)D)?(?:T(?:(\d+)H)?(?:(\d+)M)?(?:(\d+)S)?)?$")


def rule_settings_id(region: str) -> UUID:
    """The id of a region's rule-settings aggregate."""
    return uuid5(RULE_SETTINGS_NAMESPACE, region)


class RuleSettingsInvalid(DomainError):
    """A rule-settings file or value is wrong; nothing was recorded."""

    code = "rule-settings-invalid"

    def __init__(self, where: str, problem: str) -> None:
        super().__init__(f"{where}: {problem}")


# -- values ------------------------------------------------------------------------------------


def defaults() -> dict[str, Any]:
    """Every setting and its default (the seeds' values), by field name."""
    base = RuleSettings()
    return {f.name: getattr(base, f.name) for f in dataclasses.fields(RuleSettings)}


def parse_duration(text: str) -> timedelta:
    """An ISO 8601 duration of weeks, days, hours, minutes, seconds ("PT24H", "P3D", "P1DT12H")."""
    m = _DURATION.match(text.strip().upper()) if isinstance(text, str) else None
    if m is None or text.strip().upper() in ("P", "PT"):
        raise ValueError(f"{text!r} is not an ISO 8601 duration like PT24H or P3D (no years or months)")
    w, d, h, mi, s = (int(g or 0) for g in m.groups())
    return timedelta(weeks=w, days=d, hours=h, minutes=mi, seconds=s)


def format_duration(value: timedelta) -> str:
    """The ISO 8601 form of a duration (whole days as days, the rest in hours, minutes, seconds)."""
    seconds = int(value.total_seconds())
    if seconds % 86400 == 0 and seconds:
        return f"P{seconds // 86400}D"
    h, rest = divmod(seconds, 3600)
    mi, s = divmod(rest, 60)
    return "PT" + "".join(f"{n}{u}" for n, u in ((h, "H"), (mi, "M"), (s, "S")) if n) if seconds else "PT0S"


def decode(name: str, raw: Any) -> Any:
    """A stored or file value as the setting's type; ValueError when it is not one."""
    known = defaults()
    if name not in known:
        raise ValueError(f"unknown setting {name!r}")
    kind = type(known[name])
    if kind is timedelta:
        value: Any = parse_duration(raw)
    elif type(raw) is kind or (kind is float and type(raw) is int):
        value = kind(raw)
    else:
        raise ValueError(f"{name} takes {kind.__name__}, not {raw!r}")
    if kind in (timedelta, int, float) and value <= kind():
        raise ValueError(f"{name} must be more than zero, not {raw!r}")
    if name.endswith("_kinds"):
        check_kinds(value)
    if name.endswith("_report_day") and value > 31:
        raise ValueError(f"{name} is a day of the month (1-31), not {raw!r}")
    return value


def encode(name: str, value: Any) -> Any:
    """A setting's value as stored (durations as ISO 8601 text)."""
    return format_duration(value) if isinstance(value, timedelta) else value


# -- state -------------------------------------------------------------------------------------


@dataclass
class RuleSettingsState:
    """Every recorded value by effective date; answers "the settings on this date"."""

    region: str
    raw: dict[date, dict[str, Any]] = field(default_factory=dict)  # as recorded
    values: dict[date, dict[str, Any]] = field(default_factory=dict)  # decoded, known fields only
    ignored: list[str] = field(default_factory=list)  # recorded values this code cannot use

    def apply(self, effective_from: date, values: Mapping[str, Any]) -> None:
        """Set (or with null withdraw) values from ``effective_from`` on."""
        raw, decoded = self.raw.setdefault(effective_from, {}), self.values.setdefault(effective_from, {})
        for name, value in values.items():
            raw.pop(name, None)
            decoded.pop(name, None)
            if value is None:
                continue
            raw[name] = value
            try:
                decoded[name] = decode(name, value)
            except ValueError as e:
                self.ignored.append(f"{effective_from.isoformat()} {e}: ignored, the earlier value holds")
        for entries in (self.raw, self.values):
            if not entries[effective_from]:
                del entries[effective_from]

    def copy(self) -> RuleSettingsState:
        """An independent copy (values are never changed in place; the dicts and list are)."""
        return RuleSettingsState(
            self.region,
            {day: dict(v) for day, v in self.raw.items()},
            {day: dict(v) for day, v in self.values.items()},
            list(self.ignored),
        )

    def with_change(self, effective_from: date, values: Mapping[str, Any]) -> RuleSettingsState:
        """A copy with the values applied (this state is left as it is)."""
        after = self.copy()
        after.apply(effective_from, values)
        return after

    def in_force(self, on: date) -> dict[str, tuple[Any, date | None]]:
        """Each setting's value on ``on`` and the date it holds from (None: the default)."""
        found: dict[str, tuple[Any, date | None]] = {k: (v, None) for k, v in defaults().items()}
        for day in sorted(d for d in self.values if d <= on):
            found.update({k: (v, day) for k, v in self.values[day].items()})
        return found

    def settings(self, on: date) -> RuleSettings:
        """The settings in force on ``on``."""
        return RuleSettings(**{k: v for k, (v, _) in self.in_force(on).items()})


# -- the settings file --------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class SettingsChange:
    """Values that hold from a date on (encoded as stored; None withdraws)."""

    effective_from: date
    values: dict[str, Any]
    reason: str = ""


@dataclass(frozen=True, slots=True)
class RuleSettingsFile:
    """A region's desired settings: every change by date."""

    region: str
    changes: tuple[SettingsChange, ...]


def parse_rule_settings(doc: Mapping[str, Any]) -> RuleSettingsFile:
    """A settings file (``region`` and ``[[change]]`` tables); RuleSettingsInvalid says what is wrong."""
    region = doc.get("region")
    if not isinstance(region, str) or not region:
        raise RuleSettingsInvalid("rule settings file", 'name the region: region = "990101"')
    changes, seen = [], set()
    for i, entry in enumerate(doc.get("change", []), 1):
        where = f"[[change]] number {i}"
        day = entry.get("effective_from")
        if isinstance(day, datetime) or not isinstance(day, date):
            raise RuleSettingsInvalid(where, "effective_from must be a date like 2026-01-01")
        if day in seen:
            raise RuleSettingsInvalid(where, f"effective_from {day.isoformat()} is listed twice; merge them")
        seen.add(day)
        values = {k: v for k, v in entry.items() if k not in RESERVED}
        for name, value in values.items():
            try:
                decode(name, value)
            except ValueError as e:
                raise RuleSettingsInvalid(where, f"{e}; known settings: {', '.join(defaults())}") from None
        changes.append(SettingsChange(day, values, str(entry.get("reason", ""))))
    return RuleSettingsFile(region, tuple(sorted(changes, key=lambda c: c.effective_from)))


def _same(name: str, a: Any, b: Any) -> bool:
    try:
        return bool(decode(name, a) == decode(name, b))
    except ValueError:
        return bool(a == b)


def diff(state: RuleSettingsState, desired: RuleSettingsFile) -> list[SettingsChange]:
    """The changes that make the recorded settings say what the file says (empty: nothing)."""
    wanted = {c.effective_from: c for c in desired.changes}
    out = []
    for day in sorted(set(state.raw) | set(wanted)):
        have = state.raw.get(day, {})
        want = wanted.get(day, SettingsChange(day, {}, "no longer in the settings file"))
        delta = {k: v for k, v in want.values.items() if k not in have or not _same(k, have[k], v)}
        delta.update({k: None for k in have if k not in want.values})
        if delta:
            out.append(SettingsChange(day, delta, want.reason))
    return out


# -- the aggregate ---------------------------------------------------------------------------


class RegionRuleSettings(Aggregate):
    """A region's rule settings, each change an event in the global log."""

    TOPIC = "smd.RegionRuleSettings"

    class Opened(Aggregate.Created):
        """RuleSettingsOpened: the region's settings exist (the defaults hold)."""

        TOPIC = "smd.RuleSettingsOpened"
        region: str

    class RuleSettingsChanged(Aggregate.Event):
        """RuleSettingsChanged: from ``effective_from`` on these values hold (null: withdrawn)."""

        TOPIC = "smd.RuleSettingsChanged"
        effective_from: date
        values: dict[str, Any]
        reason: str

        def apply(self, aggregate: RegionRuleSettings) -> None:
            aggregate.state.apply(self.effective_from, self.values)

    class Created(Aggregate.Created):
        """Never recorded: the library requires a topic on its default first event."""

        TOPIC = "smd.RegionRuleSettings.Created"

    def __init__(self, region: str) -> None:
        self.region = region
        self.state = RuleSettingsState(region)

    @classmethod
    def open(cls, region: str, now: datetime) -> RegionRuleSettings:
        """New settings for ``region`` (defaults only)."""
        return cls._create(cls.Opened, id=rule_settings_id(region), timestamp=now, region=region)

    def record(self, changes: Iterable[SettingsChange], now: datetime) -> int:
        """Record each change as an event; returns how many."""
        count = 0
        for c in changes:
            self.trigger_event(
                self.RuleSettingsChanged,
                timestamp=now,
                effective_from=c.effective_from,
                values=dict(c.values),
                reason=c.reason,
            )
            count += 1
        return count


#: Topic of the events that change rule settings (what a settings follower selects).
RULE_SETTINGS_TOPICS = (RegionRuleSettings.RuleSettingsChanged.TOPIC,)
