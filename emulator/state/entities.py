"""Extracted data that looks like what Hypatos returns for an invoice.

Generated deterministically from the document id so repeated reads agree and tests can rely on
the shape (type, number, issuedAt, currency, supplier, items, totals...).
"""

from __future__ import annotations

import random
from datetime import date, timedelta
from typing import Any

_SUPPLIERS = (
    (
        "Acme Office Supplies GmbH",
        "Hauptstr. 1",
        "10115",
        "Berlin",
        "DE",
        "DE811907980",
        "DE89370400440532013000",
    ),
    (
        "Nordlicht Logistik AG",
        "Hafenweg 12",
        "20457",
        "Hamburg",
        "DE",
        "DE136695976",
        "DE02120300000000202051",
    ),
    (
        "Société Générale de Fournitures",
        "12 Rue de Rivoli",
        "75001",
        "Paris",
        "FR",
        "FR40303265045",
        "FR1420041010050500013M02606",
    ),
    (
        "Brightside Consulting Ltd",
        "221B Baker Street",
        "NW1 6XE",
        "London",
        "GB",
        "GB980780684",
        "GB29NWBK60161331926819",
    ),
)
_ITEMS = (
    ("Printer paper A4, 500 sheets", "pack", 4.99),
    ("Toner cartridge, black", "pc", 89.0),
    ("Consulting services", "h", 120.0),
    ("Freight charges", "pc", 35.5),
    ("Ergonomic office chair", "pc", 249.0),
    ("Cloud storage subscription", "month", 19.9),
    ("High quality cement for rabbit hole sealing", "kg", 2.35),
)
_RECIPIENT = {
    "name": "Demo Buyer GmbH",
    "street": "Friedrichstr. 68",
    "postcode": "10117",
    "city": "Berlin",
    "countryCode": "DE",
    "vatId": "DE999999999",
}


def _line(rng: random.Random, position: int, tax_rate: float) -> dict[str, Any]:
    name, unit, price = rng.choice(_ITEMS)
    qty = rng.randint(1, 12)
    net = round(qty * price, 2)
    tax = round(net * tax_rate / 100, 2)
    return {
        "position": position,
        "name": name,
        "qty": qty,
        "unitOfMeasure": unit,
        "unitPrice": price,
        "netAmount": net,
        "taxRate": tax_rate,
        "taxAmount": tax,
        "grossAmount": round(net + tax, 2),
    }


def invoice_entities(document_id: str, created_at: float) -> dict[str, Any]:
    """Build invoice entities for one document; the same id always yields the same data."""
    rng = random.Random(document_id)
    name, street, postcode, city, country, vat_id, iban = rng.choice(_SUPPLIERS)
    tax_rate = 19.0 if country == "DE" else 20.0
    lines = [_line(rng, i + 1, tax_rate) for i in range(rng.randint(1, 4))]
    issued = date.fromtimestamp(created_at) - timedelta(days=rng.randint(1, 20))
    net = round(sum(line["netAmount"] for line in lines), 2)
    tax = round(sum(line["taxAmount"] for line in lines), 2)
    return {
        "type": "invoice",
        "number": f"INV-{issued.year}-{rng.randint(1, 999999):06d}",
        "issuedAt": issued.isoformat(),
        "deliveredAt": (issued - timedelta(days=rng.randint(0, 5))).isoformat(),
        "dueAt": (issued + timedelta(days=30)).isoformat(),
        "currency": "GBP" if country == "GB" else "EUR",
        "purchaseOrderNumber": f"45000{rng.randint(10000, 99999)}",
        "supplier": {
            "name": name,
            "street": street,
            "postcode": postcode,
            "city": city,
            "countryCode": country,
            "vatId": vat_id,
            "iban": iban,
        },
        "recipient": dict(_RECIPIENT),
        "items": lines,
        "totalNetAmount": net,
        "totalTaxAmount": tax,
        "totalGrossAmount": round(net + tax, 2),
        "paymentTerms": "30 days net",
    }


def default_schema() -> dict[str, Any]:
    """The project schema returned for projects created without one: the invoice data points."""

    def point(name: str, display: str, kind: str) -> dict[str, Any]:
        return {
            "internalName": name,
            "displayName": display,
            "type": kind,
            "source": {"type": "extractor"},
            "normalization": [],
            "rules": {},
        }

    return {
        "version": 1,
        "dataPoints": [
            point("type", "Type", "string"),
            point("number", "Number", "string"),
            point("issuedAt", "Issued At", "date"),
            point("deliveredAt", "Delivered At", "date"),
            point("dueAt", "Due At", "date"),
            point("currency", "Currency", "string"),
            point("purchaseOrderNumber", "Purchase Order Number", "string"),
            point("totalNetAmount", "Total Net Amount", "number"),
            point("totalTaxAmount", "Total Tax Amount", "number"),
            point("totalGrossAmount", "Total Gross Amount", "number"),
        ],
        "features": {"derivation": False},
        "enrichment": {},
        "normalization": {},
        "validation": {},
    }
