"""Domain values from DESIGN.md's glossary, with the rules that check them."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from enum import StrEnum

from domain.errors import (
    OccurredInFuture,
    OccurredWithoutTimezone,
    RiskClassInconsistentWithLevel,
    RiskLevelOutOfRange,
    TimeOutOfRange,
    UnknownDiagnosis,
)

#: How far ahead of our clock an agency's occurred_at may be (their clocks drift).
CLOCK_SKEW = timedelta(minutes=5)
#: The earliest occurred time accepted when the deployment does not set SMD_EARLIEST_TIME.
EARLIEST_OCCURRED = datetime(1900, 1, 1, tzinfo=UTC)


class RiskClass(StrEnum):
    """Condition class (稳定 / 基本稳定 / 不稳定)."""

    STABLE = "stable"
    BASICALLY_STABLE = "basically_stable"
    UNSTABLE = "unstable"


class Diagnosis(StrEnum):
    """The six severe mental disorders on the register."""

    SCHIZOPHRENIA = "schizophrenia"  # 精神分裂症
    SCHIZOAFFECTIVE = "schizoaffective_disorder"  # 分裂情感性障碍
    PARANOID_PSYCHOSIS = "paranoid_psychosis"  # 偏执性精神病
    BIPOLAR = "bipolar_disorder"  # 双相障碍
    EPILEPSY_RELATED = "epilepsy_related_mental_disorder"  # 癫痫所致精神障碍
    INTELLECTUAL_DISABILITY_WITH_DISORDER = "intellectual_disability_with_mental_disorder"  # 精神发育迟滞伴发精神障碍


MIN_RISK_LEVEL, MAX_RISK_LEVEL = 0, 5
HIGH_RISK_LEVEL = 3


@dataclass(frozen=True, slots=True)
class Provenance:
    """Who recorded a fact and when: carried by every stored event.

    ``agency_id`` is authenticated by us; ``staff_id`` is the agency system's assertion;
    ``occurred_at`` is when the agency says it happened; ``message_id`` is the idempotency key
    ``<source>:<id>`` of the inbound message the fact came from.
    """

    agency_id: str
    staff_id: str | None
    occurred_at: datetime
    message_id: str


def by_occurred(entry: dict) -> tuple[datetime, int]:
    """The order of a patient's facts: occurred time, then log position (the stream version: at
    the same occurred time, the fact recorded later is the later one)."""
    return entry["at"], entry.get("v", 0)


def check_risk_level_in_range(level: int) -> None:
    """Risk levels run from 0 (none) to 5 (armed violence, arson, explosion)."""
    if not MIN_RISK_LEVEL <= level <= MAX_RISK_LEVEL:
        raise RiskLevelOutOfRange(level)


def check_class_consistent_with_level(level: int, risk_class: RiskClass) -> None:
    """Level 3-5 means unstable; level 1-2 cannot be stable (stable needs risk 0)."""
    if level >= HIGH_RISK_LEVEL and risk_class != RiskClass.UNSTABLE:
        raise RiskClassInconsistentWithLevel(level, risk_class, allowed=(RiskClass.UNSTABLE,))
    if 1 <= level < HIGH_RISK_LEVEL and risk_class == RiskClass.STABLE:
        raise RiskClassInconsistentWithLevel(
            level, risk_class, allowed=(RiskClass.BASICALLY_STABLE, RiskClass.UNSTABLE)
        )


def check_occurred_in_range(what: str, occurred_at: datetime, now: datetime, earliest: datetime | None) -> None:
    """The one range check of an occurred time: an offset, not before ``earliest``, not after now + skew.

    Comparisons only (aware datetimes compare without converting): a time such as
    0001-01-01T00:00:00+14:00, whose conversion to UTC underflows, is refused here and never
    converted. ``earliest`` None: the lower bound is left to the intake (core.door), which knows
    the deployment's setting; aggregates check the upper bound only.
    """
    if occurred_at.tzinfo is None or occurred_at.utcoffset() is None:
        raise OccurredWithoutTimezone(what)
    if earliest is not None and occurred_at < earliest:
        raise TimeOutOfRange(what, occurred_at, earliest)
    if occurred_at > now + CLOCK_SKEW:
        raise OccurredInFuture(what, occurred_at, now)


def check_date_not_before(what: str, day: date, earliest: datetime) -> None:
    """A date of a fact (a scheduled visit, a pickup, a signature) is not before the earliest day."""
    if day < earliest.date():
        raise TimeOutOfRange(what, day, earliest.date())


def check_not_in_future(what: str, occurred_at: datetime, now: datetime) -> None:
    """A fact cannot have happened later than our clock plus a small skew."""
    check_occurred_in_range(what, occurred_at, now, earliest=None)


def check_known_diagnosis(diagnosis: str) -> Diagnosis:
    """Only the six disorders of the register are accepted."""
    try:
        return Diagnosis(diagnosis)
    except ValueError:
        raise UnknownDiagnosis(diagnosis) from None
