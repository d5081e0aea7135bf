#!/usr/bin/env python3
"""The books over twelve months: does a month's bill run cost more as the books grow?

Each month is generated on its own (`billrun generate --period P`, the same seed, so
the same customers and catalog, with event ids prefixed by the month so that months
never collide); its master data replaces the month before's (a CRM exported again),
while the dataset keeps every month's usage files, as a billing team's bucket does; each month is posted with `billrun run --books` into one books location,
after the customers paid most of the previous month's invoices (a payments file made
from its `receivables`). Then the reports over the books are timed.

The figure that matters: month 12's wall time against month 2's (the first month with
history). Nothing a posted month settled may be scanned again, so they should be
within 10 %.

    cargo build --release
    python3 benches/books.py --events 1M --customers 100000 --months 12

Writes benches/results/books.{md,csv}.
"""

import argparse
import csv
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(Path(__file__).resolve().parent))
from capacity import du, label, parse_scale, run_measured  # noqa: E402

# Of the invoices open after a month, the share paid in full by the 10th of the next
# month (the rest stays open and ages).
PAID_SHARE_PERCENT = 95


def months(first: str, count: int) -> list:
    year, month = map(int, first.split("-"))
    out = []
    for _ in range(count):
        out.append(f"{year:04d}-{month:02d}")
        month += 1
        if month == 13:
            year, month = year + 1, 1
    return out


def generate_month(binary: str, args, period: str, into: Path) -> None:
    """Generates `period`'s dataset into `into` (its master data and usage)."""
    shutil.rmtree(into, ignore_errors=True)
    prefix = "M" + period.replace("-", "") + "-"
    subprocess.run(
        [binary, "generate", "--customers", str(args.customers), "--events", str(args.events),
         "--seed", str(args.seed), "--period", period, "--event-id-prefix", prefix,
         "--out", str(into)],
        check=True, stdout=subprocess.DEVNULL,
    )


def add_usage(month_data: Path, data: Path, period: str) -> None:
    """Moves a month's usage files into the dataset, under names of their own."""
    target = data / "usage"
    target.mkdir(parents=True, exist_ok=True)
    for f in sorted((month_data / "usage").iterdir()):
        f.rename(target / f"{period}-{f.name}")


def pay_previous(binary: str, out: Path, data: Path, period: str, next_period: str) -> int:
    """Writes `payments/<period>.csv`: most open invoices of `out` paid in full on the
    10th of `next_period`'s month. Returns the number of payments."""
    proc = subprocess.run(
        [binary, "query", "--out", str(out), "--format", "csv",
         "SELECT invoice_id, customer_id, currency, open FROM receivables "
         "WHERE open > 0 ORDER BY invoice_id"],
        check=True, capture_output=True, text=True,
    )
    rows = list(csv.DictReader(proc.stdout.splitlines()))
    paid_on = next_period + "-10"
    (data / "payments").mkdir(parents=True, exist_ok=True)
    n = 0
    with open(data / "payments" / f"{period}.csv", "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["payment_id", "customer_id", "currency", "amount", "paid_on", "invoice_id", "method"])
        for i, r in enumerate(rows):
            if i % 100 >= PAID_SHARE_PERCENT:
                continue
            amount = r["open"].rstrip("0").rstrip(".") if "." in r["open"] else r["open"]
            w.writerow([f"PAY-{r['invoice_id']}", r["customer_id"], r["currency"], amount,
                        paid_on, r["invoice_id"], "transfer"])
            n += 1
    return n


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--events", type=parse_scale, default=parse_scale("1M"), help="events per month")
    p.add_argument("--customers", type=int, default=100_000)
    p.add_argument("--months", type=int, default=12)
    p.add_argument("--first", default="2026-01", help="the first month")
    p.add_argument("--seed", type=int, default=7)
    p.add_argument("--work", default="/tmp/billrun-books-bench")
    p.add_argument("--binary", default=str(ROOT / "target/release/billrun"))
    p.add_argument("--results", default=str(ROOT / "benches" / "results"))
    args = p.parse_args()

    work = Path(args.work)
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    data, books, scratch = work / "data", work / "books", work / "month"
    periods = months(args.first, args.months + 1)
    rows = []
    for m, period in enumerate(periods[:-1], start=1):
        print(f"[{period}] generating {label(args.events)} events ...", file=sys.stderr)
        generate_month(args.binary, args, period, scratch)
        # The month's master data replaces the last one (a CRM exported again: the same
        # customers, subscriptions living around the month); its usage joins the rest.
        for table in sorted(scratch.iterdir()):
            if table.name != "usage":
                shutil.rmtree(data / table.name, ignore_errors=True)
                shutil.copytree(table, data / table.name)
        add_usage(scratch, data, period)
        out = work / f"out-{period}"
        print(f"[{period}] billing and posting ...", file=sys.stderr)
        result = run_measured([args.binary, "run", "--data", str(data), "--out", str(out),
                               "--period", period, "--books", str(books)])
        manifest = json.loads((out / "manifest.json").read_text())
        stages = {s["stage"]: s["seconds"] for s in manifest["stages"]}
        u = manifest["usage"]
        payments = pay_previous(args.binary, out, data, period, periods[m])
        rows.append({
            "month": m, "period": period, "wall_s": round(result["wall_s"], 2),
            "cpu_s": round(result["cpu_s"], 2),
            "peak_rss_mib": result["peak_rss_bytes"] // (1 << 20),
            "read": u["read"], "settled": u["settled"], "rated": u["rated"], "late": u["late"],
            "unrated": u["unrated"], "rejected": u["rejected"],
            "invoices": manifest["invoices"],
            "corrections": int(subprocess.run(
                [args.binary, "query", "--out", str(out), "--format", "csv",
                 "SELECT count(*) AS n FROM invoices WHERE corrects_invoice_id IS NOT NULL"],
                check=True, capture_output=True, text=True).stdout.splitlines()[1]),
            "payments_next": payments,
            **{f"{k}_s": round(v, 2) for k, v in stages.items()},
            "books_mib": round(du(books) / (1 << 20), 1),
        })
        print(f"[{period}] {rows[-1]}", file=sys.stderr)

    reports = []
    for name, cmd in [
        ("ar-aging as of the last posting", ["report", "ar-aging", "--books", str(books), "--format", "csv"]),
        ("ar-aging on a past day", ["report", "ar-aging", "--books", str(books),
                                    "--on", periods[len(periods) // 2] + "-15", "--format", "csv"]),
    ]:
        start = time.monotonic()
        subprocess.run([args.binary, *cmd], check=True, stdout=subprocess.DEVNULL)
        reports.append((name, round(time.monotonic() - start, 2)))

    results = Path(args.results)
    results.mkdir(parents=True, exist_ok=True)
    keys = list(dict.fromkeys(k for r in rows for k in r))
    with open(results / "books.csv", "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=keys)
        w.writeheader()
        w.writerows(rows)
    second, last = rows[1]["wall_s"], rows[-1]["wall_s"]
    cols = ["month", "period", "wall_s", "peak_rss_mib", "read", "settled", "rated", "late",
            "invoices", "corrections", "read_s", "rate_s", "invoice_s", "write_s", "books_mib"]
    lines = [
        f"# The books over {args.months} months: {label(args.events)} events and "
        f"{args.customers} customers a month",
        "",
        "| " + " | ".join(cols) + " |",
        "|" + "---|" * len(cols),
    ]
    for r in rows:
        lines.append("| " + " | ".join(str(r.get(c, "")) for c in cols) + " |")
    lines += [
        "",
        f"month {rows[-1]['month']} / month 2 wall time: **{last / second:.2f}×** "
        f"({last} s against {second} s)",
        "",
        "| report over the books | wall s |",
        "|---|---|",
        *[f"| {n} | {s} |" for n, s in reports],
        "",
    ]
    (results / "books.md").write_text("\n".join(lines))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
