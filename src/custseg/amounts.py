"""How an amount is written, with its currency: ``£1,234``, ``CHF 1,234``, or the number alone.

Every view that writes an amount (segment rules and names, descriptions, actions, the report, the
terminal) writes it with this function, so that a run's currency (run.json ``input.currency``) is
shown the same way everywhere.
"""

from __future__ import annotations

CURRENCY_SIGNS = {"GBP": "£", "EUR": "€", "USD": "$", "JPY": "¥", "INR": "₹"}
"""Signs written before an amount; any other currency is written by its ISO 4217 code."""


def money(value: float, currency: str | None = None, *, cents: bool = False) -> str:
    """Write an amount with thousands separators and its currency: ``£1,234``, ``CHF 1,234``.

    Whole units unless ``cents``; without a currency, the number alone.
    """
    number = f"{abs(value):,.2f}" if cents else f"{abs(value):,.0f}"
    sign = "-" if value < 0 and number.strip("0.,") else ""
    if currency is None:
        return f"{sign}{number}"
    symbol = CURRENCY_SIGNS.get(currency)
    return f"{sign}{symbol}{number}" if symbol else f"{sign}{currency} {number}"
