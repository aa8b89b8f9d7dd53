"""`smd followers parked|retry` and `smd projections status|rebuild`: the followers of the log.

- ``smd followers parked``: every parked, held or stopping event (follower, position, status,
  topic, the ids it concerns, the error's type and place, trace id);
- ``smd followers retry [--follower NAME] [--patient ID]``: handle parked events and the ones
  held behind them, in log order, once the cause is fixed;
- ``smd projections status``: each follower's position, the log head, lag, parked and held counts;
- ``smd projections rebuild NAME``: build a read model's next generation beside the live one and
  switch when it has caught up, while the service keeps answering.
"""

from __future__ import annotations

import argparse
import asyncio
import json
from typing import Any


def _services() -> Any:
    from ops.bootstrap import bootstrap
    from ops.settings import load_settings

    return bootstrap(load_settings())


def _parked(args: argparse.Namespace) -> int:
    services = _services()
    try:
        rows = services.parking.rows(args.follower)
    finally:
        services.close()
    if args.json:
        print(
            json.dumps(
                [
                    {
                        "follower": r.follower,
                        "position": r.position,
                        "status": r.status,
                        "topic": r.topic,
                        "concerns": list(r.keys),
                        "reason": r.reason,
                        "trace_id": r.trace_id,
                        "at": r.at.isoformat(),
                    }
                    for r in rows
                ],
                indent=2,
            )
        )
        return 0
    if not rows:
        print("nothing parked, held or stopped")
        return 0
    print(f"{'follower':<22} {'position':>9} {'status':<8} {'topic':<30} {'trace id':<16} reason / concerns")
    for r in rows:
        print(f"{r.follower:<22} {r.position:>9} {r.status:<8} {r.topic:<30} {r.trace_id or '-':<16} {r.reason}")
        if r.keys:
            print(f"{'':<22} {'':>9} {'':<8} concerns {', '.join(r.keys)}")
    return 0


def _nats_publisher(services: Any) -> Any:
    """A synchronous publish for the outbox's retry: connect, publish, wait for acks, close."""
    from integrations.outbox import PUBLISH_TIMEOUT, Outgoing
    from integrations.runner import connect_nats
    from integrations.streams import names_of

    names = names_of(services.settings)

    def publish(out: list[Outgoing]) -> None:
        async def go() -> None:
            nc = await connect_nats(services.settings.nats_url, "smd-followers-retry")
            try:
                js = nc.jetstream()
                for o in out:
                    await js.publish(
                        o.subject,
                        o.payload,
                        headers={"Nats-Msg-Id": o.msg_id},
                        stream=names.out_stream,
                        timeout=PUBLISH_TIMEOUT,
                    )
            finally:
                await nc.close()

        asyncio.run(go())

    return publish


def _retry(args: argparse.Namespace) -> int:
    services = _services()
    keys = {args.patient} if args.patient else None
    failed = 0
    try:
        for follower in services.log_followers():
            if args.follower and follower.name != args.follower:
                continue
            handler = getattr(follower, "handler", None)
            if hasattr(handler, "sync_publish"):  # the outbox
                if not any(r.status != "stopped" for r in services.parking.rows(follower.name)):
                    continue
                if not services.settings.nats_url:
                    print(f"{follower.name}: parked events need NATS to be published; set SMD_NATS_URL")
                    failed += 1
                    continue
                handler.sync_publish = _nats_publisher(services)
                handler.access_log = services.access_log  # each message recorded before it leaves
            report = follower.retry(keys)
            if report.handled or report.still_parked:
                print(
                    f"{follower.name}: {len(report.handled)} handled"
                    + (f" ({', '.join(map(str, report.handled))})" if report.handled else "")
                    + f", {len(report.still_parked)} still parked or held"
                    + (f" ({', '.join(map(str, report.still_parked))})" if report.still_parked else "")
                )
            failed += bool(report.still_parked)
        for status in services.follower_status():
            if status.stopped_at is not None:
                why = status.stopped_reason
                print(f"{status.name}: stopped at {status.stopped_at} ({why}); it tries that fact again by itself")
    finally:
        services.close()
    return 1 if failed else 0


def _status(args: argparse.Namespace) -> int:
    services = _services()
    try:
        statuses = services.follower_status()
        head = services.case_record.recorder.max_notification_id() or 0
    finally:
        services.close()
    if args.json:
        print(
            json.dumps(
                {
                    "head": head,
                    "followers": [
                        {
                            "name": s.name,
                            "state": s.state,
                            "position": s.position,
                            "lag_events": s.lag_events,
                            "lag_seconds": s.lag_seconds,
                            "parked": s.parked,
                            "held": s.held,
                            "stopped_at": s.stopped_at,
                            "stopped_reason": s.stopped_reason,
                        }
                        for s in statuses
                    ],
                },
                indent=2,
            )
        )
        return 0
    print(f"log head: {head}")
    print(f"{'follower':<22} {'state':<8} {'position':>9} {'lag':>7} {'lag (s)':>9} {'parked':>7} {'held':>6}")
    for s in statuses:
        print(
            f"{s.name:<22} {s.state:<8} {s.position:>9} {s.lag_events:>7} {s.lag_seconds:>9.1f}"
            f" {s.parked:>7} {s.held:>6}"
        )
        if s.stopped_at is not None:
            print(f"{'':<22} stopped at {s.stopped_at}: {s.stopped_reason}")
    return 0


def _rebuild(args: argparse.Namespace) -> int:
    from projections.catalogue import catalogue
    from projections.runner import RebuildStopped, rebuild

    projections = catalogue()
    if args.name not in projections:
        print(f"smd: no read model {args.name!r}; known: {', '.join(sorted(projections))}")
        return 2
    services = _services()
    last = [0.0]

    def progress(position: int, head: int) -> None:
        import time

        if time.monotonic() - last[0] > 2:
            last[0] = time.monotonic()
            print(f"  {position}/{head}", flush=True)

    try:
        projection = projections[args.name]
        report = rebuild(services.case_record, services.views, projection, services.parking, progress=progress)
    except RebuildStopped as e:
        print(f"smd: {e}")
        return 1
    finally:
        services.close()
    old = f"generation {report.old.generation}" if report.old else "nothing"
    print(
        f"{report.name}: generation {report.new.generation} (version {report.new.version}) built to position "
        f"{report.position} in {report.seconds} s and now live; {old} dropped"
    )
    return 0


def add_commands(sub: argparse._SubParsersAction) -> None:
    """Add `smd followers ...` and `smd projections ...`."""
    followers = sub.add_parser("followers", help="parked and held events of the log's followers")
    fsub = followers.add_subparsers(dest="followers_command", required=True)
    parked = fsub.add_parser("parked", help="list parked, held and stopping events")
    parked.add_argument("--follower", help="only this follower (e.g. policies, outbox, work_queue_v4_g1)")
    parked.add_argument("--json", action="store_true", help="JSON instead of a table")
    parked.set_defaults(func=_parked)
    retry = fsub.add_parser("retry", help="handle parked events and those held behind them, in log order")
    retry.add_argument("--follower", help="only this follower")
    retry.add_argument("--patient", help="only the events concerning this patient (or suspected case) id")
    retry.set_defaults(func=_retry)

    projections = sub.add_parser("projections", help="read models: status and rebuild")
    psub = projections.add_subparsers(dest="projections_command", required=True)
    status = psub.add_parser("status", help="each follower's position, lag, parked and held counts")
    status.add_argument("--json", action="store_true", help="JSON instead of a table")
    status.set_defaults(func=_status)
    rebuild = psub.add_parser("rebuild", help="rebuild a read model beside the live one, then switch")
    rebuild.add_argument("name", help="the read model (work_queue)")
    rebuild.set_defaults(func=_rebuild)
