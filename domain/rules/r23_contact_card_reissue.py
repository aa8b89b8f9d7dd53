"""R23 — the care team changed: the committee reissues the patient's emergency contact card.

Seed: Jiaobei 四(三) (every patient's family keeps an emergency contact card, 应急联系卡, naming
the village's responsible person, the community police officer and the mental-health staff
member). The card is printed from the care team as it stands (``core.contact_card``); a card
already in the family's hands goes stale when one of those three roles changes. Owner: the
committee covering the residence (it produces the cards; none on record: the governance center
is told instead, so that someone reissues it).

- *Keyed by* the care-team fact: one notice per change (assigned, replaced or removed) of a role
  the card prints (``domain.patient_care.CONTACT_CARD_ROLES``); the other roles (guardian, grid
  worker) are not on the card.
- *Opens*: the committee → ``reissue_contact_card`` (a notice: read, nothing to complete), only
  for a patient at home on the register as known at the change (in hospital or institutional
  care there is no card to reissue; the change is on the card printed at discharge).
- Imported facts and the backfill open nothing (``decide``).
"""

from __future__ import annotations

from domain.patient_care import CONTACT_CARD_ROLES, CareTeamMemberAssigned, CareTeamMemberRemoved
from domain.registry import AgencyKind
from domain.rules.engine import Condition, Decisions, History, Responsible, Trigger, notice
from domain.rules.entries import cared_for, deregistration, fact_of, lists_of
from domain.rules.settings import RuleSettings

RULE = "R23"
ACTION = "reissue_contact_card"
_KIND = {CareTeamMemberAssigned.TOPIC: "care_team_assignment", CareTeamMemberRemoved.TOPIC: "care_team_removal"}
_ROLES = frozenset(str(r) for r in CONTACT_CARD_ROLES)


class ContactCardReissue:
    """R23 (module docstring)."""

    rule = RULE
    owner = AgencyKind.COMMITTEE

    def conditions(self, settings: RuleSettings) -> tuple[Condition, ...]:
        return ()

    def __call__(self, t: Trigger, h: History, responsible: Responsible, settings: RuleSettings) -> Decisions:
        d = Decisions()
        kind = _KIND.get(t.topic)
        if kind is None:
            return d
        fact = fact_of(h.patient, kind, t.message_id)
        if fact is None or str(fact["role"]) not in _ROLES:
            return d
        # as known at the change: a later admission does not withdraw a notice already given
        known = [{**e, "kind": k} for k, found in lists_of(h.patient) for e in found if e.get("v", 0) <= t.version]
        if deregistration(known) is not None or cared_for(known):
            return d
        d.opened += notice(
            t, responsible, AgencyKind.COMMITTEE, rule=RULE, key=t.message_id, role="committee", action=ACTION
        ) or notice(
            t, responsible, AgencyKind.GOVERNANCE_CENTER, rule=RULE, key=t.message_id, role="committee", action=ACTION
        )
        return d


R23 = ContactCardReissue()
