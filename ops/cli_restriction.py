"""`smd restriction request|approve|list` and `smd erasure run`: restriction and erasure from the console.

The same commands as the audit endpoints (api/restrictions.py), for an agency without a system
of its own at hand: the operator names the agency acting (``--agency``, looked up in the
registry for its kind) and the fact records the key id ``cli:<operating-system user>`` in place
of an API key. The pairing rule is the same: a different agency approves, one of them an auditor.
The listing prints no reasons (they are sealed personal data: auditors read them over HTTP,
where the read is recorded in the access log).
"""

from __future__ import annotations

import argparse
import getpass
from datetime import timedelta
from typing import Any
from uuid import UUID

from domain.errors import DomainError


def _services() -> Any:
    from ops.bootstrap import bootstrap
    from ops.settings import load_settings

    return bootstrap(load_settings())


def _requester(services: Any, agency_id: str, staff_id: str | None) -> Any:
    from core.restrictions import Requester

    services.registry.refresh()
    agency = services.registry.agency(agency_id, as_of_position=services.registry.position)
    if agency is None:
        raise SystemExit(f"restriction: agency {agency_id!r} is not in the registry (smd agencies lists them)")
    return Requester(agency_id, str(agency.kind), f"cli:{getpass.getuser()}", staff_id)


def _request(args: argparse.Namespace) -> int:
    from core import restrictions
    from domain.restriction import RestrictionAct

    services = _services()
    try:
        by = _requester(services, args.agency, args.staff_id)
        filed = restrictions.request(services.case_record, args.patient, RestrictionAct(args.act), by, args.reason)
    except DomainError as e:
        print(f"restriction: refused ({e.code}): {e.detail}")
        return 1
    finally:
        services.close()
    print(f"request {filed.id}: {filed.act} {filed.subject_id} requested by {filed.requested_by}")
    print(f"  approve it as another agency (one of the two an auditor): smd restriction approve {filed.id} ...")
    return 0


def _approve(args: argparse.Namespace) -> int:
    from core import restrictions

    services = _services()
    cooling_off = timedelta(days=services.settings.erasure_cooling_off_days)
    try:
        by = _requester(services, args.agency, args.staff_id)
        approved = restrictions.approve(services.case_record, args.request_id, by, args.reason, cooling_off)
    except DomainError as e:
        print(f"restriction: refused ({e.code}): {e.detail}")
        return 1
    finally:
        services.close()
    if approved.act == "erase" and approved.approved_at is not None:
        when = approved.approved_at + cooling_off
        print(
            f"request {approved.id} approved by {approved.approved_by}: {approved.subject_id} is restricted and "
            f"its data key is destroyed by `smd erasure run` from {when:%Y-%m-%d %H:%M} UTC"
        )
        return 0
    done = "restricted" if approved.act == "restrict" else "no longer restricted"
    print(f"request {approved.id} approved by {approved.approved_by}: {approved.subject_id} is {done}")
    return 0


def _erase(args: argparse.Namespace) -> int:
    import asyncio

    from core.erasure import erase_due, erased_subjects

    services = _services()
    try:
        done = erase_due(services.case_record, handovers=services.handovers)
        for e in done:
            print(f"erased {e.subject_id}: data key destroyed, {e.markers_retired} ID-number marker(s) retired")
            if e.notified:
                print(f"  erasure notice queued to region(s) {', '.join(e.notified)} (sent by smd serve)")
        erased = erased_subjects(services.case_record)
        if services.settings.nats_url and erased:
            deleted = asyncio.run(_delete_messages(services, erased))
            for stream, seqs in deleted.items():
                print(f"{stream}: {len(seqs)} message(s) about erased patients deleted")
        elif erased:
            print("no SMD_NATS_URL: the NATS streams were not searched")
        _crossregion(services)
    finally:
        services.close()
    if not done:
        print("no erasure due")
    return 0


async def _delete_messages(services: Any, subjects: Any) -> dict[str, list[int]]:
    import nats

    from integrations.erasure import delete_messages_about
    from integrations.runner import servers_of
    from integrations.streams import names_of

    nc = await nats.connect(servers=servers_of(services.settings.nats_url), connect_timeout=5)
    try:
        return await delete_messages_about(nc.jetstream(), names_of(services.settings), subjects)
    finally:
        await nc.close()


def _crossregion(services: Any) -> None:
    """The linked regions' notices kept here, and the erased patients' messages deleted from the
    cross-region streams (decision 049)."""
    import asyncio

    handovers = services.handovers
    if handovers is None or not services.settings.crossregion_peers:
        return
    for n in handovers.erasure_notices_received():
        if n.decision == "kept":
            print(f"erasure notice from region {n.sender} about {n.patient_id} kept: {n.reason} (nothing destroyed)")
    erased = handovers.erased_messages()
    if not erased.handover_ids:
        return
    if not services.settings.crossregion_nats_url:
        print("no SMD_CROSSREGION_NATS_URL: the cross-region streams were not searched")
        return
    for stream, seqs in asyncio.run(_delete_crossregion_messages(services, erased)).items():
        if seqs:  # the rest wait for a later run, or are gone already
            print(f"{stream}: {len(seqs)} message(s) about erased patients deleted")


async def _delete_crossregion_messages(services: Any, erased: Any) -> dict[str, list[int]]:
    import nats

    from integrations.crossregion import LinkNames
    from integrations.crossregion.erasure import delete_erased_messages
    from integrations.runner import servers_of

    settings = services.settings
    nc = await nats.connect(servers=servers_of(settings.crossregion_nats_url), connect_timeout=5)
    try:
        return await delete_erased_messages(nc.jetstream(), LinkNames(settings.subject_root, settings.region), erased)
    finally:
        await nc.close()


def _list(args: argparse.Namespace) -> int:
    from core import restrictions

    services = _services()
    try:
        found = restrictions.requests(services.case_record, args.patient)
    finally:
        services.close()
    for v in found:
        approved = f"approved by {v.approved_by} {v.approved_at:%Y-%m-%d %H:%M}" if v.approved_at else "pending"
        now = "restricted now" if v.restricted_now else "not restricted now"
        print(
            f"{v.request_id}  {v.act:<8} {v.subject_id}  requested by {v.requested_by} "
            f"{v.requested_at:%Y-%m-%d %H:%M}, {approved}; {now}"
        )
    if not found:
        print("no restriction requests")
    return 0


def add_commands(sub: Any) -> None:
    """Register `smd restriction request|approve|list` and `smd erasure run`."""
    r = sub.add_parser("restriction", help="restrict a patient's data, or lift it: request, approve, list")
    rs = r.add_subparsers(dest="restriction_command", required=True)
    q = rs.add_parser("request", help="request restricting, lifting or erasing a patient off the register")
    q.add_argument("--patient", type=UUID, required=True, help="a deregistered patient or a dismissed suspected case")
    q.add_argument("--act", choices=("restrict", "lift", "erase"), default="restrict")
    q.add_argument("--agency", required=True, help="the agency requesting (its id in the registry)")
    q.add_argument("--reason", required=True, help="why (sealed under the patient's key)")
    q.add_argument("--staff-id", help="the staff member acting (the agency's assertion)")
    q.set_defaults(func=_request)
    a = rs.add_parser("approve", help="approve a request as a different agency (one of the two an auditor)")
    a.add_argument("request_id", type=UUID)
    a.add_argument("--agency", required=True, help="the agency approving (its id in the registry)")
    a.add_argument("--reason", required=True, help="why (sealed under the patient's key)")
    a.add_argument("--staff-id", help="the staff member acting (the agency's assertion)")
    a.set_defaults(func=_approve)
    ls = rs.add_parser("list", help="the requests, oldest first (without their reasons)")
    ls.add_argument("--patient", type=UUID, help="one patient's requests")
    ls.set_defaults(func=_list)
    e = sub.add_parser("erasure", help="carry out approved erasures whose cooling-off has passed")
    es = e.add_subparsers(dest="erasure_command", required=True)
    run = es.add_parser("run", help="destroy the data keys due, retire their ID-number markers, delete NATS messages")
    run.set_defaults(func=_erase)
