"""Reads every Parquet table of a billrun output folder with pyarrow, Polars and DuckDB.

Usage: read_every_table.py OUT

For each table the manifest lists, all three readers must read it as it is, find the
rows the manifest says it has, type money as decimals (never floats) and agree on
every value. Prints one line per table: `<table> <rows>`. Exits non-zero, naming the
table and the reader, on the first disagreement.
"""

import json
import sys
from collections import defaultdict
from pathlib import Path

import duckdb
import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq


def fail(table, reader, what):
    sys.exit(f"{table}: {reader}: {what}")


def main(out):
    manifest = json.loads((out / "manifest.json").read_text())
    rows = defaultdict(int)
    for o in manifest["outputs"]:
        if o["file"].endswith(".parquet"):
            rows[o["table"]] += o["rows"]
    con = duckdb.connect()
    for table, expected in sorted(rows.items()):
        folder = out / table
        files = sorted(str(p) for p in folder.glob("*.parquet"))
        arrow = pa.concat_tables([pq.read_table(f) for f in files])
        if arrow.num_rows != expected:
            fail(table, "pyarrow", f"{arrow.num_rows} rows, the manifest says {expected}")
        for field in arrow.schema:
            if pa.types.is_floating(field.type):
                fail(table, "pyarrow", f"column {field.name} is a float ({field.type})")
        polars = pl.read_parquet(files)
        if polars.height != expected:
            fail(table, "polars", f"{polars.height} rows, the manifest says {expected}")
        for name, dtype in polars.schema.items():
            if dtype.is_float():
                fail(table, "polars", f"column {name} is a float ({dtype})")
        duck = con.sql(f"SELECT * FROM read_parquet({files!r})").to_arrow_table()
        if duck.num_rows != expected:
            fail(table, "duckdb", f"{duck.num_rows} rows, the manifest says {expected}")
        # Every value as text, row by row, must agree across the three readers.
        def cells(t):
            return [[str(v) for v in row.values()] for row in t.to_pylist()]
        reference = cells(arrow)
        if cells(polars.to_arrow()) != reference:
            fail(table, "polars", "values differ from pyarrow's")
        if cells(duck) != reference:
            fail(table, "duckdb", "values differ from pyarrow's")
        print(f"{table} {expected}")


if __name__ == "__main__":
    main(Path(sys.argv[1]))
