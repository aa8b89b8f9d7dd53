"""Personal fields never reach storage or logs in plaintext; other fields stay readable."""

from __future__ import annotations

import io
import logging
import re
import subprocess
from datetime import timedelta
from pathlib import Path
from uuid import uuid4

from ops.logging import configure_logging
from tests.support.stores import NOW, Agency

# ASCII markers, one per personal field; a non-personal field carries the positive control.
# The ID number must pass the GB 11643 checks: a fictional one (county code 9901 exists nowhere).
MARKERS = {"name": "MKNAMEqz81", "id_number": "37990119710517551X", "phone": "MKPHONE772", "address": "MKADDRx9k3"}
CONTROL = "mkcontrol42"  # the residence org unit id: not personal, must stay readable


def stored_bytes(settings) -> bytes:
    """Every byte the store holds: SQLite files (with -wal), or a pg_dump of the database."""
    if settings.postgres is None:
        files = sorted(Path(settings.data_dir).glob("*.sqlite*"))
        assert any(f.name.endswith("-wal") for f in files), f"expected WAL files among {files}"
        return b"".join(f.read_bytes() for f in files)
    pg = settings.postgres
    dump = subprocess.run(
        ["pg_dump", "-h", pg.host, "-p", str(pg.port), "-U", pg.user or "postgres", pg.dbname],
        check=True,
        capture_output=True,
    ).stdout
    # bytea columns are dumped as hex (\\x7b22...): decode them so the search sees their bytes
    decoded = b"".join(bytes.fromhex(h.decode()) for h in re.findall(rb"\\\\x((?:[0-9a-f]{2})+)", dump))
    assert decoded, "the dump holds bytea rows"
    return dump + decoded


class TestNoPlaintext:
    def test_personal_markers_are_found_nowhere_and_the_control_marker_is_found(self, open_store, settings) -> None:
        log_buffer = io.StringIO()
        configure_logging("json", stream=log_buffer)  # our lines and the stdlib's
        try:
            services, patient = open_store(snapshot_every=1), uuid4()  # a snapshot after every event
            record = services.case_record
            agency = Agency("hc-east")
            record.record(
                agency.register(
                    patient,
                    residence=CONTROL,
                    **{k: v for k, v in MARKERS.items() if k != "name"},
                    name=MARKERS["name"],
                ),
                "hc-east",
            )
            for day in range(1, 4):
                record.record(agency.visit(patient, 3, "unstable", occurred=NOW - timedelta(days=day)), "hc-east")
            assert record.patient(patient).personal.name == MARKERS["name"]  # readable through the service
            assert list(record.snapshots.get(patient)), "snapshots were taken"
            logging.getLogger("smd.test").info("story done")

            haystacks = {"store": stored_bytes(settings), "logs": log_buffer.getvalue().encode()}
        finally:
            configure_logging("json")  # back to stderr

        for where, data in haystacks.items():
            for field, marker in MARKERS.items():
                assert marker.encode() not in data, f"{field} found in plaintext in {where}"
        assert CONTROL.encode() in haystacks["store"], "the positive control is found by the same search"
        assert b"story done" in haystacks["logs"], "the log capture worked"
