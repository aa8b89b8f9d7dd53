"""The tree of RFC 9162: its worked example, and agreement with an independent implementation
(pymerkle, from the package registry) on random trees of 1 to 300 leaves."""

from __future__ import annotations

import random

import pymerkle
import pytest

from core.audit import merkle
from core.audit.merkle import (
    DictSource,
    Hasher,
    InvalidProof,
    ListSource,
    completed_nodes,
    consistency_proof,
    frontier_nodes,
    inclusion_proof,
    needed_nodes,
    root,
    verify_consistency,
    verify_inclusion,
)

H = Hasher("sha256")


class TestTheWorkedExampleOfRfc9162:
    """Section 2.1.5: seven leaves d0..d6; a..f and j are leaf hashes, g h i k l interior nodes."""

    def setup_method(self) -> None:
        self.data = [f"d{i}".encode() for i in range(7)]
        a, b, c, d, e, f, j = (H.leaf(x) for x in self.data)
        g, h, i = H.node(a, b), H.node(c, d), H.node(e, f)
        k, l_ = H.node(g, h), H.node(i, j)
        self.n = dict(a=a, b=b, c=c, d=d, e=e, f=f, g=g, h=h, i=i, j=j, k=k, l=l_)
        self.hash0 = H.node(g, c)  # the tree of the first three leaves
        self.hash1 = k  # four leaves
        self.hash2 = H.node(k, i)  # six leaves
        self.hash = H.node(k, l_)  # seven
        self.source = ListSource(H, [H.leaf(x) for x in self.data])

    def names(self, proof: list[bytes]) -> list[str]:
        by_hash = {v: name for name, v in self.n.items()}
        return [by_hash[p] for p in proof]

    def test_the_roots_of_the_example_trees(self) -> None:
        assert root(self.source, H, 3) == self.hash0
        assert root(self.source, H, 4) == self.hash1
        assert root(self.source, H, 6) == self.hash2
        assert root(self.source, H, 7) == self.hash

    @pytest.mark.parametrize(("leaf", "nodes"), [(0, "bhl"), (3, "cgl"), (4, "fjk"), (6, "ik")])
    def test_each_inclusion_proof_holds_the_nodes_the_rfc_names(self, leaf: int, nodes: str) -> None:
        proof = inclusion_proof(self.source, H, leaf, 7)
        assert self.names(proof) == list(nodes)
        verify_inclusion(H, leaf, 7, H.leaf(self.data[leaf]), proof, self.hash)

    @pytest.mark.parametrize(("size", "nodes"), [(3, "cdgl"), (4, "l"), (6, "ijk")])
    def test_each_consistency_proof_holds_the_nodes_the_rfc_names(self, size: int, nodes: str) -> None:
        proof = consistency_proof(self.source, H, size, 7)
        assert self.names(proof) == list(nodes)
        first = {3: self.hash0, 4: self.hash1, 6: self.hash2}[size]
        verify_consistency(H, size, 7, first, self.hash, proof)

    def test_a_changed_leaf_or_a_wrong_root_fails_the_proofs(self) -> None:
        proof = inclusion_proof(self.source, H, 3, 7)
        with pytest.raises(InvalidProof):
            verify_inclusion(H, 3, 7, H.leaf(b"d3 altered"), proof, self.hash)
        with pytest.raises(InvalidProof):
            verify_inclusion(H, 2, 7, H.leaf(self.data[3]), proof, self.hash)  # the right leaf, another index
        with pytest.raises(InvalidProof):
            verify_consistency(H, 6, 7, self.hash0, self.hash, consistency_proof(self.source, H, 6, 7))
        with pytest.raises(InvalidProof):
            verify_consistency(H, 4, 7, self.hash1, self.hash2, [self.n["l"]])


def _pymerkle_tree(data: list[bytes]) -> pymerkle.InmemoryTree:
    tree = pymerkle.InmemoryTree(algorithm="sha256")
    for d in data:
        tree.append_entry(d)
    return tree


class TestAgreementWithPymerkle:
    """An independent implementation: equal roots; its proofs verify against our roots and ours
    against its roots; its inclusion path is ours with the leaf hash in front."""

    @pytest.mark.parametrize("seed", range(4))
    def test_random_trees_of_1_to_300_leaves(self, seed: int) -> None:
        rnd = random.Random(seed)
        sizes = sorted({1, 2, 3, 300, *(rnd.randint(1, 300) for _ in range(12))})
        for size in sizes:
            data = [rnd.randbytes(rnd.randint(0, 40)) for _ in range(size)]
            theirs = _pymerkle_tree(data)
            ours = ListSource(H, [H.leaf(d) for d in data])
            for m in sorted({1, size, *(rnd.randint(1, size) for _ in range(6))}):
                assert root(ours, H, m) == theirs.get_root(m), (size, m)
            for _ in range(8):
                n = rnd.randint(1, size)
                i = rnd.randrange(n)
                proof = inclusion_proof(ours, H, i, n)
                their_proof = theirs.prove_inclusion(i + 1, n)
                assert their_proof.path == [H.leaf(data[i]), *proof], (size, n, i)
                verify_inclusion(H, i, n, H.leaf(data[i]), proof, theirs.get_root(n))
                pymerkle.verify_inclusion(theirs.get_leaf(i + 1), root(ours, H, n), their_proof)
            for _ in range(8):
                second = rnd.randint(1, size)
                first = rnd.randint(1, second)
                proof = consistency_proof(ours, H, first, second)
                verify_consistency(H, first, second, theirs.get_root(first), theirs.get_root(second), proof)
                their_proof = theirs.prove_consistency(first, second)
                pymerkle.verify_consistency(root(ours, H, first), root(ours, H, second), their_proof)
                # pymerkle's consistency path is laid out its own way (the prior tree's subroots,
                # then siblings), so the proofs are compared by what they prove, both ways
                with pytest.raises(InvalidProof):
                    verify_consistency(H, first, second, H.leaf(b"other"), theirs.get_root(second), proof)


class TestStoredNodes:
    """What the chain stores: the perfect subtrees each appended leaf completes."""

    def test_appending_stores_exactly_the_perfect_subtrees_and_proofs_need_few_of_them(self) -> None:
        data = [i.to_bytes(2, "big") for i in range(300)]
        stored: dict[tuple[int, int], bytes] = {}
        frontier: list[bytes] = []
        for i, d in enumerate(data):
            for level, index, h in completed_nodes(H, frontier, i, H.leaf(d)):
                stored[(level, index)] = h
            size = i + 1
            assert frontier == [stored[k] for k in frontier_nodes(size)]
        memory = ListSource(H, [H.leaf(d) for d in data])
        assert stored == {k: memory.node(*k) for k in stored}
        source = DictSource(stored)
        for size in (1, 2, 7, 64, 255, 300):
            assert root(source, H, size) == root(memory, H, size)
            wanted = needed_nodes(H, lambda s, size=size: inclusion_proof(s, H, size - 1, size))
            assert len(wanted) <= 2 * size.bit_length()
            assert inclusion_proof(DictSource({k: stored[k] for k in wanted}), H, size - 1, size) == inclusion_proof(
                memory, H, size - 1, size
            )

    def test_the_algorithm_is_named_and_sm3_is_selectable(self) -> None:
        sm3 = Hasher("sm3")
        assert sm3.algorithm == "sm3" and sm3.leaf(b"x") != H.leaf(b"x")
        with pytest.raises(merkle.UnknownAlgorithm):
            Hasher("md5")
