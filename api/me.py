"""`GET /v1/me`: which agency the API key belongs to, as the registry knows it today."""

from __future__ import annotations

import msgspec
from litestar import Controller, get
from litestar.di import NamedDependency, Provide

from api.auth import Caller, agency_guard, provide_caller


class Me(msgspec.Struct):
    """The calling agency."""

    agency_id: str
    kind: str
    name: str
    region: str
    jurisdiction: list[str]
    key_id: str


class MeController(Controller):
    """The authenticated caller."""

    path = "/v1/me"
    tags = ["agencies"]  # noqa: RUF012 (Litestar reads it as a class attribute)
    guards = [agency_guard]  # noqa: RUF012
    dependencies = {"caller": Provide(provide_caller)}  # noqa: RUF012

    @get(operation_id="me", summary="The agency holding this API key")
    async def me(self, caller: NamedDependency[Caller]) -> Me:
        return Me(
            agency_id=caller.agency_id,
            kind=caller.kind,
            name=caller.name,
            region=caller.region,
            jurisdiction=list(caller.jurisdiction),
            key_id=caller.key_id,
        )
