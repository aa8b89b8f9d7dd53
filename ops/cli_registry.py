"""`smd registry …` and `smd keys …`: load and show the registry; issue, list, revoke API keys.

``add_commands(subparsers)`` adds them to the `smd` parser. ``development_banner`` is what
`smd serve` runs in development mode: load the demo district (only its differences), make sure
one demo key per agency kind exists, and return the text to print.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any

from core.apikeys import ApiKeys, UnknownApiKey
from core.demo_keys import DemoKey, ensure_demo_keys
from core.registry import RegistryView, RegistryWriteConflict, load_file, open_registry
from domain.errors import DomainError
from domain.registry import RegistryState
from domain.registry_errors import UnknownAgency
from ops.data_files import DEMO_DISTRICT, DEMO_DISTRICTS, demo_district_for
from ops.settings import Settings, load_settings


@dataclass
class Wired:
    """What the registry and key commands use."""

    settings: Settings
    services: Any  # ops.bootstrap.Services
    registry: RegistryView
    apikeys: ApiKeys


@contextmanager
def wired() -> Iterator[Wired]:
    """Settings, services, registry view and key store; closed on exit."""
    from ops.bootstrap import bootstrap, build_apikeys

    settings = load_settings()
    services = bootstrap(settings)
    # Until Services carries them (see the wiring notes), build them here.
    registry = getattr(services, "registry", None) or open_registry(services.case_record, settings.region)
    apikeys = getattr(services, "apikeys", None) or build_apikeys(settings)
    try:
        yield Wired(settings, services, registry, apikeys)
    finally:
        if getattr(services, "apikeys", None) is None:
            apikeys.close()
        services.close()


def prepare_development(
    services: Any, registry: RegistryView, apikeys: ApiKeys, district: Path = DEMO_DISTRICT
) -> list[DemoKey]:
    """Load the demo district (only its differences) and return one demo key per agency kind."""
    load_file(services.case_record, district, region=services.settings.region)
    return ensure_demo_keys(apikeys, registry, services.settings.data_dir)


def development_banner(services: Any) -> str:
    """`smd serve` in development: load the region's demo district, return the demo keys to print."""
    settings = services.settings
    if settings.mode != "development":
        return ""
    # two regions on one machine each get their own fictional district and demo keys
    district = demo_district_for(settings.region)
    if district is None:
        shipped = ", ".join(sorted(DEMO_DISTRICTS))
        return f"Demo district not loaded: the shipped ones are regions {shipped}, SMD_REGION is {settings.region}"
    return format_demo_keys(prepare_development(services, services.registry, services.apikeys, district))


def format_demo_keys(keys: list[DemoKey]) -> str:
    """The demo keys as printed at start-up (development only)."""
    width = max((len(k.kind) for k in keys), default=0)
    lines = ["Demo API keys (development only; send as 'Authorization: Bearer <key>'):"]
    lines += [f"  {k.kind:<{width}}  {k.agency_id:<24} {k.key}" for k in keys]
    return "\n".join(lines)


# -- registry ---------------------------------------------------------------------------------


def _registry_load(args: argparse.Namespace) -> int:
    with wired() as w:
        path = args.file or demo_district_for(w.settings.region) or DEMO_DISTRICT
        count = load_file(w.services.case_record, path, region=w.settings.region)
    print(f"{count} change(s) recorded from {path}" if count else f"no changes: the registry already matches {path}")
    return 0


def _tree(state: RegistryState, uid: str, on: date, depth: int) -> Iterator[str]:
    unit = state.org_unit(uid, on)
    if unit is None:
        return
    yield f"{'  ' * depth}{uid}  {unit.kind}  {unit.name}  (population {state.population(uid, on)})"
    for child in state.children(uid, on):
        yield from _tree(state, child, on, depth + 1)


def _registry_show(args: argparse.Namespace) -> int:
    with wired() as w:
        on = args.on or w.registry.today()
        state = w.registry.state()
        print(f"Region {w.settings.region} on {on.isoformat()} (log position {w.registry.position})")
        if not state.org_units:
            print("  empty: load a registry file with `smd registry load [FILE]`")
            return 0
        print("\n".join(_tree(state, w.settings.region, on, 1)))
        print("Agencies")
        for agency_id in sorted(state.agencies):
            a = state.agency(agency_id, on)
            if a is not None:
                covers = ", ".join(sorted(a.jurisdiction)) or "(none)"
                print(f"  {agency_id}  {a.kind}  {a.name}: {covers}")
    return 0


# -- keys -------------------------------------------------------------------------------------


def _keys_issue(args: argparse.Namespace) -> int:
    with wired() as w:
        if w.registry.agency(args.agency) is None:
            raise UnknownAgency(args.agency)
        issued = w.apikeys.issue(args.agency)
    print(f"key id {issued.key_id} for agency {issued.agency_id}; shown once, store it now:")
    print(issued.key)
    return 0


def _keys_list(args: argparse.Namespace) -> int:
    with wired() as w:
        keys = w.apikeys.list(args.agency)
    for k in keys:
        issued = k.issued_at.isoformat(timespec="seconds")
        state = f"revoked {k.revoked_at.isoformat(timespec='seconds')}" if k.revoked_at else "active"
        print(f"{k.key_id}  {k.agency_id:<28} issued {issued}  {state}")
    if not keys:
        print("no keys" + (f" for agency {args.agency}" if args.agency else ""))
    return 0


def _keys_revoke(args: argparse.Namespace) -> int:
    with wired() as w:
        info = w.apikeys.revoke(args.key_id)
    assert info.revoked_at is not None
    since = info.revoked_at.isoformat(timespec="seconds")
    print(f"key {info.key_id} of agency {info.agency_id} revoked since {since}")
    return 0


def _guarded(func: Any) -> Any:
    """Print domain and key errors as one line saying what to fix (exit status 1)."""

    def run(args: argparse.Namespace) -> int:
        try:
            return int(func(args))
        except (DomainError, UnknownApiKey, RegistryWriteConflict) as e:
            print(f"smd: {e}", file=sys.stderr)
            return 1

    return run


def add_commands(subparsers: Any) -> None:
    """Add `registry` and `keys` to the `smd` command line."""
    registry = subparsers.add_parser("registry", help="org units and agencies of this region")
    rsub = registry.add_subparsers(dest="registry_command", required=True)
    load = rsub.add_parser("load", help="record the differences between a registry file and the registry")
    load.add_argument(
        "file",
        nargs="?",
        type=Path,
        default=None,
        help="TOML registry file (default: the fictional demo district of SMD_REGION, 990101 or 990202)",
    )
    load.set_defaults(func=_guarded(_registry_load))
    show = rsub.add_parser("show", help="print org units and agencies as recorded")
    show.add_argument("--on", type=date.fromisoformat, default=None, help="date (default: today)")
    show.set_defaults(func=_guarded(_registry_show))

    keys = subparsers.add_parser("keys", help="API keys of agencies")
    ksub = keys.add_subparsers(dest="keys_command", required=True)
    issue = ksub.add_parser("issue", help="issue a key for an agency (printed once)")
    issue.add_argument("agency")
    issue.set_defaults(func=_guarded(_keys_issue))
    listing = ksub.add_parser("list", help="list keys (never the keys themselves)")
    listing.add_argument("agency", nargs="?", default=None)
    listing.set_defaults(func=_guarded(_keys_list))
    revoke = ksub.add_parser("revoke", help="revoke a key, effective at once")
    revoke.add_argument("key_id")
    revoke.set_defaults(func=_guarded(_keys_revoke))
