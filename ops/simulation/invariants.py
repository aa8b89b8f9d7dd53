"""The invariant checker: an independent referee of a store's whole global log (no code shared with the rules).

It reads the log as plain records (``ops.simulation.log.Record``) and recomputes, from the facts
alone, what DESIGN.md says the coordination engine must have recorded. It imports no policy
code (nothing from ``domain`` or ``core``): the conditions below are written again here from
DESIGN.md ("Time, order and episodes", "Coordination rules") and decisions 008 and 010, so a
bug in a policy cannot hide itself by being shared with its referee.

How it reads the facts (DESIGN.md "Time, order and episodes")
    A *fact* is a record with ``message_id`` and ``occurred_at`` (every agency fact carries
    them; policy and registry events do not). A patient's facts are walked in **recorded**
    order (stream version); after each one the state is taken **by occurred time** (the latest
    fact of a kind by ``occurred_at``, ties broken by ``message_id``). An *episode* of a
    condition opens at the first recorded fact after which the condition holds while it did not
    before, and its key is that fact's message id; it closes at the first fact after which it no
    longer holds; re-entry opens a new one. Facts imported from a ledger (``ledger:`` message
    ids) decide nothing; a later ``smd.HistoryImported`` fact decides for every episode still
    open then ("a backfill ... after the import, rules assess only the current state").
    Obligation ids are ``uuid5(uuid5(NAMESPACE_URL, "urn:smd:obligation"),
    "patient|rule|episode key|role[|cycle]")`` (decision 008), recomputed here to name the cycles of
    R2, R4 and R6.

The invariants (``Violation.invariant``)
    1. R1, "R1 when a patient enters level >= 3 (and again only after leaving and re-entering)":
       ``r1-entry-opens-one-obligation`` — every decided entry (the level of the latest
       assessment, ``smd.VisitRecorded`` or ``smd.RiskAssessed``, reaches 3) has exactly one R1
       obligation (``take_under_management``, or ``assign_police_station`` when no police covers
       the place) with ``episode_key`` = the entering fact's message id, triggered by it (or by
       the ``HistoryImported`` that decided it); ``r1-obligation-has-entry`` — the converse.
    2. R5, "R5 when a patient becomes lost"; decision 008's R5 rows:
       ``r5-lost-episode-opens-one-locate`` and ``r5-lost-episode-derives-one-lost-status`` —
       every decided episode of "misses in a row >= threshold" (``smd.VisitMissed`` scheduled
       after the occurred date of the latest visit; all of them when there is no visit) has
       exactly one R5 locate obligation and exactly one ``smd.LostToFollowUp`` with its key;
       ``r5-declared-unknown-opens-one-locate`` — every decided episode of "the latest
       ``smd.WhereaboutsDeclared`` says unknown" has exactly one locate obligation and no
       ``LostToFollowUp``; ``r5-locate-has-episode`` and ``r5-lost-status-has-episode`` — the
       converse; ``r5-lost-status-compensated`` — "when a late event changes the facts ... the
       patient's LostToFollowUpWithdrawn-style correction": a derived status whose misses stop
       holding is ended (a visit dated on/after the last miss) or withdrawn (a visit between the
       misses) because of that fact, exactly once, and never while the misses still hold.
    3. R2, "class unstable and not in hospital → joint visit at least every 14 days"; decision
       010's R2 row (cycle = stream version of the anchor: the opening fact, then the latest
       joint visit by occurred time dated on/after the opening): ``r2-episode-opens-first-cycle``
       — every decided episode of "unstable, not in hospital, on the register" has its first
       ``joint-visit`` cycle, opened by the fact that decided the episode;
       ``r2-joint-visit-opens-next-cycle`` — each new anchor opens its cycle;
       ``r2-one-cycle-open-at-a-time`` — no two joint-visit obligations of one episode are open
       at one instant; ``r2-cycle-has-episode`` — no joint-visit obligation outside those.
    4. "An obligation's identity is (patient, rule, episode key)" and "completed (with the event
       that completed it)": ``obligation-has-trigger-fact`` — every ``smd.ObligationAssigned``
       names, in ``trigger_message_id`` and ``trigger_position``, an agency fact recorded before
       it (earlier position, recorded at or before it) on its subject's stream (the patient, or
       for R18 the suspected case); an R6 run-out warning names ``due:<obligation id>``, an
       obligation already marked overdue; an R21 reporting duty (decision 023, about an agency,
       not a patient) instead: ``r21-duty-names-a-period``, ``r21-due-at-the-end-of-the-named-day``
       (progress by the 25th, the quarterly report by the 28th of the quarter's last month,
       suspected cases by the month's end), ``r21-opened-once-its-period-began``,
       ``r21-opened-by-its-period-or-its-report`` (``R21:<duty>|<period>``, or the owner's report
       of that duty and period) and ``r21-completed-by-its-report``; ``completion-names-recorded-fact`` — every
       ``smd.ObligationCompleted`` with ``fulfilled_by`` names a fact recorded before it on the
       same subject's stream.
    5. "Compensations, never rewrites" and decision 010's completed/cancelled columns:
       ``open-obligation-still-holds`` — every obligation (not notice) still open at the end of
       the log still has its condition on the final state by occurred time: R21 (a reporting
       duty, decision 023) no report of its duty and period from its owner; on the register
       (every rule but R14, R18, R21 and tasks); R1 level >= 3, in the current R1 episode, not under police
       management; R5 its lost episode still open (misses not located) or whereabouts still
       declared unknown; R2 the current R2 episode and, for a joint visit, its current cycle
       (legal duty: not told since it opened); R3 class basically stable or unstable, not in
       hospital, no care-team contact that reached the family since it opened; R4 and R6 not in
       hospital, the current episode at home (R4's first keyed ``registration``) and its current
       cycle (R4: the latest visit dated since the episode opened; R6: the latest *recorded*
       pickup since it opened; else the opening fact); R9 guardian none or weak; R10
       level >= 3 and the family still refusing admission; R11 the latest hospital fact a
       discharge with no visit after it; R17 the review still missing since the latest
       community review; R18 the suspected case not assessed.
    6. R15, "the facts that a deadline passed (ObligationOverdue, escalation) are stored when the
       deadline passes": ``r15-overdue-exactly-once`` — an obligation is expected overdue iff at
       some scheduler run s >= due_at it was open (assigned at or before s, not completed or
       cancelled at or before s, by recorded time); then exactly one ``smd.ObligationOverdue``,
       recorded at the first such s; otherwise none; ``r15-overdue-escalated`` — it names the
       governance center it escalated to; ``r15-notice-never-overdue`` — "R15 does not escalate
       notices".

    The rules and facts of invariants 7–11 (risk escalation, R19, R20, tasks, institutional
    care, R21) are decided on the patient's file *as of each fact* (recorded order;
    "latest" and "before" by occurred time, then stream version, as the engine orders a file), from
    decided facts only (not a ledger's, not while a go-live has not assessed the patient: a
    ``smd.GoLiveJoined`` after the latest ``smd.HistoryImported``). Agency kinds come from the
    registry's records in the log (``smd.AgencyDefined`` / ``smd.AgencyChanged``).
    7. "A derived RiskEscalated fact whenever a patient's level or class worsens (by occurred time,
       with the level before and after)": ``risk-escalation-derived-once`` — every decided
       assessment (visit or risk assessment) whose level is higher, or class worse, than the
       assessment just before it by occurred time among those on file has exactly one
       ``smd.RiskEscalated`` with its key, occurred time, levels and classes;
       ``risk-escalation-has-worsening`` — the converse.
    8. R19, "psychiatric hospital registers or diagnoses a patient → health center: take over (first
       follow-up) within 10 working days; governance center notified, police too at level >= 3":
       ``r19-hospital-patient-taken-over`` — the first decided registration or unrevoked diagnosis
       recorded by an agency of the psychiatric-hospital kind, for a patient on the register whom
       no visit has reached, opens exactly one ``take_over_from_hospital`` owned by a health center
       (due at a China midnight 12-30 days after it was recorded: a bound) and a notice to a
       governance center, and to a police station iff the latest level then is >= 3;
       ``r19-take-over-has-hospital-fact`` — the converse (no R19 obligation or notice otherwise);
       ``r19-first-visit-completes`` — it is completed by the first visit, as recorded, that is the
       earliest visit dated on/after the hospital's first fact; cancelled by leaving the register
       before any such visit (or a revocation); else still open.
    9. R20, "a patient is reported dangerous to self or others now, or assessed >= 4 at home → police:
       respond within minutes; governance center: coordinate; care team notified":
       ``r20-emergency-opens-the-flow`` — every decided ``smd.RiskEscalationReported``, and every
       decided assessment >= 4 while not in hospital or institutional care, of a patient on the
       register, recorded at most 6 h after it occurred and dated more than 2 h after every earlier
       emergency on file, opens (keyed by its message id) the police station's
       ``respond_to_emergency`` due 30 minutes after it was recorded, the governance center's
       ``coordinate_emergency`` due 2 hours after, and notices to a committee and a health center;
       ``r20-flow-has-emergency`` — the converse; ``r20-answer-completes`` — each part is closed
       first by the first ``smd.EmergencyResponded`` (police) or ``smd.EmergencyCoordinated``
       (governance) recorded after it and dated from the emergency to 7 days after it, or by
       leaving the register, whichever is recorded first; else it is still open (and R15 marks it
       overdue: invariant 6).
    10. Tasks people assign: ``task-opens-one-obligation`` — every ``smd.TaskAssigned`` opens exactly
       one ``TASK`` ``assigned_task`` obligation (id from the task, key the task id) for its
       assignee, with its deadline, about its patient (else the task itself), triggered by it (the
       trigger lies on the task's own stream: invariant 4); ``task-obligation-has-task`` — the
       converse; ``task-completed-by-owner`` — a task is completed only by its assignee's word
       (``by_agency``: the work queue's "done"). A task outlives the register (invariant 5).
    11. Institutional care, "the rules treat the patient as cared for (like a hospital stay) while it
       lasts": the state's *cared for* (the latest ``smd.HospitalStayRecorded`` an admission, or the
       latest ``smd.InstitutionalCareRecorded`` a start, by occurred time) replaces "in hospital"
       wherever the rules for patients at home ask it: R2's episodes (invariant 3), R3, R4 and R6 at
       the end (invariant 5), R20's assessments (invariant 9); R11 still reads hospital stays only;
       ``cared-for-opens-no-home-rule`` — no R2, R3, R4 or R6 obligation is opened by a fact after
       which the patient is cared for away from home.
    12. Two linked regions (decisions 039, 042, 047, 050; ``check_regions`` over both logs, recorded
       times on one clock): ``move-ends-with-one-responsible-region`` — a move inside a region
       changes the residence once to its destination iff accepted; a move to the linked region
       ends with the patient on exactly one of the two registers (the destination's iff the
       origin's log holds the acceptance first; an acceptance crossed by a cancellation is voided),
       an acceptance not yet heard by the origin within a day of the end excepted; a move to a
       region without the system deregisters the patient (moved out) iff its relayed answer is an
       acceptance; ``move-to-a-linked-region-opens-a-handover``; ``always-one-region-responsible``
       — a patient handed over is on at least one register at every instant (a deregistration
       that is no move out ends that); ``no-obligation-from-a-fact-fed-by-another-region``. In one
       log, R8's obligations between regions have the handover as subject, and a handover event
       (``handover:<id>:<version>``) as trigger or fulfilment; the answer obligation holds until
       the handover is answered or cancelled (invariants 4 and 5).

The counts (``Findings.counts``; the simulation asserts minimums on them)
    ``records``, ``scheduler runs``, ``facts``, ``facts <topic>``, ``late facts`` (recorded more
    than a day after they occurred), ``out of order facts`` (occurred before a fact recorded
    earlier on the same stream), ``patients``, ``suspected cases``, ``obligations``,
    ``notices``, ``obligations <rule>``, ``notices <rule>``, ``completed <rule>``,
    ``cancelled <rule>``, ``overdue``, ``overdue <rule>``, ``r1 entries`` (decided entries),
    ``r1 entries in the imported past`` (opened by ledger facts, closed before any
    HistoryImported: nothing to open), ``lost episodes (misses)``, ``lost episodes (declared)``,
    ``lost episodes (misses) closed``, ``lost derived``, ``lost withdrawn``, ``lost ended``,
    ``lost compensations`` (withdrawn + ended), ``r2 episodes``, ``r2 cycles`` (cycles expected,
    i.e. joint-visit obligations due to exist), ``open at end`` (obligations still open after the
    last record); the coordination facts: ``registrations with a household region`` (v2), ``risk escalated``
    (derived), ``risk escalations expected``, ``r19 take-overs``, ``r19 take-overs completed`` /
    ``cancelled`` / ``never``, ``r19 police told``, ``r20 emergencies`` (``reported`` /
    ``assessed``), ``r20 police answered`` / ``unanswered``, ``r20 governance answered`` /
    ``unanswered``, ``tasks``, ``tasks completed``, ``in institutional care at the end``.

Not checked exactly (and why)
    Which agency is responsible for a place comes from the registry as recorded, which this
    checker does not model: an entry where no agency (not even the governance center) covers
    the residence opens nothing by design, and is reported here as a missing obligation. The
    misses threshold is one number for the whole log (``misses_that_mean_lost``): rule settings
    changed in the log are not followed. Deadlines (``due_at``) are taken as recorded; their
    length is not recomputed. R3, R4, R6, R9-R13, R17 are checked only at the end of the log
    (invariant 5), not episode by episode; R13 and R16 (focus categories) there only for the
    register; R7/R8 not at all; notices only for their trigger and for R15. An episode is
    expected to open its obligations from the fact that opened it even after deregistration
    (R1 and R5 do not ask for the register), so such an obligation shows up in invariant 5.
    R19's deadline is a bound (the working-day calendar is not recomputed); R20's minutes and R19's
    ten days are the rule settings' defaults, not followed through settings changed in the log.
    Tasks completed by their owner's word name no fact; whether an act came in time is R15's
    (invariant 6). Acknowledgements and read receipts are not checked.
"""

from __future__ import annotations

import bisect
from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta, timezone
from uuid import NAMESPACE_URL, uuid5

from ops.simulation.log import Record

# -- topics and words of DESIGN.md -------------------------------------------------------------

REGISTERED = "smd.PatientRegistered"
VISIT = "smd.VisitRecorded"
MISSED = "smd.VisitMissed"
RISK = "smd.RiskAssessed"
HOSPITAL = "smd.HospitalStayRecorded"
GUARDIAN = "smd.GuardianRecorded"
POLICE_MANAGEMENT = "smd.PoliceManagementRecorded"
WHEREABOUTS = "smd.WhereaboutsDeclared"
DEREGISTERED = "smd.PatientDeregistered"
IMPORTED = "smd.HistoryImported"
CONTACT = "smd.CareTeamContactRecorded"
REFUSAL = "smd.RefusalRecorded"
REVIEW = "smd.ReviewRecorded"
LEGAL_DUTY = "smd.LegalDutyNoticeGiven"
PICKUP = "smd.MedicationDispensed"
CASE_REPORTED = "smd.SuspectedCaseReported"
CASE_ASSESSED = "smd.SuspectedCaseAssessed"
DIAGNOSIS = "smd.DiagnosisRecorded"
INSTITUTION = "smd.InstitutionalCareRecorded"
DANGER = "smd.RiskEscalationReported"
RESPONDED = "smd.EmergencyResponded"
COORDINATED = "smd.EmergencyCoordinated"
JOINED = "smd.GoLiveJoined"
TASK_ASSIGNED = "smd.TaskAssigned"
ESCALATED = "smd.RiskEscalated"
AGENCY_TOPICS = frozenset({"smd.AgencyDefined", "smd.AgencyChanged"})

ASSIGNED = "smd.ObligationAssigned"
ACKNOWLEDGED = "smd.ObligationAcknowledged"
COMPLETED = "smd.ObligationCompleted"
CANCELLED = "smd.ObligationCancelled"
OVERDUE = "smd.ObligationOverdue"
LOST = "smd.LostToFollowUp"
LOST_WITHDRAWN = "smd.LostToFollowUpWithdrawn"
LOST_ENDED = "smd.LostToFollowUpEnded"

HIGH_RISK = 3  # DESIGN.md: R1 "risk assessed at level >= 3"
UNSTABLE, BASICALLY_STABLE = "unstable", "basically_stable"
IMPORTED_PREFIX = "ledger:"  # facts from a ledger decide nothing (a backfill records history)
R21 = "R21"  # reporting duties: opened by time, about an agency (decision 023)
REPORT_SUBMITTED = "smd.ReportSubmitted"
DUE_PREFIX = "due:"  # a notice opened when an obligation fell due names that obligation
LATE = timedelta(days=1)
CHINA = timezone(timedelta(hours=8))  # dates agencies state (legal duty told on ...) are China dates
OBLIGATION_NAMESPACE = uuid5(NAMESPACE_URL, "urn:smd:obligation")  # decision 008

R1_ACTIONS = frozenset({"take_under_management", "assign_police_station"})
R5_ACTIONS = frozenset({"locate_patient", "assign_police_station"})
R2_CYCLE_ACTIONS = frozenset({"joint_visit", "assign_health_center"})
TASK_RULE = "TASK"
#: An incident's review outlives the register; a case is no patient; a task stands until its owner does it.
OUTLIVES_REGISTER = frozenset({"R14", "R18", "TASK"})


# -- the API ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Violation:
    """One broken invariant: which, about what, and what is wrong (ids and dates only)."""

    invariant: str
    subject: str
    detail: str


@dataclass
class Findings:
    """Every violation found, and counts of what the log holds."""

    violations: list[Violation] = field(default_factory=list)
    counts: Counter[str] = field(default_factory=Counter)

    @property
    def ok(self) -> bool:
        """True when no invariant is broken."""
        return not self.violations

    def of(self, invariant: str) -> list[Violation]:
        """The violations of one invariant."""
        return [v for v in self.violations if v.invariant == invariant]

    def add(self, invariant: str, subject: object, detail: str) -> None:
        self.violations.append(Violation(invariant, str(subject), detail))


def check(records: Iterable[Record], *, scheduler_runs: Sequence[datetime], misses_that_mean_lost: int = 3) -> Findings:
    """Every violation of the invariants (module docstring) in a whole global log.

    ``scheduler_runs``: the instants the R15 scheduler ran, each after the policies and the work
    queue caught up; it marks overdue every open obligation whose ``due_at`` is at or before it.
    """
    findings = Findings()
    log = _Log.read(records, findings.counts)
    findings.counts["scheduler runs"] = len(scheduler_runs)
    histories = {pid: _walk(facts, misses_that_mean_lost) for pid, facts in log.patients.items()}
    findings.counts["in institutional care at the end"] = sum(h.state.in_institutional_care for h in histories.values())
    _check_r1(log, histories, findings)
    _check_r5(log, histories, findings)
    _check_r2(log, histories, findings)
    _check_triggers(log, findings)
    _check_open_at_end(log, histories, findings)
    _check_overdue(log, sorted(scheduler_runs), findings)
    _check_beside(log, findings)
    return findings


# -- reading the log once -------------------------------------------------------------------------


def _is_fact(r: Record) -> bool:
    return "message_id" in r.fields and "occurred_at" in r.fields


def _decides(fact: Record) -> bool:
    """Whether the rules decide on this fact (a ledger's facts are history: they do not)."""
    return not fact["message_id"].startswith(IMPORTED_PREFIX)


@dataclass
class _Obligation:
    """One obligation or notice, as its events say."""

    id: str
    assigned: Record | None = None
    closed: Record | None = None  # the first completion or cancellation
    overdue: list[Record] = field(default_factory=list)
    completions: list[Record] = field(default_factory=list)

    @property
    def subject(self) -> str:
        return str(self.assigned["patient_id"]) if self.assigned else "?"

    @property
    def rule(self) -> str:
        return self.assigned["rule"] if self.assigned else "?"

    @property
    def key(self) -> str:
        return self.assigned["episode_key"] if self.assigned else "?"

    @property
    def is_notice(self) -> bool:
        return self.assigned is not None and self.assigned["kind"] == "notice"

    def open_at(self, instant: datetime) -> bool:
        """Assigned at or before ``instant`` and not closed at or before it (recorded times)."""
        if self.assigned is None or self.assigned.recorded_at > instant:
            return False
        return self.closed is None or self.closed.recorded_at > instant


@dataclass
class _LostStatus:
    """One derived lost-to-follow-up status (``LostEpisode``) and its corrections."""

    id: str
    derived: Record | None = None
    closings: list[Record] = field(default_factory=list)


@dataclass
class _Log:
    """The log sorted into what the checks read: facts per stream, obligations, lost statuses."""

    facts: dict[str, list[Record]] = field(default_factory=lambda: defaultdict(list))
    by_message: dict[str, Record] = field(default_factory=dict)
    patients: dict[str, list[Record]] = field(default_factory=dict)
    cases: dict[str, list[Record]] = field(default_factory=dict)
    obligations: dict[str, _Obligation] = field(default_factory=dict)
    lost: dict[str, _LostStatus] = field(default_factory=dict)
    agency_kinds: dict[str, str] = field(default_factory=dict)  # from the registry's records
    escalations: list[Record] = field(default_factory=list)  # derived RiskEscalated
    tasks: dict[str, Record] = field(default_factory=dict)  # task id → its TaskAssigned
    handovers: dict[str, list[Record]] = field(default_factory=lambda: defaultdict(list))  # R8 across regions

    @classmethod
    def read(cls, records: Iterable[Record], counts: Counter[str]) -> _Log:
        log = cls()
        latest_occurred: dict[str, datetime] = {}
        for r in records:
            counts["records"] += 1
            if _is_fact(r):
                log._fact(r, latest_occurred, counts)
            elif r.topic in _OBLIGATION_TOPICS:
                log._obligation_event(r, counts)
            elif r.topic in (LOST, LOST_WITHDRAWN, LOST_ENDED):
                log._lost_event(r, counts)
            elif r.topic in AGENCY_TOPICS:
                log.agency_kinds[r["agency_id"]] = str(r["kind"])
            elif r.topic == ESCALATED:
                log.escalations.append(r)
                counts["risk escalated"] += 1
            elif r.topic in HANDOVER_TOPICS:
                log.handovers[str(r.stream)].append(r)
        for stream, facts in log.facts.items():
            facts.sort(key=lambda f: f.version)
            topics = {f.topic for f in facts}
            if REGISTERED in topics:
                log.patients[stream] = facts
            elif CASE_REPORTED in topics:
                log.cases[stream] = facts
            elif TASK_ASSIGNED in topics:
                log.tasks[stream] = next(f for f in facts if f.topic == TASK_ASSIGNED)
        counts["patients"] = len(log.patients)
        counts["suspected cases"] = len(log.cases)
        return log

    def _fact(self, r: Record, latest_occurred: dict[str, datetime], counts: Counter[str]) -> None:
        stream = str(r.stream)
        self.facts[stream].append(r)
        self.by_message.setdefault(r["message_id"], r)
        counts["facts"] += 1
        counts[f"facts {r.topic}"] += 1
        if r.topic == REGISTERED and r.get("household_region"):
            counts["registrations with a household region"] += 1  # v2 (a v1 upcast has none)
        occurred = r["occurred_at"]
        if r.recorded_at - occurred > LATE:
            counts["late facts"] += 1
        before = latest_occurred.get(stream)
        if before is not None and occurred < before:
            counts["out of order facts"] += 1
        latest_occurred[stream] = occurred if before is None else max(before, occurred)

    def _obligation_event(self, r: Record, counts: Counter[str]) -> None:
        o = self.obligations.setdefault(str(r.stream), _Obligation(str(r.stream)))
        if r.topic == ASSIGNED:
            o.assigned = r
            counts[f"{'notices' if r['kind'] == 'notice' else 'obligations'} {r['rule']}"] += 1
            counts["notices" if r["kind"] == "notice" else "obligations"] += 1
        elif r.topic in (COMPLETED, CANCELLED):
            if r.topic == COMPLETED:
                o.completions.append(r)
            o.closed = o.closed or r
            counts[f"{'completed' if r.topic == COMPLETED else 'cancelled'} {o.rule}"] += 1
        elif r.topic == OVERDUE:
            o.overdue.append(r)
            counts["overdue"] += 1
            counts[f"overdue {o.rule}"] += 1

    def _lost_event(self, r: Record, counts: Counter[str]) -> None:
        status = self.lost.setdefault(str(r.stream), _LostStatus(str(r.stream)))
        if r.topic == LOST:
            status.derived = r
            counts["lost derived"] += 1
        else:
            status.closings.append(r)
            counts["lost withdrawn" if r.topic == LOST_WITHDRAWN else "lost ended"] += 1
            counts["lost compensations"] += 1

    def of_rule(self, rule: str, *, notices: bool = False) -> list[_Obligation]:
        """The obligations (or notices) of one rule."""
        return [o for o in self.obligations.values() if o.assigned and o.rule == rule and o.is_notice == notices]


_OBLIGATION_TOPICS = frozenset({ASSIGNED, ACKNOWLEDGED, COMPLETED, CANCELLED, OVERDUE})


# -- a patient's state by occurred time, kept up to date fact by fact -----------------------------------


def _later(new: Record, old: Record | None) -> bool:
    """``new`` occurred after ``old`` (the message id breaks ties, as in every arrival order)."""
    return old is None or (new["occurred_at"], new["message_id"]) > (old["occurred_at"], old["message_id"])


@dataclass
class _State:
    """The latest fact of each kind by occurred time, and the missed visits."""

    latest: dict[str, Record] = field(default_factory=dict)
    misses: list[date] = field(default_factory=list)  # scheduled dates, sorted
    deregistered: Record | None = None
    last_pickup: Record | None = None  # the latest *recorded* pickup (every pickup adds supply)
    reached_since: datetime | None = None  # the latest care-team contact that reached the family
    legal_duty_on: date | None = None  # the latest date the guardian was told of the legal duty
    reviews: dict[str, list[datetime]] = field(default_factory=lambda: defaultdict(list))

    def add(self, fact: Record) -> None:
        topic = fact.topic
        if topic == VISIT:
            self._keep("visit", fact)
            self._keep("assessment", fact)
            if fact["joint"]:
                self._keep("joint visit", fact)
        elif topic == RISK:
            self._keep("assessment", fact)
        elif topic == MISSED:
            bisect.insort(self.misses, fact["scheduled_on"])
        elif topic == DEREGISTERED:
            self.deregistered = self.deregistered or fact
        elif topic == PICKUP:
            self.last_pickup = fact
        elif topic in _KEPT:
            self._keep(_KEPT[topic], fact)
        self._add_care(fact)

    def _add_care(self, fact: Record) -> None:
        topic = fact.topic
        if topic == CONTACT and fact["outcome"] == "reached":
            at = fact["occurred_at"]
            self.reached_since = at if self.reached_since is None else max(self.reached_since, at)
        elif topic == LEGAL_DUTY:
            on = fact["given_on"]
            self.legal_duty_on = on if self.legal_duty_on is None else max(self.legal_duty_on, on)
        elif topic == REFUSAL and fact["refusal"] == "admission_by_family":
            self._keep("admission refusal", fact)
        elif topic == REVIEW:
            self.reviews[fact["tier"]].append(fact["occurred_at"])
            if fact["tier"] == "community":
                self._keep("community review", fact)

    def _keep(self, kind: str, fact: Record) -> None:
        if _later(fact, self.latest.get(kind)):
            self.latest[kind] = fact

    def get(self, kind: str) -> Record | None:
        return self.latest.get(kind)

    @property
    def level(self) -> int | None:
        a = self.get("assessment")
        return None if a is None else a["risk_level"]

    @property
    def risk_class(self) -> str | None:
        a = self.get("assessment")
        return None if a is None else a["risk_class"]

    @property
    def high_risk(self) -> bool:
        return self.level is not None and self.level >= HIGH_RISK

    @property
    def in_hospital(self) -> bool:
        stay = self.get("hospital")
        return stay is not None and bool(stay["admitted"])

    @property
    def in_institutional_care(self) -> bool:
        care = self.get("institution")
        return care is not None and bool(care["started"])

    @property
    def cared_for(self) -> bool:
        """In hospital or in institutional care: "the rules treat the patient as cared for (like a
        hospital stay) while it lasts" (institutional care: a stay away from home)."""
        return self.in_hospital or self.in_institutional_care

    def stay(self) -> Record | None:
        """The fact that makes the patient cared for away from home (None: at home)."""
        if self.in_hospital:
            return self.get("hospital")
        return self.get("institution") if self.in_institutional_care else None

    @property
    def misses_in_a_row(self) -> int:
        """Missed visits scheduled after the (occurred) day of the latest visit; all without one."""
        visit = self.get("visit")
        if visit is None:
            return len(self.misses)
        return len(self.misses) - bisect.bisect_right(self.misses, visit["occurred_at"].date())

    @property
    def declared_unknown(self) -> bool:
        w = self.get("whereabouts")
        return w is not None and not w["known"]

    @property
    def unstable_at_home(self) -> bool:
        return self.deregistered is None and not self.cared_for and self.risk_class == UNSTABLE

    @property
    def registered_at_home(self) -> bool:
        return self.deregistered is None and not self.cared_for

    @property
    def under_police_management(self) -> bool:
        p = self.get("police")
        return p is not None and bool(p["under"])

    def joint_visit_since(self, at: datetime) -> Record | None:
        """The latest joint visit, if it is dated at or after ``at`` (an R2 cycle's anchor)."""
        jv = self.get("joint visit")
        return jv if jv is not None and jv["occurred_at"] >= at else None

    def visit_since(self, at: datetime) -> Record | None:
        """The latest visit, if it is dated at or after ``at`` (an R4 cycle's anchor)."""
        v = self.get("visit")
        return v if v is not None and v["occurred_at"] >= at else None


_KEPT = {
    HOSPITAL: "hospital",
    INSTITUTION: "institution",
    GUARDIAN: "guardian",
    POLICE_MANAGEMENT: "police",
    WHEREABOUTS: "whereabouts",
}


# -- episodes, walked in recorded order ------------------------------------------------------------


@dataclass
class _Episode:
    """A span of recorded order during which a condition held."""

    opened: Record  # the fact after which it first held; its message id is the key
    decided_by: str | None = None  # the fact whose decision opens its obligations (None: the imported past)
    closed: Record | None = None
    ended_by_visit: bool = False  # R5 misses: closed by a visit dated on/after the last miss
    located: bool = False  # R5 misses: a located declaration arrived while it was open
    anchor: int = 0  # R2: the stream version of the current cycle's anchor
    cycles: dict[int, str] = field(default_factory=dict)  # R2: anchor version → message id that opens it

    @property
    def key(self) -> str:
        return self.opened["message_id"]


class _Episodes(list[_Episode]):
    """Every episode of one condition; the last one may still be open."""

    @property
    def current(self) -> _Episode | None:
        return self[-1] if self and self[-1].closed is None else None

    def step(self, fact: Record, holds: bool) -> tuple[_Episode | None, _Episode | None]:
        """Advance by one recorded fact; returns (the episode it opened, the episode it closed)."""
        current = self.current
        if holds and current is None:
            opened = _Episode(fact, decided_by=fact["message_id"] if _decides(fact) else None)
            self.append(opened)
            return opened, None
        if not holds and current is not None:
            current.closed = fact
            return None, current
        if current is not None and current.decided_by is None and fact.topic == IMPORTED:
            current.decided_by = fact["message_id"]  # the backfill assesses the current state
        return None, None

    def with_key(self, key: str) -> _Episode | None:
        return next((e for e in self if e.key == key), None)


@dataclass
class _History:
    """A patient's final state and the episodes of the rules checked episode by episode."""

    state: _State = field(default_factory=_State)
    r1: _Episodes = field(default_factory=_Episodes)
    lost: _Episodes = field(default_factory=_Episodes)
    declared: _Episodes = field(default_factory=_Episodes)
    r2: _Episodes = field(default_factory=_Episodes)
    r4: _Episodes = field(default_factory=_Episodes)  # on the register and not in hospital
    r6: _Episodes = field(default_factory=_Episodes)  # on medication, on the register, not in hospital


def _walk(facts: list[Record], threshold: int) -> _History:
    """One pass over a patient's facts in recorded order."""
    h = _History()
    for fact in facts:
        s = h.state
        s.add(fact)
        h.r1.step(fact, s.high_risk)
        _, ended = h.lost.step(fact, s.misses_in_a_row >= threshold)
        if ended is not None:
            ended.ended_by_visit = fact.topic == VISIT and bool(s.misses) and fact["occurred_at"].date() >= s.misses[-1]
        lost = h.lost.current
        if lost is not None and fact.topic == WHEREABOUTS and _decides(fact) and not s.declared_unknown:
            lost.located = lost.located or lost.decided_by is not None
        h.declared.step(fact, s.declared_unknown)
        opened, _ = h.r2.step(fact, s.unstable_at_home)
        _r2_cycle(h.r2.current, opened is not None, fact, s)
        h.r4.step(fact, s.registered_at_home)
        h.r6.step(fact, s.registered_at_home and s.last_pickup is not None)
    return h


def _r2_cycle(episode: _Episode | None, opened_now: bool, fact: Record, s: _State) -> None:
    """Follow an open R2 episode's anchor: the opening, then the latest joint visit since."""
    if episode is None:
        return
    anchor = s.joint_visit_since(episode.opened["occurred_at"]) or episode.opened
    if _decides(fact) and (opened_now or anchor.version != episode.anchor):
        episode.cycles[anchor.version] = fact["message_id"]
    episode.anchor = anchor.version
    if fact.topic == IMPORTED:
        episode.cycles.setdefault(anchor.version, fact["message_id"])


def _obligation_id(subject: str, rule: str, key: str, role: str, cycle: int | None = None) -> str:
    parts = [subject, rule, key, role] + ([str(cycle)] if cycle is not None else [])
    return str(uuid5(OBLIGATION_NAMESPACE, "|".join(parts)))


def _when(r: Record) -> str:
    return f"{r['message_id']} (occurred {r['occurred_at'].isoformat()}, recorded {r.recorded_at.isoformat()})"


def _by_key(obligations: Iterable[_Obligation]) -> dict[tuple[str, str], list[_Obligation]]:
    found: dict[tuple[str, str], list[_Obligation]] = defaultdict(list)
    for o in obligations:
        found[(o.subject, o.key)].append(o)
    return found


# -- 1. R1 ---------------------------------------------------------------------------------------------


def _check_r1(log: _Log, histories: dict[str, _History], findings: Findings) -> None:
    opened = _by_key(log.of_rule("R1"))
    expected: set[tuple[str, str]] = set()
    for pid, h in histories.items():
        for ep in h.r1:
            if ep.decided_by is None:
                findings.counts["r1 entries in the imported past"] += 1
                continue
            findings.counts["r1 entries"] += 1
            expected.add((pid, ep.key))
            _expect_one(
                findings, "r1-entry-opens-one-obligation", pid, ep, opened.get((pid, ep.key), []), R1_ACTIONS, "R1"
            )
    for (pid, key), found in opened.items():
        if (pid, key) not in expected:
            for o in found:
                findings.add(
                    "r1-obligation-has-entry",
                    o.id,
                    f"R1 {o.assigned['action']} of patient {pid} has episode key {key}, "
                    "which is no entry into level >= 3",
                )


def _expect_one(
    findings: Findings,
    invariant: str,
    pid: str,
    ep: _Episode,
    found: list[_Obligation],
    actions: frozenset[str],
    rule: str,
) -> None:
    """Exactly one obligation of the episode, with one of ``actions``, opened by its deciding fact."""
    right = [o for o in found if o.assigned["action"] in actions]
    if len(right) != 1:
        findings.add(
            invariant,
            pid,
            f"the episode opened by {_when(ep.opened)} has {len(right)} {rule} obligations {sorted(actions)}, not 1",
        )
        return
    o = right[0]
    if o.assigned["trigger_message_id"] != ep.decided_by:
        findings.add(
            invariant,
            o.id,
            f"{rule} obligation of episode {ep.key} was triggered by {o.assigned['trigger_message_id']}, "
            f"not by {ep.decided_by}, the fact that opened the episode",
        )


# -- 2. R5 ---------------------------------------------------------------------------------------------


def _check_r5(log: _Log, histories: dict[str, _History], findings: Findings) -> None:
    locates = _by_key(log.of_rule("R5"))
    statuses: dict[tuple[str, str], list[_LostStatus]] = defaultdict(list)
    for status in log.lost.values():
        if status.derived is not None:
            statuses[(str(status.derived["patient_id"]), status.derived["episode_key"])].append(status)
    misses_keys, declared_keys = set(), set()
    for pid, h in histories.items():
        for ep in (e for e in h.lost if e.decided_by is not None):
            findings.counts["lost episodes (misses)"] += 1
            misses_keys.add((pid, ep.key))
            found = locates.get((pid, ep.key), [])
            _expect_one(findings, "r5-lost-episode-opens-one-locate", pid, ep, found, R5_ACTIONS, "R5")
            _check_lost_status(findings, pid, ep, statuses.get((pid, ep.key), []))
        for ep in (e for e in h.declared if e.decided_by is not None):
            findings.counts["lost episodes (declared)"] += 1
            declared_keys.add((pid, ep.key))
            found = locates.get((pid, ep.key), [])
            _expect_one(findings, "r5-declared-unknown-opens-one-locate", pid, ep, found, R5_ACTIONS, "R5")
            if statuses.get((pid, ep.key)):
                findings.add(
                    "r5-declared-unknown-opens-one-locate",
                    pid,
                    f"a declaration of unknown whereabouts {ep.key} derived a LostToFollowUp (only misses do)",
                )
    for (pid, key), found in locates.items():
        if (pid, key) not in misses_keys | declared_keys:
            for o in found:
                findings.add(
                    "r5-locate-has-episode", o.id, f"R5 {o.assigned['action']} of {pid}: no lost episode {key}"
                )
    for (pid, key), found in statuses.items():
        if (pid, key) not in misses_keys:
            for status in found:
                findings.add(
                    "r5-lost-status-has-episode", status.id, f"LostToFollowUp of {pid}: no run of misses {key}"
                )


def _check_lost_status(findings: Findings, pid: str, ep: _Episode, found: list[_LostStatus]) -> None:
    if len(found) != 1:
        findings.add(
            "r5-lost-episode-derives-one-lost-status",
            pid,
            f"the run of misses from {_when(ep.opened)} derived {len(found)} LostToFollowUp, not 1",
        )
        return
    status = found[0]
    closings = status.closings
    if ep.closed is None:
        if closings:
            findings.add(
                "r5-lost-status-compensated",
                status.id,
                f"{closings[0].topic} while the misses from {ep.key} still hold",
            )
        return
    findings.counts["lost episodes (misses) closed"] += 1
    wanted = LOST_ENDED if ep.ended_by_visit else LOST_WITHDRAWN
    if len(closings) != 1:
        findings.add(
            "r5-lost-status-compensated",
            status.id,
            f"the misses from {ep.key} stopped holding at {_when(ep.closed)}; {len(closings)} corrections, not 1",
        )
    elif closings[0].topic != wanted or closings[0]["because_of"] != ep.closed["message_id"]:
        findings.add(
            "r5-lost-status-compensated",
            status.id,
            f"the misses from {ep.key} stopped holding at {_when(ep.closed)}: expected {wanted} because of it, "
            f"found {closings[0].topic} because of {closings[0]['because_of']}",
        )


# -- 3. R2 ---------------------------------------------------------------------------------------------


def _check_r2(log: _Log, histories: dict[str, _History], findings: Findings) -> None:
    cycles = [o for o in log.of_rule("R2") if o.assigned["action"] in R2_CYCLE_ACTIONS]
    by_id = {o.id: o for o in cycles}
    expected: set[str] = set()
    for pid, h in histories.items():
        for ep in h.r2:
            if ep.decided_by is None and not ep.cycles:
                continue
            findings.counts["r2 episodes"] += 1
            for version, trigger in ep.cycles.items():
                findings.counts["r2 cycles"] += 1
                oid = _obligation_id(pid, "R2", ep.key, "joint-visit", version)
                expected.add(oid)
                _expect_cycle(findings, pid, ep, version, trigger, by_id.get(oid))
    for o in cycles:
        if o.id not in expected:
            findings.add(
                "r2-cycle-has-episode",
                o.id,
                f"R2 {o.assigned['action']} of {o.subject} (episode {o.key}, triggered by "
                f"{o.assigned['trigger_message_id']}) is no cycle of an unstable-at-home episode",
            )
    for (pid, key), found in _by_key(cycles).items():
        _check_one_open(findings, pid, key, found)


def _expect_cycle(
    findings: Findings, pid: str, ep: _Episode, version: int, trigger: str, o: _Obligation | None
) -> None:
    first = trigger == ep.decided_by
    invariant = "r2-episode-opens-first-cycle" if first else "r2-joint-visit-opens-next-cycle"
    what = f"R2 cycle {version} of the episode opened by {_when(ep.opened)}"
    if o is None:
        findings.add(invariant, pid, f"{what}: no joint_visit obligation (it was to be opened by {trigger})")
    elif o.assigned["trigger_message_id"] != trigger:
        findings.add(invariant, o.id, f"{what}: opened by {o.assigned['trigger_message_id']}, not by {trigger}")


def _check_one_open(findings: Findings, pid: str, key: str, found: list[_Obligation]) -> None:
    """No two cycles of one episode open at one instant (open from assigned until closed)."""
    spans = sorted(
        ((o.assigned.recorded_at, o.assigned.position), o.closed.recorded_at if o.closed else None, o.id)
        for o in found
        if o.assigned
    )
    latest_end: datetime | None = None
    latest_id = ""
    still_open = False
    for (start, _), end, oid in spans:
        if still_open or (latest_end is not None and start < latest_end):
            findings.add(
                "r2-one-cycle-open-at-a-time",
                oid,
                f"R2 cycle opened {start.isoformat()} while cycle {latest_id} of episode {key} ({pid}) was open",
            )
        if end is None:
            still_open, latest_id = True, oid
        elif latest_end is None or end > latest_end:
            latest_end, latest_id = end, oid


# -- 4. triggers and fulfilments ---------------------------------------------------------------------


def _check_triggers(log: _Log, findings: Findings) -> None:
    for o in log.obligations.values():
        if o.assigned is None:
            continue
        trigger = o.assigned["trigger_message_id"]
        if o.rule == R21:  # a reporting duty: opened by its period, not about a patient
            _check_r21(log, o, findings)
            continue
        if trigger.startswith(DUE_PREFIX):
            _check_due_trigger(log, o, trigger.removeprefix(DUE_PREFIX), findings)
        elif trigger.startswith(HANDOVER_PREFIX):
            _check_handover_trigger(log, o, trigger, findings)
        else:
            _check_fact_trigger(log, o, trigger, findings)
        for done in o.completions:
            by = done.get("fulfilled_by")
            fact = None if by is None else (log.by_message.get(by) or _handover_event(log, by))
            if by is not None and (fact is None or fact.position > done.position or str(fact.stream) != o.subject):
                findings.add(
                    "completion-names-recorded-fact",
                    o.id,
                    f"{o.rule} {o.assigned['action']} completed at {done.recorded_at.isoformat()} by {by}, "
                    "which is no fact recorded before it on its subject's stream",
                )


def _r21_period(key: str) -> tuple[datetime, datetime] | None:
    """(opens, due) of an R21 episode key ``duty|period`` with the seeds' days (decision 023):
    progress by the end of the 25th, the quarterly report by the end of the 28th of the
    quarter's last month, suspected cases by the end of the month; None when malformed."""
    duty, _, period = key.partition("|")
    try:
        year, rest = int(period[:4]), period[5:]
        if duty == "quarterly_report" and rest.startswith("Q"):
            quarter = int(rest[1:])
            first, due = date(year, 3 * quarter - 2, 1), date(year, 3 * quarter, 28)
        elif duty in ("monthly_progress", "suspected_cases"):
            first = date(year, int(rest), 1)
            nxt = date(year + first.month // 12, first.month % 12 + 1, 1)
            due = date(year, first.month, 25) if duty == "monthly_progress" else nxt - timedelta(days=1)
        else:
            return None
    except ValueError:
        return None
    at = lambda d: datetime.combine(d, datetime.min.time(), CHINA)  # noqa: E731
    return at(first), at(due) + timedelta(days=1)


def _check_r21(log: _Log, o: _Obligation, findings: Findings) -> None:
    """R21 (decision 023): a duty opens when its period begins (the scheduler names
    ``R21:<duty>|<period>``) or with the report that came first; it is due at the end of the
    named day; it is completed only by a report from its owner naming that duty and period."""
    a = o.assigned
    assert a is not None
    key, trigger = o.key, a["trigger_message_id"]
    span = _r21_period(key)
    if span is None:
        findings.add("r21-duty-names-a-period", o.id, f"R21 episode key {key!r} is no duty and period")
        return
    opens, due = span
    if a["due_at"] != due:
        findings.add("r21-due-at-the-end-of-the-named-day", o.id, f"R21 {key} due {a['due_at']}, not {due.isoformat()}")
    if a.recorded_at < opens:
        findings.add("r21-opened-once-its-period-began", o.id, f"R21 {key} opened {a.recorded_at.isoformat()}")
    if trigger != f"{R21}:{key}" and not _r21_report(log.by_message.get(trigger), a["assignee"], key):
        findings.add("r21-opened-by-its-period-or-its-report", o.id, f"R21 {key} names trigger {trigger}")
    for done in o.completions:
        fact = log.by_message.get(done.get("fulfilled_by") or "")
        if not _r21_report(fact, a["assignee"], key) or fact is None or fact.position > done.position:
            findings.add(
                "r21-completed-by-its-report",
                o.id,
                f"R21 {key} completed by {done.get('fulfilled_by')}: "
                f"no report of that duty and period by {a['assignee']}",
            )


def _r21_report(fact: Record | None, agency: str, key: str) -> bool:
    return (
        fact is not None
        and fact.topic == REPORT_SUBMITTED
        and fact.get("agency_id") == agency
        and f"{fact.get('duty')}|{fact.get('period')}" == key
    )


def _check_fact_trigger(log: _Log, o: _Obligation, trigger: str, findings: Findings) -> None:
    fact = log.by_message.get(trigger)
    a = o.assigned
    assert a is not None
    problem = None
    if fact is None:
        problem = "no such fact was recorded"
    elif fact.position >= a.position or fact.recorded_at > a.recorded_at:
        problem = f"it was recorded after the assignment ({_when(fact)})"
    elif str(fact.stream) != (o.key if o.rule == TASK_RULE else o.subject):
        problem = "it is a fact of another subject"  # a task's trigger is on the task's own stream
    elif a["trigger_position"] != fact.position:
        problem = f"its log position is {fact.position}, not {a['trigger_position']}"
    if problem:
        findings.add(
            "obligation-has-trigger-fact",
            o.id,
            f"{a['kind']} {o.rule} {a['action']} of {o.subject} names trigger {trigger}: {problem}",
        )


def _handover_event(log: _Log, name: str) -> Record | None:
    """The handover aggregate's event ``handover:<handover id>:<version>`` (what opens and
    completes R8's obligations between regions: the handover, not a patient, is their subject)."""
    hid, _, version = name.removeprefix(HANDOVER_PREFIX).rpartition(":")
    return next((e for e in log.handovers.get(hid, []) if str(e.version) == version), None)


def _check_handover_trigger(log: _Log, o: _Obligation, trigger: str, findings: Findings) -> None:
    event = _handover_event(log, trigger)
    a = o.assigned
    assert a is not None
    problem = None
    if event is None:
        problem = "no such handover event was recorded"
    elif event.position >= a.position or event.recorded_at > a.recorded_at:
        problem = f"it was recorded after the assignment ({event.recorded_at.isoformat()})"
    elif str(event.stream) != o.subject:
        problem = "it is an event of another handover"
    if problem:
        findings.add(
            "obligation-has-trigger-fact",
            o.id,
            f"{a['kind']} {o.rule} {a['action']} of {o.subject} names trigger {trigger}: {problem}",
        )


def _check_due_trigger(log: _Log, o: _Obligation, due_id: str, findings: Findings) -> None:
    due = log.obligations.get(due_id)
    a = o.assigned
    assert a is not None
    if due is None or not any(r.position <= a.position for r in due.overdue) or due.subject != o.subject:
        findings.add(
            "obligation-has-trigger-fact",
            o.id,
            f"{a['kind']} {o.rule} {a['action']} of {o.subject} names obligation {due_id} falling due, "
            "but no such obligation of that subject was marked overdue before it",
        )


# -- 5. what is still open at the end ----------------------------------------------------------------


def _check_open_at_end(log: _Log, histories: dict[str, _History], findings: Findings) -> None:
    for o in log.obligations.values():
        if o.assigned is None or o.is_notice or o.closed is not None:
            continue
        findings.counts["open at end"] += 1
        reason = _why_not(o, log, histories.get(o.subject))
        if reason is not None:
            findings.add(
                "open-obligation-still-holds",
                o.id,
                f"{o.rule} {o.assigned['action']} of {o.subject} (episode {o.key}) is still open, but {reason}",
            )


def _why_not(o: _Obligation, log: _Log, h: _History | None) -> str | None:
    """Why the open obligation's condition no longer holds on the final state (None: it holds)."""
    if o.rule == R21:  # a reporting duty is owed until its report comes, whatever else happens
        done = [f for f in log.by_message.values() if _r21_report(f, o.assigned["assignee"], o.key)]
        return f"its report came ({_when(done[0])})" if done else None
    if o.subject in log.handovers:  # R8 across regions: owed while the handover is unanswered here
        ended = next((e for e in log.handovers[o.subject] if e.topic in _HANDOVER_ENDS_HERE), None)
        return None if ended is None else f"the handover was {ended.topic} ({ended.recorded_at.isoformat()})"
    if o.rule == "R18":
        facts = log.cases.get(o.subject, [])
        assessed = next((f for f in facts if f.topic == CASE_ASSESSED), None)
        return None if assessed is None else f"the case was assessed ({_when(assessed)})"
    if h is None:
        return None if o.rule in ("R14", TASK_RULE) else "it names no registered patient"
    s = h.state
    if o.rule not in OUTLIVES_REGISTER and s.deregistered is not None:
        return f"the patient left the register ({_when(s.deregistered)})"
    check = _STILL_HOLDS.get(o.rule)
    return None if check is None else check(o, h, log)


def _r1_holds(o: _Obligation, h: _History, log: _Log) -> str | None:
    s = h.state
    if not s.high_risk:
        return f"the current risk level is {s.level}"
    current = h.r1.current
    if current is None or current.key != o.key:
        return f"the current level >= 3 episode is {current.key if current else None}"
    if s.under_police_management:
        return f"the patient is under police management ({_when(s.get('police'))})"
    return None


def _r5_holds(o: _Obligation, h: _History, log: _Log) -> str | None:
    ep = h.lost.with_key(o.key)
    if ep is not None:
        if ep.closed is not None:
            return f"the run of misses stopped holding ({_when(ep.closed)})"
        return "the patient was declared located during the run of misses" if ep.located else None
    ep = h.declared.with_key(o.key)
    if ep is not None and ep.closed is not None:
        return f"whereabouts were declared known ({_when(ep.closed)})"
    return None


def _r2_holds(o: _Obligation, h: _History, log: _Log) -> str | None:
    current = h.r2.current
    if current is None or current.key != o.key:
        return f"the current unstable-at-home episode is {current.key if current else None}"
    if o.assigned["action"] in R2_CYCLE_ACTIONS and current.cycles:
        cycle = list(current.cycles)[-1]
        if o.id != _obligation_id(o.subject, "R2", o.key, "joint-visit", cycle):
            return f"it is not the current cycle (anchored at stream version {cycle})"
    told = h.state.legal_duty_on
    since = current.opened["occurred_at"].astimezone(CHINA).date()
    if o.assigned["action"] == "tell_guardian_of_legal_duty" and told is not None and told >= since:
        return f"the guardian was told of the legal duty on {told.isoformat()}"
    return None


def _r3_holds(o: _Obligation, h: _History, log: _Log) -> str | None:
    s = h.state
    if s.risk_class not in (BASICALLY_STABLE, UNSTABLE):
        return f"the class is {s.risk_class}"
    if s.cared_for:
        return f"the patient is cared for away from home ({_when(s.stay())})"
    opening = log.by_message.get(o.key)
    if opening is not None and s.reached_since is not None and s.reached_since >= opening["occurred_at"]:
        return f"the care team reached the family on {s.reached_since.isoformat()}"
    return None


def _at_home(o: _Obligation, h: _History, log: _Log) -> str | None:
    stay = h.state.stay()
    return f"the patient is cared for away from home ({_when(stay)})" if stay else None


def _r4_holds(o: _Obligation, h: _History, log: _Log) -> str | None:
    """R4: the current cycle of the current episode at home (the first one keyed "registration")."""
    if (gone := _at_home(o, h, log)) is not None:
        return gone
    current = h.r4.current
    if current is None:
        return None
    key = "registration" if current.opened.topic == REGISTERED else current.key
    anchor = h.state.visit_since(current.opened["occurred_at"]) or current.opened
    return _not_the_cycle(o, "R4", key, "visit", anchor)


def _r6_holds(o: _Obligation, h: _History, log: _Log) -> str | None:
    """R6: the current cycle (the latest recorded pickup since the episode opened) of the current episode."""
    if (gone := _at_home(o, h, log)) is not None:
        return gone
    current, pickup = h.r6.current, h.state.last_pickup
    if current is None or pickup is None:
        return None
    anchor = pickup if pickup.version >= current.opened.version else current.opened
    return _not_the_cycle(o, "R6", current.key, "health-center", anchor)


def _not_the_cycle(o: _Obligation, rule: str, key: str, role: str, anchor: Record) -> str | None:
    if o.key != key:
        return f"the current {rule} episode is {key}"
    if o.id != _obligation_id(o.subject, rule, key, role, anchor.version):
        return f"the current {rule} cycle is anchored on {_when(anchor)}"
    return None


def _r9_holds(o: _Obligation, h: _History, log: _Log) -> str | None:
    g = h.state.get("guardian")
    status = None if g is None else g["status"]
    return None if status in ("none", "weak") else f"the guardian's status is {status}"


def _r10_holds(o: _Obligation, h: _History, log: _Log) -> str | None:
    s = h.state
    refusal = s.get("admission refusal")
    if refusal is None or refusal["ended"]:
        return "the family no longer refuses admission"
    return None if s.high_risk else f"the current risk level is {s.level}"


def _r11_holds(o: _Obligation, h: _History, log: _Log) -> str | None:
    s = h.state
    stay, visit = s.get("hospital"), s.get("visit")
    if stay is None or stay["admitted"]:
        return "the latest hospital fact is no discharge"
    if visit is not None and visit["occurred_at"] > stay["occurred_at"]:
        return f"the patient was visited after the discharge ({_when(visit)})"
    return None


def _r17_holds(o: _Obligation, h: _History, log: _Log) -> str | None:
    community = h.state.get("community review")
    if community is None:
        return "no community review is recorded"
    tier = {"township_review": "township", "city_review": "city"}.get(o.assigned["action"])
    done = [at for at in h.state.reviews.get(tier or "", []) if at >= community["occurred_at"]]
    return f"the {tier} review was recorded on {min(done).isoformat()}" if done else None


_STILL_HOLDS = {
    "R1": _r1_holds,
    "R2": _r2_holds,
    "R3": _r3_holds,
    "R4": _r4_holds,
    "R5": _r5_holds,
    "R6": _r6_holds,
    "R9": _r9_holds,
    "R10": _r10_holds,
    "R11": _r11_holds,
    "R17": _r17_holds,
}


# -- 6. R15: overdue exactly once ---------------------------------------------------------------------


def _check_overdue(log: _Log, runs: list[datetime], findings: Findings) -> None:
    for o in log.obligations.values():
        if o.assigned is None:
            if o.overdue:
                findings.add("r15-overdue-exactly-once", o.id, "marked overdue, but no such obligation was assigned")
            continue
        if o.is_notice:
            for r in o.overdue:
                findings.add(
                    "r15-notice-never-overdue",
                    o.id,
                    f"notice {o.rule} {o.assigned['action']} marked overdue {r.recorded_at}",
                )
            continue
        _check_one_overdue(o, _first_run_open_after_due(o, runs), findings)
        for r in o.overdue:
            if r.get("escalated_to") is None:
                findings.add(
                    "r15-overdue-escalated",
                    o.id,
                    f"{o.rule} {o.assigned['action']} of {o.subject} marked overdue at {r.recorded_at.isoformat()} "
                    "without escalating to a governance center",
                )


def _first_run_open_after_due(o: _Obligation, runs: list[datetime]) -> datetime | None:
    """The first scheduler run at or after the deadline at which the obligation was open."""
    a = o.assigned
    assert a is not None
    due = a["due_at"]
    if due is None:
        return None
    i = bisect.bisect_left(runs, max(due, a.recorded_at))
    if i == len(runs):
        return None
    return runs[i] if o.open_at(runs[i]) else None  # closed by then: closed at every later run too


def _check_one_overdue(o: _Obligation, expected: datetime | None, findings: Findings) -> None:
    a = o.assigned
    assert a is not None
    what = f"{o.rule} {a['action']} of {o.subject} (due {a['due_at'].isoformat() if a['due_at'] else None})"
    marks = o.overdue
    if expected is None:
        if marks:
            findings.add(
                "r15-overdue-exactly-once",
                o.id,
                f"{what} marked overdue at {marks[0].recorded_at.isoformat()}, but no scheduler run found it open "
                "past its deadline",
            )
        return
    if len(marks) != 1:
        findings.add(
            "r15-overdue-exactly-once",
            o.id,
            f"{what} was open at the scheduler run of {expected.isoformat()}: marked overdue {len(marks)} times, not 1",
        )
        return
    if marks[0].recorded_at != expected:
        findings.add(
            "r15-overdue-exactly-once",
            o.id,
            f"{what} marked overdue at {marks[0].recorded_at.isoformat()}, not at the first run that found it "
            f"open past its deadline ({expected.isoformat()})",
        )


# -- 7-11. coordination: RiskEscalated, R19, R20, tasks, institutional care --------------------------------

#: The rule settings' defaults R19 and R20 are checked against (DESIGN.md R19, R20; decision 012: rule
#: settings changed in the log are not followed, like the misses threshold).
R19_KEY, R20_RESPONSE, R20_COORDINATE = "hospital-new-patient", timedelta(minutes=30), timedelta(hours=2)
R20_SAME_EMERGENCY, R20_TOO_LATE, R20_ANSWER_WITHIN = timedelta(hours=2), timedelta(hours=6), timedelta(days=7)
R20_LEVEL = 4  # "assessed >= 4 at home"
CLASS_RANK = {"stable": 0, BASICALLY_STABLE: 1, UNSTABLE: 2}
HOSPITAL_KIND = "psychiatric_hospital"
#: R20's answers: which obligation (role) each completes.
R20_ANSWERS = {RESPONDED: "police", COORDINATED: "governance"}
#: Who owns what R20 opens: (role, action or None for a notice, the owner's agency kind).
R20_OPENS = (
    ("police", "respond_to_emergency", "police_station"),
    ("governance", "coordinate_emergency", "governance_center"),
    ("committee-notice", None, "committee"),
    ("health-center-notice", None, "health_center"),
)
#: The rules for patients living at home: they open nothing while the patient is cared for away.
AT_HOME_RULES = frozenset({"R2", "R3", "R4", "R6"})


def _order(e: dict) -> tuple[datetime, int]:
    """A patient's facts by occurred time, then stream version (the engine's ``by_occurred``)."""
    return e["at"], e["v"]


def _entry(fact: Record, **more: object) -> dict:
    return {"at": fact["occurred_at"], "v": fact.version, "key": fact["message_id"], **more}


@dataclass
class _Expected:
    """What one trigger must have opened, and the first fact (recorded order) that must close it."""

    trigger: Record
    level: int | None = None
    closing: dict[str, tuple[str, str]] = field(default_factory=dict)  # role → (topic, message id)


@dataclass
class _Beside:
    """A patient's walk for the rules asked beside the episode rules (R19, R20) and RiskEscalated."""

    escalations: dict[str, tuple[dict, dict]] = field(default_factory=dict)  # assessment key → (before, after)
    r19: _Expected | None = None
    r20: dict[str, _Expected] = field(default_factory=dict)  # emergency key → what it opened
    cared_for_after: dict[str, bool] = field(default_factory=dict)  # message id → cared for after it


def _walk_beside(facts: list[Record], kinds: dict[str, str]) -> _Beside:
    """One pass in recorded order; each fact decided on the file as of it (DESIGN.md R19, R20)."""
    b = _Beside()
    assessments: list[dict] = []
    emergencies: list[dict] = []
    visits: list[dict] = []
    hospital_facts: list[dict] = []  # the hospital's registration and unrevoked diagnoses
    stays: dict[str, dict] = {}  # "hospital" / "institution" → the latest by (occurred, version)
    joined = imported = 0
    deregistered = False
    for fact in facts:
        topic, key = fact.topic, fact["message_id"]
        e = _entry(fact)
        if topic in (VISIT, RISK):
            a = {**e, "level": fact["risk_level"], "class": fact["risk_class"]}
            assessments.append(a)
            if topic == VISIT:
                visits.append(e)
            if a["level"] >= R20_LEVEL:
                emergencies.append(a)
        elif topic == DANGER:
            emergencies.append(e)
        elif topic == REGISTERED and kinds.get(fact["agency_id"]) == HOSPITAL_KIND:
            hospital_facts.append(e)
        elif topic == DIAGNOSIS and not fact["revoked"] and kinds.get(fact["agency_id"]) == HOSPITAL_KIND:
            hospital_facts.append(e)
        elif topic in (HOSPITAL, INSTITUTION):
            kind = "hospital" if topic == HOSPITAL else "institution"
            if kind not in stays or _order(e) > _order(stays[kind]):
                stays[kind] = {**e, "on": fact["admitted" if topic == HOSPITAL else "started"]}
        elif topic == JOINED:
            joined = max(joined, fact.version)
        elif topic == IMPORTED:
            imported = max(imported, fact.version)
        elif topic == DEREGISTERED:
            deregistered = True
        cared_for = any(stay["on"] for stay in stays.values())
        b.cared_for_after[key] = cared_for
        if not _decides(fact) or joined > imported:
            continue  # history, or a go-live that has not assessed the patient yet: nothing is decided
        if topic in (VISIT, RISK):
            _expect_escalation(b, assessments, key)
        _step_r19(b, fact, hospital_facts, visits, assessments, deregistered)
        _step_r20(b, fact, emergencies, assessments, deregistered, cared_for)
    return b


def _latest_level(assessments: list[dict]) -> int | None:
    return max(assessments, key=_order)["level"] if assessments else None


def _expect_escalation(b: _Beside, assessments: list[dict], key: str) -> None:
    ordered = sorted(assessments, key=_order)
    i = next(n for n, a in enumerate(ordered) if a["key"] == key)
    if i == 0:
        return
    before, after = ordered[i - 1], ordered[i]
    if after["level"] > before["level"] or CLASS_RANK.get(after["class"], 0) > CLASS_RANK.get(before["class"], 0):
        b.escalations[key] = (before, after)


def _step_r19(
    b: _Beside, fact: Record, hospital_facts: list[dict], visits: list[dict], assessments: list[dict], gone: bool
) -> None:
    """R19: "psychiatric hospital registers or diagnoses a patient → health center: take over (first
    follow-up)"; once per patient, only for a patient no visit has reached yet."""
    topic, key = fact.topic, fact["message_id"]
    opened = b.r19
    if topic == DIAGNOSIS and fact["revoked"]:
        if opened is not None and not opened.closing:
            opened.closing["health-center"] = (CANCELLED, key)
        return
    if not hospital_facts:
        return
    if topic in (REGISTERED, DIAGNOSIS):
        mine = any(h["key"] == key for h in hospital_facts)
        if opened is None and mine and not gone and not visits:
            b.r19 = _Expected(fact, level=_latest_level(assessments))
        return
    if opened is None or opened.closing:
        return
    first_at = min(h["at"] for h in hospital_facts)
    after = sorted((v for v in visits if v["at"] >= first_at), key=_order)
    if topic == VISIT and after and after[0]["key"] == key:
        opened.closing["health-center"] = (COMPLETED, key)
    elif topic == DEREGISTERED and not after:
        opened.closing["health-center"] = (CANCELLED, key)


def _step_r20(
    b: _Beside, fact: Record, emergencies: list[dict], assessments: list[dict], gone: bool, cared_for: bool
) -> None:
    """R20: a danger report, or an assessment >= 4 at home, opens the emergency flow (unless told too
    late, or the same emergency); the police's response and the governance center's coordination
    dated within 7 days after an emergency complete its part; leaving the register cancels."""
    topic, key = fact.topic, fact["message_id"]
    if topic == DEREGISTERED:
        for expected in b.r20.values():
            for role in ("police", "governance"):
                expected.closing.setdefault(role, (CANCELLED, key))
        return
    if topic in R20_ANSWERS:
        at, role = fact["occurred_at"], R20_ANSWERS[topic]
        for e in emergencies:
            expected = b.r20.get(e["key"])
            if expected is not None and e["at"] <= at <= e["at"] + R20_ANSWER_WITHIN:
                expected.closing.setdefault(role, (COMPLETED, key))
        return
    this = next((e for e in emergencies if e["key"] == key), None)
    if this is None or gone or fact.recorded_at - this["at"] > R20_TOO_LATE:
        return
    if topic in (VISIT, RISK) and cared_for:
        return  # assessed in hospital or institutional care: the ward or the institution acts
    earlier = [e for e in emergencies if e is not this and _order(e) < _order(this)]
    if any(this["at"] - e["at"] <= R20_SAME_EMERGENCY for e in earlier):
        return
    b.r20[key] = _Expected(fact, level=_latest_level(assessments))


def _check_beside(log: _Log, findings: Findings) -> None:
    walks = {pid: _walk_beside(facts, log.agency_kinds) for pid, facts in log.patients.items()}
    _check_escalations(log, walks, findings)
    _check_r19(log, walks, findings)
    _check_r20(log, walks, findings)
    _check_tasks(log, findings)
    _check_cared_for(log, walks, findings)


def _check_escalations(log: _Log, walks: dict[str, _Beside], findings: Findings) -> None:
    """7. "A derived RiskEscalated fact whenever a patient's level or class worsens (by occurred time,
    with the level before and after)": ``risk-escalation-derived-once`` — every decided assessment
    worse than the one just before it by occurred time, among those on file when it was recorded, has
    exactly one RiskEscalated with its key, occurred time, levels and classes;
    ``risk-escalation-has-worsening`` — the converse."""
    found: dict[tuple[str, str], list[Record]] = defaultdict(list)
    for r in log.escalations:
        found[(str(r["patient_id"]), r["assessment_key"])].append(r)
    for pid, b in walks.items():
        for key, (before, after) in b.escalations.items():
            findings.counts["risk escalations expected"] += 1
            got = found.pop((pid, key), [])
            want = (after["at"], before["level"], after["level"], before["class"], after["class"])
            if len(got) != 1:
                findings.add(
                    "risk-escalation-derived-once",
                    pid,
                    f"assessment {key} worsened {want[1:]}: {len(got)} RiskEscalated",
                )
                continue
            r = got[0]
            have = (r["occurred_at"], r["level_before"], r["level_after"], r["class_before"], r["class_after"])
            if have != want:
                findings.add(
                    "risk-escalation-derived-once", pid, f"assessment {key}: derived {have[1:]}, not {want[1:]}"
                )
    for (pid, key), rs in found.items():
        findings.add("risk-escalation-has-worsening", pid, f"{len(rs)} RiskEscalated for {key}, no worsening")


def _expect_closing(findings: Findings, invariant: str, o: _Obligation, want: tuple[str, str] | None) -> None:
    """The obligation's first closing is the expected one (None: still open)."""
    closed = o.closed
    have = None
    if closed is not None:
        have = (closed.topic, closed.get("fulfilled_by") if closed.topic == COMPLETED else closed.get("because_of"))
    if have != want:
        findings.add(invariant, o.id, f"{o.rule} {o.assigned['action']} of {o.subject}: closed by {have}, not {want}")


def _check_opened(
    findings: Findings,
    invariant: str,
    log: _Log,
    pid: str,
    rule: str,
    key: str,
    trigger: Record,
    role: str,
    action: str | None,
    owner_kind: str,
) -> _Obligation | None:
    """The obligation (action) or notice (None) of ``role`` exists, opened by ``trigger``, owned by
    an agency of ``owner_kind``."""
    o = log.obligations.get(_obligation_id(pid, rule, key, role))
    what = f"{rule} {role} of {pid} for {_when(trigger)}"
    if o is None or o.assigned is None:
        findings.add(invariant, pid, f"{what}: not opened")
        return None
    a = o.assigned
    problems = []
    if a["trigger_message_id"] != trigger["message_id"]:
        problems.append(f"triggered by {a['trigger_message_id']}")
    if (a["kind"] == "notice") != (action is None) or (action is not None and a["action"] != action):
        problems.append(f"a {a['kind']} {a['action']}")
    if log.agency_kinds.get(a["assignee"]) != owner_kind:
        problems.append(f"owned by {a['assignee']}, not a {owner_kind}")
    if problems:
        findings.add(invariant, o.id, f"{what}: {', '.join(problems)}")
    return o


def _check_r19(log: _Log, walks: dict[str, _Beside], findings: Findings) -> None:
    """8. R19: ``r19-hospital-patient-taken-over`` — the first decided registration or unrevoked
    diagnosis recorded by the psychiatric hospital for a patient on the register whom no visit has
    reached opens exactly one ``take_over_from_hospital`` for the health center, due at a China
    midnight 12-30 days after it was recorded (10 working days: a bound, the calendar
    is not recomputed), with a notice to the governance
    center and, at level >= 3, to the police; ``r19-take-over-has-hospital-fact`` — the converse;
    ``r19-first-visit-completes`` — it is completed by the first visit dated on/after the hospital's
    first fact (cancelled by leaving the register first, or a revocation), else still open."""
    expected: set[str] = set()
    for pid, b in walks.items():
        if b.r19 is None:
            continue
        e = b.r19
        findings.counts["r19 take-overs"] += 1
        roles = [
            ("health-center", "take_over_from_hospital", "health_center"),
            ("governance-notice", None, "governance_center"),
        ]
        police = e.level is not None and e.level >= HIGH_RISK
        if police:
            roles.append(("police-notice", None, "police_station"))
            findings.counts["r19 police told"] += 1
        for role, action, kind in roles:
            expected.add(str(_obligation_id(pid, "R19", R19_KEY, role)))
            o = _check_opened(
                findings, "r19-hospital-patient-taken-over", log, pid, "R19", R19_KEY, e.trigger, role, action, kind
            )
            if o is None or action is None:
                continue
            due = o.assigned["due_at"].astimezone(CHINA)
            days = (due.date() - e.trigger.recorded_at.astimezone(CHINA).date()).days
            if due.timetz().replace(tzinfo=None) != datetime.min.time() or not 12 <= days <= 30:
                findings.add(
                    "r19-hospital-patient-taken-over",
                    o.id,
                    f"due {due.isoformat()}, {days} days after {_when(e.trigger)}: not 10 working days later",
                )
            closing = e.closing.get("health-center")
            _expect_closing(findings, "r19-first-visit-completes", o, closing)
            outcome = "never" if closing is None else ("cancelled" if closing[0] == CANCELLED else "completed")
            findings.counts[f"r19 take-overs {outcome}"] += 1
    for o in log.of_rule("R19") + log.of_rule("R19", notices=True):
        if o.id not in expected:
            findings.add(
                "r19-take-over-has-hospital-fact",
                o.id,
                f"R19 {o.assigned['action']} of {o.subject}: no hospital fact opens it",
            )
    police_notices = [
        o for o in log.of_rule("R19", notices=True) if log.agency_kinds.get(o.assigned["assignee"]) == "police_station"
    ]
    if len(police_notices) != findings.counts["r19 police told"]:
        findings.add(
            "r19-hospital-patient-taken-over",
            "R19",
            f"{len(police_notices)} police notices, not {findings.counts['r19 police told']}",
        )


def _check_r20(log: _Log, walks: dict[str, _Beside], findings: Findings) -> None:
    """9. R20: ``r20-emergency-opens-the-flow`` — every decided danger report, and every decided
    assessment >= 4 while at home (not in hospital or institutional care), of a patient on the register,
    recorded within 6 h of when it occurred and not within 2 h after an earlier emergency, opens
    exactly: the police's ``respond_to_emergency`` due 30 minutes after it was recorded, the
    governance center's ``coordinate_emergency`` due 2 hours after, and notices to the committee and
    the health center, keyed by its message id; ``r20-flow-has-emergency`` — the converse;
    ``r20-answer-completes`` — each part is completed by the first answer of its agency (police:
    emergency responded; governance center: coordinated) recorded after it and dated from the
    emergency to 7 days after it, or cancelled by leaving the register first, else still open."""
    expected: set[str] = set()
    dues = {"police": R20_RESPONSE, "governance": R20_COORDINATE}
    for pid, b in walks.items():
        for key, e in b.r20.items():
            findings.counts["r20 emergencies"] += 1
            findings.counts[
                "r20 emergencies reported" if e.trigger.topic == DANGER else "r20 emergencies assessed"
            ] += 1
            for role, action, kind in R20_OPENS:
                expected.add(str(_obligation_id(pid, "R20", key, role)))
                o = _check_opened(
                    findings, "r20-emergency-opens-the-flow", log, pid, "R20", key, e.trigger, role, action, kind
                )
                if o is None or action is None:
                    continue
                if o.assigned["due_at"] - e.trigger.recorded_at != dues[role]:
                    findings.add(
                        "r20-emergency-opens-the-flow",
                        o.id,
                        f"{action} due {o.assigned['due_at']}, not {dues[role]} after {_when(e.trigger)}",
                    )
                _expect_closing(findings, "r20-answer-completes", o, e.closing.get(role))
                findings.counts[f"r20 {role} {'answered' if role in e.closing else 'unanswered'}"] += 1
    for o in log.of_rule("R20") + log.of_rule("R20", notices=True):
        if o.id not in expected:
            findings.add(
                "r20-flow-has-emergency",
                o.id,
                f"R20 {o.assigned['action']} of {o.subject}: {o.key} opens no emergency flow",
            )


def _check_tasks(log: _Log, findings: Findings) -> None:
    """10. Tasks people assign: ``task-opens-one-obligation`` — every ``TaskAssigned`` opens exactly one
    ``assigned_task`` obligation for its assignee, with its deadline, about its patient (else the
    task), triggered by it; ``task-obligation-has-task`` — the converse; ``task-completed-by-owner`` —
    a task is completed only by its assignee's word (``by_agency``)."""
    for tid, task in log.tasks.items():
        findings.counts["tasks"] += 1
        o = log.obligations.get(_obligation_id(tid, TASK_RULE, tid, "assignee"))
        subject = str(task["patient_id"]) if task["patient_id"] is not None else tid
        if o is None or o.assigned is None:
            findings.add("task-opens-one-obligation", tid, f"task {_when(task)} opened no obligation")
            continue
        a = o.assigned
        have = (a["kind"], a["action"], a["assignee"], a["due_at"], str(a["patient_id"]), a["trigger_message_id"])
        want = ("obligation", "assigned_task", task["assignee"], task["due_at"], subject, task["message_id"])
        if have != want:
            findings.add("task-opens-one-obligation", o.id, f"task {tid}: opened {have}, not {want}")
        for done in o.completions:
            findings.counts["tasks completed"] += 1
            if done.get("by_agency") != task["assignee"]:
                findings.add(
                    "task-completed-by-owner",
                    o.id,
                    f"task {tid} completed by {done.get('by_agency')}, not its assignee",
                )
    for o in log.of_rule(TASK_RULE) + log.of_rule(TASK_RULE, notices=True):
        if o.key not in log.tasks or o.id != str(_obligation_id(o.key, TASK_RULE, o.key, "assignee")):
            findings.add(
                "task-obligation-has-task", o.id, f"task obligation of {o.subject} (key {o.key}): no such task"
            )


def _check_cared_for(log: _Log, walks: dict[str, _Beside], findings: Findings) -> None:
    """11. Institutional care "like a hospital stay": ``cared-for-opens-no-home-rule`` — no obligation
    of the rules for patients at home (R2, R3, R4, R6) is opened by a fact after which the patient is
    in hospital or in institutional care by occurred time (episodes of R2 and the end state of R3,
    R4, R6 read the same condition: invariants 3 and 5)."""
    for o in log.obligations.values():
        if o.assigned is None or o.is_notice or o.rule not in AT_HOME_RULES:
            continue
        b = walks.get(o.subject)
        if b is not None and b.cared_for_after.get(o.assigned["trigger_message_id"], False):
            findings.add(
                "cared-for-opens-no-home-rule",
                o.id,
                f"{o.rule} {o.assigned['action']} of {o.subject} opened by "
                f"{o.assigned['trigger_message_id']}, after which the patient is cared for away from home",
            )


# -- 12. two linked regions: moves and who is responsible (decision 050) ----------------------------

MOVE = "smd.MoveReported"
MOVE_ANSWERED = "smd.HandoverAnswered"  # inside the region: the destination's answer; else relayed by hand
RESIDENCE_CHANGED = "smd.ResidenceChanged"
CONTACT_RECORDED = "smd.HandoverContactRecorded"
REREGISTERED = "smd.PatientReregistered"
FED = "smd.ReportedByRegion"
OUT_OPENED = "smd.HandoverOpened"
OUT_CANCELLED = "smd.HandoverCancelled"
OUT_ANSWERED = "smd.HandoverAnswerArrived"
IN_REQUESTED = "smd.HandoverRequested"
IN_ANSWERED = "smd.HandoverAnswered.Destination"
IN_VOIDED = "smd.HandoverVoided"
MOVED_OUT = "moved_out"
HANDOVER_PREFIX = "handover:"
HANDOVER_TOPICS = frozenset(
    {
        OUT_OPENED,
        OUT_CANCELLED,
        OUT_ANSWERED,
        "smd.HandoverAnswerTooLate",
        "smd.OutgoingHandoverEscalated",
        IN_REQUESTED,
        IN_ANSWERED,
        "smd.IncomingHandoverCancelled",
        IN_VOIDED,
        "smd.IncomingHandoverEscalated",
    }
)
#: What ends the destination's duty to answer (or the origin's wait): an answer, a cancellation.
_HANDOVER_ENDS_HERE = frozenset({OUT_CANCELLED, OUT_ANSWERED, IN_ANSWERED, "smd.IncomingHandoverCancelled", IN_VOIDED})
#: An acceptance the origin has not heard of yet at the end of the log (the link carries hourly).
IN_FLIGHT = timedelta(days=1)
_ON_REGISTER = (REGISTERED, REREGISTERED, DEREGISTERED)


@dataclass
class _Region:
    """One region's log, as the checks across two regions read it."""

    code: str
    moves: list[Record] = field(default_factory=list)
    by_stream: dict[str, list[Record]] = field(default_factory=lambda: defaultdict(list))  # facts per patient
    handovers: dict[str, list[Record]] = field(default_factory=lambda: defaultdict(list))  # handover id → events
    assigned: list[Record] = field(default_factory=list)
    fed: dict[str, Record] = field(default_factory=dict)  # message id → smd.ReportedByRegion

    @classmethod
    def read(cls, code: str, records: Iterable[Record]) -> _Region:
        r = cls(code)
        for rec in records:
            if rec.topic == MOVE:
                r.moves.append(rec)
            if rec.topic in (MOVE, MOVE_ANSWERED, RESIDENCE_CHANGED, CONTACT_RECORDED, *_ON_REGISTER, FED):
                r.by_stream[str(rec.stream)].append(rec)
            if rec.topic in (OUT_OPENED, OUT_CANCELLED, OUT_ANSWERED, IN_REQUESTED, IN_ANSWERED, IN_VOIDED):
                r.handovers[str(rec.stream)].append(rec)
            if rec.topic == ASSIGNED:
                r.assigned.append(rec)
            if rec.topic == FED:
                r.fed[rec["message_id"]] = rec
        return r

    def of_move(self, patient: str, topic: str, move_id: object) -> list[Record]:
        return [f for f in self.by_stream.get(patient, []) if f.topic == topic and str(f["move_id"]) == str(move_id)]

    def registered_at_end(self, patient: str) -> bool:
        on = [f for f in self.by_stream.get(patient, []) if f.topic in _ON_REGISTER]
        return bool(on) and on[-1].topic != DEREGISTERED

    def opened(self, move_id: object) -> tuple[str, Record] | None:
        for hid, events in self.handovers.items():
            first = events[0]
            if first.topic == OUT_OPENED and str(first["move_id"]) == str(move_id):
                return hid, first
        return None


def check_regions(
    a: Iterable[Record], b: Iterable[Record], *, regions: tuple[str, str], end: datetime | None = None
) -> Findings:
    """The invariants of two linked regions (12 in the module docstring) over their two logs, whose
    recorded times are read on one clock (the simulation's). ``regions``: A's and B's codes."""
    findings = Findings()
    logs = (_Region.read(regions[0], a), _Region.read(regions[1], b))
    for origin, other in (logs, logs[::-1]):
        for move in origin.moves:
            _check_move(origin, other, move, end, findings)
    _check_always_one(logs, findings)
    for region in logs:
        _check_not_fed(region, findings)
    return findings


def _check_move(origin: _Region, other: _Region, move: Record, end: datetime | None, findings: Findings) -> None:
    """``move-ends-with-one-responsible-region`` (and, inside a region, with one residence)."""
    patient, move_id, dest = str(move.stream), move["move_id"], move["destination_region"]
    answers = origin.of_move(patient, MOVE_ANSWERED, move_id)
    on_register = origin.registered_at_end(patient)
    moved_out = [f for f in origin.by_stream[patient] if f.topic == DEREGISTERED and f["reason"] == MOVED_OUT]
    if dest == origin.code:  # inside the region: one region, one residence
        changed = origin.of_move(patient, RESIDENCE_CHANGED, move_id)
        accepted = any(f["accepted"] for f in answers)
        outcome = "unanswered" if not answers else ("accepted" if accepted else "rejected")
        findings.counts[f"end inside {outcome}"] += 1
        wrong = None
        if accepted and [f["residence"] for f in changed] != [move["destination_unit"]]:
            wrong = f"accepted, but {len(changed)} residence changes to its destination"
        elif not accepted and changed:
            wrong = "not accepted, yet the residence changed"
        elif moved_out and not any(_relayed(f) for f in answers):
            wrong = "a move inside the region deregistered the patient as moved out"
        if wrong:
            findings.add("move-ends-with-one-responsible-region", move_id, f"inside {origin.code}: {wrong}")
        return
    if dest == other.code:
        _check_linked_move(origin, other, move, end, findings)
        return
    relayed = [f for f in answers if _relayed(f)]
    contacted = bool(origin.of_move(patient, CONTACT_RECORDED, move_id))
    accepted = bool(relayed) and relayed[-1]["accepted"]
    outcome = "accepted" if accepted else ("rejected" if relayed else ("no answer" if contacted else "no contact"))
    findings.counts[f"end unlinked {outcome}"] += 1
    after = [f for f in moved_out if relayed and f.position > relayed[-1].position]
    if accepted and (on_register or not after):
        findings.add(
            "move-ends-with-one-responsible-region",
            move_id,
            f"to {dest} (no system there): accepted there, but {origin.code} did not deregister the patient after it",
        )
    elif not accepted and moved_out and not any(f["accepted"] for f in relayed):
        findings.add(
            "move-ends-with-one-responsible-region",
            move_id,
            f"to {dest} (no system there): not accepted there, yet {origin.code} deregistered the patient as moved out",
        )


def _relayed(answer: Record) -> bool:
    """An answer relayed by hand from a region without the system (decision 042: it has a day)."""
    return answer.get("answered_on") is not None


def _check_linked_move(origin: _Region, other: _Region, move: Record, end: datetime | None, findings: Findings) -> None:
    patient, move_id = str(move.stream), move["move_id"]
    found = origin.opened(move_id)
    if found is None:
        findings.add("move-to-a-linked-region-opens-a-handover", move_id, f"{origin.code} → {other.code}: no handover")
        return
    hid, _ = found
    here = origin.handovers[hid]
    decisive = next((e for e in here if e.topic in (OUT_CANCELLED, OUT_ANSWERED)), None)
    there = other.handovers.get(hid, [])
    answered = next((e for e in there if e.topic == IN_ANSWERED), None)
    voided = any(e.topic == IN_VOIDED for e in there)
    if decisive is None:
        outcome = (
            "unanswered" if answered is None else f"{'accepted' if answered['accepted'] else 'rejected'} in flight"
        )
    elif decisive.topic == OUT_CANCELLED:
        crossed = "" if answered is None else ("an acceptance" if answered["accepted"] else "a rejection")
        outcome = f"cancelled crossing {crossed}" if crossed else "cancelled"
    else:
        outcome = "accepted" if decisive["accepted"] else "rejected"
    findings.counts[f"end linked {outcome}"] += 1
    in_origin, in_other = origin.registered_at_end(patient), other.registered_at_end(patient)
    in_flight = (
        answered is not None
        and answered["accepted"]
        and decisive is None
        and end is not None
        and end - answered.recorded_at <= IN_FLIGHT
    )
    wrong = None
    if in_origin == in_other and not in_flight:
        wrong = f"on {'both registers' if in_origin else 'neither register'} at the end (handover {outcome})"
    elif outcome == "accepted" and not in_other:
        wrong = "accepted in the origin's log, but the destination does not manage the patient"
    elif outcome != "accepted" and in_other and not in_flight:
        wrong = f"{outcome}, but the destination manages the patient"
    elif answered is not None and answered["accepted"] and decisive is not None and decisive.topic == OUT_CANCELLED:
        if not voided:
            wrong = "the cancellation came first in the origin's log, but the destination's acceptance was not voided"
    if wrong:
        findings.add("move-ends-with-one-responsible-region", move_id, f"{origin.code} → {other.code}: {wrong}")


def _check_always_one(logs: tuple[_Region, _Region], findings: Findings) -> None:
    """``always-one-region-responsible``: a patient handed over between the two regions is on at
    least one of their registers at every instant from the first registration on (a deregistration
    that is no move out, a death say, ends that)."""
    handed = {
        str(events[0]["patient_id"])
        for region in logs
        for events in region.handovers.values()
        if events[0].topic in (OUT_OPENED, IN_REQUESTED)
    }
    for patient in sorted(handed):
        # by recorded time; at one instant a registration before a deregistration (the
        # destination registers before it answers: both responsible, never neither)
        timeline = sorted(
            (
                (f.recorded_at, f.topic == DEREGISTERED, i, f)
                for i, r in enumerate(logs)
                for f in r.by_stream.get(patient, [])
                if f.topic in _ON_REGISTER
            ),
            key=lambda t: (t[0], t[1], t[2]),
        )
        on = [False, False]
        started = False
        for at, off, i, f in timeline:
            on[i] = not off
            started = started or not off
            if started and not any(on) and f["reason"] == MOVED_OUT:
                findings.add(
                    "always-one-region-responsible",
                    patient,
                    f"on neither register from {at.isoformat()} ({logs[i].code} deregistered the patient as moved out)",
                )
                break


def _check_not_fed(region: _Region, findings: Findings) -> None:
    """``no-obligation-from-a-fact-fed-by-another-region`` (decision 047): a fact the managing
    region fed (``smd.ReportedByRegion``) opens nothing in the tracking region."""
    findings.counts[f"facts fed to {region.code}"] += len(region.fed)
    positions = {f.position for f in region.fed.values()}
    for o in region.assigned:
        if o["trigger_message_id"] in region.fed or o.get("trigger_position") in positions:
            findings.add(
                "no-obligation-from-a-fact-fed-by-another-region",
                o.stream,
                f"{o['rule']} {o['action']} in {region.code} opened by {o['trigger_message_id']}, "
                "a fact another region fed",
            )
