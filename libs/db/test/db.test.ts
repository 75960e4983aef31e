/** The Db contract against real Postgres and PGlite: queries, value mapping, transactions, retries. */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { SwitchboardError } from '@switchboard/common';
import { openDb, PostgresDb, sqlState, type Db } from '../src/index.js';
import { backends, dropSchema, logger, PG_URL, sleep, uniqueSchema } from './helpers.js';

for (const backend of backends) {
  void describe(`Db on ${backend.name}`, () => {
    let db: Db;
    const schema = uniqueSchema('db');
    const s = `"${schema}"`;

    before(async () => {
      db = await backend.open();
      await db.query(`CREATE SCHEMA ${s}; CREATE TABLE ${s}.kv (k text PRIMARY KEY, v int8 NOT NULL)`);
    });
    after(async () => {
      await dropSchema(db, schema);
      await db.close();
    });

    void it('reports its kind', () => assert.equal(db.kind, backend.name));

    void it('maps values the same way on both backends', async () => {
      const { rows } = await db.query<Record<string, unknown>>(
        `SELECT 42::int8 AS i8, 7::int4 AS i4, 9007199254740991::int8 AS maxsafe, ARRAY[1,2,NULL]::int8[] AS i8s,
                '{"a":[1,{"b":null}]}'::jsonb AS jb, '[1,2]'::json AS js, 1.50::numeric AS num,
                '2024-02-29'::date AS d, '2024-01-02 03:04:05.5'::timestamp AS ts,
                '2024-01-02 03:04:05+02'::timestamptz AS tz, '\\x0102ff'::bytea AS b, true AS t, NULL::text AS n`,
      );
      const r = rows[0]!;
      assert.equal(r.i8, 42);
      assert.equal(r.i4, 7);
      assert.equal(r.maxsafe, Number.MAX_SAFE_INTEGER);
      assert.deepEqual(r.i8s, [1, 2, null]);
      assert.deepEqual(r.jb, { a: [1, { b: null }] });
      assert.deepEqual(r.js, [1, 2]);
      assert.equal(r.num, '1.50');
      assert.equal(r.d, '2024-02-29');
      assert.deepEqual(r.ts, new Date('2024-01-02T03:04:05.500Z'));
      assert.deepEqual(r.tz, new Date('2024-01-02T01:04:05Z'));
      assert.ok(r.b instanceof Uint8Array);
      assert.deepEqual([...r.b], [1, 2, 255]);
      assert.equal(r.t, true);
      assert.equal(r.n, null);
    });

    void it('refuses int8 values a JS number cannot hold, and the Db stays usable', async () => {
      await assert.rejects(db.query('SELECT 9007199254740993::int8 AS x'), (err: unknown) => {
        assert.ok(err instanceof SwitchboardError);
        assert.equal(err.code, 'int8_overflow');
        return true;
      });
      const { rows } = await db.query<{ x: string }>('SELECT 9007199254740993::int8::text AS x');
      assert.equal(rows[0]!.x, '9007199254740993');
      await db
        .transaction(async (tx) => {
          await assert.rejects(tx.query('SELECT (-9007199254740993)::int8 AS x'));
        })
        .catch(() => undefined);
      assert.equal((await db.query<{ one: number }>('SELECT 1 AS one')).rows[0]!.one, 1);
    });

    void it('binds parameters: json text, int8 as number or string, arrays, dates', async () => {
      const { rows } = await db.query<Record<string, unknown>>(
        'SELECT $1::text::jsonb AS j, $2::int8 AS a, $3::int8 AS b, 2 = ANY($4::int8[]) AS has, $5::timestamptz AS at',
        [JSON.stringify([{ x: 1 }]), 5, '6', [1, 2, 3], new Date('2020-01-01T00:00:00Z')],
      );
      assert.deepEqual(rows[0], {
        j: [{ x: 1 }],
        a: 5,
        b: 6,
        has: true,
        at: new Date('2020-01-01T00:00:00Z'),
      });
    });

    void it('runs several statements when there are no parameters, returning the last result', async () => {
      const r = await db.query<{ n: number }>(`SELECT 1 AS n; SELECT 2 AS n`);
      assert.deepEqual(r.rows, [{ n: 2 }]);
    });

    void it('reports rowCount for DML and SELECT', async () => {
      const ins = await db.query(`INSERT INTO ${s}.kv VALUES ('rc1', 1), ('rc2', 2)`);
      assert.equal(ins.rowCount, 2);
      const upd = await db.query(`UPDATE ${s}.kv SET v = v + 1 WHERE k LIKE $1`, ['rc%']);
      assert.equal(upd.rowCount, 2);
      const sel = await db.query(`SELECT * FROM ${s}.kv WHERE k LIKE $1`, ['rc%']);
      assert.equal(sel.rowCount, 2);
      const none = await db.query(`DELETE FROM ${s}.kv WHERE k = $1`, ['nope']);
      assert.equal(none.rowCount, 0);
    });

    void it('commits a transaction and returns its result', async () => {
      const r = await db.transaction(async (tx) => {
        await tx.query(`INSERT INTO ${s}.kv VALUES ($1, $2)`, ['c1', 1]);
        return (await tx.query<{ v: number }>(`SELECT v FROM ${s}.kv WHERE k = $1`, ['c1'])).rows[0]!.v;
      });
      assert.equal(r, 1);
      assert.equal((await db.query(`SELECT 1 FROM ${s}.kv WHERE k = 'c1'`)).rowCount, 1);
    });

    void it('rolls back when the callback throws, and rethrows the error', async () => {
      const boom = new Error('boom');
      await assert.rejects(
        db.transaction(async (tx) => {
          await tx.query(`INSERT INTO ${s}.kv VALUES ($1, $2)`, ['rb1', 1]);
          throw boom;
        }),
        (err) => err === boom,
      );
      await assert.rejects(
        db.transaction(async (tx) => {
          await tx.query(`INSERT INTO ${s}.kv VALUES ($1, $2)`, ['rb2', 1]);
          await tx.query(`INSERT INTO ${s}.kv VALUES ($1, $2)`, ['rb2', 1]);
        }),
        (err) => sqlState(err) === '23505',
      );
      assert.equal((await db.query(`SELECT 1 FROM ${s}.kv WHERE k IN ('rb1', 'rb2')`)).rowCount, 0);
    });

    void it('refuses the Db inside its own transaction callback, and tx after the end', async () => {
      let kept: { query: (sql: string) => Promise<unknown> } | undefined;
      await assert.rejects(
        db.transaction(async (tx) => {
          kept = tx;
          await db.query('SELECT 1');
        }),
        /inside a transaction callback/,
      );
      await assert.rejects(
        db.transaction(async () => db.transaction(async () => 1)),
        /inside a transaction callback/,
      );
      await assert.rejects(kept!.query('SELECT 1'), /already finished/);
    });

    void it('never runs a query inside another caller’s transaction', async () => {
      await db.query(`DELETE FROM ${s}.kv WHERE k LIKE 'iso%'`);
      const seen: number[] = [];
      const tx = db.transaction(async (t) => {
        await t.query(`INSERT INTO ${s}.kv VALUES ('iso1', 1)`);
        await sleep(60);
        await t.query(`INSERT INTO ${s}.kv VALUES ('iso2', 2)`);
        throw new Error('abort');
      });
      await sleep(20);
      const probes = [0, 1, 2].map(async () => {
        const { rows } = await db.query<{ n: number }>(
          `SELECT count(*)::int AS n FROM ${s}.kv WHERE k LIKE 'iso%'`,
        );
        seen.push(rows[0]!.n);
      });
      await assert.rejects(tx, /abort/);
      await Promise.all(probes);
      assert.deepEqual(seen, [0, 0, 0], 'no query saw uncommitted rows or joined the transaction');
    });

    void it('retries serializable transactions on serialization failures', async () => {
      await db.query(`INSERT INTO ${s}.kv VALUES ('counter', 0)`);
      let attempts = 0;
      const workers = Array.from({ length: 8 }, () =>
        db.transaction(
          async (tx) => {
            attempts++;
            const { rows } = await tx.query<{ v: number }>(`SELECT v FROM ${s}.kv WHERE k = 'counter'`);
            await sleep(20);
            await tx.query(`UPDATE ${s}.kv SET v = $1 WHERE k = 'counter'`, [rows[0]!.v + 1]);
          },
          { isolation: 'serializable', retries: 50 },
        ),
      );
      await Promise.all(workers);
      const { rows } = await db.query<{ v: number }>(`SELECT v FROM ${s}.kv WHERE k = 'counter'`);
      assert.equal(rows[0]!.v, 8);
      if (backend.name === 'postgres')
        assert.ok(attempts > 8, `conflicts were retried (attempts: ${attempts})`);
      else assert.equal(attempts, 8, 'PGlite runs transactions one at a time');
    });

    if (backend.name === 'postgres') {
      void it('gives up after `retries` and surfaces 40001', async () => {
        await db.query(`INSERT INTO ${s}.kv VALUES ('c2', 0)`);
        const results = await Promise.allSettled(
          Array.from({ length: 4 }, () =>
            db.transaction(
              async (tx) => {
                const { rows } = await tx.query<{ v: number }>(`SELECT v FROM ${s}.kv WHERE k = 'c2'`);
                await sleep(30);
                await tx.query(`UPDATE ${s}.kv SET v = $1 WHERE k = 'c2'`, [rows[0]!.v + 1]);
              },
              { isolation: 'serializable', retries: 0 },
            ),
          ),
        );
        const failed = results.filter((r) => r.status === 'rejected');
        assert.ok(failed.length >= 1);
        for (const f of failed) assert.equal(sqlState(f.reason), '40001');
      });

      void it('retries deadlocks (40P01) until both transactions commit', async () => {
        await db.query(`INSERT INTO ${s}.kv VALUES ('dA', 0), ('dB', 0)`);
        let attempts = 0;
        const lockBoth = (first: string, second: string) =>
          db.transaction(async (tx) => {
            attempts++;
            await tx.query(`UPDATE ${s}.kv SET v = v + 1 WHERE k = $1`, [first]);
            await sleep(50);
            await tx.query(`UPDATE ${s}.kv SET v = v + 1 WHERE k = $1`, [second]);
          });
        await Promise.all([lockBoth('dA', 'dB'), lockBoth('dB', 'dA')]);
        const { rows } = await db.query<{ v: number }>(
          `SELECT v FROM ${s}.kv WHERE k IN ('dA', 'dB') ORDER BY k`,
        );
        assert.deepEqual(
          rows.map((r) => r.v),
          [2, 2],
        );
        assert.ok(attempts >= 3, 'one side was retried');
      });

      void it('always gives pooled clients back', async () => {
        const pg = db as PostgresDb;
        await Promise.allSettled(
          Array.from({ length: 30 }, (_, i) =>
            db.transaction(async (tx) => {
              await tx.query('SELECT 1');
              if (i % 2) throw new Error('fail');
              await tx.query('SELECT nonsense_column');
            }),
          ),
        );
        assert.equal((await db.query<{ one: number }>('SELECT 1 AS one')).rows[0]!.one, 1);
        const stats = pg.poolStats();
        assert.equal(stats.waiting, 0);
        assert.equal(stats.idle, stats.total, 'every client is back in the pool');
      });
    }
  });
}

void describe('openDb', () => {
  void it('keeps PGlite data in dataDir across restarts', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'sb-pglite-'));
    try {
      const a = await openDb({ dataDir: join(dir, 'data'), logger });
      await a.query('CREATE TABLE t (x int8); INSERT INTO t VALUES (7)');
      await a.close();
      const b = await openDb({ dataDir: join(dir, 'data'), logger });
      assert.deepEqual((await b.query('SELECT x FROM t')).rows, [{ x: 7 }]);
      await b.close();
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  void it('fails to connect with a message that names the server (without the password)', async () => {
    const url = new URL(PG_URL);
    url.port = '1';
    url.password = 'hunter2';
    await assert.rejects(openDb({ url: url.toString(), logger }), (err: unknown) => {
      assert.ok(err instanceof SwitchboardError);
      assert.equal(err.code, 'unavailable');
      assert.match(err.message, /127\.0\.0\.1:1/);
      assert.doesNotMatch(err.message, /hunter2/);
      assert.ok(err.hint);
      return true;
    });
  });
});
