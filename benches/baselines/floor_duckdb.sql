-- The floor any rating engine pays: read the usage and sum quantities per customer and
-- product, nothing else (no dedupe, no windows, no pricing, no output).
SELECT customer_id, product_id, sum(quantity) FROM read_parquet('{data}/usage/*.parquet') GROUP BY ALL;
