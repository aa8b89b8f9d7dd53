"""The agency client: a small library for an agency's system (health center, police station,
committee...) to talk to this service, with the contract's own checks.

- ``client.envelope(type, subject, data, occurred=..., actor=...)`` builds an envelope and checks
  it against the contract (``core.contract``) before anything is sent: a mistake raises
  ``ContractError`` with the message the service would give.
- ``await client.publish(envelope)`` publishes it over NATS on the agency's intake subject with
  ``Nats-Msg-Id: <source>:<id>``; ``await client.send_batch(envelopes)`` sends many over HTTP
  (``POST /v1/events/batch``, NDJSON) and returns one ``BatchOutcome`` per envelope.
- ``async for m in client.obligations(): ...; await m.done()`` receives the agency's obligations
  and notices from the durable the service created for it (``agency-<id>-out``); ``rejections()``
  the same for what was refused (``agency-<id>-rejected``). Delivery is at least once; the client
  remembers the keys of the messages marked done in a SQLite file (``seen``), so a copy is not
  handed out again, even after a restart.
- ``await client.acknowledge(obligation_id)`` / ``complete(obligation_id, note=...)`` over HTTP.

Dependencies: nats-py, httpx, msgspec, and this service's ``core.contract`` (so the checks are
the service's own). Example::

    async with await AgencyClient.connect(
        "hc-north", nats_url="nats://nats.example:4222", password=PASSWORD,
        http_url="https://smd.example", api_key=API_KEY, seen="/var/lib/hc-north/seen.sqlite3",
    ) as client:
        visit = client.envelope(
            "visit.recorded.v1", patient_id, {"face_to_face": True, "risk_level": 4, "risk_class": "unstable"}
        )
        await client.publish(visit)
        async for message in client.obligations(idle=30):
            print(message.type, message.data["rule"], message.data["due_at"])
            await message.done()
"""

from core.contract import ContractError
from integrations.agency_client.client import (
    AgencyClient,
    BatchOutcome,
    Message,
    ObligationState,
    Received,
    Rejection,
    ServiceRefused,
)
from integrations.agency_client.seen import SeenIds

__all__ = [
    "AgencyClient",
    "BatchOutcome",
    "ContractError",
    "Message",
    "ObligationState",
    "Received",
    "Rejection",
    "SeenIds",
    "ServiceRefused",
]
