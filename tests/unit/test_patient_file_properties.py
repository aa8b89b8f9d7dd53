"""The file's derived state does not depend on the order in which facts arrive."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from uuid import uuid4

from hypothesis import given, settings
from hypothesis import strategies as st

from domain.patient import Patient
from domain.patient_file import RefusalKind
from domain.personal import GuardianContact, PersonalDetails
from domain.values import Provenance

NOW = datetime(2026, 11, 20, 12, tzinfo=UTC)
START = datetime(2026, 1, 1, tzinfo=UTC)
days = st.integers(min_value=0, max_value=30)  # few instants: ties are common


def facts():
    circumstances = st.builds(
        lambda d, a, b: ("record_circumstances", d, {"lives_alone": a, "can_drive": b}),
        days,
        st.booleans(),
        st.booleans(),
    )
    hospital = st.one_of(
        st.builds(lambda d: ("admit", d, {"hospital": "H", "admission_kind": "voluntary"}), days),
        st.builds(lambda d: ("discharge", d, {}), days),
    )
    guardian = st.one_of(
        st.builds(
            lambda d, w: ("assign_guardian", d, {"contact": GuardianContact(name="G"), "weak": w}), days, st.booleans()
        ),
        st.builds(lambda d: ("record_no_guardian", d, {}), days),
    )
    medication = st.builds(
        lambda d, n: (
            "dispense_medication",
            d,
            {"dispensed_on": date(2026, 1, 1) + timedelta(days=d), "days_supplied": n},
        ),
        days,
        st.integers(1, 60),
    )
    whereabouts = st.one_of(
        st.builds(lambda d: ("declare_whereabouts_unknown", d, {}), days),
        st.builds(lambda d: ("declare_located", d, {}), days),
    )
    refusal = st.builds(lambda d, e: ("record_refusal", d, {"refusal": "visits", "ended": e}), days, st.booleans())
    confinement = st.builds(lambda d, c: ("record_confinement", d, {"confined": c}), days, st.booleans())
    return st.lists(
        st.one_of(circumstances, hospital, guardian, medication, whereabouts, refusal, confinement), max_size=15
    )


def build(history) -> Patient:
    patient = Patient.register(
        uuid4(), Provenance("hc", None, START - timedelta(days=1), "hc:reg"), NOW, PersonalDetails(name="P"), "v-01"
    )
    for index, (command, day, kwargs) in history:
        by = Provenance("hc", None, START + timedelta(days=day), f"hc:{index:04d}")
        getattr(patient, command)(by, NOW, **kwargs)
    return patient


def derived(p: Patient) -> tuple:
    return (
        p.lives_alone,
        p.can_drive,
        p.in_hospital,
        p.guardian_status,
        p.guardian_contact,
        p.supply_ends_on,
        p.declared_whereabouts_unknown,
        p.refuses(RefusalKind.VISITS),
        p.confined,
    )


class TestArrivalOrder:
    @settings(max_examples=200, deadline=None)
    @given(facts(), st.randoms(use_true_random=False))
    def test_any_arrival_order_gives_the_same_file(self, history, rnd) -> None:
        # distinct occurred times (at the same occurred time the fact recorded later wins)
        history = [(cmd, day + i / 1000, kw) for i, (cmd, day, kw) in enumerate(history)]
        numbered = list(enumerate(history))  # the index is the message id: fixed per fact
        shuffled = list(numbered)
        rnd.shuffle(shuffled)
        assert derived(build(numbered)) == derived(build(shuffled))
