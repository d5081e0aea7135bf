"""Runs billrun's baselines and compares their invoices with billrun's, exactly.

    python3 run_baselines.py --data DATASET --period 2026-10 --work DIR \
        [--engines duckdb,polars,floor,copy] [--check BILLRUN_OUT] [--json FILE]

Each engine runs as its own child process (so its wall time, CPU time and peak RSS are
its own, measured with wait4): `duckdb` runs bill_duckdb.sql, `polars` runs
bill_polars.py, `floor` runs floor_duckdb.sql (a bare group-by over the usage), `copy`
runs copy_duckdb.sql (the usage read and written back unchanged to zstd Parquet: the
floor of any engine that writes every event, as billrun's `rated_usage` does).
With --check, each baseline's invoices must equal billrun's `invoices` table in
BILLRUN_OUT exactly: the same invoice ids, the same count, and the same subtotal,
discount, tax, credits and total to the last minor unit; any difference is printed and
the exit status is 1.
"""

import argparse
import json
import os
import subprocess
import sys
import time
from decimal import Decimal
from pathlib import Path

HERE = Path(__file__).resolve().parent
MONEY = ["subtotal", "discount", "tax", "credits", "total"]
# Floors: they time a part of the work and write no invoices to compare.
FLOORS = {"floor", "copy"}


def run_sql(sql_file: str, data: str, out: str, period: str, threads: str) -> None:
    import duckdb

    year, month = period.split("-")
    sql = (HERE / sql_file).read_text()
    for key, value in {"data": data, "out": out, "ws_month": f"{year}-{month}-01"}.items():
        sql = sql.replace("{" + key + "}", value)
    con = duckdb.connect()
    if threads:
        con.execute(f"SET threads = {int(threads)}")
    con.execute(f"SET temp_directory = '{out}/duckdb.tmp'")
    con.execute(sql).fetchall()


def child(engine: str, data: str, out: str, period: str, threads: str) -> None:
    Path(out).mkdir(parents=True, exist_ok=True)
    if engine == "duckdb":
        run_sql("bill_duckdb.sql", data, out, period, threads)
    elif engine == "floor":
        run_sql("floor_duckdb.sql", data, out, period, threads)
    elif engine == "copy":
        run_sql("copy_duckdb.sql", data, out, period, threads)
    elif engine == "polars":
        sys.path.insert(0, str(HERE))
        import bill_polars

        bill_polars.main(data, out, period)
    else:
        raise SystemExit(f"unknown engine {engine}")


def measure(engine: str, data: str, out: str, period: str, threads: str) -> dict:
    """Runs one engine in a child process; returns its wall, CPU and peak RSS."""
    cmd = [sys.executable, __file__, "--child", engine, "--data", data, "--work", out,
           "--period", period, "--threads", threads or ""]
    start = time.monotonic()
    proc = subprocess.Popen(cmd)
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.monotonic() - start
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        raise SystemExit(f"baseline {engine} failed with status {proc.returncode}")
    return {
        "engine": engine,
        "wall_s": wall,
        "cpu_s": usage.ru_utime + usage.ru_stime,
        "peak_rss_bytes": usage.ru_maxrss * 1024,
    }


def read_invoices(path: str) -> dict:
    import duckdb

    rows = duckdb.sql(
        f"SELECT invoice_id, {', '.join(c + '::VARCHAR' for c in MONEY)} FROM read_parquet('{path}')"
    ).fetchall()
    invoices = {}
    for invoice_id, *money in rows:
        if invoice_id in invoices:
            raise SystemExit(f"{path}: invoice {invoice_id} appears twice")
        invoices[invoice_id] = tuple(Decimal(m) for m in money)
    return invoices


def compare(name: str, expected: dict, actual: dict) -> list:
    """Differences between billrun's invoices and a baseline's, as lines to print."""
    diffs = []
    for invoice_id in sorted(expected.keys() - actual.keys()):
        diffs.append(f"{name}: invoice {invoice_id} is missing (billrun total {expected[invoice_id][-1]})")
    for invoice_id in sorted(actual.keys() - expected.keys()):
        diffs.append(f"{name}: invoice {invoice_id} is not billrun's (total {actual[invoice_id][-1]})")
    for invoice_id in sorted(expected.keys() & actual.keys()):
        for column, want, got in zip(MONEY, expected[invoice_id], actual[invoice_id]):
            if want != got:
                diffs.append(f"{name}: {invoice_id} {column}: billrun {want}, {name} {got}, diff {got - want}")
    if len(expected) != len(actual):
        diffs.append(f"{name}: {len(actual)} invoices, billrun has {len(expected)}")
    return diffs


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", required=True)
    p.add_argument("--period", required=True)
    p.add_argument("--work", required=True, help="folder for the baselines' outputs")
    p.add_argument("--engines", default="duckdb,polars,floor,copy")
    p.add_argument("--check", metavar="BILLRUN_OUT", help="compare invoices with this billrun output")
    p.add_argument("--json", help="write the measurements to this file")
    p.add_argument("--threads", default="", help="DuckDB threads (default: all cores)")
    p.add_argument("--child", help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.child:
        child(args.child, args.data, args.work, args.period, args.threads)
        return

    results = []
    for engine in [e for e in args.engines.split(",") if e]:
        out = str(Path(args.work) / engine)
        result = measure(engine, args.data, out, args.period, args.threads)
        results.append(result)
        print(f"{engine:>7}: wall {result['wall_s']:.2f} s, cpu {result['cpu_s']:.2f} s, "
              f"peak RSS {result['peak_rss_bytes'] / 2**20:.0f} MiB", file=sys.stderr)
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2))

    if args.check:
        expected = read_invoices(f"{args.check}/invoices/*.parquet")
        if not expected:
            raise SystemExit(f"{args.check}: billrun wrote no invoices")
        failed = False
        for engine in [r["engine"] for r in results if r["engine"] not in FLOORS]:
            actual = read_invoices(str(Path(args.work) / engine / "invoices.parquet"))
            diffs = compare(engine, expected, actual)
            if diffs:
                failed = True
                print(f"DIFFERENTIAL CHECK FAILED: {engine} differs from billrun "
                      f"in {len(diffs)} places:", file=sys.stderr)
                for line in diffs[:50]:
                    print("  " + line, file=sys.stderr)
            else:
                print(f"differential check: {engine} equals billrun on all {len(expected)} "
                      f"invoices (ids, count, subtotal, discount, tax, credits, total)", file=sys.stderr)
        if failed:
            sys.exit(1)


if __name__ == "__main__":
    main()
