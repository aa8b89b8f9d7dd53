"""Care and safety rules fired by facts: R3, R9–R14, R17 (and R18 for a suspected case).

Pure policies (no I/O; "now" is the trigger's ``recorded_at``) on the engine of
docs/decisions/008, with episodes of ``domain.rule_episodes``. Each rule's condition, episode
key, obligations, completions and cancellations are in docs/decisions/010. Deadlines come from
``RuleSettings`` and run from when the service learned the trigger (its recorded time): an
agency cannot be late for what it could not know. The periodic rules (R2, R4, R6) are in
``domain.rules_periodic``. Importing this module appends these rules, then the periodic ones,
to ``domain.policies.PATIENT_RULES``.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import date, datetime, time, timedelta
from typing import Any

import domain.policies as policies
from domain.identity import CHINA_TZ
from domain.obligation import obligation_id
from domain.patient_care import (
    HARDSHIP_AID,
    HARDSHIP_ECONOMIC_STATUSES,
    CareTeamContactRecorded,
    ContactOutcome,
)
from domain.patient_file import (
    GuardianStatus,
    IncidentReported,
    IncidentReviewed,
    PoliceRespondedToIncident,
    RefusalKind,
    ReviewTier,
)
from domain.policies import Assignment, Decisions, Responsible, RuleSettings, Trigger
from domain.registry import AgencyKind
from domain.rule_episodes import (
    Closing,
    Entry,
    EpisodeRule,
    Span,
    deregistration,
    in_hospital,
    latest,
    left_register,
    notice,
    obligation,
    of,
    risk_class,
    risk_level,
    tagged,
)
from domain.suspected_case import SuspectedCase
from domain.values import HIGH_RISK_LEVEL, RiskClass

HC, POLICE, CIVIL = AgencyKind.HEALTH_CENTER, AgencyKind.POLICE_STATION, AgencyKind.CIVIL_AFFAIRS
COMMITTEE, GOVERNANCE = AgencyKind.COMMITTEE, AgencyKind.GOVERNANCE_CENTER

# -- R11: discharged → first follow-up (no 出院即失管) ------------------------------------------------


def _discharged_unvisited(known: list[Entry]) -> bool:
    stay = latest(known, "hospital")
    if deregistration(known) or stay is None or stay["admitted"]:
        return False
    visit = latest(known, "visit")
    return visit is None or visit["at"] <= stay["at"]


def _r11_ended(known: list[Entry], fact: Entry) -> Closing:
    if (gone := left_register(known)) is not None:
        return gone
    if in_hospital(known):
        return Closing(reason="the patient was admitted to hospital again")
    stay = latest(known, "hospital")
    first = min(
        (e for e in of(known, "visit") if e["at"] > stay["at"]),  # type: ignore[index]
        key=lambda e: (e["at"], e["key"]),
    )
    return Closing(completed_by=first["key"])


def _r11_assign(
    t: Trigger, s: Span, patient: Any, responsible: Responsible, settings: RuleSettings
) -> list[Assignment]:
    return obligation(
        t,
        responsible,
        HC,
        rule="R11",
        key=s.key,
        role="health-center",
        action="first_follow_up_after_discharge",
        due_at=t.recorded_at + settings.r11_first_follow_up,
        risk_level=patient.risk_level,
    )


R11 = EpisodeRule(
    "R11",
    lambda p: tagged(p, "hospital", "visit", "deregistration"),
    _discharged_unvisited,
    _r11_ended,
    _r11_assign,
    closes=("health-center",),
)

# -- R9: no or weak guardian → a social guardian designated (Q-17) ---------------------------------

_NO_OR_WEAK = (GuardianStatus.NONE, GuardianStatus.WEAK)


def _no_or_weak_guardian(known: list[Entry]) -> bool:
    g = latest(known, "guardian")
    return deregistration(known) is None and g is not None and g["status"] in _NO_OR_WEAK


def _r9_ended(known: list[Entry], fact: Entry) -> Closing:
    if (gone := left_register(known)) is not None:
        return gone
    g = latest(known, "guardian")
    if g is not None and g["status"] == GuardianStatus.SOCIAL:
        return Closing(completed_by=g["key"])
    return Closing(reason="a capable guardian was assigned")


def _r9_assign(t: Trigger, s: Span, patient: Any, responsible: Responsible, settings: RuleSettings) -> list[Assignment]:
    # civil affairs leads (牵头单位 民政办); the committee may be designated instead, so it is told
    return obligation(
        t,
        responsible,
        CIVIL,
        rule="R9",
        key=s.key,
        role="civil-affairs",
        action="designate_social_guardian",
        due_at=t.recorded_at + settings.r9_designate_social_guardian,
    ) + notice(
        t, responsible, COMMITTEE, rule="R9", key=s.key, role="committee-notice", action="no_or_weak_guardian_notice"
    )


R9 = EpisodeRule(
    "R9",
    lambda p: tagged(p, "guardian", "deregistration"),
    _no_or_weak_guardian,
    _r9_ended,
    _r9_assign,
    closes=("civil-affairs",),
)

# -- R10: the family refuses admission of a level ≥ 3 patient → guardianship agreement ----------------


def refusal_since(known: list[Entry], refusal: RefusalKind) -> datetime | None:
    """When the refusal that holds now began (None: it does not hold), by occurred time."""
    since = None
    for e in sorted((e for e in of(known, "refusal") if e["refusal"] == refusal), key=lambda e: (e["at"], e["key"])):
        since = None if e["ended"] else (since or e["at"])
    return since


def _agreement_since(known: list[Entry], since: datetime) -> Entry | None:
    signed = [e for e in of(known, "agreement") if e["signed_on"] >= since.astimezone(CHINA_TZ).date()]
    return min(signed, key=lambda e: (e["at"], e["key"]), default=None)


def _family_refuses_high_risk(known: list[Entry]) -> bool:
    since = refusal_since(known, RefusalKind.ADMISSION_BY_FAMILY)
    level = risk_level(known)
    return (
        deregistration(known) is None
        and since is not None
        and level is not None
        and level >= HIGH_RISK_LEVEL
        and _agreement_since(known, since) is None
    )


def _r10_ended(known: list[Entry], fact: Entry) -> Closing:
    if (gone := left_register(known)) is not None:
        return gone
    since = refusal_since(known, RefusalKind.ADMISSION_BY_FAMILY)
    signed = None if since is None else _agreement_since(known, since)
    if signed is not None:
        return Closing(completed_by=signed["key"])
    if since is None:
        return Closing(reason="the family no longer refuses admission")
    return Closing(reason="the risk level fell below 3")


def _r10_assign(
    t: Trigger, s: Span, patient: Any, responsible: Responsible, settings: RuleSettings
) -> list[Assignment]:
    # J 卫生院 3(2), J 村居 6: reported to the governance center; village, guardian and care team sign
    # the agreement (the committee works with the guardian); visits become more frequent
    level = patient.risk_level
    return (
        obligation(
            t,
            responsible,
            COMMITTEE,
            rule="R10",
            key=s.key,
            role="committee",
            action="sign_guardianship_agreement",
            due_at=t.recorded_at + settings.r10_sign_agreement,
            risk_level=level,
        )
        + notice(
            t,
            responsible,
            GOVERNANCE,
            rule="R10",
            key=s.key,
            role="governance-notice",
            action="family_refuses_admission_notice",
            risk_level=level,
        )
        + notice(
            t,
            responsible,
            HC,
            rule="R10",
            key=s.key,
            role="health-center-notice",
            action="visit_more_often_notice",
            risk_level=level,
        )
    )


R10 = EpisodeRule(
    "R10",
    lambda p: tagged(p, "refusal", "assessment", "agreement", "deregistration"),
    _family_refuses_high_risk,
    _r10_ended,
    _r10_assign,
    closes=("committee",),
)

# -- R12: refusal of visits or of management → care team and governance center told ------------------


def _refusal_rule(refusal: RefusalKind) -> EpisodeRule:
    def holds(known: list[Entry]) -> bool:
        return deregistration(known) is None and refusal_since(known, refusal) is not None

    def assign(t: Trigger, s: Span, patient: Any, responsible: Responsible, settings: RuleSettings) -> list[Assignment]:
        action = f"refuses_{refusal.value}_notice"
        return notice(
            t, responsible, COMMITTEE, rule="R12", key=s.key, role="committee-notice", action=action
        ) + notice(t, responsible, GOVERNANCE, rule="R12", key=s.key, role="governance-notice", action=action)

    # notices only: nothing to complete or cancel when the refusal ends (a notice is read)
    return EpisodeRule(
        "R12",
        lambda p: tagged(p, "refusal", "deregistration"),
        holds,
        lambda known, fact: Closing(reason="the refusal ended"),
        assign,
    )


R12_VISITS = _refusal_rule(RefusalKind.VISITS)
R12_MANAGEMENT = _refusal_rule(RefusalKind.MANAGEMENT)

# -- R13: hardship flagged → civil affairs reviews aid eligibility -----------------------------------

_AID_KINDS = ("aid_applied", "aid_granted", "aid_found_ineligible", "aid_revoked")
_DECISIONS = ("aid_granted", "aid_found_ineligible")


def _hardship_stated_since(known: list[Entry]) -> datetime | None:
    """Start of the current run of economic statements that say hardship (None: not stated)."""
    since = None
    for e in sorted(
        (e for e in of(known, "circumstances") if e["economic_status"] is not None), key=lambda e: (e["at"], e["key"])
    ):
        since = (since or e["at"]) if e["economic_status"] in HARDSHIP_ECONOMIC_STATUSES else None
    return since


def _aid_pending(known: list[Entry]) -> bool:
    for aid in HARDSHIP_AID:
        step = latest(e for k in _AID_KINDS for e in of(known, k) if e["aid_type"] == aid)
        if step is not None and step["kind"] == "aid_applied":
            return True
    return False


def _needs_aid_review(known: list[Entry]) -> bool:
    if deregistration(known) is not None:
        return False
    if _aid_pending(known):
        return True
    since = _hardship_stated_since(known)
    return since is not None and not any(
        e["aid_type"] in HARDSHIP_AID and e["at"] >= since for k in _DECISIONS for e in of(known, k)
    )


def _r13_ended(known: list[Entry], fact: Entry) -> Closing:
    if (gone := left_register(known)) is not None:
        return gone
    if fact["kind"] in _DECISIONS:
        return Closing(completed_by=fact["key"])
    return Closing(reason="hardship is no longer stated")


def _r13_assign(
    t: Trigger, s: Span, patient: Any, responsible: Responsible, settings: RuleSettings
) -> list[Assignment]:
    return obligation(
        t,
        responsible,
        CIVIL,
        rule="R13",
        key=s.key,
        role="civil-affairs",
        action="review_aid_eligibility",
        due_at=t.recorded_at + settings.r13_aid_review,
    )


R13 = EpisodeRule(
    "R13",
    lambda p: tagged(p, "circumstances", *_AID_KINDS, "deregistration"),
    _needs_aid_review,
    _r13_ended,
    _r13_assign,
    closes=("civil-affairs",),
)

# -- R17: three-tier review (三级三评) ----------------------------------------------------------------


def _community_review(known: list[Entry]) -> Entry | None:
    return latest(e for e in of(known, "review") if e["tier"] == ReviewTier.COMMUNITY)


def _tier_since(known: list[Entry], tier: ReviewTier, since: datetime) -> Entry | None:
    done = [e for e in of(known, "review") if e["tier"] == tier and e["at"] >= since]
    return min(done, key=lambda e: (e["at"], e["key"]), default=None)


def _township_review_due(known: list[Entry]) -> bool:
    c = _community_review(known)
    return deregistration(known) is None and c is not None and _tier_since(known, ReviewTier.TOWNSHIP, c["at"]) is None


def _city_review_due(known: list[Entry]) -> bool:
    # the city review is for patients the latest community or township review finds unstable
    c = _community_review(known)
    if deregistration(known) is not None or c is None or _tier_since(known, ReviewTier.CITY, c["at"]) is not None:
        return False
    found = latest(e for e in of(known, "review") if e["tier"] != ReviewTier.CITY and e["at"] >= c["at"])
    return found is not None and found["risk_class"] == RiskClass.UNSTABLE


def _review_ended(tier: ReviewTier) -> Callable[[list[Entry], Entry], Closing]:
    def ended(known: list[Entry], fact: Entry) -> Closing:
        if (gone := left_register(known)) is not None:
            return gone
        c = _community_review(known)
        done = None if c is None else _tier_since(known, tier, c["at"])
        if done is not None:
            return Closing(completed_by=done["key"])
        return Closing(reason="the latest review finds the patient not unstable")

    return ended


def _r17_assign(tier: ReviewTier, kind: AgencyKind, deadline: str) -> Any:
    def assign(t: Trigger, s: Span, patient: Any, responsible: Responsible, settings: RuleSettings) -> list[Assignment]:
        return obligation(
            t,
            responsible,
            kind,
            rule="R17",
            key=s.key,
            role=tier.value,
            action=f"{tier.value}_review",
            due_at=t.recorded_at + getattr(settings, deadline),
            risk_level=patient.risk_level,
        )

    return assign


# township review: the health center (Q-4 牵头单位 卫生服务中心); city review: the psychiatric hospital
R17_TOWNSHIP = EpisodeRule(
    "R17",
    lambda p: tagged(p, "review", "deregistration"),
    _township_review_due,
    _review_ended(ReviewTier.TOWNSHIP),
    _r17_assign(ReviewTier.TOWNSHIP, HC, "r17_township_review"),
    closes=(ReviewTier.TOWNSHIP.value,),
)
R17_CITY = EpisodeRule(
    "R17",
    lambda p: tagged(p, "review", "deregistration"),
    _city_review_due,
    _review_ended(ReviewTier.CITY),
    _r17_assign(ReviewTier.CITY, AgencyKind.PSYCHIATRIC_HOSPITAL, "r17_city_review"),
    closes=(ReviewTier.CITY.value,),
)

# -- R3: basically stable or unstable at home → the care team mobilises the guardian -----------------

_MOBILISE = (RiskClass.BASICALLY_STABLE, RiskClass.UNSTABLE)


def _needs_treatment_at_home(known: list[Entry]) -> bool:
    return deregistration(known) is None and not in_hospital(known) and risk_class(known) in _MOBILISE


def _r3_ended(known: list[Entry], fact: Entry) -> Closing:
    if (gone := left_register(known)) is not None:
        return gone
    if in_hospital(known):
        return Closing(completed_by=latest(known, "hospital")["key"])  # type: ignore[index]
    return Closing(reason="the patient is stable")


def _r3_fulfilled(span: Span, patient: Any) -> str | None:
    # the care team reached the patient or the family after the episode began: mobilised
    reached = [
        e
        for e in patient.facts.get("care_team_contact", [])
        if e["outcome"] == ContactOutcome.REACHED and e["at"] >= span.opened_at
    ]
    first = min(reached, key=lambda e: (e["at"], e["key"]), default=None)
    return None if first is None else first["key"]


def _r3_assign(t: Trigger, s: Span, patient: Any, responsible: Responsible, settings: RuleSettings) -> list[Assignment]:
    return obligation(
        t,
        responsible,
        COMMITTEE,
        rule="R3",
        key=s.key,
        role="committee",
        action="mobilise_guardian_for_treatment",
        due_at=t.recorded_at + settings.r3_mobilise_guardian,
        risk_level=patient.risk_level,
    )


R3 = EpisodeRule(
    "R3",
    lambda p: tagged(p, "assessment", "hospital", "deregistration"),
    _needs_treatment_at_home,
    _r3_ended,
    _r3_assign,
    closes=("committee",),
    fulfil=_r3_fulfilled,
    fulfil_topics=frozenset({CareTeamContactRecorded.TOPIC}),
)

# -- R14: incident → governance review and police response, per incident ----------------------------


def r14_incident(trigger: Trigger, patient: Any, responsible: Responsible, settings: RuleSettings) -> Decisions:
    """R14: an incident opens a governance review and a police response, keyed by the incident id;
    the review and the response of that incident complete them. Nothing cancels them: the incident
    happened, and its review outlives the register."""
    d = Decisions()
    topic = trigger.topic
    if topic not in (IncidentReported.TOPIC, IncidentReviewed.TOPIC, PoliceRespondedToIncident.TOPIC):
        return d  # imported incidents and the backfill open nothing: the past's reviews are the past's
    kind = {
        IncidentReported.TOPIC: "incident",
        IncidentReviewed.TOPIC: "incident_review",
        PoliceRespondedToIncident.TOPIC: "incident_response",
    }[topic]
    fact = next((e for e in patient.facts.get(kind, []) if e["key"] == trigger.message_id), None)
    if fact is None:
        return d
    key = str(fact["incident_id"])
    if topic == IncidentReported.TOPIC:
        level = patient.risk_level
        d.opened += obligation(
            trigger,
            responsible,
            GOVERNANCE,
            rule="R14",
            key=key,
            role="governance",
            action="review_incident",
            due_at=trigger.recorded_at + settings.r14_review,
            risk_level=level,
        )
        d.opened += obligation(
            trigger,
            responsible,
            POLICE,
            rule="R14",
            key=key,
            role="police",
            action="respond_to_incident",
            due_at=trigger.recorded_at + settings.r14_police_response,
            risk_level=level,
        )
    else:
        role = "governance" if topic == IncidentReviewed.TOPIC else "police"
        d.completed.append((obligation_id(trigger.patient_id, "R14", key, role), trigger.message_id))
    return d


# -- R18: suspected case → the health center assesses within 10 working days --------------------------

SUSPECTED_CASE_REPORTED, SUSPECTED_CASE_ASSESSED = SuspectedCase.Reported.TOPIC, SuspectedCase.Assessed.TOPIC

#: ``working_days(start, n)`` → the n-th working day after ``start`` (the start day not counted).
WorkingDays = Callable[[date, int], date]


def weekdays(start: date, n: int) -> date:
    """Monday to Friday without holidays: the fallback when no working-day calendar is given."""
    day = start
    while n:
        day += timedelta(days=1)
        n -= day.weekday() < 5
    return day


def r18_suspected_case(
    trigger: Trigger, case: Any, responsible: Responsible, settings: RuleSettings, working_days: WorkingDays = weekdays
) -> Decisions:
    """R18: a reported suspected case gives the health center "assess" by the end of the 10th
    working day after the report was recorded (China time); the assessment completes it.

    The subject is the case, not a patient: the obligation's ``patient_id`` is the case id.
    A case is reported once, so the episode key is the case id. Registration and dismissal
    need an assessment first, so nothing cancels it.
    """
    d = Decisions()
    key = str(case.id)
    if trigger.topic == SUSPECTED_CASE_REPORTED:
        day = working_days(trigger.recorded_at.astimezone(CHINA_TZ).date(), settings.r18_assess_working_days)
        due = datetime.combine(day + timedelta(days=1), time(0), CHINA_TZ)  # the end of that working day
        d.opened += obligation(
            trigger,
            responsible,
            HC,
            rule="R18",
            key=key,
            role="health-center",
            action="assess_suspected_case",
            due_at=due,
            subject=case.id,
        )
    elif trigger.topic == SUSPECTED_CASE_ASSESSED:
        d.completed.append((obligation_id(case.id, "R18", key, "health-center"), trigger.message_id))
    return d


#: The care rules over a patient's facts, in a fixed order (replays decide the same).
CARE_RULES = (R3, R9, R10, R11, R12_VISITS, R12_MANAGEMENT, R13, r14_incident, R17_TOWNSHIP, R17_CITY)

policies.PATIENT_RULES = (*policies.PATIENT_RULES, *CARE_RULES)

# The periodic rules append themselves after these (imported last: no import order makes a cycle).
import domain.rules_periodic  # noqa: E402,F401
