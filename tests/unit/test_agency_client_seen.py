"""The agency client's dedup file: the keys of handled messages, kept across a restart."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

from integrations.agency_client import SeenIds


def test_a_key_recorded_is_seen_again_after_the_file_is_reopened(tmp_path: Path) -> None:
    path = tmp_path / "seen.sqlite3"
    first = SeenIds(path)
    assert not first.seen("3b0e5f0c-8a51-4a0e-9a57-6f1f2f7f9c11")
    assert first.record("3b0e5f0c-8a51-4a0e-9a57-6f1f2f7f9c11", "agency-hc-north-out")
    assert not first.record("3b0e5f0c-8a51-4a0e-9a57-6f1f2f7f9c11", "agency-hc-north-out")  # once
    first.close()
    again = SeenIds(path)  # a restart
    assert again.seen("3b0e5f0c-8a51-4a0e-9a57-6f1f2f7f9c11") and again.count() == 1
    again.close()


def test_keys_older_than_the_streams_keep_messages_can_be_forgotten(tmp_path: Path) -> None:
    seen = SeenIds(tmp_path / "seen.sqlite3")
    seen.record("rejected:7", "agency-hc-north-rejected")
    assert seen.forget_before(datetime.now(UTC) - timedelta(days=30)) == 0  # handled just now: kept
    assert seen.forget_before(datetime.now(UTC) + timedelta(seconds=1)) == 1
    assert not seen.seen("rejected:7")
    seen.close()
