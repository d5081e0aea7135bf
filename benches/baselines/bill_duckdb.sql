-- billrun's rating and invoicing as a data team would write it in DuckDB SQL.
--
-- Placeholders filled in by run_baselines.py: {data} (dataset folder), {out} (output
-- folder), {ws_month} (first day of the billed month, e.g. 2026-10-01).
-- Reproduces, for the generated datasets: bad-row filtering, dedupe by event_id (first
-- in file-name then row order), per-customer billing windows, effective-dated plan
-- versions (a new version inside the window keeps Q accumulating), ambiguous and
-- missing subscriptions (left out), per-event attribution F12(Q_i) - F12(Q_{i-1}) for
-- per_unit, graduated, volume and package, prorated flat fees, discounts, prorated
-- minimum commitments, tax by region on the issue date, credit memos applied oldest
-- first, and rounding half away from zero to each currency's minor unit.
-- It writes rated_usage and invoices as Parquet, like billrun.
SET TimeZone = 'UTC';

CREATE TEMP TABLE customers AS SELECT * FROM read_parquet('{data}/customers/*.parquet');
CREATE TEMP TABLE subscriptions AS SELECT * FROM read_parquet('{data}/subscriptions/*.parquet');
CREATE TEMP TABLE price_plans AS SELECT * FROM read_parquet('{data}/price_plans/*.parquet');
CREATE TEMP TABLE tax_rates AS SELECT * FROM read_parquet('{data}/tax_rates/*.parquet');
CREATE TEMP TABLE credit_memos AS SELECT * FROM read_parquet('{data}/credit_memos/*.parquet');

-- Minor units of the invoice currencies, and rounding half away from zero to them.
CREATE TEMP TABLE minor AS SELECT * FROM (VALUES ('USD', 2), ('EUR', 2), ('JPY', 0), ('KWD', 3)) m(currency, digits);
-- (Each branch is cast: a CASE over DECIMAL(38, 0) and DECIMAL(38, 2) would be DECIMAL(38, 0).)
CREATE MACRO round_minor(x, digits) AS CASE digits
    WHEN 0 THEN CAST(round(x, 0) AS DECIMAL(38, 4)) WHEN 1 THEN CAST(round(x, 1) AS DECIMAL(38, 4))
    WHEN 2 THEN CAST(round(x, 2) AS DECIMAL(38, 4)) WHEN 3 THEN CAST(round(x, 3) AS DECIMAL(38, 4))
    ELSE CAST(round(x, 4) AS DECIMAL(38, 4)) END;
-- Exact integer helpers: the mantissa of x at 12 digits, and num/den (num a 12-digit
-- mantissa) rounded half up to `digits` as a decimal. DuckDB divides decimals in DOUBLE,
-- which money cannot use.
CREATE MACRO mant12(x) AS CAST(CAST(round(x, 12) AS DECIMAL(38, 12)) * CAST(1000000000000 AS DECIMAL(38, 0)) AS HUGEINT);
CREATE MACRO div_round(num, den, digits) AS
  CAST((num * CAST(10 ** digits AS HUGEINT) * 2 // (CAST(den AS HUGEINT) * 1000000000000) + 1) // 2 AS DECIMAL(38, 0))
  * CASE digits WHEN 0 THEN 1.0000 WHEN 1 THEN 0.1000 WHEN 2 THEN 0.0100 WHEN 3 THEN 0.0010 ELSE 0.0001 END;

-- Billing windows [ws, we) per customer.
CREATE TEMP TABLE windows AS
SELECT customer_id, tax_region, coalesce(payment_terms_days, 30) AS terms,
       (DATE '{ws_month}' + (billing_day - 1) * INTERVAL 1 DAY)::DATE AS ws,
       (DATE '{ws_month}' + (billing_day - 1) * INTERVAL 1 DAY + INTERVAL 1 MONTH)::DATE AS we
FROM customers;

-- Plan versions: (plan_id, effective_from); an empty effective_to is the next version's start.
CREATE TEMP TABLE versions AS
SELECT *, coalesce(effective_to_given,
                   lead(effective_from) OVER (PARTITION BY plan_id ORDER BY effective_from),
                   DATE '9999-12-31') AS effective_to
FROM (SELECT DISTINCT plan_id, product_id, currency, model, package_size, effective_from,
             effective_to AS effective_to_given FROM price_plans);

-- Tiers with the charge at each tier start (graduated), so F(Q) needs one tier lookup:
-- graduated F(Q) = base + (Q - tier_start) * unit_price, base holding the fees of every
-- tier reached so far and the full price of every earlier tier.
CREATE TEMP TABLE tiers AS
SELECT plan_id, effective_from, tier_start, unit_price, fee,
       coalesce(sum(fee) OVER w, 0)
         + coalesce(sum((next_start - tier_start) * unit_price) OVER w - (next_start - tier_start) * unit_price, 0)
         AS base
FROM (SELECT plan_id, effective_from, tier_start, unit_price, coalesce(flat_fee, 0) AS fee,
             coalesce(lead(tier_start) OVER (PARTITION BY plan_id, effective_from ORDER BY tier_start), tier_start) AS next_start
      FROM price_plans)
WINDOW w AS (PARTITION BY plan_id, effective_from ORDER BY tier_start ROWS UNBOUNDED PRECEDING);

-- Which subscription and version price usage of (customer, product) on each day of the
-- customer's window; days with two active subscriptions are ambiguous and left out.
CREATE TEMP TABLE sub_days AS
WITH days AS (
  SELECT s.subscription_id, s.customer_id, s.plan_id, s.start_date, s.end_date,
         unnest(generate_series(w.ws, w.we - INTERVAL 1 DAY, INTERVAL 1 DAY))::DATE AS day
  FROM subscriptions s JOIN windows w USING (customer_id)
)
SELECT d.customer_id, v.product_id, d.day, any_value(d.subscription_id) AS subscription_id,
       any_value(d.plan_id) AS plan_id, any_value(v.currency) AS currency,
       any_value(v.effective_from) AS effective_from, any_value(v.model) AS model,
       any_value(v.package_size) AS package_size
FROM days d
JOIN (SELECT DISTINCT plan_id, product_id FROM price_plans) p USING (plan_id)
LEFT JOIN versions v ON v.plan_id = d.plan_id AND v.effective_from <= d.day AND d.day < v.effective_to
WHERE d.start_date <= d.day AND (d.end_date IS NULL OR d.day < d.end_date)
GROUP BY d.customer_id, v.product_id, d.day
HAVING count(*) = 1 AND any_value(v.model) IS NOT NULL AND any_value(v.model) <> 'flat';

-- Usage: valid rows, first occurrence of each event_id, inside the customer's window.
CREATE TEMP TABLE events AS
WITH raw AS (
  SELECT event_id, customer_id, product_id, ts, quantity, filename, file_row_number
  FROM read_parquet('{data}/usage/*.parquet', filename = true, file_row_number = true)
  WHERE event_id IS NOT NULL AND customer_id IS NOT NULL AND product_id IS NOT NULL
    AND ts IS NOT NULL AND quantity IS NOT NULL AND quantity >= 0
), deduped AS (
  SELECT * FROM raw
  QUALIFY row_number() OVER (PARTITION BY event_id ORDER BY filename, file_row_number) = 1
)
SELECT u.event_id, u.customer_id, u.product_id, u.ts, u.quantity, w.ws AS period_start,
       sd.subscription_id, sd.plan_id, sd.currency, sd.effective_from, sd.model, sd.package_size,
       sum(u.quantity) OVER (PARTITION BY sd.subscription_id ORDER BY u.ts, u.event_id
                             ROWS UNBOUNDED PRECEDING) AS q_after
FROM deduped u
JOIN windows w ON u.customer_id = w.customer_id AND u.ts >= w.ws AND u.ts < w.we
JOIN sub_days sd ON sd.customer_id = u.customer_id AND sd.product_id = u.product_id
                AND sd.day = u.ts::DATE;

-- F12 of an event's version at Q, from the tier Q reaches (none when Q = 0: F = 0).
CREATE MACRO charge(model, q, tier_start, unit_price, fee, base, package_size) AS
  round(CASE
    WHEN tier_start IS NULL THEN 0
    WHEN model = 'graduated' THEN base + (q - tier_start) * unit_price
    WHEN model = 'package' THEN
      CAST((CAST(q * 1000000000000 AS HUGEINT) + CAST(package_size * 1000000000000 AS HUGEINT) - 1)
           // CAST(package_size * 1000000000000 AS HUGEINT) AS DECIMAL(38, 0)) * unit_price + fee
    ELSE q * unit_price + fee  -- per_unit, volume
  END, 12);

CREATE TEMP TABLE rated AS
SELECT e.event_id, e.customer_id, e.product_id, e.subscription_id, e.plan_id, e.ts, e.quantity,
       CAST(charge(e.model, e.q_after, a.tier_start, a.unit_price, a.fee, a.base, e.package_size)
          - charge(e.model, e.q_after - e.quantity, b.tier_start, b.unit_price, b.fee, b.base, e.package_size)
          AS DECIMAL(38, 12)) AS amount,
       e.currency, e.period_start
FROM (SELECT *, q_after - quantity AS q_before FROM events) e
ASOF LEFT JOIN tiers a ON a.plan_id = e.plan_id AND a.effective_from = e.effective_from AND e.q_after > a.tier_start
ASOF LEFT JOIN tiers b ON b.plan_id = e.plan_id AND b.effective_from = e.effective_from AND e.q_before > b.tier_start;

COPY (SELECT * FROM rated ORDER BY subscription_id, ts, event_id)
  TO '{out}/rated_usage.parquet' (FORMAT parquet, COMPRESSION zstd);

-- Invoicing: small tables from here on.
CREATE TEMP TABLE subs AS
SELECT s.subscription_id, s.customer_id, s.plan_id, v.currency, s.discount_percent,
       s.min_commitment, coalesce(s.quantity, 1) AS seats, w.ws, w.we,
       greatest(s.start_date, w.ws) AS active_start,
       least(coalesce(s.end_date, DATE '9999-12-31'), w.we) AS active_end,
       m.digits
FROM subscriptions s
JOIN windows w USING (customer_id)
JOIN (SELECT DISTINCT plan_id, currency FROM versions) v USING (plan_id)
JOIN minor m ON m.currency = v.currency
WHERE greatest(s.start_date, w.ws) < least(coalesce(s.end_date, DATE '9999-12-31'), w.we);

CREATE TEMP TABLE usage_lines AS
SELECT r.subscription_id, round_minor(sum(r.amount), any_value(s.digits)) AS amount
FROM rated r JOIN subs s USING (subscription_id)
GROUP BY r.subscription_id, r.product_id;

-- Flat fees: Σ over active days of the price in force that day × seats / window days,
-- rounded half up (it is never negative) in exact integer arithmetic.
CREATE TEMP TABLE recurring_lines AS
WITH days AS (
  SELECT s.*, unnest(generate_series(s.active_start, s.active_end - INTERVAL 1 DAY, INTERVAL 1 DAY))::DATE AS day
  FROM subs s
), priced AS (
  SELECT d.subscription_id, any_value(d.seats) AS seats, any_value(d.digits) AS digits,
         any_value(datediff('day', d.ws, d.we)) AS window_days, sum(t.unit_price) AS price_days
  FROM days d
  JOIN versions v ON v.plan_id = d.plan_id AND v.effective_from <= d.day AND d.day < v.effective_to
  JOIN tiers t ON t.plan_id = v.plan_id AND t.effective_from = v.effective_from
  WHERE v.model = 'flat'
  GROUP BY d.subscription_id
)
SELECT subscription_id, div_round(mant12(price_days * seats), window_days, digits) AS amount
FROM priced;

CREATE TEMP TABLE sub_totals AS
WITH charges AS (
  SELECT s.*, coalesce(u.amount, 0) + coalesce(r.amount, 0) AS charges
  FROM subs s
  LEFT JOIN (SELECT subscription_id, sum(amount) AS amount FROM usage_lines GROUP BY ALL) u USING (subscription_id)
  LEFT JOIN recurring_lines r USING (subscription_id)
), discounted AS (
  SELECT *, CASE WHEN coalesce(discount_percent, 0) > 0
                 THEN round_minor(charges * discount_percent * 0.01, digits) ELSE 0 END AS discount
  FROM charges
)
SELECT *,
  -- minimum = round(commitment × active/window − (charges − discount)) when positive,
  -- in exact integers at 12 digits: x = numerator / window_days.
  CASE WHEN min_commitment IS NULL THEN 0 ELSE greatest(0, div_round(
    mant12(min_commitment) * datediff('day', active_start, active_end)
      - mant12(charges - discount) * datediff('day', ws, we),
    datediff('day', ws, we), digits)) END AS minimum
FROM discounted;

CREATE TEMP TABLE invoices AS
WITH inv AS (
  SELECT customer_id, currency, any_value(digits) AS digits, any_value(ws) AS ws, any_value(we) AS we,
         sum(charges + minimum) AS subtotal, sum(discount) AS discount
  FROM sub_totals GROUP BY customer_id, currency
), taxed AS (
  SELECT i.*, w.terms,
         round_minor((i.subtotal - i.discount) * coalesce(
           (SELECT t.rate FROM tax_rates t WHERE t.tax_region = w.tax_region AND t.effective_from <= i.we
            ORDER BY t.effective_from DESC LIMIT 1), 0), i.digits) AS tax
  FROM inv i JOIN windows w USING (customer_id)
), memos AS (
  SELECT t.customer_id, t.currency, m.amount,
         sum(m.amount) OVER (PARTITION BY t.customer_id, t.currency ORDER BY m.issued_on, m.credit_memo_id
                             ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING) AS before,
         greatest(t.subtotal - t.discount + t.tax, 0) AS balance
  FROM taxed t JOIN credit_memos m ON m.customer_id = t.customer_id AND m.currency = t.currency
                                  AND m.issued_on >= t.ws AND m.issued_on < t.we
), credits AS (
  SELECT customer_id, currency,
         sum(greatest(0, least(amount, balance - coalesce(before, 0)))) AS credits
  FROM memos GROUP BY ALL
)
SELECT 'INV-' || strftime(DATE '{ws_month}', '%Y%m') || '-' || t.customer_id || '-' || t.currency AS invoice_id,
       t.customer_id, t.currency, t.ws AS period_start, (t.we - INTERVAL 1 DAY)::DATE AS period_end,
       t.we AS issue_date, (t.we + t.terms * INTERVAL 1 DAY)::DATE AS due_date,
       CAST(t.subtotal AS DECIMAL(38, 4)) AS subtotal, CAST(t.discount AS DECIMAL(38, 4)) AS discount,
       CAST(coalesce(c.credits, 0) AS DECIMAL(38, 4)) AS credits, t.tax,
       CAST(t.subtotal - t.discount + t.tax - coalesce(c.credits, 0) AS DECIMAL(38, 4)) AS total
FROM taxed t LEFT JOIN credits c USING (customer_id, currency);

COPY (SELECT * FROM invoices ORDER BY invoice_id) TO '{out}/invoices.parquet' (FORMAT parquet);
