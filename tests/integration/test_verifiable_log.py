"""The verifiable log on both stores: every stored row becomes a leaf, in log order, with its
own dense counter; proofs come from the stored subtrees; verify names the first row a rogue
administrator altered, deleted, inserted or reordered with SQL."""

from __future__ import annotations

import contextlib
import itertools
from uuid import uuid4

import pytest

from core.audit import merkle
from core.audit.leaves import leaf_of
from core.audit.merkle import Hasher, ListSource
from ops.bootstrap import Services
from tests.support.stores import Agency

H = Hasher("sha256")


def record_patients(services: Services, patients: int = 3, visits: int = 2) -> list:
    """A few patients with visits (receipts, registrations, visits: several streams)."""
    agency = Agency("hc-east")
    ids = []
    for _ in range(patients):
        p = uuid4()
        ids.append(p)
        services.case_record.record(agency.register(p), "hc-east")
        for level in range(visits):
            services.case_record.record(
                agency.visit(p, level, "stable" if level == 0 else "basically_stable"), "hc-east"
            )
    return ids


def follow(services: Services) -> None:
    while services.chain.run_once():
        pass


def stored_rows(services: Services) -> list:
    return list(services.case_record.recorder.select_notifications(1, 1_000_000))


class TestTheChainFollower:
    def test_every_stored_row_becomes_a_leaf_in_log_order_with_a_dense_counter(self, services: Services) -> None:
        record_patients(services)
        follow(services)
        rows = stored_rows(services)
        leaves = services.chain_store.leaves()
        assert [lf.leaf_index for lf in leaves] == list(range(len(rows)))
        assert [lf.notification_id for lf in leaves] == [r.id for r in rows]
        assert [lf.leaf_hash for lf in leaves] == [leaf_of(H, r) for r in rows]
        state = services.chain_store.tree("sha256")
        assert (state.size, state.position, state.algorithm) == (len(rows), rows[-1].id, "sha256")

    def test_the_stored_subtrees_give_the_root_and_proofs_of_the_rows(self, services: Services) -> None:
        record_patients(services, patients=4)
        follow(services)
        rows = stored_rows(services)
        memory = ListSource(H, [leaf_of(H, r) for r in rows])
        from core.audit.proofs import TreeReader

        reader = TreeReader(services.chain_store)
        for size in (1, 2, 5, len(rows)):
            assert reader.root(size) == merkle.root(memory, H, size)
        proof = reader.inclusion(3, len(rows))
        merkle.verify_inclusion(H, 3, len(rows), leaf_of(H, rows[3]), proof, reader.root(len(rows)))
        proof = reader.consistency(5, len(rows))
        merkle.verify_consistency(H, 5, len(rows), reader.root(5), reader.root(len(rows)), proof)

    def test_each_stream_has_its_own_hash_chain(self, services: Services) -> None:
        patient = record_patients(services, patients=2, visits=3)[0]
        follow(services)
        leaves = services.chain_store.leaves_of(str(patient))
        assert [lf.originator_version for lf in leaves] == [1, 2, 3, 4]
        head = b"\x00" * 32
        for lf in leaves:
            head = H.chain(head, lf.leaf_hash)
            assert lf.stream_hash == head

    def test_a_follower_restarted_in_the_middle_appends_the_rest_to_the_same_tree(self, open_store) -> None:
        first = open_store()
        record_patients(first, patients=2)
        first.chain.run_once(limit=3)
        second = open_store()
        record_patients(second, patients=2)
        follow(second)
        rows = stored_rows(second)
        from core.audit.proofs import TreeReader

        assert TreeReader(second.chain_store).root(len(rows)) == merkle.root(
            ListSource(H, [leaf_of(H, r) for r in rows]), H, len(rows)
        )
        assert second.chain.status().state == "ok"

    def test_a_row_the_chain_cannot_append_stops_it_there_and_nothing_is_skipped(self, services: Services) -> None:
        record_patients(services, patients=2)
        rows = stored_rows(services)
        bad = rows[4].id
        original = services.chain.handler.apply

        def failing(work, n):
            if n.id == bad:
                raise ValueError("cannot append")
            original(work, n)

        services.chain.handler.apply = failing
        follow(services)
        status = services.chain.status()
        assert status.state == "stopped" and status.stopped_at == bad
        assert services.chain_store.tree("sha256").size == 4  # the rows before it, nothing after
        services.chain.handler.apply = original
        follow(services)
        assert services.chain.status().state == "ok"
        assert services.chain_store.tree("sha256").size == len(rows)


class TestTheChainInSeveralBatches:
    def test_small_batches_keep_the_streams_heads_in_memory_and_build_the_same_tree(self, services: Services) -> None:
        record_patients(services, patients=3, visits=3)
        services.chain.batch = 3  # every stream's chain crosses batches
        follow(services)
        rows = stored_rows(services)
        leaves = services.chain_store.leaves()
        assert [lf.leaf_hash for lf in leaves] == [leaf_of(H, r) for r in rows]
        heads: dict[str, bytes] = {}
        for lf in leaves:
            heads[lf.originator_id] = H.chain(heads.get(lf.originator_id, b"\x00" * 32), lf.leaf_hash)
            assert lf.stream_hash == heads[lf.originator_id]
        assert services.chain_store.stream_heads(heads) == {
            oid: (max(lf.originator_version for lf in leaves if lf.originator_id == oid), h) for oid, h in heads.items()
        }
        report = verified(services)
        assert report.ok, report.findings

    def test_a_tree_another_writer_moved_is_read_again_not_remembered(self, open_store) -> None:
        first = open_store()
        record_patients(first, patients=2, visits=2)
        first.chain.batch = 3
        first.chain.run_once()  # the first three rows; their streams' heads kept in memory
        second = open_store()
        follow(second)  # another process appends the rest: the heads in the first are stale
        record_patients(second, patients=1, visits=2)
        follow(first)
        rows = stored_rows(first)
        assert [lf.leaf_hash for lf in first.chain_store.leaves()] == [leaf_of(H, r) for r in rows]
        report = verified(first)
        assert report.ok, report.findings


class TestTheChainWritesBehind:
    """On PostgreSQL the chain hands a batch's write to a writer of its own and decides the next
    batch meanwhile; on SQLite it writes in place. Both must give the same tree, say they caught
    up only once everything is written, and decide again from the store after a failed write."""

    def test_caught_up_means_every_batch_handed_over_is_written(self, services: Services) -> None:
        record_patients(services, patients=3, visits=3)
        services.chain.batch = 2
        moved = services.chain.run_once()
        assert moved == 2
        follow(services)  # the last run_once returns 0 only after the writer finished
        rows = stored_rows(services)
        state = services.chain_store.tree("sha256")
        assert (state.size, state.position) == (len(rows), rows[-1].id)
        assert services.chain.position == rows[-1].id
        assert verified(services).ok

    def test_a_write_lost_to_another_writer_is_decided_again_from_the_store(self, services: Services) -> None:
        from eventsourcing.persistence import IntegrityError

        record_patients(services, patients=3, visits=2)
        services.chain.batch = 3
        store = services.chain_store
        # the first write fails as a second writer's commit would make it
        with failing_write(store, 1, IntegrityError("the tree moved meanwhile")) as calls:
            for _ in range(20):
                follow(services)
                if services.chain.position == stored_rows(services)[-1].id:
                    break
        assert calls[0] == 0 and calls.count(0) == 2  # the first batch's write failed once, then again from 0
        rows = stored_rows(services)
        assert [lf.leaf_hash for lf in store.leaves()] == [leaf_of(H, r) for r in rows]
        assert [lf.leaf_index for lf in store.leaves()] == list(range(len(rows)))
        assert verified(services).ok

    def test_a_write_the_database_refused_stops_nothing_and_nothing_is_skipped(self, services: Services) -> None:
        import psycopg

        record_patients(services, patients=2, visits=3)
        services.chain.batch = 2
        store = services.chain_store
        with failing_write(store, 2, psycopg.OperationalError("the server closed the connection")):
            with pytest.raises(psycopg.OperationalError):
                follow(services)  # as the service's loop sees it: logged, tried again later
        follow(services)
        rows = stored_rows(services)
        assert [lf.notification_id for lf in store.leaves()] == [r.id for r in rows]
        assert verified(services).ok

    def test_closing_writes_the_batch_handed_over(self, open_store) -> None:
        first = open_store()
        record_patients(first, patients=2, visits=2)
        first.chain.batch = 4
        assert first.chain.run_once() == 4  # handed to the writer (PostgreSQL) or written (SQLite)
        first.close()
        second = open_store()
        assert second.chain_store.tree("sha256").size == 4
        follow(second)
        assert verified(second).ok


class TestTheAuditorsReplay:
    def test_it_replays_the_patient_as_the_repository_does_each_row_checked(self, services: Services) -> None:
        from core.audit.replay import replay_verified

        patient = record_patients(services, patients=2, visits=3)[1]
        follow(services)
        replayed = replay_verified(services.case_record, services.chain_store, patient)
        loaded = services.case_record.repository.get(patient)
        assert replayed.version == loaded.version and vars(replayed) == vars(loaded)

    def test_a_payload_altered_after_it_was_chained_is_refused(self, chained) -> None:
        from core.audit.replay import NotVerified, replay_verified

        services, rogue, rows = chained
        victim = rows[3]
        rogue.update_state(victim.id, rogue.state_of(victim.id).replace(b"}", b" }", 1))
        with pytest.raises(NotVerified, match=f"version {victim.originator_version} does not match"):
            replay_verified(services.case_record, services.chain_store, victim.originator_id)

    def test_a_row_not_chained_yet_is_not_replayed_as_verified(self, services: Services) -> None:
        from core.audit.replay import NotVerified, replay_verified

        patient = record_patients(services, patients=1, visits=1)[0]
        with pytest.raises(NotVerified, match="not in the tree"):
            replay_verified(services.case_record, services.chain_store, patient)

    def test_the_mapper_decodes_every_stored_row_as_the_stdlib_parser_would(self, services: Services) -> None:
        mapper = services.case_record.mapper
        record_patients(services, patients=2, visits=2)  # registrations carry sealed personal values
        for row in stored_rows(services):
            slow = mapper._unseal_all(mapper.transcoder.decode(row.state))
            assert mapper._decode(row.state) == slow
        odd = b'{"x":NaN,"when":{"_type_":"date_iso","_data_":"2026-01-02"}}'  # msgspec refuses NaN
        decoded = mapper._decode(odd)
        assert decoded["when"].isoformat() == "2026-01-02" and decoded["x"] != decoded["x"]


def read_some(services: Services, n: int = 4) -> None:
    """Reads recorded in the access log, as the API records them."""
    from datetime import UTC, datetime

    from core.access_log import AccessEntry

    for i in range(n):
        services.access_log.append(
            AccessEntry(
                at=datetime.now(UTC),
                agency_id="hc-east",
                key_id="k1",
                staff_id=f"staff-{i}",
                purpose="care",
                endpoint="GET /v1/patients/{patient_id}",
                status=200,
                patient_ids=(uuid4(),),
                fields=("name",),
                correlation_id=f"c{i}",
            )
        )


def access_log_sql(services: Services, *statements: str) -> None:
    """A rogue administrator on the access log: the append-only triggers dropped or disabled first."""
    import sqlite3
    from contextlib import closing

    if services.settings.postgres is not None:
        import psycopg

        with psycopg.connect(services.settings.postgres.conninfo()) as c:
            c.execute("ALTER TABLE smd_access_log DISABLE TRIGGER USER")
            c.execute("ALTER TABLE smd_access_log_chain DISABLE TRIGGER USER")
            for sql in statements:
                c.execute(sql)
            c.execute("ALTER TABLE smd_access_log ENABLE TRIGGER USER")
            c.execute("ALTER TABLE IF EXISTS smd_access_log_chain ENABLE TRIGGER USER")
        return
    from core.access_log import ACCESS_LOG_FILE

    with closing(sqlite3.connect(services.settings.data_dir / ACCESS_LOG_FILE, isolation_level=None)) as c:
        for trigger in ("no_update", "no_delete", "chain_no_update", "chain_no_delete"):
            c.execute(f"DROP TRIGGER IF EXISTS smd_access_log_{trigger}")
        for sql in statements:
            c.execute(sql)


class TestTheAccessLogChain:
    def test_every_checkpoint_pins_the_access_logs_chain_and_an_untouched_log_verifies(
        self, services: Services
    ) -> None:
        from core.audit.checkpoints import parse_access_log_extension
        from core.audit.notes import Checkpoint, SignedNote

        record_patients(services, patients=1)
        read_some(services)
        follow(services)
        services.checkpointer.sign_now()
        note = services.chain_store.latest_checkpoint().note
        pinned = parse_access_log_extension(Checkpoint.parse(SignedNote.parse(note).body).extensions)
        assert pinned == services.access_log.chain_head() and pinned[0] >= 4
        report = verified(services, access_log=services.access_log)
        assert report.ok, report.findings

    @pytest.mark.parametrize(
        ("attack", "named"),
        [
            ("UPDATE smd_access_log SET purpose = 'curiosity' WHERE position = {p}", "row {p}: altered"),
            ("DELETE FROM smd_access_log WHERE position = {p}", "row {p}: deleted"),
            (
                "INSERT INTO smd_access_log (position, at, agency_id, key_id, staff_id, purpose, endpoint, status,"
                " patient_ids, fields, correlation_id) SELECT position + 1000, at, agency_id, key_id, staff_id,"
                " purpose, endpoint, status, patient_ids, fields, correlation_id FROM smd_access_log"
                " WHERE position = {p}",
                "row {q}: not chained",
            ),
        ],
    )
    def test_a_row_altered_deleted_or_inserted_with_sql_is_named(self, services: Services, attack, named) -> None:
        read_some(services)
        p = services.access_log.entries(limit=10)[1].position
        access_log_sql(services, attack.format(p=p))
        findings = [str(f) for f in verified(services, access_log=services.access_log).findings]
        assert any(named.format(p=p, q=p + 1000) in m for m in findings), findings

    def test_rows_written_before_the_chain_existed_are_chained_on_the_next_start(self, open_store) -> None:
        first = open_store()
        read_some(first, 3)
        access_log_sql(first, "DROP TABLE smd_access_log_chain")  # as a store from before this change
        second = open_store()
        assert second.access_log.chain_head()[0] == 3
        read_some(second, 1)
        assert second.access_log.chain_findings() == []

    def test_a_group_of_reads_written_together_is_chained_in_order(self, services: Services) -> None:
        """Concurrent reads are appended as one group (core.intake.GroupedAccessLog); each row of
        the group gets its own position and link, in the order given."""
        from datetime import UTC, datetime

        from core.access_log import AccessEntry

        read_some(services, 2)
        group = [
            AccessEntry(
                at=datetime.now(UTC),
                agency_id="police-east",
                key_id="k2",
                staff_id=None,
                purpose="assigned-duty",
                endpoint="GET /v1/work-queue",
                status=200,
                patient_ids=tuple(uuid4() for _ in range(i + 1)),
                fields=("obligations",),
                correlation_id=f"group-{i}",
            )
            for i in range(5)
        ]
        services.access_log.append_many(group)
        read_some(services, 1)
        stored = services.access_log.entries(limit=20)
        assert [e.correlation_id for e in stored] == ["c0", "c1", *(f"group-{i}" for i in range(5)), "c0"]
        assert [len(e.patient_ids) for e in stored[2:7]] == [1, 2, 3, 4, 5]
        assert services.access_log.chain_head()[0] == 8
        assert services.access_log.chain_findings() == []

    def test_the_last_rows_deleted_with_their_links_are_caught_by_the_checkpoint(self, services: Services) -> None:
        read_some(services)
        record_patients(services, patients=1)
        follow(services)
        services.checkpointer.sign_now()
        last = services.access_log.entries(limit=10)[-1].position
        access_log_sql(
            services,
            f"DELETE FROM smd_access_log WHERE position = {last}",
            f"DELETE FROM smd_access_log_chain WHERE position = {last}",
        )
        findings = [str(f) for f in verified(services, access_log=services.access_log).findings]
        assert any("access-log rows; the stored chain differs" in m for m in findings), findings


pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")


@contextlib.contextmanager
def failing_write(store, nth: int, error: BaseException):
    """The chain store's ``nth`` write raises ``error``; yields the expected position of each write."""
    real, calls = store.append_chunks, []

    def write(*args, **kwargs):
        calls.append(args[0])
        if len(calls) == nth:
            raise error
        return real(*args, **kwargs)

    store.append_chunks = write
    try:
        yield calls
    finally:
        store.append_chunks = real


def verified(services: Services, **kw):
    from core.audit.verify import verify

    return verify(services.case_record.recorder, services.chain_store, **kw)


@pytest.fixture
def chained(services: Services):
    """A store with three patients' facts, all chained, and a rogue administrator."""
    from tests.support.rogue import RogueAdmin

    record_patients(services, patients=3, visits=2)
    follow(services)
    return services, RogueAdmin(services), stored_rows(services)


class TestVerifyAgainstARogueAdministrator:
    def test_an_untouched_store_verifies_clean(self, chained) -> None:
        services, _, rows = chained
        report = verified(services)
        assert report.ok, report.findings
        assert (report.rows, report.leaves, report.pending) == (len(rows), len(rows), 0)

    def test_an_updated_payload_is_named_altered_at_its_position(self, chained) -> None:
        services, rogue, rows = chained
        target = rows[5]
        rogue.update_state(target.id, bytes(target.state).replace(b"1", b"2", 1) + b" ")
        first = verified(services).first
        assert first is not None and (first.kind, first.notification_id, first.leaf_index) == ("altered", target.id, 5)

    def test_a_deleted_row_is_named_deleted_at_its_position(self, chained) -> None:
        services, rogue, rows = chained
        rogue.delete(rows[4].id)
        first = verified(services).first
        assert first is not None and (first.kind, first.notification_id) == ("deleted", rows[4].id)

    def test_two_swapped_payloads_name_the_first_of_them(self, chained) -> None:
        services, rogue, rows = chained
        rogue.swap_states(rows[3].id, rows[7].id)
        first = verified(services).first
        assert first is not None and (first.kind, first.notification_id) == ("altered", rows[3].id)

    def test_a_forged_row_inserted_into_the_past_is_named(self, chained) -> None:
        services, rogue, rows = chained
        forged = rows[2]
        if services.settings.postgres is not None:
            # the room left by an insert that was rolled back: a forged row there is "inserted"
            rogue.rolled_back_insert(uuid4())
            record_patients(services, patients=1, visits=0)
            follow(services)
            now = stored_rows(services)
            gap = next(a.id + 1 for a, b in itertools.pairwise(now) if b.id != a.id + 1)
            assert verified(services).ok
            rogue.insert(gap, uuid4(), 1, forged.topic, bytes(forged.state))
            first = verified(services).first
            assert first is not None and (first.kind, first.notification_id) == ("inserted", gap)
        # with no gap, the only way into the past is to move later rows up: named at the first of them
        rogue.make_room_at(rows[6].id)
        rogue.insert(rows[6].id, uuid4(), 1, forged.topic, bytes(forged.state))
        first = verified(services).first
        assert first is not None and first.notification_id == rows[6].id and first.kind in ("altered", "inserted")

    def test_rows_moved_to_other_positions_are_named_reordered(self, chained) -> None:
        services, rogue, rows = chained
        a, b = rows[3], rows[8]
        spare = 10_000_000
        rogue._run(
            [
                (f"UPDATE {rogue.table} SET {rogue.nid} = {rogue.m} WHERE {rogue.nid} = {rogue.m}", (spare, a.id)),
                (f"UPDATE {rogue.table} SET {rogue.nid} = {rogue.m} WHERE {rogue.nid} = {rogue.m}", (a.id, b.id)),
                (f"UPDATE {rogue.table} SET {rogue.nid} = {rogue.m} WHERE {rogue.nid} = {rogue.m}", (b.id, spare)),
            ]
        )
        first = verified(services).first
        assert first is not None and (first.kind, first.notification_id) == ("reordered", a.id)

    def test_a_gap_in_notification_ids_from_a_rolled_back_insert_verifies_clean(self, chained) -> None:
        services, rogue, _rows = chained
        rogue.rolled_back_insert(uuid4())
        record_patients(services, patients=1, visits=1)
        follow(services)
        now = stored_rows(services)
        ids = [r.id for r in now]
        if services.settings.postgres is not None:
            assert ids != list(range(ids[0], ids[0] + len(ids))), "PostgreSQL used up an id: a gap"
        report = verified(services)
        assert report.ok, report.findings
        assert report.leaves == len(now)

    def test_rows_not_yet_chained_are_pending_not_a_problem(self, chained) -> None:
        services, _, _rows = chained
        record_patients(services, patients=1, visits=0)
        report = verified(services)
        assert report.ok and report.pending == 2  # a receipt and a registration

    def test_an_edited_tree_table_is_named(self, chained) -> None:
        services, rogue, _rows = chained
        prefix = "smd_" if rogue.pg else ""
        # the subtree of level 1, index 2 (leaves 4 and 5) is kept in the row of leaf 5
        rogue._run(
            [(f"UPDATE {prefix}vlog_leaves SET subtrees = {rogue.m} WHERE leaf_index = 5", (b"\x00" * 32,))],
            vlog=True,
        )
        first = verified(services).first
        assert first is not None and (first.kind, first.leaf_index) == ("node", 4)
        assert "level 1, index 2 differs" in first.detail


def to_the_layout_before(services: Services) -> None:
    """Rewrite the tree's tables as the version before stored them: no ``subtrees`` column (the
    subtrees in the ``nodes`` table), a ``streams`` table of heads, the stream index by version."""
    from tests.support.rogue import RogueAdmin

    rogue = RogueAdmin(services)
    p, m = ("smd_" if rogue.pg else ""), rogue.m
    leaves = services.chain_store.leaves()
    frontier: list[bytes] = []
    nodes = [n for lf in leaves for n in merkle.completed_nodes(H, frontier, lf.leaf_index, lf.leaf_hash)[1:]]
    heads = {lf.originator_id: (lf.originator_version, lf.stream_hash) for lf in leaves}
    blob = "bytea" if rogue.pg else "BLOB"
    rogue._run(
        [
            (f"ALTER TABLE {p}vlog_leaves DROP COLUMN subtrees", ()),
            (f"DROP INDEX {p}vlog_leaves_stream_order", ()),
            (f"CREATE INDEX {p}vlog_leaves_stream ON {p}vlog_leaves (originator_id, originator_version)", ()),
            (f"CREATE TABLE {p}vlog_streams (originator_id TEXT PRIMARY KEY, version bigint, head {blob})", ()),
            *((f"INSERT INTO {p}vlog_nodes VALUES ({m}, {m}, {m})", n) for n in nodes),
            *((f"INSERT INTO {p}vlog_streams VALUES ({m}, {m}, {m})", (k, *v)) for k, v in heads.items()),
        ],
        vlog=True,
    )


class TestATreeStoredByTheVersionBefore:
    """A tree whose subtrees are in the ``nodes`` table and whose heads were in ``streams`` is
    upgraded at start: its old subtrees are read where they are, new leaves keep theirs."""

    def test_it_is_upgraded_at_start_read_as_before_and_extended(self, open_store) -> None:
        first = open_store()
        record_patients(first, patients=2, visits=2)
        follow(first)
        old_size = first.chain_store.tree("sha256").size
        to_the_layout_before(first)
        second = open_store()  # the upgrade runs here
        record_patients(second, patients=2, visits=3)
        follow(second)
        rows = stored_rows(second)
        memory = ListSource(H, [leaf_of(H, r) for r in rows])
        from core.audit.proofs import TreeReader

        reader = TreeReader(second.chain_store)
        for size in (1, old_size - 1, old_size, old_size + 1, len(rows)):
            assert reader.root(size) == merkle.root(memory, H, size)
        for index in (0, old_size - 2, old_size - 1, len(rows) - 1):
            proof = reader.inclusion(index, len(rows))
            merkle.verify_inclusion(H, index, len(rows), memory.node(0, index), proof, reader.root(len(rows)))
        heads: dict[str, bytes] = {}
        for lf in second.chain_store.leaves():
            heads[lf.originator_id] = H.chain(heads.get(lf.originator_id, b"\x00" * 32), lf.leaf_hash)
            assert lf.stream_hash == heads[lf.originator_id]  # the old heads were read on
        report = verified(second)
        assert report.ok, report.findings
        assert report.leaves == len(rows)

    def test_an_old_subtree_edited_in_the_nodes_table_is_named(self, open_store) -> None:
        from tests.support.rogue import RogueAdmin

        first = open_store()
        record_patients(first, patients=3, visits=2)
        follow(first)
        to_the_layout_before(first)
        second = open_store()
        rogue = RogueAdmin(second)
        p = "smd_" if rogue.pg else ""
        rogue._run(
            [(f"UPDATE {p}vlog_nodes SET hash = {rogue.m} WHERE level = 2 AND idx = 1", (b"\x00" * 32,))], vlog=True
        )
        first_finding = verified(second).first
        assert first_finding is not None and (first_finding.kind, first_finding.leaf_index) == ("node", 4)
        rogue._run([(f"DELETE FROM {p}vlog_nodes WHERE level = 2 AND idx = 1", ())], vlog=True)
        first_finding = verified(second).first
        assert first_finding is not None and "level 2, index 1 is missing" in first_finding.detail


def use_settings(monkeypatch: pytest.MonkeyPatch, services: Services) -> None:
    """The CLI reads the environment: point it at the test's store."""
    s = services.settings
    monkeypatch.setenv("SMD_DATA_DIR", str(s.data_dir))
    if s.postgres is not None:
        pg = s.postgres
        monkeypatch.setenv("SMD_DATABASE_URL", f"postgresql://{pg.user}@{pg.host}:{pg.port}/{pg.dbname}")
    else:
        monkeypatch.delenv("SMD_DATABASE_URL", raising=False)


class TestSmdVerify:
    def test_smd_verify_says_ok_then_names_the_altered_row_and_exits_1(self, chained, monkeypatch, capsys) -> None:
        from ops.cli import main

        services, rogue, rows = chained
        use_settings(monkeypatch, services)
        assert main(["verify"]) == 0
        assert "verify: OK" in capsys.readouterr().out
        rogue.update_state(rows[2].id, b'{"forged": true}')
        assert main(["verify"]) == 1
        out = capsys.readouterr().out
        assert f"verify: FAILED: altered: notification id {rows[2].id}, leaf 2:" in out


class TestVerifyAgainstAnOutsideCheckpoint:
    def test_a_rewritten_tail_with_every_hash_recomputed_is_caught_only_against_the_outside_copy(
        self, chained, monkeypatch, capsys, tmp_path
    ) -> None:
        from ops.cli import main

        services, rogue, rows = chained
        use_settings(monkeypatch, services)
        outside = tmp_path / "auditor-copy.note"
        assert main(["checkpoint", "--out", str(outside)]) == 0
        # the administrator rewrites a row near the tail and rebuilds the tree and checkpoints
        rogue.update_state(rows[-2].id, b'{"forged": true}')
        rogue.rebuild_tree()
        follow(services)
        services.checkpointer.sign_now()
        capsys.readouterr()
        assert main(["verify"]) == 0, "everything stored agrees with itself"
        assert main(["verify", "--against", str(outside)]) == 1
        out = capsys.readouterr().out
        assert f"verify: FAILED: against: {outside} (tree of {len(rows)}): the stored rows do not give its root" in out


class TestTheApiKeyChain:
    def test_keys_issued_and_revoked_by_the_service_verify_and_their_head_is_in_every_checkpoint(
        self, services: Services
    ) -> None:
        from core.audit.checkpoints import parse_apikeys_extension
        from core.audit.notes import Checkpoint, SignedNote

        a = services.apikeys.issue("hc-east")
        services.apikeys.issue("hc-west")
        services.apikeys.revoke(a.key_id)
        services.apikeys.revoke(a.key_id)  # again: nothing new to chain
        record_patients(services, patients=1, visits=0)
        follow(services)
        cp = services.checkpointer.sign_now()
        body = Checkpoint.parse(SignedNote.parse(cp.note).body)
        assert parse_apikeys_extension(body.extensions) == services.apikeys.chain_head()
        assert services.apikeys.chain_head()[0] == 3
        report = verified(services, apikeys=services.apikeys)
        assert report.ok, report.findings

    def test_a_key_issued_with_sql_is_named_and_so_is_a_revocation_undone(self, services: Services) -> None:
        import psycopg

        key = services.apikeys.issue("hc-east")
        services.apikeys.revoke(key.key_id)
        record_patients(services, patients=1, visits=0)
        follow(services)
        services.checkpointer.sign_now()
        # a rogue administrator copies a row under a new key id and un-revokes the old key
        pg = services.settings.postgres
        statements = [
            "INSERT INTO {t} (key_id, agency_id, alg, digest, issued_at) SELECT 'feedfeedfeed', agency_id, alg,"
            " digest, issued_at FROM {t} WHERE key_id = '" + key.key_id + "'",
            "UPDATE {t} SET revoked_at = NULL WHERE key_id = '" + key.key_id + "'",
        ]
        if pg is None:
            import sqlite3

            with sqlite3.connect(services.settings.data_dir / "api-keys.sqlite") as c:
                for sql in statements:
                    c.execute(sql.format(t="api_keys"))
        else:
            with psycopg.connect(pg.conninfo()) as c:
                for sql in statements:
                    c.execute(sql.format(t="smd_api_keys"))
        findings = [str(f) for f in verified(services, apikeys=services.apikeys).findings]
        assert any("api key feedfeedfeed of hc-east has no chained issue record" in f for f in findings), findings
        assert any(f"api key {key.key_id} of hc-east: its revocation differs" in f for f in findings), findings

    def test_deleted_key_records_no_longer_match_the_signed_checkpoint(self, services: Services) -> None:
        import psycopg

        services.apikeys.issue("hc-east")
        services.apikeys.issue("hc-west")
        record_patients(services, patients=1, visits=0)
        follow(services)
        services.checkpointer.sign_now()
        pg = services.settings.postgres
        if pg is None:
            import sqlite3

            with sqlite3.connect(services.settings.data_dir / "api-keys.sqlite") as c:
                c.execute("DELETE FROM api_key_records WHERE seq = 2")
                c.execute("DELETE FROM api_keys WHERE key_id = (SELECT max(key_id) FROM api_keys)")
        else:
            with psycopg.connect(pg.conninfo()) as c:
                c.execute("DELETE FROM smd_api_key_records WHERE seq = 2")
        findings = [str(f) for f in verified(services, apikeys=services.apikeys).findings]
        assert any("pins 2 API-key records; the stored chain differs" in f for f in findings), findings


class TestEachFactRecordsTheKeyThatAuthenticatedIt:
    async def test_a_fact_recorded_over_http_keeps_its_key_id_even_after_waiting(self, open_store) -> None:
        from litestar.testing import AsyncTestClient

        from api.app import create_app
        from core.case_record import utc_now
        from core.registry import load_file
        from domain.receipt import receipt_id
        from ops.data_files import DEMO_DISTRICT
        from tests.integration.test_walking_skeleton_http import high_risk_visit, registration

        services = open_store(clock=utc_now)
        load_file(services.case_record, DEMO_DISTRICT)
        first, second = services.apikeys.issue("hc-north"), services.apikeys.issue("hc-north")
        patient = uuid4()
        visit, reg = high_risk_visit(patient), registration(patient)
        async with AsyncTestClient(app=create_app(services)) as client:
            r = await client.post("/v1/events", json=visit, headers={"Authorization": f"Bearer {first.key}"})
            assert r.status_code == 202  # waits for its patient
            r = await client.post("/v1/events", json=reg, headers={"Authorization": f"Bearer {second.key}"})
            assert r.status_code == 201, r.text
        for envelope, key in ((visit, first), (reg, second)):
            receipt = services.case_record.repository.get(receipt_id(f"hc-north:{envelope['id']}"))
            assert receipt.key_id == key.key_id  # the waiting visit keeps the key it came with
        follow(services)
        report = verified(services, apikeys=services.apikeys)
        assert report.ok, report.findings

    def test_a_fact_authenticated_by_a_key_issued_with_sql_is_named(self, services: Services) -> None:
        agency = Agency("hc-east")
        p = uuid4()
        services.case_record.record(agency.register(p), "hc-east", key_id="feedfeedfeed")  # as if by that key
        follow(services)
        first = verified(services, apikeys=services.apikeys).first
        assert first is not None and first.kind == "api-key"
        assert "authenticated by API key feedfeedfeed, which was never issued" in str(first)
