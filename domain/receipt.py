"""Receipts: one per inbound message, the atomic idempotency marker (STACK.md "Patterns").

A receipt's id is derived from the message's idempotency key ``<source>:<id>``; it is saved in
the same transaction as the facts the message produced. A second delivery of the message
conflicts on the receipt's first version, so the whole batch is refused and nothing is stored
twice. The receipt keeps a digest of the message's content so that the same key with different
content can be told apart from a plain redelivery.
"""

from __future__ import annotations

from datetime import datetime
from uuid import NAMESPACE_URL, UUID, uuid5

from eventsourcing.domain import Aggregate

#: Namespace of receipt ids; never change it (stored receipts would stop matching).
RECEIPT_NAMESPACE = uuid5(NAMESPACE_URL, "urn:smd:receipt")


def receipt_id(idempotency_key: str) -> UUID:
    """The receipt id of a message key ``<source>:<id>`` (not personal: ids are random UUIDs)."""
    return uuid5(RECEIPT_NAMESPACE, idempotency_key)


class Receipt(Aggregate):
    """Proof that one inbound message was recorded, and what it produced."""

    TOPIC = "smd.Receipt"

    class Issued(Aggregate.Created):
        """MessageReceived: the message with this key was recorded."""

        TOPIC = "smd.MessageReceived"
        key: str
        digest: str
        event_type: str
        subject: str
        agency_id: str
        outcome: str
        #: the id of the API key that authenticated the message (None: another door, or a receipt
        #: recorded before keys were noted); a new field, so older receipts read as None
        key_id: str | None = None
        #: what authenticated the message, named by kind (a new field; older receipts read as
        #: None): ``api-key:<key id>`` (HTTP), ``nats-user:<user>`` (the NATS user whose
        #: permissions alone let it publish on the agency's intake subject, docs/decisions/027),
        #: ``import:<ledger digest>`` (the operator's ``smd import`` of the ledger file whose
        #: SHA-256 starts so), ``handover:<handover id>`` (a registration made on a linked
        #: region's signed handover request, when the receiving health center accepted it)
        authenticated_by: str | None = None

    class Created(Aggregate.Created):
        """Never recorded: the library requires a topic on its default first event."""

        TOPIC = "smd.Receipt.Created"

    def __init__(
        self,
        key: str,
        digest: str,
        event_type: str,
        subject: str,
        agency_id: str,
        outcome: str,
        key_id: str | None = None,
        authenticated_by: str | None = None,
    ) -> None:
        self.key = key
        self.key_id = key_id
        self.authenticated_by = authenticated_by
        self.digest = digest
        self.event_type = event_type
        self.subject = subject
        self.agency_id = agency_id
        self.outcome = outcome

    @classmethod
    def issue(
        cls,
        *,
        key: str,
        digest: str,
        event_type: str,
        subject: str,
        agency_id: str,
        outcome: str,
        now: datetime,
        key_id: str | None = None,
        authenticated_by: str | None = None,
    ) -> Receipt:
        """A receipt for the message ``key`` whose content hashes to ``digest``."""
        return cls._create(
            cls.Issued,
            id=receipt_id(key),
            timestamp=now,
            key=key,
            digest=digest,
            event_type=event_type,
            subject=subject,
            agency_id=agency_id,
            outcome=outcome,
            key_id=key_id,
            authenticated_by=authenticated_by,
        )
