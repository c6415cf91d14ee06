"""Revenue as bar charts drawn on the server: inline SVG with presentation attributes only (no script, no
style attribute), so the dashboard's Content-Security-Policy needs nothing added and no chart library is loaded."""

from __future__ import annotations

from dataclasses import dataclass

from billing.dashboard import Revenue
from billing.exports import major_units

WIDTH, HEIGHT, GAP = 600, 160, 2
COLOURS = ("#2f6fdf", "#e0822d", "#3a9b5c", "#b8446a", "#7a5fc4", "#8c8c8c", "#c9a227")


@dataclass(frozen=True, slots=True)
class Bar:
    x: float
    y: float
    width: float
    height: float
    colour: str
    label: str  # the period, provider and amount, shown as the bar's title


@dataclass(frozen=True, slots=True)
class Chart:
    currency: str
    bars: list[Bar]
    providers: list[tuple[str, str]]  # provider, colour: the legend
    periods: list[str]
    top: str  # the tallest period's total, in major units


def charts(rows: list[Revenue], periods: list[str]) -> list[Chart]:
    """One chart per currency: a column per period, stacked by provider."""
    found = []
    for currency in sorted({row.currency for row in rows}):
        mine = [row for row in rows if row.currency == currency]
        providers = sorted({row.provider for row in mine})
        colour = {name: COLOURS[i % len(COLOURS)] for i, name in enumerate(providers)}
        totals = {period: sum(row.total for row in mine if row.period == period) for period in periods}
        top = max(totals.values(), default=0) or 1
        step = WIDTH / max(len(periods), 1)
        bars, stacked = [], dict.fromkeys(periods, 0.0)
        for row in mine:
            if row.period not in stacked:
                continue
            height = HEIGHT * row.total / top
            stacked[row.period] += height
            bars.append(Bar(x=periods.index(row.period) * step, y=HEIGHT - stacked[row.period],
                            width=max(step - GAP, 1), height=height, colour=colour[row.provider],
                            label=f"{row.period} {row.provider}: {major_units(row.total)} {currency}"))
        found.append(Chart(currency, bars, list(colour.items()), periods, major_units(max(totals.values(), default=0))))
    return found
