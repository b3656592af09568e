"""Metadata that every asset reports: row counts, column schema, a preview."""

from __future__ import annotations

import dagster as dg
import polars as pl


def column_schema(schema: pl.Schema) -> dg.TableSchema:
    return dg.TableSchema(
        columns=[dg.TableColumn(name=name, type=str(dtype)) for name, dtype in schema.items()]
    )


def preview(frame: pl.DataFrame, rows: int = 5, max_width: int = 60) -> dg.MetadataValue:
    """The first rows as a markdown table (long values cut)."""

    def cell(value: object) -> str:
        return "" if value is None else str(value)[:max_width].replace("|", "\\|")

    lines = [
        "| " + " | ".join(frame.columns) + " |",
        "|" + "---|" * len(frame.columns),
        *("| " + " | ".join(cell(v) for v in row) + " |" for row in frame.head(rows).iter_rows()),
    ]
    return dg.MetadataValue.md("\n".join(lines))


def table_metadata(frame: pl.DataFrame, schema: pl.Schema, total_rows: int | None = None) -> dict:
    """Standard metadata for a written table: row count, column schema and preview."""
    return {
        "dagster/row_count": total_rows if total_rows is not None else frame.height,
        "dagster/column_schema": column_schema(schema),
        "preview": preview(frame),
    }
