"""The org-unit registry: file differences, responsibility by date, errors that say what to fix."""

from __future__ import annotations

import tomllib
from datetime import UTC, date, datetime
from typing import Any

import pytest

from domain.errors import DomainError
from domain.registry import (
    REGISTRY_CHANGE_TOPICS,
    REGISTRY_TOPICS,
    SHARED_KINDS,
    AgencyKind,
    Registry,
    RegistryState,
    registry_id,
)
from domain.registry_errors import (
    DuplicateRegistryEntry,
    InvalidAgencyId,
    KindCannotChange,
    OverlappingJurisdictions,
    RegionMismatch,
    RegistryFileInvalid,
    UnknownAgencyKind,
    UnknownOrgUnit,
    UnknownOrgUnitInJurisdiction,
    UnknownOrgUnitKind,
    UnknownParent,
    WrongParentKind,
)
from domain.registry_file import diff, parse_registry
from ops.data_files import DEMO_DISTRICT, DEMO_DISTRICT_B, DEMO_DISTRICTS, demo_district_for

REGION = "990101"
JAN = date(2025, 1, 1)
MOVE = date(2026, 3, 1)
NOW = datetime(2026, 11, 20, 9, 0, tzinfo=UTC)
POLICE = AgencyKind.POLICE_STATION


def unit(uid: str, kind: str, parent: str | None, **extra: Any) -> dict[str, Any]:
    entry = {"id": uid, "kind": kind, "name": f"Unit {uid}", **extra}
    if parent is not None:
        entry["parent"] = parent
    return entry


def agency(aid: str, kind: str, jurisdiction: list[str], **extra: Any) -> dict[str, Any]:
    return {"id": aid, "kind": kind, "name": f"Agency {aid}", "jurisdiction": jurisdiction, **extra}


def units() -> list[dict[str, Any]]:
    return [
        unit(REGION, "region", None),
        unit("t1", "township", REGION),
        unit("c1", "cluster", "t1"),
        unit("c2", "cluster", "t1"),
        unit("v1", "village", "c1", population=1000),
        unit("v2", "village", "c1", population=800),
        unit("v3", "village", "c2", population=1200),
    ]


def police() -> list[dict[str, Any]]:
    return [
        agency("police-a", "police_station", ["c1"]),
        agency("police-b", "police_station", ["c2"]),
    ]


def doc(org_units: list[dict[str, Any]] | None = None, agencies: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    return {
        "region": REGION,
        "effective_from": JAN,
        "org_units": units() if org_units is None else org_units,
        "agencies": police() if agencies is None else agencies,
    }


def loaded(document: dict[str, Any], state: RegistryState | None = None) -> RegistryState:
    state = state or RegistryState(REGION)
    for change in diff(state, parse_registry(document)):
        state.apply(change)
    return state


class TestLoadingAFile:
    def test_a_new_file_becomes_one_change_per_entry(self) -> None:
        changes = diff(RegistryState(REGION), parse_registry(doc()))
        assert len(changes) == len(units()) + len(police())

    def test_the_same_file_again_changes_nothing(self) -> None:
        state = loaded(doc())
        assert diff(state, parse_registry(doc())) == []

    def test_only_the_entries_that_differ_become_changes(self) -> None:
        state = loaded(doc())
        edited = units()
        edited[4]["population"] = 1050
        changes = diff(state, parse_registry(doc(org_units=edited)))
        assert [(c.org_unit_id, c.population) for c in changes] == [("v1", 1050)]  # type: ignore[union-attr]

    def test_entries_left_out_of_the_file_are_kept(self) -> None:
        state = loaded(doc())
        assert diff(state, parse_registry(doc(agencies=[]))) == []
        assert state.responsible("v3", POLICE, MOVE) == "police-b"

    def test_a_file_may_carry_an_entrys_history_as_dated_entries(self) -> None:
        moved = [
            *police(),
            agency("police-a", "police_station", ["v1"], effective_from=MOVE),
            agency("police-b", "police_station", ["c2", "v2"], effective_from=MOVE),
        ]
        state = loaded(doc(agencies=moved))
        assert state.responsible("v2", POLICE, date(2026, 2, 28)) == "police-a"
        assert state.responsible("v2", POLICE, MOVE) == "police-b"
        assert diff(state, parse_registry(doc(agencies=moved))) == []

    def test_dates_may_be_written_as_text(self) -> None:
        document = doc()
        document["effective_from"] = "2025-01-01"
        assert parse_registry(document).org_units[0].effective_from == JAN

    def test_a_change_for_the_same_date_corrects_the_earlier_one(self) -> None:
        state = loaded(doc())
        corrected = [
            agency("police-a", "police_station", ["v1"]),
            agency("police-b", "police_station", ["c2", "v2"]),
        ]
        state = loaded(doc(agencies=corrected), state)
        assert state.responsible("v2", POLICE, JAN) == "police-b"

    def test_a_population_left_out_is_the_sum_of_the_children(self) -> None:
        state = loaded(doc())
        assert state.population("c1", JAN) == 1800
        assert state.population(REGION, JAN) == 3000


class TestResponsibility:
    def test_an_agency_covering_a_cluster_is_responsible_for_its_villages(self) -> None:
        state = loaded(doc())
        assert state.responsible("v1", POLICE, JAN) == "police-a"
        assert state.responsible("v3", POLICE, JAN) == "police-b"

    def test_a_village_moved_to_the_other_police_station_changes_hands_on_that_date(self) -> None:
        state = loaded(doc())
        state = loaded(
            doc(
                agencies=[
                    agency("police-a", "police_station", ["v1"], effective_from=MOVE),
                    agency("police-b", "police_station", ["c2", "v2"], effective_from=MOVE),
                ]
            ),
            state,
        )
        assert state.responsible("v2", POLICE, date(2026, 2, 28)) == "police-a"
        assert state.responsible("v2", POLICE, MOVE) == "police-b"
        assert state.responsible("v1", POLICE, MOVE) == "police-a"

    def test_a_village_moved_to_another_cluster_follows_that_clusters_committee(self) -> None:
        committees = [
            agency("committee-1", "committee", ["c1"]),
            agency("committee-2", "committee", ["c2"]),
        ]
        state = loaded(doc(agencies=committees))
        state = loaded(
            doc(
                org_units=[unit("v2", "village", "c2", population=800, effective_from=MOVE)],
                agencies=[],
            ),
            state,
        )
        assert state.responsible("v2", AgencyKind.COMMITTEE, JAN) == "committee-1"
        assert state.responsible("v2", AgencyKind.COMMITTEE, MOVE) == "committee-2"

    def test_no_agency_of_the_kind_means_nobody_is_responsible(self) -> None:
        assert loaded(doc()).responsible("v1", AgencyKind.CIVIL_AFFAIRS, JAN) is None

    def test_nobody_is_responsible_before_the_agency_takes_effect(self) -> None:
        later = [agency("police-a", "police_station", ["c1"], effective_from=MOVE)]
        assert loaded(doc(agencies=later)).responsible("v1", POLICE, JAN) is None

    def test_asking_about_an_unknown_org_unit_says_so(self) -> None:
        with pytest.raises(UnknownOrgUnit, match="'v9' is not in the registry on 2025-01-01"):
            loaded(doc()).responsible("v9", POLICE, JAN)

    def test_asking_before_an_org_unit_exists_says_so(self) -> None:
        with pytest.raises(UnknownOrgUnit, match="on 2024-12-31"):
            loaded(doc()).responsible("v1", POLICE, date(2024, 12, 31))


class TestErrorsSayWhatToFix:
    def check(self, document: dict[str, Any], error: type[DomainError], text: str) -> None:
        with pytest.raises(error) as raised:
            diff(RegistryState(REGION), parse_registry(document))
        assert text in raised.value.detail

    def test_an_unknown_parent_is_named(self) -> None:
        self.check(
            doc(org_units=[*units(), unit("v4", "village", "c9")]),
            UnknownParent,
            "its parent 'c9' is not defined on 2025-01-01",
        )

    def test_a_parent_defined_only_later_is_unknown_on_the_earlier_date(self) -> None:
        late = units()
        late[2]["effective_from"] = MOVE  # c1 appears in 2026, its villages in 2025
        self.check(doc(org_units=late, agencies=[]), UnknownParent, "'c1' is not defined on 2025-01-01")

    def test_a_village_cannot_hang_under_a_region(self) -> None:
        self.check(
            doc(org_units=[*units(), unit("v4", "village", REGION)]),
            WrongParentKind,
            "a village's parent must be a cluster or community or township",
        )

    def test_an_unknown_org_unit_kind_lists_the_kinds(self) -> None:
        self.check(
            doc(org_units=[*units(), unit("x", "hamlet", "c1")]),
            UnknownOrgUnitKind,
            "kind 'hamlet'; use one of: region, township, cluster, community, village",
        )

    def test_an_unknown_org_unit_in_a_jurisdiction_is_named_with_its_agency(self) -> None:
        self.check(
            doc(agencies=[agency("police-a", "police_station", ["c1", "v7"])]),
            UnknownOrgUnitInJurisdiction,
            "agency 'police-a': jurisdiction lists org unit 'v7'",
        )

    def test_an_unknown_agency_kind_lists_the_kinds(self) -> None:
        self.check(
            doc(agencies=[agency("fire-1", "fire_brigade", ["c1"])]),
            UnknownAgencyKind,
            "police_station",
        )

    def test_an_agency_id_that_cannot_be_a_subject_token_is_refused(self) -> None:
        self.check(
            doc(agencies=[agency("Police.A", "police_station", ["c1"])]),
            InvalidAgencyId,
            "lowercase",
        )

    def test_two_agencies_of_one_kind_covering_one_village_are_both_named(self) -> None:
        overlapping = [*police(), agency("police-c", "police_station", ["v2"], effective_from=MOVE)]
        self.check(
            doc(agencies=overlapping),
            OverlappingJurisdictions,
            "'v2' is covered by two police_station agencies on 2026-03-01: police-a and police-c",
        )

    def test_auditors_may_share_org_units(self) -> None:
        auditors = [
            agency("auditor-1", "auditor", [REGION]),
            agency("auditor-2", "auditor", [REGION]),
        ]
        assert len(diff(RegistryState(REGION), parse_registry(doc(agencies=auditors)))) == len(units()) + 2

    def test_an_agency_cannot_change_kind(self) -> None:
        state = loaded(doc())
        with pytest.raises(KindCannotChange, match="'police-a' is a police_station"):
            diff(state, parse_registry(doc(agencies=[agency("police-a", "health_center", ["c1"])])))

    def test_one_id_twice_on_the_same_date_is_refused(self) -> None:
        self.check(doc(agencies=[*police(), *police()]), DuplicateRegistryEntry, "'police-a' appears twice")

    def test_a_file_for_another_region_is_refused(self) -> None:
        document = doc()
        document["region"] = "990102"
        with pytest.raises(RegionMismatch, match="SMD_REGION=990102"):
            diff(RegistryState(REGION), parse_registry(document))

    def test_an_entry_without_a_date_asks_for_one(self) -> None:
        document = doc()
        del document["effective_from"]
        self.check(document, RegistryFileInvalid, "'effective_from' is missing")

    def test_a_misspelt_key_is_named(self) -> None:
        self.check(
            doc(org_units=[*units(), unit("v4", "village", "c1", populaton=5)]),
            RegistryFileInvalid,
            "org_units[7] (id 'v4'): unknown key(s) populaton",
        )


class TestTheRegistryAggregate:
    def test_first_versions_are_defined_and_later_ones_changed(self) -> None:
        registry = Registry.open(REGION, NOW)
        registry.record(diff(registry.state, parse_registry(doc())), NOW)
        moved = [agency("police-a", "police_station", ["v1"], effective_from=MOVE)]
        registry.record(diff(registry.state, parse_registry(doc(agencies=moved))), NOW)
        names = [type(e).__name__ for e in registry.collect_events()]
        assert names[0] == "Opened"
        assert names.count("OrgUnitDefined") == len(units())
        assert names.count("AgencyDefined") == 2
        assert names[-1] == "AgencyChanged"

    def test_every_recorded_event_has_an_explicit_stable_topic(self) -> None:
        registry = Registry.open(REGION, NOW)
        registry.record(diff(registry.state, parse_registry(doc())), NOW)
        topics = {type(e).TOPIC for e in registry.collect_events()}
        assert topics <= set(REGISTRY_TOPICS)
        assert all(t.startswith("smd.") for t in topics)

    def test_a_registry_view_folds_every_topic_but_the_opening(self) -> None:
        assert set(REGISTRY_CHANGE_TOPICS) == set(REGISTRY_TOPICS) - {Registry.Opened.TOPIC}

    def test_changes_folded_one_by_one_onto_copies_give_the_state_and_leave_each_before_as_it_was(self) -> None:
        changes = diff(RegistryState(REGION), parse_registry(tomllib.loads(DEMO_DISTRICT.read_text())))
        states = [RegistryState(REGION)]
        for change in changes:
            states.append(states[-1].with_change(change))
        assert states[-1] == RegistryState.of(REGION, changes)
        for n, folded in enumerate(states):
            assert folded == RegistryState.of(REGION, changes[:n])

    def test_the_registry_id_is_derived_from_the_region(self) -> None:
        assert Registry.open(REGION, NOW).id == registry_id(REGION) != registry_id("990102")


class TestTheDemoDistrict:
    def demo(self, path=DEMO_DISTRICT) -> RegistryState:
        document = tomllib.loads(path.read_text())
        return loaded(document, RegistryState(document["region"]))

    @pytest.mark.parametrize("path", [DEMO_DISTRICT, DEMO_DISTRICT_B], ids=["a", "b"])
    def test_the_demo_districts_load_and_validate(self, path) -> None:
        state = self.demo(path)
        assert len(state.agencies) >= 8
        assert {a[0].kind for a in state.agencies.values()} == set(AgencyKind)
        assert demo_district_for(state.region) == path

    @pytest.mark.parametrize("path", [DEMO_DISTRICT, DEMO_DISTRICT_B], ids=["a", "b"])
    @pytest.mark.parametrize("kind", [k for k in AgencyKind if k not in SHARED_KINDS])
    def test_every_village_has_exactly_one_agency_of_each_kind(self, kind: AgencyKind, path) -> None:
        state = self.demo(path)
        for uid, versions in state.org_units.items():
            if versions[0].kind in ("village", "community"):
                assert state.responsible(uid, kind, date(2026, 11, 20)) is not None, (uid, kind)

    def test_the_two_demo_regions_share_no_agency_id_and_no_name(self) -> None:
        a, b = (tomllib.loads(p.read_text()) for p in (DEMO_DISTRICT, DEMO_DISTRICT_B))
        assert sorted(DEMO_DISTRICTS) == sorted([a["region"], b["region"]]) == ["990101", "990202"]
        assert not {x["id"] for x in a["agencies"]} & {x["id"] for x in b["agencies"]}
        names = [{x["name"] for x in d["agencies"] + d["org_units"]} for d in (a, b)]
        assert not names[0] & names[1]

    def test_the_demo_has_two_police_stations_and_two_health_centers_in_one_subdistrict(
        self,
    ) -> None:
        state = self.demo()
        for kind in (AgencyKind.POLICE_STATION, AgencyKind.HEALTH_CENTER):
            covering = {state.responsible(f"990101-001-v{n:02}", kind, JAN) for n in range(1, 12)}
            assert len(covering) == 2

    def test_the_demo_uses_no_place_name_of_the_seeds(self) -> None:
        text = (DEMO_DISTRICT.read_text() + DEMO_DISTRICT_B.read_text()).lower()
        for real in ("jiaobei", "jiaozhou", "qingyang", "jinjiang", "胶北", "胶州", "青阳", "晋江"):
            assert real not in text
