"""The rules' deadlines and thresholds, with the seeds' values as defaults.

A region records changes with effective dates (``domain.rule_settings``, docs/decisions/009);
each rule module names the fields it reads. The seeds say "promptly" (及时) for several rules:
those defaults are ours (docs/decisions/008 and 010 give the sources and the choices).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta


@dataclass(frozen=True, slots=True)
class RuleSettings:
    """Deadlines and thresholds of the rules (the seeds say "promptly" (及时) for R1 and R5:
    these are our defaults, docs/decisions/008)."""

    r1_take_under_management: timedelta = timedelta(hours=24)
    r5_misses_that_mean_lost: int = 3
    r5_locate: timedelta = timedelta(days=3)
    # Care and safety rules (sources and choices in docs/decisions/010).
    r2_joint_visit_every: timedelta = timedelta(days=14)  # Q-4, J 卫生院 1: 至少每两周共同面访一次
    r3_mobilise_guardian: timedelta = timedelta(days=7)  # Q-4 "及时送医": our default
    r4_first_visit: timedelta = timedelta(days=14)  # no class known yet: our default
    r4_unstable: timedelta = timedelta(days=14)  # national norm
    r4_basically_stable: timedelta = timedelta(days=30)  # norm: monthly (14 days after a treatment change: not tracked)
    r4_stable: timedelta = timedelta(days=90)  # norm: every 3 months
    r9_designate_social_guardian: timedelta = timedelta(days=30)  # our default
    r10_sign_agreement: timedelta = timedelta(days=7)  # J 村居 6: our default
    r11_first_follow_up: timedelta = timedelta(days=7)  # Q-26 (出院即失管): our default
    r13_aid_review: timedelta = timedelta(days=30)  # J 社会事务 1 "及时": our default
    r14_police_response: timedelta = timedelta(hours=24)  # J 派出所 3 "迅速派警": our default
    r14_review: timedelta = timedelta(days=7)  # our default
    r17_township_review: timedelta = timedelta(days=7)  # DESIGN.md R17
    r17_city_review: timedelta = timedelta(days=15)  # DESIGN.md R17
    r18_assess_working_days: int = 10  # J 村居 2, J 措施 (三): 10 working days
    r19_take_over_working_days: int = 10  # J 卫生院 3(1): the hospital's new patients, 10 working days
    r20_police_response: timedelta = timedelta(minutes=30)  # J 措施 (三) ③ "at once": minutes, our default
    r20_coordinate: timedelta = timedelta(hours=2)  # J 措施 (三) ② 会商确定具体措施: our default
    r20_same_emergency_within: timedelta = timedelta(hours=2)  # a second report of one emergency: our default
    r20_too_late: timedelta = timedelta(hours=6)  # told this late, an emergency is past: our default
    # Moves inside the region (docs/decisions/042): our defaults.
    r7_notify_destination_police: timedelta = timedelta(hours=24)  # J 派出所 5 "及时通报": our default
    r7_acknowledge_notice: timedelta = timedelta(hours=72)  # the destination police acknowledge: our default
    r8_answer_move: timedelta = timedelta(days=14)  # J 卫生院 4(2): the receiving health center answers
    r8_manual_answer: timedelta = timedelta(days=30)  # J 卫生院 4(2) 对接市卫健局: a region without this system
    r16_contact_every: timedelta = timedelta(days=30)  # DESIGN.md R16: monthly care-team contact (key patients)
    # Break the glass (DESIGN.md section 4; docs/decisions/029): our defaults.
    r22_emergency_access_hours: timedelta = timedelta(hours=3)  # a grant's length when the caller names none
    r22_emergency_access_longest: timedelta = timedelta(hours=12)  # the longest a caller may ask for
    r22_emergency_access_per_agency_per_day: int = 5  # grants per agency per day (China time)
    r22_review_working_days: int = 5  # the governance center reviews each grant within these working days
    # R21 reporting duties (region data; kinds are comma-separated agency kinds, empty: nobody).
    r21_monthly_report_day: int = 25  # Q 三、保障措施: 每月 25 日前 (the month's last day when shorter)
    # the 科室 and agencies Qingyang's task table names
    r21_monthly_report_kinds: str = "department,health_center,police_station,civil_affairs,disabled_persons_federation"
    r21_quarterly_report_day: int = 28  # J 卫生院 5: 3/28, 6/28, 9/28, 12/28 (of the quarter's last month)
    r21_quarterly_report_kinds: str = "health_center"  # J 卫生院 5
    r21_suspected_case_report_kinds: str = "committee"  # J 村居 2(2): monthly, by the month's end (our default)
    go_live_grace: timedelta = timedelta(
        days=14
    )  # a cycle already overdue at go-live: due then + min(its period, this)
