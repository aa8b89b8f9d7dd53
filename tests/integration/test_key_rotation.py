"""Master-key rotation: every data key re-wrapped, no event rewritten, a crash halfway harmless.

Runs on SQLite and on PostgreSQL. The crash is real: `smd master-key rotate` in a subprocess
that SIGKILLs itself after a few rows (SMD_FAULT=rotation-kill-after=N, test-only).
"""

from __future__ import annotations

import hashlib
import os
import signal
import subprocess
import sys
from datetime import date, timedelta
from pathlib import Path
from uuid import NAMESPACE_URL, uuid4, uuid5

import pytest
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from core.blind_index import BlindIndex
from core.key_rotation import check_unwraps_nothing, rotate
from core.keystore import NONCE_BYTES, KeyStore, KeyStoreError, MasterKey
from domain.identity import ID_NUMBER_MARKER_NAMESPACE, id_number_marker_id
from ops.bootstrap import build_keystore
from ops.cli_keys import fault_hook
from ops.settings import Settings, SettingsError, load_settings
from tests.integration.test_no_plaintext import stored_bytes
from tests.support.id_numbers import fictional_id_number
from tests.support.stores import Agency, open_services, random_key

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
K1, K2 = random_key(), random_key()
OLD, NEW = {"SMD_MASTER_KEY": K1, "SMD_MASTER_KEY_ID": "k1"}, {"SMD_MASTER_KEY": K2, "SMD_MASTER_KEY_ID": "k2"}
ROTATING = NEW | {"SMD_MASTER_KEY_PREVIOUS": K1, "SMD_MASTER_KEY_PREVIOUS_ID": "k1"}
# Personal markers (the ID number is a valid fictional one); the residence is the positive control.
ID_MARKER = fictional_id_number(date(1958, 3, 14), 271, "53")
MARKERS = {"name": "MKROTNAMEq7", "id_number": ID_MARKER, "phone": "MKROTPHONE3", "address": "MKROTADDR9z"}
CONTROL = "mkrotcontrol5"


def base_env(settings: Settings) -> dict[str, str]:
    """The environment that opens the test's store (data folder, and the database if any)."""
    env = {"SMD_DATA_DIR": str(settings.data_dir)}
    if settings.postgres is not None:
        pg = settings.postgres
        env["SMD_DATABASE_URL"] = f"postgresql://{pg.user}@{pg.host}:{pg.port}/{pg.dbname}"
    return env


def smd(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    """`smd …` in a fresh process, with only the given SMD_* variables."""
    clean = {k: v for k, v in os.environ.items() if not k.startswith("SMD_")}
    return subprocess.run(
        [sys.executable, "-m", "ops.cli", *args],
        env=clean | env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )


def register_patients(services, n: int, with_markers: bool = False) -> dict:
    """``n`` patients with names and ID numbers (the first carries the markers if asked)."""
    names = {}
    agency = Agency("hc-east")
    for i in range(n):
        patient = uuid4()
        personal = (
            MARKERS
            if with_markers and i == 0
            else {"name": f"Patient {i}", "id_number": fictional_id_number(date(1960, 1, 1) + timedelta(days=i), i)}
        )
        services.case_record.record(agency.register(patient, residence=CONTROL, **personal), "hc-east")
        services.case_record.record(agency.visit(patient, 1, "basically_stable"), "hc-east")
        names[patient] = personal["name"]
    return names


def stored_events(services) -> list[tuple]:
    rows = services.case_record.recorder.select_notifications(1, 100_000)
    return [(r.id, r.originator_id, r.originator_version, r.topic, bytes(r.state)) for r in rows]


def assert_readable(services, names: dict) -> None:
    for patient, name in names.items():
        assert services.case_record.patient(patient).personal.name == name


def assert_old_key_unwraps_nothing(settings: Settings, names: dict) -> None:
    """No row names k1, k1 decrypts no row, and a keystore holding only k1 reads nobody."""
    only_old = KeyStore(build_keystore(settings).table, MasterKey("k1", load_settings(OLD).master_key))
    try:
        check_unwraps_nothing(only_old, "k1")
        for patient in names:
            with pytest.raises(KeyStoreError, match="master key 'k2', which this process was not given"):
                only_old.existing_data_key(patient)
            row = only_old.table.get(patient)
            assert row is not None and row.master_key_id == "k2"
            for aad_id in ("k1", "k2"):  # the raw material of k1 opens nothing, whatever the label
                aad = b"smd-key|" + patient.bytes + b"|" + row.alg.encode() + b"|" + aad_id.encode()
                with pytest.raises(InvalidTag):
                    AESGCM(only_old.masters["k1"].secret).decrypt(
                        row.wrapped[:NONCE_BYTES], row.wrapped[NONCE_BYTES:], aad
                    )
    finally:
        only_old.close()


class TestRotation:
    def test_every_data_key_is_rewrapped_without_rewriting_any_event_and_the_old_key_then_unwraps_nothing(
        self, settings
    ) -> None:
        env = base_env(settings)
        before = open_services(load_settings(env | OLD), snapshot_every=2)
        names = register_patients(before, 5)
        events = stored_events(before)
        before.close()

        keystore = build_keystore(load_settings(env | ROTATING))
        report = rotate(keystore, batch=2)
        keystore.close()
        assert report.rewrapped == {"k1": 5} and report.complete

        after = open_services(load_settings(env | NEW))  # the new key alone reads everything
        try:
            assert_readable(after, names)
            assert stored_events(after) == events, "no event (or snapshot) was rewritten"
            assert after.keystore.table.master_key_counts() == {"k2": 5}
        finally:
            after.close()
        assert_old_key_unwraps_nothing(load_settings(env | NEW), names)

    def test_a_rotation_of_a_store_already_under_the_new_key_does_nothing(self, settings) -> None:
        env = base_env(settings)
        services = open_services(load_settings(env | NEW))
        register_patients(services, 2)
        services.close()
        keystore = build_keystore(load_settings(env | ROTATING))
        try:
            report = rotate(keystore)
        finally:
            keystore.close()
        assert report.rewrapped == {} and report.complete


@pytest.mark.slow
class TestRotationCrash:
    def test_a_rotation_killed_halfway_leaves_every_patient_readable_and_a_rerun_finishes_it(self, settings) -> None:
        env = base_env(settings)
        services = open_services(load_settings(env | OLD), snapshot_every=1)  # snapshots hold sealed values too
        names = register_patients(services, 10, with_markers=True)
        services.close()

        killed = smd(env | ROTATING | {"SMD_FAULT": "rotation-kill-after=3"}, "master-key", "rotate", "--batch", "2")
        assert killed.returncode == -signal.SIGKILL, killed.stderr

        table = build_keystore(load_settings(env | ROTATING)).table
        halfway = table.master_key_counts()
        assert halfway == {"k1": 6, "k2": 4}, "two batches of two committed before the kill"
        table.close()
        during = open_services(load_settings(env | ROTATING))  # both keys: every patient readable
        assert_readable(during, names)
        during.close()

        rerun = smd(env | ROTATING, "master-key", "rotate", "--batch", "2")
        assert rerun.returncode == 0, rerun.stderr
        assert "re-wrapped 6 data key(s) from k1 to k2" in rerun.stdout
        assert "no other master key unwraps anything" in rerun.stdout

        after = open_services(load_settings(env | NEW))
        try:
            assert_readable(after, names)
            marked = next(p for p, name in names.items() if name == MARKERS["name"])
            assert after.case_record.patient(marked).personal.id_number == ID_MARKER
            assert after.keystore.table.master_key_counts() == {"k2": 10}
            assert_old_key_unwraps_nothing(load_settings(env | NEW), names)
            self.assert_no_plaintext(settings, [killed.stdout, killed.stderr, rerun.stdout, rerun.stderr])
        finally:
            after.close()

    @staticmethod
    def assert_no_plaintext(settings: Settings, outputs: list[str]) -> None:
        """The storage issue's search, after rotation, with the ID number and its marker."""
        data = stored_bytes(settings)  # while the services are open (SQLite keeps its WAL file)
        marker = id_number_marker_id(BlindIndex(settings.blind_index_key).index(ID_MARKER))
        guessable = [uuid5(ID_NUMBER_MARKER_NAMESPACE, ID_MARKER), uuid5(NAMESPACE_URL, ID_MARKER)]
        for field, value in MARKERS.items():
            assert value.encode() not in data, f"{field} found in plaintext in the store"
            assert all(value not in out for out in outputs), f"{field} found in the CLI's output"
        assert hashlib.sha256(ID_MARKER.encode()).hexdigest().encode() not in data
        assert BlindIndex(settings.blind_index_key).index(ID_MARKER).split(":")[1].encode() not in data
        for plain in guessable:
            assert str(plain).encode() not in data and plain.hex.encode() not in data
        # SQLite stores ids as hex, pg_dump prints them hyphenated
        assert str(marker).encode() in data or marker.hex.encode() in data, "the marker is stored under its keyed id"
        assert CONTROL.encode() in data, "the positive control is found by the same search"


class TestDevelopmentRotation:
    def test_rotate_in_development_generates_the_next_key_and_keeps_the_old_one_as_previous(self, settings) -> None:
        env = base_env(settings)
        services = open_services(load_settings(env))
        names = register_patients(services, 3)
        services.close()

        first = smd(env, "master-key", "rotate")
        assert first.returncode == 0, first.stderr
        assert "generated development master key dev-2" in first.stdout
        rotated = load_settings(env)
        assert (rotated.master_key_id, rotated.master_key_previous_id) == ("dev-2", "dev-1")
        assert (Path(settings.data_dir) / "keys" / "master-dev-2.key").stat().st_mode & 0o077 == 0

        status = smd(env, "master-key", "status")
        assert "dev-2" in status.stdout and "current" in status.stdout and "3 data key(s)" in status.stdout

        second = smd(env, "master-key", "rotate")
        assert second.returncode == 0 and "re-wrapped 3 data key(s) from dev-2 to dev-3" in second.stdout
        services = open_services(load_settings(env))
        try:
            assert services.keystore.current.key_id == "dev-3"
            assert set(services.keystore.masters) == {"dev-3", "dev-2"}  # dev-1 is no longer given
            assert_readable(services, names)
        finally:
            services.close()


class TestRotationSettings:
    def test_a_previous_key_without_its_id_is_refused(self, tmp_path) -> None:
        with pytest.raises(SettingsError, match="SMD_MASTER_KEY_PREVIOUS_ID: set both"):
            load_settings({"SMD_DATA_DIR": str(tmp_path), **NEW, "SMD_MASTER_KEY_PREVIOUS": K1})

    def test_a_previous_key_named_like_the_current_one_is_refused(self, tmp_path) -> None:
        with pytest.raises(SettingsError, match="the current key's id"):
            load_settings(
                {
                    "SMD_DATA_DIR": str(tmp_path),
                    **NEW,
                    "SMD_MASTER_KEY_PREVIOUS": K1,
                    "SMD_MASTER_KEY_PREVIOUS_ID": "k2",
                }
            )

    def test_the_fault_injection_is_ignored_in_production(self, tmp_path) -> None:
        fault = {"SMD_FAULT": "rotation-kill-after=1", "SMD_BLIND_INDEX_KEY": random_key()}
        production = load_settings(
            {
                "SMD_MODE": "production",
                "SMD_DATA_DIR": str(tmp_path),
                **NEW,
                **fault,
                "SMD_CHECKPOINT_KEY": random_key(),
            }
        )
        assert fault_hook(production) is None
        assert fault_hook(load_settings({"SMD_DATA_DIR": str(tmp_path), **NEW, **fault})) is not None
