"""Which shops' exports custseg reads with no mapping, and what each layout means by its columns.

Each layout is one `Preset`: its headers, the line columns it writes once per order and the words of
its order status. Reading another shop platform's export is one more entry in `PRESETS`.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Preset:
    """An export layout that custseg reads with no mapping: everything that is particular to it.

    The status words are declared by the layout that writes them, so that a new layout is one entry
    in `PRESETS`, but they are applied to the canonical ``order_status`` of every source (see
    `UNPAID_STATUSES`, `REFUNDED_STATUSES`): cleaning runs on the canonical table, where the layout
    is gone, and a custom mapping or a database table with a status column has no layout of its own.
    That holds while the layouts' words agree: a word that one layout writes for an unpaid order must
    not mean a sale in another (a test checks the declared words against each other).

    Attributes
    ----------
    name : str
        The name run.json records (``input.preset``) and messages use.
    columns : dict of str to str
        Canonical name -> the layout's header.
    recognised_by : frozenset of str
        Headers that identify the layout, when not every header of ``columns`` is needed.
    once_per_order : tuple of str
        Canonical line columns that the layout writes on an order's first row only
        (`custseg.orders.spread_order_fields`).
    unpaid_statuses : tuple of str
        The layout's order statuses (lower case) of orders never paid, or not yet: the default of
        ``[clean] unpaid_statuses``, a setting because whether such an order is a sale is the shop's
        decision (cash on delivery is paid after it ships).
    refunded_statuses : tuple of str
        The layout's order statuses (lower case) that mean the whole order was refunded, whatever its
        refunded amount says: a fact of the layout, not a setting.
    sale_statuses : tuple of str
        The layout's order statuses (lower case) of sales: paid, perhaps refunded in part (its
        refunded amount says how much).
    disputed_statuses : tuple of str
        The layout's order statuses (lower case) of orders whose payment is disputed (a chargeback):
        not the shop's money while the dispute lasts, the default of ``[clean] disputed_statuses``.
    currency : str or None
        The ISO 4217 code of the layout's amounts when the layout is one shop's, which has one
        currency (the UCI files: pounds sterling); None when the export says it (Shopify's
        ``Currency``) or the layout is many shops'.
    """

    name: str
    columns: dict[str, str]
    recognised_by: frozenset[str] = frozenset()
    once_per_order: tuple[str, ...] = ()
    unpaid_statuses: tuple[str, ...] = ()
    refunded_statuses: tuple[str, ...] = ()
    sale_statuses: tuple[str, ...] = ()
    disputed_statuses: tuple[str, ...] = ()
    currency: str | None = None

    @property
    def statuses(self) -> tuple[str, ...]:
        """Every order status the layout writes; another in its export is unknown (`custseg.clean`)."""
        return (*self.sale_statuses, *self.refunded_statuses, *self.unpaid_statuses, *self.disputed_statuses)

    @property
    def signature(self) -> frozenset[str]:
        """The headers a source must have all of to be read by this layout."""
        return self.recognised_by or frozenset(self.columns.values())


PRESETS: tuple[Preset, ...] = (
    Preset(
        "uci_online_retail",
        {
            "invoice_id": "InvoiceNo",
            "product_id": "StockCode",
            "description": "Description",
            "quantity": "Quantity",
            "invoiced_at": "InvoiceDate",
            "unit_price": "UnitPrice",
            "customer_id": "CustomerID",
            "country": "Country",
        },
        currency="GBP",
    ),
    Preset(
        "uci_online_retail_ii",
        {
            "invoice_id": "Invoice",
            "product_id": "StockCode",
            "description": "Description",
            "quantity": "Quantity",
            "invoiced_at": "InvoiceDate",
            "unit_price": "Price",
            "customer_id": "Customer ID",
            "country": "Country",
        },
        currency="GBP",
    ),
    Preset(
        "shopify",
        {
            "invoice_id": "Name",
            "customer_id": "Email",
            "invoiced_at": "Created at",
            "product_id": "Lineitem sku",
            "description": "Lineitem name",
            "quantity": "Lineitem quantity",
            "unit_price": "Lineitem price",
            "country": "Billing Country",
            "order_status": "Financial Status",
            "refunded_amount": "Refunded Amount",
            "order_total": "Total",
            "currency": "Currency",
        },
        once_per_order=("customer_id", "invoiced_at", "country"),
        # Shopify's financial statuses (its Admin API's `financial_status`), and the words of a dispute.
        unpaid_statuses=("voided", "pending", "authorized", "expired"),
        refunded_statuses=("refunded",),
        sale_statuses=("paid", "partially_paid", "partially_refunded"),
        disputed_statuses=("chargeback", "disputed"),
    ),
)
"""The shops' export layouts recognised from the header, before custseg's own names
(`custseg.schema.CANONICAL`); the first that a header has every column of reads it."""

UNPAID_STATUSES = tuple(dict.fromkeys(word for preset in PRESETS for word in preset.unpaid_statuses))
"""Every layout's unpaid statuses, the default of ``[clean] unpaid_statuses``."""

REFUNDED_STATUSES = tuple(dict.fromkeys(word for preset in PRESETS for word in preset.refunded_statuses))
"""Every layout's statuses of orders refunded in full (`custseg.orders.refunded_share`)."""
DISPUTED_STATUSES = tuple(dict.fromkeys(word for preset in PRESETS for word in preset.disputed_statuses))
"""Every layout's statuses of disputed payments, the default of ``[clean] disputed_statuses``."""


def preset_named(name: str | None) -> Preset | None:
    """Return the layout of this name (run.json's ``input.layout``), or None."""
    return next((preset for preset in PRESETS if preset.name == name), None)
