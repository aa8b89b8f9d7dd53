"""Identity errors: an ID number is wrong, already held, or a confirmation does not fit.

Messages say which part of the number is wrong and how to fix it, and never repeat the number
itself (error bodies and logs must not carry identifiers; the caller has the number it sent).
"""

from __future__ import annotations

from uuid import UUID

from domain.errors import DomainError

_REREAD = "re-read the ID card (or the household register) and send the 18 characters again"


class IdNumberInvalid(DomainError):
    """Base of the ID-number checks (GB 11643-1999)."""

    code = "id-number-invalid"


class IdNumberMalformed(IdNumberInvalid):
    """An ID number is 17 digits followed by a digit or X."""

    code = "id-number-malformed"

    def __init__(self, length: int) -> None:
        what = f"has {length} characters" if length != 18 else "has a character that is not allowed"
        super().__init__(
            f"the ID number {what}; a resident ID number is 18 characters: 17 digits (0-9, half-width), "
            f"then a digit or X (15-digit first-generation numbers are not accepted); {_REREAD}"
        )


class IdNumberAdminCodeInvalid(IdNumberInvalid):
    """The first six digits name the place of registration at birth; the first two a province."""

    code = "id-number-admin-code-invalid"

    def __init__(self, province: str) -> None:
        super().__init__(
            f"the administrative code (digits 1-6) starts with {province}, which is not a province-level "
            "code (11-15, 21-23, 31-37, 41-46, 50-54, 61-65, 71, 81, 82); it is the place where the holder "
            f"was registered at birth, not where they live now; {_REREAD}"
        )


class IdNumberBirthDateInvalid(IdNumberInvalid):
    """Digits 7-14 are the birth date (YYYYMMDD)."""

    code = "id-number-birth-date-invalid"

    def __init__(self, problem: str) -> None:
        super().__init__(f"the birth date (digits 7-14, YYYYMMDD) {problem}; {_REREAD}")


class IdNumberChecksumInvalid(IdNumberInvalid):
    """The 18th character is the ISO 7064 MOD 11-2 check character of the first 17 digits."""

    code = "id-number-checksum-invalid"

    def __init__(self) -> None:
        super().__init__(
            "the check character (the 18th) does not match the first 17 digits, so one of the digits "
            f"was probably mistyped; {_REREAD} (do not change only the last character)"
        )


class IdNumberAlreadyRegistered(DomainError):
    """One patient per ID number per region."""

    # Raised without naming the holder (fail closed); ``for_caller`` reveals the existing patient
    # id to an agency kind that could have found it by searching the same number anyway. (The
    # docstring is the problem's title: keep it one line.)
    code = "id-number-already-registered"

    def __init__(self, existing_patient_id: UUID, *, reveal: bool = False) -> None:
        self.existing_patient_id = existing_patient_id
        if reveal:
            detail = (
                f"a patient with this ID number is already registered: patient {existing_patient_id}; "
                "record facts about that patient instead (merging two files is not supported yet)"
            )
        else:
            detail = "a patient with this ID number is already registered; ask the health center that manages them"
        super().__init__(detail)

    def for_caller(self, may_see_holder: bool) -> IdNumberAlreadyRegistered:
        """The same refusal, naming the holder only when the caller may see it."""
        return IdNumberAlreadyRegistered(self.existing_patient_id, reveal=may_see_holder)


class IdentityAlreadyKnown(DomainError):
    """Only a patient without an ID number can have an identity confirmed."""

    code = "identity-already-known"

    def __init__(self, patient_id: object) -> None:
        super().__init__(
            f"patient {patient_id} already has an ID number; a confirmation is only for a patient "
            "registered without one (correcting an ID number is not supported yet)"
        )


class BirthDateDoesNotMatchIdNumber(DomainError):
    """A birth date sent beside an ID number must be the one its digits state."""

    code = "birth-date-mismatch"

    def __init__(self) -> None:
        super().__init__(
            "the birth date does not match the birth date in the ID number (characters 7 to 14, "
            "YYYYMMDD); send the date printed on the ID card, or check the number"
        )


class BirthDateInvalid(DomainError):
    """A birth date lies between 1900-01-01 and today (China time)."""

    code = "birth-date-invalid"

    def __init__(self, why: str) -> None:
        super().__init__(f"the birth date {why}; send the date printed on the ID card or the household register")


class NameInvalid(DomainError):
    """A name to search by is empty or too long once normalised."""

    code = "invalid-name"

    def __init__(self, why: str) -> None:
        super().__init__(f"name: {why}; send the name as written on the resident ID card")
