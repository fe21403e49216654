// captures-duckdb.mjs: read a loadtape capture file with DuckDB, an
// independent Parquet reader, and print what it saw as JSON:
//   node captures-duckdb.mjs FILE.parquet 'SELECT ... FROM f'
// {"columns": [{"name": "...", "type": "BIGINT"}, ...], "rows": [{...}, ...]}
// The table `f` is the file. Types are DuckDB's names (VARCHAR, BLOB,
// BIGINT[], STRUCT(...)[]); values are DuckDB's JSON forms (big integers as
// strings). Used by captures/duckdb_test.go.
import { DuckDBInstance } from '@duckdb/node-api';

const [file, query] = process.argv.slice(2);
if (!file || !query) {
  console.error('usage: node captures-duckdb.mjs FILE.parquet QUERY');
  process.exit(2);
}
const instance = await DuckDBInstance.create(':memory:');
const conn = await instance.connect();
const quoted = "'" + file.replaceAll("'", "''") + "'";
await conn.run(`CREATE VIEW f AS SELECT * FROM read_parquet(${quoted})`);
const desc = await conn.runAndReadAll('DESCRIBE f');
const columns = desc.getRowObjectsJson().map((r) => ({ name: r.column_name, type: r.column_type }));
const res = await conn.runAndReadAll(query);
console.log(JSON.stringify({ columns, rows: res.getRowObjectsJson() }));
