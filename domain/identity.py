"""Who a patient is: the resident ID number (GB 11643-1999) and the ID-number marker.

An 18-character resident ID number is ``AAAAAA YYYYMMDD SSS C``: the administrative code of the
place the holder was registered at birth (not where they live now, so it is checked against the
national list of province-level codes, not against our region), the birth date, a sequence
number, and a check character (ISO 7064 MOD 11-2: a digit or X).

The marker makes "one patient per ID number" atomic: an aggregate whose id is derived from the
keyed blind index of the number (never from the number itself), saved in the same ``save()`` as
the registration or confirmation, so a second claim conflicts on its first version
(STACK.md "Patterns"). The blind index is computed outside the domain (it needs a secret).
"""

from __future__ import annotations

import re
import unicodedata
from datetime import date, datetime, timedelta, timezone
from uuid import NAMESPACE_URL, UUID, uuid5

from eventsourcing.domain import Aggregate

from domain.identity_errors import (
    IdNumberAdminCodeInvalid,
    IdNumberBirthDateInvalid,
    IdNumberChecksumInvalid,
    IdNumberMalformed,
    NameInvalid,
)

#: ID numbers are issued in China: a birth date is "in the future" by China Standard Time.
CHINA_TZ = timezone(timedelta(hours=8), "CST")
EARLIEST_BIRTH_DATE = date(1900, 1, 1)

#: Province-level codes (GB/T 2260 first two digits). 99 is not one: our fictional demo region
#: 990101 is where patients live, while an ID number names where its holder was registered at
#: birth, which is always a real province.
PROVINCE_CODES = frozenset(
    f"{n:02d}"
    for n in (
        *range(11, 16),
        *range(21, 24),
        *range(31, 38),
        *range(41, 47),
        *range(50, 55),
        *range(61, 66),
        71,
        81,
        82,
    )
)

_WEIGHTS = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)  # 2^(17-i) mod 11
_CHECK = "10X98765432"  # check character for each remainder 0..10
_SHAPE = re.compile(r"^[0-9]{17}[0-9X]$")


def normalise_id_number(raw: str) -> str:
    """The form that is stored and indexed: surrounding spaces removed, check character upper-case."""
    return raw.strip().upper()


def check_character(first17: str) -> str:
    """The ISO 7064 MOD 11-2 check character of the first 17 digits."""
    return _CHECK[sum(int(d) * w for d, w in zip(first17, _WEIGHTS, strict=True)) % 11]


def validate_id_number(raw: str, today: date) -> str:
    """The normalised ID number, or a domain error naming the part that is wrong.

    Parts are checked in reading order (shape, place, birth date, check character) so the
    message points at the first part a person re-reading the card would find wrong. Messages
    never repeat the number: error bodies and logs must not carry it.
    """
    number = normalise_id_number(raw)
    if not _SHAPE.match(number):
        raise IdNumberMalformed(len(number))
    if number[:2] not in PROVINCE_CODES:
        raise IdNumberAdminCodeInvalid(number[:2])
    try:
        born = date(int(number[6:10]), int(number[10:12]), int(number[12:14]))
    except ValueError:
        raise IdNumberBirthDateInvalid("is not a real calendar date") from None
    if born < EARLIEST_BIRTH_DATE:
        raise IdNumberBirthDateInvalid(f"is before {EARLIEST_BIRTH_DATE.year}")
    if born > today:
        raise IdNumberBirthDateInvalid("is in the future")
    if check_character(number[:17]) != number[17]:
        raise IdNumberChecksumInvalid()
    return number


def birth_date_of(id_number: str | None) -> date | None:
    """The birth date an ID number's digits state (None: no number, or not a date: a number
    stored before validation existed is read, never refused)."""
    if id_number is None or len(id_number) != 18:
        return None
    try:
        return date(int(id_number[6:10]), int(id_number[10:12]), int(id_number[12:14]))
    except ValueError:
        return None


def china_today(now: datetime) -> date:
    """The date in China at ``now`` (what "not in the future" means for a birth date)."""
    return now.astimezone(CHINA_TZ).date()


# -- the marker ----------------------------------------------------------------------------------

#: Namespace of marker ids; never change it (stored markers would stop matching).
ID_NUMBER_MARKER_NAMESPACE = uuid5(NAMESPACE_URL, "urn:smd:id-number-marker")


def id_number_marker_id(blind_index: str) -> UUID:
    """The marker id of a blind-index value ``<alg>:<hex>`` (keyed: not computable from the number)."""
    if ":" not in blind_index:
        raise ValueError("a blind-index value names its algorithm: '<alg>:<hex>'")
    return uuid5(ID_NUMBER_MARKER_NAMESPACE, blind_index)


class IdNumberMarker(Aggregate):
    """Proof that one patient holds an ID number in this region's record."""

    TOPIC = "smd.IdNumberMarker"

    class Claimed(Aggregate.Created):
        """IdNumberClaimed: the patient holds the ID number behind this marker's blind index."""

        TOPIC = "smd.IdNumberClaimed"
        patient_id: UUID
        index_alg: str
        agency_id: str
        message_id: str

    class Created(Aggregate.Created):
        """Never recorded: the library requires a topic on its default first event."""

        TOPIC = "smd.IdNumberMarker.Created"

    class Retired(Aggregate.Event):
        """IdNumberRetired: the holder's data was erased; the number answers nothing any more
        (the marker's keyed id and its first claim stay in the chained log)."""

        TOPIC = "smd.IdNumberRetired"
        reason: str

        def apply(self, aggregate: IdNumberMarker) -> None:
            aggregate.retired = True

    class Reclaimed(Aggregate.Event):
        """IdNumberReclaimed: a patient registered (or confirmed) with a number whose marker was retired."""

        TOPIC = "smd.IdNumberReclaimed"
        patient_id: UUID
        agency_id: str
        message_id: str

        def apply(self, aggregate: IdNumberMarker) -> None:
            aggregate.retired = False
            aggregate.patient_id = self.patient_id
            aggregate.agency_id = self.agency_id
            aggregate.message_id = self.message_id

    #: markers stored before retirement existed were never retired
    retired = False

    def __init__(self, patient_id: UUID, index_alg: str, agency_id: str, message_id: str) -> None:
        self.patient_id = patient_id
        self.index_alg = index_alg
        self.agency_id = agency_id
        self.message_id = message_id
        self.retired = False

    def retire(self, reason: str, now: datetime) -> None:
        """The holder was erased: the number is free again (a no-op when retired already)."""
        if not self.retired:
            self.trigger_event(self.Retired, timestamp=now, reason=reason)

    def reclaim(self, patient_id: UUID, *, agency_id: str, message_id: str, now: datetime) -> None:
        """A retired marker claimed by a new holder."""
        self.trigger_event(
            self.Reclaimed, timestamp=now, patient_id=patient_id, agency_id=agency_id, message_id=message_id
        )

    @classmethod
    def claim(
        cls, blind_index: str, patient_id: UUID, *, agency_id: str, message_id: str, now: datetime
    ) -> IdNumberMarker:
        """A marker for the ID number whose blind index is ``blind_index``, held by ``patient_id``."""
        return cls._create(
            cls.Claimed,
            id=id_number_marker_id(blind_index),
            timestamp=now,
            patient_id=patient_id,
            index_alg=blind_index.split(":", 1)[0],
            agency_id=agency_id,
            message_id=message_id,
        )


# -- the name-and-birth-date marker ----------------------------------------------------------------

#: Namespace of name-and-birth-date marker ids; never change it (stored markers would stop matching).
NAME_MARKER_NAMESPACE = uuid5(NAMESPACE_URL, "urn:smd:name-birth-date-marker")
NAME_MAX_LENGTH = 64
#: Separators written between the parts of a minority name (维吾尔族 names and others), unified.
_NAME_DOTS = str.maketrans({c: "\u00b7" for c in "\u2022\u2027\u30fb\uff65\u2219\u22c5\u0387\u16eb\u2e31"})


def normalise_name(raw: str) -> str:
    """The form a name is matched in: NFKC (full-width letters as half-width), no spaces at all
    (“张 三” is “张三”), every middle-dot variant as U+00B7, Latin letters case-folded.
    Never stored: only its keyed blind index is."""
    name = unicodedata.normalize("NFKC", raw).translate(_NAME_DOTS)
    name = "".join(ch for ch in name if not ch.isspace()).casefold()
    if not name:
        raise NameInvalid("is empty")
    if len(name) > NAME_MAX_LENGTH:
        raise NameInvalid(f"is longer than {NAME_MAX_LENGTH} characters")
    return name


def name_marker_id(blind_index: str) -> UUID:
    """The marker id of a name-and-birth-date blind-index value ``<alg>:<hex>``."""
    if ":" not in blind_index:
        raise ValueError("a blind-index value names its algorithm: '<alg>:<hex>'")
    return uuid5(NAME_MARKER_NAMESPACE, blind_index)


class NameMarker(Aggregate):
    """The patients whose name and birth date have one blind index (usually one patient; people
    do share both). Only ever a candidate list: a search checks each patient's own file."""

    TOPIC = "smd.NameMarker"

    class Claimed(Aggregate.Created):
        """NameClaimed: the first patient found under this marker's blind index."""

        TOPIC = "smd.NameClaimed"
        patient_id: UUID
        index_alg: str
        agency_id: str
        message_id: str

    class AlsoClaimed(Aggregate.Event):
        """NameAlsoClaimed: another patient with the same name and birth date."""

        TOPIC = "smd.NameAlsoClaimed"
        patient_id: UUID
        agency_id: str
        message_id: str

        def apply(self, aggregate: NameMarker) -> None:
            aggregate.patient_ids.append(self.patient_id)

    class Created(Aggregate.Created):
        """Never recorded: the library requires a topic on its default first event."""

        TOPIC = "smd.NameMarker.Created"

    def __init__(self, patient_id: UUID, index_alg: str, agency_id: str, message_id: str) -> None:
        self.patient_ids = [patient_id]
        self.index_alg = index_alg

    @classmethod
    def claim(cls, blind_index: str, patient_id: UUID, *, agency_id: str, message_id: str, now: datetime) -> NameMarker:
        """A marker for the name and birth date behind ``blind_index``, first held by ``patient_id``."""
        return cls._create(
            cls.Claimed,
            id=name_marker_id(blind_index),
            timestamp=now,
            patient_id=patient_id,
            index_alg=blind_index.split(":", 1)[0],
            agency_id=agency_id,
            message_id=message_id,
        )

    def also(self, patient_id: UUID, *, agency_id: str, message_id: str, now: datetime) -> bool:
        """Add ``patient_id`` (False, and nothing recorded, when it is already here)."""
        if patient_id in self.patient_ids:
            return False
        self.trigger_event(
            self.AlsoClaimed, timestamp=now, patient_id=patient_id, agency_id=agency_id, message_id=message_id
        )
        return True
