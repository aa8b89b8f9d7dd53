"""R22: every emergency access grant (break the glass) gives the governance center covering the
patient an obligation to review it within 5 working days; its review completes it, whatever
the outcome; leaving the register does not cancel it."""

from __future__ import annotations

from datetime import date, datetime, time, timedelta
from uuid import UUID, uuid4

import pytest

from domain.emergency_access import (
    EmergencyAccessNeedsAReason,
    UnknownEmergencyAccess,
    grant_id,
    grant_message_id,
)
from domain.identity import CHINA_TZ
from domain.obligation import ObligationKind
from domain.patient import Patient
from domain.patient_file import InvalidValue
from domain.personal import PersonalDetails
from domain.registry import AgencyKind
from domain.rules.engine import Decisions, Trigger
from domain.rules.r22_emergency_access_review import r22_emergency_access_review, review_id
from domain.rules.settings import RuleSettings
from domain.values import Provenance
from tests.unit.rules.story import NOW, ago, responsible, without

FRIDAY = datetime(2026, 11, 20, 10, 0, tzinfo=CHINA_TZ)


def end_of(day: date) -> datetime:
    return datetime.combine(day + timedelta(days=1), time(0), CHINA_TZ)


class Glass:
    """A patient, a police station outside the jurisdiction that breaks the glass, and the
    governance center that reviews; R22 asked of each fact."""

    def __init__(self) -> None:
        self.n = 0
        by = Provenance("hc", None, ago(30), "hc:0")
        self.patient = Patient.register(uuid4(), by, NOW, PersonalDetails(name="Test Person"), "v-01")

    def grant(self, n: int = 1, hours: float = 3) -> UUID:
        gid = grant_id("police-far", FRIDAY.date(), n)
        by = Provenance("police-far", "officer-12", NOW, grant_message_id(gid))
        self.patient.grant_emergency_access(
            by, NOW, grant=gid, key_id="k-1", reason="found at the bus station", hours=timedelta(hours=hours)
        )
        return gid

    def review(self, gid: UUID, outcome: str = "justified", days_later: float = 1) -> str:
        self.n += 1
        by = Provenance("gov", None, NOW + timedelta(days=days_later), f"gov:{self.n}")
        self.patient.review_emergency_access(
            by, NOW + timedelta(days=days_later), grant_id=gid, outcome=outcome, remarks="asked the station"
        )
        return by.message_id

    def then(self, recorded_at: datetime = FRIDAY, agencies=None) -> Decisions:
        last = self.patient.pending_events[-1]
        t = Trigger(
            patient_id=self.patient.id,
            message_id=last.message_id,
            position=self.patient.version,
            recorded_at=recorded_at,
            residence="v-01",
            topic=type(last).TOPIC,
            version=self.patient.version,
        )
        who = responsible if agencies is None else agencies.get
        return r22_emergency_access_review(t, self.patient, who, RuleSettings())


class TestOpens:
    def test_a_grant_gives_the_governance_center_five_working_days_to_review_it(self) -> None:
        g = Glass()
        gid = g.grant()
        [review] = g.then(recorded_at=FRIDAY).opened
        # Friday 20 Nov: Mon 23, Tue 24, Wed 25, Thu 26, Fri 27 Nov (weekdays without a calendar)
        assert (review.id, review.kind, review.assignee, review.rule, review.action, review.due_at) == (
            review_id(g.patient.id, gid),
            ObligationKind.OBLIGATION,
            "gov",
            "R22",
            "review_emergency_access",
            end_of(date(2026, 11, 27)),
        )

    def test_each_grant_is_reviewed_on_its_own(self) -> None:
        g = Glass()
        first = g.grant(1)
        [a] = g.then().opened
        second = g.grant(2)
        [b] = g.then().opened
        assert first != second and a.id != b.id and a.episode_key == str(first) and b.episode_key == str(second)

    def test_no_governance_center_on_record_opens_nothing(self) -> None:
        g = Glass()
        g.grant()
        assert g.then(agencies=without(AgencyKind.GOVERNANCE_CENTER)).opened == []


class TestCompleted:
    @pytest.mark.parametrize("outcome", ["justified", "not_justified"])
    def test_the_review_completes_it_whatever_it_found(self, outcome: str) -> None:
        g = Glass()
        gid = g.grant()
        key = g.review(gid, outcome)
        d = g.then()
        assert d.completed == [(review_id(g.patient.id, gid), key)] and d.opened == []
        assert g.patient.emergency_review(gid)["outcome"] == outcome

    def test_a_review_after_the_patient_left_the_register_is_still_taken(self) -> None:
        g = Glass()
        gid = g.grant()
        g.patient.deregister(
            Provenance("hc", None, NOW + timedelta(hours=1), "hc:9"), NOW + timedelta(hours=1), reason="death"
        )
        key = g.review(gid, days_later=2)
        assert g.then().completed == [(review_id(g.patient.id, gid), key)]
        assert g.then().cancelled == []


class TestTheGrantItself:
    def test_a_grant_without_a_reason_is_refused(self) -> None:
        g = Glass()
        by = Provenance("police-far", None, NOW, "x")
        with pytest.raises(EmergencyAccessNeedsAReason):
            g.patient.grant_emergency_access(by, NOW, grant=uuid4(), key_id="k", reason=" ", hours=timedelta(hours=3))

    def test_a_grant_is_in_force_for_its_agency_until_it_expires(self) -> None:
        g = Glass()
        gid = g.grant(hours=3)
        assert g.patient.active_emergency_grant("police-far", NOW)["grant_id"] == gid
        assert g.patient.active_emergency_grant("police-far", NOW + timedelta(hours=2, minutes=59)) is not None
        assert g.patient.active_emergency_grant("police-far", NOW + timedelta(hours=3)) is None
        assert g.patient.active_emergency_grant("police-other", NOW) is None

    def test_a_review_names_a_granted_id_and_a_known_outcome(self) -> None:
        g = Glass()
        gid = g.grant()
        with pytest.raises(UnknownEmergencyAccess):
            g.review(uuid4())
        with pytest.raises(InvalidValue):
            g.review(gid, outcome="fine")
