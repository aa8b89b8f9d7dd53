"""The Merkle tree of RFC 9162 (Certificate Transparency 2.0, section 2.1), with nothing stored.

A leaf hashes as ``H(0x00 || data)``, an interior node as ``H(0x01 || left || right)``; a tree
of n leaves splits at k, the largest power of two below n. Proofs are RFC 9162 audit paths (a
list of node hashes, bottom-up), so any RFC 6962/9162 verifier (Go's transparency-dev/merkle,
the C2SP tlog tools) checks ours and ours checks theirs.

The proof functions ask a ``NodeSource`` for the hash of a *perfect aligned subtree* (2^level
leaves starting at ``index * 2^level``): the store keeps exactly those, so a proof costs
O(log n) lookups whatever the tree's size. ``needed_nodes`` lists them first, so a store can
fetch them in one query. ``ListSource`` computes them from leaf hashes in memory (tests, the
offline bundle checker, ``smd verify``).

Hash algorithms are named (``sha256``; ``sm3`` for deployments under GB/T 39786), and the name is
stored beside every tree and checkpoint: a tree never changes algorithm, a new one starts beside.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence
from typing import Protocol

from cryptography.hazmat.primitives import hashes


def _sm3(data: bytes) -> bytes:
    h = hashes.Hash(hashes.SM3())
    h.update(data)
    return h.finalize()


def _sha256(data: bytes) -> bytes:
    return hashlib.sha256(data).digest()


#: Hash algorithms by the id stored with a tree.
ALGORITHMS: dict[str, Callable[[bytes], bytes]] = {"sha256": _sha256, "sm3": _sm3}
DEFAULT_ALGORITHM = "sha256"


class UnknownAlgorithm(ValueError):
    """A tree or checkpoint names a hash algorithm this build does not have."""


class Hasher:
    """RFC 9162 leaf and node hashing with one named algorithm."""

    def __init__(self, algorithm: str = DEFAULT_ALGORITHM) -> None:
        if algorithm not in ALGORITHMS:
            raise UnknownAlgorithm(f"unknown hash algorithm {algorithm!r} (known: {', '.join(ALGORITHMS)})")
        self.algorithm = algorithm
        self._h = ALGORITHMS[algorithm]
        #: the bare hash function (``H``), for loops that write the prefixes themselves
        self.digest = self._h
        self.size = len(self._h(b""))

    def empty(self) -> bytes:
        """The root of the empty tree: H() of nothing."""
        return self._h(b"")

    def leaf(self, data: bytes) -> bytes:
        """A leaf's hash: H(0x00 || data)."""
        return self._h(b"\x00" + data)

    def node(self, left: bytes, right: bytes) -> bytes:
        """An interior node's hash: H(0x01 || left || right)."""
        return self._h(b"\x01" + left + right)

    def chain(self, previous: bytes, leaf_hash: bytes) -> bytes:
        """A hash chain's next link (the per-stream chain): H(0x02 || previous || leaf hash)."""
        return self._h(b"\x02" + previous + leaf_hash)


class NodeSource(Protocol):
    """Hashes of perfect aligned subtrees: ``node(level, index)`` covers leaves
    ``[index * 2**level, (index + 1) * 2**level)``; level 0 is the leaf hashes."""

    def node(self, level: int, index: int) -> bytes:
        """The subtree's hash (KeyError when it is not complete or not stored)."""


def split(n: int) -> int:
    """k: the largest power of two strictly below n (n >= 2)."""
    return 1 << ((n - 1).bit_length() - 1)


def subtree_hash(source: NodeSource, hasher: Hasher, start: int, end: int) -> bytes:
    """MTH of leaves [start, end): perfect aligned pieces from the source, the rest combined."""
    n = end - start
    if n == 0:
        return hasher.empty()
    if n & (n - 1) == 0 and start % n == 0:
        level = n.bit_length() - 1
        return source.node(level, start >> level)
    k = split(n)
    return hasher.node(subtree_hash(source, hasher, start, start + k), subtree_hash(source, hasher, start + k, end))


def root(source: NodeSource, hasher: Hasher, size: int) -> bytes:
    """The tree head of the first ``size`` leaves."""
    return subtree_hash(source, hasher, 0, size)


def inclusion_proof(source: NodeSource, hasher: Hasher, index: int, size: int) -> list[bytes]:
    """PATH(index, D[size]) of RFC 9162 2.1.3.1, bottom-up."""
    if not 0 <= index < size:
        raise ValueError(f"leaf {index} is not in a tree of {size}")
    out: list[bytes] = []

    def path(m: int, start: int, end: int) -> None:
        n = end - start
        if n == 1:
            return
        k = split(n)
        if m < k:
            path(m, start, start + k)
            out.append(subtree_hash(source, hasher, start + k, end))
        else:
            path(m - k, start + k, end)
            out.append(subtree_hash(source, hasher, start, start + k))

    path(index, 0, size)
    return out


def consistency_proof(source: NodeSource, hasher: Hasher, first: int, second: int) -> list[bytes]:
    """PROOF(first, D[second]) of RFC 9162 2.1.4.1 (empty when first is 0 or equals second)."""
    if not 0 <= first <= second:
        raise ValueError(f"no consistency proof from {first} to {second}")
    if first in (0, second):
        return []
    out: list[bytes] = []

    def subproof(m: int, start: int, end: int, whole: bool) -> None:
        n = end - start
        if m == n:
            if not whole:
                out.append(subtree_hash(source, hasher, start, end))
            return
        k = split(n)
        if m <= k:
            subproof(m, start, start + k, whole)
            out.append(subtree_hash(source, hasher, start + k, end))
        else:
            subproof(m - k, start + k, end, False)
            out.append(subtree_hash(source, hasher, start, start + k))

    subproof(first, 0, second, True)
    return out


class _Recorder:
    """A source that only notes which nodes are asked for (their hashes do not matter)."""

    def __init__(self, size: int) -> None:
        self.asked: set[tuple[int, int]] = set()
        self.placeholder = b"\x00" * size

    def node(self, level: int, index: int) -> bytes:
        self.asked.add((level, index))
        return self.placeholder


def needed_nodes(hasher: Hasher, what: Callable[[NodeSource], object]) -> set[tuple[int, int]]:
    """The stored nodes ``what`` will ask for: which nodes a proof needs does not depend on the
    hashes, so a store can fetch them all in one query before computing the proof."""
    recorder = _Recorder(hasher.size)
    what(recorder)
    return recorder.asked


class ListSource:
    """Perfect subtrees computed from leaf hashes in memory (memoised)."""

    def __init__(self, hasher: Hasher, leaf_hashes: Sequence[bytes]) -> None:
        self.hasher = hasher
        self.leaves = leaf_hashes
        self._memo: dict[tuple[int, int], bytes] = {}

    def node(self, level: int, index: int) -> bytes:
        if level == 0:
            return self.leaves[index]
        key = (level, index)
        found = self._memo.get(key)
        if found is None:
            if (index + 1) << level > len(self.leaves):
                raise KeyError(key)
            found = self.hasher.node(self.node(level - 1, 2 * index), self.node(level - 1, 2 * index + 1))
            self._memo[key] = found
        return found


class DictSource:
    """Perfect subtrees fetched beforehand (``needed_nodes``) from a store."""

    def __init__(self, nodes: dict[tuple[int, int], bytes]) -> None:
        self.nodes = nodes

    def node(self, level: int, index: int) -> bytes:
        return self.nodes[(level, index)]


def completed_nodes(
    hasher: Hasher, frontier: list[bytes], index: int, leaf_hash: bytes
) -> list[tuple[int, int, bytes]]:
    """Append leaf ``index``: the perfect subtrees it completes, as (level, index, hash), level 0
    first. ``frontier`` holds the hashes of the perfect subtrees of the tree before it, largest
    first (the binary decomposition of its size: one per set bit) and is updated in place."""
    out = [(0, index, leaf_hash)]
    node, level, i = leaf_hash, 0, index
    while i & 1:  # a right child: it completes its parent with the frontier's last subtree
        node = hasher.node(frontier.pop(), node)
        level, i = level + 1, i >> 1
        out.append((level, i, node))
    frontier.append(node)
    return out


def frontier_nodes(size: int) -> list[tuple[int, int]]:
    """The perfect subtrees that make up a tree of ``size`` leaves, largest first."""
    out, start = [], 0
    for level in range(size.bit_length() - 1, -1, -1):
        if size >> level & 1:
            out.append((level, start >> level))
            start += 1 << level
    return out


class InvalidProof(Exception):
    """A proof does not lead to the given root(s)."""


def _shift_while(fn: int, sn: int, lsb_set: bool) -> tuple[int, int]:
    """Right-shift fn and sn together while LSB(fn) == lsb_set (and fn is not 0)."""
    while fn and (fn & 1) == lsb_set:
        fn, sn = fn >> 1, sn >> 1
    return fn, sn


def root_from_inclusion(hasher: Hasher, index: int, size: int, leaf_hash: bytes, proof: Sequence[bytes]) -> bytes:
    """RFC 9162 2.1.3.2: the root an inclusion proof leads to (InvalidProof if malformed)."""
    if not 0 <= index < size:
        raise InvalidProof(f"leaf {index} is not in a tree of {size}")
    fn, sn, r = index, size - 1, leaf_hash
    for p in proof:
        if sn == 0:
            raise InvalidProof("the inclusion proof is too long")
        if fn & 1 or fn == sn:
            r = hasher.node(p, r)
            if not fn & 1:
                fn, sn = _shift_while(fn, sn, False)
        else:
            r = hasher.node(r, p)
        fn, sn = fn >> 1, sn >> 1
    if sn != 0:
        raise InvalidProof("the inclusion proof is too short")
    return r


def verify_inclusion(
    hasher: Hasher, index: int, size: int, leaf_hash: bytes, proof: Sequence[bytes], expected_root: bytes
) -> None:
    """Raise InvalidProof unless leaf ``index`` with ``leaf_hash`` is in the tree of ``size`` with
    ``expected_root``."""
    if root_from_inclusion(hasher, index, size, leaf_hash, proof) != expected_root:
        raise InvalidProof(f"leaf {index} is not in the tree of {size} with that root")


def verify_consistency(
    hasher: Hasher, first: int, second: int, first_root: bytes, second_root: bytes, proof: Sequence[bytes]
) -> None:
    """RFC 9162 2.1.4.2: raise InvalidProof unless the tree of ``first`` leaves is a prefix of the
    tree of ``second`` leaves."""
    if not 0 <= first <= second:
        raise InvalidProof(f"a tree of {second} cannot extend a tree of {first}")
    if first == second:
        if proof or first_root != second_root:
            raise InvalidProof(f"two different trees of the same size {first}")
        return
    if first == 0:
        if proof:
            raise InvalidProof("a proof from the empty tree must be empty")
        return
    if not proof:
        raise InvalidProof("the consistency proof is empty")
    path = list(proof)
    if first & (first - 1) == 0:
        path.insert(0, first_root)
    fn, sn = first - 1, second - 1
    fn, sn = _shift_while(fn, sn, True)
    fr = sr = path[0]
    for c in path[1:]:
        if sn == 0:
            raise InvalidProof("the consistency proof is too long")
        if fn & 1 or fn == sn:
            fr, sr = hasher.node(c, fr), hasher.node(c, sr)
            if not fn & 1:
                fn, sn = _shift_while(fn, sn, False)
        else:
            sr = hasher.node(sr, c)
        fn, sn = fn >> 1, sn >> 1
    if sn != 0:
        raise InvalidProof("the consistency proof is too short")
    if fr != first_root:
        raise InvalidProof(f"the proof does not lead to the tree of {first} given")
    if sr != second_root:
        raise InvalidProof(f"the proof does not lead to the tree of {second} given")


def root_from_frontier(hasher: Hasher, frontier: Sequence[bytes]) -> bytes:
    """The tree head from the perfect subtrees that make it up, largest first (``completed_nodes``)."""
    if not frontier:
        return hasher.empty()
    r = frontier[-1]
    for f in reversed(frontier[:-1]):
        r = hasher.node(f, r)
    return r
