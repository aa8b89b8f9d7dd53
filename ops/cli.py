"""The `smd` command line: `serve`, `registry`, `keys`, `master-key`, `ingest`, `outbox`,
`calendar`, `rules`, `import`, `simulate`, `followers`, `projections`, `verify`, `search`, `report`, `bench`."""

from __future__ import annotations

import argparse
import os
import sys

from ops.cli_audit import add_commands as add_audit_commands
from ops.cli_calendar import add_commands as add_calendar_commands
from ops.cli_console import add_commands as add_console_commands
from ops.cli_followers import add_commands as add_follower_commands
from ops.cli_import import add_commands as add_import_commands
from ops.cli_keys import add_commands as add_master_key_commands
from ops.cli_nats import add_commands as add_nats_commands
from ops.cli_registry import add_commands, development_banner
from ops.cli_report import add_commands as add_report_commands
from ops.cli_restriction import add_commands as add_restriction_commands
from ops.cli_search import add_commands as add_search_commands
from ops.cli_simulate import add_commands as add_simulate_commands
from ops.cli_sources import add_commands as add_sources_commands
from ops.settings import SettingsError, load_settings


def _serve(args: argparse.Namespace) -> int:
    from ops.bootstrap import bootstrap
    from ops.logging import configure_logging, get_logger
    from ops.workers import serve

    settings = load_settings()
    configure_logging(settings.log_format)
    log = get_logger("smd.serve")
    services = bootstrap(settings)
    banner = development_banner(services)  # development only: demo district and demo keys
    if banner:
        print(banner, flush=True)
    base = f"http://{settings.host}:{settings.port}"
    print(
        f"Service:  {base}\nAPI docs: {base}/schema\nStore:    {settings.store_kind}"
        f" ({settings.data_dir if settings.store_kind == 'sqlite' else 'PostgreSQL'})",
        flush=True,
    )
    log.info(
        "starting",
        store=settings.store_kind,
        region=settings.region,
        nats=bool(settings.nats_url),
        workers=args.workers,
    )
    if args.workers > 1:
        services.close()  # each worker process opens its own
        serve(settings, workers=args.workers)
    else:
        serve(settings, services=services)
    return 0


def main(argv: list[str] | None = None) -> int:
    """Entry point of the `smd` console script."""
    parser = argparse.ArgumentParser(prog="smd", description="Severe mental disorder coordination backend")
    sub = parser.add_subparsers(dest="command", required=True)
    serve = sub.add_parser("serve", help="run the HTTP API (and, when configured, the NATS workers)")
    serve.add_argument(
        "--workers",
        type=int,
        default=int(os.environ.get("SMD_WORKERS", "1")),
        help="HTTP worker processes on one port (PostgreSQL; the first also runs the followers; SMD_WORKERS, 1)",
    )
    serve.set_defaults(func=_serve)
    add_commands(sub)
    add_master_key_commands(sub)
    add_nats_commands(sub)
    add_calendar_commands(sub)
    add_import_commands(sub)
    add_simulate_commands(sub)
    add_follower_commands(sub)
    add_audit_commands(sub)
    add_search_commands(sub)
    add_sources_commands(sub)
    add_restriction_commands(sub)
    add_report_commands(sub)
    add_console_commands(sub)
    bench = sub.add_parser("bench", help="benchmarks, as ratios to the bare pipeline in the same run", add_help=False)
    bench.set_defaults(func=None)
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["bench"]:  # its own argument parser
        from ops.bench import main as bench_main

        return bench_main(argv[1:])
    args = parser.parse_args(argv)
    try:
        return int(args.func(args))
    except SettingsError as e:
        print(f"smd: configuration error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
