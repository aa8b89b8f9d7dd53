"""The invariant checker (issue 11) as stories: small hand-made global logs, each showing one
invariant kept and broken. The obligation ids come from the engine's own ``obligation_id``, so
these stories also show that the checker names R2's cycles as the engine does."""

from __future__ import annotations

import ast
from collections import Counter
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any
from uuid import UUID, uuid4

from domain.obligation import obligation_id
from ops.simulation.invariants import Findings, check
from ops.simulation.log import Record

T0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
GOV = "gov-willowbrook"


def day(n: float) -> datetime:
    return T0 + timedelta(days=n)


class Story:
    """A hand-made global log in recorded order: agencies' facts and what the engine recorded."""

    def __init__(self) -> None:
        self.records: list[Record] = []
        self.versions: Counter[UUID] = Counter()
        self.sent = 0

    def _put(self, topic: str, stream: UUID, at: datetime, **fields: Any) -> Record:
        self.versions[stream] += 1
        record = Record(len(self.records) + 1, topic, stream, self.versions[stream], at, fields)
        self.records.append(record)
        return record

    # -- what agencies record -----------------------------------------------------------------------

    def fact(
        self,
        topic: str,
        subject: UUID,
        *,
        on: float,
        occurred: float | None = None,
        ledger: bool = False,
        agency: str = "hc-north",
        **fields: Any,
    ) -> Record:
        """A fact recorded on day ``on`` that occurred on day ``occurred`` (the same day unless late)."""
        self.sent += 1
        message_id = f"{'ledger:' if ledger else ''}{agency}:m{self.sent}"
        when = day(on if occurred is None else occurred)
        return self._put(
            topic,
            subject,
            day(on),
            agency_id=agency,
            staff_id=None,
            occurred_at=when,
            message_id=message_id,
            **fields,
        )

    def register(self) -> UUID:
        patient = uuid4()
        self.fact("smd.PatientRegistered", patient, on=0, residence="990101-001-v01", diagnosis=None)
        return patient

    def visit(self, patient: UUID, level: int, *, on: float, joint: bool = False, **kw: Any) -> Record:
        cls = "unstable" if level >= 3 else ("basically_stable" if level else "stable")
        return self.fact(
            "smd.VisitRecorded", patient, on=on, face_to_face=True, joint=joint, risk_level=level, risk_class=cls, **kw
        )

    def assess(self, patient: UUID, level: int, *, on: float, **kw: Any) -> Record:
        cls = "unstable" if level >= 3 else ("basically_stable" if level else "stable")
        return self.fact("smd.RiskAssessed", patient, on=on, risk_level=level, risk_class=cls, **kw)

    def miss(self, patient: UUID, scheduled: float, *, on: float, **kw: Any) -> Record:
        return self.fact("smd.VisitMissed", patient, on=on, scheduled_on=day(scheduled).date(), reason=None, **kw)

    # -- what the engine records ----------------------------------------------------------------------

    def obligation(
        self,
        rule: str,
        action: str,
        trigger: Record,
        *,
        key: str | None = None,
        kind: str = "obligation",
        role: str = "police",
        cycle: int | None = None,
        due: float | None = None,
        subject: UUID | None = None,
        trigger_id: str | None = None,
        at: datetime | None = None,
        assignee: str = "police-east",
        due_at: datetime | None = None,
    ) -> UUID:
        """An obligation (or notice) opened by ``trigger``, recorded at the trigger's recorded time."""
        subject = subject or trigger.stream
        key = key or trigger["message_id"]
        oid = obligation_id(subject, rule, key, role, cycle)
        deadline = None if kind == "notice" else (trigger.recorded_at + timedelta(days=1) if due is None else day(due))
        deadline = due_at or deadline
        self._put(
            "smd.ObligationAssigned",
            oid,
            at or trigger.recorded_at,
            kind=kind,
            rule=rule,
            action=action,
            patient_id=subject,
            episode_key=key,
            assignee=assignee,
            residence="990101-001-v01",
            due_at=deadline,
            trigger_message_id=trigger_id or trigger["message_id"],
            trigger_position=trigger.position,
            risk_level=None,
        )
        return oid

    def follow_up(self, trigger: Record, *, cycle: int | None = None, **kw: Any) -> UUID:
        """R4's cycle opened by ``trigger`` (the first episode at home is keyed "registration")."""
        cycle = trigger.version if cycle is None else cycle
        return self.obligation("R4", "follow_up_visit", trigger, key="registration", role="visit", cycle=cycle, **kw)

    def complete(
        self, oid: UUID, by: Record | None, *, on: float | None = None, fulfilled_by: str | None = None
    ) -> None:
        at = day(on) if on is not None else by.recorded_at  # type: ignore[union-attr]
        by_id = fulfilled_by or (by["message_id"] if by else None)
        self._put("smd.ObligationCompleted", oid, at, fulfilled_by=by_id, by_agency=None, note=None)

    def cancel(self, oid: UUID, because: Record) -> None:
        self._put(
            "smd.ObligationCancelled",
            oid,
            because.recorded_at,
            reason="the facts changed",
            because_of=because["message_id"],
        )

    def overdue(self, oid: UUID, at: datetime, escalated_to: str | None = GOV) -> None:
        self._put("smd.ObligationOverdue", oid, at, escalated_to=escalated_to)

    def lost(self, trigger: Record) -> UUID:
        lid = obligation_id(trigger.stream, "R5", trigger["message_id"], "lost")
        self._put(
            "smd.LostToFollowUp", lid, trigger.recorded_at, patient_id=trigger.stream, episode_key=trigger["message_id"]
        )
        return lid

    def withdraw(self, lid: UUID, because: Record) -> None:
        self._put("smd.LostToFollowUpWithdrawn", lid, because.recorded_at, because_of=because["message_id"])

    def end(self, lid: UUID, because: Record) -> None:
        self._put("smd.LostToFollowUpEnded", lid, because.recorded_at, because_of=because["message_id"])

    def escalated(self, trigger: Record, level_before: int, class_before: str) -> None:
        """The RiskEscalated the engine derives from the assessment ``trigger``."""
        self._put(
            "smd.RiskEscalated",
            uuid4(),
            trigger.recorded_at,
            patient_id=trigger.stream,
            assessment_key=trigger["message_id"],
            occurred_at=trigger["occurred_at"],
            level_before=level_before,
            level_after=trigger["risk_level"],
            class_before=class_before,
            class_after=trigger["risk_class"],
            residence="990101-001-v01",
            recipients=[GOV],
        )

    def check(self, runs: tuple[float, ...] = (), misses_that_mean_lost: int = 3) -> Findings:
        return check(self.records, scheduler_runs=[day(n) for n in runs], misses_that_mean_lost=misses_that_mean_lost)


def broken(findings: Findings) -> set[str]:
    return {v.invariant for v in findings.violations}


def high_risk_entry(s: Story, patient: UUID, level: int = 3, *, on: float, **kw: Any) -> Record:
    """A visit at level >= 3 and what the engine opens for it: R1's police obligation, R2's first cycle."""
    entered = s.visit(patient, level, on=on, **kw)
    s.obligation("R1", "take_under_management", entered)
    s.obligation("R2", "joint_visit", entered, role="joint-visit", cycle=entered.version, due=on + 14)
    return entered


# -- 1. R1 -----------------------------------------------------------------------------------------------


class TestR1Entries:
    def test_an_entry_into_level_three_that_opened_its_police_obligation_breaks_nothing(self) -> None:
        s = Story()
        p = s.register()
        high_risk_entry(s, p, 3, on=1)
        findings = s.check()
        assert findings.ok, findings.violations
        assert findings.counts["r1 entries"] == 1

    def test_an_entry_that_opened_no_r1_obligation_is_reported(self) -> None:
        s = Story()
        p = s.register()
        s.visit(p, 4, on=1)
        [v] = s.check().of("r1-entry-opens-one-obligation")
        assert v.subject == str(p) and "hc-north:m2" in v.detail

    def test_the_governance_center_assigning_a_police_station_counts_as_the_r1_obligation(self) -> None:
        s = Story()
        p = s.register()
        entered = s.visit(p, 4, on=1)
        s.obligation("R1", "assign_police_station", entered)
        assert s.check().of("r1-entry-opens-one-obligation") == []

    def test_an_r1_obligation_opened_by_another_fact_than_the_entry_is_reported(self) -> None:
        s = Story()
        p = s.register()
        entered = s.visit(p, 4, on=1)
        later = s.visit(p, 5, on=2)
        s.obligation("R1", "take_under_management", later, key=entered["message_id"])
        [v] = s.check().of("r1-entry-opens-one-obligation")
        assert "triggered by hc-north:m3" in v.detail

    def test_an_r1_obligation_without_an_entry_is_reported(self) -> None:
        s = Story()
        p = s.register()
        calm = s.visit(p, 2, on=1)
        s.obligation("R1", "take_under_management", calm)
        assert broken(s.check()) >= {"r1-obligation-has-entry"}

    def test_staying_high_is_one_entry_and_re_entering_after_leaving_is_another(self) -> None:
        s = Story()
        p = s.register()
        first = s.visit(p, 4, on=1)
        s.obligation("R1", "take_under_management", first)
        s.visit(p, 5, on=2)  # still high: the same episode
        fell = s.visit(p, 1, on=3)
        s.cancel(obligation_id(p, "R1", first["message_id"], "police"), fell)
        again = s.visit(p, 3, on=4)  # re-entry: a new episode keyed by this fact
        findings = s.check()
        assert findings.counts["r1 entries"] == 2
        [v] = findings.of("r1-entry-opens-one-obligation")
        assert again["message_id"] in v.detail

    def test_a_late_lower_assessment_dated_earlier_neither_ends_the_episode_nor_opens_another(self) -> None:
        s = Story()
        p = s.register()
        entered = s.visit(p, 4, on=5)
        s.obligation("R1", "take_under_management", entered)
        s.assess(p, 1, on=6, occurred=2)  # older than the level-4 visit: the level stays 4
        findings = s.check()
        assert findings.counts["r1 entries"] == 1
        assert findings.of("r1-entry-opens-one-obligation") == findings.of("open-obligation-still-holds") == []

    def test_a_late_high_assessment_dated_before_a_newer_low_one_is_no_entry(self) -> None:
        s = Story()
        p = s.register()
        s.visit(p, 1, on=5)
        late = s.assess(p, 4, on=6, occurred=2)  # the latest by occurred time is still level 1
        s.obligation("R1", "take_under_management", late)
        findings = s.check()
        assert findings.counts["r1 entries"] == 0
        assert [v.invariant for v in findings.violations if v.invariant.startswith("r1")] == ["r1-obligation-has-entry"]

    def test_assessments_at_the_same_instant_are_ordered_by_message_id(self) -> None:
        s = Story()
        p = s.register()
        s.assess(p, 4, on=3, occurred=2)  # hc-north:m2 → level 4: an entry
        s.assess(p, 1, on=3, occurred=2)  # hc-north:m3, same instant, later id: level 1 wins
        findings = s.check()
        assert findings.counts["r1 entries"] == 1
        assert s.check().of("r1-entry-opens-one-obligation")  # the entry at m2 opened nothing

    def test_an_entry_in_an_imported_past_is_decided_by_the_backfill_keyed_by_the_fact_that_entered(self) -> None:
        s = Story()
        p = s.register()
        entered = s.visit(p, 4, on=1, ledger=True)  # history: decides nothing by itself
        imported = s.fact("smd.HistoryImported", p, on=2, ledger="a1b2", rows=3)
        s.obligation("R1", "take_under_management", imported, key=entered["message_id"])
        assert s.check().of("r1-entry-opens-one-obligation") == []

    def test_a_backfill_that_keys_r1_by_the_import_rather_than_the_entering_fact_is_reported(self) -> None:
        s = Story()
        p = s.register()
        s.visit(p, 4, on=1, ledger=True)
        imported = s.fact("smd.HistoryImported", p, on=2, ledger="a1b2", rows=3)
        s.obligation("R1", "take_under_management", imported)  # keyed by the import's own message id
        assert broken(s.check()) >= {"r1-entry-opens-one-obligation", "r1-obligation-has-entry"}

    def test_an_episode_of_the_imported_past_that_ended_before_the_backfill_opens_nothing(self) -> None:
        s = Story()
        p = s.register()
        s.visit(p, 4, on=1, ledger=True)
        s.visit(p, 1, on=1, occurred=1.5, ledger=True)
        s.fact("smd.HistoryImported", p, on=2, ledger="a1b2", rows=3)
        findings = s.check()
        assert findings.ok, findings.violations
        assert (findings.counts["r1 entries"], findings.counts["r1 entries in the imported past"]) == (0, 1)


# -- 2. R5 -----------------------------------------------------------------------------------------------


def three_misses(s: Story, p: UUID) -> Record:
    """A visit on day 1, then misses of the visits scheduled on days 10, 20 and 30."""
    s.visit(p, 1, on=1)
    s.miss(p, 10, on=11)
    s.miss(p, 20, on=21)
    return s.miss(p, 30, on=31)


class TestR5Lost:
    def test_three_misses_in_a_row_derive_one_lost_status_and_one_locate_obligation(self) -> None:
        s = Story()
        p = s.register()
        third = three_misses(s, p)
        s.obligation("R5", "locate_patient", third)
        s.lost(third)
        findings = s.check()
        assert findings.ok, findings.violations
        assert findings.counts["lost episodes (misses)"] == 1

    def test_a_run_of_misses_without_a_locate_obligation_is_reported(self) -> None:
        s = Story()
        p = s.register()
        s.lost(three_misses(s, p))
        assert broken(s.check()) == {"r5-lost-episode-opens-one-locate"}

    def test_a_run_of_misses_without_a_derived_lost_status_is_reported(self) -> None:
        s = Story()
        p = s.register()
        s.obligation("R5", "locate_patient", three_misses(s, p))
        assert broken(s.check()) == {"r5-lost-episode-derives-one-lost-status"}

    def test_misses_scheduled_before_the_latest_visit_do_not_make_a_patient_lost(self) -> None:
        s = Story()
        p = s.register()
        s.visit(p, 1, on=40)
        s.miss(p, 10, on=41)  # reported late: all three were scheduled before the visit of day 40
        s.miss(p, 20, on=41)
        s.lost(s.miss(p, 30, on=41))
        findings = s.check()
        assert findings.counts["lost episodes (misses)"] == 0
        assert broken(findings) == {"r5-lost-status-has-episode"}

    def test_a_visit_dated_on_a_scheduled_day_still_leaves_the_later_misses_in_a_row(self) -> None:
        s = Story()
        p = s.register()
        s.visit(p, 1, on=10)
        s.miss(p, 10, on=11)  # the same day as the visit: not after it
        s.miss(p, 20, on=21)
        s.miss(p, 30, on=31)
        fourth = s.miss(p, 40, on=41)
        s.obligation("R5", "locate_patient", fourth)
        s.lost(fourth)
        assert s.check().ok

    def test_the_threshold_is_the_setting_given(self) -> None:
        s = Story()
        p = s.register()
        s.visit(p, 1, on=1)
        s.miss(p, 10, on=11)
        second = s.miss(p, 20, on=21)
        s.obligation("R5", "locate_patient", second)
        s.lost(second)
        assert s.check(misses_that_mean_lost=2).ok
        assert broken(s.check()) == {"r5-locate-has-episode", "r5-lost-status-has-episode"}

    def test_a_late_visit_between_the_misses_withdraws_the_lost_status_and_cancels_the_locate(self) -> None:
        s = Story()
        p = s.register()
        third = three_misses(s, p)
        locate, lost = s.obligation("R5", "locate_patient", third), s.lost(third)
        late = s.visit(p, 1, on=32, occurred=15)  # dated between the misses: they were not in a row
        s.withdraw(lost, late)
        s.cancel(locate, late)
        findings = s.check()
        assert findings.ok, findings.violations
        assert findings.counts["lost withdrawn"] == 1

    def test_a_run_of_misses_that_stopped_holding_without_a_correction_is_reported(self) -> None:
        s = Story()
        p = s.register()
        third = three_misses(s, p)
        locate = s.obligation("R5", "locate_patient", third)
        s.lost(third)
        late = s.visit(p, 1, on=32, occurred=15)
        s.cancel(locate, late)
        [v] = s.check().violations
        assert v.invariant == "r5-lost-status-compensated" and late["message_id"] in v.detail

    def test_a_visit_after_the_last_miss_ends_the_lost_status_rather_than_withdrawing_it(self) -> None:
        s = Story()
        p = s.register()
        third = three_misses(s, p)
        locate, lost = s.obligation("R5", "locate_patient", third), s.lost(third)
        reached = s.visit(p, 1, on=36, occurred=35)
        s.withdraw(lost, reached)  # wrong: the patient was reached, the misses were real
        s.complete(locate, reached)
        [v] = s.check().violations
        assert v.invariant == "r5-lost-status-compensated" and "LostToFollowUpEnded" in v.detail

    def test_a_lost_status_withdrawn_while_the_misses_still_hold_is_reported(self) -> None:
        s = Story()
        p = s.register()
        third = three_misses(s, p)
        s.obligation("R5", "locate_patient", third)
        lost = s.lost(third)
        s.withdraw(lost, s.miss(p, 40, on=41))
        assert broken(s.check()) == {"r5-lost-status-compensated"}

    def test_a_declaration_of_unknown_whereabouts_opens_a_locate_obligation_and_no_lost_status(self) -> None:
        s = Story()
        p = s.register()
        unknown = s.fact("smd.WhereaboutsDeclared", p, on=3, known=False)
        s.obligation("R5", "locate_patient", unknown)
        findings = s.check()
        assert findings.ok, findings.violations
        assert findings.counts["lost episodes (declared)"] == 1

    def test_a_declaration_of_unknown_whereabouts_that_derived_a_lost_status_is_reported(self) -> None:
        s = Story()
        p = s.register()
        unknown = s.fact("smd.WhereaboutsDeclared", p, on=3, known=False)
        s.obligation("R5", "locate_patient", unknown)
        s.lost(unknown)
        assert broken(s.check()) == {"r5-declared-unknown-opens-one-locate", "r5-lost-status-has-episode"}

    def test_a_locate_obligation_without_a_lost_episode_is_reported(self) -> None:
        s = Story()
        p = s.register()
        s.obligation("R5", "locate_patient", s.miss(p, 10, on=11))
        assert broken(s.check()) == {"r5-locate-has-episode"}


# -- 3. R2 -----------------------------------------------------------------------------------------------


class TestR2JointVisits:
    def test_an_unstable_patient_at_home_gets_the_first_joint_visit_cycle_from_the_opening_fact(self) -> None:
        s = Story()
        p = s.register()
        s.assess(p, 2, on=1)  # basically stable: no R2
        unstable = s.fact("smd.RiskAssessed", p, on=2, risk_level=2, risk_class="unstable")
        s.obligation("R2", "joint_visit", unstable, role="joint-visit", cycle=unstable.version, due=16)
        s.escalated(unstable, 2, "basically_stable")  # the class worsened
        findings = s.check()
        assert findings.ok, findings.violations
        assert (findings.counts["r2 episodes"], findings.counts["r2 cycles"]) == (1, 1)

    def test_an_unstable_episode_without_its_first_cycle_is_reported(self) -> None:
        s = Story()
        p = s.register()
        s.fact("smd.RiskAssessed", p, on=2, risk_level=2, risk_class="unstable")
        assert broken(s.check()) == {"r2-episode-opens-first-cycle"}

    def test_each_joint_visit_completes_its_cycle_and_opens_the_next(self) -> None:
        s = Story()
        p = s.register()
        entered = high_risk_entry(s, p, on=1)
        key = entered["message_id"]
        joint = s.visit(p, 3, on=12, joint=True)
        s.obligation("R2", "joint_visit", joint, key=key, role="joint-visit", cycle=joint.version, due=26)
        s.complete(obligation_id(p, "R2", key, "joint-visit", entered.version), joint)
        findings = s.check()
        assert findings.ok, findings.violations
        assert findings.counts["r2 cycles"] == 2

    def test_a_joint_visit_that_opened_no_next_cycle_is_reported(self) -> None:
        s = Story()
        p = s.register()
        entered = high_risk_entry(s, p, on=1)
        joint = s.visit(p, 3, on=12, joint=True)
        s.complete(obligation_id(p, "R2", entered["message_id"], "joint-visit", entered.version), joint)
        [v] = s.check().violations
        assert v.invariant == "r2-joint-visit-opens-next-cycle" and joint["message_id"] in v.detail

    def test_a_late_joint_visit_dated_before_the_latest_one_opens_no_cycle(self) -> None:
        s = Story()
        p = s.register()
        entered = high_risk_entry(s, p, on=1)
        key = entered["message_id"]
        joint = s.visit(p, 3, on=12, joint=True)
        s.obligation("R2", "joint_visit", joint, key=key, role="joint-visit", cycle=joint.version, due=26)
        s.complete(obligation_id(p, "R2", key, "joint-visit", entered.version), joint)
        s.visit(p, 3, on=13, occurred=5, joint=True)  # older than the anchor: the cycle stays
        assert s.check().ok

    def test_two_cycles_of_one_episode_open_at_once_are_reported(self) -> None:
        s = Story()
        p = s.register()
        entered = high_risk_entry(s, p, on=1)
        joint = s.visit(p, 3, on=12, joint=True)
        s.obligation("R2", "joint_visit", joint, key=entered["message_id"], role="joint-visit", cycle=joint.version)
        findings = s.check()
        assert broken(findings) == {"r2-one-cycle-open-at-a-time", "open-obligation-still-holds"}
        [v] = findings.of("open-obligation-still-holds")
        assert "not the current cycle" in v.detail

    def test_an_unstable_patient_in_hospital_has_no_joint_visit_cycle(self) -> None:
        s = Story()
        p = s.register()
        s.fact("smd.HospitalStayRecorded", p, on=1, admitted=True)
        assessed = s.fact("smd.RiskAssessed", p, on=2, risk_level=2, risk_class="unstable")
        s.obligation("R2", "joint_visit", assessed, role="joint-visit", cycle=assessed.version)
        assert broken(s.check()) >= {"r2-cycle-has-episode"}

    def test_a_discharge_of_an_unstable_patient_opens_the_episode(self) -> None:
        s = Story()
        p = s.register()
        s.fact("smd.HospitalStayRecorded", p, on=1, admitted=True)
        s.fact("smd.RiskAssessed", p, on=2, risk_level=2, risk_class="unstable")
        discharged = s.fact("smd.HospitalStayRecorded", p, on=9, admitted=False)
        s.obligation("R2", "joint_visit", discharged, role="joint-visit", cycle=discharged.version, due=23)
        assert s.check().ok


# -- 4. triggers and fulfilments -------------------------------------------------------------------------


class TestTriggers:
    def test_an_obligation_whose_trigger_was_never_recorded_is_reported(self) -> None:
        s = Story()
        p = s.register()
        visit = s.visit(p, 1, on=1)
        s.follow_up(visit, trigger_id="hc-north:never-sent")
        [v] = s.check().violations
        assert v.invariant == "obligation-has-trigger-fact" and "no such fact" in v.detail

    def test_an_obligation_recorded_before_its_trigger_is_reported(self) -> None:
        s = Story()
        p = s.register()
        s.follow_up(s.records[0], cycle=2, trigger_id="hc-north:m2")  # the visit's stream version
        s.visit(p, 1, on=1)  # hc-north:m2, recorded after the assignment
        [v] = s.check().violations
        assert v.invariant == "obligation-has-trigger-fact" and "after the assignment" in v.detail

    def test_an_obligation_triggered_by_another_patients_fact_is_reported(self) -> None:
        s = Story()
        p, q = s.register(), s.register()
        visit = s.visit(q, 1, on=1)
        s.follow_up(visit, cycle=1, subject=p)
        assert "obligation-has-trigger-fact" in broken(s.check())

    def test_a_suspected_case_obligation_is_triggered_on_the_case_stream(self) -> None:
        s = Story()
        case = uuid4()
        reported = s.fact("smd.SuspectedCaseReported", case, on=1, seen_in="990101-001-v01")
        s.obligation("R18", "assess_suspected_case", reported, role="health-center", due=15)
        findings = s.check()
        assert findings.ok, findings.violations
        assert findings.counts["suspected cases"] == 1

    def test_a_run_out_warning_names_the_pickup_obligation_already_marked_overdue(self) -> None:
        s = Story()
        p = s.register()
        pickup = s.fact("smd.MedicationDispensed", p, on=1, dispensed_on=day(1).date(), days_supplied=7)
        cycle = s.obligation("R6", "medication_pickup_due", pickup, role="health-center", cycle=pickup.version, due=8)
        s.overdue(cycle, day(8.5))
        warning = {"kind": "notice", "role": "care-team-warning", "cycle": pickup.version, "trigger_id": f"due:{cycle}"}
        s.obligation("R6", "medication_run_out_warning", pickup, **warning, at=day(8.5))
        assert s.check(runs=(8.5,)).ok

    def test_a_run_out_warning_before_its_obligation_fell_due_is_reported(self) -> None:
        s = Story()
        p = s.register()
        pickup = s.fact("smd.MedicationDispensed", p, on=1, dispensed_on=day(1).date(), days_supplied=7)
        cycle = s.obligation("R6", "medication_pickup_due", pickup, role="health-center", cycle=pickup.version, due=8)
        warning = {"kind": "notice", "role": "care-team-warning", "cycle": pickup.version, "trigger_id": f"due:{cycle}"}
        s.obligation("R6", "medication_run_out_warning", pickup, **warning, at=day(2))
        assert broken(s.check()) == {"obligation-has-trigger-fact"}

    def test_a_completion_that_names_no_recorded_fact_is_reported(self) -> None:
        s = Story()
        p = s.register()
        visit = s.visit(p, 1, on=1)
        oid = s.follow_up(visit, due=31)
        s.complete(oid, None, on=5, fulfilled_by="hc-north:never-sent")
        assert broken(s.check()) == {"completion-names-recorded-fact"}

    def test_an_agency_completing_in_its_own_words_names_no_fact_and_breaks_nothing(self) -> None:
        s = Story()
        p = s.register()
        visit = s.visit(p, 1, on=1)
        s.complete(s.follow_up(visit, due=31), None, on=5)
        assert s.check().ok


# -- 5. what is still open at the end ----------------------------------------------------------------------


class TestOpenAtTheEnd:
    def test_an_r1_obligation_still_open_after_the_level_fell_below_three_is_reported(self) -> None:
        s = Story()
        p = s.register()
        entered = s.assess(p, 4, on=1)
        s.obligation("R1", "take_under_management", entered)
        s.assess(p, 1, on=5)
        [v] = s.check().of("open-obligation-still-holds")
        assert "the current risk level is 1" in v.detail

    def test_an_r1_obligation_still_open_under_police_management_is_reported(self) -> None:
        s = Story()
        p = s.register()
        s.obligation("R1", "take_under_management", s.assess(p, 4, on=1))
        s.fact("smd.PoliceManagementRecorded", p, on=2, under=True)
        [v] = s.check().of("open-obligation-still-holds")
        assert "under police management" in v.detail

    def test_an_obligation_of_a_patient_who_left_the_register_is_reported(self) -> None:
        s = Story()
        p = s.register()
        s.follow_up(s.records[0], due=14)
        s.fact("smd.PatientDeregistered", p, on=5, reason="death", note=None)
        [v] = s.check().violations
        assert v.invariant == "open-obligation-still-holds" and "left the register" in v.detail

    def test_an_incident_review_outlives_the_register(self) -> None:
        s = Story()
        p = s.register()
        incident = s.fact("smd.IncidentReported", p, on=1, incident_id=uuid4(), incident_kind="self_harm", severity=2)
        s.obligation("R14", "review_incident", incident, role="governance", due=8)
        s.fact("smd.PatientDeregistered", p, on=5, reason="death", note=None)
        assert s.check().ok

    def test_a_first_follow_up_still_open_after_a_visit_following_the_discharge_is_reported(self) -> None:
        s = Story()
        p = s.register()
        s.fact("smd.HospitalStayRecorded", p, on=1, admitted=True)
        discharged = s.fact("smd.HospitalStayRecorded", p, on=10, admitted=False)
        s.obligation("R11", "first_follow_up_after_discharge", discharged, role="health-center", due=17)
        s.visit(p, 1, on=12)
        [v] = s.check().violations
        assert v.invariant == "open-obligation-still-holds" and "visited after the discharge" in v.detail

    def test_a_social_guardian_designation_still_open_after_a_social_guardian_was_designated_is_reported(self) -> None:
        s = Story()
        p = s.register()
        s.obligation("R9", "designate_social_guardian", s.fact("smd.GuardianRecorded", p, on=1, status="none"))
        s.fact("smd.GuardianRecorded", p, on=9, status="social")
        [v] = s.check().violations
        assert "guardian's status is social" in v.detail

    def test_an_assessment_of_a_suspected_case_still_open_after_it_was_assessed_is_reported(self) -> None:
        s = Story()
        case = uuid4()
        reported = s.fact("smd.SuspectedCaseReported", case, on=1, seen_in="990101-001-v01")
        s.obligation("R18", "assess_suspected_case", reported, role="health-center", due=15)
        s.fact("smd.SuspectedCaseAssessed", case, on=4, outcome="no_severe_disorder", note=None)
        [v] = s.check().violations
        assert v.invariant == "open-obligation-still-holds" and "assessed" in v.detail

    def test_a_locate_obligation_still_open_after_the_patient_was_declared_located_is_reported(self) -> None:
        s = Story()
        p = s.register()
        s.obligation("R5", "locate_patient", s.fact("smd.WhereaboutsDeclared", p, on=3, known=False))
        s.fact("smd.WhereaboutsDeclared", p, on=6, known=True)
        [v] = s.check().violations
        assert "whereabouts were declared known" in v.detail

    def test_a_mobilisation_still_open_after_the_care_team_reached_the_family_is_reported(self) -> None:
        s = Story()
        p = s.register()
        assessed = s.assess(p, 2, on=1)
        s.obligation("R3", "mobilise_guardian_for_treatment", assessed, role="committee", due=8)
        s.fact("smd.CareTeamContactRecorded", p, on=3, role="community_worker", outcome="reached", mode="visit")
        [v] = s.check().violations
        assert "reached the family" in v.detail

    def test_a_follow_up_cycle_still_open_after_the_next_visit_is_reported(self) -> None:
        s = Story()
        p = s.register()
        first = s.follow_up(s.records[0], due=14)
        visit = s.visit(p, 1, on=10)  # completes the first cycle and opens the next
        s.follow_up(visit, due=40)
        [v] = s.check().violations
        assert v.subject == str(first) and "anchored on hc-north:m2" in v.detail

    def test_a_follow_up_cycle_of_a_patient_discharged_since_belongs_to_the_new_episode(self) -> None:
        s = Story()
        p = s.register()
        first = s.follow_up(s.records[0], due=14)
        s.cancel(first, s.fact("smd.HospitalStayRecorded", p, on=5, admitted=True))
        discharged = s.fact("smd.HospitalStayRecorded", p, on=9, admitted=False)
        s.obligation("R4", "follow_up_visit", discharged, role="visit", cycle=discharged.version, due=23)
        assert s.check().ok

    def test_a_pickup_cycle_still_open_after_the_next_pickup_is_reported(self) -> None:
        s = Story()
        p = s.register()
        first = s.fact("smd.MedicationDispensed", p, on=1, dispensed_on=day(1).date(), days_supplied=7)
        s.obligation("R6", "medication_pickup_due", first, role="health-center", cycle=first.version, due=8)
        second = s.fact("smd.MedicationDispensed", p, on=6, dispensed_on=day(6).date(), days_supplied=30)
        cycle = {"key": first["message_id"], "role": "health-center", "cycle": second.version}
        s.obligation("R6", "medication_pickup_due", second, **cycle, due=37)
        [v] = s.check().violations
        assert "the current R6 cycle is anchored on hc-north:m3" in v.detail

    def test_open_notices_are_not_held_to_their_facts(self) -> None:
        s = Story()
        p = s.register()
        entered = s.assess(p, 4, on=1)
        s.obligation("R1", "high_risk_patient_notice", entered, kind="notice", role="governance-notice")
        s.assess(p, 1, on=5)
        assert s.check().of("open-obligation-still-holds") == []


# -- 6. R15 --------------------------------------------------------------------------------------------------


def follow_up(s: Story, due: float) -> UUID:
    """A registered patient at home with a follow-up visit due on day ``due``."""
    s.register()
    return s.follow_up(s.records[0], due=due)


class TestOverdue:
    def test_an_obligation_open_past_its_deadline_is_marked_overdue_once_at_the_first_run_after(self) -> None:
        s = Story()
        oid = follow_up(s, due=10)
        s.overdue(oid, day(11))
        findings = s.check(runs=(9, 11, 12))
        assert findings.ok, findings.violations
        assert findings.counts["overdue R4"] == 1

    def test_an_obligation_never_marked_overdue_is_reported(self) -> None:
        s = Story()
        follow_up(s, due=10)
        [v] = s.check(runs=(11,)).violations
        assert v.invariant == "r15-overdue-exactly-once" and "0 times" in v.detail

    def test_a_second_overdue_mark_is_reported(self) -> None:
        s = Story()
        oid = follow_up(s, due=10)
        s.overdue(oid, day(11))
        s.overdue(oid, day(12))
        assert broken(s.check(runs=(11, 12))) == {"r15-overdue-exactly-once"}

    def test_an_overdue_mark_at_a_later_run_than_the_first_past_the_deadline_is_reported(self) -> None:
        s = Story()
        oid = follow_up(s, due=10)
        s.overdue(oid, day(12))
        [v] = s.check(runs=(11, 12)).violations
        assert "not at the first run" in v.detail

    def test_a_deadline_falling_exactly_on_a_run_is_overdue_at_that_run(self) -> None:
        s = Story()
        oid = follow_up(s, due=11)
        s.overdue(oid, day(11))
        assert s.check(runs=(11,)).ok

    def test_an_obligation_done_before_the_run_is_never_overdue(self) -> None:
        s = Story()
        oid = follow_up(s, due=10)
        s.complete(oid, s.visit(s.records[0].stream, 1, on=10.5))
        s.overdue(oid, day(11))
        [v] = s.check(runs=(11,)).violations
        assert "no scheduler run found it open" in v.detail

    def test_an_obligation_closed_at_the_very_instant_of_the_run_is_not_overdue(self) -> None:
        s = Story()
        oid = follow_up(s, due=10)
        s.complete(oid, s.visit(s.records[0].stream, 1, on=11))
        assert s.check(runs=(11,)).ok

    def test_an_obligation_assigned_after_its_deadline_waits_for_the_next_run(self) -> None:
        s = Story()
        p = s.register()
        late_pickup = s.fact(
            "smd.MedicationDispensed", p, on=12, occurred=1, dispensed_on=day(1).date(), days_supplied=7
        )
        oid = s.obligation("R6", "medication_pickup_due", late_pickup, role="health-center", cycle=2, due=8)
        s.overdue(oid, day(13))
        assert s.check(runs=(11, 13)).ok

    def test_an_overdue_mark_that_escalated_to_nobody_is_reported(self) -> None:
        s = Story()
        oid = follow_up(s, due=10)
        s.overdue(oid, day(11), escalated_to=None)
        assert broken(s.check(runs=(11,))) == {"r15-overdue-escalated"}

    def test_a_notice_is_never_overdue(self) -> None:
        s = Story()
        p = s.register()
        entered = s.assess(p, 4, on=1)
        s.obligation("R1", "take_under_management", entered)
        notice = s.obligation("R1", "high_risk_patient_notice", entered, kind="notice", role="governance-notice")
        s.overdue(notice, day(3))
        assert "r15-notice-never-overdue" in broken(s.check(runs=(3,)))


# -- the counts and the referee's independence ----------------------------------------------------------------


class TestCountsAndIndependence:
    def test_the_counts_name_what_the_log_holds(self) -> None:
        s = Story()
        p = s.register()
        s.visit(p, 1, on=5)
        s.visit(p, 1, on=6, occurred=2)  # three days late, and dated before a fact recorded earlier
        s._put("smd.OrgUnitDefined", uuid4(), day(6), unit="990101")  # not the checker's business
        counts = s.check().counts
        assert counts["facts smd.VisitRecorded"] == 2 and counts["facts"] == 3
        assert (counts["late facts"], counts["out of order facts"], counts["records"]) == (1, 1, 4)
        assert counts["patients"] == 1

    def test_the_counts_give_obligations_notices_and_their_ends_by_rule(self) -> None:
        s = Story()
        p = s.register()
        entered = s.assess(p, 4, on=1)
        oid = s.obligation("R1", "take_under_management", entered)
        s.obligation("R1", "high_risk_patient_notice", entered, kind="notice", role="governance-notice")
        s.overdue(oid, day(2.5))
        s.cancel(oid, s.assess(p, 1, on=3))
        counts = s.check(runs=(2.5,)).counts
        assert [counts[k] for k in ("obligations R1", "notices R1", "overdue R1", "cancelled R1")] == [1, 1, 1, 1]

    def test_the_checker_imports_nothing_but_the_standard_library_and_the_log_records(self) -> None:
        source = Path(__file__).parents[2] / "ops" / "simulation" / "invariants.py"
        imported = set()
        for node in ast.walk(ast.parse(source.read_text())):
            if isinstance(node, ast.ImportFrom):
                imported.add(node.module or "")
            elif isinstance(node, ast.Import):
                imported |= {a.name for a in node.names}
        assert not {m for m in imported if m.split(".")[0] in ("domain", "core", "projections", "api")}
        assert {m for m in imported if m.startswith("ops")} == {"ops.simulation.log"}


# -- 7-11. issue 19: RiskEscalated, R19, R20, tasks, institutional care ----------------------------------

HOSPITAL, COMMITTEE, POLICE = "hospital-lantern-bay", "committee-north", "police-east"
KINDS = {
    HOSPITAL: "psychiatric_hospital",
    "hc-north": "health_center",
    COMMITTEE: "committee",
    POLICE: "police_station",
    GOV: "governance_center",
}


def district(s: Story) -> None:
    """The registry's records: which kind each agency is."""
    for agency, kind in KINDS.items():
        s._put("smd.AgencyDefined", uuid4(), day(-30), agency_id=agency, kind=kind, name=agency, jurisdiction=[])


class TestRiskEscalated:
    def test_a_worse_assessment_derives_one_risk_escalated_with_the_levels_before_and_after(self) -> None:
        s = Story()
        p = s.register()
        s.assess(p, 1, on=1)
        worse = s.assess(p, 2, on=2)
        s.escalated(worse, 1, "basically_stable")
        findings = s.check()
        assert findings.ok, findings.violations
        assert findings.counts["risk escalations expected"] == findings.counts["risk escalated"] == 1

    def test_a_late_assessment_is_compared_with_the_one_before_it_by_occurred_time(self) -> None:
        s = Story()
        p = s.register()
        s.assess(p, 2, on=1)
        s.assess(p, 1, on=5)
        s.assess(p, 2, on=6, occurred=3)  # after the level-2 one of day 1: not worse
        assert s.check().ok

    def test_a_missing_escalation_and_one_without_a_worsening_are_reported(self) -> None:
        s = Story()
        p = s.register()
        s.assess(p, 1, on=1)
        s.assess(p, 2, on=2)  # worse, nothing derived
        same = s.assess(p, 2, on=3)
        s.escalated(same, 2, "basically_stable")  # derived, not worse
        assert broken(s.check()) == {"risk-escalation-derived-once", "risk-escalation-has-worsening"}


def hospital_patient(s: Story) -> tuple[UUID, Record]:
    district(s)
    p = uuid4()
    registered = s.fact("smd.PatientRegistered", p, on=0, agency=HOSPITAL, residence="990101-001-v01", diagnosis=None)
    return p, registered


def take_over(s: Story, registered: Record, *, level: int | None = None) -> UUID:
    """What R19 opens: the health center's take-over (due at the end of the 10th working day:
    registered on a Monday, the Monday two weeks later ends it), the governance center's notice."""
    key = "hospital-new-patient"
    due = datetime(2026, 3, 16, 16, 0, tzinfo=UTC)  # 2026-03-17 00:00 China time
    oid = s.obligation(
        "R19", "take_over_from_hospital", registered, key=key, role="health-center", assignee="hc-north", due_at=due
    )
    s.obligation(
        "R19", "hospital_new_patient_notice", registered, key=key, kind="notice", role="governance-notice", assignee=GOV
    )
    if level is not None and level >= 3:
        s.obligation(
            "R19",
            "hospital_new_patient_notice",
            registered,
            key=key,
            kind="notice",
            role="police-notice",
            assignee=POLICE,
        )
    return oid


class TestR19HospitalNewPatient:
    def test_the_hospitals_new_patient_is_taken_over_by_the_first_visit(self) -> None:
        s = Story()
        p, registered = hospital_patient(s)
        oid = take_over(s, registered)
        s.complete(oid, s.visit(p, 1, on=5))
        s.visit(p, 1, on=9)
        findings = s.check()
        assert findings.ok, findings.violations
        assert findings.counts["r19 take-overs completed"] == 1

    def test_a_missing_take_over_a_wrong_completion_and_a_take_over_without_a_hospital_fact_are_reported(
        self,
    ) -> None:
        s = Story()
        p, registered = hospital_patient(s)
        oid = take_over(s, registered)
        s.visit(p, 1, on=5)
        s.complete(oid, s.visit(p, 1, on=9))  # not the first visit
        assert broken(s.check()) == {"r19-first-visit-completes"}
        s = Story()
        p, _ = hospital_patient(s)
        assert broken(s.check()) == {"r19-hospital-patient-taken-over"}
        s = Story()
        district(s)
        take_over(s, s.fact("smd.PatientRegistered", uuid4(), on=0, residence="990101-001-v01", diagnosis=None))
        assert broken(s.check()) == {"r19-take-over-has-hospital-fact"}

    def test_a_hospital_diagnosis_after_a_visit_opens_nothing(self) -> None:
        s = Story()
        district(s)
        p = s.register()
        s.visit(p, 1, on=1)
        s.fact("smd.DiagnosisRecorded", p, on=2, agency=HOSPITAL, diagnosis="schizophrenia", revoked=False, reason=None)
        assert s.check().ok


def emergency_flow(s: Story, trigger: Record) -> dict[str, UUID]:
    """What R20 opens for ``trigger``: the police (30 minutes), the governance center (2 hours), notices."""
    at = trigger.recorded_at
    return {
        "police": s.obligation(
            "R20", "respond_to_emergency", trigger, role="police", assignee=POLICE, due_at=at + timedelta(minutes=30)
        ),
        "governance": s.obligation(
            "R20", "coordinate_emergency", trigger, role="governance", assignee=GOV, due_at=at + timedelta(hours=2)
        ),
        "committee": s.obligation(
            "R20", "emergency_notice", trigger, kind="notice", role="committee-notice", assignee=COMMITTEE
        ),
        "hc": s.obligation(
            "R20", "emergency_notice", trigger, kind="notice", role="health-center-notice", assignee="hc-north"
        ),
    }


def danger(s: Story, p: UUID, *, on: float, occurred: float | None = None) -> Record:
    return s.fact(
        "smd.RiskEscalationReported", p, on=on, occurred=occurred, agency=COMMITTEE, danger="to_others", observed=None
    )


class TestR20Emergency:
    def test_a_danger_report_opens_the_flow_and_the_polices_response_completes_its_part(self) -> None:
        s = Story()
        district(s)
        p = s.register()
        opened = emergency_flow(s, danger(s, p, on=3))
        answer = s.fact("smd.EmergencyResponded", p, on=3.01, agency=POLICE, outcome="calmed_on_site", action=None)
        s.complete(opened["police"], answer)
        findings = s.check()
        assert findings.ok, findings.violations
        assert (findings.counts["r20 police answered"], findings.counts["r20 governance unanswered"]) == (1, 1)

    def test_a_report_told_too_late_and_a_second_report_of_one_emergency_open_nothing(self) -> None:
        s = Story()
        district(s)
        p = s.register()
        danger(s, p, on=4, occurred=3)  # a day late: the emergency is over
        emergency_flow(s, danger(s, p, on=5))
        danger(s, p, on=5 + 1 / 24)  # an hour later: the same emergency
        assert s.check().ok

    def test_an_assessment_at_4_in_institutional_care_opens_no_flow(self) -> None:
        s = Story()
        district(s)
        p = s.register()
        s.fact(
            "smd.InstitutionalCareRecorded", p, on=2, started=True, care_kind="extreme_poverty", place=None, reason=None
        )
        assessed = s.assess(p, 4, on=3)
        s.obligation("R1", "take_under_management", assessed)
        findings = s.check()
        assert not findings.of("r20-emergency-opens-the-flow")
        emergency_flow(s, assessed)
        assert "r20-flow-has-emergency" in broken(s.check())

    def test_a_missing_flow_and_an_answer_that_did_not_complete_are_reported(self) -> None:
        s = Story()
        district(s)
        p = s.register()
        danger(s, p, on=3)
        assert broken(s.check()) == {"r20-emergency-opens-the-flow"}
        s = Story()
        district(s)
        p = s.register()
        emergency_flow(s, danger(s, p, on=3))
        s.fact("smd.EmergencyCoordinated", p, on=3.05, agency=GOV, measures=None)  # nothing completed
        assert broken(s.check()) == {"r20-answer-completes"}


class TestTasks:
    def task(self, s: Story, patient: UUID | None, *, assignee: str = "hc-north") -> tuple[UUID, Record]:
        task = uuid4()
        fact = s.fact(
            "smd.TaskAssigned",
            task,
            on=1,
            agency=GOV,
            assignee=assignee,
            due_at=day(8),
            text=None,
            patient_id=patient,
            place="990101-001-v01",
        )
        return task, fact

    def assigned(self, s: Story, task: UUID, fact: Record, subject: UUID) -> UUID:
        """The obligation the policy opens: named after the task, about its patient (else the task)."""
        oid = obligation_id(task, "TASK", str(task), "assignee")
        fields = {
            "kind": "obligation",
            "rule": "TASK",
            "action": "assigned_task",
            "patient_id": subject,
            "episode_key": str(task),
            "assignee": fact["assignee"],
            "residence": "990101-001-v01",
            "due_at": fact["due_at"],
            "trigger_message_id": fact["message_id"],
            "trigger_position": fact.position,
            "risk_level": None,
        }
        s._put("smd.ObligationAssigned", oid, fact.recorded_at, **fields)
        return oid

    def test_a_task_opens_its_assignees_obligation_which_its_owner_completes(self) -> None:
        s = Story()
        p = s.register()
        task, fact = self.task(s, p)
        oid = self.assigned(s, task, fact, p)
        s._put("smd.ObligationCompleted", oid, day(3), fulfilled_by=None, by_agency="hc-north", note=None)
        place_task, place_fact = self.task(s, None)
        self.assigned(s, place_task, place_fact, place_task)  # at a place: the task is the subject
        findings = s.check()
        assert findings.ok, findings.violations
        assert (findings.counts["tasks"], findings.counts["tasks completed"]) == (2, 1)

    def test_a_task_without_obligation_one_done_by_another_agency_and_an_obligation_without_task_are_reported(
        self,
    ) -> None:
        s = Story()
        p = s.register()
        self.task(s, p)
        assert broken(s.check()) == {"task-opens-one-obligation"}
        s = Story()
        p = s.register()
        task, fact = self.task(s, p)
        oid = self.assigned(s, task, fact, p)
        s._put("smd.ObligationCompleted", oid, day(3), fulfilled_by=None, by_agency=COMMITTEE, note=None)
        assert broken(s.check()) == {"task-completed-by-owner"}
        s = Story()
        p = s.register()
        visit = s.visit(p, 1, on=1)
        s.obligation("TASK", "assigned_task", visit, key=str(uuid4()), role="assignee")
        assert "task-obligation-has-task" in broken(s.check())


class TestInstitutionalCare:
    def care(self, s: Story, p: UUID, *, on: float, started: bool = True) -> Record:
        return s.fact(
            "smd.InstitutionalCareRecorded", p, on=on, started=started, care_kind=None, place=None, reason=None
        )

    def test_no_rule_for_patients_at_home_opens_while_in_institutional_care(self) -> None:
        s = Story()
        p = s.register()
        self.care(s, p, on=2)
        visit = s.visit(p, 1, on=3)
        s.follow_up(visit)
        assert "cared-for-opens-no-home-rule" in broken(s.check())

    def test_an_unstable_patient_in_institutional_care_has_no_joint_visit_cycle_until_the_care_ends(self) -> None:
        s = Story()
        p = s.register()
        self.care(s, p, on=2)
        s.fact("smd.RiskAssessed", p, on=3, risk_level=2, risk_class="unstable")
        assert not s.check().of("r2-episode-opens-first-cycle")
        ended = self.care(s, p, on=10, started=False)  # home again: the unstable episode opens
        assert [v.invariant for v in s.check().violations] == ["r2-episode-opens-first-cycle"]
        s.obligation("R2", "joint_visit", ended, role="joint-visit", cycle=ended.version, due=24)
        findings = s.check()
        assert findings.ok, findings.violations
        assert findings.counts["in institutional care at the end"] == 0


# -- R21: reporting duties (decision 023) ---------------------------------------------------------------

CST = timezone(timedelta(hours=8))
DEPT = "dept-willowbrook-justice"


def duty(
    s: Story, key: str = "monthly_progress|2026-03", *, opened: datetime, due_at: datetime, agency: str = DEPT
) -> UUID:
    """The scheduler opens an agency's duty for a period (trigger ``R21:<duty>|<period>``)."""
    oid = uuid4()
    s._put(
        "smd.ObligationAssigned",
        oid,
        opened,
        kind="obligation",
        rule="R21",
        action="submit_monthly_report",
        patient_id=uuid4(),
        episode_key=key,
        assignee=agency,
        residence="990101-001",
        due_at=due_at,
        trigger_message_id=f"R21:{key}",
        trigger_position=len(s.records),
        risk_level=None,
    )
    return oid


def report(
    s: Story, *, on: float, agency: str = DEPT, duty_name: str = "monthly_progress", period: str = "2026-03"
) -> Record:
    return s.fact("smd.ReportSubmitted", uuid4(), on=on, agency=agency, duty=duty_name, period=period, reference=None)


MARCH_1 = datetime(2026, 3, 1, tzinfo=CST)
MARCH_25_END = datetime(2026, 3, 26, tzinfo=CST)


class TestR21ReportingDuties:
    def test_r21_a_duty_opened_with_its_period_due_at_the_end_of_the_25th_and_completed_by_its_report_breaks_nothing(
        self,
    ) -> None:
        s = Story()
        oid = duty(s, opened=MARCH_1, due_at=MARCH_25_END)
        s.complete(oid, report(s, on=10))
        assert s.check().ok

    def test_r21_a_duty_due_on_another_day_is_reported(self) -> None:
        s = Story()
        duty(s, opened=MARCH_1, due_at=MARCH_25_END - timedelta(days=1))
        assert broken(s.check()) == {"r21-due-at-the-end-of-the-named-day"}

    def test_r21_a_duty_opened_before_its_period_began_is_reported(self) -> None:
        s = Story()
        duty(s, opened=MARCH_1 - timedelta(hours=1), due_at=MARCH_25_END)
        assert broken(s.check()) == {"r21-opened-once-its-period-began"}

    def test_r21_a_duty_completed_by_another_agencys_report_is_reported(self) -> None:
        s = Story()
        oid = duty(s, opened=MARCH_1, due_at=MARCH_25_END)
        s.complete(oid, report(s, on=10, agency="dept-willowbrook-community"))
        assert "r21-completed-by-its-report" in broken(s.check())

    def test_r21_a_duty_left_open_after_its_report_came_is_reported(self) -> None:
        s = Story()
        duty(s, opened=MARCH_1, due_at=MARCH_25_END)
        report(s, on=10)
        assert broken(s.check()) == {"open-obligation-still-holds"}

    def test_r21_a_duty_opened_by_its_report_names_the_report(self) -> None:
        s = Story()
        first = report(s, on=0)
        oid = duty(s, opened=first.recorded_at, due_at=MARCH_25_END)
        s.records[-1].fields["trigger_message_id"] = first["message_id"]  # type: ignore[index]
        s.complete(oid, first)
        assert s.check().ok


# -- 12. two linked regions: moves and who is responsible (decision 050) ------------------------------

A_CODE, B_CODE, NOWHERE = "990101", "990104", "990301"


class TwoRegions:
    """Two hand-made logs on one clock: region A (the origin) and region B (the linked region)."""

    def __init__(self) -> None:
        self.a, self.b = Story(), Story()

    def register_in_a(self) -> UUID:
        return self.a.register()

    def move(self, patient: UUID, destination: str, *, on: float, unit: str | None = None) -> tuple[UUID, Record]:
        move_id = uuid4()
        fact = self.a.fact(
            "smd.MoveReported",
            patient,
            on=on,
            agency="committee-north",
            move_id=move_id,
            destination_region=destination,
            destination_unit=unit,
            moving_on=day(on + 10).date(),
        )
        return move_id, fact

    def open_handover(self, patient: UUID, move_id: UUID, *, on: float) -> UUID:
        hid = uuid4()
        fields = {"patient_id": patient, "move_id": move_id, "deadline": day(on + 10)}
        self.a._put("smd.HandoverOpened", hid, day(on), destination_region=B_CODE, **fields)
        self.b._put("smd.HandoverRequested", hid, day(on + 0.1), origin_region=A_CODE, **fields)
        return hid

    def b_answers(self, patient: UUID, hid: UUID, accepted: bool, *, on: float) -> None:
        if accepted:  # B registers the patient before it answers
            self.b.fact("smd.PatientRegistered", patient, on=on, residence="990104-001-v01", diagnosis=None)
        self.b._put("smd.HandoverAnswered.Destination", hid, day(on), accepted=accepted, by_agency="hc-north")

    def a_hears(self, patient: UUID, hid: UUID, accepted: bool, *, on: float, deregister: bool = True) -> None:
        self.a._put("smd.HandoverAnswerArrived", hid, day(on), accepted=accepted, sequence=1)
        if accepted and deregister:
            self.a.fact("smd.PatientDeregistered", patient, on=on, reason="moved_out", note=None)

    def check(self) -> Findings:
        from ops.simulation.invariants import check_regions

        return check_regions(self.a.records, self.b.records, regions=(A_CODE, B_CODE), end=day(60))


class TestTwoRegionsMoves:
    def test_an_accepted_transfer_ends_with_the_destination_alone_responsible(self) -> None:
        r = TwoRegions()
        p = r.register_in_a()
        move_id, _ = r.move(p, B_CODE, on=1)
        hid = r.open_handover(p, move_id, on=1)
        r.b_answers(p, hid, True, on=3)
        r.a_hears(p, hid, True, on=3.1)
        found = r.check()
        assert found.ok, found.violations
        assert found.counts["end linked accepted"] == 1

    def test_the_origin_letting_go_before_the_destination_took_the_patient_is_reported(self) -> None:
        r = TwoRegions()
        p = r.register_in_a()
        move_id, _ = r.move(p, B_CODE, on=1)
        hid = r.open_handover(p, move_id, on=1)
        r.a_hears(p, hid, True, on=2)  # A deregistered the patient a day before B registered them
        r.b_answers(p, hid, True, on=3)
        assert broken(r.check()) == {"always-one-region-responsible"}

    def test_an_acceptance_undone_in_the_destination_after_the_origin_let_go_is_reported(self) -> None:
        r = TwoRegions()
        p = r.register_in_a()
        move_id, _ = r.move(p, B_CODE, on=1)
        hid = r.open_handover(p, move_id, on=1)
        r.b_answers(p, hid, True, on=3)
        r.a_hears(p, hid, True, on=3.1)
        r.b.fact("smd.PatientDeregistered", p, on=5, reason="moved_out", note=None)
        assert broken(r.check()) == {"move-ends-with-one-responsible-region", "always-one-region-responsible"}

    def test_a_rejected_or_unanswered_transfer_leaves_the_origin_responsible(self) -> None:
        r = TwoRegions()
        p, q = r.register_in_a(), r.register_in_a()
        m1, _ = r.move(p, B_CODE, on=1)
        h1 = r.open_handover(p, m1, on=1)
        r.b_answers(p, h1, False, on=3)
        r.a_hears(p, h1, False, on=3.1)
        m2, _ = r.move(q, B_CODE, on=1)
        r.open_handover(q, m2, on=1)
        found = r.check()
        assert found.ok, found.violations
        assert (found.counts["end linked rejected"], found.counts["end linked unanswered"]) == (1, 1)

    def test_a_cancellation_crossing_an_acceptance_voids_it_and_the_origin_stays_responsible(self) -> None:
        r = TwoRegions()
        p = r.register_in_a()
        move_id, _ = r.move(p, B_CODE, on=1)
        hid = r.open_handover(p, move_id, on=1)
        r.b_answers(p, hid, True, on=3)
        r.a._put("smd.HandoverCancelled", hid, day(3.01), by_agency="hc-north", reason="the family stays")
        r.a._put("smd.HandoverAnswerTooLate", hid, day(3.1), accepted=True, sequence=1)
        r.b._put("smd.HandoverVoided", hid, day(3.1), sequence=2, answer="accepted")
        r.b.fact("smd.PatientDeregistered", p, on=3.1, reason="other", note=None)
        found = r.check()
        assert found.ok, found.violations
        assert found.counts["end linked cancelled crossing an acceptance"] == 1

    def test_an_acceptance_left_standing_after_the_origin_cancelled_first_is_reported(self) -> None:
        r = TwoRegions()
        p = r.register_in_a()
        move_id, _ = r.move(p, B_CODE, on=1)
        hid = r.open_handover(p, move_id, on=1)
        r.b_answers(p, hid, True, on=3)
        r.a._put("smd.HandoverCancelled", hid, day(3.01), by_agency="hc-north", reason="the family stays")
        assert broken(r.check()) == {"move-ends-with-one-responsible-region"}  # on both registers

    def test_a_move_to_the_linked_region_without_a_handover_is_reported(self) -> None:
        r = TwoRegions()
        r.move(r.register_in_a(), B_CODE, on=1)
        assert broken(r.check()) == {"move-to-a-linked-region-opens-a-handover"}

    def test_inside_the_region_an_acceptance_changes_the_residence_once_and_a_rejection_never(self) -> None:
        r = TwoRegions()
        p, q = r.register_in_a(), r.register_in_a()
        m1, _ = r.move(p, A_CODE, on=1, unit="990101-002-v01")
        r.a.fact("smd.HandoverAnswered", p, on=4, move_id=m1, accepted=True, reason=None, answered_on=None)
        r.a.fact("smd.ResidenceChanged", p, on=4, move_id=m1, residence="990101-002-v01", previous="990101-001-v01")
        m2, _ = r.move(q, A_CODE, on=1, unit="990101-002-v01")
        r.a.fact("smd.HandoverAnswered", q, on=4, move_id=m2, accepted=False, reason=None, answered_on=None)
        found = r.check()
        assert found.ok, found.violations
        assert (found.counts["end inside accepted"], found.counts["end inside rejected"]) == (1, 1)

    def test_inside_the_region_an_acceptance_without_its_residence_change_is_reported(self) -> None:
        r = TwoRegions()
        p = r.register_in_a()
        m1, _ = r.move(p, A_CODE, on=1, unit="990101-002-v01")
        r.a.fact("smd.HandoverAnswered", p, on=4, move_id=m1, accepted=True, reason=None, answered_on=None)
        assert broken(r.check()) == {"move-ends-with-one-responsible-region"}

    def test_inside_the_region_a_rejection_that_changed_the_residence_is_reported(self) -> None:
        r = TwoRegions()
        p = r.register_in_a()
        m1, _ = r.move(p, A_CODE, on=1, unit="990101-002-v01")
        r.a.fact("smd.HandoverAnswered", p, on=4, move_id=m1, accepted=False, reason=None, answered_on=None)
        r.a.fact("smd.ResidenceChanged", p, on=4, move_id=m1, residence="990101-002-v01", previous="990101-001-v01")
        assert broken(r.check()) == {"move-ends-with-one-responsible-region"}

    def relayed(self, r: TwoRegions, p: UUID, move_id: UUID, accepted: bool, on: float) -> None:
        r.a.fact("smd.HandoverContactRecorded", p, on=on - 2, move_id=move_id, contacted_on=day(on - 2).date())
        r.a.fact(
            "smd.HandoverAnswered",
            p,
            on=on,
            move_id=move_id,
            accepted=accepted,
            reason=None,
            answered_on=day(on).date(),
        )

    def test_to_a_region_without_the_system_its_relayed_acceptance_deregisters_the_patient(self) -> None:
        r = TwoRegions()
        p, q = r.register_in_a(), r.register_in_a()
        m1, _ = r.move(p, NOWHERE, on=1)
        self.relayed(r, p, m1, True, on=9)
        r.a.fact("smd.PatientDeregistered", p, on=9, reason="moved_out", note=None)
        m2, _ = r.move(q, NOWHERE, on=1)
        self.relayed(r, q, m2, False, on=9)
        found = r.check()
        assert found.ok, found.violations
        assert (found.counts["end unlinked accepted"], found.counts["end unlinked rejected"]) == (1, 1)

    def test_to_a_region_without_the_system_an_acceptance_that_kept_the_patient_is_reported(self) -> None:
        r = TwoRegions()
        p = r.register_in_a()
        m1, _ = r.move(p, NOWHERE, on=1)
        self.relayed(r, p, m1, True, on=9)
        assert broken(r.check()) == {"move-ends-with-one-responsible-region"}

    def test_a_fact_fed_by_the_managing_region_opens_nothing_in_the_tracking_region(self) -> None:
        r = TwoRegions()
        p = r.register_in_a()
        fed = r.a.fact("smd.ReportedByRegion", p, on=20, agency=f"region:{B_CODE}", region=B_CODE, fact="visit")
        found = r.check()
        assert found.ok and found.counts[f"facts fed to {A_CODE}"] == 1
        r.a.obligation("R4", "follow_up_visit", fed, key="registration", role="visit", cycle=fed.version)
        assert broken(r.check()) == {"no-obligation-from-a-fact-fed-by-another-region"}


class TestHandoverObligations:
    """R8 between regions: the destination's answer obligation is about the handover (the patient
    may not exist there yet), opened and completed by the handover's own events."""

    def requested(self, s: Story) -> Record:
        return s._put("smd.HandoverRequested", uuid4(), day(1), origin_region=A_CODE, patient_id=uuid4())

    def answer_obligation(self, s: Story, requested: Record, trigger: str) -> UUID:
        oid = uuid4()
        s._put(
            "smd.ObligationAssigned",
            oid,
            day(1),
            kind="obligation",
            rule="R8",
            action="accept_or_reject_handover",
            patient_id=requested.stream,
            episode_key=str(requested.stream),
            assignee="hc-north",
            residence="990104-001-v01",
            due_at=day(11),
            trigger_message_id=trigger,
            trigger_position=requested.position,
            risk_level=None,
        )
        return oid

    def test_an_answer_obligation_opened_by_the_request_and_completed_by_the_answer_breaks_nothing(self) -> None:
        s = Story()
        requested = self.requested(s)
        oid = self.answer_obligation(s, requested, f"handover:{requested.stream}:1")
        answered = s._put("smd.HandoverAnswered.Destination", requested.stream, day(3), accepted=False)
        s.complete(oid, None, on=3, fulfilled_by=f"handover:{requested.stream}:{answered.version}")
        assert s.check().ok

    def test_an_answer_obligation_naming_no_handover_event_is_reported(self) -> None:
        s = Story()
        requested = self.requested(s)
        self.answer_obligation(s, requested, f"handover:{requested.stream}:7")
        assert broken(s.check()) == {"obligation-has-trigger-fact"}

    def test_an_answer_obligation_left_open_after_the_answer_is_reported(self) -> None:
        s = Story()
        requested = self.requested(s)
        self.answer_obligation(s, requested, f"handover:{requested.stream}:1")
        s._put("smd.HandoverAnswered.Destination", requested.stream, day(3), accepted=True)
        assert broken(s.check()) == {"open-obligation-still-holds"}
