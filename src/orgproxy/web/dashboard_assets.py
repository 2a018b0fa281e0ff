"""The dashboard's one stylesheet and one script, written inline in the page, and the
Content-Security-Policy that allows exactly these two by their SHA-256 and nothing else:
no remote source of any kind, no other inline script or style, no style attribute (every
length in the page is an SVG attribute), no form, no frame, no plugin.

The page works with the script off: it only makes the tables sortable by a click on a
column's heading (the order served is largest first); hovering shows each bar's and each
day's figures through SVG ``<title>``, which needs no script.
"""

from __future__ import annotations

import base64
import hashlib

STYLE = """
:root{color-scheme:light;--ink:#1d2330;--muted:#5b6473;--line:#d9dee7;--bar:#3b6fb6;--over:#c0392b;
--warn-bg:#fff4d6;--warn:#7a5600}
*{box-sizing:border-box}
body{margin:0;font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;color:var(--ink);background:#f6f7f9}
header,main,footer{max-width:1180px;margin:0 auto;padding:12px 20px}
h1{font-size:22px;margin:8px 0 2px}h2{font-size:18px;margin:0 0 4px}h3{font-size:15px;margin:18px 0 6px}
.meta,.refreshed,.note,footer{color:var(--muted)}
a{color:#1f5fbf}
section{background:#fff;border:1px solid var(--line);border-radius:8px;padding:14px 18px;margin:14px 0}
.warnings{background:var(--warn-bg);border-color:#f0d48a;color:var(--warn)}
.warnings li{margin:2px 0}
.enable code,.note code{background:#eef1f5;padding:1px 4px;border-radius:3px}
.total{float:right;font-size:20px;font-variant-numeric:tabular-nums}
table{border-collapse:collapse;width:100%}
th,td{text-align:left;padding:3px 8px;border-bottom:1px solid #eef0f4;vertical-align:middle}
th{font-weight:600;color:var(--muted);white-space:nowrap}
th[data-sort]{cursor:pointer}
th[data-sort]:hover{color:var(--ink)}
td.num,th.num{text-align:right;font-variant-numeric:tabular-nums;white-space:nowrap}
td.label{max-width:340px;overflow-wrap:anywhere}
td.barcell{width:45%}
svg.bar{display:block;width:100%;height:14px}
svg.bar .fill{fill:var(--bar)}
tr.over svg.bar .fill{fill:var(--over)}
tr.over td.label{color:var(--over);font-weight:600}
svg.bar .budget{stroke:#111;stroke-width:2}
.badge{display:inline-block;font-size:11px;font-weight:600;color:#fff;background:var(--over);border-radius:3px;
padding:0 5px;margin-left:4px}
.kind{font-size:11px;color:var(--muted);margin-left:4px}
tr.unknown td.label{font-family:ui-monospace,monospace;font-size:12px}
svg.chart{display:block;width:100%;height:auto;max-height:340px}
svg.chart .axis line{stroke:#c9ced8}svg.chart .axis text{fill:var(--muted);font-size:11px}
svg.chart .grid line{stroke:#eceff3}
ul.legend{list-style:none;padding:0;margin:6px 0 0;display:flex;flex-wrap:wrap;gap:4px 16px}
ul.legend svg{width:12px;height:12px;vertical-align:-1px;margin-right:4px}
.s0{fill:#3b6fb6}.s1{fill:#e69f00}.s2{fill:#2a9d8f}.s3{fill:#cc79a7}.s4{fill:#8d6e63}.s5{fill:#56b4e9}
.s6{fill:#9c7cd8}.s7{fill:#6aa84f}.s-other{fill:#aab1bd}
svg.chart rect:hover{opacity:.75}
"""

SCRIPT = """
"use strict";
document.querySelectorAll("table.sortable").forEach(function (table) {
  table.querySelectorAll("th[data-sort]").forEach(function (th) {
    th.tabIndex = 0;
    function sort() {
      var column = th.cellIndex, numeric = th.dataset.sort === "number";
      var down = th.getAttribute("aria-sort") !== "descending";
      table.querySelectorAll("th[aria-sort]").forEach(function (h) { h.removeAttribute("aria-sort"); });
      th.setAttribute("aria-sort", down ? "descending" : "ascending");
      var body = table.tBodies[0], rows = Array.prototype.slice.call(body.rows);
      function key(row) {
        var cell = row.cells[column];
        return numeric ? parseFloat(cell.dataset.value) : cell.textContent.toLowerCase();
      }
      rows.sort(function (a, b) {
        var x = key(a), y = key(b), order = x < y ? -1 : x > y ? 1 : 0;
        return down ? -order : order;
      });
      rows.forEach(function (row) { body.appendChild(row); });
    }
    th.addEventListener("click", sort);
    th.addEventListener("keydown", function (event) { if (event.key === "Enter") { sort(); } });
  });
});
"""


def _sha256(text: str) -> str:
    return "'sha256-" + base64.b64encode(hashlib.sha256(text.encode("utf-8")).digest()).decode("ascii") + "'"


CONTENT_SECURITY_POLICY = "; ".join((
    "default-src 'none'",
    f"style-src {_sha256(STYLE)}",
    f"script-src {_sha256(SCRIPT)}",
    "img-src 'none'",
    "base-uri 'none'",
    "form-action 'none'",
    "frame-ancestors 'none'",
)).encode("ascii")

# Every answer of the dashboard's (the page, costs.json, and their refusals) says these.
SECURITY_HEADERS = (
    (b"content-security-policy", CONTENT_SECURITY_POLICY),
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"no-referrer"),
    (b"cache-control", b"no-store"),
)
