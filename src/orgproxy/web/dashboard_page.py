"""The dashboard's page (``GET /orgproxy/``): an ``Overview`` written as one HTML document
with everything inline (its stylesheet and script allowed by hash: see
``dashboard_assets.py``; its charts SVG drawn here). Pure: data in, bytes out.

Every name, id, path and reason from outside is escaped wherever it is written (text,
attribute, SVG), so a key named ``<script>alert(1)</script>`` in a provider's console is
shown as those characters. Amounts are rounded to the cent to be shown, and the page says
so; ``costs.json`` has them exact.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime
from decimal import Decimal

from orgproxy.costs.overview import ENABLE, Bar, GroupTotal, Overview, ProviderView
from orgproxy.money import plain
from orgproxy.times import iso
from orgproxy.web.dashboard_assets import SCRIPT, STYLE
from orgproxy.web.dashboard_chart import bar_svg, dollars, escaped, stacked_chart

KIND_NOTE = {"unknown": "no name: add it to an alias file", "null": "", "other": "the smallest keys, together"}
STATUS = {"ok": "up to date", "never": "no refresh yet", "stale": "stale", "failing": "last refresh failed"}


def render_page(view: Overview, client_token: bool = False) -> bytes:
    """The whole page; ``client_token``: the daemon asks callers for one (the page then says
    how a script sends it)."""
    parts = ["<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
             '<meta name="viewport" content="width=device-width, initial-scale=1">'
             '<meta name="referrer" content="no-referrer"><title>orgproxy: costs per key name</title>'
             f"<style>{STYLE}</style></head><body>",
             "<header><h1>orgproxy: costs per key name</h1>"
             f'<p class="meta">As of {_when(view.generated_at)}. Billed costs in US dollars, rounded to the cent'
             ' here; <a href="costs.json">costs.json</a> has them exact.</p></header><main>']
    if view.warnings:
        parts.append('<section class="warnings" role="alert"><h2>Look out</h2><ul>'
                     + "".join(f'<li class="warning">{escaped(w)}</li>' for w in view.warnings) + "</ul></section>")
    if view.cost_series != "on":
        parts.append(_enable(view.cost_series))
    for provider in view.providers:
        parts.append(_provider(provider))
    for provider in view.missing:
        parts.append(f'<p class="note missing" data-provider="{provider}">No {provider.title()} costs: to see'
                     f" them, {escaped(ENABLE[provider])}.</p>")
    if view.budgets:
        parts.append(_budgets(view))
    parts.append(_unknown(view, client_token))
    parts.append("</main><footer>orgproxy draws this page from what it keeps (the costs of its last refresh,"
                 " the names in force, the budgets, the ids it saw); it never asks a provider when the page is"
                 f" viewed.</footer><script>{SCRIPT}</script></body></html>")
    return "".join(parts).encode("utf-8")


def _when(seconds: float | None) -> str:
    if seconds is None:
        return "never"
    return datetime.fromtimestamp(seconds, UTC).strftime("%Y-%m-%d %H:%M UTC")


def _enable(state: str) -> str:
    if state == "off":
        how = ("The cost series are off (<code>--cost-interval 0</code>). Start orgproxy with"
               " <code>--cost-interval 3600</code> (the default) and an admin key to see what each key cost.")
    else:
        how = ("orgproxy has no admin key, so it cannot fetch costs. To see what each key cost, "
               + escaped(ENABLE["openai"]) + "; for Anthropic, " + escaped(ENABLE["anthropic"])
               + ". It then fetches each provider's costs at start and every <code>--cost-interval</code>"
               " seconds (an hour by default), and this page shows them.")
    return f'<section class="enable" id="enable"><h2>No cost data</h2><p>{how}</p></section>'


def _provider(view: ProviderView) -> str:
    month = view.month.strftime("%B %Y")
    parts = [f'<section class="provider" id="{view.provider}" data-provider="{view.provider}">'
             f'<h2>{escaped(view.title)} <span class="total" data-value="{plain(view.total)}">'
             f"{dollars(view.total)}</span></h2>"
             f'<p class="refreshed">{month} so far. Refreshed {_when(view.refreshed_at)}'
             f' (<span class="status {view.status}">{STATUS[view.status]}</span>).</p>',
             "<h3>This month per key name</h3>"]
    if view.bars:
        parts.append(_bars_table("Key name", view.bars, view.title))
    else:
        parts.append('<p class="note">No cost this month yet.</p>')
    parts.append(f"<h3>Daily cost, the last {len(view.days)} days</h3>")
    if view.stacks:
        classes = [f"s{n}" if stack.kind != "other" else "s-other" for n, stack in enumerate(view.stacks)]
        parts.append(stacked_chart(view.days, [(s.label, s.amounts) for s in view.stacks], classes))
        parts.append('<ul class="legend">' + "".join(
            f'<li><svg viewBox="0 0 12 12"><rect class="{css}" width="12" height="12"/></svg>'
            f'<bdi>{escaped(stack.label)}</bdi> {dollars(stack.total)}</li>'
            for stack, css in zip(view.stacks, classes, strict=True)) + "</ul>")
    else:
        parts.append('<p class="note">No cost in these days.</p>')
    parts.append(f"<h3>This month per {view.group_title}</h3>")
    parts.append(_groups_table(view) if view.groups else '<p class="note">No cost this month yet.</p>')
    parts.append("</section>")
    return "".join(parts)


def _scale(amounts: Iterable[Decimal]) -> Decimal:
    return max((a for a in amounts if a > 0), default=Decimal(0))


def _bars_table(heading: str, bars: tuple[Bar, ...], title: str) -> str:
    """A row per bar: its label, amount and budget as text (the bar beside them shows the
    amount again, and where there is a budget, its marker and, on hover, the name's cost on
    both providers)."""
    scale = _scale([*(b.amount for b in bars), *(b.budget for b in bars if b.budget is not None)])
    at = f" this month at {escaped(title)}"
    rows = []
    for bar in bars:
        name = escaped(bar.label)
        amount = dollars(bar.amount)
        note = KIND_NOTE.get(bar.kind, "")
        extra = f'<span class="kind">{escaped(note)}</span>' if note else ""
        budget, hover = '<td class="num" data-value="0"></td>', None
        if bar.budget is not None and bar.spent is not None:
            limit = dollars(bar.budget)
            hover = (f"{name}: {amount}{at}; budget {limit} a month for both providers, spent"
                     f" {dollars(bar.spent)}" + (" (over)" if bar.over else ""))
            extra += '<span class="badge">over budget</span>' if bar.over else ""
            budget = f'<td class="num" data-value="{plain(bar.budget)}">{limit}</td>'
        row_class = f"bar-row {bar.kind} over" if bar.over else f"bar-row {bar.kind}"
        ids = f' title="{escaped(", ".join(bar.key_ids))}"' if bar.kind == "name" else ""
        rows.append(f'<tr class="{row_class}" data-label="{name}"><td class="label"{ids}><bdi>{name}</bdi>'
                    f'{extra}</td><td class="num amount" data-value="{plain(bar.amount)}">{amount}</td>'
                    f'{budget}<td class="barcell">{bar_svg(bar.amount, scale, bar.budget, hover)}</td></tr>')
    return ('<table class="bars sortable"><thead><tr><th data-sort="text">' + heading + '</th>'
            '<th class="num" data-sort="number">This month</th><th class="num" data-sort="number">Budget</th>'
            "<th></th></tr></thead><tbody>" + "".join(rows) + "</tbody></table>")


def _groups_table(view: ProviderView) -> str:
    scale = _scale(g.amount for g in view.groups)
    rows = []
    for group in view.groups:
        name, amount = escaped(group.label), dollars(group.amount)
        rows.append(f'<tr class="group-row {group.kind}" data-label="{name}"><td class="label"><bdi>{name}</bdi>'
                    f'</td><td class="num amount" data-value="{plain(group.amount)}">{amount}</td>'
                    f'<td class="barcell">{bar_svg(group.amount, scale, None)}</td></tr>')
    return (f'<table class="groups sortable"><thead><tr><th data-sort="text">{view.group_title.title()}</th>'
            '<th class="num" data-sort="number">This month</th><th></th></tr></thead><tbody>'
            + "".join(rows) + "</tbody></table>")


def _budgets(view: Overview) -> str:
    rows = "".join(
        f'<tr class="budget-row{" over" if line.over else ""}" data-label="{escaped(line.name)}">'
        f'<td class="label"><bdi>{escaped(line.name)}</bdi>{"<span class=badge>over budget</span>" if line.over else ""}'
        f'</td><td class="num" data-value="{plain(line.spent)}">{dollars(line.spent)}</td>'
        f'<td class="num" data-value="{plain(line.budget)}">{dollars(line.budget)}</td>'
        f'<td class="num" data-value="{plain(line.spent / line.budget * 100)}">'
        f"{line.spent / line.budget * 100:.0f}%</td></tr>" for line in view.budgets)
    return ('<section class="budgets" id="budgets"><h2>Budgets</h2><p class="note">Each key name\'s cost this month'
            " on both providers together, against its monthly budget (<code>--budgets</code>).</p>"
            '<table class="sortable"><thead><tr><th data-sort="text">Key name</th>'
            '<th class="num" data-sort="number">This month</th><th class="num" data-sort="number">Budget</th>'
            f'<th class="num" data-sort="number">Used</th></tr></thead><tbody>{rows}</tbody></table></section>')


def _unknown(view: Overview, client_token: bool) -> str:
    count = view.unknown_count
    parts = ['<section class="unknown" id="unknown"><h2>Ids nobody named</h2>'
             f'<p><span class="unknown-count">{count}</span> {"id" if count == 1 else "ids"} seen in answers'
             ' since orgproxy started have no name.']
    if count:
        token = (' (with the client token: <code>curl -H "X-Orgproxy-Token: $TOKEN"</code>)' if client_token else "")
        parts.append(' <a href="unknown?format=toml">/orgproxy/unknown?format=toml</a> lists them all as an alias'
                     f" file to fill in{token}.</p>")
        parts.append('<table><thead><tr><th>Id</th><th>Provider</th><th>Field</th><th class="num">Seen</th>'
                     "<th>Last seen</th></tr></thead><tbody>")
        parts.extend(f'<tr class="unknown-id"><td class="label"><code>{escaped(u.id)}</code></td>'
                     f"<td>{escaped(u.provider)}</td><td>{escaped(u.field)}</td>"
                     f'<td class="num">{u.count}</td><td>{iso(u.last_seen)}</td></tr>' for u in view.unknown_recent)
        parts.append("</tbody></table>")
    else:
        parts.append("</p>")
    parts.append("</section>")
    return "".join(parts)
