"""The door: unknown org units and agencies, and times out of range, are refused before storing."""

from __future__ import annotations

import json
import typing
from datetime import UTC, date, datetime, timedelta
from typing import Any
from uuid import uuid4

import msgspec
import pytest

from api.problems import status_for
from core import contract as c
from core.door import DATES, REFERENCES, check_at_the_door, check_references, check_times
from core.registry import read_registry_file
from domain.errors import DomainError, OccurredInFuture, TimeOutOfRange
from domain.registry import RegistryState
from domain.registry_errors import UnknownAgencyReference, UnknownOrgUnitReference
from domain.values import EARLIEST_OCCURRED
from ops.data_files import DEMO_DISTRICT
from ops.settings import SettingsError, load_settings

NOW = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)
TODAY = date(2026, 11, 20)
VILLAGE = "990101-001-v01"
UNKNOWN_UNIT = "990101-009-v99"


@pytest.fixture(scope="module")
def demo() -> RegistryState:
    desired = read_registry_file(DEMO_DISTRICT)
    return RegistryState.of(desired.region, [*desired.org_units, *desired.agencies])


def event(event_type: str, data: dict[str, Any], *, time: str | None = None) -> Any:
    doc = {
        "specversion": "1.0",
        "id": str(uuid4()),
        "source": "hc-north",
        "type": f"cn.smd.{event_type}.v1",
        "subject": str(uuid4()),
        "time": time or (NOW - timedelta(hours=1)).isoformat(),
        "data": data,
    }
    return c.decode_event(json.dumps(doc))


def refusal(check, *args: Any) -> DomainError:
    with pytest.raises(DomainError) as caught:
        check(*args)
    return caught.value


# -- the table -----------------------------------------------------------------------------------


def _data_fields() -> list[tuple[type, msgspec.structs.FieldInfo]]:
    out = []
    for envelope in typing.get_args(c.InboundEvent):
        data_type = next(f.type for f in msgspec.structs.fields(envelope) if f.name == "data")
        out += [(envelope, f) for f in msgspec.structs.fields(data_type)]
    return out


def _is(annotation: Any, wanted: Any) -> bool:
    return annotation == wanted or wanted in typing.get_args(annotation)


class TestTheTablesCoverTheContract:
    def test_every_org_unit_or_agency_id_field_of_the_contract_is_checked(self) -> None:
        typed = {
            (envelope, f.name) for envelope, f in _data_fields() if _is(f.type, c.OrgUnitId) or _is(f.type, c.AgencyId)
        }
        listed = {(envelope, ref.field) for envelope, refs in REFERENCES.items() for ref in refs}
        assert typed <= listed, typed - listed

    def test_every_date_field_of_the_contract_is_checked(self) -> None:
        typed = {(envelope, f.name) for envelope, f in _data_fields() if _is(f.type, date)}
        listed = {(envelope, name) for envelope, names in DATES.items() for name in names}
        assert typed == listed

    def test_every_listed_field_exists(self) -> None:
        fields = {(envelope, f.name) for envelope, f in _data_fields()}
        for envelope, refs in REFERENCES.items():
            for ref in refs:
                assert (envelope, ref.field) in fields
                assert ref.in_region_of is None or (envelope, ref.in_region_of) in fields


# -- org units and agencies ------------------------------------------------------------------------


class TestUnknownOrgUnitsAndAgencies:
    @pytest.mark.parametrize(
        ("event_type", "data", "path"),
        [
            ("patient.registered", {"name": "Test Person", "residence": UNKNOWN_UNIT}, "$.data.residence"),
            (
                "patient.registered-unidentified",
                {"label": "man at the station", "residence": UNKNOWN_UNIT},
                "$.data.residence",
            ),
            ("suspected-case.reported", {"observed": "shouting", "seen_in": UNKNOWN_UNIT}, "$.data.seen_in"),
        ],
    )
    def test_an_unknown_org_unit_is_refused_naming_the_field_and_the_region(
        self, demo: RegistryState, event_type: str, data: dict, path: str
    ) -> None:
        e = refusal(check_references, event(event_type, data), demo, TODAY)
        assert isinstance(e, UnknownOrgUnitReference)
        assert (e.code, status_for(e.code)) == ("unknown-org-unit", 422)
        assert e.detail.startswith(f"{path}: the org unit '{UNKNOWN_UNIT}' is not in region 990101's registry")
        assert "smd registry load" in e.detail

    def test_a_known_org_unit_passes(self, demo: RegistryState) -> None:
        check_references(event("patient.registered", {"name": "Test Person", "residence": VILLAGE}), demo, TODAY)

    def test_an_org_unit_defined_only_from_a_later_date_is_unknown_today(self, demo: RegistryState) -> None:
        with pytest.raises(UnknownOrgUnitReference, match="in force on 2024-12-31"):
            check_references(
                event("patient.registered", {"name": "Test Person", "residence": VILLAGE}), demo, date(2024, 12, 31)
            )

    def test_free_text_in_an_id_field_is_not_echoed(self, demo: RegistryState) -> None:
        e = refusal(
            check_references,
            event("patient.registered", {"name": "Zhang", "residence": "Zhang San's house"}),
            demo,
            TODAY,
        )
        assert "Zhang" not in e.detail and e.detail.startswith("$.data.residence: the org unit given there")

    def test_a_destination_unit_of_our_region_must_be_known(self, demo: RegistryState) -> None:
        move = {"move_id": str(uuid4()), "destination_region": "990101", "moving_on": "2026-12-01"}
        check_references(event("move.reported", move | {"destination_unit": VILLAGE}), demo, TODAY)
        check_references(event("move.reported", move), demo, TODAY)
        with pytest.raises(UnknownOrgUnitReference, match=r"^\$\.data\.destination_unit: "):
            check_references(event("move.reported", move | {"destination_unit": UNKNOWN_UNIT}), demo, TODAY)

    def test_a_destination_unit_of_another_region_is_that_regions_to_check(self, demo: RegistryState) -> None:
        move = {"move_id": str(uuid4()), "destination_region": "990202", "moving_on": "2026-12-01"}
        check_references(event("move.reported", move | {"destination_unit": "990202-003-v07"}), demo, TODAY)

    @pytest.mark.parametrize(
        ("event_type", "data", "path"),
        [
            (
                "care-team-member.assigned",
                {"role": "community_police", "member": {"name": "Officer"}, "member_agency": "police-nowhere"},
                "$.data.member_agency",
            ),
            (
                "care-team-contact.recorded",
                {"role": "community_worker", "mode": "phone", "outcome": "reached", "member_agency": "committee-x"},
                "$.data.member_agency",
            ),
            ("guardian.social-designated", {"designated_by": "villagers' committee"}, "$.data.designated_by"),
        ],
    )
    def test_an_unknown_agency_in_the_data_is_refused(
        self, demo: RegistryState, event_type: str, data: dict, path: str
    ) -> None:
        e = refusal(check_references, event(event_type, data), demo, TODAY)
        assert isinstance(e, UnknownAgencyReference)
        assert (e.code, status_for(e.code)) == ("unknown-agency-reference", 422)
        assert e.detail.startswith(f"{path}: the agency ")
        assert "not in region 990101's registry" in e.detail

    def test_known_agencies_in_the_data_pass(self, demo: RegistryState) -> None:
        check_references(event("guardian.social-designated", {"designated_by": "committee-north"}), demo, TODAY)
        assigned = {"role": "community_police", "member": {"name": "Officer"}, "member_agency": "police-east"}
        check_references(event("care-team-member.assigned", assigned), demo, TODAY)


# -- times -------------------------------------------------------------------------------------------


class TestTimesOutOfRange:
    def test_a_time_whose_conversion_to_utc_underflows_is_refused_without_overflowing(self) -> None:
        visit = event(
            "visit.recorded",
            {"face_to_face": True, "risk_level": 4, "risk_class": "unstable"},
            time="0001-01-01T00:00:00+14:00",
        )
        e = refusal(check_times, visit, NOW, EARLIEST_OCCURRED)
        assert isinstance(e, TimeOutOfRange)
        assert (e.code, status_for(e.code)) == ("time-out-of-range", 422)
        assert e.detail.startswith("$.time is 0001-01-01T00:00:00+14:00, before 1900-01-01T00:00:00+00:00")
        assert "SMD_EARLIEST_TIME" in e.detail

    def test_a_time_before_1900_is_refused_and_1900_itself_is_accepted(self) -> None:
        before = event("risk.assessed", {"risk_level": 0, "risk_class": "stable"}, time="1899-12-31T23:59:59+00:00")
        with pytest.raises(TimeOutOfRange, match=r"^\$\.time is 1899-12-31T23:59:59\+00:00"):
            check_times(before, NOW, EARLIEST_OCCURRED)
        check_times(
            event("risk.assessed", {"risk_level": 0, "risk_class": "stable"}, time="1900-01-01T00:00:00Z"),
            NOW,
            EARLIEST_OCCURRED,
        )

    def test_the_earliest_is_the_deployments_setting(self) -> None:
        old = event("risk.assessed", {"risk_level": 0, "risk_class": "stable"}, time="1990-06-01T08:00:00+08:00")
        check_times(old, NOW, EARLIEST_OCCURRED)
        with pytest.raises(TimeOutOfRange, match="before 2000-01-01T00:00:00"):
            check_times(old, NOW, datetime(2000, 1, 1, tzinfo=UTC))

    def test_a_time_more_than_five_minutes_ahead_is_refused_by_the_same_check(self) -> None:
        ahead = event(
            "risk.assessed", {"risk_level": 0, "risk_class": "stable"}, time=(NOW + timedelta(minutes=6)).isoformat()
        )
        with pytest.raises(OccurredInFuture, match=r"^\$\.time is dated .* after the server time"):
            check_times(ahead, NOW, EARLIEST_OCCURRED)
        check_times(
            event(
                "risk.assessed",
                {"risk_level": 0, "risk_class": "stable"},
                time=(NOW + timedelta(minutes=4)).isoformat(),
            ),
            NOW,
            EARLIEST_OCCURRED,
        )

    def test_a_time_near_the_end_of_the_calendar_is_refused_as_future_without_overflowing(self) -> None:
        far = event("risk.assessed", {"risk_level": 0, "risk_class": "stable"}, time="9999-12-31T23:59:59-14:00")
        with pytest.raises(OccurredInFuture):
            check_times(far, NOW, EARLIEST_OCCURRED)

    @pytest.mark.parametrize(
        ("event_type", "data", "field"),
        [
            ("visit.missed", {"scheduled_on": "0001-01-01"}, "scheduled_on"),
            ("guardianship-agreement.signed", {"signed_on": "1899-12-31"}, "signed_on"),
            ("legal-duty-notice.given", {"given_on": "1066-10-14"}, "given_on"),
            ("medication.dispensed", {"dispensed_on": "0001-01-01", "days_supplied": 30}, "dispensed_on"),
            (
                "move.reported",
                {"move_id": str(uuid4()), "destination_region": "990202", "moving_on": "0001-01-01"},
                "moving_on",
            ),
        ],
    )
    def test_a_date_in_the_data_before_the_earliest_is_refused(self, event_type: str, data: dict, field: str) -> None:
        with pytest.raises(TimeOutOfRange, match=rf"^\$\.data\.{field} is .*, before 1900-01-01"):
            check_times(event(event_type, data), NOW, EARLIEST_OCCURRED)

    def test_times_are_checked_before_references(self, demo: RegistryState) -> None:
        both = event("patient.registered", {"name": "T", "residence": UNKNOWN_UNIT}, time="1800-01-01T00:00:00Z")
        with pytest.raises(TimeOutOfRange):
            check_at_the_door(both, demo, NOW, TODAY, EARLIEST_OCCURRED)


class TestTheSetting:
    def test_the_default_is_1900(self, tmp_path) -> None:
        assert load_settings({"SMD_DATA_DIR": str(tmp_path)}).earliest_time == datetime(1900, 1, 1, tzinfo=UTC)

    def test_a_date_or_a_time_with_offset_is_taken(self, tmp_path) -> None:
        env = {"SMD_DATA_DIR": str(tmp_path)}
        assert load_settings(env | {"SMD_EARLIEST_TIME": "2000-01-01"}).earliest_time == datetime(
            2000, 1, 1, tzinfo=UTC
        )
        at = load_settings(env | {"SMD_EARLIEST_TIME": "2000-01-01T00:00:00+08:00"}).earliest_time
        assert at == datetime(1999, 12, 31, 16, tzinfo=UTC)

    @pytest.mark.parametrize("value", ["yesterday", "2000-01-01T00:00:00", "0001-01-01", "2999-01-01"])
    def test_a_bad_value_stops_start_up_naming_the_variable(self, tmp_path, value: str) -> None:
        with pytest.raises(SettingsError, match=r"^SMD_EARLIEST_TIME: "):
            load_settings({"SMD_DATA_DIR": str(tmp_path), "SMD_EARLIEST_TIME": value})
