"""One charge of a vendor's cost report, in the terms FOCUS asks for, whichever vendor sent
it: the period, the billed and list costs (exact decimals, in the billing currency), what
was consumed, the key (the resource), the project or workspace (the sub account) and the
raw values as sent. ``focus_openai`` and ``focus_anthropic`` read the vendors' rows into
it; ``focus`` writes it as a row of FOCUS 1.2 or 1.4. Pure: no I/O.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from datetime import datetime
from decimal import Context, Decimal, Inexact, InvalidOperation
from typing import Any

from orgproxy.report.errors import ReportError

UNKNOWN = "unknown"  # what orgproxy names an id nobody named
NO_UNIT = "Count"  # FOCUS's unit where a vendor gives none: the charge counts as one
# Division that must come out exact, or not at all: a unit price times its quantity must
# give the cost back to the last digit.
_EXACT = Context(prec=60, traps=[Inexact, InvalidOperation])


@dataclass(frozen=True)
class BillingAccount:
    """The organization a vendor invoices, as the user (or the vendor's API) names it."""

    id: str
    name: str


@dataclass(frozen=True)
class Vendor:
    """What FOCUS says about a vendor on every one of its rows."""

    key: str  # "openai", as --provider says it
    name: str  # ServiceProviderName, HostProviderName, InvoiceIssuerName
    service: str  # ServiceName
    sub_account_type: str  # SubAccountType: what a sub account is at this vendor
    endpoint: str  # the path the costs came from (x_SourceEndpoint)
    description: str  # ChargeDescription where a row says nothing about what was charged


OPENAI = Vendor("openai", "OpenAI", "OpenAI API", "Project", "/v1/organization/costs", "OpenAI API usage")
ANTHROPIC = Vendor("anthropic", "Anthropic", "Claude API", "Workspace", "/v1/organizations/analytics/cost",
                   "Claude API usage")
VENDORS = {vendor.key: vendor for vendor in (OPENAI, ANTHROPIC)}


@dataclass(slots=True)
class Charge:
    """One row of a vendor's costs: one day, one key, one thing charged."""

    vendor: Vendor
    account: BillingAccount
    start: datetime
    end: datetime
    billed: Decimal  # in the billing currency, after discounts
    listed: Decimal  # at list price (the billed cost where the vendor gives no other)
    currency: str  # ISO 4217, upper case
    description: str
    quantity: Decimal  # consumed, in ``unit``
    unit: str  # FOCUS's unit format: "Tokens", "Count", ...
    key_id: str | None
    key_name: str | None  # None where nobody named the key
    sub_account_id: str | None
    sub_account_name: str | None
    sku: str  # the vendor's charge, as orgproxy names it: vendors publish no SKU ids
    sku_price: str  # the SKU and what its price depends on (tier, context window)
    tags: dict[str, Any] | None
    source_amount: Decimal  # as sent, in the vendor's own unit
    source_amount_unit: str  # "usd", "USD cents"
    source_list_amount: Decimal | None
    source_quantity: Decimal | None
    source_quantity_unit: str | None
    model: str | None = None
    cost_type: str | None = None
    token_type: str | None = None
    service_tier: str | None = None
    context_window: str | None = None

    @property
    def billing_period(self) -> tuple[datetime, datetime]:
        """The UTC calendar month of the charge's start (the vendors invoice monthly)."""
        return month_of(self.start)

    def pricing(self) -> tuple[Decimal, str, Decimal, Decimal]:
        """(PricingQuantity, PricingUnit, ListUnitPrice, ContractedUnitPrice): tokens priced
        per million as the vendors quote them, the unit prices the costs divided by the
        quantity. Where that division is not exact (or the quantity is zero), the charge is
        priced as one unit of its own, so that price times quantity is the cost exactly.
        Unit prices are never negative: a refund is a negative quantity at its price."""
        quantity, unit = self.quantity, self.unit
        if unit == "Tokens":
            quantity, unit = quantity.scaleb(-6), "1000000 Tokens"
        elif unit == "1000 Tokens":
            quantity, unit = quantity.scaleb(-3), "1000000 Tokens"
        sign = -1 if self.billed < 0 else 1
        try:
            if quantity > 0:
                quantity *= sign
                return quantity, unit, _EXACT.divide(self.listed, quantity), _EXACT.divide(self.billed, quantity)
        except (Inexact, InvalidOperation):
            pass
        return Decimal(sign), NO_UNIT, self.listed * sign, self.billed * sign


@lru_cache(maxsize=1024)
def month_of(moment: datetime) -> tuple[datetime, datetime]:
    start = moment.replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    return start, start.replace(year=start.year + start.month // 12, month=start.month % 12 + 1)


def text_of(value: object) -> str | None:
    """A non-empty string, else None."""
    return value if isinstance(value, str) and value else None


def named(name: object) -> str | None:
    """A name orgproxy put beside an id, None where it knows none ("unknown")."""
    text = text_of(name)
    return None if text in (None, UNKNOWN) else text


def refuse(endpoint: str, what: str) -> ReportError:
    return ReportError(f"{endpoint}: {what}")
