"""R20 on SQLite and PostgreSQL: a committee reports a patient dangerous now; the police have
30 minutes, the governance center coordinates, the care team is told; a missed minute
deadline is overdue and escalated on the scheduler's next pass; the response completes it."""

from __future__ import annotations

from datetime import timedelta

import pytest

from core.registry import load_file
from core.scheduler import Scheduler
from domain.rules.r20_emergency import emergency_id
from ops.data_files import DEMO_DISTRICT
from tests.integration.test_coordination_engine import COMMITTEE, GOV, HC, POLICE
from tests.integration.test_rules_care import Care
from tests.support.stores import NOW

SEEN = {"danger": "to_others", "observed": "MKSEENzz threatening neighbours"}


@pytest.fixture
def care(services) -> Care:
    load_file(services.case_record, DEMO_DISTRICT)
    c = Care(services)
    c.register()
    return c


def police_part(care, key: str):
    return care.services.case_record.repository.get(emergency_id(care.patient, key, "police"))


class TestR20:
    def test_a_report_gives_the_police_thirty_minutes_and_tells_the_care_team(self, care) -> None:
        key = care.send(COMMITTEE, "risk.escalated", SEEN, days_ago=0.003).key
        care.send(COMMITTEE, "risk.escalated", SEEN, days_ago=0.002)  # the same emergency, told again
        o = police_part(care, key)
        assert (o.assignee, o.action, o.due_at - o.created_on) == (
            POLICE,
            "respond_to_emergency",
            timedelta(minutes=30),
        )
        rows = {(r.assignee, r.kind, r.action) for r in care.rows("R20")}
        assert rows == {
            (POLICE, "obligation", "respond_to_emergency"),
            (GOV, "obligation", "coordinate_emergency"),
            (COMMITTEE, "notice", "emergency_notice"),
            (HC, "notice", "emergency_notice"),
        }

    def test_a_missed_minute_deadline_is_escalated_within_a_minute_and_the_response_completes_it(self, care) -> None:
        key = care.send(COMMITTEE, "risk.escalated", SEEN, days_ago=0.003).key
        due = police_part(care, key).due_at
        s = care.services
        Scheduler(s.case_record, s.registry, s.work_queue, lambda: due + timedelta(seconds=1)).run_once(force=True)
        late = police_part(care, key)
        assert (late.overdue, late.escalated_to) == (True, GOV)
        answered = care.send(POLICE, "emergency.responded", {"outcome": "sent_for_treatment"}, days_ago=0.0001)
        assert police_part(care, key).fulfilled_by == answered.key

    def test_what_was_seen_is_sealed_in_storage(self, care, settings) -> None:
        care.send(COMMITTEE, "risk.escalated", SEEN, days_ago=0.003)
        from tests.integration.test_no_plaintext import stored_bytes

        assert b"MKSEENzz" not in stored_bytes(settings) and NOW
