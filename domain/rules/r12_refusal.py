"""R12 — a patient or family refuses visits or management: the care team and the governance
center are told.

Seed: Jiaobei 村居 5 and Qingyang Q-4 (refusals reported upwards); notices only (nothing to
complete or cancel when the refusal ends: a notice is read).

- *Episode* (one per refusal kind, visits and management): on the register and the refusal
  holds (its latest report, by occurred time, is not an end).
- *Opens*: the committee and the governance center → ``refuses_visits_notice`` or
  ``refuses_management_notice``.
"""

from __future__ import annotations

from domain.patient_file import RefusalKind
from domain.registry import AgencyKind
from domain.rules.engine import (
    Assignment,
    Closing,
    Condition,
    EpisodeRule,
    History,
    Responsible,
    Span,
    Trigger,
    notice,
)
from domain.rules.entries import REREGISTRATION, Entry, deregistration, refusal_since
from domain.rules.settings import RuleSettings


def _refusal_rule(refusal: RefusalKind) -> EpisodeRule:
    def holds(known: list[Entry]) -> bool:
        return deregistration(known) is None and refusal_since(known, refusal) is not None

    def assign(t: Trigger, s: Span, h: History, responsible: Responsible, settings: RuleSettings) -> list[Assignment]:
        action = f"refuses_{refusal.value}_notice"
        return notice(
            t, responsible, AgencyKind.COMMITTEE, rule="R12", key=s.key, role="committee-notice", action=action
        ) + notice(
            t, responsible, AgencyKind.GOVERNANCE_CENTER, rule="R12", key=s.key, role="governance-notice", action=action
        )

    ended = Condition(
        f"R12-{refusal.value}",
        ("refusal", "deregistration", REREGISTRATION),
        holds,
        lambda known, fact: Closing(reason="the refusal ended"),
    )
    return EpisodeRule("R12", AgencyKind.COMMITTEE, ended, assign)


R12_VISITS = _refusal_rule(RefusalKind.VISITS)
R12_MANAGEMENT = _refusal_rule(RefusalKind.MANAGEMENT)
