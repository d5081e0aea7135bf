#!/usr/bin/env python3
"""Independent computation of the revenue golden files for data-samples/revenue.

Written from the data contract and docs/CONTRACT-NOTES.md with Python's exact Fractions,
sharing no code with billrun. The contracts of the sample are spelled out below as a
billing analyst would read them off the input files; HAND-CHECK.md works the key figures
out on paper. Run from this folder: `python3 compute.py` rewrites the CSVs.
"""
import csv
import datetime as dt
from fractions import Fraction as F

D = dt.date.fromisoformat
RUN_MONTH = D("2026-10-01")
DEFAULT = "liabilities:deferred revenue"


def month_start(d):
    return d.replace(day=1)


def next_month(d):
    return (d.replace(day=28) + dt.timedelta(days=4)).replace(day=1)


def round_half_away(x, minor):
    q = F(10) ** minor
    v = x * q
    n = abs(v.numerator) * 2 + v.denominator
    r = n // (2 * v.denominator)
    return F(r if v >= 0 else -r) / q


def format_exact(x, minor):
    q = 10 ** minor
    v = x * q
    assert v.denominator == 1, x
    n = v.numerator
    sign = "-" if n < 0 else ""
    n = abs(n)
    return f"{sign}{n // q}.{n % q:0{minor}d}" if minor else f"{sign}{n}"


def largest_remainder(total, weights, minor):
    units = total * 10 ** minor
    assert units.denominator == 1
    units = units.numerator
    w = sum(weights)
    shares = [F(units) * x / w for x in weights]
    floors = [s.numerator // s.denominator for s in shares]
    missing = units - sum(floors)
    order = sorted(range(len(weights)), key=lambda i: (-(shares[i] - floors[i]), i))
    for i in order[:missing]:
        floors[i] += 1
    return [F(f, 10 ** minor) for f in floors]


def ratable(amount, start, end, minor, mod=None):
    """Cumulative rounding by day; mod = (effective, new_end, price_change)."""
    total_days = (end - start).days

    def c0(x):
        elapsed = max(0, (min(x, end) - start).days)
        return round_half_away(amount * elapsed / total_days, minor)

    if mod:
        eff, new_end, change = mod
        before = c0(eff)
        rest = amount + change - before
        rest_days = (new_end - eff).days

        def c(x):
            if x <= eff:
                return c0(x)
            if rest_days == 0:
                return before + rest
            return before + round_half_away(rest * max(0, (min(x, new_end) - eff).days) / rest_days, minor)

        last = new_end - dt.timedelta(days=1) if new_end > eff else eff
    else:
        c = c0
        last = end - dt.timedelta(days=1)
    months, m, done = [], month_start(start), F(0)
    while m <= last:
        n = next_month(m)
        months.append((m, c(n) - done))
        done = c(n)
        m = n
    return months


# The contracts, as read off orders.csv, ssp.csv, products.csv, rev_policies.csv and
# carve_rules.csv (CR-9 is rejected: it names both a product and an account).
# line: (order, line, product, price, unit SSP, method, deferral account, revenue account,
#        service_start, service_end)
CONTRACTS = {
    "K-BUNDLE": dict(customer="R001", currency="USD", billed_on=D("2026-10-01"), tax=F(1, 10), lines=[
        ("O-100", "L1", "LIC", F(900), F(1000), "point_in_time", DEFAULT, "revenue:4000", D("2026-10-01"), None),
        ("O-100", "L2", "SUP", F(100), F(250), "ratable", DEFAULT + ":2410", "revenue:4100", D("2026-10-01"), D("2027-10-01")),
        ("O-100", "L3", "IMP", F(200), F(250), "ratable", DEFAULT + ":2420", "revenue:4200", D("2026-10-01"), D("2027-01-01")),
    ], carves=[("CR-1", "LIC", ("line", "SUP"), ("percent", F(10)))]),
    "K-HOLD": dict(customer="R004", currency="USD", billed_on=D("2026-08-15"), tax=F(0), lines=[
        ("O-400", "L1", "LIC", F(1000), F(1000), "point_in_time", DEFAULT, "revenue:4000", D("2026-08-15"), None),
        ("O-400", "L2", "TRN", F(300), F(300), "ratable", DEFAULT, "revenue:4500", D("2026-09-01"), D("2026-12-01")),
    ], carves=[("CR-2", "TRN", ("account", "revenue:4600"), ("amount", F(30)))]),
    "K-MOD": dict(customer="R003", currency="EUR", billed_on=D("2026-04-01"), tax=F(0), lines=[
        ("O-300", "L1", "SUP", F(1200), F(240), "ratable", DEFAULT + ":2410", "revenue:4100", D("2026-04-01"), D("2027-04-01")),
    ], carves=[]),
    "K-USAGE": dict(customer="R002", currency="USD", billed_on=D("2026-01-01"), tax=F(0), lines=[
        ("O-200", "L2", "PLT", F(1200), F(1200), "ratable", DEFAULT, "revenue:4400", D("2026-01-01"), D("2027-01-01")),
    ], carves=[]),
}
MODIFICATIONS = {("O-300", "L1"): ("MOD-1", D("2026-10-16"), D("2027-10-01"), F(600))}
# (order, line) -> (condition_id, satisfied_on or None)
CONDITIONS = {("O-400", "L1"): ("ACC-1", D("2026-10-20")), ("O-400", "L2"): ("ACC-2", None)}
# As consumed: R002's API usage in October, 100 + 250 + 50 calls at 0.02.
CONSUMED = [("K-USAGE", "O-200", "L1", "R002", "API", "USD", "revenue:4300", D("2026-10-01"), F(400) * F(2, 100))]
INVOICE_OF = {"R002": "INV-202610-R002-USD"}


def allocate(contract, order):
    lines, carves = contract["lines"], contract["carves"]
    price = sum(l[3] for l in lines)
    ssps = [l[4] for l in lines]
    idx = {l[2]: i for i, l in enumerate(lines)}
    to_accounts = []
    if order == "allocate-then-carve":
        alloc = largest_remainder(price, ssps, 2)
        for rule, src, (kind, target), (how, x) in carves:
            base = alloc[idx[src]]
            amt = round_half_away(base * x / 100, 2) if how == "percent" else x
            alloc[idx[src]] -= amt
            if kind == "line":
                alloc[idx[target]] += amt
            else:
                to_accounts.append((rule, idx[src], target, amt))
    else:
        pool, on_top = price, [F(0)] * len(lines)
        for rule, src, (kind, target), (how, x) in carves:
            amt = round_half_away(lines[idx[src]][3] * x / 100, 2) if how == "percent" else x
            pool -= amt
            if kind == "line":
                on_top[idx[target]] += amt
            else:
                to_accounts.append((rule, idx[src], target, amt))
        alloc = [a + t for a, t in zip(largest_remainder(pool, ssps, 2), on_top)]
    return alloc, to_accounts


def write(name, header, rows):
    with open(name, "w", newline="") as f:
        w = csv.writer(f, lineterminator="\n")
        w.writerow(header)
        w.writerows(rows)


def main():
    alloc_header = ["contract_id", "order_id", "line_id", "product_id", "method", "stated_price", "allocated", "revenue_account", "deferral_account", "carve_rule_id"]
    for order, name in [("allocate-then-carve", "revenue_allocations.csv"), ("carve-then-allocate", "revenue_allocations_carve_then_allocate.csv")]:
        rows = []
        for cid, c in CONTRACTS.items():
            alloc, accts = allocate(c, order)
            for l, a in zip(c["lines"], alloc):
                rows.append([cid, l[0], l[1], l[2], l[5], format_exact(l[3], 2), format_exact(a, 2), l[7], l[6], ""])
            for rule, i, account, amt in accts:
                l = c["lines"][i]
                rows.append([cid, l[0], l[1], l[2], l[5], "0.00", format_exact(amt, 2), account, l[6], rule])
        for cid, o, ln, cust, prod, cur, acct, month, amount in CONSUMED:
            rows.append([cid, o, ln, prod, "as_consumed", "0.00", format_exact(round_half_away(amount, 2), 2), acct, "", ""])
        rows.sort(key=lambda r: (r[0], r[1], r[2], r[7]))
        write(name, alloc_header, rows)

    schedule, billings, moves = [], [], {}

    def move(cur, acct, month, billed=F(0), recognised=F(0)):
        b, r = moves.get((cur, acct, month), (F(0), F(0)))
        moves[(cur, acct, month)] = (b + billed, r + recognised)

    for cid, c in CONTRACTS.items():
        alloc, accts = allocate(c, "allocate-then-carve")
        cur = c["currency"]
        pieces = [(l, a, l[7], None) for l, a in zip(c["lines"], alloc)]
        pieces += [(c["lines"][i], amt, account, rule) for rule, i, account, amt in accts]
        amount = sum(l[3] for l in c["lines"])
        tax = round_half_away(amount * c["tax"], 2)
        billings.append([f"CB-{cid}", cid, c["customer"], cur, c["billed_on"].isoformat(), format_exact(amount, 2), format_exact(tax, 2), format_exact(amount + tax, 2), ""])
        for l, a, acct, rule in pieces:
            move(cur, l[6], month_start(c["billed_on"]), billed=a)
            key = (l[0], l[1])
            mod = MODIFICATIONS.get(key)
            if l[5] == "ratable":
                m = (mod[1], mod[2], mod[3] if rule is None else F(0)) if mod else None
                months = ratable(a, l[8], l[9], 2, m)
            else:
                months = [(month_start(l[8]), a)]
            cond = CONDITIONS.get(key)
            held = False
            if cond:
                cond_id, satisfied = cond
                if satisfied is None:
                    held = True
                else:
                    rel = month_start(satisfied)
                    due = sum(x for mo, x in months if mo <= rel)
                    months = ([(rel, due)] if any(mo <= rel for mo, _ in months) else []) + [(mo, x) for mo, x in months if mo > rel]
            for mo, x in months:
                status = "recognized" if (not held and mo <= RUN_MONTH) else "deferred"
                schedule.append(["", l[0], l[1], c["customer"], l[2], mo.isoformat(), format_exact(x, 2), cur, status, cid, l[5], acct, l[6], cond[0] if cond else ""])
                if not held:
                    move(cur, l[6], mo, recognised=x)
        for key, (mid, eff, new_end, change) in MODIFICATIONS.items():
            if any((l[0], l[1]) == key for l in c["lines"]):
                l = next(l for l in c["lines"] if (l[0], l[1]) == key)
                billings.append([f"CB-{mid}", cid, c["customer"], cur, eff.isoformat(), format_exact(change, 2), "0.00", format_exact(change, 2), mid])
                move(cur, l[6], month_start(eff), billed=change)
    for cid, o, ln, cust, prod, cur, acct, month, amount in CONSUMED:
        schedule.append([INVOICE_OF[cust], o, ln, cust, prod, month.isoformat(), format_exact(round_half_away(amount, 2), 2), cur, "recognized", cid, "as_consumed", acct, "", ""])
    schedule.sort(key=lambda r: (r[9], r[1], r[2], r[11], r[5]))
    write("revenue_schedule.csv", ["invoice_id", "order_id", "line_id", "customer_id", "product_id", "recognition_date", "amount", "currency", "status", "contract_id", "method", "revenue_account", "deferral_account", "condition_id"], schedule)
    billings.sort()
    write("contract_billings.csv", ["billing_id", "contract_id", "customer_id", "currency", "billed_on", "amount", "tax", "total", "modification_id"], billings)

    roll = []
    for cur, acct in sorted({(k[0], k[1]) for k in moves}):
        first = min(k[2] for k in moves if k[:2] == (cur, acct))
        m, closing = first, F(0)
        while m <= RUN_MONTH:
            b, r = moves.get((cur, acct, m), (F(0), F(0)))
            opening, closing = closing, closing + b - r
            roll.append([m.isoformat(), cur, acct, format_exact(opening, 2), format_exact(b, 2), format_exact(r, 2), format_exact(closing, 2)])
            m = next_month(m)
    roll.sort(key=lambda r: (r[0], r[1], r[2]))
    write("deferred_revenue.csv", ["month", "currency", "account", "opening", "billed", "recognised", "closing"], roll)


if __name__ == "__main__":
    main()
