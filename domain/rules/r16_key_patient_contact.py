"""R16 — a key-graded patient (重点) gets a monthly care-team contact.

Seed: Qingyang Q-2 and DESIGN.md R16 (the ten focus categories, ``domain.focus``); owner: the
committee covering the residence (it runs the care team; none on record: the governance
center, ``assign_committee``); interval: ``RuleSettings.r16_contact_every`` (30 days). The
lost category follows R5's threshold (``RuleSettings.r5_misses_that_mean_lost``).

- *Episode*: key-graded and on the register, asked after each recorded fact; keyed by the
  fact that made the patient key. The irregular-medication category also counts a supply that
  ran out: "on" is the latest occurred time known at that step, so the run-out is noticed at
  the next fact recorded after it (the run-out itself warns the care team through R6).
- *Cycles*: each a ``monthly_care_team_contact`` obligation due 30 days after its anchor: the
  latest care-team contact that reached the patient or family, dated at or after the episode
  opened (else the opening fact). The next reached contact completes the cycle and opens the next.
- *Cancelled by*: the patient is no longer key, or leaves the register.
"""

from __future__ import annotations

from functools import lru_cache

from domain import focus  # the module, not its names: domain.focus reads domain.rules.entries
from domain.patient_care import ContactOutcome
from domain.registry import AgencyKind
from domain.rules.engine import Closing, Condition, CycleRule, History, left_register
from domain.rules.entries import Entry, Known, deregistration
from domain.rules.settings import RuleSettings


def _clock(known: Known) -> object:
    """The latest occurred time known: "on" for a step of the walk."""
    return max(e["at"] for e in known.last.values())


def _ended(known: list[Entry], fact: Entry) -> Closing:
    if (gone := left_register(known)) is not None:
        return gone
    return Closing(reason="the patient is no longer key-graded")


@lru_cache(maxsize=8)
def _rule(lost_after: int) -> CycleRule:
    def holds(known: Known) -> bool:  # type: ignore[type-arg]
        return deregistration(known) is None and focus.key_graded(known, _clock(known), lost_after)  # type: ignore[arg-type]

    return CycleRule(
        "R16",
        "committee",
        AgencyKind.COMMITTEE,
        "monthly_care_team_contact",
        Condition(f"R16-{lost_after}", ("*",), holds, _ended),
        anchor_kind="care_team_contact",
        anchors=lambda e: e["outcome"] == ContactOutcome.REACHED,
        due=lambda h, anchor, upto, s: anchor["at"] + s.r16_contact_every,
    )


class KeyPatientContact:
    """R16 as a patient rule: the cycle rule for the lost threshold in force."""

    rule = "R16"
    owner = AgencyKind.COMMITTEE

    def conditions(self, settings: RuleSettings) -> tuple[Condition, ...]:
        return (_rule(settings.r5_misses_that_mean_lost).condition,)

    def cycles(self, settings: RuleSettings) -> CycleRule:
        return _rule(settings.r5_misses_that_mean_lost)

    def __call__(self, t, h: History, responsible, settings: RuleSettings):  # type: ignore[no-untyped-def]
        return _rule(settings.r5_misses_that_mean_lost)(t, h, responsible, settings)


R16 = KeyPatientContact()
