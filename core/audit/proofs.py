"""Roots and proofs from the stored tree: each answer fetches its O(log n) subtrees in one go."""

from __future__ import annotations

from collections.abc import Callable

from core.audit import merkle
from core.audit.merkle import DictSource, Hasher, NodeSource
from core.audit.store import TREE, ChainStore


class TreeReader:
    """Reads roots, inclusion proofs and consistency proofs off a chain store."""

    def __init__(self, store: ChainStore, name: str = TREE) -> None:
        self.store = store
        self.name = name
        state = store.tree(merkle.DEFAULT_ALGORITHM, name)
        self.hasher = Hasher(state.algorithm)

    @property
    def size(self) -> int:
        """How many leaves the tree has now."""
        return self.store.tree(self.hasher.algorithm, self.name).size

    def _with_nodes(self, what: Callable[[NodeSource], object]) -> object:
        wanted = merkle.needed_nodes(self.hasher, what)
        found = self.store.nodes(wanted)
        missing = wanted - found.keys()
        if missing:
            raise TreeTooSmall(f"the stored tree lacks {len(missing)} subtrees (a size beyond the tree?)")
        return what(DictSource(found))

    def _check_size(self, size: int) -> None:
        if size > self.size:
            raise TreeTooSmall(f"the tree has {self.size} leaves, not {size}")

    def root(self, size: int) -> bytes:
        """The tree head of the first ``size`` leaves."""
        self._check_size(size)
        return self._with_nodes(lambda s: merkle.root(s, self.hasher, size))  # type: ignore[return-value]

    def inclusion(self, index: int, size: int) -> list[bytes]:
        """The audit path of leaf ``index`` in the tree of ``size``."""
        self._check_size(size)
        return self._with_nodes(lambda s: merkle.inclusion_proof(s, self.hasher, index, size))  # type: ignore[return-value]

    def consistency(self, first: int, second: int) -> list[bytes]:
        """The proof that the tree of ``first`` leaves is a prefix of the tree of ``second``."""
        self._check_size(second)
        return self._with_nodes(lambda s: merkle.consistency_proof(s, self.hasher, first, second))  # type: ignore[return-value]


class TreeTooSmall(ValueError):
    """A proof or root was asked for a tree larger than the one stored."""
