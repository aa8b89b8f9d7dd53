"""Registry errors: a registry file or query broke a rule. Each message says what to fix."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import date

from domain.errors import DomainError


class RegistryFileInvalid(DomainError):
    """The registry file is not in the expected shape."""

    code = "registry-file-invalid"

    def __init__(self, where: str, problem: str) -> None:
        super().__init__(f"{where}: {problem}")


class RegionMismatch(DomainError):
    """A registry file describes one region; this deployment serves another."""

    code = "registry-region-mismatch"

    def __init__(self, file_region: str, region: str) -> None:
        super().__init__(
            f"the registry file is for region {file_region!r} but this deployment serves "
            f"{region!r}; load the file of region {region!r} or set SMD_REGION={file_region}"
        )


class UnknownOrgUnitKind(DomainError):
    """Org units are a region, township, cluster, community or village."""

    code = "unknown-org-unit-kind"

    def __init__(self, org_unit_id: str, kind: str, allowed: Iterable[str]) -> None:
        super().__init__(f"org unit {org_unit_id!r} has kind {kind!r}; use one of: {', '.join(allowed)}")


class UnknownAgencyKind(DomainError):
    """Agencies are of one of the kinds of DESIGN.md section 4."""

    code = "unknown-agency-kind"

    def __init__(self, agency_id: str, kind: str, allowed: Iterable[str]) -> None:
        super().__init__(f"agency {agency_id!r} has kind {kind!r}; use one of: {', '.join(allowed)}")


class InvalidAgencyId(DomainError):
    """Agency ids appear in NATS subjects: lowercase letters, digits and '-'."""

    code = "invalid-agency-id"

    def __init__(self, agency_id: str) -> None:
        super().__init__(
            f"agency id {agency_id!r} is not valid; use 2-63 lowercase letters, digits and '-', "
            "starting with a letter or digit (it becomes a NATS subject token)"
        )


class KindCannotChange(DomainError):
    """An org unit or agency keeps its kind for life; a new kind needs a new id."""

    code = "registry-kind-cannot-change"

    def __init__(self, what: str, ident: str, old: str, new: str) -> None:
        super().__init__(f"{what} {ident!r} is a {old}; its kind cannot become {new}; give the {new} a new id instead")


class DuplicateRegistryEntry(DomainError):
    """One id can have one entry per effective date in a file."""

    code = "registry-duplicate-entry"

    def __init__(self, what: str, ident: str, effective_from: date) -> None:
        super().__init__(
            f"{what} {ident!r} appears twice with effective_from {effective_from.isoformat()}; "
            "keep one entry per date (use another date for a later change)"
        )


class UnknownParent(DomainError):
    """An org unit's parent must be defined on or before the date the unit is."""

    code = "unknown-parent"

    def __init__(self, org_unit_id: str, parent: str | None, on: date) -> None:
        if parent is None:
            fix = "give it a parent (only the region itself has none)"
        else:
            fix = (
                f"its parent {parent!r} is not defined on {on.isoformat()}; define the parent "
                "(effective on or before that date) or fix the parent id"
            )
        super().__init__(f"org unit {org_unit_id!r}: {fix}")


class WrongParentKind(DomainError):
    """Org units nest region → township → cluster or community → village."""

    code = "wrong-parent-kind"

    def __init__(self, org_unit_id: str, kind: str, parent: str, parent_kind: str, allowed: Iterable[str]) -> None:
        super().__init__(
            f"org unit {org_unit_id!r} is a {kind} under {parent!r}, a {parent_kind}; "
            f"a {kind}'s parent must be a {' or '.join(allowed)}"
        )


class WrongRegionUnit(DomainError):
    """The one region org unit of a registry has the region code as its id."""

    code = "wrong-region-unit"

    def __init__(self, org_unit_id: str, region: str) -> None:
        super().__init__(
            f"org unit {org_unit_id!r} is a region, but this registry is region {region!r}; "
            f"the region org unit's id must be {region!r}"
        )


class UnknownOrgUnitInJurisdiction(DomainError):
    """A jurisdiction lists org units that exist on the date it takes effect."""

    code = "unknown-org-unit-in-jurisdiction"

    def __init__(self, agency_id: str, org_unit_id: str, on: date) -> None:
        super().__init__(
            f"agency {agency_id!r}: jurisdiction lists org unit {org_unit_id!r}, which is not "
            f"defined on {on.isoformat()}; define it (effective on or before that date) or "
            "remove it from the jurisdiction"
        )


class OverlappingJurisdictions(DomainError):
    """Two agencies of one kind cannot cover the same org unit on the same date."""

    code = "overlapping-jurisdictions"

    def __init__(self, kind: str, org_unit_id: str, agencies: Iterable[str], on: date) -> None:
        names = " and ".join(sorted(agencies))
        super().__init__(
            f"org unit {org_unit_id!r} is covered by two {kind} agencies on {on.isoformat()}: "
            f"{names}; remove it (or the unit above it) from all but one of their jurisdictions "
            "from that date"
        )


class UnknownOrgUnit(DomainError):
    """Responsibility is asked for an org unit the registry defines on that date."""

    code = "unknown-org-unit"

    def __init__(self, org_unit_id: str, on: date) -> None:
        super().__init__(
            f"org unit {org_unit_id!r} is not in the registry on {on.isoformat()}; "
            "use an org unit id of the registry (smd registry show)"
        )


class UnknownAgency(DomainError):
    """An agency id must be in the registry."""

    code = "unknown-agency"

    def __init__(self, agency_id: str) -> None:
        super().__init__(
            f"agency {agency_id!r} is not in the registry; define it in the registry file and "
            "load it (smd registry load), or check the id (smd registry show)"
        )


def _shown(ident: str) -> str:
    """An id as it may appear in a problem: quoted when it looks like an id, else not echoed."""
    if len(ident) <= 64 and ident.isascii() and all(c.isalnum() or c in "-_." for c in ident):
        return repr(ident)
    return "given there"  # free text may carry personal data: never echoed


class UnknownOrgUnitReference(DomainError):
    """A message names an org unit the registry does not know: no rule could ever place it."""

    code = "unknown-org-unit"

    def __init__(self, path: str, org_unit_id: str, region: str, on: date) -> None:
        super().__init__(
            f"{path}: the org unit {_shown(org_unit_id)} is not in region {region}'s registry "
            f"(as recorded now, in force on {on.isoformat()}); check the id (smd registry show lists "
            "the units) or ask the operator to load the registry that defines it (smd registry load)"
        )


class UnknownAgencyReference(DomainError):
    """A message names (in its data) an agency the registry does not know."""

    code = "unknown-agency-reference"

    def __init__(self, path: str, agency_id: str, region: str, on: date) -> None:
        super().__init__(
            f"{path}: the agency {_shown(agency_id)} is not in region {region}'s registry "
            f"(as recorded now, in force on {on.isoformat()}); send the id of an agency of the "
            "registry (smd registry show), or ask the operator to add the agency and load the registry"
        )
