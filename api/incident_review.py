"""`GET /v1/audit/incidents/{incident_id}/review`: the incident review, as JSON or a printable page.

For auditors. The page is rendered here (no template engine, no external asset: it prints and
opens on an isolated network), in Chinese for the accountability meeting, with the ids and
times of the JSON; values are escaped. Every answer is recorded in the access log.
"""

from __future__ import annotations

from datetime import datetime
from html import escape
from typing import Annotated, Any, Literal
from uuid import UUID

from litestar import Controller, Response, get
from litestar.di import NamedDependency, Provide
from litestar.exceptions import PermissionDeniedException
from litestar.params import FromPath, QueryParameter

from api.auth import Caller, agency_guard, provide_caller
from api.obligations import StaffId
from api.patient_files import Purpose, _builtins, _recorded_read
from api.ports import PatientReadPort, Port
from core.incident_review import Review, find_incident, review
from core.registry import REGION_TZ

Days = Annotated[int, QueryParameter(name="days", ge=1, le=366, description="Days before the incident (30).")]
Format = Annotated[
    Literal["json", "html"],
    QueryParameter(name="format", description="`json` (default) or `html`: a printable page (Chinese)."),
]
PatientHint = Annotated[
    UUID | None,
    QueryParameter(name="patient", description="The patient, when known (skips the search for the incident)."),
]

_KINDS = {
    "minor_trouble": "轻微滋事",
    "causing_trouble": "肇事",
    "causing_disaster": "肇祸",
    "self_harm": "自伤",
    "attempted_suicide": "自杀未遂",
}
_STATUS = {
    "assigned": "待办",
    "acknowledged": "已接收",
    "completed": "已完成",
    "cancelled": "已撤销",
    "read": "已阅",
    None: "—",
}


class IncidentReviewController(Controller):
    """The incident review for auditors."""

    tags = ["audit"]  # noqa: RUF012
    guards = [agency_guard]  # noqa: RUF012
    dependencies = {"caller": Provide(provide_caller)}  # noqa: RUF012

    @get(
        "/v1/audit/incidents/{incident_id:uuid}/review",
        operation_id="incidentReview",
        summary="Auditors: what each agency recorded, was asked to do and read before an incident",
        description=(
            "For the `days` before the incident occurred: the patient's facts (who recorded what, occurred "
            "and recorded times, how late), the obligations and notices open in that window (deadline, "
            "acknowledgement, completion or cancellation, `late_seconds`: done after its deadline by, or "
            "still open past it at the incident by; overdue and escalation; the status at the incident), "
            "and the reads of the file from the access log; a summary per agency. `format=html`: a "
            "printable page in Chinese with no external assets. 404 `unknown-incident`. Recorded in the "
            "access log."
        ),
        media_type="application/json",
    )
    async def incident_review(
        self,
        incident_id: FromPath[UUID],
        caller: NamedDependency[Caller],
        services: Port[PatientReadPort],
        days: Days = 30,
        output: Format = "json",
        patient: PatientHint = None,
        purpose: Purpose = None,
        staff_id: StaffId = None,
    ) -> Response[Any]:
        if caller.kind != "auditor":
            raise PermissionDeniedException(
                detail=f"the incident review is for auditors; {caller.agency_id} is a {caller.kind}"
            )
        found = find_incident(services.case_record, incident_id, patient)  # 404 before anything is read
        pid = found[0]

        def read() -> tuple[Review, tuple[str, ...]]:
            ids = [r.obligation_id for r in services.patient_obligations(pid)]
            return review(services.case_record, services.access_log, incident_id, ids, days, pid), (
                "incidents",
                "obligations",
                "timeline",
            )

        r = await _recorded_read(
            services, caller, "GET /v1/audit/incidents/{incident_id}/review", pid, purpose or "audit", staff_id, read
        )
        if output == "html":
            return Response(page(r), media_type="text/html; charset=utf-8")
        return Response(_builtins(_as_dict(r)), media_type="application/json")


def _as_dict(r: Review) -> dict[str, Any]:
    return {
        "incident": r.incident,
        "patient_id": r.patient_id,
        "window": {"from": r.window_from, "to": r.window_to},
        "by_agency": r.by_agency,
        "facts": r.facts,
        "obligations": r.obligations,
        "reads": r.reads,
    }


def _t(value: datetime | None) -> str:
    return value.astimezone(REGION_TZ).strftime("%Y-%m-%d %H:%M") if value is not None else "—"


def _late(seconds: float) -> str:
    if not seconds:
        return "—"
    hours = seconds / 3600
    return f"{hours / 24:.1f} 天" if hours >= 48 else f"{hours:.1f} 小时"


def _table(head: list[str], rows: list[list[str]], empty: str) -> str:
    if not rows:
        return f'<p class="empty">{escape(empty)}</p>'
    th = "".join(f"<th>{escape(h)}</th>" for h in head)
    body = "".join("<tr>" + "".join(f"<td>{escape(c)}</td>" for c in row) + "</tr>" for row in rows)
    return f"<table><thead><tr>{th}</tr></thead><tbody>{body}</tbody></table>"


def page(r: Review) -> str:
    """The printable page (Chinese headings; ids and times as in the JSON, China time)."""
    i = r.incident
    summary = _table(
        ["单位", "记录事实", "被要求办理", "其中逾期", "查阅档案"],
        [
            [a, str(c["facts"]), str(c["asked"]), str(c["late"]), str(c["reads"])]
            for a, c in sorted(r.by_agency.items())
        ],
        "期间内无任何单位记录、任务或查阅。",
    )
    facts = _table(
        ["记录单位", "事实类型", "发生时间", "录入时间", "滞后", "消息编号"],
        [
            [
                f["agency_id"],
                f["type"],
                _t(f["occurred_at"]),
                _t(f["recorded_at"]),
                _late(f["recorded_after"]),
                f["message_id"],
            ]
            for f in r.facts
        ],
        "期间内无记录。",
    )
    obligations = _table(
        ["责任单位", "规则", "事项", "下达", "期限", "接收", "办结", "事件发生时状态", "逾期", "升级至"],
        [
            [
                o["assignee"],
                o["rule"],
                o["action"] + ("（通知）" if o["kind"] == "notice" else ""),
                _t(o["assigned_at"]),
                _t(o["due_at"]),
                _t(o["acknowledged_at"]),
                f"{_STATUS.get(o['closed'], '—')} {_t(o['closed_at'])}" if o["closed"] else "—",
                _STATUS.get(o["status_at_incident"], o["status_at_incident"]),
                _late(o["late_seconds"]),
                o["escalated_to"] or "—",
            ]
            for o in r.obligations
        ],
        "期间内无任务或通知。",
    )
    reads = _table(
        ["时间", "查阅单位", "接口", "目的", "结果"],
        [[_t(e["at"]), e["agency_id"], e["endpoint"], e["purpose"], str(e["status"])] for e in r.reads],
        "期间内无人查阅该患者档案。",
    )
    kind = _KINDS.get(i["incident_kind"], i["incident_kind"])
    return f"""<!doctype html>
<html lang="zh-CN"><head><meta charset="utf-8">
<title>事件回溯审查 {escape(str(i["incident_id"]))}</title>
<style>
body {{ font-family: "Noto Sans CJK SC", "Source Han Sans SC", "Microsoft YaHei", "WenQuanYi Zen Hei",
  sans-serif; margin: 2em; color: #111; }}
h1 {{ font-size: 1.5em; margin-bottom: .2em; }}
h2 {{ font-size: 1.15em; border-bottom: 2px solid #333; padding-bottom: .2em; margin-top: 1.6em; }}
table {{ border-collapse: collapse; width: 100%; font-size: .85em; }}
th, td {{ border: 1px solid #888; padding: .25em .4em; text-align: left; vertical-align: top; }}
th {{ background: #eee; }}
dl {{ display: grid; grid-template-columns: max-content 1fr; gap: .2em 1em; }}
dt {{ font-weight: bold; }}
.empty {{ color: #555; font-style: italic; }}
.note {{ color: #444; font-size: .8em; }}
@media print {{ body {{ margin: 1cm; }} h2 {{ break-after: avoid; }} tr {{ break-inside: avoid; }} }}
</style></head>
<body>
<h1>事件回溯审查</h1>
<p class="note">供问责会议使用。时间为北京时间；期间为事件发生前 {escape(str((r.window_to - r.window_from).days))} 天
（{_t(r.window_from)} 至 {_t(r.window_to)}）。本页仅含编号与时间，不含患者个人信息。</p>
<h2>事件</h2>
<dl>
<dt>事件编号</dt><dd>{escape(str(i["incident_id"]))}</dd>
<dt>患者编号</dt><dd>{escape(str(r.patient_id))}</dd>
<dt>类型</dt><dd>{escape(kind)}（严重程度 {escape(str(i["severity"]))}）</dd>
<dt>发生时间</dt><dd>{_t(i["occurred_at"])}</dd>
<dt>录入时间</dt><dd>{_t(i["recorded_at"])}（由 {escape(i["reported_by"])} 报告）</dd>
</dl>
<h2>各单位汇总</h2>
{summary}
<h2>各单位记录的事实</h2>
{facts}
<h2>各单位被要求办理的事项</h2>
{obligations}
<h2>档案查阅记录</h2>
{reads}
</body></html>
"""
