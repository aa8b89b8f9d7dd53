"""`smd calendar …` and `smd rules …`: load and show working-day calendars and rule settings.

``add_commands(subparsers)`` adds them to the `smd` parser. Both record into the global log only
what differs from what is recorded (a second load of the same file records nothing).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import date
from pathlib import Path
from typing import Any

from core.calendar_view import CalendarView, CalendarWriteConflict, load_year_file, open_calendar
from core.registry import region_today
from core.rule_settings_view import RuleSettingsView, RuleSettingsWriteConflict, load_file, open_rule_settings
from domain.errors import DomainError
from domain.rule_settings import encode
from ops.data_files import RULE_SETTINGS_FILE, shipped_years, year_file
from ops.settings import load_settings


@contextmanager
def _services() -> Iterator[Any]:
    from ops.bootstrap import bootstrap

    services = bootstrap(load_settings())
    try:
        yield services
    finally:
        services.close()


def _calendar(services: Any) -> CalendarView:
    return getattr(services, "calendar", None) or open_calendar(services.case_record)


def _rules(services: Any) -> RuleSettingsView:
    found = getattr(services, "rule_settings", None)
    return found or open_rule_settings(services.case_record, services.settings.region)


# -- calendar ---------------------------------------------------------------------------------


def _calendar_load(args: argparse.Namespace) -> int:
    if args.file is not None and args.year is not None:
        print("smd: give a FILE or --year, not both", file=sys.stderr)
        return 2
    files = [args.file] if args.file else [year_file(args.year)] if args.year else list(map(year_file, shipped_years()))
    if args.year and not files[0].exists():
        shipped = ", ".join(map(str, shipped_years()))
        print(
            f"smd: no shipped calendar for {args.year} (shipped: {shipped}); write ops/calendars/{args.year}.toml "
            "from the State Council's notice (ops/calendars/generate.py shows the shape) and load that file",
            file=sys.stderr,
        )
        return 1
    with _services() as services:
        for path in files:
            year, recorded = load_year_file(services.case_record, path)
            what = "recorded" if recorded else "no change: already recorded exactly so"
            print(
                f"{year.year}: {what} ({len(year.holidays)} holiday days, "
                f"{len(year.make_up_days)} make-up working days) from {path}"
            )
    return 0


def _calendar_show(args: argparse.Namespace) -> int:
    with _services() as services:
        view = _calendar(services)
        calendar = view.calendar()
        data = calendar.year(args.year)
        print(f"Working-day calendar {view.calendar_name} {args.year} (log position {view.position})")
        if data is None:
            print(
                f"  not loaded: deadlines in {args.year} count Monday to Friday without holidays, "
                f"with a warning; load it with `smd calendar load --year {args.year}`"
            )
            return 0
        print(f"  source: {data.source or '(not given)'}")
        print("  holidays (days off):")
        for h in data.holidays:
            print(f"    {h.on.isoformat()} {h.on:%a}  {h.name}")
        print("  make-up working days (调休上班):")
        for d in data.make_up_days:
            print(f"    {d.isoformat()} {d:%a}")
    return 0


def _calendar_deadline(args: argparse.Namespace) -> int:
    with _services() as services:
        deadline = _calendar(services).add_working_days(args.start, args.days)
    print(f"{args.days} working days after {args.start.isoformat()}: {deadline.day.isoformat()} {deadline.day:%a}")
    for w in deadline.warnings:
        print(f"warning: {w.message}", file=sys.stderr)
    return 0


# -- rules ------------------------------------------------------------------------------------


def _rules_load(args: argparse.Namespace) -> int:
    with _services() as services:
        count = load_file(services.case_record, args.file, region=services.settings.region)
    print(
        f"{count} change(s) recorded from {args.file}"
        if count
        else f"no changes: the rule settings already match {args.file}"
    )
    return 0


def _rules_show(args: argparse.Namespace) -> int:
    with _services() as services:
        view = _rules(services)
        on = args.on or region_today()
        state = view.state()
        print(f"Rule settings of region {view.region} on {on.isoformat()} (log position {view.position})")
        for name, (value, since) in state.in_force(on).items():
            shown = state.raw[since][name] if since else encode(name, value)  # as recorded
            held = f"from {since.isoformat()}" if since else "default (nothing recorded)"
            print(f"  {name} = {shown}  {held}")
        later = sorted(d for d in state.values if d > on)
        if later:
            print("  changes after that date: " + ", ".join(d.isoformat() for d in later))
        for note in state.ignored:
            print(f"  warning: {note}")
    return 0


def _guarded(func: Any) -> Any:
    """Print domain errors and write conflicts as one line saying what to fix (exit status 1)."""

    def run(args: argparse.Namespace) -> int:
        try:
            return int(func(args))
        except (DomainError, CalendarWriteConflict, RuleSettingsWriteConflict) as e:
            print(f"smd: {e}", file=sys.stderr)
            return 1

    return run


def add_commands(subparsers: Any) -> None:
    """Add `calendar` and `rules` to the `smd` command line."""
    calendar = subparsers.add_parser("calendar", help="working-day calendars: holidays and make-up days")
    csub = calendar.add_subparsers(dest="calendar_command", required=True)
    load = csub.add_parser("load", help="record a year's calendar (default: every shipped year) if it changed")
    load.add_argument("file", nargs="?", type=Path, default=None, help="a year file (ops/calendars/<year>.toml)")
    load.add_argument("--year", type=int, default=None, help="the shipped file of this year")
    load.set_defaults(func=_guarded(_calendar_load))
    show = csub.add_parser("show", help="print a year's holidays and make-up days as recorded")
    show.add_argument("year", type=int)
    show.set_defaults(func=_guarded(_calendar_show))
    deadline = csub.add_parser("deadline", help="the day N working days after START (START not counted)")
    deadline.add_argument("start", type=date.fromisoformat)
    deadline.add_argument("days", type=int)
    deadline.set_defaults(func=_guarded(_calendar_deadline))

    rules = subparsers.add_parser("rules", help="rule settings of this region, with effective dates")
    rsub = rules.add_subparsers(dest="rules_command", required=True)
    rload = rsub.add_parser("load", help="record the differences between a settings file and the settings")
    rload.add_argument(
        "file",
        nargs="?",
        type=Path,
        default=RULE_SETTINGS_FILE,
        help="TOML settings file (default: ops/rule_settings.toml, the seeds' values)",
    )
    rload.set_defaults(func=_guarded(_rules_load))
    rshow = rsub.add_parser("show", help="print the settings in force on a date, as recorded")
    rshow.add_argument("--on", type=date.fromisoformat, default=None, help="date (default: today)")
    rshow.set_defaults(func=_guarded(_rules_show))
