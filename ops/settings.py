"""The service's settings: one typed object, read from the environment in one place.

Every variable starts with ``SMD_``. A bad or missing value stops start-up with one line that
names the variable and says what is wrong (``SettingsError``).
"""

from __future__ import annotations

import base64
import os
import re
import secrets
from collections.abc import Callable
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Literal
from urllib.parse import unquote, urlsplit

import limits
import msgspec

from core.contract import DEFAULT_LIMITS, WireLimits
from domain.values import EARLIEST_OCCURRED
from ops import dev_master_keys

KEY_BYTES = 32


class SettingsError(Exception):
    """A setting is missing or invalid; the message names the variable and the fix."""


class PostgresTarget(msgspec.Struct, frozen=True):
    """Where the PostgreSQL store lives, parsed from ``SMD_DATABASE_URL``."""

    dbname: str
    host: str = "127.0.0.1"
    port: int = 5432
    user: str = ""
    password: str = ""

    def conninfo(self) -> str:
        """A libpq connection string (never logged: it may carry a password)."""
        parts = [f"dbname={self.dbname}", f"host={self.host}", f"port={self.port}"]
        if self.user:
            parts.append(f"user={self.user}")
        if self.password:
            parts.append(f"password={self.password}")
        return " ".join(parts)


class PeerConfig(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """A linked region as this one knows it (an entry of SMD_CROSSREGION_PEERS): its code, the
    verifier keys of its message-signing keys (current first, then retired) and its sealing key."""

    region: str
    verifiers: tuple[str, ...]
    seal_public: str  # base64 of the 32-byte X25519 public key
    js_domain: str = ""  # its NATS server's JetStream domain (the link sources its stream from there)
    #: its checkpoint verifier keys (current first, then retired): this region witnesses its log
    checkpoint_verifiers: tuple[str, ...] = ()
    #: the verifier key of its witness of this region's log: asked to cosign each checkpoint
    witness: str = ""


class Settings(msgspec.Struct, frozen=True, kw_only=True):
    """Everything the composition root needs to wire the service."""

    mode: Literal["development", "production"] = "development"
    """SMD_MODE: development generates key material into the data folder; production requires it."""
    data_dir: Path = Path("data")
    """SMD_DATA_DIR: folder for SQLite files, generated development keys and local state."""
    postgres: PostgresTarget | None = None
    """SMD_DATABASE_URL: postgresql://user:pass@host:port/db; empty means SQLite in data_dir."""
    postgres_replica: PostgresTarget | None = None
    """SMD_DATABASE_READ_URL: a streaming replica of SMD_DATABASE_URL serving the API's pages."""
    nats_url: str | None = None
    """SMD_NATS_URL: nats://host:port, or the servers of one cluster comma-separated; empty means
    HTTP intake only (no NATS)."""
    nats_replicas: int = 1
    """SMD_NATS_REPLICAS: how many servers keep each stream the service declares (1 on a single
    server; 3 on the production cluster)."""
    subject_root: str = "smd"
    """SMD_SUBJECT_ROOT: first token of every NATS subject and prefix of stream names."""
    region: str = "990101"
    """SMD_REGION: this deployment's county-level region code (fictional default)."""
    host: str = "127.0.0.1"
    """SMD_HOST: address the HTTP API binds to."""
    port: int = 8000
    """SMD_PORT: port the HTTP API binds to."""
    master_key: bytes = b""
    """SMD_MASTER_KEY: base64 of 32 random bytes; wraps every patient data key."""
    master_key_id: str = ""
    """SMD_MASTER_KEY_ID: name of the master key (stored beside each wrapped data key)."""
    master_key_previous: bytes | None = None
    """SMD_MASTER_KEY_PREVIOUS: during a rotation, the key being retired (reads still need it)."""
    master_key_previous_id: str | None = None
    """SMD_MASTER_KEY_PREVIOUS_ID: name of the previous master key (set both or neither)."""
    blind_index_key: bytes = b""
    """SMD_BLIND_INDEX_KEY: base64 of 32 random bytes; keys the blind index of identifiers."""
    log_format: Literal["auto", "json", "console"] = "auto"
    """SMD_LOG_FORMAT: json when not on a terminal (auto), or forced."""
    earliest_time: datetime = EARLIEST_OCCURRED
    """SMD_EARLIEST_TIME: facts dated before it are refused at the door (a date means 00:00 UTC)."""
    lag_degraded_seconds: float = 60.0
    """SMD_LAG_DEGRADED_SECONDS: a follower further behind the log than this makes /readyz "degraded"."""
    max_message_bytes: int = DEFAULT_LIMITS.max_bytes
    """SMD_MAX_MESSAGE_BYTES: the largest JSON message (envelope or request body) taken, in bytes."""
    max_json_depth: int = DEFAULT_LIMITS.max_depth
    """SMD_MAX_JSON_DEPTH: how deep objects and arrays of a JSON message may nest."""
    auth_failures_per_address: str = "20/minute"
    """SMD_AUTH_FAILURES_PER_ADDRESS: failed authentications from one client address before 429."""
    auth_failures_per_key: str = "10/minute"
    """SMD_AUTH_FAILURES_PER_KEY: failed authentications naming one key id before 429."""
    console_session_minutes: int = 30
    """SMD_CONSOLE_SESSION_MINUTES: how long a governance console session lasts after sign-in (1-720)."""
    waiting_window_seconds: float = 86400.0
    """SMD_WAITING_WINDOW_SECONDS: how long a fact waits for the record it refers to (then refused)."""
    intake_ack_wait_seconds: float = 30.0
    """SMD_INTAKE_ACK_WAIT_SECONDS: the intake consumer's AckWait: a message a crashed intake held
    comes back after this (the same for every intake process of a region)."""
    intake_batch: int = 100
    """SMD_INTAKE_BATCH: how many NATS messages the intake fetches and stores as one unit of work."""
    batch_limit: int = 1000
    """SMD_BATCH_LIMIT: the most envelopes one ``POST /v1/events/batch`` may carry."""
    fault: str = ""
    """SMD_FAULT: test and demonstration only: a crash or a failing rule to inject
    (``rule-fails-for=<patient id>``, ``intake-kill-after-commit``, ``outbox-kill-after-publish``,
    ``rotation-kill-after=N``); empty in any real deployment."""
    log_origin: str = ""
    """SMD_LOG_ORIGIN: the verifiable log's origin line and checkpoint key name (default smd.example/<region>)."""
    checkpoint_key: bytes = b""
    """SMD_CHECKPOINT_KEY: base64 of the 32-byte Ed25519 seed that signs checkpoints."""
    checkpoint_verifiers_retired: tuple[str, ...] = ()
    """SMD_CHECKPOINT_VERIFIERS_RETIRED: verifier keys of checkpoint keys rotated out (comma-separated)."""
    checkpoint_every_events: int = 1000
    """SMD_CHECKPOINT_EVERY_EVENTS: sign a checkpoint after this many new leaves."""
    checkpoint_every_seconds: float = 300.0
    """SMD_CHECKPOINT_EVERY_SECONDS: or after this many seconds, when there is anything new."""
    witnesses: tuple[str, ...] = ()
    """SMD_WITNESSES: verifier keys of the witnesses asked to cosign each checkpoint (comma-separated)."""
    checkpoint_degraded_seconds: float = 900.0
    """SMD_CHECKPOINT_DEGRADED_SECONDS: leaves left unsigned longer than this make the instance degraded."""
    cosignature_degraded_seconds: float = 900.0
    """SMD_COSIGNATURE_DEGRADED_SECONDS: a witness's cosignature of the latest checkpoint missing this long
    after it was signed makes the instance degraded."""
    erasure_cooling_off_days: float = 30.0
    """SMD_ERASURE_COOLING_OFF_DAYS: days between an erasure's approval and the destruction of the key."""
    source_retention_days: float = 30.0
    """SMD_SOURCE_RETENTION_DAYS: days an uploaded source list's rows are kept before they are deleted."""
    crossregion_key: bytes = b""
    """SMD_CROSSREGION_KEY: base64 of the 32-byte Ed25519 seed that signs this region's cross-region messages
    (required in production once SMD_CROSSREGION_PEERS names a linked region; unset: a key of this run only)."""
    crossregion_seal_key: bytes = b""
    """SMD_CROSSREGION_SEAL_KEY: base64 of the 32-byte X25519 private key personal fields are sealed to."""
    crossregion_seal_keys_retired: tuple[bytes, ...] = ()
    """SMD_CROSSREGION_SEAL_KEYS_RETIRED: sealing keys rotated out (comma-separated base64): what was
    sealed to them before the rotation still opens."""
    crossregion_peers: tuple[PeerConfig, ...] = ()
    """SMD_CROSSREGION_PEERS: a JSON file naming each linked region's public keys."""
    handover_answer_days: float = 10.0
    """SMD_HANDOVER_ANSWER_DAYS: how long the destination has to accept or reject a handover."""
    handover_check_seconds: float = 60.0
    """SMD_HANDOVER_CHECK_SECONDS: how often the background work looks for handovers past their deadline."""
    dual_management_regions: tuple[str, ...] = ()
    """SMD_DUAL_MANAGEMENT_REGIONS: linked regions outside this city that this region feeds, by
    agreement, about the patients it took over from them (regions of one city always are)."""
    crossregion_domain: str = ""
    """SMD_CROSSREGION_DOMAIN: this region's NATS JetStream domain (its server's ``jetstream { domain }``),
    where the linked regions source its handover messages from; required with SMD_NATS_URL and peers."""
    crossregion_nats_url: str | None = None
    """SMD_CROSSREGION_NATS_URL: the connection to the cross-region account XR of this region's server
    (user smd-crossregion); default SMD_NATS_URL."""
    witness_key: bytes = b""
    """SMD_WITNESS_KEY: base64 of the 32-byte Ed25519 seed with which this region cosigns the checkpoints of
    the linked regions' logs (required in production once a peer lists its checkpoint_verifiers)."""

    @property
    def witness_name(self) -> str:
        """The name this region's witness key goes by in cosignatures."""
        return f"{self.log_origin}/witness"

    @property
    def peer_witnesses(self) -> tuple[tuple[str, str], ...]:
        """(region, witness verifier key) of each linked region that witnesses this region's log."""
        return tuple((p.region, p.witness) for p in self.crossregion_peers if p.witness)

    @property
    def all_witnesses(self) -> tuple[str, ...]:
        """Every witness asked to cosign: SMD_WITNESSES, then the linked regions' witnesses."""
        return (*self.witnesses, *(w for _, w in self.peer_witnesses))

    @property
    def wire_limits(self) -> WireLimits:
        """The byte-level limits every JSON message is checked against (core.contract)."""
        return WireLimits(max_bytes=self.max_message_bytes, max_depth=self.max_json_depth)

    @property
    def store_kind(self) -> Literal["sqlite", "postgres"]:
        """Which event store the deployment uses."""
        return "postgres" if self.postgres else "sqlite"


_TOKEN = re.compile(r"^[A-Za-z0-9_-]+$")


def _fail(var: str, problem: str) -> SettingsError:
    return SettingsError(f"{var}: {problem}")


def nats_servers(value: str) -> list[str]:
    """The comma-separated server URLs of one NATS cluster, in order, without blanks."""
    return [u.strip() for u in value.split(",") if u.strip()]


#: JetStream keeps a stream on at most 5 servers.
MAX_NATS_REPLICAS = 5


def parse_database_url(value: str, var: str = "SMD_DATABASE_URL") -> PostgresTarget:
    """Parse a postgresql:// URL into a target, or say what is wrong with it."""
    parts = urlsplit(value)
    if parts.scheme not in ("postgresql", "postgres"):
        raise _fail(var, f"expected postgresql://user@host:port/dbname, got scheme {parts.scheme!r}")
    dbname = parts.path.lstrip("/")
    if not dbname:
        raise _fail(var, "the URL names no database (add /dbname at the end)")
    try:
        port = parts.port or 5432
    except ValueError:
        raise _fail(var, "the port is not a number") from None
    return PostgresTarget(
        dbname=unquote(dbname),
        host=parts.hostname or "127.0.0.1",
        port=port,
        user=unquote(parts.username or ""),
        password=unquote(parts.password or ""),
    )


#: The earliest SMD_EARLIEST_TIME may be: rules look back from a fact's time without underflowing.
EARLIEST_TIME_FLOOR = datetime(1000, 1, 1, tzinfo=UTC)


def parse_earliest_time(value: str, var: str = "SMD_EARLIEST_TIME") -> datetime:
    """A date (YYYY-MM-DD, meaning 00:00 UTC) or an RFC 3339 time with its UTC offset."""
    try:
        if len(value) == 10:
            parsed = datetime.combine(date.fromisoformat(value), datetime.min.time(), UTC)
        else:
            parsed = datetime.fromisoformat(value)
    except ValueError:
        raise _fail(var, f"expected a date such as 1900-01-01 or a time with its offset, got {value!r}") from None
    if parsed.tzinfo is None or parsed.utcoffset() is None:
        raise _fail(var, f"{value!r} has no UTC offset; give a date (1900-01-01) or e.g. 1900-01-01T00:00:00+08:00")
    if not EARLIEST_TIME_FLOOR <= parsed <= datetime.now(UTC):
        raise _fail(var, f"must be between {EARLIEST_TIME_FLOOR.date().isoformat()} and now, got {value!r}")
    return parsed


#: Bounds of SMD_MAX_MESSAGE_BYTES: below 4 KiB an envelope with long texts would not fit; above
#: 1 MiB (NATS's default max_payload) a message could not arrive over NATS anyway.
MIN_MESSAGE_BYTES, MAX_MESSAGE_BYTES = 4096, 1024 * 1024
#: Bounds of SMD_MAX_JSON_DEPTH: an envelope nests 3 deep; the JSON decoders recurse per level.
MIN_JSON_DEPTH, MAX_JSON_DEPTH = 4, 200


def _int_setting(get: Callable[[str], str], var: str, default: int, low: int, high: int) -> int:
    text = get(var) or str(default)
    if not text.isdigit() or not low <= int(text) <= high:
        raise _fail(var, f"must be a whole number from {low} to {high}, got {text!r}")
    return int(text)


def _seconds_setting(get: Callable[[str], str], var: str, default: float, high: float) -> float:
    """A number of seconds above 0 and at most ``high``."""
    text = get(var) or f"{default:g}"
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not 0 < value <= high:
        raise _fail(var, f"must be a number of seconds above 0 and at most {high:g}, got {text!r}")
    return value


def _rate_setting(get: Callable[[str], str], var: str, default: str) -> str:
    """A rate such as ``20/minute`` or ``100 per hour`` (the ``limits`` library's notation)."""
    text = get(var) or default
    try:
        item = limits.parse(text)
    except ValueError:
        item = None
    if item is None or item.amount < 1:
        raise _fail(var, f"expected a rate such as 20/minute or 100 per hour, got {text!r}")
    return text


def _decode_key(var: str, value: str) -> bytes:
    try:
        key = base64.b64decode(value, validate=True)
    except ValueError:
        raise _fail(var, "not valid base64 (generate one with: openssl rand -base64 32)") from None
    if len(key) != KEY_BYTES:
        raise _fail(var, f"must decode to {KEY_BYTES} bytes, got {len(key)}")
    return key


def _development_key(data_dir: Path, name: str) -> bytes:
    """A key generated once into the data folder and reused on every start."""
    keys = data_dir / "keys"
    keys.mkdir(parents=True, exist_ok=True, mode=0o700)
    path = keys / name
    if not path.exists():
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(base64.b64encode(secrets.token_bytes(KEY_BYTES)).decode() + "\n")
    return _decode_key(str(path), path.read_text().strip())


def _verifier_list(get: Callable[[str], str], var: str) -> tuple[str, ...]:
    """Comma-separated signed-note verifier keys (``name+keyid+base64``), each checked."""
    from core.audit.notes import NoteError, Verifier

    out = tuple(v.strip() for v in get(var).split(",") if v.strip())
    for v in out:
        try:
            Verifier.decode(v)
        except NoteError as e:
            raise _fail(var, f"{e} (expected name+keyid+base64, as `smd audit keys` prints)") from None
    return out


def _peers(path_text: str, region: str) -> tuple[PeerConfig, ...]:
    """The linked regions of SMD_CROSSREGION_PEERS (a JSON list of PeerConfig), each checked."""
    var = "SMD_CROSSREGION_PEERS"
    if not path_text:
        return ()
    from core.audit.notes import NoteError, Verifier

    try:
        peers = msgspec.json.decode(Path(path_text).read_bytes(), type=tuple[PeerConfig, ...])
    except OSError as e:
        raise _fail(var, f"cannot read {path_text}: {e.strerror}") from None
    except (msgspec.ValidationError, msgspec.DecodeError) as e:
        raise _fail(var, f"expected a JSON list of {{region, verifiers, seal_public}}: {e}") from None
    for peer in peers:
        if not re.fullmatch(r"\d{6}", peer.region) or peer.region == region:
            raise _fail(var, f"peer region {peer.region!r}: a 6-digit region code other than this one")
        if not peer.verifiers:
            raise _fail(var, f"peer region {peer.region}: at least one verifier key")
        for v in peer.verifiers:
            try:
                Verifier.decode(v)
            except NoteError as e:
                raise _fail(var, f"peer region {peer.region}: {e}") from None
        _decode_key(f"{var} (seal_public of {peer.region})", peer.seal_public)
        for v in (*peer.checkpoint_verifiers, *([peer.witness] if peer.witness else [])):
            try:
                Verifier.decode(v)
            except NoteError as e:
                raise _fail(var, f"peer region {peer.region}: {e}") from None
    if len({p.region for p in peers}) != len(peers):
        raise _fail(var, "a region is named twice")
    return peers


def _previous_master_key(get: Callable[[str], str]) -> tuple[str, bytes] | None:
    """SMD_MASTER_KEY_PREVIOUS(_ID): both or neither."""
    key, key_id = get("SMD_MASTER_KEY_PREVIOUS"), get("SMD_MASTER_KEY_PREVIOUS_ID")
    if bool(key) != bool(key_id):
        missing = "SMD_MASTER_KEY_PREVIOUS_ID" if key else "SMD_MASTER_KEY_PREVIOUS"
        raise _fail(missing, "set both SMD_MASTER_KEY_PREVIOUS and SMD_MASTER_KEY_PREVIOUS_ID, or neither")
    return (key_id, _decode_key("SMD_MASTER_KEY_PREVIOUS", key)) if key else None


def load_settings(environ: dict[str, str] | None = None) -> Settings:
    """Read and validate the settings from the environment (or the given mapping)."""
    env = dict(os.environ if environ is None else environ)

    def get(name: str) -> str:
        return env.get(name, "").strip()

    mode = get("SMD_MODE") or "development"
    if mode not in ("development", "production"):
        raise _fail("SMD_MODE", f"must be 'development' or 'production', got {mode!r}")
    data_dir = Path(get("SMD_DATA_DIR") or "data").resolve()

    postgres = parse_database_url(get("SMD_DATABASE_URL")) if get("SMD_DATABASE_URL") else None
    replica = (
        parse_database_url(get("SMD_DATABASE_READ_URL"), "SMD_DATABASE_READ_URL")
        if get("SMD_DATABASE_READ_URL")
        else None
    )
    if replica is not None and postgres is None:
        raise _fail(
            "SMD_DATABASE_READ_URL", "is a replica of SMD_DATABASE_URL, which is not set (SQLite has no replica)"
        )

    nats_url = ",".join(nats_servers(get("SMD_NATS_URL"))) or None
    for server in nats_servers(nats_url or ""):
        if not server.startswith(("nats://", "tls://", "ws://", "wss://")):
            where = server.rpartition("@")[2]  # a URL may carry a password: never echoed
            raise _fail("SMD_NATS_URL", f"expected nats://host:port (comma-separated for a cluster), got {where!r}")
    nats_replicas = _int_setting(get, "SMD_NATS_REPLICAS", 1, 1, MAX_NATS_REPLICAS)

    for var, default in (("SMD_SUBJECT_ROOT", "smd"), ("SMD_REGION", "990101")):
        value = get(var) or default
        if not _TOKEN.match(value):
            raise _fail(var, "use letters, digits, '-' or '_' only (it is a NATS subject token)")

    port_text = get("SMD_PORT") or "8000"
    if not port_text.isdigit() or not 0 < int(port_text) < 65536:
        raise _fail("SMD_PORT", f"must be a port number 1-65535, got {port_text!r}")

    log_format = get("SMD_LOG_FORMAT") or "auto"
    if log_format not in ("auto", "json", "console"):
        raise _fail("SMD_LOG_FORMAT", "must be auto, json or console")

    earliest_time = parse_earliest_time(get("SMD_EARLIEST_TIME")) if get("SMD_EARLIEST_TIME") else EARLIEST_OCCURRED

    lag_text = get("SMD_LAG_DEGRADED_SECONDS") or "60"
    try:
        lag_degraded_seconds = float(lag_text)
    except ValueError:
        lag_degraded_seconds = -1.0
    if not 0 < lag_degraded_seconds < float("inf"):
        raise _fail("SMD_LAG_DEGRADED_SECONDS", f"must be a number of seconds above 0, got {lag_text!r}")

    max_message_bytes = _int_setting(
        get, "SMD_MAX_MESSAGE_BYTES", DEFAULT_LIMITS.max_bytes, MIN_MESSAGE_BYTES, MAX_MESSAGE_BYTES
    )
    max_json_depth = _int_setting(get, "SMD_MAX_JSON_DEPTH", DEFAULT_LIMITS.max_depth, MIN_JSON_DEPTH, MAX_JSON_DEPTH)
    auth_failures_per_address = _rate_setting(get, "SMD_AUTH_FAILURES_PER_ADDRESS", "20/minute")
    auth_failures_per_key = _rate_setting(get, "SMD_AUTH_FAILURES_PER_KEY", "10/minute")
    console_session_minutes = _int_setting(get, "SMD_CONSOLE_SESSION_MINUTES", 30, 1, 720)
    ack_wait_text = get("SMD_INTAKE_ACK_WAIT_SECONDS") or "30"
    try:
        intake_ack_wait_seconds = float(ack_wait_text)
    except ValueError:
        intake_ack_wait_seconds = -1.0
    if not 1 <= intake_ack_wait_seconds <= 3600:
        raise _fail("SMD_INTAKE_ACK_WAIT_SECONDS", f"must be a number of seconds from 1 to 3600, got {ack_wait_text!r}")

    intake_batch = _int_setting(get, "SMD_INTAKE_BATCH", 100, 1, 500)  # at most the consumer's max_ack_pending
    batch_limit = _int_setting(get, "SMD_BATCH_LIMIT", 1000, 1, 10000)

    window_text = get("SMD_WAITING_WINDOW_SECONDS") or "86400"
    try:
        waiting_window_seconds = float(window_text)
    except ValueError:
        waiting_window_seconds = -1.0
    if not 0 < waiting_window_seconds < float("inf"):
        raise _fail("SMD_WAITING_WINDOW_SECONDS", f"must be a number of seconds above 0, got {window_text!r}")

    region = get("SMD_REGION") or "990101"
    log_origin = get("SMD_LOG_ORIGIN") or f"smd.example/{region}"
    if not re.fullmatch(r"[!-*,-~]+", log_origin):  # a signed-note key name: no spaces, no '+'
        raise _fail("SMD_LOG_ORIGIN", "use printable characters without spaces or '+' (e.g. smd.example/990101)")
    checkpoint_every_events = _int_setting(get, "SMD_CHECKPOINT_EVERY_EVENTS", 1000, 1, 10_000_000)
    every_text = get("SMD_CHECKPOINT_EVERY_SECONDS") or "300"
    try:
        checkpoint_every_seconds = float(every_text)
    except ValueError:
        checkpoint_every_seconds = -1.0
    if not 1 <= checkpoint_every_seconds <= 86400:
        raise _fail("SMD_CHECKPOINT_EVERY_SECONDS", f"must be a number of seconds from 1 to 86400, got {every_text!r}")
    checkpoint_degraded = _seconds_setting(get, "SMD_CHECKPOINT_DEGRADED_SECONDS", 900.0, 604800.0)
    cosignature_degraded = _seconds_setting(get, "SMD_COSIGNATURE_DEGRADED_SECONDS", 900.0, 604800.0)
    retired = _verifier_list(get, "SMD_CHECKPOINT_VERIFIERS_RETIRED")
    if not retired and mode == "development" and (data_dir / "keys" / "checkpoint-retired.txt").exists():
        retired = tuple(
            line.strip()
            for line in (data_dir / "keys" / "checkpoint-retired.txt").read_text().splitlines()
            if line.strip()
        )
    witnesses = _verifier_list(get, "SMD_WITNESSES")
    cooling_text = get("SMD_ERASURE_COOLING_OFF_DAYS") or "30"
    try:
        erasure_cooling_off_days = float(cooling_text)
    except ValueError:
        erasure_cooling_off_days = -1.0
    if not 0 <= erasure_cooling_off_days <= 3650:
        raise _fail("SMD_ERASURE_COOLING_OFF_DAYS", f"must be a number of days from 0 to 3650, got {cooling_text!r}")

    retention_text = get("SMD_SOURCE_RETENTION_DAYS") or "30"
    try:
        source_retention_days = float(retention_text)
    except ValueError:
        source_retention_days = -1.0
    if not 0 < source_retention_days <= 366:
        raise _fail(
            "SMD_SOURCE_RETENTION_DAYS", f"must be a number of days above 0, at most 366, got {retention_text!r}"
        )

    answer_text = get("SMD_HANDOVER_ANSWER_DAYS") or "10"
    try:
        handover_answer_days = float(answer_text)
    except ValueError:
        handover_answer_days = -1.0
    if not 0 < handover_answer_days <= 90:
        raise _fail("SMD_HANDOVER_ANSWER_DAYS", f"must be a number of days above 0, at most 90, got {answer_text!r}")
    check_text = get("SMD_HANDOVER_CHECK_SECONDS") or "60"
    try:
        handover_check_seconds = float(check_text)
    except ValueError:
        handover_check_seconds = -1.0
    if not 0 < handover_check_seconds <= 3600:
        raise _fail(
            "SMD_HANDOVER_CHECK_SECONDS", f"must be a number of seconds above 0, at most 3600, got {check_text!r}"
        )
    dual_management_regions = tuple(r.strip() for r in get("SMD_DUAL_MANAGEMENT_REGIONS").split(",") if r.strip())
    for r in dual_management_regions:
        if not re.fullmatch(r"\d{6}", r):
            raise _fail("SMD_DUAL_MANAGEMENT_REGIONS", f"must be comma-separated six-digit region codes, got {r!r}")
    seal_retired = tuple(
        _decode_key("SMD_CROSSREGION_SEAL_KEYS_RETIRED", k.strip())
        for k in get("SMD_CROSSREGION_SEAL_KEYS_RETIRED").split(",")
        if k.strip()
    )
    peers = _peers(get("SMD_CROSSREGION_PEERS"), get("SMD_REGION") or "990101")
    crossregion_domain = get("SMD_CROSSREGION_DOMAIN")
    if crossregion_domain and not re.fullmatch(r"[A-Za-z0-9_-]{1,32}", crossregion_domain):
        raise _fail(
            "SMD_CROSSREGION_DOMAIN", f"a JetStream domain name (letters, digits, - _), got {crossregion_domain!r}"
        )
    crossregion_nats_url = ",".join(nats_servers(get("SMD_CROSSREGION_NATS_URL"))) or nats_url
    if peers and crossregion_nats_url:
        if not crossregion_domain:
            raise _fail(
                "SMD_CROSSREGION_DOMAIN", "required with SMD_NATS_URL and linked regions (SMD_CROSSREGION_PEERS)"
            )
        for peer in peers:
            if not peer.js_domain or peer.js_domain == crossregion_domain:
                raise _fail(
                    "SMD_CROSSREGION_PEERS",
                    f"peer region {peer.region}: js_domain, its server's JetStream domain (not this one's), "
                    "as its `smd crossregion peer-entry` prints with SMD_CROSSREGION_DOMAIN set",
                )

    keys: dict[str, bytes] = {}
    for var, filename in (
        ("SMD_MASTER_KEY", "master.key"),
        ("SMD_BLIND_INDEX_KEY", "blind-index.key"),
        ("SMD_CHECKPOINT_KEY", "checkpoint.key"),
        ("SMD_CROSSREGION_KEY", "crossregion.key"),
        ("SMD_CROSSREGION_SEAL_KEY", "crossregion-seal.key"),
        ("SMD_WITNESS_KEY", "witness.key"),
    ):
        if get(var):
            keys[var] = _decode_key(var, get(var))
        elif mode == "production" and var == "SMD_WITNESS_KEY" and not any(p.checkpoint_verifiers for p in peers):
            # witnesses no linked region's log: no key needed (peer-entry then names no witness)
            keys[var] = b""
        elif mode == "production" and var.startswith("SMD_CROSSREGION_") and not peers:
            # a region linked to none sends and opens no cross-region message: a key nobody
            # knows will do, and `smd crossregion peer-entry` refuses to print it (ops/cli_nats.py)
            keys[var] = b""
        elif mode == "production":
            raise _fail(var, "required in production (base64 of 32 random bytes)")
        else:
            keys[var] = _development_key(data_dir, filename)
    master_key_id = get("SMD_MASTER_KEY_ID") or ("dev-1" if mode == "development" and not get("SMD_MASTER_KEY") else "")
    if not master_key_id:
        raise _fail("SMD_MASTER_KEY_ID", "name the master key (it is stored beside wrapped keys)")
    previous = _previous_master_key(get)
    if mode == "development" and not get("SMD_MASTER_KEY") and not get("SMD_MASTER_KEY_ID"):
        # after `smd master-key rotate` in development, the keys folder names current and previous
        dev = dev_master_keys.read(data_dir / "keys")
        if dev is not None:
            master_key_id, keys["SMD_MASTER_KEY"] = dev.current
            previous = previous or dev.previous
    if previous is not None and previous[0] == master_key_id:
        raise _fail("SMD_MASTER_KEY_PREVIOUS_ID", f"is {master_key_id!r}, the current key's id; name the retired key")

    return Settings(
        mode=mode,  # type: ignore[arg-type]
        data_dir=data_dir,
        postgres=postgres,
        postgres_replica=replica,
        nats_url=nats_url,
        nats_replicas=nats_replicas,
        subject_root=get("SMD_SUBJECT_ROOT") or "smd",
        region=get("SMD_REGION") or "990101",
        host=get("SMD_HOST") or "127.0.0.1",
        port=int(port_text),
        master_key=keys["SMD_MASTER_KEY"],
        master_key_id=master_key_id,
        master_key_previous=previous[1] if previous else None,
        master_key_previous_id=previous[0] if previous else None,
        blind_index_key=keys["SMD_BLIND_INDEX_KEY"],
        log_format=log_format,  # type: ignore[arg-type]
        earliest_time=earliest_time,
        lag_degraded_seconds=lag_degraded_seconds,
        max_message_bytes=max_message_bytes,
        max_json_depth=max_json_depth,
        auth_failures_per_address=auth_failures_per_address,
        auth_failures_per_key=auth_failures_per_key,
        console_session_minutes=console_session_minutes,
        waiting_window_seconds=waiting_window_seconds,
        intake_ack_wait_seconds=intake_ack_wait_seconds,
        intake_batch=intake_batch,
        batch_limit=batch_limit,
        fault=get("SMD_FAULT"),
        log_origin=log_origin,
        checkpoint_key=keys["SMD_CHECKPOINT_KEY"],
        checkpoint_verifiers_retired=retired,
        checkpoint_every_events=checkpoint_every_events,
        checkpoint_every_seconds=checkpoint_every_seconds,
        witnesses=witnesses,
        checkpoint_degraded_seconds=checkpoint_degraded,
        cosignature_degraded_seconds=cosignature_degraded,
        erasure_cooling_off_days=erasure_cooling_off_days,
        source_retention_days=source_retention_days,
        crossregion_key=keys["SMD_CROSSREGION_KEY"],
        crossregion_seal_key=keys["SMD_CROSSREGION_SEAL_KEY"],
        crossregion_seal_keys_retired=seal_retired,
        crossregion_peers=peers,
        handover_answer_days=handover_answer_days,
        handover_check_seconds=handover_check_seconds,
        dual_management_regions=dual_management_regions,
        crossregion_domain=crossregion_domain,
        crossregion_nats_url=crossregion_nats_url,
        witness_key=keys["SMD_WITNESS_KEY"],
    )
