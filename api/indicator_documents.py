"""An indicators report as CSV (UTF-8 with a BOM, for Excel and WPS) and as a printable HTML page
with server-rendered SVG charts (no script, no external asset, Chinese text). The JSON answer is
the report itself (``projections.indicators.indicator_report``). ``smd report`` writes the same.
"""

from __future__ import annotations

import csv
import io
from html import escape
from typing import Any

BOM = "\ufeff"


def _value(v: Any) -> str:
    return "" if v is None else str(v)


def to_csv(report: dict[str, Any]) -> str:
    """One line per figure of the scope and of each child, then one per agency and rule; each
    line names the log position and the definition's version. A "with late facts" part follows,
    labelled on every line, when the report has one."""
    out = io.StringIO()
    w = csv.writer(out, lineterminator="\r\n")
    w.writerow(
        [
            "part",
            "scope",
            "scope_name",
            "period",
            "indicator",
            "label",
            "numerator",
            "denominator",
            "value",
            "unit",
            "position",
            "definition_version",
        ]
    )
    period = report["period"]["label"]

    def figures(part: str, body: dict[str, Any]) -> None:
        scopes = [(report["scope"]["id"], report["scope"]["name"], body["figures"])]
        scopes += [(c["id"], c["name"], c["figures"]) for c in body["children"]]
        for sid, name, figs in scopes:
            for f in figs:
                w.writerow(
                    [
                        part,
                        sid,
                        name,
                        period,
                        f["name"],
                        f["label"],
                        f["numerator"],
                        _value(f["denominator"]),
                        _value(f["value"]),
                        f["unit"],
                        f["position"],
                        f["definition_version"],
                    ]
                )
        for o in body["obligations"]:
            w.writerow(
                [
                    part,
                    o["assignee"],
                    o["rule"],
                    period,
                    "obligations_on_time",
                    "按时完成率",
                    o["on_time"],
                    o["due"],
                    _value(o["rate"]),
                    "%",
                    o["position"],
                    o["definition_version"],
                ]
            )

    figures("at_position", report)
    if "with_late_facts" in report:
        figures("with_late_facts", report["with_late_facts"])
    return BOM + out.getvalue()


def _bars(title: str, rows: list[tuple[str, float | None]], unit: str) -> str:
    """A horizontal bar chart (0-100 for percentages) as inline SVG."""
    width, bar_h, label_w = 640, 22, 190
    height = 30 + bar_h * len(rows)
    top = max([v for _, v in rows if v is not None] + [100.0 if unit == "%" else 1.0])
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" role="img"'
        f' aria-label="{escape(title)}"><title>{escape(title)}</title>',
        f'<text x="0" y="16" font-size="14" font-weight="bold">{escape(title)}</text>',
    ]
    for i, (label, v) in enumerate(rows):
        y = 26 + i * bar_h
        w = 0 if v is None else round((width - label_w - 70) * v / top, 1)
        shown = "—" if v is None else f"{v}{unit}"
        parts.append(f'<text x="0" y="{y + 15}" font-size="12">{escape(label)}</text>')
        parts.append(f'<rect x="{label_w}" y="{y + 3}" width="{w}" height="{bar_h - 8}" fill="#4a78a8"/>')
        parts.append(f'<text x="{label_w + w + 6}" y="{y + 15}" font-size="12">{escape(shown)}</text>')
    parts.append("</svg>")
    return "".join(parts)


def _table(figs: list[dict[str, Any]]) -> str:
    rows = "".join(
        f"<tr><td>{escape(f['label'])}</td><td>{f['numerator']}</td><td>{_value(f['denominator'])}</td>"
        f"<td>{escape(_value(f['value']))} {escape(f['unit'] if f['unit'] != 'patients' else '人')}</td></tr>"
        for f in figs
    )
    return f"<table><tr><th>指标</th><th>分子</th><th>分母</th><th>值</th></tr>{rows}</table>"


def to_html(report: dict[str, Any]) -> str:
    """A printable page: the figures, a chart of the rates, a chart by child unit, the
    obligations by agency and rule, the definitions; the late facts' part labelled."""
    scope, period = report["scope"], report["period"]
    rates = [(f["label"], f["value"]) for f in report["figures"] if f["unit"] == "%"]
    by_child = [
        (c["name"], next((f["value"] for f in c["figures"] if f["name"] == "management_rate"), None))
        for c in report["children"]
    ]
    obligations = "".join(
        f"<tr><td>{escape(o['assignee'])}</td><td>{escape(o['rule'])}</td><td>{o['due']}</td><td>{o['on_time']}</td>"
        f"<td>{o['late']}</td><td>{o['open']}</td><td>{escape(_value(o['rate']))}</td>"
        f"<td>{escape(_value(o['median_lateness_days']))}</td></tr>"
        for o in report["obligations"]
    )
    definitions = "".join(
        f"<li><b>{escape(d['label'])}</b>（v{d['version']}{'，本系统定义' if d['ours'] else ''}）："
        f"{escape(d['numerator'])}{' ÷ ' + escape(d['denominator']) if d['denominator'] else ''}；"
        f"{escape(d['period_rule_text'])}</li>"
        for d in report["definitions"]
    )
    late = ""
    if "with_late_facts" in report:
        w = report["with_late_facts"]
        diffs = "".join(
            f"<li>{escape(d['label'])}：{escape(_value(d['at_position']['value']))} → "
            f"{escape(_value(d['with_late_facts']['value']))}</li>"
            for d in w["differences"]
        )
        late = (
            f"<section class='late'><h2>含迟报事实（日志位置 {w['position']}）</h2>"
            f"<p>{escape(w['label'])}</p><p>迟报事实 {len(w['late_facts'])} 条</p><ul>{diffs}</ul>"
            f"{_table(w['figures'])}</section>"
        )
    return f"""<!doctype html>
<html lang="zh-CN"><head><meta charset="utf-8">
<title>指标报表 {escape(scope["name"])} {escape(period["label"])}</title>
<style>
body {{ font-family: "WenQuanYi Zen Hei", "Noto Sans CJK SC", sans-serif; margin: 2em; }}
table {{ border-collapse: collapse; margin: 1em 0; }}
td, th {{ border: 1px solid #999; padding: 0.2em 0.6em; }}
.late {{ border-top: 3px dashed #a33; margin-top: 2em; }}
@media print {{ body {{ margin: 0; }} }}
</style></head><body>
<h1>严重精神障碍患者管理指标：{escape(scope["name"])}（{escape(scope["id"])}）</h1>
<p>统计期 {escape(period["label"])}（{period["first"]} 至 {period["last"]}）；日志位置 {report["position"]}；
定义版本 {report["definitions_version"]}；常住人口 {scope["population"]}</p>
{_table(report["figures"])}
{_bars("各项比率", rates, "%")}
{_bars("下级单位管理率", by_child, "%") if by_child else ""}
<h2>按时完成情况（按机构、规则）</h2>
<table><tr><th>机构</th><th>规则</th><th>应完成</th><th>按时</th><th>逾期完成</th><th>未完成</th><th>按时率 %</th>
<th>逾期中位天数</th></tr>{obligations}</table>
{late}
<h2>指标定义</h2><ul>{definitions}</ul>
</body></html>
"""
