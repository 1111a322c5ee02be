"""Documentation derived from the catalog stays in step with it."""

from __future__ import annotations

from pathlib import Path

from tasks.catalog import CATALOG
from tasks.describe import describe_catalog, format_catalog, markdown_catalog

README = Path(__file__).resolve().parents[2] / "README.md"


def test_the_readme_catalog_table_is_generated_from_the_declarations() -> None:
    text = README.read_text(encoding="utf-8")
    table = text.split("<!-- catalog:start -->\n", 1)[1].split("\n<!-- catalog:end -->", 1)[0]
    assert table == markdown_catalog(), "README catalog is stale: paste tasks.describe.markdown_catalog()"


def test_the_listing_names_every_operation() -> None:
    listing = format_catalog()
    assert all(name in listing for name in CATALOG)
    names = [op["name"] for op in describe_catalog()]
    assert names == [*sorted(CATALOG), "testConnection", "processDocument"]
    assert "testConnection" in listing and "processDocument" in listing
