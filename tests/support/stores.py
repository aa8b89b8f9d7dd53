"""Build the service on either store by changing only settings (same test, every backend)."""

from __future__ import annotations

import base64
import secrets
from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any
from uuid import UUID

from core.contract import InboundEvent
from integrations.agency_client import AgencyClient
from ops.bootstrap import Services, bootstrap
from ops.settings import Settings, load_settings

NOW = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)


class MovableClock:
    """A clock a test sets (``clock.now = ...``): the services' "now" for stories over days."""

    def __init__(self, now: datetime = NOW) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


def store_settings(kind: str, data_dir: Path, pg_url: str | None = None, **extra: str) -> Settings:
    """Settings for a store kind; keys fixed per data dir so reopening reads the same data."""
    env = {"SMD_DATA_DIR": str(data_dir), **extra}
    if kind == "postgres":
        assert pg_url, "a postgres store needs a database url"
        env["SMD_DATABASE_URL"] = pg_url
    return load_settings(env)


def open_services(
    settings: Settings, clock: Callable[[], datetime] = lambda: NOW, snapshot_every: int | None = None
) -> Services:
    return bootstrap(settings, clock=clock, snapshot_every=snapshot_every)


class Agency:
    """An agency's system in tests: builds envelopes as it would send them."""

    def __init__(self, agency_id: str = "hc-east") -> None:
        self.agency_id = agency_id

    def envelope(
        self,
        event_type: str,
        subject: UUID,
        data: dict[str, Any],
        *,
        occurred: datetime = NOW - timedelta(hours=1),
        message_id: UUID | None = None,
        actor: str | None = "staff-07",
    ) -> InboundEvent:
        # built and checked by the agency client, as an agency's system would
        return AgencyClient(self.agency_id).envelope(
            event_type, subject, data, occurred=occurred, actor=actor or None, id=message_id
        )

    def register(self, patient: UUID, **data: Any) -> InboundEvent:
        body = {"name": "Test Person", "residence": "v-01", **data}
        return self.envelope("cn.smd.patient.registered.v1", patient, body, occurred=NOW - timedelta(days=60))

    def visit(self, patient: UUID, level: int, risk_class: str, *, joint: bool = False, **kw: Any) -> InboundEvent:
        return self.envelope(
            "cn.smd.visit.recorded.v1",
            patient,
            {"face_to_face": True, "joint": joint, "risk_level": level, "risk_class": risk_class},
            **kw,
        )

    def missed(self, patient: UUID, scheduled_on: date, **kw: Any) -> InboundEvent:
        return self.envelope("cn.smd.visit.missed.v1", patient, {"scheduled_on": scheduled_on.isoformat()}, **kw)

    def assess(self, patient: UUID, level: int, risk_class: str, **kw: Any) -> InboundEvent:
        return self.envelope("cn.smd.risk.assessed.v1", patient, {"risk_level": level, "risk_class": risk_class}, **kw)


def random_key() -> str:
    return base64.b64encode(secrets.token_bytes(32)).decode()
