"""The emergency contact card (应急联系卡, Jiaobei 四(三)): one printable page for the family of a patient at home.

The card names, from the patient's care team (五帮一), the village's responsible person (the
community worker, 村(居)委会干部), the community police officer and the mental-health staff
member, with their phones, and the emergency numbers. The committee produces it (its kind reads
the care team: ``domain.read_filter``); the card's edition follows the care team: each change of
one of those three roles (assigned, replaced, removed) is a new edition, dated by the change, so
the card is reissued when the team changes and an old print is recognisably old.

Pure reading and HTML here; the PDF is rendered outside the core (headless Chromium, a port
that ``ops.bootstrap`` wires: ``ops/pdf.py``).
"""

from __future__ import annotations

import html
from dataclasses import dataclass
from datetime import datetime
from uuid import UUID

from core.registry import REGION_TZ
from domain.errors import DomainError
from domain.patient import Patient
from domain.patient_care import CONTACT_CARD_ROLES, CareRole

#: The card's contacts, in the order they are printed, with their Chinese titles.
_TITLES = {
    CareRole.COMMUNITY_WORKER: "村（居）委会负责人",
    CareRole.COMMUNITY_POLICE: "社区民警",
    CareRole.MENTAL_HEALTH_STAFF: "精防医生",
}
CARD_ROLES: tuple[tuple[CareRole, str], ...] = tuple((role, _TITLES[role]) for role in CONTACT_CARD_ROLES)
#: The emergency numbers every card carries (national numbers: no deployment setting needed).
EMERGENCY_NUMBERS: tuple[tuple[str, str], ...] = (
    ("报警", "110"),
    ("急救", "120"),
    ("心理援助热线", "12356"),
)


class NotAtHome(DomainError):
    """A card is for a patient living at home."""

    code = "patient-not-at-home"

    def __init__(self, why: str) -> None:
        super().__init__(f"no contact card: the patient is {why}; the card is for a patient living at home")


@dataclass(frozen=True, slots=True)
class Contact:
    role: CareRole
    title: str
    name: str | None
    phone: str | None


@dataclass(frozen=True, slots=True)
class ContactCard:
    """What a card shows (personal values: only ever rendered for a reader that may see them)."""

    patient_id: UUID
    patient_name: str | None
    residence: str
    contacts: tuple[Contact, ...]
    edition: int  # 1 + how many changes of the card's roles followed the first
    issued_at: datetime | None  # the latest change of the card's roles (None: nobody assigned yet)


def card_of(patient: Patient) -> ContactCard:
    """The card of a registered patient at home, as the care team stands now."""
    if patient.deregistered_at is not None:
        raise NotAtHome("deregistered")
    if patient.in_hospital:
        raise NotAtHome("in hospital")
    if patient.in_institutional_care:
        raise NotAtHome("in institutional care")
    team = patient.care_team()
    contacts = []
    for role, title in CARD_ROLES:
        held = team.get(role)
        member = held["member"] if held else None
        contacts.append(Contact(role, title, member.name if member else None, member.phone if member else None))
    roles = {r.value for r, _ in CARD_ROLES}
    changes = [c for c in patient.care_team_history if c["role"] in roles]
    return ContactCard(
        patient.id,
        patient.personal.name,
        patient.residence,
        tuple(contacts),
        max(1, len(changes) - len({c["role"] for c in changes if c["change"] == "assigned"}) + 1),
        max((c["at"] for c in changes), default=None),
    )


def card_html(card: ContactCard, place_name: str | None = None) -> str:
    """The card as one printable A6 page (portrait), Chinese text, a CJK font first in the stack."""
    e = html.escape
    rows = "".join(
        f"<tr><th>{e(c.title)}</th><td class=n>{e(c.name or '（未指定）')}</td>"
        f"<td class=p>{e(c.phone or '—')}</td></tr>"
        for c in card.contacts
    )
    numbers = "".join(f"<span><b>{e(n)}</b> {e(label)}</span>" for label, n in EMERGENCY_NUMBERS)
    issued = card.issued_at.astimezone(REGION_TZ).strftime("%Y-%m-%d") if card.issued_at else "—"
    return (
        '<!doctype html><html lang="zh-CN"><head><meta charset="utf-8"><title>应急联系卡</title><style>'
        "@page{size:105mm 148mm;margin:6mm}"  # A6 by its size: the CLI ignores page names
        "html,body{margin:0}body{font-family:'Noto Sans CJK SC','WenQuanYi Zen Hei','Source Han Sans SC',sans-serif;"
        "font-size:10pt;color:#111}"
        "h1{font-size:16pt;text-align:center;margin:0 0 2mm;border-bottom:2px solid #b00;padding-bottom:1.5mm}"
        ".who{font-size:10pt;margin:0 0 2mm}"
        "table{width:100%;border-collapse:collapse;margin-bottom:3mm}"
        "th,td{border:1px solid #444;padding:1.6mm 1.2mm;text-align:left;vertical-align:middle}"
        "th{width:34%;font-weight:normal;background:#f3f3f3;font-size:9pt}td.n{font-size:11pt}"
        "td.p{font-family:monospace;font-size:10.5pt;white-space:nowrap}"
        ".sos{border:2px solid #b00;padding:2mm;text-align:center}.sos h2{margin:0 0 1mm;font-size:11pt;color:#b00}"
        ".sos span{display:inline-block;margin:0 2mm}.sos b{font-size:15pt;color:#b00}"
        ".foot{margin-top:2mm;font-size:7.5pt;color:#555}"
        "</style></head><body>"
        "<h1>严重精神障碍患者应急联系卡</h1>"
        f"<p class=who>患者：{e(card.patient_name or '')}　　住址：{e(place_name or card.residence)}</p>"
        f"<table><tbody>{rows}</tbody></table>"
        f"<div class=sos><h2>紧急情况请立即拨打</h2>{numbers}</div>"
        f"<p class=foot>如患者出现伤人、自伤或走失等情况，请先拨打 110，再联系上述人员。"
        f"第 {card.edition} 版 · {e(issued)} 起有效（关爱帮扶小组变更时重新发放）</p>"
        "</body></html>"
    )
