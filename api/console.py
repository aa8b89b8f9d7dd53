"""The governance console: pages for the governance center and the auditor (docs/decisions/041).

Served by the same app under ``/console``. Sign-in takes a read-only console credential issued
per staff member (``smd console issue AGENCY --staff ID``), never an integration API key; the
session is a signed cookie (HttpOnly, SameSite=Strict, Secure outside development, path
``/console``) that expires after SMD_CONSOLE_SESSION_MINUTES. A purpose is asked once per
session; every patient a page shows is recorded in the access log with it and the staff id.

Pages: KPI tiles (the indicators, as ``GET /v1/indicators`` computes them), trend charts of the
rates over six months (server-rendered SVG), obligations late or open by agency, the focus and
lost lists (read as ``GET /v1/lists/{list}`` reads them), and the printable reports. No script,
no external asset; the sign-in, purpose and sign-out forms carry a CSRF token (the sign-in form's
is a double-submit cookie, the others' is the session's own token).
"""

from __future__ import annotations

import asyncio
import hmac
import secrets
from datetime import date, datetime
from html import escape
from typing import Annotated, Any, Literal
from urllib.parse import parse_qs, urlencode

from litestar import Controller, Request, Response, get, post
from litestar.datastructures import Cookie
from litestar.params import FromPath, QueryParameter
from litestar.response import Redirect

from api.auth import Caller, FailedAuthentications, client_address
from api.bodies import OPT_OWN_CHECKS
from api.indicator_documents import to_html as indicators_html
from api.indicators import check_scope
from api.lists import decode_cursor, encode_cursor, read_page, revealed, scope_of
from api.ports import Port
from api.reads import Revealed, recorded
from api.report_documents import to_html as report_html
from core.console_credentials import CONSOLE_KINDS, Session
from core.registry import REGION_TZ
from domain.errors import DomainError
from domain.indicators import parse_period
from domain.lists import working_list
from domain.read_filter import PURPOSES, check_purpose

SESSION_COOKIE = "smd_console"
CSRF_COOKIE = "smd_console_csrf"
BASE = "/console"
MAX_FORM_BYTES = 4096
TREND_MONTHS = 6
LIST_ROWS = 100
LIST_ENDPOINT = "GET /console/lists/{list_name}"
#: The lists the console shows.
CONSOLE_LISTS = {"focus": "关注患者（重点关注类别）", "lost": "失访患者"}
#: Security headers of every console page: nothing but the page itself may load or run.
HEADERS = {
    "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'; img-src 'self' data:; "
    "form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
    "Cache-Control": "no-store",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
}

UnitQuery = Annotated[
    str | None, QueryParameter(name="unit", max_length=64, description="An org unit (default: yours).")
]
PeriodQuery = Annotated[
    str | None,
    QueryParameter(name="period", max_length=7, description="A month `2026-06` (default: this month)."),
]
AfterQuery = Annotated[str | None, QueryParameter(name="after", max_length=400, description="The next page's cursor.")]
ReportKind = Literal["indicators", "monthly", "risk-analysis"]


# -- sessions and cookies ---------------------------------------------------------------------------


def _now(services: Any) -> datetime:
    return services.case_record.clock()


def _cookie(services: Any, key: str, value: str, max_age: int) -> Cookie:
    return Cookie(
        key=key,
        value=value,
        path=BASE,
        httponly=True,
        samesite="strict",
        secure=services.settings.mode != "development",
        max_age=max_age,
    )


def _page(title: str, body: str, status: int = 200, cookies: list[Cookie] | None = None) -> Response[str]:
    html = f"""<!doctype html>
<html lang="zh-CN"><head><meta charset="utf-8"><title>{escape(title)} · 管理控制台</title>
<style>
body {{ font-family: "WenQuanYi Zen Hei", "Noto Sans CJK SC", sans-serif; margin: 1.5em; color: #222; }}
nav a {{ margin-right: 1em; }}
.tiles {{ display: flex; flex-wrap: wrap; gap: 0.8em; }}
.tile {{ border: 1px solid #9ab; border-radius: 6px; padding: 0.6em 0.9em; min-width: 9em; }}
.tile .value {{ font-size: 1.6em; font-weight: bold; }}
.tile .ratio {{ color: #555; font-size: 0.85em; }}
table {{ border-collapse: collapse; margin: 1em 0; }}
td, th {{ border: 1px solid #999; padding: 0.2em 0.6em; }}
.error {{ color: #a22; }}
</style></head><body>{body}</body></html>"""
    return Response(
        html, status_code=status, media_type="text/html; charset=utf-8", headers=HEADERS, cookies=cookies or []
    )


def _to_sign_in() -> Redirect:
    return Redirect(path=f"{BASE}/sign-in", status_code=303, headers=HEADERS)


async def _with_purpose(services: Any, request: Request[Any, Any, Any]) -> tuple[Session, Caller] | Response[Any]:
    """A page's session and caller, or where to send the browser: to the sign-in without a
    session, to the purpose form before a purpose was given."""
    found = await asyncio.to_thread(_caller, services, request)
    if found is None:
        return _to_sign_in()
    if found[0].purpose is None:
        return Redirect(path=f"{BASE}/purpose", status_code=303, headers=HEADERS)
    return found


def _caller(services: Any, request: Request[Any, Any, Any]) -> tuple[Session, Caller] | None:
    """The session's holder as a caller, if the cookie is ours and unexpired, the credential not
    revoked and its agency a governance center or auditor in the registry today; else None."""
    session = services.console.unseal(request.cookies.get(SESSION_COOKIE), _now(services))
    if session is None:
        return None
    info = services.console.current(session.credential_id)
    if info is None or info.agency_id != session.agency_id:
        return None
    agency = services.registry.recent_agency(info.agency_id)
    if agency is None or str(agency.kind) not in CONSOLE_KINDS:
        return None
    caller = Caller(
        agency_id=agency.agency_id,
        kind=str(agency.kind),
        name=agency.name,
        region=agency.region,
        jurisdiction=agency.jurisdiction,
        key_id=f"console-{info.credential_id}",
    )
    return session, caller


async def _form(request: Request[Any, Any, Any]) -> dict[str, str]:
    """A small URL-encoded form (one value per field)."""
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    raw = await request.body()
    if content_type != "application/x-www-form-urlencoded" or len(raw) > MAX_FORM_BYTES:
        return {}
    try:
        fields = parse_qs(raw.decode("utf-8"), max_num_fields=8)
    except (UnicodeDecodeError, ValueError):
        return {}
    return {k: v[0] for k, v in fields.items() if len(v) == 1}


def _same(a: str | None, b: str | None) -> bool:
    return bool(a) and bool(b) and hmac.compare_digest(str(a).encode(), str(b).encode())


def _nav(caller: Caller, session: Session, unit: str, period: str) -> str:
    q = urlencode({"unit": unit, "period": period})
    quarter = urlencode({"unit": unit, "period": _quarter_of(period)})
    lists = "".join(
        f'<a href="{BASE}/lists/{n}?{urlencode({"unit": unit})}">{escape(t)}</a>' for n, t in CONSOLE_LISTS.items()
    )
    return (
        f'<nav><a href="{BASE}?{q}">指标总览</a>{lists}'
        f'<a href="{BASE}/reports/indicators?{q}">指标报表（可打印）</a>'
        f'<a href="{BASE}/reports/monthly?{q}">月报</a>'
        f'<a href="{BASE}/reports/risk-analysis?{quarter}">季度风险研判</a>'
        f'<form method="post" action="{BASE}/sign-out" style="display:inline">'
        f'<input type="hidden" name="csrf" value="{escape(session.csrf)}"><button>退出</button></form></nav>'
        f"<p>{escape(caller.name)}（{escape(caller.agency_id)}）· 工号 {escape(session.staff_id)} · "
        f"用途 {escape(session.purpose or '')}</p>"
    )


# -- periods ----------------------------------------------------------------------------------------


def _month(d: date) -> str:
    return f"{d.year}-{d.month:02d}"


def _months_before(label: str, n: int) -> list[str]:
    y, m = int(label[:4]), int(label[5:7])
    out = []
    for _ in range(n):
        out.append(f"{y}-{m:02d}")
        y, m = (y - 1, 12) if m == 1 else (y, m - 1)
    return out[::-1]


def _quarter_of(month: str) -> str:
    return f"{month[:4]}-Q{(int(month[5:7]) - 1) // 3 + 1}"


def _period(services: Any, period: str | None) -> str:
    label = period or _month(_now(services).astimezone(REGION_TZ).date())
    parse_period(label)  # 400 period-invalid
    if len(label) != 7 or label[4] != "-":
        raise ValueError
    return label


def _unit(caller: Caller, unit: str | None) -> str:
    if unit:
        return unit
    return caller.jurisdiction[0] if caller.kind == "governance_center" and caller.jurisdiction else caller.region


# -- charts -----------------------------------------------------------------------------------------


def trend_chart(title: str, points: list[tuple[str, float | None]]) -> str:
    """A small line chart (0-100 %) of one rate over the months, as inline SVG."""
    width, height, left, top, bottom = 320, 150, 34, 24, 26
    plot_w, plot_h = width - left - 10, height - top - bottom
    step = plot_w / max(1, len(points) - 1)
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" role="img" class="trend"'
        f' aria-label="{escape(title)}"><title>{escape(title)}</title>',
        f'<text x="0" y="14" font-size="13" font-weight="bold">{escape(title)}</text>',
        f'<line x1="{left}" y1="{top + plot_h}" x2="{left + plot_w}" y2="{top + plot_h}" stroke="#999"/>',
        f'<text x="0" y="{top + 8}" font-size="10">100%</text><text x="8" y="{top + plot_h}" font-size="10">0</text>',
    ]
    coords = []
    for i, (label, v) in enumerate(points):
        x = round(left + i * step, 1)
        parts.append(f'<text x="{x - 14}" y="{height - 8}" font-size="10">{escape(label[2:])}</text>')
        if v is not None:
            y = round(top + plot_h * (1 - min(100.0, max(0.0, v)) / 100), 1)
            coords.append(f"{x},{y}")
            parts.append(f'<circle cx="{x}" cy="{y}" r="2.5" fill="#2b5d8a"/>')
            parts.append(f'<text x="{x - 8}" y="{y - 5}" font-size="9">{v}</text>')
    if len(coords) > 1:
        parts.append(f'<polyline points="{" ".join(coords)}" fill="none" stroke="#2b5d8a" stroke-width="2"/>')
    parts.append("</svg>")
    return "".join(parts)


def _value(f: dict[str, Any]) -> str:
    if f["value"] is None:
        return "—"
    return f"{f['value']}{'' if f['unit'] == 'patients' else f['unit']}"


def tiles(figures: list[dict[str, Any]]) -> str:
    """One tile per indicator: its label, value, numerator and denominator."""
    out = []
    for f in figures:
        ratio = f"{f['numerator']} / {f['denominator']}" if f["denominator"] is not None else f"{f['numerator']} 人"
        out.append(
            f'<div class="tile" data-indicator="{escape(f["name"])}"><div>{escape(f["label"])}</div>'
            f'<div class="value">{escape(_value(f))}</div><div class="ratio">{escape(ratio)}</div></div>'
        )
    return f'<div class="tiles">{"".join(out)}</div>'


def overdue_by_agency(obligations: list[dict[str, Any]]) -> str:
    """Obligations due in the period by agency: on time, done late, still open."""
    by: dict[str, dict[str, int]] = {}
    for o in obligations:
        a = by.setdefault(o["assignee"], {"due": 0, "on_time": 0, "late": 0, "open": 0})
        for k in a:
            a[k] += int(o[k] or 0)
    if not by:
        return '<p class="empty">本期无到期任务。</p>'
    rows = sorted(by.items(), key=lambda kv: (-(kv[1]["late"] + kv[1]["open"]), kv[0]))
    body = "".join(
        f'<tr data-agency="{escape(a)}"><td>{escape(a)}</td><td>{c["due"]}</td><td>{c["on_time"]}</td>'
        f"<td>{c['late']}</td><td>{c['open']}</td></tr>"
        for a, c in rows
    )
    return (
        '<table class="overdue"><tr><th>机构</th><th>到期</th><th>按时完成</th><th>逾期完成</th><th>未完成</th></tr>'
        f"{body}</table>"
    )


# -- the controller ---------------------------------------------------------------------------------


class ConsoleController(Controller):
    """The governance console's pages and forms."""

    tags = ["console"]  # noqa: RUF012

    @get(
        f"{BASE}/sign-in",
        operation_id="consoleSignInPage",
        summary="Console: the sign-in page (a console credential, never an API key)",
        media_type="text/html",
    )
    async def sign_in_page(self, services: Port[Any]) -> Response[str]:
        token = secrets.token_urlsafe(24)
        return _sign_in_form(services, token)

    @post(
        f"{BASE}/sign-in",
        operation_id="consoleSignIn",
        summary="Console: sign in with a console credential (form: credential, csrf)",
        description="Sets the session cookie and sends you to the purpose form (303). A wrong, revoked or "
        "malformed credential, or an agency that is not a governance center or an auditor: 401 page. A "
        "missing or wrong CSRF token: 403 page.",
        media_type="text/html",
        opt={OPT_OWN_CHECKS: True},
        status_code=303,
    )
    async def sign_in(self, request: Request[Any, Any, Any], services: Port[Any]) -> Response[Any]:
        form = await _form(request)
        if not _same(form.get("csrf"), request.cookies.get(CSRF_COOKIE)):
            return _page("登录", '<p class="error">表单已过期，请重新<a href="/console/sign-in">登录</a>。</p>', 403)
        info = await asyncio.to_thread(services.console.check, form.get("credential", "").strip())
        agency = None if info is None else services.registry.recent_agency(info.agency_id)
        if info is None or agency is None or str(agency.kind) not in CONSOLE_KINDS:
            failures: FailedAuthentications | None = getattr(request.app.state, "auth_failures", None)
            wait = failures.failed(client_address(request), None) if failures is not None else None
            response = _sign_in_form(services, secrets.token_urlsafe(24), "凭证无效、已撤销或不适用于控制台。", 401)
            if wait is not None:
                response.status_code = 429
                response.headers["Retry-After"] = str(wait)
            return response
        minutes = services.settings.console_session_minutes
        session = services.console.open_session(info, _now(services), minutes)
        return Redirect(
            path=f"{BASE}/purpose",
            status_code=303,
            headers=HEADERS,
            cookies=[
                _cookie(services, SESSION_COOKIE, services.console.seal(session), minutes * 60),
                _cookie(services, CSRF_COOKIE, "", 0),
            ],
        )

    @get(
        f"{BASE}/purpose",
        operation_id="consolePurposePage",
        summary="Console: the purpose form, asked once per session",
        media_type="text/html",
    )
    async def purpose_page(self, request: Request[Any, Any, Any], services: Port[Any]) -> Response[Any]:
        found = await asyncio.to_thread(_caller, services, request)
        if found is None:
            return _to_sign_in()
        return _purpose_form(*found)

    @post(
        f"{BASE}/purpose",
        operation_id="consolePurpose",
        summary="Console: state the session's purpose (form: purpose, csrf); recorded with every read",
        media_type="text/html",
        opt={OPT_OWN_CHECKS: True},
        status_code=303,
    )
    async def purpose(self, request: Request[Any, Any, Any], services: Port[Any]) -> Response[Any]:
        found = await asyncio.to_thread(_caller, services, request)
        if found is None:
            return _to_sign_in()
        session, caller = found
        form = await _form(request)
        if not _same(form.get("csrf"), session.csrf):
            return _page("用途", '<p class="error">表单已过期，请重新提交。</p>', 403)
        try:
            purpose = check_purpose(caller.kind, form.get("purpose"))
        except DomainError as e:
            return _purpose_form(session, caller, str(e), 400)
        remaining = max(1, session.expires - int(_now(services).timestamp()))
        sealed = services.console.seal(session.with_purpose(purpose))
        return Redirect(
            path=BASE, status_code=303, headers=HEADERS, cookies=[_cookie(services, SESSION_COOKIE, sealed, remaining)]
        )

    @post(
        f"{BASE}/sign-out",
        operation_id="consoleSignOut",
        summary="Console: sign out (form: csrf)",
        media_type="text/html",
        opt={OPT_OWN_CHECKS: True},
        status_code=303,
    )
    async def sign_out(self, request: Request[Any, Any, Any], services: Port[Any]) -> Response[Any]:
        found = await asyncio.to_thread(_caller, services, request)
        form = await _form(request)
        if found is not None and not _same(form.get("csrf"), found[0].csrf):
            return _page("退出", '<p class="error">表单已过期。</p>', 403)
        return Redirect(
            path=f"{BASE}/sign-in", status_code=303, headers=HEADERS, cookies=[_cookie(services, SESSION_COOKIE, "", 0)]
        )

    @get(
        BASE,
        operation_id="consoleDashboard",
        summary="Console: KPI tiles, six months' trend charts and obligations late or open by agency",
        description="The indicators of `unit` (default: your area; the auditor's: the region) for `period` (a "
        "month, default this month) as `GET /v1/indicators` gives them at the log's head. Without a session: "
        "303 to the sign-in; without a purpose: 303 to the purpose form.",
        media_type="text/html",
    )
    async def dashboard(
        self,
        request: Request[Any, Any, Any],
        services: Port[Any],
        unit: UnitQuery = None,
        period: PeriodQuery = None,
    ) -> Response[Any]:
        found = await _with_purpose(services, request)
        if isinstance(found, Response):
            return found
        session, caller = found
        try:
            label = _period(services, period)
        except (DomainError, ValueError):
            return _page("指标", '<p class="error">统计期应为月份，如 2026-06。</p>', 400)
        scope = _unit(caller, unit)
        kind, ident = check_scope(services, caller, scope, None)
        months = _months_before(label, TREND_MONTHS)
        reports = await asyncio.to_thread(services.indicators.trend, services.registry, kind, ident, months)
        current = reports[-1]
        rates = [f for f in current["figures"] if f["unit"] == "%"]
        charts = "".join(
            trend_chart(
                f["label"],
                [
                    (m, next(x["value"] for x in r["figures"] if x["name"] == f["name"]))
                    for m, r in zip(months, reports, strict=True)
                ],
            )
            for f in rates
        )
        body = (
            f"{_nav(caller, session, scope, label)}"
            f"<h1>{escape(current['scope']['name'])}（{escape(current['scope']['id'])}）{escape(label)}</h1>"
            f"<p>日志位置 {current['position']} · 定义版本 {current['definitions_version']}</p>"
            f'{tiles(current["figures"])}<h2>近{TREND_MONTHS}个月趋势</h2><div class="charts">{charts}</div>'
            f"<h2>按机构：本期到期任务</h2>{overdue_by_agency(current['obligations'])}"
        )
        return _page("指标总览", body)

    @get(
        f"{BASE}/lists/{{list_name:str}}",
        operation_id="consoleList",
        summary="Console: the focus or lost list (every patient shown is recorded in the access log)",
        description="The first rows of the working list (`GET /v1/lists/{list}`'s reading and filter) in `unit`, "
        "by risk; `after`: the next page. Recorded in the access log with the session's purpose and staff id.",
        media_type="text/html",
    )
    async def working_list(
        self,
        request: Request[Any, Any, Any],
        services: Port[Any],
        list_name: FromPath[str],
        unit: UnitQuery = None,
        after: AfterQuery = None,
    ) -> Response[Any]:
        found = await _with_purpose(services, request)
        if isinstance(found, Response):
            return found
        session, caller = found
        if list_name not in CONSOLE_LISTS:
            return _page("名单", '<p class="error">控制台只显示关注名单和失访名单。</p>', 404)
        scope_unit = _unit(caller, unit)
        state: dict[str, Any] = {}

        def check() -> None:
            working_list(caller.kind, list_name)
            state["scope"] = scope_of(services, caller, scope_unit)
            state["after"] = decode_cursor("risk", after)

        async def read() -> tuple[tuple[list[dict[str, Any]], Any], Revealed]:
            rows, last = await asyncio.to_thread(
                read_page, services, caller, list_name, state["scope"], "risk", state["after"], LIST_ROWS
            )
            return (rows, last), revealed(rows)

        rows, last = await recorded(
            services, caller, LIST_ENDPOINT, session.purpose, session.staff_id, read, check=check
        )
        more = ""
        if last is not None:
            nxt = urlencode({"unit": scope_unit, "after": encode_cursor("risk", last)})
            more = f'<p><a href="{BASE}/lists/{list_name}?{nxt}">下一页</a></p>'
        period = _month(_now(services).astimezone(REGION_TZ).date())
        body = (
            f"{_nav(caller, session, scope_unit, period)}"
            f"<h1>{escape(CONSOLE_LISTS[list_name])}（{escape(scope_unit)}）</h1>"
            f"<p>共显示 {len(rows)} 人；本页的查阅已记入访问日志。</p>{list_table(rows)}{more}"
        )
        return _page(CONSOLE_LISTS[list_name], body)

    @get(
        f"{BASE}/reports/{{report:str}}",
        operation_id="consoleReport",
        summary="Console: a printable report (indicators, monthly report, quarterly risk analysis)",
        description="`indicators` and `monthly` take a month, `risk-analysis` a quarter; the same page as "
        "`GET /v1/indicators`, `/v1/reports/monthly`, `/v1/reports/risk-analysis` with `format=html`.",
        media_type="text/html",
    )
    async def report(
        self,
        request: Request[Any, Any, Any],
        services: Port[Any],
        report: FromPath[str],
        unit: UnitQuery = None,
        period: Annotated[
            str | None, QueryParameter(name="period", max_length=7, description="Month or quarter.")
        ] = None,
    ) -> Response[Any]:
        found = await _with_purpose(services, request)
        if isinstance(found, Response):
            return found
        _, caller = found
        scope = _unit(caller, unit)
        kind, ident = check_scope(services, caller, scope, None)
        label = period or _month(_now(services).astimezone(REGION_TZ).date())
        try:
            parse_period(label)
        except DomainError:
            return _page("报表", '<p class="error">统计期无效。</p>', 400)
        if report == "indicators":
            doc = await asyncio.to_thread(services.indicators.report, services.registry, kind, ident, label)
            html = indicators_html(doc)
        elif report in ("monthly", "risk-analysis") and services.periodic_reports is not None:
            name = "monthly" if report == "monthly" else "risk_analysis"
            wanted = label if report == "monthly" else (label if "Q" in label else _quarter_of(label))
            if (report == "monthly") == ("Q" in wanted) or len(wanted) != 7:
                return _page("报表", '<p class="error">月报取月份，季度风险研判取季度。</p>', 400)
            doc = await asyncio.to_thread(services.periodic_reports.document, name, ident, wanted, None)
            html = report_html(doc)
        else:
            return _page("报表", '<p class="error">没有这种报表。</p>', 404)
        return Response(html, media_type="text/html; charset=utf-8", headers=HEADERS)


#: The list columns the console shows, when the caller's kind may see the field.
LIST_COLUMNS: tuple[tuple[str, str, Any], ...] = (
    ("患者编号", "patient_id", lambda r: str(r["patient_id"])),
    ("居住地", "residence", lambda r: r["residence"]),
    ("姓名", "name", lambda r: r["name"] or ""),
    ("风险等级", "risk", lambda r: "" if r["risk"]["level"] is None else str(r["risk"]["level"])),
    ("失访", "lost", lambda r: "是" if r["lost"]["lost"] else "否"),
    ("关注类别", "focus", lambda r: "、".join(r["focus"]["categories"])),
    ("重点", "focus", lambda r: "是" if r["focus"]["key"] else "否"),
)


def list_table(rows: list[dict[str, Any]]) -> str:
    """The rows as a table, with the columns the rows carry (the file's filter already applied)."""
    if not rows:
        return '<p class="empty">名单为空。</p>'
    columns = [c for c in LIST_COLUMNS if c[1] in rows[0]]
    head = "".join(f"<th>{escape(c[0])}</th>" for c in columns)
    body = "".join(
        f'<tr data-patient="{escape(str(r["patient_id"]))}">'
        + "".join(f"<td>{escape(c[2](r))}</td>" for c in columns)
        + "</tr>"
        for r in rows
    )
    return f'<table class="list"><tr>{head}</tr>{body}</table>'


def _sign_in_form(services: Any, token: str, error: str = "", status: int = 200) -> Response[str]:
    message = f'<p class="error">{escape(error)}</p>' if error else ""
    body = (
        "<h1>严重精神障碍患者管理 · 管理控制台</h1>"
        "<p>请使用本人的控制台凭证登录（不是机构的接口密钥）。</p>"
        f'{message}<form method="post" action="{BASE}/sign-in">'
        f'<input type="hidden" name="csrf" value="{escape(token)}">'
        '<label>控制台凭证 <input type="password" name="credential" autocomplete="off" size="64"></label> '
        "<button>登录</button></form>"
    )
    return _page("登录", body, status, cookies=[_cookie(services, CSRF_COOKIE, token, 600)])


def _purpose_form(session: Session, caller: Caller, error: str = "", status: int = 200) -> Response[str]:
    allowed = [p for p in PURPOSES if (p == "audit") == (caller.kind == "auditor")]
    options = "".join(
        f'<p><label><input type="radio" name="purpose" value="{escape(p)}"{" checked" if i == 0 else ""}> '
        f"{escape(p)}：{escape(PURPOSES[p])}</label></p>"
        for i, p in enumerate(allowed)
    )
    message = f'<p class="error">{escape(error)}</p>' if error else ""
    body = (
        f"<h1>本次查阅的用途</h1><p>{escape(caller.name)} · 工号 {escape(session.staff_id)}。"
        "用途将与本次会话中显示的每位患者一起记入访问日志。</p>"
        f'{message}<form method="post" action="{BASE}/purpose">'
        f'<input type="hidden" name="csrf" value="{escape(session.csrf)}">{options}<button>继续</button></form>'
    )
    return _page("用途", body, status)
