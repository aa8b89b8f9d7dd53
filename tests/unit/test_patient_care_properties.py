"""The care team, contacts, aid and hardship do not depend on the order in which facts arrive.

Some facts need another first (a removal needs an assignment, a revocation or a subsidy
collection needs a grant, each dated at or before it). An agency whose fact is refused for that
reason sends it again later, so each arrival order is played as: try every fact in that order,
then retry the refused ones until nothing more is accepted. Those rules only ever look for an
earlier fact, so the same facts end up accepted whatever the order, and the derived state must
be the same.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from uuid import uuid4

from hypothesis import given, settings
from hypothesis import strategies as st

from domain.errors import DomainError
from domain.patient import Patient
from domain.patient_care import AidType, CareRole
from domain.personal import CareTeamMember, PersonalDetails
from domain.values import Provenance

NOW = datetime(2026, 11, 20, 12, tzinfo=UTC)
START = datetime(2026, 1, 1, tzinfo=UTC)
days = st.integers(min_value=0, max_value=30)  # few instants: ties are common
roles = st.sampled_from([r.value for r in CareRole][:3])  # few roles: changes to one role collide
aid_types = st.sampled_from(
    [AidType.MINIMUM_LIVING_ALLOWANCE.value, AidType.EXTREME_POVERTY_SUPPORT.value, AidType.GUARDIAN_SUBSIDY.value]
)


def facts():
    assign = st.builds(
        lambda d, r, n: ("assign_care_team_member", d, {"role": r, "member": CareTeamMember(name=n)}),
        days,
        roles,
        st.sampled_from(["A", "B", "C"]),
    )
    remove = st.builds(lambda d, r: ("remove_care_team_member", d, {"role": r}), days, roles)
    contact = st.builds(
        lambda d, r, o: ("record_care_team_contact", d, {"role": r, "mode": "visit", "outcome": o}),
        days,
        roles,
        st.sampled_from(["reached", "not_reached", "refused"]),
    )
    aid = st.one_of(
        st.builds(lambda d, t: ("apply_for_aid", d, {"aid_type": t}), days, aid_types),
        st.builds(lambda d, t: ("grant_aid", d, {"aid_type": t}), days, aid_types),
        st.builds(lambda d, t: ("find_ineligible_for_aid", d, {"aid_type": t, "reason": "r"}), days, aid_types),
        st.builds(lambda d, t: ("revoke_aid", d, {"aid_type": t, "reason": "r"}), days, aid_types),
    )
    subsidy = st.builds(
        lambda d: ("record_guardian_subsidy_collected", d, {"month": (START + timedelta(days=d)).strftime("%Y-%m")}),
        days,
    )
    economic = st.builds(
        lambda d, s: ("record_circumstances", d, {"economic_status": s}),
        days,
        st.sampled_from(["ordinary", "minimum_living_allowance", "unable_to_pay_treatment"]),
    )
    return st.lists(st.one_of(assign, remove, contact, aid, subsidy, economic), max_size=20)


def build(arrivals) -> Patient:
    patient = Patient.register(
        uuid4(), Provenance("hc", None, START - timedelta(days=1), "hc:reg"), NOW, PersonalDetails(name="P"), "v-01"
    )
    pending = list(arrivals)
    while pending:
        refused = []
        for index, (command, day, kwargs) in pending:
            by = Provenance("agency", None, START + timedelta(days=day), f"agency:{index:04d}")
            try:
                getattr(patient, command)(by, NOW, **kwargs)
            except DomainError:
                refused.append((index, (command, day, kwargs)))
        if len(refused) == len(pending):
            break
        pending = refused
    return patient


def derived(p: Patient) -> tuple:
    middle = START + timedelta(days=15)
    return (
        p.care_team(),
        p.care_team(as_of=middle),
        p.care_team_history,
        p.missing_care_team_roles(),
        p.care_team_contacts,
        p.last_care_team_contact_at,
        p.aid(),
        p.aid(as_of=middle),
        p.guardian_subsidy_months,
        p.hardship_reasons(),
        p.hardship_reasons(as_of=middle),
        p.in_extreme_poverty,
    )


class TestArrivalOrder:
    @settings(max_examples=300, deadline=None)
    @given(facts(), st.randoms(use_true_random=False))
    def test_any_arrival_order_gives_the_same_care_team_contacts_aid_and_hardship(self, history, rnd) -> None:
        # distinct occurred times (at the same occurred time the fact recorded later wins: below)
        history = [(cmd, day + i / 1000, kw) for i, (cmd, day, kw) in enumerate(history)]
        numbered = list(enumerate(history))  # the index is the message id: fixed per fact
        shuffled = list(numbered)
        rnd.shuffle(shuffled)
        assert derived(build(numbered)) == derived(build(shuffled))

    def test_at_the_same_occurred_time_the_fact_recorded_later_wins(self) -> None:
        applied, granted = (
            ("apply_for_aid", 3, {"aid_type": "temporary_aid"}),
            ("grant_aid", 3, {"aid_type": "temporary_aid"}),
        )
        assert build([(0, applied), (1, granted)]).aid()[AidType.TEMPORARY_AID] == "granted"
        assert build([(1, granted), (0, applied)]).aid()[AidType.TEMPORARY_AID] == "pending"

    def test_a_refused_fact_sent_again_after_its_prerequisite_is_accepted(self) -> None:
        grant_later = [
            (0, ("revoke_aid", 5, {"aid_type": "guardian_subsidy", "reason": "r"})),
            (1, ("grant_aid", 2, {"aid_type": "guardian_subsidy"})),
        ]
        assert build(grant_later).aid()[AidType.GUARDIAN_SUBSIDY] == "revoked"
