"""Personal data: the values stored encrypted with the data subject's own key.

The domain only marks which values are personal (DESIGN.md section 7); the storage layer seals
them. Everything that is not one of these types stays readable in the store, so indicators,
as-of replay and incident reviews survive erasure of a patient's key.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import date
from typing import Any

import msgspec


class Personal(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True, forbid_unknown_fields=True):
    """Base of every personal value; ``erased`` is true when its key was destroyed."""

    erased: bool = False


class PersonalDetails(Personal, frozen=True, kw_only=True):
    """Who the patient is and where to find them (name, ID number, phone, address, birth date:
    the birth date is the ID number's own digits, so it is as personal as the number)."""

    name: str | None = None
    id_number: str | None = None
    phone: str | None = None
    address: str | None = None
    birth_date: date | None = None


class GuardianContact(Personal, frozen=True, kw_only=True):
    """How to reach a patient's guardian."""

    name: str | None = None
    relation: str | None = None
    phone: str | None = None
    address: str | None = None


class ProvisionalIdentity(Personal, frozen=True, kw_only=True):
    """How an unidentified person is known until an ID number confirms who they are (Q-15).

    A description and where they were found identify a person as surely as a name: sealed too.
    """

    label: str | None = None
    found_at: str | None = None
    description: str | None = None


class CareTeamMember(Personal, frozen=True, kw_only=True):
    """A care-team member (五帮一) as the patient's file names them: staff are people too."""

    name: str | None = None
    phone: str | None = None


class SuspectedPerson(Personal, frozen=True, kw_only=True):
    """The person a suspected-case report is about, and what the reporter saw (free text
    names and describes people, so it is sealed with the rest)."""

    observed: str | None = None
    name: str | None = None
    phone: str | None = None
    address: str | None = None
    description: str | None = None


class CaseReporter(Personal, frozen=True, kw_only=True):
    """Who reported a suspected case when it is a person, not the recording agency."""

    name: str | None = None
    phone: str | None = None
    relation: str | None = None


class SealedText(Personal, frozen=True, kw_only=True):
    """A free-text field (a place's name, a reason, a task's text): staff type names and
    diagnoses into free text, so every free-text field of a new fact type is sealed from its
    first version."""

    text: str | None = None


def sealed_text(text: str | None) -> SealedText | None:
    """The free text as a sealed value (None stays None)."""
    return None if text is None else SealedText(text=text)


def text_of(value: SealedText | str | None) -> str | None:
    """The text of a free-text field: sealed (new versions), plain (facts stored before, or an old
    snapshot's entries) or absent; an erased one is None."""
    return value.text if isinstance(value, SealedText) else value


def sealing_upcast(*names: str) -> Callable[[dict[str, Any]], None]:
    """The upcaster of an event whose free-text fields became sealed: a value stored in the
    clear by the older version is read as the same text, as a ``SealedText``. The stored row
    is never rewritten; the field's meaning does not change (docs/decisions/024)."""

    def upcast(state: dict[str, Any]) -> None:
        for name in names:
            value = state.get(name)
            if isinstance(value, str):
                state[name] = SealedText(text=value)

    return upcast


#: Stable names stored inside sealed values; never rename an entry, add new ones.
PERSONAL_TYPES: dict[str, type[Personal]] = {
    "PersonalDetails": PersonalDetails,
    "GuardianContact": GuardianContact,
    "ProvisionalIdentity": ProvisionalIdentity,
    "CareTeamMember": CareTeamMember,
    "SuspectedPerson": SuspectedPerson,
    "CaseReporter": CaseReporter,
    "SealedText": SealedText,
}
PERSONAL_TYPE_NAMES: dict[type[Personal], str] = {v: k for k, v in PERSONAL_TYPES.items()}


def erased(kind: type[Personal]) -> Personal:
    """The value that stands in for personal data whose key was destroyed."""
    return kind(erased=True)
