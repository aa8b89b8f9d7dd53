"""The pieces that make a read cheaper keep what they replaced: the same stored text, the same
rows, every row of the access log written even when its waiter gave up."""

from __future__ import annotations

import json
import threading
from concurrent.futures import Future
from uuid import uuid4

from hypothesis import given
from hypothesis import strategies as st

from core.access_log import _ids_text
from core.intake import GroupCommit
from projections.work_queue import ROWS, QueueRow


@given(st.lists(st.uuids(), max_size=120))
def test_the_patient_ids_are_stored_as_json_dumps_wrote_them(ids) -> None:
    assert _ids_text(tuple(ids)) == json.dumps([str(p) for p in ids])


def test_a_queue_row_takes_the_views_columns_in_their_order() -> None:
    # a page builds each row positionally from the driver's tuple (QueueRow(*values))
    assert list(QueueRow.__struct_fields__) == [c.name for c in ROWS.columns]


def test_a_cancelled_waiter_of_a_group_commit_has_its_row_written_and_the_others_are_told() -> None:
    written: list[list[str]] = []
    entered, gate = threading.Event(), threading.Event()

    def record(batch: list[str]) -> list[str]:
        entered.set()
        gate.wait(5)
        written.append(list(batch))
        return [f"ok {m}" for m in batch]

    group = GroupCommit(record, max_batch=10)  # type: ignore[arg-type]
    try:
        first = group.submit("a")
        assert entered.wait(5)  # the writer took it alone and waits at the gate
        second: Future[str] = group.submit("b")  # type: ignore[assignment]
        third: Future[str] = group.submit("c")  # type: ignore[assignment]
        assert second.cancel()  # its request went away before the writer took it
        gate.set()
        assert first.result(5) == "ok a"
        assert third.result(5) == "ok c"
        assert second.cancelled()
    finally:
        group.close()
    assert [m for batch in written for m in batch] == ["a", "b", "c"]


def test_a_group_commit_still_answers_after_a_cancelled_waiter() -> None:
    group = GroupCommit(lambda batch: [m.upper() for m in batch])  # type: ignore[arg-type, misc]
    try:
        cancelled = group.submit(uuid4().hex)
        cancelled.cancel()
        assert group.submit("x").result(5) == "X"
    finally:
        group.close()
