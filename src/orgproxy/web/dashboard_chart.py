"""The dashboard's drawings, as SVG text drawn by the server: a stacked bar chart of each
day's cost (one ``<g class="series">`` per label, bottom to top in the order given, with
axes of dollars and dates), the horizontal bar of one amount with its budget's marker, and
how amounts are written. Pure: plain data in, text out.

Every length is an SVG attribute (the page's policy allows no style attribute) and every
colour a class of the page's stylesheet. Coordinates are floats, rounded to a tenth of a
pixel; the amounts a person reads (axis labels, tooltips) are written from the exact
decimals, rounded to the cent (ROUND_HALF_UP) and so stated on the page.
"""

from __future__ import annotations

import html
import re
from collections.abc import Sequence
from datetime import date
from decimal import ROUND_CEILING, ROUND_HALF_UP, Context, Decimal

from orgproxy.text import valid_text

CENT = Decimal("0.01")
WIDE = Context(prec=1000)  # rounding an amount to the cent, however many digits it has
WIDTH, HEIGHT = 960, 300
LEFT, RIGHT, TOP, BOTTOM = 72, 12, 12, 34
TICKS = 5  # about this many dollar lines on the axis
BAR_WIDTH = 1000  # the viewBox width of one amount's bar


# What escaped() changes: markup characters, and what valid_text() replaces.
_TO_ESCAPE = re.compile("[<>&\"'\x00-\x08\x0a-\x1f\x7f-\x9f\ud800-\udfff]")


def escaped(text: str) -> str:
    """Text from outside (a name, an id) as HTML or SVG text or an attribute's value: every
    markup character escaped, quotes too, and what is not text (a control character, a lone
    surrogate) as U+FFFD."""
    if _TO_ESCAPE.search(text) is None:
        return text  # most names: one scan, where escaping would be six
    return html.escape(valid_text(text), quote=True)


def dollars(amount: Decimal, cents: bool = True) -> str:
    """``$1,234.57``: rounded half up to the cent (or to the dollar), a minus for a credit."""
    rounded = amount.quantize(CENT if cents else Decimal(1), rounding=ROUND_HALF_UP, context=WIDE)
    text = f"{rounded.copy_abs():,f}"  # as quantized: abs() or a precision would round again (28 digits)
    return f"-${text}" if rounded < 0 else f"${text}"


def nice_step(largest: Decimal) -> Decimal:
    """A round step (1, 2 or 5 times a power of ten) that divides [0, largest] into about
    ``TICKS`` parts."""
    if largest <= 0:
        return Decimal(1)
    rough = largest / TICKS
    power = Decimal(1).scaleb(rough.adjusted())
    for factor in (1, 2, 5, 10):
        if power * factor >= rough:
            return power * factor
    return power * 10


def _n(value: float) -> str:
    return f"{value:.1f}".rstrip("0").rstrip(".")


def bar_svg(amount: Decimal, scale: Decimal, budget: Decimal | None, title: str | None = None) -> str:
    """One amount as a bar of the row's width, ``scale`` the amount of the full width; a
    marker where ``budget`` falls; ``title`` (already escaped), if any, shown on hover."""
    per_dollar = BAR_WIDTH / float(scale) if scale > 0 else 0.0

    def x(value: Decimal) -> str:
        return _n(max(0.0, min(float(BAR_WIDTH), float(value) * per_dollar)))
    marker = (f'<line class="budget" x1="{x(budget)}" x2="{x(budget)}" y1="0" y2="14"'
              ' vector-effect="non-scaling-stroke"/>' if budget is not None else "")
    hover = f"<title>{title}</title>" if title is not None else ""
    return (f'<svg class="bar" viewBox="0 0 {BAR_WIDTH} 14" preserveAspectRatio="none" aria-hidden="true">'
            f'{hover}<rect class="fill" x="0" y="2" width="{x(amount)}" height="10"/>{marker}</svg>')


def stacked_chart(days: Sequence[date], series: Sequence[tuple[str, Sequence[Decimal]]], classes: Sequence[str]
                  ) -> str:
    """Each day's amounts stacked, one ``<g class="series">`` per (label, amounts) of
    ``series`` with its ``classes`` colour; the y axis in dollars, the x axis in dates."""
    count = len(days)
    heights = [sum((max(Decimal(0), amounts[n]) for _, amounts in series), Decimal(0)) for n in range(count)]
    step = nice_step(max(heights, default=Decimal(0)))
    top = step * max(1, (max(heights, default=Decimal(0)) / step).to_integral_value(rounding=ROUND_CEILING))
    plot_w, plot_h = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM
    band = plot_w / max(count, 1)

    def y(value: Decimal) -> float:
        return TOP + plot_h - float(value / top) * plot_h

    parts = [f'<svg class="chart" viewBox="0 0 {WIDTH} {HEIGHT}" role="img" aria-label="Daily cost, stacked">']
    parts.append('<g class="grid axis">')
    tick = Decimal(0)
    whole = step >= 1
    while tick <= top:
        at = _n(y(tick))
        parts.append(f'<line x1="{LEFT}" x2="{WIDTH - RIGHT}" y1="{at}" y2="{at}"/>'
                     f'<text x="{LEFT - 6}" y="{at}" dy="4" text-anchor="end">{dollars(tick, cents=not whole)}</text>')
        tick += step
    for n, day in enumerate(days):
        if n % 5 == 0 or n == count - 1:
            parts.append(f'<text x="{_n(LEFT + band * (n + 0.5))}" y="{HEIGHT - BOTTOM + 16}" text-anchor="middle">'
                         f'{day.strftime("%b")} {day.day}</text>')
    parts.append("</g>")
    base = [Decimal(0)] * count
    for (label, amounts), css in zip(series, classes, strict=True):
        name = escaped(label)
        parts.append(f'<g class="series {css}" data-label="{name}">')
        for n, amount in enumerate(amounts):
            if amount <= 0:
                continue
            low, high = base[n], base[n] + amount
            base[n] = high
            parts.append(f'<rect x="{_n(LEFT + band * n + band * 0.12)}" y="{_n(y(high))}" width="{_n(band * 0.76)}"'
                         f' height="{_n(y(low) - y(high))}"><title>{name}, {days[n].isoformat()}: {dollars(amount)}'
                         "</title></rect>")
        parts.append("</g>")
    parts.append(f'<line class="axis" x1="{LEFT}" x2="{WIDTH - RIGHT}" y1="{TOP + plot_h}" y2="{TOP + plot_h}"'
                 ' stroke="#9aa1ad"/></svg>')
    return "".join(parts)
