"""Identity in the case record: ID checks, unidentified patients, one patient per ID number, search.

Every test runs on SQLite and on PostgreSQL (the ``services`` / ``open_store`` fixtures).
"""

from __future__ import annotations

import threading
from datetime import UTC, date, datetime, timedelta
from uuid import UUID, uuid4

import pytest
from litestar.testing import AsyncTestClient

from api.app import create_app
from core.case_record import utc_now
from core.contract import encode
from core.identity import find_by_id_number
from core.intake import accept
from core.registry import load_file
from domain.access import NotAllowedToRecord
from domain.errors import PatientNotFound
from domain.identity_errors import (
    IdentityAlreadyKnown,
    IdNumberAdminCodeInvalid,
    IdNumberAlreadyRegistered,
    IdNumberChecksumInvalid,
)
from domain.personal import PersonalDetails, ProvisionalIdentity
from ops.data_files import DEMO_DISTRICT
from tests.support.agency_client import envelope_json
from tests.support.id_numbers import fictional_id_number, with_x_check
from tests.support.stores import NOW, Agency

VILLAGE = "990101-001-v01"  # hc-north's
SOUTH_VILLAGE = "990101-001-v05"  # hc-south's
REGISTERED, UNIDENTIFIED = "cn.smd.patient.registered.v1", "cn.smd.patient.registered-unidentified.v1"
CONFIRMED = "cn.smd.patient.identity-confirmed.v1"


def count_events(record) -> int:
    return len(record.recorder.select_notifications(1, 100_000))


def registration(agency: Agency, patient: UUID, id_number: str, residence: str = VILLAGE, **extra):
    return agency.register(patient, residence=residence, id_number=id_number, **extra)


def unidentified(agency: Agency, patient: UUID):
    return agency.envelope(
        UNIDENTIFIED,
        patient,
        {"label": "man, about 40", "residence": VILLAGE, "found_at": "Willowbrook bus station"},
        occurred=NOW - timedelta(days=3),
    )


def confirmation(agency: Agency, patient: UUID, id_number: str):
    return agency.envelope(
        CONFIRMED, patient, {"id_number": id_number, "name": "Test Person Zs"}, occurred=NOW - timedelta(days=1)
    )


@pytest.fixture
def demo(services):
    """Services with the demo district's agencies (the intake checks kinds against them)."""
    load_file(services.case_record, DEMO_DISTRICT)
    return services


def through_intake(services, event, agency_id: str):
    """What HTTP and NATS do: decode, check the agency's kind, record, filter the refusal."""
    return accept(services.case_record, services.registry, encode(event), agency_id, "test")


class TestRegistrationWithAnIdNumber:
    def test_a_registration_with_an_invalid_id_number_is_refused_and_stores_nothing(self, services) -> None:
        record = services.case_record
        before = count_events(record)
        with pytest.raises(IdNumberChecksumInvalid, match="check character"):
            record.record(registration(Agency("hc-north"), uuid4(), fictional_id_number()[:17] + "0"), "hc-north")
        with pytest.raises(IdNumberAdminCodeInvalid):
            record.record(registration(Agency("hc-north"), uuid4(), "99" + fictional_id_number()[2:]), "hc-north")
        assert count_events(record) == before

    def test_a_second_registration_of_the_same_id_number_is_refused_and_only_the_first_patient_exists(
        self, services
    ) -> None:
        record, first, second = services.case_record, uuid4(), uuid4()
        number = with_x_check(date(1975, 6, 1))
        record.record(registration(Agency("hc-north"), first, number), "hc-north")
        with pytest.raises(IdNumberAlreadyRegistered) as refused:
            # the same number, typed with a lower-case x: the same person
            record.record(registration(Agency("hc-south"), second, number.lower()), "hc-south")
        assert refused.value.existing_patient_id == first and str(first) not in refused.value.detail
        with pytest.raises(PatientNotFound):
            record.patient(second)
        assert record.patient(first).personal.id_number == number
        assert find_by_id_number(record, number, NOW) == [first]

    def test_through_the_intake_a_health_center_is_told_which_patient_holds_the_number(self, demo) -> None:
        first, number = uuid4(), fictional_id_number(date(1966, 2, 3), 7)
        through_intake(demo, registration(Agency("hc-north"), first, number), "hc-north")
        with pytest.raises(IdNumberAlreadyRegistered, match=f"patient {first}"):  # hc-south, in its own village
            through_intake(demo, registration(Agency("hc-south"), uuid4(), number, SOUTH_VILLAGE), "hc-south")


class TestUnidentifiedPatient:
    def test_civil_affairs_registers_an_unidentified_person_and_the_police_confirm_the_identity(
        self, demo, open_store
    ) -> None:
        patient, number = uuid4(), fictional_id_number(date(1983, 9, 9), 42, "44")
        through_intake(demo, unidentified(Agency("civil-willowbrook"), patient), "civil-willowbrook")
        file = demo.case_record.patient(patient)
        assert file.provisional == ProvisionalIdentity(label="man, about 40", found_at="Willowbrook bus station")
        assert not file.id_number_known

        through_intake(demo, confirmation(Agency("police-east"), patient, number), "police-east")
        reopened = open_store(snapshot_every=1).case_record  # a restart, with snapshots
        for record in (demo.case_record, reopened):
            file = record.patient(patient)
            assert file.personal == PersonalDetails(
                name="Test Person Zs", id_number=number, birth_date=date(1983, 9, 9)
            )  # the birth date the number states
            assert file.provisional is not None and file.provisional.label == "man, about 40"
            assert file.identity_confirmed_at == NOW - timedelta(days=1)
            assert find_by_id_number(record, number, NOW) == [patient]

    def test_civil_affairs_may_not_register_a_patient_with_an_identity(self, demo) -> None:
        refused = r"civil_affairs, which may not record cn\.smd\.patient\.registered\.v1"
        with pytest.raises(NotAllowedToRecord, match=refused):
            through_intake(
                demo, registration(Agency("civil-willowbrook"), uuid4(), fictional_id_number()), "civil-willowbrook"
            )

    def test_a_confirmation_with_a_number_another_patient_holds_is_refused_naming_that_patient(self, demo) -> None:
        holder, stranger, number = uuid4(), uuid4(), fictional_id_number(date(1990, 1, 2), 3)
        through_intake(demo, registration(Agency("hc-north"), holder, number), "hc-north")
        through_intake(demo, unidentified(Agency("civil-willowbrook"), stranger), "civil-willowbrook")
        with pytest.raises(IdNumberAlreadyRegistered, match=f"patient {holder}"):
            through_intake(demo, confirmation(Agency("police-east"), stranger, number), "police-east")
        assert not demo.case_record.patient(stranger).id_number_known

    def test_a_patient_with_an_id_number_cannot_have_another_confirmed(self, services) -> None:
        patient = uuid4()
        services.case_record.record(registration(Agency("hc-north"), patient, fictional_id_number()), "hc-north")
        with pytest.raises(IdentityAlreadyKnown):
            services.case_record.record(
                confirmation(Agency("hc-north"), patient, fictional_id_number(seq=2)), "hc-north"
            )


def race(writers: list, patients: list[UUID], number: str) -> list:
    """Two writers register the same number for two patients at the same moment."""
    barrier, outcomes = threading.Barrier(2), [None, None]

    def register(i: int) -> None:
        event = registration(Agency(f"hc-{i}"), patients[i], number)
        barrier.wait()
        try:
            writers[i].record(event, f"hc-{i}")
            outcomes[i] = "registered"
        except IdNumberAlreadyRegistered as e:
            outcomes[i] = e

    threads = [threading.Thread(target=register, args=(i,)) for i in (0, 1)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    return outcomes


class TestConcurrentRegistrations:
    ROUNDS = 5

    def test_two_registrations_of_the_same_id_number_racing_make_one_patient(self, open_store) -> None:
        writers = [open_store().case_record, open_store().case_record]  # two processes' worth of connections
        for n in range(self.ROUNDS):
            number = fictional_id_number(date(1970, 1, 1) + timedelta(days=n), n)
            patients = [uuid4(), uuid4()]
            outcomes = race(writers, patients, number)
            winner = outcomes.index("registered")
            loser = 1 - winner
            assert isinstance(outcomes[loser], IdNumberAlreadyRegistered), outcomes
            assert outcomes[loser].existing_patient_id == patients[winner]
            assert find_by_id_number(writers[0], number, NOW) == [patients[winner]]
            with pytest.raises(PatientNotFound):
                writers[0].patient(patients[loser])

    def test_a_registration_that_decided_before_the_other_saved_is_refused_by_the_markers_conflict(
        self, open_store
    ) -> None:
        slow, fast = open_store().case_record, open_store().case_record
        number, late, early = fictional_id_number(date(1988, 8, 8), 8), uuid4(), uuid4()
        decided, other_saved = threading.Event(), threading.Event()
        real_save, outcome = slow.save_in_order, []

        def save_after_the_other(*args, **kw):
            if not decided.is_set():  # first attempt: both checks passed, now let the other win
                decided.set()
                other_saved.wait(timeout=30)
            return real_save(*args, **kw)

        slow.save_in_order = save_after_the_other

        def register_late() -> None:
            try:
                slow.record(registration(Agency("hc-a"), late, number), "hc-a")
                outcome.append("registered")
            except IdNumberAlreadyRegistered as e:
                outcome.append(e)

        thread = threading.Thread(target=register_late)
        thread.start()
        assert decided.wait(timeout=30)
        fast.record(registration(Agency("hc-b"), early, number), "hc-b")
        other_saved.set()
        thread.join(timeout=60)

        assert isinstance(outcome[0], IdNumberAlreadyRegistered) and outcome[0].existing_patient_id == early
        assert slow.retries >= 1, "the save conflicted on the marker and the retry found it"
        with pytest.raises(PatientNotFound):
            fast.patient(late)


# -- over HTTP ----------------------------------------------------------------------------------------


def envelope(event_type: str, subject: UUID, data: dict, source: str) -> dict:
    occurred = datetime.now(UTC) - timedelta(hours=1)
    return envelope_json(source, event_type, subject, data, occurred=occurred, actor=None)


def auth(key: str) -> dict:
    return {"Authorization": f"Bearer {key}"}


SEARCHERS = ("hc-north", "police-east", "civil-willowbrook", "gov-willowbrook", "hospital-lantern-bay")
NOT_SEARCHERS = ("committee-north", "dpf-lantern-bay")


@pytest.fixture
def http_demo(open_store):
    services = open_store(clock=utc_now)  # the real clock: envelopes carry real times
    load_file(services.case_record, DEMO_DISTRICT)
    keys = {a: services.apikeys.issue(a).key for a in ("hc-south", *SEARCHERS, *NOT_SEARCHERS)}
    return services, keys


class TestSearchOverHttp:
    async def test_agencies_allowed_to_search_find_the_patient_id_and_nothing_else(self, http_demo) -> None:
        services, keys = http_demo
        patient, number = uuid4(), with_x_check(date(1979, 4, 4), "32")
        async with AsyncTestClient(create_app(services)) as client:
            r = await client.post(
                "/v1/events",
                headers=auth(keys["hc-north"]),
                json=envelope(
                    REGISTERED,
                    patient,
                    {"name": "Test Person Zs", "residence": VILLAGE, "id_number": number},
                    "hc-north",
                ),
            )
            assert r.status_code == 201, r.text
            for agency in SEARCHERS:
                r = await client.post(
                    "/v1/patients/search", json={"id_number": number.lower()}, headers=auth(keys[agency])
                )
                assert r.status_code == 200, (agency, r.text)
                assert r.json() == {"patients": [{"patient_id": str(patient)}]}
            r = await client.post(
                "/v1/patients/search",
                json={"id_number": fictional_id_number(seq=999)},
                headers=auth(keys["police-east"]),
            )
            assert r.json() == {"patients": []}

    async def test_committees_and_the_disabled_persons_federation_get_a_403_problem(self, http_demo) -> None:
        services, keys = http_demo
        async with AsyncTestClient(create_app(services)) as client:
            for agency in NOT_SEARCHERS:
                r = await client.post(
                    "/v1/patients/search", json={"id_number": fictional_id_number()}, headers=auth(keys[agency])
                )
                assert r.status_code == 403 and r.json()["type"].endswith("/not-allowed-to-search"), r.text
                assert "may not search patients by ID number" in r.json()["detail"]

    async def test_an_invalid_number_is_a_422_problem_naming_the_part_without_repeating_it(self, http_demo) -> None:
        services, keys = http_demo
        bad = fictional_id_number()[:10] + "13" + fictional_id_number()[12:]  # month 13
        async with AsyncTestClient(create_app(services)) as client:
            r = await client.post("/v1/patients/search", json={"id_number": bad}, headers=auth(keys["hc-north"]))
            assert r.status_code == 422 and r.json()["type"].endswith("/id-number-birth-date-invalid")
            assert "birth date (digits 7-14, YYYYMMDD)" in r.json()["detail"] and bad not in r.text
            r = await client.post(
                "/v1/patients/search", json={"id_number": bad, "name": "x"}, headers=auth(keys["hc-north"])
            )
            assert r.status_code == 400 and bad not in r.text
            r = await client.get("/v1/patients/search", headers=auth(keys["hc-north"]))
            assert r.status_code == 405

    async def test_a_second_registration_over_http_is_a_409_problem_naming_the_existing_patient(
        self, http_demo
    ) -> None:
        services, keys = http_demo
        first, number = uuid4(), fictional_id_number(date(1961, 12, 31), 5, "51")
        async with AsyncTestClient(create_app(services)) as client:
            body = {"name": "Test Person Zs", "residence": VILLAGE, "id_number": number}
            await client.post(
                "/v1/events", json=envelope(REGISTERED, first, body, "hc-north"), headers=auth(keys["hc-north"])
            )
            south = {**body, "residence": SOUTH_VILLAGE}  # hc-south registers in its own area
            r = await client.post(
                "/v1/events", json=envelope(REGISTERED, uuid4(), south, "hc-south"), headers=auth(keys["hc-south"])
            )
        assert r.status_code == 409 and r.json()["type"].endswith("/id-number-already-registered")
        assert r.json()["title"] == "One patient per ID number per region."
        assert str(first) in r.json()["detail"] and number not in r.text
