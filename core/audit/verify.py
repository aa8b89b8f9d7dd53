"""``smd verify``: recompute the verifiable log from the stored rows and name the first problem.

Walks the events table (every stored row, in notification-id order) beside the tree's leaves
(in leaf order) and compares:

- a row whose bytes no longer hash to its leaf: **altered** (same stream and version) or
  **reordered** (the row now holds an event the tree recorded at another position);
- a leaf with no row at its notification id: **deleted**;
- a row at or below the chain's position with no leaf: **inserted** (a gap in notification ids
  with no leaf is fine: an insert that was rolled back leaves no row and no leaf);
- then the tree itself: each stream's chain, every stored subtree, and every stored checkpoint's
  root (and signature) recomputed from the leaves;
- ``against``: checkpoints kept *outside* the deployment (an auditor's copy, a witness's): the
  rows themselves must give their roots. This is what catches an administrator who rewrote rows
  and recomputed every hash, leaf and node: they cannot forge the old signed root.

Rows past the chain's position are "not yet chained", not a problem. Nothing here decrypts.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

from core.audit import merkle
from core.audit.leaves import leaf_of, stream_start
from core.audit.merkle import Hasher, completed_nodes, root_from_frontier
from core.audit.store import TREE, ChainStore, Leaf

PAGE = 2000


@dataclass(frozen=True, slots=True)
class Finding:
    """One problem: what, where (log position and leaf), and a sentence for the auditor."""

    kind: str  # altered | reordered | deleted | inserted | chain | node | checkpoint | against
    notification_id: int | None
    leaf_index: int | None
    detail: str

    def __str__(self) -> str:
        where = []
        if self.notification_id is not None:
            where.append(f"notification id {self.notification_id}")
        if self.leaf_index is not None:
            where.append(f"leaf {self.leaf_index}")
        return f"{self.kind}: " + (f"{', '.join(where)}: " if where else "") + self.detail


@dataclass
class Report:
    """What verify found."""

    rows: int = 0
    leaves: int = 0
    pending: int = 0  # rows past the chain's position
    algorithm: str = ""
    root: bytes = b""
    checkpoints: int = 0
    against: int = 0
    findings: list[Finding] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """No problem found."""
        return not self.findings

    @property
    def first(self) -> Finding | None:
        """The first problem in log order (the one to look at first)."""
        return self.findings[0] if self.findings else None


@dataclass(frozen=True, slots=True)
class ExternalCheckpoint:
    """A checkpoint kept outside: its size and root (its signature checked by the caller)."""

    size: int
    root: bytes
    label: str


def _rows(recorder: Any) -> Iterator[Any]:
    start = 1
    while True:
        page = recorder.select_notifications(start, PAGE)
        if not page:
            return
        yield from page
        start = page[-1].id + 1


def _leaves(store: ChainStore) -> Iterator[Leaf]:
    start = 0
    while True:
        page = store.leaves(start, PAGE)
        if not page:
            return
        yield from page
        start = page[-1].leaf_index + 1


def _describe(n: Any) -> str:
    return f"stream {n.originator_id} version {n.originator_version} ({n.topic})"


def verify(
    recorder: Any,
    store: ChainStore,
    *,
    against: Sequence[ExternalCheckpoint] = (),
    check_signature: Callable[[str], str | None] | None = None,
    apikeys: Any = None,
    access_log: Any = None,
    stop_after: int = 1,
) -> Report:
    """Recompute and compare; stops collecting after ``stop_after`` row problems (the first one
    matters: everything after an altered row is suspect anyway)."""
    state = store.tree(merkle.DEFAULT_ALGORITHM, TREE)
    hasher = Hasher(state.algorithm)
    report = Report(algorithm=state.algorithm)
    position = state.position
    where_leaf: dict[tuple[str, int], int] = {}  # (stream, version) → notification id, for "reordered"
    row_hashes: list[bytes] = []  # leaf hashes recomputed from the rows (for ``against``)
    leaf_hashes: list[bytes] = []
    rows = _rows(recorder)
    row = next(rows, None)

    def problem(f: Finding) -> bool:
        report.findings.append(f)
        return len(report.findings) >= stop_after

    def row_problem_count() -> int:
        return sum(f.kind in ("altered", "reordered", "deleted", "inserted") for f in report.findings)

    receipts: dict[int, str] = {}  # notification id → the API key its message was authenticated by
    leaves_list = list(_leaves(store))
    for lf in leaves_list:
        where_leaf[(lf.originator_id, lf.originator_version)] = lf.notification_id
    previous_nid = 0
    for lf in leaves_list:
        report.leaves += 1
        leaf_hashes.append(lf.leaf_hash)
        if lf.notification_id <= previous_nid:
            problem(Finding("chain", lf.notification_id, lf.leaf_index, "leaves out of log order in the tree's table"))
        previous_nid = lf.notification_id
        while row is not None and row.id < lf.notification_id:
            report.rows += 1
            row_hashes.append(leaf_of(hasher, row))
            if row_problem_count() < stop_after:
                problem(
                    Finding(
                        "inserted", row.id, None, f"a row the chain never saw, {_describe(row)}: inserted afterwards"
                    )
                )
            row = next(rows, None)
        if row is None or row.id > lf.notification_id:
            if row_problem_count() < stop_after:
                problem(
                    Finding(
                        "deleted",
                        lf.notification_id,
                        lf.leaf_index,
                        f"no stored row, but the tree recorded stream {lf.originator_id} version"
                        f" {lf.originator_version} ({lf.topic}) here: deleted",
                    )
                )
            row_hashes.append(b"")  # nothing to hash: the rows cannot give any later root
            continue
        report.rows += 1
        h = leaf_of(hasher, row)
        row_hashes.append(h)
        if row.topic == RECEIPT_TOPIC:
            _note_key(row, receipts)
        if h != lf.leaf_hash and row_problem_count() < stop_after:
            same = (str(row.originator_id), row.originator_version) == (lf.originator_id, lf.originator_version)
            elsewhere = where_leaf.get((str(row.originator_id), row.originator_version))
            if same:
                kind, text = "altered", f"{_describe(row)}: its stored bytes no longer hash to the leaf recorded"
            elif elsewhere is not None:
                kind = "reordered"
                text = (
                    f"holds {_describe(row)}, which the tree recorded at notification id {elsewhere};"
                    f" the tree has stream {lf.originator_id} version {lf.originator_version} here"
                )
            else:
                kind = "altered"
                text = (
                    f"holds {_describe(row)}, but the tree recorded stream {lf.originator_id} version"
                    f" {lf.originator_version} here"
                )
            problem(Finding(kind, row.id, lf.leaf_index, text))
        row = next(rows, None)
    while row is not None:
        if row.id <= position:
            report.rows += 1
            if row_problem_count() < stop_after:
                problem(
                    Finding(
                        "inserted", row.id, None, f"a row the chain never saw, {_describe(row)}: inserted afterwards"
                    )
                )
        else:
            report.pending += 1
            report.rows += 1
        row = next(rows, None)
    if report.leaves != state.size:
        problem(Finding("chain", None, None, f"the tree says {state.size} leaves, its table holds {report.leaves}"))

    _check_streams(hasher, leaves_list, report)
    _check_nodes(hasher, store, leaf_hashes, report)
    cps = store.checkpoints()
    roots = _roots(hasher, leaf_hashes, {len(leaf_hashes), *(cp.size for cp in cps)})
    report.root = roots[len(leaf_hashes)]
    report.checkpoints = len(cps)
    for cp in cps:
        if cp.size > len(leaf_hashes):
            problem(Finding("checkpoint", None, None, f"a checkpoint of {cp.size} leaves, but the tree has fewer"))
            continue
        if roots[cp.size] != cp.root:
            problem(Finding("checkpoint", None, None, f"the leaves do not give the signed root of size {cp.size}"))
        if check_signature is not None:
            bad = check_signature(cp.note)
            if bad:
                problem(Finding("checkpoint", None, None, f"checkpoint of size {cp.size}: {bad}"))
    for ext in against:
        report.against += 1
        _check_against(hasher, row_hashes, ext, report)
    if apikeys is not None:
        _check_apikeys(apikeys, cps, report, receipts)
    if access_log is not None and hasattr(access_log, "chain_findings"):
        _check_access_log(access_log, cps, report)
    return report


def _check_access_log(access_log: Any, cps: Sequence[Any], report: Report) -> None:
    """The access log's rows against their chain, and the chain against every checkpoint's pin."""
    from core.audit.checkpoints import parse_access_log_extension
    from core.audit.notes import Checkpoint, SignedNote

    for text in access_log.chain_findings():
        report.findings.append(Finding("access-log", None, None, text))
    heads = access_log.chain_heads()
    for cp in cps:
        pinned = parse_access_log_extension(Checkpoint.parse(SignedNote.parse(cp.note).body).extensions)
        if pinned is None:
            continue
        count, head = pinned
        if count >= len(heads) or heads[count] != head:
            report.findings.append(
                Finding(
                    "access-log",
                    None,
                    None,
                    f"the checkpoint of {cp.size} leaves pins {count} access-log rows; the stored chain differs",
                )
            )


RECEIPT_TOPIC = "smd.MessageReceived"


def _check_apikeys(apikeys: Any, cps: Sequence[Any], report: Report, receipts: dict[int, str]) -> None:
    """The API-key rows against their chained records, the chain against every checkpoint, and
    every receipt's key against the keys the chain says were issued."""
    from core.apikeys import CHAIN_START, key_records_findings
    from core.audit.checkpoints import parse_apikeys_extension
    from core.audit.notes import Checkpoint, SignedNote

    for text in key_records_findings(apikeys):
        report.findings.append(Finding("api-key", None, None, text))
    chained = {r.split(" ")[2] for _, r, _ in apikeys.records() if r.split(" ")[1] == "issue"}
    for nid, key_id in sorted(receipts.items()):
        if key_id not in chained:
            report.findings.append(
                Finding(
                    "api-key",
                    nid,
                    None,
                    f"the message recorded here was authenticated by API key {key_id}, which was never issued"
                    " by the service (no chained issue record)",
                )
            )
            break
    heads = [CHAIN_START] + [h for _, _, h in apikeys.records()]
    for cp in cps:
        pinned = parse_apikeys_extension(Checkpoint.parse(SignedNote.parse(cp.note).body).extensions)
        if pinned is None:
            continue
        count, head = pinned
        if count >= len(heads) or heads[count] != head:
            report.findings.append(
                Finding(
                    "api-key",
                    None,
                    None,
                    f"the checkpoint of {cp.size} leaves pins {count} API-key records; the stored chain differs",
                )
            )


def _note_key(row: Any, receipts: dict[int, str]) -> None:
    """A receipt's key id, read off its stored JSON (receipts hold nothing sealed)."""
    try:
        key_id = json.loads(bytes(row.state)).get("key_id")
    except (ValueError, AttributeError, TypeError):
        return  # not JSON: the row is reported as altered anyway
    if isinstance(key_id, str):
        receipts[row.id] = key_id


def _roots(hasher: Hasher, hashes: Sequence[bytes], sizes: set[int]) -> dict[int, bytes]:
    """The tree heads of several prefixes, in one pass."""
    frontier: list[bytes] = []
    out = {0: hasher.empty()} if 0 in sizes else {}
    top = max((s for s in sizes if s <= len(hashes)), default=0)
    for i in range(top):
        completed_nodes(hasher, frontier, i, hashes[i])
        if i + 1 in sizes:
            out[i + 1] = root_from_frontier(hasher, frontier)
    return out


def _check_streams(hasher: Hasher, leaves: Sequence[Leaf], report: Report) -> None:
    heads: dict[str, tuple[int, bytes]] = {}
    for lf in leaves:
        _, head = heads.get(lf.originator_id, (0, stream_start(hasher)))
        expected = hasher.chain(head, lf.leaf_hash)
        if lf.stream_hash != expected:
            report.findings.append(
                Finding(
                    "chain", lf.notification_id, lf.leaf_index, f"stream {lf.originator_id}'s hash chain breaks here"
                )
            )
            return
        heads[lf.originator_id] = (lf.originator_version, expected)


def _check_nodes(hasher: Hasher, store: ChainStore, leaf_hashes: list[bytes], report: Report) -> None:
    """Every stored subtree equals the one recomputed from the leaves: those in the row of the
    leaf that completes them, and those of leaves stored before that (in the ``nodes`` table)."""

    def differs(level: int, idx: int) -> None:
        report.findings.append(
            Finding("node", None, idx << level, f"the stored subtree at level {level}, index {idx} differs")
        )

    frontier: list[bytes] = []
    older: dict[tuple[int, int], bytes] = {}  # what the nodes table must hold
    stored = store.subtrees()
    for i, h in enumerate(leaf_hashes):
        completed = completed_nodes(hasher, frontier, i, h)[1:]
        found = next(stored, None)
        if found is None or found[0] != i:
            report.findings.append(Finding("node", None, i, f"leaf {i}'s row is gone from under the check"))
            return
        subtrees = found[1]
        if subtrees is None:
            older.update(((level, idx), x) for level, idx, x in completed)
            continue
        if subtrees != b"".join(x for _, _, x in completed):
            for k, (level, idx, x) in enumerate(completed):
                if subtrees[k * hasher.size : (k + 1) * hasher.size] != x:
                    differs(level, idx)
                    return
            report.findings.append(Finding("node", None, i, f"leaf {i} stores subtrees it does not complete"))
            return
    for level, idx, h in store.older_nodes():
        expected = older.pop((level, idx), None)
        if expected is None:
            report.findings.append(Finding("node", None, None, f"level {level} stores subtrees beyond the leaves"))
            return
        if expected != h:
            differs(level, idx)
            return
    if older:
        level, idx = min(older, key=lambda k: ((k[1] + 1) << k[0], k[0]))
        report.findings.append(
            Finding("node", None, idx << level, f"the stored subtree at level {level}, index {idx} is missing")
        )


def _check_against(hasher: Hasher, row_hashes: list[bytes], ext: ExternalCheckpoint, report: Report) -> None:
    if ext.size > len(row_hashes):
        report.findings.append(
            Finding(
                "against",
                None,
                None,
                f"{ext.label}: signs {ext.size} leaves; the stored rows give only {len(row_hashes)}",
            )
        )
        return
    if any(not h for h in row_hashes[: ext.size]) or _roots(hasher, row_hashes, {ext.size})[ext.size] != ext.root:
        report.findings.append(
            Finding(
                "against",
                None,
                None,
                f"{ext.label}: the stored rows do not give its root for the first {ext.size} leaves:"
                " rows among them were rewritten (with the tree recomputed to match)",
            )
        )
