-- The floor of any engine that must write every event back, as `rated_usage` does: read
-- the usage and write it unchanged to zstd Parquet (no dedupe, no windows, no pricing,
-- none of rated_usage's added columns).
COPY (SELECT * FROM read_parquet('{data}/usage/*.parquet'))
TO '{out}/usage_copy.parquet' (FORMAT parquet, COMPRESSION zstd);
