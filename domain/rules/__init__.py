"""The coordination rules, one module each (DESIGN.md section 3; docs/decisions/008, 010, 016).

| rule | module | what it asks of whom |
|---|---|---|
| R1 | ``r01_high_risk`` | level ≥ 3: the police take the patient under management |
| R2 | ``r02_joint_visits`` | unstable at home: a joint visit every 14 days |
| R3 | ``r03_mobilise_guardian`` | (basically) unstable at home: the care team mobilises the guardian |
| R4 | ``r04_visit_interval`` | at home: a visit at the interval the class asks |
| R5 | ``r05_lost_to_follow_up`` | lost to follow-up: the police locate the patient |
| R6 | ``r06_medication_supply`` | the supply runs out: pickup follow-up, care-team warning |
| R7 | ``r07_police_notice`` | a level ≥ 3 patient leaving: the destination police are told, and acknowledge (*) |
| R8 | ``r08_move_in_region`` | a move inside the region: the receiving health center answers; open work moves (*) |
| R9 | ``r09_social_guardian`` | no or weak guardian: civil affairs designates a social guardian |
| R10 | ``r10_guardianship_agreement`` | family refuses admission at level ≥ 3: an agreement |
| R11 | ``r11_after_discharge`` | discharged: a first follow-up visit |
| R12 | ``r12_refusal`` | refusal of visits or management: care team and governance told |
| R13 | ``r13_aid_review`` | hardship: civil affairs reviews aid |
| R14 | ``r14_incident`` | an incident: police response and governance review |
| R15 | ``r15_overdue`` | past the deadline: overdue, escalated (the scheduler) |
| R16 | ``r16_key_patient_contact`` | key-graded: a monthly care-team contact |
| R17 | ``r17_three_tier_review`` | the three-tier review |
| R18 | ``r18_suspected_case`` | a suspected case: assessed within 10 working days |
| R19 | ``r19_hospital_new_patient`` | the hospital's new patient: taken over within 10 working days (*) |
| R20 | ``r20_emergency`` | dangerous now: the police respond in minutes, governance coordinates (*) |
| R21 | ``r21_reporting_duties`` | reports owed by a date each period: monthly, quarterly, suspected cases (**) |
| R22 | ``r22_emergency_access_review`` | emergency access granted: governance reviews it in 5 working days (*) |
| R23 | ``r23_contact_card_reissue`` | a card's care-team role changed: the committee reissues the contact card |

(*) Asked beside ``decide`` by ``core.beside_policies``: R7 and R8 (inside the region) need the
registry at the move's destination unit, which ``Responsible`` (the residence's) does not
answer; R19 needs the recorder's agency kind
and the working-day calendar, which a ``History`` does not carry (R22 the calendar); R20's
deadlines are minutes.
(**) Not about a patient: the scheduler opens each period's duty (``core.reporting_duties``),
a submitted report completes it.

The engine (triggers, decisions, episodes, cycles) is ``engine``; the entries and the shared
conditions are ``entries``; the per-patient incremental state is ``state``. ``PATIENT_RULES``
is the one list of the rules over a patient's facts, in the fixed order every replay uses.
"""

from __future__ import annotations

from typing import Any

from domain.rules.engine import IMPORTED, Decisions, History, Responsible, Rule, Trigger, is_imported
from domain.rules.entries import FullHistory
from domain.rules.r01_high_risk import R1
from domain.rules.r02_joint_visits import R2
from domain.rules.r03_mobilise_guardian import R3
from domain.rules.r04_visit_interval import R4
from domain.rules.r05_lost_to_follow_up import R5
from domain.rules.r06_medication_supply import R6
from domain.rules.r09_social_guardian import R9
from domain.rules.r10_guardianship_agreement import R10
from domain.rules.r11_after_discharge import R11
from domain.rules.r12_refusal import R12_MANAGEMENT, R12_VISITS
from domain.rules.r13_aid_review import R13
from domain.rules.r14_incident import R14
from domain.rules.r16_key_patient_contact import R16
from domain.rules.r17_three_tier_review import R17_CITY, R17_TOWNSHIP
from domain.rules.r23_contact_card_reissue import R23
from domain.rules.settings import RuleSettings

#: Every rule over a patient's facts, in a fixed order (replays decide the same).
PATIENT_RULES: tuple[Rule, ...] = (
    R1,
    R5,
    R3,
    R9,
    R10,
    R11,
    R12_VISITS,
    R12_MANAGEMENT,
    R13,
    R14,
    R17_TOWNSHIP,
    R17_CITY,
    R2,
    R4,
    R6,
    R16,
    R23,
)


def decide(trigger: Trigger, history: History, responsible: Responsible, settings: RuleSettings) -> Decisions:
    """All rules' decisions for one patient fact (none for a fact imported from a ledger).

    ``history`` answers as of the trigger's version: the policy process's ``RuleState``, or a
    ``FullHistory``. A backfill's ``HistoryImported`` re-assesses the whole file, so it is
    always answered by walking it.
    """
    d = Decisions()
    if is_imported(trigger.message_id) or history.awaiting_go_live:
        return d  # the past opens nothing; nor does anything before the go-live assessed the patient
    rules = PATIENT_RULES
    if trigger.topic == IMPORTED:
        if not isinstance(history, FullHistory):
            history = FullHistory(history.patient, trigger.version)
        late = late_join_kind(history.patient, trigger.message_id)
        if late is not None:  # a ledger imported after go-live: only the rules its agency kind owns
            rules = tuple(r for r in PATIENT_RULES if r.owner == late)
    for rule in rules:
        d.extend(rule(trigger, history, responsible, settings))
    if trigger.topic == IMPORTED:
        d = _without_done_at_once(d)
    return d


def _without_done_at_once(d: Decisions) -> Decisions:
    """An assessment after a backfill opens only what is still to do: an obligation it would open
    and close in the same instant (already under management, already reached) is not opened."""
    closed = {i for i, _ in d.completed} | {i for i, _, _ in d.cancelled}
    opened = {a.id for a in d.opened}
    at_once = closed & opened
    return Decisions(
        opened=[a for a in d.opened if a.id not in at_once],
        completed=[c for c in d.completed if c[0] not in at_once],
        cancelled=[c for c in d.cancelled if c[0] not in at_once],
        lost=d.lost,
    )


def late_join_kind(patient: Any, message_id: str) -> str | None:
    """The agency kind of a late-joining ledger's import fact (None: re-assess every rule)."""
    found = next((e for e in reversed(patient.facts.get("import", [])) if e["key"] == message_id), None)
    return None if found is None else found.get("owner_kind")


def decide_from_file(trigger: Trigger, patient: Any, responsible: Responsible, settings: RuleSettings) -> Decisions:
    """The same decisions from the patient's whole file (as of the trigger): the oracle."""
    return decide(trigger, FullHistory(patient, trigger.version), responsible, settings)
