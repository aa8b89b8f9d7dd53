"""The monthly and quarterly reports as CSV (UTF-8 with a BOM) and as printable HTML pages with
server-rendered SVG charts (no script, no external asset, Chinese text), reusing the indicators'
pieces (``api.indicator_documents``). The JSON answer is the report itself
(``projections.periodic_reports``); ``smd report monthly|quarterly`` writes the same files.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Callable
from html import escape
from typing import Any

from api.indicator_documents import BOM, _bars, _table, _value

KIND_LABELS = {
    "health_center": "卫生院",
    "police_station": "派出所",
    "civil_affairs": "民政",
    "committee": "村（居）委会",
    "governance_center": "综治中心",
    "disabled_persons_federation": "残联",
    "psychiatric_hospital": "精神专科医院",
    "department": "科室",
}
BASIS_LABELS = {"system": "系统数据", "own_entries": "本单位填报", "none": "未填报"}


def _csv(header: list[str], rows: list[list[Any]]) -> str:
    out = io.StringIO()
    w = csv.writer(out, lineterminator="\r\n")
    w.writerow(header)
    w.writerows([[_value(v) for v in r] for r in rows])
    return BOM + out.getvalue()


def monthly_csv(r: dict[str, Any]) -> str:
    """One line per agency, task and piece of evidence (an indicator, a rule's obligations, an
    own entry; a task with nothing says so), each with the position and the plan's version."""
    rows: list[list[Any]] = []
    base = [r["scope"]["id"], r["period"]["label"]]
    tail = [r["position"], r["work_plan"]["version"], r["definitions_version"]]
    for a in r["agencies"]:
        for t in a["tasks"]:
            head = [*base, a["id"], a["kind"], t["number"], t["basis"]]
            for f in (t["evidence"] or {}).get("indicators", []):
                rows.append([*head, "indicator", f["name"], f["numerator"], f["denominator"], f["value"], "", *tail])
            for o in (t["evidence"] or {}).get("obligations", []):
                rows.append([*head, "obligations", o["rule"], o["on_time"], o["due"], o.get("rate"), "", *tail])
            for e in t["entries"]:
                rows.append([*head, "entry", e["occurred_at"], "", "", "", e["text"], *tail])
            if t["basis"] == "none":
                rows.append([*head, "none", "", "", "", "", "", *tail])
    header = ["unit", "period", "agency", "kind", "task", "basis", "item", "name", "numerator", "denominator"]
    return _csv([*header, "value", "text", "position", "work_plan_version", "definition_version"], rows)


def _trend_rows(items: list[tuple[str, dict[str, Any]]]) -> list[list[Any]]:
    return [[name, t["value"], t["previous"], t["change"], t["direction"]] for name, t in items]


def quarterly_csv(r: dict[str, Any]) -> str:
    """The figures of the quarter against the previous quarter, then the obligations by rule."""
    base = [r["scope"]["id"], r["period"]["label"], r["previous_period"]]
    rows = [[*base, "figure", *row, r["position"]] for row in _trend_rows([(t["name"], t) for t in r["trends"]])]
    for o in r["obligations"]:
        rows.append([*base, "obligations", o["rule"], o["rate"], "", "", f"{o['on_time']}/{o['due']}", r["position"]])
    for e in r["entries"]:
        rows.append([*base, "entry", e["task_number"], "", "", "", e["text"], r["position"]])
    header = ["agency", "period", "previous_period", "part", "name", "value", "previous", "change", "direction"]
    return _csv([*header, "position"], rows)


def risk_csv(r: dict[str, Any]) -> str:
    """The area's and each child's figures against the previous quarter, then overdue by agency."""
    base = [r["period"]["label"], r["previous_period"]]
    rows: list[list[Any]] = []
    for sid, part in [(r["scope"]["id"], r["area"])] + [(c["id"], c) for c in r["children"]]:
        items = [(k, part[k]) for k in ("registered", "high_risk", "lost", "incidents")]
        rows += [[*base, sid, *row, r["position"]] for row in _trend_rows(items)]
    for o in r["overdue_by_agency"]:
        rows += [
            [*base, o["assignee"], *row, r["position"]] for row in _trend_rows([("overdue_open", o["overdue_open"])])
        ]
    header = ["period", "previous_period", "scope", "name", "value", "previous", "change", "direction", "position"]
    return _csv(header, rows)


def _page(title: str, r: dict[str, Any], body: str) -> str:
    scope, period = r["scope"], r["period"]
    return f"""<!doctype html>
<html lang="zh-CN"><head><meta charset="utf-8">
<title>{escape(title)} {escape(scope["name"])} {escape(period["label"])}</title>
<style>
body {{ font-family: "WenQuanYi Zen Hei", "Noto Sans CJK SC", sans-serif; margin: 2em; }}
table {{ border-collapse: collapse; margin: 1em 0; }}
td, th {{ border: 1px solid #999; padding: 0.2em 0.6em; vertical-align: top; }}
.none {{ color: #a33; }}
@media print {{ body {{ margin: 0; }} section {{ page-break-inside: avoid; }} }}
</style></head><body>
<h1>{escape(title)}：{escape(scope["name"])}（{escape(scope["id"])}）</h1>
<p>统计期 {escape(period["label"])}（{period["first"]} 至 {period["last"]}）；日志位置 {r["position"]}；
指标定义版本 {r["definitions_version"]}</p>
{body}
</body></html>
"""


def monthly_html(r: dict[str, Any]) -> str:
    """Per agency, its tasks: the system's evidence, its own entries, or "未填报" (nothing invented)."""
    tasks = {t["number"]: t for t in r["tasks"]}
    sections = []
    for a in r["agencies"]:
        lines = []
        for t in a["tasks"]:
            task = tasks.get(t["number"], {"action": "", "text": ""})
            ev = t["evidence"] or {}
            figs = "；".join(f"{escape(f['label'])} {escape(_value(f['value']))}" for f in ev.get("indicators", []))
            obls = "；".join(f"{escape(o['rule'])} 按时 {o['on_time']}/{o['due']}" for o in ev.get("obligations", []))
            entries = "<br>".join(escape(e["text"]) for e in t["entries"])
            shown = "<span class='none'>未填报</span>" if t["basis"] == "none" else ""
            lines.append(
                f"<tr><td>{t['number']}</td><td>{escape(task['action'])}</td><td>{BASIS_LABELS[t['basis']]}</td>"
                f"<td>{figs}</td><td>{obls}</td><td>{entries}{shown}</td></tr>"
            )
        sections.append(
            f"<section><h2>{escape(a['name'])}（{escape(KIND_LABELS.get(a['kind'], a['kind']))}）</h2>"
            "<table><tr><th>任务</th><th>行动</th><th>依据</th><th>指标</th><th>义务按时完成</th><th>工作开展情况</th></tr>"
            f"{''.join(lines)}</table></section>"
        )
    ind = r["indicators"]
    rates = [(f["label"], f["value"]) for f in ind["figures"] if f["unit"] == "%"]
    plan = r["work_plan"]
    task_list = "".join(f"<li>{t['number']}. {escape(t['action'])}：{escape(t['text'])}</li>" for t in r["tasks"])
    body = (
        f"<p>任务分解表：{escape(plan['title'])}（版本 {plan['version']}）</p>"
        f"<h2>本期指标</h2>{_table(ind['figures'])}{_bars('各项比率', rates, '%')}"
        f"{''.join(sections)}<h2>任务分解表</h2><ol class='tasks'>{task_list}</ol>"
    )
    return _page(r["title"], r, body)


def _trend_table(items: list[tuple[str, dict[str, Any]]]) -> str:
    rows = "".join(
        f"<tr><td>{escape(n)}</td><td>{escape(_value(t['value']))}</td><td>{escape(_value(t['previous']))}</td>"
        f"<td>{escape(_value(t['change']))}</td></tr>"
        for n, t in items
    )
    return f"<table><tr><th>项目</th><th>本期</th><th>上期</th><th>变化</th></tr>{rows}</table>"


def quarterly_html(r: dict[str, Any]) -> str:
    """The quarter's figures against the previous quarter (table and chart), obligations, entries."""
    trends = [(t["label"], t) for t in r["trends"]]
    rates = [(f"{t['label']}（本期）", t["value"]) for t in r["trends"] if t["unit"] == "%"]
    rates += [(f"{t['label']}（上期）", t["previous"]) for t in r["trends"] if t["unit"] == "%"]
    obls = "".join(
        f"<tr><td>{escape(o['rule'])}</td><td>{o['due']}</td><td>{o['on_time']}</td><td>{o['late']}</td>"
        f"<td>{o['open']}</td></tr>"
        for o in r["obligations"]
    )
    entries = "".join(f"<li>任务 {e['task_number']}：{escape(e['text'])}</li>" for e in r["entries"])
    body = (
        f"<h2>本季度与上季度（{escape(r['previous_period'])}）</h2>{_trend_table(trends)}"
        f"{_bars('各项比率：本期与上期', rates, '%')}"
        "<h2>义务完成情况</h2><table><tr><th>规则</th><th>应完成</th><th>按时</th><th>逾期完成</th><th>未完成</th></tr>"
        f"{obls}</table><h2>工作开展情况</h2><ul>{entries or '<li>未填报</li>'}</ul>"
    )
    return _page(r["title"], r, body)


RISK_LABELS = {"registered": "在册", "high_risk": "高风险（3级及以上）", "lost": "失访", "incidents": "肇事肇祸等事件"}


def risk_html(r: dict[str, Any]) -> str:
    """The area against the previous quarter, each child unit, overdue obligations by agency."""
    area = r["area"]
    items = [(RISK_LABELS[k], area[k]) for k in RISK_LABELS]
    chart = [(f"{RISK_LABELS[k]}（本期）", float(area[k]["value"])) for k in ("high_risk", "lost", "incidents")]
    chart += [(f"{RISK_LABELS[k]}（上期）", float(area[k]["previous"])) for k in ("high_risk", "lost", "incidents")]
    children = "".join(
        f"<tr><td>{escape(c['name'])}</td>"
        + "".join(f"<td>{c[k]['value']}（{c[k]['previous']}）</td>" for k in RISK_LABELS)
        + "</tr>"
        for c in r["children"]
    )
    overdue = [(o["assignee"], float(o["overdue_open"]["value"])) for o in r["overdue_by_agency"]]
    rows = "".join(
        f"<tr><td>{escape(o['assignee'])}</td><td>{o['overdue_open']['value']}</td><td>{o['overdue_open']['previous']}</td>"
        f"<td>{o['due_in_period']}</td><td>{o['late_in_period']}</td></tr>"
        for o in r["overdue_by_agency"]
    )
    body = (
        f"<h2>辖区总体（上期 {escape(r['previous_period'])}）</h2>{_trend_table(items)}"
        f"{_bars('风险隐患：本期与上期', chart, '')}"
        "<h2>各下级单位（括号内为上期）</h2><table><tr><th>单位</th>"
        + "".join(f"<th>{escape(v)}</th>" for v in RISK_LABELS.values())
        + f"</tr>{children}</table><h2>逾期未完成义务（按机构）</h2>"
        + (_bars("期末逾期未完成", overdue, "") if overdue else "")
        + "<table><tr><th>机构</th><th>期末逾期未完成</th><th>上期</th><th>本期到期</th><th>本期逾期完成</th></tr>"
        + f"{rows}</table><p>{escape(r['high_risk_rule'])}</p><p>{escape(r['overdue_rule'])}</p>"
    )
    return _page(r["title"], r, body)


RENDERERS: dict[str, tuple[Callable[[dict[str, Any]], str], Callable[[dict[str, Any]], str]]] = {
    "monthly": (monthly_csv, monthly_html),
    "health_center_quarterly": (quarterly_csv, quarterly_html),
    "risk_analysis": (risk_csv, risk_html),
}


def to_csv(report: dict[str, Any]) -> str:
    return RENDERERS[report["document"]][0](report)


def to_html(report: dict[str, Any]) -> str:
    return RENDERERS[report["document"]][1](report)
