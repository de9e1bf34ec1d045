-- The lake as four DuckDB views: events, daily_counts, alerts (Parquet) and checkpoints
-- (the registry in use). `crossings sql` runs this file on an in-memory database after
-- setting the variables below; to use it from the DuckDB shell instead, set them yourself:
--
--   SET VARIABLE events_files       = '.crossings/data/events/*/*/*.parquet';
--   SET VARIABLE daily_counts_files = '.crossings/data/daily_counts/*/*/*.parquet';
--   SET VARIABLE alerts_files       = '.crossings/data/alerts/*/*/*.parquet';
--   CREATE TABLE registry_checkpoints AS
--       SELECT unnest(checkpoints, recursive := true) FROM read_json('schemas/checkpoints.json');
--   .read streams/query/views.sql
--
-- Each variable is a glob or a list of files; `crossings sql` passes the list of files it
-- found headed by one empty file of the current schema, so a view has every column even
-- before any file does, and a column newer than a file reads NULL in its rows (columns are
-- only ever added: schemas/lake.json). The folders' `date` and `checkpoint` become `local_day` and
-- `checkpoint_id`, the names the reports and the alert JSON use. Column meanings:
-- README, "The lake's schema".

CREATE OR REPLACE VIEW events AS
SELECT date AS local_day, checkpoint AS checkpoint_id, * EXCLUDE (date, checkpoint)
FROM read_parquet(
    getvariable('events_files'),
    hive_partitioning = true, union_by_name = true,
    hive_types = {'date': DATE, 'checkpoint': VARCHAR}
);

-- One snapshot file per source partition and checkpoint-day, replaced at each commit:
-- sum(count) over the files of a folder is the checkpoint-day's count.
CREATE OR REPLACE VIEW daily_counts AS
SELECT date AS local_day, checkpoint AS checkpoint_id, * EXCLUDE (date, checkpoint)
FROM read_parquet(
    getvariable('daily_counts_files'),
    hive_partitioning = true, union_by_name = true,
    hive_types = {'date': DATE, 'checkpoint': VARCHAR}
);

CREATE OR REPLACE VIEW alerts AS
SELECT date AS local_day, checkpoint AS checkpoint_id, * EXCLUDE (date, checkpoint)
FROM read_parquet(
    getvariable('alerts_files'),
    hive_partitioning = true, union_by_name = true,
    hive_types = {'date': DATE, 'checkpoint': VARCHAR}
);

CREATE OR REPLACE VIEW checkpoints AS
SELECT checkpoint_id, name, kind, country_a, country_b, region, tz, lat, lon
FROM registry_checkpoints;
