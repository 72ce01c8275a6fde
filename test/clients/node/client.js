// client.js: every kv_* function through node-postgres, the way an
// application calls them: plain parameters (strings, arrays of strings,
// Buffers, numbers, null) and no casts.  Prints TAP.
//
//   DATABASE_URL=postgresql://user@host:port/db node client.js
//
// The database has the kvstore extension; the topic is created by the
// first write.
'use strict';

const assert = require('node:assert/strict');
const crypto = require('node:crypto');
const { Readable } = require('node:stream');
const { pipeline } = require('node:stream/promises');
const pg = require('pg');
const { from: copyFrom } = require('pg-copy-streams');

let count = 0;
let failed = 0;

// Run one check and print its TAP line
async function check(name, fn) {
  count++;
  try {
    await fn();
    console.log(`ok ${count} - ${name}`);
  } catch (err) {
    failed++;
    console.log(`not ok ${count} - ${name}`);
    console.log(String(err.stack || err).replace(/^/gm, '# '));
  }
}

// The SQLSTATE a query fails with
async function sqlstate(db, text, params) {
  try {
    await db.query(text, params);
  } catch (err) {
    return err.code;
  }
  return 'no error';
}

async function main() {
  const db = new pg.Client({ connectionString: process.env.DATABASE_URL });
  await db.connect();
  const topic = 'clients_node_' + crypto.randomBytes(6).toString('hex');
  let first;

  // ==================================================================
  // text keys and values
  // ==================================================================
  await check('kv_create_topic creates the topic once', async () => {
    const created = await db.query('SELECT kv_create_topic($1) AS created', [topic]);
    assert.equal(created.rows[0].created, true);
    const again = await db.query('SELECT kv_create_topic($1) AS created', [topic]);
    assert.equal(again.rows[0].created, false);
  });

  await check('kv_put with strings returns the offset', async () => {
    const put = await db.query('SELECT kv_put($1, $2, $3) AS "offset"', [topic, 'user:1', 'alice']);
    first = BigInt(put.rows[0].offset); // bigint arrives as a string
    assert.ok(first >= 0n);
  });

  await check('kv_get reads the value back', async () => {
    const get = await db.query('SELECT kv_get($1, $2) AS value', [topic, 'user:1']);
    assert.equal(get.rows[0].value, 'alice');
  });

  await check('kv_exists and kv_get of an absent key', async () => {
    const res = await db.query(
      'SELECT kv_exists($1, $2) AS present, kv_exists($1, $3) AS absent, kv_get($1, $3) AS value',
      [topic, 'user:1', 'user:404']);
    assert.deepEqual(res.rows[0], { present: true, absent: false, value: null });
  });

  await check('kv_put_many with two arrays of strings, a null deleting', async () => {
    const batch = await db.query('SELECT kv_put_many($1, $2, $3) AS "offset"',
      [topic, ['user:2', 'user:3', 'user:10', 'user:3'], ['bob', 'carol', 'dave', null]]);
    assert.ok(BigInt(batch.rows[0].offset) > first);
  });

  await check('kv_scan by prefix, in byte order', async () => {
    const scan = await db.query('SELECT key, value FROM kv_scan($1, $2)', [topic, 'user:']);
    assert.deepEqual(scan.rows, [
      { key: 'user:1', value: 'alice' },
      { key: 'user:10', value: 'dave' },
      { key: 'user:2', value: 'bob' },
    ]);
  });

  await check('kv_scan with max_rows, and with the topic alone', async () => {
    const limited = await db.query('SELECT key FROM kv_scan($1, $2, $3)', [topic, 'user:', 2]);
    assert.deepEqual(limited.rows.map((r) => r.key), ['user:1', 'user:10']);
    const all = await db.query('SELECT count(*)::int AS n FROM kv_scan($1)', [topic]);
    assert.equal(all.rows[0].n, 3);
  });

  await check('kv_range with a null bound', async () => {
    const res = await db.query('SELECT key FROM kv_range($1, $2, $3, $4)', [topic, 'user:10', null, null]);
    assert.deepEqual(res.rows.map((r) => r.key), ['user:10', 'user:2']);
  });

  await check('kv_delete removes the key', async () => {
    await db.query('SELECT kv_delete($1, $2)', [topic, 'user:2']);
    const res = await db.query('SELECT kv_exists($1, $2) AS present', [topic, 'user:2']);
    assert.equal(res.rows[0].present, false);
  });

  // ==================================================================
  // binary keys and values: Buffers, with 0x00 bytes
  // ==================================================================
  const key = Buffer.from([0x00, 0x01, 0xff]);
  const value = Buffer.from([0xde, 0xad, 0x00, 0xbe, 0xef]);

  await check('kv_put_bytea and kv_get_bytea round-trip a key with a 0x00 byte', async () => {
    await db.query('SELECT kv_put_bytea($1, $2, $3)', [topic, key, value]);
    const bin = await db.query('SELECT kv_get_bytea($1, $2) AS value', [topic, key]);
    assert.ok(Buffer.isBuffer(bin.rows[0].value));
    assert.ok(bin.rows[0].value.equals(value));
  });

  await check('kv_exists_bytea: the key, not its prefix', async () => {
    const res = await db.query('SELECT kv_exists_bytea($1, $2) AS key, kv_exists_bytea($1, $3) AS prefix',
      [topic, key, key.subarray(0, 2)]);
    assert.deepEqual(res.rows[0], { key: true, prefix: false });
  });

  await check('kv_put_many_bytea with two arrays of Buffers', async () => {
    await db.query('SELECT kv_put_many_bytea($1, $2, $3)',
      [topic, [Buffer.from([0x00, 0x02]), Buffer.from([0x00, 0x03])], [Buffer.from([0x02]), Buffer.alloc(0)]]);
    const res = await db.query('SELECT key, value FROM kv_scan_bytea($1, $2)', [topic, Buffer.from([0x00])]);
    assert.deepEqual(res.rows.map((r) => [r.key.toString('hex'), r.value.toString('hex')]),
      [['0001ff', 'dead00beef'], ['0002', '02'], ['0003', '']]);
  });

  await check('kv_range_bytea and kv_delete_bytea', async () => {
    const range = await db.query('SELECT key FROM kv_range_bytea($1, $2, $3, $4)',
      [topic, Buffer.from([0x00, 0x02]), null, 1]);
    assert.deepEqual(range.rows.map((r) => r.key.toString('hex')), ['0002']);
    await db.query('SELECT kv_delete_bytea($1, $2)', [topic, key]);
    const res = await db.query('SELECT kv_get_bytea($1, $2) AS value', [topic, key]);
    assert.equal(res.rows[0].value, null);
  });

  await check('kv_sync returns the end offset', async () => {
    const res = await db.query('SELECT kv_sync($1) AS "offset"', [topic]);
    assert.ok(BigInt(res.rows[0].offset) > first);
  });

  await check('kv_checksum: the applied offset and the key count', async () => {
    const res = await db.query('SELECT applied_offset, keys FROM kv_checksum($1)', [topic]);
    assert.ok(BigInt(res.rows[0].applied_offset) > first);
    assert.equal(res.rows[0].keys, '4');
  });

  // ==================================================================
  // errors: the SQLSTATE reaches the caller as err.code
  // ==================================================================
  await check('a null key fails with 22004', async () => {
    assert.equal(await sqlstate(db, 'SELECT kv_put($1, $2, $3)', [topic, null, 'v']), '22004');
  });

  await check('an empty key fails with 22023', async () => {
    assert.equal(await sqlstate(db, 'SELECT kv_get_bytea($1, $2)', [topic, Buffer.alloc(0)]), '22023');
  });

  await check('a binary value read as text fails with 22021', async () => {
    await db.query('SELECT kv_put_bytea($1, $2, $3)', [topic, Buffer.from('bin'), Buffer.from([0xff])]);
    assert.equal(await sqlstate(db, 'SELECT kv_get($1, $2)', [topic, 'bin']), '22021');
  });

  await check('an unknown topic fails with 42704', async () => {
    assert.equal(await sqlstate(db, 'SELECT kv_get($1, $2)', [topic + '_absent', 'k']), '42704');
  });

  await check('an invalid topic name fails with 42602', async () => {
    assert.equal(await sqlstate(db, 'SELECT kv_get($1, $2)', ['no spaces', 'k']), '42602');
  });

  // ==================================================================
  // the foreign table: INSERT ... VALUES ($1, $2), WHERE key = $1,
  // key = ANY($1) with an array, COPY through the driver's copy API
  // ==================================================================
  const table = topic + '_table';

  await check('a foreign table over a topic of its own', async () => {
    await db.query('CREATE SERVER IF NOT EXISTS clients_kv FOREIGN DATA WRAPPER kvstore');
    await db.query(`CREATE FOREIGN TABLE ${table} (key text COLLATE "C", value text) ` +
      `SERVER clients_kv OPTIONS (topic '${table}')`);
  });

  await check('INSERT ... VALUES ($1, $2) with strings', async () => {
    const res = await db.query(`INSERT INTO ${table} (key, value) VALUES ($1, $2), ($3, $4)`,
      ['user:1', 'alice', 'user:2', 'bob']);
    assert.equal(res.rowCount, 2);
  });

  await check('WHERE key = $1', async () => {
    const res = await db.query(`SELECT value FROM ${table} WHERE key = $1`, ['user:2']);
    assert.deepEqual(res.rows, [{ value: 'bob' }]);
  });

  await check('WHERE key = ANY($1) with an array', async () => {
    const res = await db.query(`SELECT key, value FROM ${table} WHERE key = ANY($1)`,
      [['user:2', 'user:404', 'user:1']]);
    assert.deepEqual(res.rows, [{ key: 'user:1', value: 'alice' }, { key: 'user:2', value: 'bob' }]);
  });

  await check('COPY through pg-copy-streams', async () => {
    const stream = db.query(copyFrom(`COPY ${table} (key, value) FROM STDIN`));
    const lines = [];
    for (let i = 0; i < 100; i++) lines.push(`copy:${String(i).padStart(3, '0')}\tv${i}\n`);
    await pipeline(Readable.from(lines), stream);
    const res = await db.query(`SELECT count(*), max(key) FROM ${table} WHERE key LIKE $1`, ['copy:%']);
    assert.deepEqual(res.rows, [{ count: '100', max: 'copy:099' }]);
  });

  await check('a NULL key fails with 23502 and writes nothing of the statement', async () => {
    assert.equal(await sqlstate(db, `INSERT INTO ${table} VALUES ($1, $2), ($3, $4)`, ['ok', '1', null, '2']), '23502');
    const res = await db.query(`SELECT count(*) FROM ${table} WHERE key = $1`, ['ok']);
    assert.equal(res.rows[0].count, '0');
    await db.query(`DROP FOREIGN TABLE ${table}`);
  });


  await db.end();
  console.log(`1..${count}`);
  process.exitCode = failed ? 1 : 0;
}

main().catch((err) => {
  console.log(`not ok ${count + 1} - the client stopped`);
  console.log(String(err.stack || err).replace(/^/gm, '# '));
  console.log(`1..${count + 1}`);
  process.exitCode = 1;
});
