"""`smd search index-names`: make patients recorded before name search existed findable by name."""

from __future__ import annotations

import argparse
from typing import Any

from ops.settings import load_settings


def _index_names(args: argparse.Namespace) -> int:
    from core.case_record import utc_now
    from core.identity import index_names
    from ops.bootstrap import bootstrap

    services = bootstrap(load_settings())
    try:
        written = index_names(services.case_record, utc_now())
    finally:
        services.close()
    print(f"index-names: {written} name marker(s) written; every identified patient is findable by name and birth date")
    return 0


def add_commands(subparsers: Any) -> None:
    """Register `smd search ...`."""
    search = subparsers.add_parser("search", help="the keyed indexes that searches go through")
    ssub = search.add_subparsers(dest="search_command", required=True)
    index = ssub.add_parser(
        "index-names",
        help="put every patient with a name and a birth date under its name-and-birth-date marker (safe to rerun)",
    )
    index.set_defaults(func=_index_names)
