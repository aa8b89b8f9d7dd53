"""Erasure notices over the NATS link (decision 049), with Debian's nats-server 2.9.10: region A on
SQLite behind the hub, B on PostgreSQL behind the leaf (tests/support/crossregion.py). A patient's
handover is rejected by B; A erases the patient; the notice and B's answer cross the link; each
side's `smd erasure run` deletes the handover's messages from its cross-region streams. Then no
message in either server's store directory opens, with either region's sealing key, to one of the
patient's values, and no message of the handover is left; before, the same scan finds the values
in both (the positive control)."""

from __future__ import annotations

import re
import time
from pathlib import Path
from types import SimpleNamespace
from uuid import UUID

import pytest

from core.erasure import erase_due
from core.handover_messages import Refused, verify
from core.region_keys import CrossRegionKeys
from integrations.crossregion.erasure import delete_erased_messages
from ops.cli_restriction import _crossregion
from tests.integration.test_crossregion_cases import exchange, settled
from tests.integration.test_crossregion_erasure import erased_in_a, registered_in_error, scan
from tests.integration.test_handovers import HC, ID_NUMBER, SECRET_NAME, A, B, move_to_b
from tests.support.crossregion import ROOT, Side, run, two_regions

pytestmark = pytest.mark.integration

__all__ = ["two_regions"]  # the fixture

PHONE = "13900000017"
WIRE = re.compile(rb'\{"v":1,"handover_id":"[0-9a-f-]{36}".*?"signature":"[^"]+"\}')


def messages_in(store: Path, keys: list[CrossRegionKeys]) -> list[tuple[UUID, set[str]]]:
    """Every cross-region message found in a server's store files: its handover id, and the
    patient's values its sealed part opens to with whichever region's key it was sealed to."""
    found = []
    for path in store.rglob("*"):
        if not path.is_file():
            continue
        for wire in WIRE.findall(path.read_bytes()):
            for k in keys:
                try:
                    verified = verify(k, wire)
                except Refused:
                    continue
                text = repr(verified.personal)
                found.append((verified.message.handover_id, {v for v in (SECRET_NAME, ID_NUMBER, PHONE) if v in text}))
    return found


def opened(side: Side, keys: list[CrossRegionKeys], timeout: float = 10.0, want: bool = True) -> set[str]:
    """The values the side's store opens to (waiting for the server to write them out)."""
    deadline = time.monotonic() + timeout
    while True:
        values = set().union(*(v for _, v in messages_in(side.server.base / "store", keys)))
        if bool(values) == want or time.monotonic() > deadline:
            return values
        time.sleep(0.2)


def test_an_erasure_in_a_leaves_none_of_the_patients_values_in_either_nats_store_or_bs_tables(
    two_regions, capsys
) -> None:
    a, b = two_regions
    keys = [a.region.keys, b.region.keys]

    async def story() -> tuple[UUID, UUID]:
        await a.connect(), await b.connect()
        patient, hid = move_to_b(a.region, id_number=ID_NUMBER)
        await exchange(a, b, to_b=1, to_a=0)
        b.region.handovers.answer(hid, accepted=False, by_agency=HC)
        await exchange(a, b, to_b=0, to_a=1)
        registered_in_error(a.region, patient)

        # the positive control: both stores hold the request, B's key opens it
        assert opened(a, keys) == opened(b, keys) == {SECRET_NAME, ID_NUMBER, PHONE}
        assert scan(b.region, patient)[1] == {SECRET_NAME, ID_NUMBER, PHONE}

        [done] = erased_in_a(a.region, patient)
        assert done.notified == (B,)
        await exchange(a, b, to_b=1, to_a=0)  # the notice
        await exchange(a, b, to_b=0, to_a=1)  # B's answer
        await settled(a, b)
        [erased] = erase_due(b.region.services.case_record, handovers=b.region.handovers)  # B's run
        assert erased.key_destroyed

        assert a.nc is not None and a.link is not None
        deleted = await delete_erased_messages(a.nc.jetstream(), a.link.names, a.region.handovers.erased_messages())
        assert sorted(len(s) for s in deleted.values()) == [1, 1]  # its request out, B's rejection in
        await a.disconnect(), await b.disconnect()
        return patient, hid

    patient, hid = run(story())
    capsys.readouterr()  # the story's log lines
    # B's side as `smd erasure run` does it (its own connection, the settings' names)
    settings = SimpleNamespace(crossregion_peers=[A], crossregion_nats_url=b.url, subject_root=ROOT, region=B)
    _crossregion(SimpleNamespace(handovers=b.region.handovers, settings=settings))
    assert [line for line in capsys.readouterr().out.splitlines() if line.startswith(ROOT.upper())] == [
        f"{ROOT.upper()}_XR_OUT_{B}: 1 message(s) about erased patients deleted",
        f"{ROOT.upper()}_XR_IN_{A}: 1 message(s) about erased patients deleted",
    ]
    a.server.stop(), b.server.stop()  # everything written out
    for side in (a, b):
        left = messages_in(side.server.base / "store", keys)
        assert left and all(h != hid for h, _ in left)  # only the notice and its answer
        assert set().union(*(v for _, v in left)) == set()
    assert scan(b.region, patient) == (set(), set())
