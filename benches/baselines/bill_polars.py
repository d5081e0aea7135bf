"""billrun's rating and invoicing written with Polars (lazy API), as a data team would.

Usage: python3 bill_polars.py DATASET OUT_DIR PERIOD   (PERIOD like 2026-10)

Writes OUT_DIR/rated_usage.parquet and OUT_DIR/invoices.parquet. Reproduces the same
rules as bill_duckdb.sql (see README.md). Money is exact: every decimal is turned into an
Int128 mantissa at 12 fractional digits, and all pricing, proration and rounding (half
away from zero) is integer arithmetic; nothing passes through a float.
"""

import sys
from datetime import date
from decimal import Decimal
from pathlib import Path

import polars as pl

S12 = 10**12
MINOR = {"USD": 2, "EUR": 2, "JPY": 0, "KWD": 3}
FAR = date(9999, 12, 31)


def m12(col: str) -> pl.Expr:
    """The Int128 mantissa of a Decimal column at 12 fractional digits."""
    return (
        pl.col(col).cast(pl.Decimal(38, 12)) * pl.lit(S12).cast(pl.Decimal(38, 0))
    ).cast(pl.Int128)


def div_half_away(x: pl.Expr, d: pl.Expr | int) -> pl.Expr:
    """x / d rounded half away from zero, x and d integers, d > 0."""
    q = (x.abs() * 2 + d) // (pl.lit(2) * d if isinstance(d, int) else d * 2)
    return pl.when(x < 0).then(pl.lit(0, dtype=pl.Int128) - q).otherwise(q)


def round_minor12(x: pl.Expr, digits: pl.Expr) -> pl.Expr:
    """A 12-digit mantissa rounded to `digits` (still a 12-digit mantissa)."""
    unit = pl.lit(10, dtype=pl.Int128).pow(pl.lit(12) - digits).cast(pl.Int128)
    return div_half_away(x, unit) * unit


def as_decimal12(x: pl.Expr) -> pl.Expr:
    return x.cast(pl.Decimal(38, 0)) * pl.lit(Decimal("0.000000000001"), dtype=pl.Decimal(38, 12))


def main(data: str, out: str, period: str) -> None:
    year, month = (int(p) for p in period.split("-"))
    read = lambda t: pl.read_parquet(f"{data}/{t}/*.parquet")  # noqa: E731
    customers, subscriptions, plans = read("customers"), read("subscriptions"), read("price_plans")
    tax_rates, memos = read("tax_rates"), read("credit_memos")

    windows = customers.select(
        "customer_id",
        "tax_region",
        terms=pl.col("payment_terms_days").fill_null(30),
        ws=pl.date(year, month, pl.col("billing_day")),
    ).with_columns(we=pl.col("ws").dt.offset_by("1mo"))

    versions = (
        plans.select("plan_id", "product_id", "currency", "model", "package_size", "effective_from", "effective_to")
        .unique()
        .sort("plan_id", "effective_from")
        .with_columns(
            effective_to=pl.coalesce(
                "effective_to", pl.col("effective_from").shift(-1).over("plan_id"), pl.lit(FAR)
            ),
            size_m=m12("package_size"),
        )
    )
    # Tiers, wide per version: start, price and fee mantissas and, for graduated, the
    # charge at the tier's start with the fees of every tier reached (scale 24).
    tiers = (
        plans.sort("plan_id", "effective_from", "tier_start")
        .with_columns(
            start=m12("tier_start"),
            price=m12("unit_price"),
            fee24=m12("flat_fee").fill_null(0) * S12,
            k=pl.int_range(pl.len()).over("plan_id", "effective_from"),
        )
        .with_columns(next_start=pl.col("start").shift(-1).over("plan_id", "effective_from"))
        .with_columns(width24=((pl.col("next_start") - pl.col("start")) * pl.col("price")).fill_null(0))
        .with_columns(
            base24=pl.col("fee24").cum_sum().over("plan_id", "effective_from")
            + pl.col("width24").cum_sum().over("plan_id", "effective_from")
            - pl.col("width24")
        )
    )
    n_tiers = int(tiers["k"].max()) + 1
    wide = tiers.pivot(
        on="k", index=["plan_id", "effective_from"], values=["start", "price", "fee24", "base24"]
    )

    # Which subscription and version price usage of (customer, product) on each day of
    # the customer's window; ambiguous days are left out.
    plan_product = versions.select("plan_id", "product_id").unique()
    sub_days = (
        subscriptions.join(windows.select("customer_id", "ws", "we"), on="customer_id")
        .with_columns(day=pl.date_ranges("ws", pl.col("we").dt.offset_by("-1d")))
        .explode("day")
        .filter(
            (pl.col("start_date") <= pl.col("day"))
            & (pl.col("end_date").is_null() | (pl.col("day") < pl.col("end_date")))
        )
        .join(plan_product, on="plan_id")
        .join(versions.drop("product_id"), on="plan_id", how="left")
        .filter(
            pl.col("effective_from").is_null()
            | ((pl.col("effective_from") <= pl.col("day")) & (pl.col("day") < pl.col("effective_to")))
        )
        .group_by("customer_id", "product_id", "day")
        .agg(pl.all().first(), n=pl.len())
        .filter((pl.col("n") == 1) & pl.col("model").is_not_null() & (pl.col("model") != "flat"))
        .select("customer_id", "product_id", "day", "subscription_id", "plan_id", "currency",
                "effective_from", "model", "size_m")
        .join(wide, on=["plan_id", "effective_from"], how="left")
    )

    usage = (
        pl.scan_parquet(f"{data}/usage/*.parquet", row_index_name="_row")
        .filter(
            pl.col("event_id").is_not_null() & pl.col("customer_id").is_not_null()
            & pl.col("product_id").is_not_null() & pl.col("ts").is_not_null()
            & pl.col("quantity").is_not_null() & (pl.col("quantity") >= 0)
        )
        .unique(subset="event_id", keep="first", maintain_order=True)
        .join(windows.lazy().select("customer_id", "ws", "we"), on="customer_id")
        .with_columns(day=pl.col("ts").dt.date())
        .filter((pl.col("day") >= pl.col("ws")) & (pl.col("day") < pl.col("we")))
        .join(sub_days.lazy(), on=["customer_id", "product_id", "day"])
        .sort("subscription_id", "ts", "event_id")
        .with_columns(q=m12("quantity"))
        .with_columns(q_after=pl.col("q").cum_sum().over("subscription_id"))
        .with_columns(q_before=pl.col("q_after") - pl.col("q"))
    )

    def charge12(q: str) -> pl.Expr:
        """F12 of the event's version at cumulative quantity `q` (a 12-digit mantissa)."""
        qc = pl.col(q)
        tier = sum(
            ((qc > pl.col(f"start_{k}")).fill_null(False)).cast(pl.Int32) for k in range(1, n_tiers)
        )

        def pick(name: str) -> pl.Expr:
            expr = pl.col(f"{name}_0")
            for k in range(1, n_tiers):
                expr = pl.when(tier == k).then(pl.col(f"{name}_{k}")).otherwise(expr)
            return expr

        start, price, fee24, base24 = pick("start"), pick("price"), pick("fee24"), pick("base24")
        model = pl.col("model")
        f24 = (
            pl.when(model == "graduated").then(base24 + (qc - start) * price)
            .when(model == "package")
            .then((qc + pl.col("size_m") - 1) // pl.col("size_m") * price * S12 + fee24)
            .otherwise(qc * price + fee24)
        )
        return pl.when(qc == 0).then(pl.lit(0, dtype=pl.Int128)).otherwise(div_half_away(f24, S12))

    rated = (
        usage.with_columns(amount_m=charge12("q_after") - charge12("q_before"))
        .select(
            "event_id", "customer_id", "product_id", "subscription_id", "plan_id", "ts", "quantity",
            "amount_m", "currency", pl.col("ws").alias("period_start"),
        )
        .collect()
    )
    Path(out).mkdir(parents=True, exist_ok=True)
    rated.with_columns(amount=as_decimal12(pl.col("amount_m"))).drop("amount_m").select(
        "event_id", "customer_id", "product_id", "subscription_id", "plan_id", "ts", "quantity",
        "amount", "currency", "period_start",
    ).write_parquet(f"{out}/rated_usage.parquet", compression="zstd")

    # Invoicing: small tables from here on; every amount is a 12-digit mantissa.
    minor = pl.DataFrame({"currency": list(MINOR), "digits": list(MINOR.values())})
    subs = (
        subscriptions.join(windows, on="customer_id")
        .join(versions.select("plan_id", "currency").unique(), on="plan_id")
        .join(minor, on="currency")
        .with_columns(
            a_start=pl.max_horizontal("start_date", "ws"),
            a_end=pl.min_horizontal(pl.col("end_date").fill_null(FAR), "we"),
            seats_m=m12("quantity").fill_null(S12),
            pct_m=m12("discount_percent"),
            commit_m=m12("min_commitment"),
            window_days=(pl.col("we") - pl.col("ws")).dt.total_days(),
        )
        .filter(pl.col("a_start") < pl.col("a_end"))
        .with_columns(active_days=(pl.col("a_end") - pl.col("a_start")).dt.total_days())
    )
    usage_lines = (
        rated.group_by("subscription_id", "product_id")
        .agg(amount=pl.col("amount_m").sum())
        .join(subs.select("subscription_id", "digits"), on="subscription_id")
        .group_by("subscription_id")
        .agg(usage=round_minor12(pl.col("amount"), pl.col("digits")).sum())
    )
    # Flat fees: Σ over active days of the price in force × seats / window days.
    recurring = (
        subs.with_columns(day=pl.date_ranges("a_start", pl.col("a_end").dt.offset_by("-1d")))
        .explode("day")
        .join(versions.select("plan_id", "effective_from", "effective_to", "model"), on="plan_id")
        .filter(
            (pl.col("model") == "flat") & (pl.col("effective_from") <= pl.col("day"))
            & (pl.col("day") < pl.col("effective_to"))
        )
        .join(tiers.select("plan_id", "effective_from", "price"), on=["plan_id", "effective_from"])
        .group_by("subscription_id")
        .agg(
            price_days=pl.col("price").sum(), seats_m=pl.col("seats_m").first(),
            window_days=pl.col("window_days").first(), digits=pl.col("digits").first(),
        )
        .with_columns(
            # price_days × seats is at scale 24; the fee rounded to the minor unit.
            recurring=div_half_away(
                pl.col("price_days") * pl.col("seats_m"),
                pl.col("window_days").cast(pl.Int128)
                * pl.lit(10, dtype=pl.Int128).pow(pl.lit(24) - pl.col("digits")).cast(pl.Int128),
            )
            * pl.lit(10, dtype=pl.Int128).pow(pl.lit(12) - pl.col("digits")).cast(pl.Int128)
        )
        .select("subscription_id", "recurring")
    )
    unit = lambda e: pl.lit(10, dtype=pl.Int128).pow(pl.lit(12) - e).cast(pl.Int128)  # noqa: E731
    sub_totals = (
        subs.join(usage_lines, on="subscription_id", how="left")
        .join(recurring, on="subscription_id", how="left")
        .with_columns(charges=pl.col("usage").fill_null(0) + pl.col("recurring").fill_null(0))
        .with_columns(
            discount=pl.when(pl.col("pct_m").fill_null(0) > 0)
            .then(div_half_away(pl.col("charges") * pl.col("pct_m"), unit(pl.col("digits")) * S12 * 100)
                  * unit(pl.col("digits")))
            .otherwise(0)
        )
        .with_columns(
            # round(commitment × active/window − (charges − discount)), when positive.
            minimum=pl.when(pl.col("commit_m").is_null()).then(0).otherwise(
                pl.max_horizontal(
                    0,
                    div_half_away(
                        pl.col("commit_m") * pl.col("active_days")
                        - (pl.col("charges") - pl.col("discount")) * pl.col("window_days"),
                        pl.col("window_days").cast(pl.Int128) * unit(pl.col("digits")),
                    ) * unit(pl.col("digits")),
                )
            )
        )
    )
    inv = (
        sub_totals.group_by("customer_id", "currency")
        .agg(
            subtotal=(pl.col("charges") + pl.col("minimum")).sum(),
            discount=pl.col("discount").sum(),
            digits=pl.col("digits").first(), ws=pl.col("ws").first(), we=pl.col("we").first(),
            tax_region=pl.col("tax_region").first(), terms=pl.col("terms").first(),
        )
    )
    rates = (
        inv.select("customer_id", "currency", "tax_region", "we")
        .join(tax_rates, on="tax_region", how="left")
        .filter(pl.col("effective_from").is_null() | (pl.col("effective_from") <= pl.col("we")))
        .sort("effective_from")
        .group_by("customer_id", "currency")
        .agg(rate_m=m12("rate").last())
    )
    inv = (
        inv.join(rates, on=["customer_id", "currency"], how="left")
        .with_columns(
            tax=div_half_away(
                (pl.col("subtotal") - pl.col("discount")) * pl.col("rate_m").fill_null(0),
                unit(pl.col("digits")) * S12,
            ) * unit(pl.col("digits"))
        )
        .with_columns(balance=pl.max_horizontal(0, pl.col("subtotal") - pl.col("discount") + pl.col("tax")))
    )
    credits = (
        inv.select("customer_id", "currency", "ws", "we", "balance")
        .join(memos.with_columns(amount_m=m12("amount")), on=["customer_id", "currency"])
        .filter((pl.col("issued_on") >= pl.col("ws")) & (pl.col("issued_on") < pl.col("we")))
        .sort("issued_on", "credit_memo_id")
        .with_columns(
            before=pl.col("amount_m").cum_sum().over("customer_id", "currency") - pl.col("amount_m")
        )
        .group_by("customer_id", "currency")
        .agg(
            credits=pl.max_horizontal(
                0, pl.min_horizontal("amount_m", pl.col("balance") - pl.col("before"))
            ).sum()
        )
    )
    invoices = (
        inv.join(credits, on=["customer_id", "currency"], how="left")
        .with_columns(credits=pl.col("credits").fill_null(0))
        .with_columns(total=pl.col("subtotal") - pl.col("discount") + pl.col("tax") - pl.col("credits"))
        .select(
            invoice_id=pl.lit(f"INV-{year:04}{month:02}-") + pl.col("customer_id") + "-" + pl.col("currency"),
            customer_id="customer_id", currency="currency", period_start="ws",
            period_end=pl.col("we").dt.offset_by("-1d"), issue_date="we",
            due_date=pl.col("we") + pl.duration(days=pl.col("terms")),
            **{c: as_decimal12(pl.col(c)).cast(pl.Decimal(38, 4)) for c in
               ["subtotal", "discount", "credits", "tax", "total"]},
        )
        .sort("invoice_id")
    )
    invoices.write_parquet(f"{out}/invoices.parquet")


if __name__ == "__main__":
    main(*sys.argv[1:4])
