"""`smd console issue|list|revoke`: the governance console's credentials (docs/decisions/041).

A credential is issued per staff member of a governance center or an auditor, printed once,
stored hashed, and revocable at once (its open sessions end at their next page).
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

from core.console_credentials import CONSOLE_KINDS, InvalidStaffId, UnknownCredential
from domain.errors import DomainError
from domain.registry_errors import UnknownAgency
from ops.cli_registry import wired


def _issue(args: argparse.Namespace) -> int:
    with wired() as w:
        agency = w.registry.agency(args.agency)
        if agency is None:
            raise UnknownAgency(args.agency)
        if str(agency.kind) not in CONSOLE_KINDS:
            print(
                f"smd: the console is for the governance center and the auditor; {args.agency} is a {agency.kind}",
                file=sys.stderr,
            )
            return 1
        issued = w.services.console.issue(args.agency, args.staff)
    print(
        f"console credential {issued.credential_id} for staff {issued.staff_id} of {issued.agency_id}; "
        "shown once, give it to that person only:"
    )
    print(issued.credential)
    return 0


def _list(args: argparse.Namespace) -> int:
    with wired() as w:
        rows = w.services.console.list(args.agency)
    for c in rows:
        state = f"revoked {c.revoked_at.isoformat(timespec='seconds')}" if c.revoked_at else "active"
        print(
            f"{c.credential_id}  {c.agency_id:<24} staff {c.staff_id:<16} "
            f"issued {c.issued_at.isoformat(timespec='seconds')}  {state}"
        )
    if not rows:
        print("no console credentials" + (f" for agency {args.agency}" if args.agency else ""))
    return 0


def _revoke(args: argparse.Namespace) -> int:
    with wired() as w:
        info = w.services.console.revoke(args.credential_id)
    assert info.revoked_at is not None
    print(
        f"console credential {info.credential_id} of staff {info.staff_id} ({info.agency_id}) revoked since "
        f"{info.revoked_at.isoformat(timespec='seconds')}"
    )
    return 0


def _guarded(func: Any) -> Any:
    def run(args: argparse.Namespace) -> int:
        try:
            return int(func(args))
        except (DomainError, UnknownCredential, InvalidStaffId) as e:
            print(f"smd: {e}", file=sys.stderr)
            return 1

    return run


def add_commands(subparsers: Any) -> None:
    """Add `console` to the `smd` command line."""
    console = subparsers.add_parser("console", help="credentials of the governance console (per staff member)")
    sub = console.add_subparsers(dest="console_command", required=True)
    issue = sub.add_parser("issue", help="issue a read-only console credential (printed once)")
    issue.add_argument("agency", help="a governance center or an auditor")
    issue.add_argument("--staff", required=True, help="the staff member's id (recorded with every read)")
    issue.set_defaults(func=_guarded(_issue))
    listing = sub.add_parser("list", help="list credentials (never the credentials themselves)")
    listing.add_argument("agency", nargs="?", default=None)
    listing.set_defaults(func=_guarded(_list))
    revoke = sub.add_parser("revoke", help="revoke a credential, effective at the next page")
    revoke.add_argument("credential_id")
    revoke.set_defaults(func=_guarded(_revoke))
