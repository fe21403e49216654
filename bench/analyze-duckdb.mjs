// analyze-duckdb.mjs: DuckDB's side of bench/analyze.sh. Computes the
// statistics analyze's stage tables hold, grouped by scenario, stage and
// operation: requests, failures, and the exact (nearest-rank) p50, p90,
// p95, p99, min, max and mean of the successes' durations, over every
// results-*.parquet of a run directory; prints them as JSON and, on
// stderr, the query's own seconds.
//   node bench/analyze-duckdb.mjs RUN_DIR [THREADS]
// @duckdb/node-api comes from testdata/node's lockfile (node_modules
// installed there by `make node-fixtures`).
import { createRequire } from 'node:module';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const here = path.dirname(fileURLToPath(import.meta.url));
const require = createRequire(path.join(here, '..', 'testdata', 'node', 'package.json'));
const { DuckDBInstance } = require('@duckdb/node-api');

const [dir, threads] = process.argv.slice(2);
if (!dir) {
  console.error('usage: node bench/analyze-duckdb.mjs RUN_DIR [THREADS]');
  process.exit(2);
}
const t0 = process.hrtime.bigint();
const instance = await DuckDBInstance.create(':memory:', threads ? { threads: String(threads) } : {});
const conn = await instance.connect();
const glob = "'" + path.join(dir, 'results-*.parquet').replaceAll("'", "''") + "'";
const res = await conn.runAndReadAll(`
  SELECT scenario, stage, operation,
         count(*) AS requests,
         count(*) FILTER (WHERE error_kind <> '') AS failures,
         quantile_disc(duration_ns, [0.5, 0.9, 0.95, 0.99]) FILTER (WHERE error_kind = '') AS p,
         min(duration_ns) FILTER (WHERE error_kind = '') AS min_ns,
         max(duration_ns) FILTER (WHERE error_kind = '') AS max_ns,
         avg(duration_ns) FILTER (WHERE error_kind = '') AS avg_ns
  FROM read_parquet(${glob})
  GROUP BY ALL ORDER BY ALL`);
const rows = res.getRowObjectsJson();
const secs = Number(process.hrtime.bigint() - t0) / 1e9;
console.log(JSON.stringify(rows));
console.error(`duckdb: ${rows.length} groups in ${secs.toFixed(3)} s`);
