"""The simulated year with moves: the township's region A and a linked region B, in one process.

Each region is a deployment of its own (its own store, keys and registry: B's is the demo
district under B's code), on one simulated clock. A's deliveries are the township's as in
``simulate.run_year``; B's are what ``ops.simulation.moves`` planned there (its health centers'
answers and visits). Every simulated hour, after each region's rules, views and R15 scheduler
have run as in ``run_year``: each region's handover bridge and dual-management feed run, then the
link carries each side's outbox to the other (as the test harness of
``tests/integration/test_handovers.py`` does, and the NATS link in production) — unless the link
is down that day (``moves.LINK_DOWN_DAYS``): what is queued meanwhile goes when it is back. Each
region checks its handovers' deadlines at every local midnight. An answer and a cancellation made
in the same hour cross: the first decisive fact in A's log wins (decision 039).
"""

from __future__ import annotations

import json
import time as wall
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any
from uuid import UUID

from core.handover import Handovers
from core.region_keys import CrossRegionKeys
from domain.errors import DomainError
from ops.data_files import DEMO_DISTRICT, RULE_SETTINGS_FILE
from ops.simulation.generator import CST, Township
from ops.simulation.moves import ANSWER_WITHIN, REGION_B, link_down
from ops.simulation.simulate import (
    SimClock,
    YearReport,
    _act,
    _deliver,
    _import,
    _scheduled,
    _settle_waiting,
    drain,
    prepare,
    scheduler_instants,
)


@dataclass
class Region:
    """One region of the pair: its services, its handovers, what happened to its deliveries."""

    code: str
    services: Any
    handovers: Handovers
    report: YearReport = field(default_factory=YearReport)
    head: int = -1  # the log's last position when its handovers last ran (nothing new: nothing to do)

    def changed(self) -> bool:
        """Whether the log grew since the last call (the handovers' followers and the outbox
        only ever react to new records)."""
        head = self.services.case_record.recorder.max_notification_id() or 0
        grew, self.head = head != self.head, head
        return grew


@dataclass
class LinkReport:
    """What the link carried, and the owners' handover commands."""

    carried: Counter[str] = field(default_factory=Counter)  # "A→B" / "B→A": messages delivered
    outcomes: Counter[str] = field(default_factory=Counter)  # receive()'s answers ("applied", …)
    held_hours: int = 0  # hourly rounds with the link down and something queued
    deadline_escalations: Counter[str] = field(default_factory=Counter)  # region → handovers escalated
    commands: Counter[str] = field(default_factory=Counter)  # "answer accepted", "cancel", …
    commands_refused: list[tuple[str, str]] = field(default_factory=list)  # (command, error): a defect
    owed: set[str] = field(default_factory=set)  # regions whose new records wait for the link


def region_file(path: Path, folder: Path, region: str) -> Path:
    """``path`` (a file of the demo region) rewritten for ``region``: the same fictional district
    under another code (as the handover tests do), written into ``folder``."""
    folder.mkdir(parents=True, exist_ok=True)
    out = folder / f"{path.stem}-{region}.toml"
    out.write_text(path.read_text(encoding="utf-8").replace(DEMO_REGION, region), encoding="utf-8")
    return out


#: The demo district's region code (region A's).
DEMO_REGION = "990101"


def linked_keys(a: str, b: str) -> tuple[CrossRegionKeys, CrossRegionKeys]:
    """Keys of this run for two regions, each linked to the other (public halves only)."""
    ka, kb = CrossRegionKeys.generate(a), CrossRegionKeys.generate(b)
    ka.link(kb.as_peer())
    kb.link(ka.as_peer())
    return ka, kb


def pair(a_services: Any, b_services: Any, clock: SimClock) -> tuple[Region, Region]:
    """Regions A and B over their services, linked."""
    ka, kb = linked_keys(a_services.settings.region, b_services.settings.region)
    a = Region("A", a_services, Handovers(a_services.case_record, ka, a_services.registry, ANSWER_WITHIN, clock))
    b = Region("B", b_services, Handovers(b_services.case_record, kb, b_services.registry, ANSWER_WITHIN, clock))
    return a, b


def run_two_regions(
    a: Region,
    b: Region,
    township: Township,
    clock: SimClock,
    folder: Path,
    *,
    every: timedelta = timedelta(hours=1),
    progress: Callable[[str], None] | None = None,
) -> LinkReport:
    """Deliver both regions' messages at their instants; each hour run both regions' scheduler,
    their handovers and the link."""
    assert township.moves is not None, "generate(..., movers=N) makes the moves"
    link = LinkReport()
    prepare(a.services, clock, township)
    prepare(
        b.services,
        clock,
        township,
        district=region_file(DEMO_DISTRICT, folder, REGION_B),
        rule_settings=region_file(RULE_SETTINGS_FILE, folder, REGION_B),
    )
    events = sorted(
        [(d.at, 0, i, a, d) for i, d in enumerate(township.deliveries)]
        + [(d.at, 1, i, b, d) for i, d in enumerate(township.moves.in_b)],
        key=lambda e: (e[0], e[1], e[2]),
    )
    instants = iter(scheduler_instants(township, every))
    next_run = next(instants, None)
    ledgers = [d for d in township.deliveries if d.kind == "ledger"]
    month = None
    for at, _, _, region, delivery in events:
        while next_run is not None and next_run < at:
            _hour(a, b, clock, next_run, township, link)
            next_run = next(instants, None)
        if delivery.kind == "ledger":
            if ledgers:
                clock.now = delivery.at
                _import(region.services, ledgers, region.report)
                ledgers = []
            continue
        if progress and at.astimezone(CST).month != month:
            month = at.astimezone(CST).month
            progress(
                f"{at.astimezone(CST):%Y-%m}: A {a.report.recorded.total()}, B {b.report.recorded.total()} recorded"
            )
        clock.now = at
        started = wall.perf_counter()
        if delivery.kind == "act":
            _act(region.services, clock, delivery, region.report)
        elif delivery.kind in ("answer", "cancel"):
            _command(region, delivery, link)
        else:
            _deliver(region.services, delivery, region.report)
        region.report.seconds["intake"] += wall.perf_counter() - started
    while next_run is not None:
        _hour(a, b, clock, next_run, township, link)
        next_run = next(instants, None)
    for r in (a, b):
        drain(r.services)
        _settle_waiting(r.services, clock, r.report)
    return link


def _command(region: Region, delivery: Any, link: LinkReport) -> None:
    """An owner's handover command: B's health center answers, A's cancels (no envelope)."""
    doc = json.loads(delivery.raw)
    hid = UUID(doc["handover"])
    what = f"answer {'accepted' if doc.get('accepted') else 'rejected'}" if delivery.kind == "answer" else "cancel"
    try:
        if delivery.kind == "answer":
            region.handovers.answer(hid, accepted=bool(doc["accepted"]), by_agency=delivery.agency)
        else:
            region.handovers.cancel(hid, by_agency=delivery.agency, reason=doc["reason"])
    except DomainError as e:
        link.commands_refused.append((what, getattr(e, "code", type(e).__name__)))
        return
    link.commands[what] += 1


def _hour(a: Region, b: Region, clock: SimClock, instant: datetime, township: Township, link: LinkReport) -> None:
    for r in (a, b):
        _scheduled(r.services, clock, instant, r.report)
    started = wall.perf_counter()
    new = {r.code for r in (a, b) if r.changed()} | link.owed
    for r in (a, b):
        while r.code in new and (r.handovers.follow_moves() or r.handovers.follow_feed()):
            pass
    link.owed = set()
    if link_down(instant, township.start):
        link.owed = new  # carried once the link is back
        queued = a.handovers.outbox(b.handovers.region, b.handovers.applied_from(a.handovers.region))
        queued += b.handovers.outbox(a.handovers.region, a.handovers.applied_from(b.handovers.region))
        link.held_hours += bool(queued)
    else:
        for _ in range(2 if new else 0):  # a message applied may queue another (an acceptance → the feed)
            _carry(a, b, link)
            _carry(b, a, link)
    if instant.astimezone(CST).hour == 0:  # each side escalates by its own clock, once a day here
        for r in (a, b):
            link.deadline_escalations[r.code] += len(r.handovers.check_deadlines())
    a.report.seconds["handovers"] += wall.perf_counter() - started


def _carry(sender: Region, receiver: Region, link: LinkReport) -> None:
    after = receiver.handovers.applied_from(sender.handovers.region)
    for wire in sender.handovers.outbox(receiver.handovers.region, after):
        link.carried[f"{sender.code}→{receiver.code}"] += 1
        link.outcomes[receiver.handovers.receive(wire)] += 1
