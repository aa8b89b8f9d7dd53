"""The working lists and their CSV exports over HTTP, on both stores.

A hand-built district: each patient is recorded through the real intake with the facts that put
it on a list, and each list's expected members are written out by hand below (never computed by
the project's code), for several kinds of caller.
"""

from __future__ import annotations

import csv
import io
from datetime import datetime, timedelta
from uuid import UUID, uuid4

import pytest
from litestar.testing import AsyncTestClient

from api.app import create_app
from core.case_record import utc_now
from core.registry import load_file
from ops.data_files import DEMO_DISTRICT
from tests.support.agency_client import envelope_json
from tests.support.id_numbers import fictional_id_number

NORTH = "990101-001-v01"  # cluster c1: hc-north, police-east, committee-north; the governance center's area
SOUTH = "990101-001-v07"  # cluster c2: hc-south, police-west, committee-south
REEDMARSH = "990101-002-v01"  # another township: hc-reedmarsh, gov-reedmarsh (not gov-willowbrook's area)
REGION = "990101"
AGENCIES = (
    "hc-reedmarsh",
    "gov-reedmarsh",
    "hc-north",
    "hc-south",
    "police-east",
    "committee-north",
    "gov-willowbrook",
    "civil-willowbrook",
    "auditor-lantern-bay",
    "hospital-lantern-bay",
)
#: Who each letter is: a name with a comma, a quote and a newline in it for the CSV, and Chinese.
NAMES = {
    "A": "王, 小明",
    "B": '李 "阿强"',
    "C": "张三\n第二行",
    "D": "赵四",
    "E": "钱五",
    "F": "孙六",
    "G": "周七",
    "H": "吴八",
    "I": "郑九",
    "J": "冯十",
    "K": "陈十一",
    "L": "褚十二",
    "M": "卫十三",
    "N": "蒋十四",
    "O": "沈十五",
    "P": "韩十六",
    "Q": "杨十七",
    "R": "朱十八",
}


def envelope(event_type: str, subject, data: dict, source: str, occurred: datetime) -> dict:
    return envelope_json(source, event_type, subject, data, occurred=occurred)


def auth(key: str, purpose: str | None = "care") -> dict:
    headers = {"Authorization": f"Bearer {key}"}
    if purpose:
        headers["X-Purpose"] = purpose
    return headers


class District:
    """The hand-built district: patients A to L, each put on its lists by facts recorded through
    the intake (``POST /v1/events``), as agencies' systems would."""

    def __init__(self, services, keys) -> None:
        self.services = services
        self.keys = keys
        self.ids: dict[str, UUID] = {}
        self.now = utc_now()

    async def record(self, client, event_type: str, who: str, data: dict, *, by: str = "hc-north", ago: timedelta):
        r = await client.post(
            "/v1/events",
            json=envelope(event_type, self.ids[who], data, by, self.now - ago),
            headers=auth(self.keys[by]),
        )
        assert r.status_code == 201, r.text

    async def register(self, client, who: str, residence: str = NORTH, *, by: str = "hc-north", ago=timedelta(days=2)):
        self.ids[who] = uuid4()
        n = len(self.ids)
        body = {
            "name": NAMES[who],
            "id_number": fictional_id_number(seq=n),
            "residence": residence,
            "diagnosis": "schizophrenia",
            "phone": "13800000000",
        }
        await self.record(client, "cn.smd.patient.registered.v1", who, body, by=by, ago=ago)

    async def visit(self, client, who: str, level: int, klass: str, *, by: str = "hc-north", ago=timedelta(days=1)):
        data = {"face_to_face": True, "joint": False, "risk_level": level, "risk_class": klass}
        await self.record(client, "cn.smd.visit.recorded.v1", who, data, by=by, ago=ago)

    async def move(
        self, client, who: str, to: str, *, by: str, answer_by: str, reported: int, answered: int, accepted=True
    ):
        """A move inside the region reported ``reported`` days ago by the origin, answered
        ``answered`` days ago by the destination's health center."""
        move_id = str(uuid4())
        data = {
            "move_id": move_id,
            "destination_region": REGION,
            "destination_unit": to,
            "moving_on": (self.now - timedelta(days=reported)).date().isoformat(),
        }
        await self.record(client, "cn.smd.move.reported.v1", who, data, by=by, ago=timedelta(days=reported))
        answer = "cn.smd.handover.accepted.v1" if accepted else "cn.smd.handover.rejected.v1"
        await self.record(client, answer, who, {"move_id": move_id}, by=answer_by, ago=timedelta(days=answered))

    async def build(self, client) -> None:
        day = timedelta(days=1)
        # A: level 4, unstable, at home
        await self.register(client, "A")
        await self.visit(client, "A", 4, "unstable")
        # B: basically stable, adherence intermittent
        await self.register(client, "B")
        await self.visit(client, "B", 1, "basically_stable")
        await self.record(client, "cn.smd.adherence.recorded.v1", "B", {"adherence": "intermittent"}, ago=day)
        # C: three consecutive missed visits (R5: lost)
        await self.register(client, "C", ago=timedelta(days=40))
        for weeks in (3, 2, 1):
            scheduled = (self.now - timedelta(weeks=weeks)).date().isoformat()
            await self.record(
                client,
                "cn.smd.visit.missed.v1",
                "C",
                {"scheduled_on": scheduled},
                by="committee-north",
                ago=timedelta(weeks=weeks) - timedelta(hours=1),
            )
        # D: a weak guardian
        await self.register(client, "D")
        guardian = {"contact": {"name": "赵监护", "phone": "13900000000"}, "weak": True}
        await self.record(client, "cn.smd.guardian.assigned.v1", "D", guardian, ago=day)
        # E: refuses visits
        await self.register(client, "E")
        await self.record(
            client, "cn.smd.refusal.recorded.v1", "E", {"refusal": "visits"}, by="committee-north", ago=day
        )
        # F: in hospital
        await self.register(client, "F")
        admission = {"hospital": "Lantern Bay Psychiatric Hospital", "admission_kind": "voluntary"}
        await self.record(client, "cn.smd.patient.admitted.v1", "F", admission, ago=day)
        # G: discharged five days ago
        await self.register(client, "G", ago=timedelta(days=20))
        await self.record(client, "cn.smd.patient.admitted.v1", "G", admission, ago=timedelta(days=15))
        await self.record(client, "cn.smd.patient.discharged.v1", "G", {}, ago=timedelta(days=5))
        # H: in institutional care
        await self.register(client, "H")
        care = {"place": "Willowbrook Welfare Home", "care_kind": "homeless"}
        await self.record(client, "cn.smd.institutional-care.started.v1", "H", care, by="civil-willowbrook", ago=day)
        # I: level 3, then deregistered (on no list)
        await self.register(client, "I")
        await self.visit(client, "I", 3, "unstable")
        await self.record(client, "cn.smd.patient.deregistered.v1", "I", {"reason": "death"}, ago=timedelta(hours=2))
        # J: level 5, unstable, in the south (hc-south's and the governance center's, not hc-north's)
        await self.register(client, "J", SOUTH, by="hc-south")
        await self.visit(client, "J", 5, "unstable", by="hc-south")
        # K: a 30-day supply picked up 60 days ago, never again (R6 overdue; irregular medication)
        await self.register(client, "K", ago=timedelta(days=70))
        pickup = {"dispensed_on": (self.now - timedelta(days=60)).date().isoformat(), "days_supplied": 30}
        await self.record(client, "cn.smd.medication.dispensed.v1", "K", pickup, ago=timedelta(days=60))
        # L: stable, last visited 200 days ago (R4: a stable patient is visited every 3 months)
        await self.register(client, "L", ago=timedelta(days=250))
        await self.visit(client, "L", 0, "stable", ago=timedelta(days=200))
        # Moves inside the region (docs/decisions/042), each patient stable and visited yesterday
        # by the health center of where they live now (on no other list).
        stable = {"ago": timedelta(days=1)}
        # N: from the south to the north, accepted 10 days ago (hc-north's newcomer)
        await self.register(client, "N", SOUTH, by="hc-south", ago=timedelta(days=30))
        await self.move(client, "N", NORTH, by="hc-south", answer_by="hc-north", reported=20, answered=10)
        await self.visit(client, "N", 0, "stable", **stable)
        # O: from the south to the north, accepted 120 days ago (no longer recent)
        await self.register(client, "O", SOUTH, by="hc-south", ago=timedelta(days=140))
        await self.move(client, "O", NORTH, by="hc-south", answer_by="hc-north", reported=130, answered=120)
        await self.visit(client, "O", 0, "stable", **stable)
        # P: from the north to the south, accepted 10 days ago (hc-south's newcomer)
        await self.register(client, "P", ago=timedelta(days=30))
        await self.move(client, "P", SOUTH, by="hc-north", answer_by="hc-south", reported=20, answered=10)
        await self.visit(client, "P", 0, "stable", by="hc-south", **stable)
        # Q: a move from the south to the north rejected by hc-north: still lives in the south
        await self.register(client, "Q", SOUTH, by="hc-south", ago=timedelta(days=30))
        await self.move(
            client, "Q", NORTH, by="hc-south", answer_by="hc-north", reported=20, answered=10, accepted=False
        )
        await self.visit(client, "Q", 0, "stable", by="hc-south", **stable)
        # R: from Reedmarsh (another township) to the north, accepted 5 days ago: new to the
        # governance center of Willowbrook as well
        await self.register(client, "R", REEDMARSH, by="hc-reedmarsh", ago=timedelta(days=30))
        await self.move(client, "R", NORTH, by="hc-reedmarsh", answer_by="hc-north", reported=10, answered=5)
        await self.visit(client, "R", 0, "stable", **stable)
        await self.settle()

    async def settle(self) -> None:
        """The rules, the deadlines that passed (R15 marks them overdue) and the views, caught up."""
        s = self.services
        head = s.case_record.recorder.max_notification_id() or 0
        assert s.catch_up(head, timeout=60)
        s.scheduler.run_once(force=True)
        head = s.case_record.recorder.max_notification_id() or 0
        assert s.catch_up(head, timeout=60)

    def letters(self, items: list[dict]) -> set[str]:
        back = {str(v): k for k, v in self.ids.items()}
        return {back.get(i["patient_id"], "?") for i in items}


@pytest.fixture
def demo(open_store):
    services = open_store(clock=utc_now)
    load_file(services.case_record, DEMO_DISTRICT)
    keys = {a: services.apikeys.issue(a).key for a in AGENCIES}
    return services, keys


async def members(client, district: District, agency: str, name: str, **query) -> set[str]:
    r = await client.get(f"/v1/lists/{name}", params=query, headers=auth(district.keys[agency], _purpose(agency)))
    assert r.status_code == 200, r.text
    return district.letters(r.json()["items"])


def _purpose(agency: str) -> str:
    return "audit" if agency.startswith("auditor") else "care"


#: Each list's members, written out by hand, for the health center of the north (hc-north).
HEALTH_CENTER_NORTH = {
    "focus": {"B", "C", "D", "E", "K"},  # irregular medication (B, K), lost (C), weak guardian (D), refusal (E)
    "key": {"A", "C"},  # level 4; lost
    "high-risk": {"A"},
    "unstable-at-home": {"A"},
    "lost": {"C"},
    "irregular-medication": {"B", "K"},
    "pickup-overdue": {"K"},
    # L: stable, last visited 200 days ago (every 3 months); C and K: registered 40 and 70 days ago
    # and never visited (no class known: the first visit is due within 14 days)
    "visit-overdue": {"C", "K", "L"},
    "in-hospital": {"F"},
    "recently-discharged": {"G"},
    "no-guardian": {"D"},
    "refusing": {"E"},
    "institutional-care": {"H"},
    # moved in from outside hc-north's villages within 90 days: N (south, 10 days ago), R
    # (Reedmarsh, 5 days ago); not O (120 days ago), not P (moved out), not Q (rejected)
    "moved-in": {"N", "R"},
    # P moved inside the region (the same file, a new residence): no region reports about anyone
    # here (the list of patients managed by a linked region: test_dual_management.py)
    "managed-elsewhere": set(),
}


class TestEachListHoldsItsMembers:
    async def test_every_list_for_the_north_health_center_holds_exactly_the_hand_written_members(self, demo) -> None:
        services, keys = demo
        district = District(services, keys)
        async with AsyncTestClient(create_app(services)) as client:
            await district.build(client)
            found = {name: await members(client, district, "hc-north", name) for name in HEALTH_CENTER_NORTH}
        assert found == HEALTH_CENTER_NORTH

    async def test_other_kinds_see_their_jurisdiction_and_only_the_lists_they_may_read(self, demo) -> None:
        services, keys = demo
        district = District(services, keys)
        async with AsyncTestClient(create_app(services)) as client:
            await district.build(client)
            # the governance center: its whole area (J in the south too)
            assert await members(client, district, "gov-willowbrook", "high-risk") == {"A", "J"}
            assert await members(client, district, "gov-willowbrook", "key") == {"A", "C", "J"}
            assert await members(client, district, "gov-willowbrook", "lost") == {"C"}
            assert await members(client, district, "gov-willowbrook", "high-risk", org_unit=SOUTH) == {"J"}
            # the auditor: everywhere
            assert await members(client, district, "auditor-lantern-bay", "unstable-at-home") == {"A", "J"}
            # the south's health center: only the south
            assert await members(client, district, "hc-south", "high-risk") == {"J"}
            # the police of the east: high risk, lost, no guardian in its area; never medication
            assert await members(client, district, "police-east", "high-risk") == {"A"}
            assert await members(client, district, "police-east", "lost") == {"C"}
            assert await members(client, district, "police-east", "no-guardian") == {"D"}
            # the committee: overdue pickups and visits, refusals, guardians; not risk levels
            assert await members(client, district, "committee-north", "pickup-overdue") == {"K"}
            assert await members(client, district, "committee-north", "visit-overdue") == {"C", "K", "L"}
            assert await members(client, district, "committee-north", "refusing") == {"E"}
            # civil affairs: institutional care and guardians
            assert await members(client, district, "civil-willowbrook", "institutional-care") == {"H"}
            assert await members(client, district, "civil-willowbrook", "no-guardian") == {"D"}
            # moved in: into each caller's jurisdiction from outside it, within 90 days
            assert await members(client, district, "hc-south", "moved-in") == {"P"}
            assert await members(client, district, "gov-willowbrook", "moved-in") == {"R"}  # N, P moved inside its area
            assert await members(client, district, "gov-reedmarsh", "moved-in") == set()  # R moved out
            assert await members(client, district, "police-east", "moved-in") == {"N", "R"}
            assert await members(client, district, "committee-north", "moved-in") == {"N", "R"}
            assert await members(client, district, "auditor-lantern-bay", "moved-in") == {"N", "P", "R"}
            # a hospital: its own patients only (none of these)
            assert await members(client, district, "hospital-lantern-bay", "high-risk") == set()
            for agency, name in (
                ("police-east", "irregular-medication"),
                ("police-east", "focus"),
                ("committee-north", "high-risk"),
                ("civil-willowbrook", "in-hospital"),
                ("civil-willowbrook", "moved-in"),
                ("hospital-lantern-bay", "moved-in"),
            ):
                r = await client.get(f"/v1/lists/{name}", headers=auth(keys[agency]))
                assert r.status_code == 403, (agency, name, r.text)
                assert r.json()["type"].endswith("/list-not-allowed")
            outside = await client.get(f"/v1/lists/high-risk?org_unit={SOUTH}", headers=auth(keys["hc-north"]))
            assert outside.status_code == 403 and outside.json()["type"].endswith("/org-unit-outside-jurisdiction")

    async def test_each_row_passes_the_files_field_filter(self, demo) -> None:
        services, keys = demo
        district = District(services, keys)
        async with AsyncTestClient(create_app(services)) as client:
            await district.build(client)
            police = (await client.get("/v1/lists/high-risk", headers=auth(keys["police-east"]))).json()["items"]
            assert len(police) == 1 and police[0]["name"] == NAMES["A"] and police[0]["risk"]["level"] == 4
            assert "medication" not in police[0] and "focus" not in police[0]
            committee = (await client.get("/v1/lists/no-guardian", headers=auth(keys["committee-north"]))).json()
            row = committee["items"][0]
            assert row["id_number"][3:16] == "*" * 13 and "risk" not in row
            gov = (await client.get("/v1/lists/key", headers=auth(keys["gov-willowbrook"]))).json()["items"]
            assert all("id_number" not in r and "phone" not in r and "focus" in r for r in gov)
            # the row agrees with the file
            a = str(district.ids["A"])
            file = (await client.get(f"/v1/patients/{a}", headers=auth(keys["gov-willowbrook"]))).json()
            row_a = next(r for r in gov if r["patient_id"] == a)
            assert row_a["focus"] == file["focus"] and row_a["risk"] == file["risk"] and row_a["lost"] == file["lost"]

    async def test_every_row_agrees_with_the_file_for_each_kind(self, demo) -> None:
        services, keys = demo
        district = District(services, keys)
        reduced = {"medication": ("adherence", "supply_ends_on"), "hospital": ("in_hospital",)}
        async with AsyncTestClient(create_app(services)) as client:
            await district.build(client)
            for agency, lists in (
                ("hc-north", HEALTH_CENTER_NORTH),
                ("police-east", ("high-risk", "lost", "no-guardian")),
                ("committee-north", ("visit-overdue", "refusing", "no-guardian")),
                ("gov-willowbrook", ("key", "focus")),
            ):
                for name in lists:
                    items = (await client.get(f"/v1/lists/{name}", headers=auth(keys[agency]))).json()["items"]
                    for row in items:
                        r = await client.get(f"/v1/patients/{row['patient_id']}", headers=auth(keys[agency]))
                        file = r.json()
                        for field, value in row.items():
                            if field in reduced:
                                value_in_file = {k: file[field][k] for k in reduced[field]}
                            else:
                                value_in_file = file[field]
                            assert value == value_in_file, (agency, name, field)
                        # and nothing the file leaves out for this kind
                        assert set(row) <= set(file)

    async def test_pages_follow_the_cursor_in_the_chosen_order_and_each_page_is_recorded(self, demo) -> None:
        services, keys = demo
        district = District(services, keys)
        async with AsyncTestClient(create_app(services)) as client:
            await district.build(client)
            seen, after, pages = [], None, 0
            while True:
                params = {"limit": 2, "sort": "risk"} | ({"after": after} if after else {})
                r = await client.get("/v1/lists/key", params=params, headers=auth(keys["gov-willowbrook"]))
                body = r.json()
                seen += [i["patient_id"] for i in body["items"]]
                pages += 1
                after = body["next"]
                if after is None:
                    break
            # J (level 5) before A (level 4) before C (no level)
            assert seen == [str(district.ids[x]) for x in ("J", "A", "C")]
            entries = [e for e in services.access_log.entries() if e.endpoint == "GET /v1/lists/{list_name}"]
            assert len(entries) == pages and entries[0].patient_ids == (district.ids["J"], district.ids["A"])
            assert "focus" in entries[0].fields and "name" in entries[0].fields
            bad = await client.get("/v1/lists/key?after=nonsense", headers=auth(keys["gov-willowbrook"]))
            assert bad.status_code == 400 and bad.json()["type"].endswith("/invalid-cursor")

    async def test_the_catalogue_names_each_list_its_rule_and_its_readers(self, demo) -> None:
        services, keys = demo
        async with AsyncTestClient(create_app(services)) as client:
            r = await client.get("/v1/lists", headers=auth(keys["police-east"]))
            lists = {x["name"]: x for x in r.json()["lists"]}
            assert set(lists) == set(HEALTH_CENTER_NORTH)
            assert lists["high-risk"]["you_may_read"] and not lists["irregular-medication"]["you_may_read"]
            assert "3 or more" in lists["high-risk"]["rule"]


class TestCsvExport:
    async def test_the_export_has_a_bom_quotes_chinese_text_and_the_same_field_filter(self, demo) -> None:
        services, keys = demo
        district = District(services, keys)
        async with AsyncTestClient(create_app(services)) as client:
            await district.build(client)
            r = await client.get(
                "/v1/lists/key", headers={**auth(keys["hc-north"]), "Accept": "text/csv", "X-Staff-Id": "s-1"}
            )
            assert r.status_code == 200 and r.headers["content-type"].startswith("text/csv")
            raw = r.content
            assert raw.startswith(b"\xef\xbb\xbf")
            text = raw.decode("utf-8-sig")
            assert '"王, 小明"' in text and '"张三\n第二行"' in text  # commas and newlines quoted
            rows = list(csv.DictReader(io.StringIO(text, newline="")))
            by_id = {row["patient_id"]: row for row in rows}
            assert set(by_id) == {str(district.ids["A"]), str(district.ids["C"])}
            assert by_id[str(district.ids["A"])]["name"] == "王, 小明"  # round-trips
            assert by_id[str(district.ids["C"])]["name"] == "张三\n第二行"
            assert by_id[str(district.ids["A"])]["risk_level"] == "4"
            # the police's export of the high-risk list: no medication column, no focus
            police = await client.get(
                "/v1/lists/high-risk", headers={**auth(keys["police-east"]), "Accept": "text/csv"}
            )
            header = next(csv.reader(io.StringIO(police.content.decode("utf-8-sig"))))
            assert "adherence" not in header and "focus_categories" not in header and "risk_level" in header
            # a quote inside a name is doubled
            b = await client.get(
                "/v1/lists/irregular-medication", headers={**auth(keys["hc-north"]), "Accept": "text/csv"}
            )
            assert '"李 ""阿强"""' in b.content.decode("utf-8-sig")
            # refused like the JSON answer
            refused = await client.get(
                "/v1/lists/irregular-medication", headers={**auth(keys["police-east"]), "Accept": "text/csv"}
            )
            assert refused.status_code == 403

    async def test_each_chunk_of_an_export_is_recorded_before_it_is_sent(self, demo, monkeypatch) -> None:
        import api.lists

        monkeypatch.setattr(api.lists, "CSV_CHUNK", 2)
        services, keys = demo
        district = District(services, keys)
        async with AsyncTestClient(create_app(services)) as client:
            await district.build(client)
            before = len(services.access_log.entries())
            r = await client.get("/v1/lists/focus", headers={**auth(keys["hc-north"]), "Accept": "text/csv"})
            rows = list(csv.DictReader(io.StringIO(r.content.decode("utf-8-sig"), newline="")))
        assert {row["patient_id"] for row in rows} == {str(district.ids[x]) for x in ("B", "C", "D", "E", "K")}
        entries = services.access_log.entries()[before:]
        assert [len(e.patient_ids) for e in entries] == [2, 2, 1]
        assert all(e.endpoint == "GET /v1/lists/{list_name}" and e.status == 200 for e in entries)
        assert {p for e in entries for p in e.patient_ids} == {district.ids[x] for x in ("B", "C", "D", "E", "K")}
        assert "名" not in repr(entries) and "王" not in repr(entries)


#: Patients of the large export, by store (PostgreSQL: about 45 s here, SQLite about 17 s).
LARGE = {"sqlite": 10_000, "postgres": 10_000}


@pytest.mark.slow
class TestALargeExport:
    async def test_a_10000_row_export_is_streamed_whole_with_one_access_log_row_per_chunk(
        self, open_store, store_kind
    ) -> None:
        from ops.bench_lists import populate

        n = LARGE[store_kind]
        services = open_store(clock=utc_now)
        load_file(services.case_record, DEMO_DISTRICT)
        key = services.apikeys.issue("hc-north").key
        # facts recorded as the intake records them, each with a weak guardian; the lists' view caught up
        populate(services, n, weak_guardian_every=1, visits=False)
        async with AsyncTestClient(create_app(services), timeout=600) as client:
            before = len(services.access_log.entries(agency="hc-north"))
            headers = {**auth(key), "Accept": "text/csv"}
            body = bytearray()
            async with client.stream("GET", "/v1/lists/no-guardian", headers=headers) as r:
                assert r.status_code == 200
                async for part in r.aiter_bytes():
                    body += part
        rows = list(csv.DictReader(io.StringIO(body.decode("utf-8-sig"), newline="")))
        assert len(rows) == n and len({r["patient_id"] for r in rows}) == n
        assert rows[0]["name"].startswith("测试 ") and rows[0]["guardian_status"] == "weak"
        entries = services.access_log.entries(agency="hc-north")[before:]
        assert [len(e.patient_ids) for e in entries] == [500] * (n // 500)


class TestAHospitalReadsItsOwnPatients:
    async def test_a_hospitals_list_holds_the_patients_it_registered_or_admitted_and_no_one_else(self, demo) -> None:
        services, keys = demo
        district = District(services, keys)
        async with AsyncTestClient(create_app(services)) as client:
            await district.build(client)
            # M: registered and admitted by the hospital itself
            await district.register(client, "M", by="hospital-lantern-bay")
            admission = {"hospital": "Lantern Bay Psychiatric Hospital", "admission_kind": "involuntary"}
            await district.record(
                client, "cn.smd.patient.admitted.v1", "M", admission, by="hospital-lantern-bay", ago=timedelta(hours=5)
            )
            await district.settle()
            # F was admitted too, but recorded by the health center: not the hospital's own
            assert await members(client, district, "hospital-lantern-bay", "in-hospital") == {"M"}
            assert await members(client, district, "hc-north", "in-hospital") == {"F", "M"}


class TestTheListsViewIsRebuilt:
    async def test_a_rebuild_from_the_catalogue_gives_the_same_members(self, demo) -> None:
        from projections.catalogue import catalogue
        from projections.runner import rebuild

        services, keys = demo
        district = District(services, keys)
        async with AsyncTestClient(create_app(services)) as client:
            await district.build(client)
            before = {name: await members(client, district, "hc-north", name) for name in HEALTH_CENTER_NORTH}
            report = rebuild(
                services.case_record, services.views, catalogue()["patient_lists"], services.parking, keep_old=True
            )
            assert report.new.generation != report.old.generation
            after = {name: await members(client, district, "hc-north", name) for name in HEALTH_CENTER_NORTH}
        assert after == before == HEALTH_CENTER_NORTH
