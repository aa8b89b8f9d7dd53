"""R16: a key-graded patient (重点) gets a monthly care-team contact (DESIGN.md R16, Q-2).

The focus categories and the key grade are ``domain.focus``. The rule is a cycle rule like R2
and R6 (``domain.rules_periodic``, docs/decisions/010):

- *episode*: key-graded and on the register, asked after each recorded fact by occurred time;
  keyed by the message id of the fact that made the patient key. The irregular-medication
  category also counts a supply that ran out: inside the walk "on" is the latest occurred time
  known at that step, so the run-out is noticed at the next fact recorded after it (the run-out
  itself warns the care team through R6 when it falls due);
- *cycle*: anchored on the latest care-team contact that *reached* the patient or family, dated
  at or after the episode opened (else the opening fact); its number is the anchor's stream
  version, so a late or duplicate fact never renumbers it;
- *opens*: ``committee`` → the committee covering the residence (it runs the care team),
  ``monthly_care_team_contact``, due ``RuleSettings.r16_contact_every`` (30 days) after the
  anchor's occurred time; with no committee on record, the governance center (``assign_committee``);
- *completed by*: the next reached contact dated after the anchor (it opens the next cycle);
- *cancelled by*: the patient is no longer key, or leaves the register.

Importing this module appends R16 to ``domain.policies.PATIENT_RULES`` (after the periodic rules).
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any

import domain.policies as policies
from domain.focus import entries, key_graded
from domain.patient_care import ContactOutcome
from domain.policies import Decisions, Responsible, RuleSettings, Trigger
from domain.registry import AgencyKind
from domain.rule_episodes import Closing, Entry, Known, Span, deregistration, left_register
from domain.rules_periodic import CycleRule, latest_after_opening

ROLE, ACTION = "committee", "monthly_care_team_contact"


def reached_contacts(patient: Any) -> list[Entry]:
    """The care-team contacts that reached the patient or the family."""
    return [
        {**e, "kind": "care_team_contact"}
        for e in patient.facts.get("care_team_contact", [])
        if e["outcome"] == ContactOutcome.REACHED
    ]


def _clock(known: list[Entry]) -> Any:
    """The latest occurred time known: "on" for a step of the walk."""
    if isinstance(known, Known):
        return max(e["at"] for e in known.last.values())
    return max(e["at"] for e in known)


def _key_on_register(lost_after: int) -> Any:
    def holds(known: list[Entry]) -> bool:
        return deregistration(known) is None and key_graded(known, _clock(known), lost_after)

    return holds


def _ended(known: list[Entry], fact: Entry) -> Closing:
    if (gone := left_register(known)) is not None:
        return gone
    return Closing(reason="the patient is no longer key-graded")


class _FocusCycles(CycleRule):
    def entries_for_anchor(self, patient: Any) -> list[Entry]:
        return reached_contacts(patient)


@lru_cache(maxsize=8)
def _cycles(lost_after: int) -> CycleRule:
    return _FocusCycles(
        "R16",
        ROLE,
        AgencyKind.COMMITTEE,
        ACTION,
        entries=entries,
        holds=_key_on_register(lost_after),
        ended=_ended,
        anchor=lambda p, span, upto: latest_after_opening(reached_contacts(p), span, upto),
        due=lambda p, anchor, upto, s: anchor["at"] + s.r16_contact_every,
    )


class KeyPatientContact:
    """R16 as a patient rule (the lost category follows R5's threshold in the settings)."""

    rule = "R16"

    def __call__(self, t: Trigger, patient: Any, responsible: Responsible, settings: RuleSettings) -> Decisions:
        return _cycles(settings.r5_misses_that_mean_lost)(t, patient, responsible, settings)

    def cycle_of(self, patient: Any, oid: Any, settings: RuleSettings | None = None) -> tuple[Span, int] | None:
        """The open episode and cycle number of obligation ``oid`` (None: not the current cycle)."""
        lost_after = (settings or RuleSettings()).r5_misses_that_mean_lost
        return _cycles(lost_after).cycle_of(patient, oid)


R16 = KeyPatientContact()

#: The focus rules, appended to the patient rules after the periodic ones.
FOCUS_RULES = (R16,)
policies.PATIENT_RULES = (*policies.PATIENT_RULES, *FOCUS_RULES)
