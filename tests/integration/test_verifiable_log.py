"""The verifiable log on both stores: every stored row becomes a leaf, in log order, with its
own dense counter; proofs come from the stored subtrees; verify names the first row a rogue
administrator altered, deleted, inserted or reordered with SQL."""

from __future__ import annotations

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
            services.case_record.record(agency.visit(p, level, "stable" if level == 0 else "basically_stable"), "hc-east")
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


pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")
