/** The migration runner against real Postgres and PGlite. */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, rm, unlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { MigrationError, migrate, openDb, type Db } from '../src/index.js';
import { backends, dropSchema, logger, PG_URL, uniqueSchema } from './helpers.js';

async function migrationsDir(files: Record<string, string>): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'sb-migrations-'));
  for (const [name, sql] of Object.entries(files)) await writeFile(join(dir, name), sql);
  return dir;
}

const base = {
  '0001_create_nodes.sql': `CREATE TABLE nodes (id bigserial PRIMARY KEY, name text NOT NULL);
-- a comment; and a second statement
INSERT INTO nodes (name) VALUES ('first');`,
  '0002_add_tags.sql': `ALTER TABLE nodes ADD COLUMN tags text[] NOT NULL DEFAULT '{}';`,
  'README.md': 'not a migration',
};

for (const backend of backends) {
  void describe(`migrate on ${backend.name}`, () => {
    let db: Db;
    const dirs: string[] = [];
    const schemas: string[] = [];
    const fresh = async (files: Record<string, string>) => {
      const dir = await migrationsDir(files);
      dirs.push(dir);
      const schema = uniqueSchema('mig');
      schemas.push(schema);
      return { dir, schema };
    };

    before(async () => {
      db = await backend.open();
    });
    after(async () => {
      for (const s of schemas) await dropSchema(db, s);
      await db.close();
      for (const d of dirs) await rm(d, { recursive: true, force: true });
    });

    void it('applies migrations in order into the schema, with the outbox, then is idempotent', async () => {
      const { dir, schema } = await fresh({ ...base, '0010_later.sql': 'CREATE TABLE later (x int);' });
      const r = await migrate(db, { schema, dir, logger });
      assert.deepEqual(r, {
        applied: ['0001_create_nodes.sql', '0002_add_tags.sql', '0010_later.sql'],
        version: 10,
      });
      const { rows } = await db.query<{ name: string; tags: string[] }>(
        `SELECT name, tags FROM "${schema}".nodes`,
      );
      assert.deepEqual(rows, [{ name: 'first', tags: [] }]);
      const applied = await db.query<{ version: number; name: string; applied_at: Date }>(
        `SELECT version, name, applied_at FROM "${schema}".schema_migrations ORDER BY version`,
      );
      assert.deepEqual(
        applied.rows.map((x) => [x.version, x.name]),
        [
          [1, 'create_nodes'],
          [2, 'add_tags'],
          [10, 'later'],
        ],
      );
      assert.ok(applied.rows[0]!.applied_at instanceof Date);
      // unqualified names went to the target schema, not public
      const where = await db.query<{ table_schema: string }>(
        `SELECT table_schema FROM information_schema.tables WHERE table_name = 'nodes' AND table_schema = $1`,
        [schema],
      );
      assert.equal(where.rowCount, 1);
      assert.equal((await db.query(`SELECT 1 FROM "${schema}".outbox`)).rowCount, 0);
      // search_path is not left changed
      const sp = await db.query<{ search_path: string }>('SHOW search_path');
      assert.doesNotMatch(sp.rows[0]!.search_path, new RegExp(schema));

      const again = await migrate(db, { schema, dir, logger });
      assert.deepEqual(again, { applied: [], version: 10 });
      assert.equal((await db.query(`SELECT 1 FROM "${schema}".nodes`)).rowCount, 1);
    });

    void it('applies only new migrations on a later run', async () => {
      const { dir, schema } = await fresh({ '0001_create_nodes.sql': base['0001_create_nodes.sql'] });
      assert.deepEqual((await migrate(db, { schema, dir, logger })).applied, ['0001_create_nodes.sql']);
      await writeFile(join(dir, '0002_add_tags.sql'), base['0002_add_tags.sql']);
      assert.deepEqual((await migrate(db, { schema, dir, logger })).applied, ['0002_add_tags.sql']);
    });

    void it('refuses to start when an applied migration changed, naming the file', async () => {
      const { dir, schema } = await fresh(base);
      await migrate(db, { schema, dir, logger });
      await writeFile(join(dir, '0001_create_nodes.sql'), base['0001_create_nodes.sql'] + '\n-- edited');
      await writeFile(join(dir, '0003_more.sql'), 'CREATE TABLE more (x int);');
      await assert.rejects(migrate(db, { schema, dir, logger }), (err: unknown) => {
        assert.ok(err instanceof MigrationError);
        assert.equal(err.code, 'migration_conflict');
        assert.match(err.message, /0001_create_nodes\.sql/);
        assert.match(err.message + (err.hint ?? ''), /forward-only/);
        return true;
      });
      assert.equal(
        (await db.query(`SELECT 1 FROM "${schema}".schema_migrations WHERE version = 3`)).rowCount,
        0,
      );
      // CRLF line endings are not a change
      await writeFile(
        join(dir, '0001_create_nodes.sql'),
        base['0001_create_nodes.sql'].replaceAll('\n', '\r\n'),
      );
      await unlink(join(dir, '0003_more.sql'));
      assert.deepEqual((await migrate(db, { schema, dir, logger })).applied, []);
    });

    void it('refuses a missing applied file and a new file older than the newest applied', async () => {
      const { dir, schema } = await fresh({ '0001_a.sql': 'SELECT 1;', '0003_c.sql': 'SELECT 3;' });
      await migrate(db, { schema, dir, logger });
      await writeFile(join(dir, '0002_b.sql'), 'SELECT 2;');
      await assert.rejects(migrate(db, { schema, dir, logger }), /0002_b\.sql is older than 0003_c\.sql/);
      await unlink(join(dir, '0002_b.sql'));
      await unlink(join(dir, '0001_a.sql'));
      await assert.rejects(
        migrate(db, { schema, dir, logger }),
        /0001_a\.sql was applied .* file is missing/,
      );
    });

    void it('refuses badly named files', async () => {
      const { dir, schema } = await fresh({ '1_bad.sql': 'SELECT 1;' });
      await assert.rejects(
        migrate(db, { schema, dir, logger }),
        /1_bad\.sql is not a valid migration file name/,
      );
    });

    void it('rolls back a failing migration alone and names it', async () => {
      const { dir, schema } = await fresh({
        '0001_ok.sql': 'CREATE TABLE ok (x int);',
        '0002_broken.sql': 'CREATE TABLE half (x int);\nSELECT * FROM no_such_table;',
      });
      await assert.rejects(migrate(db, { schema, dir, logger }), (err: unknown) => {
        assert.ok(err instanceof MigrationError);
        assert.equal(err.code, 'migration_failed');
        assert.match(err.message, /0002_broken\.sql/);
        assert.match(err.message, /no_such_table/);
        assert.equal(err.details?.sqlState, '42P01');
        return true;
      });
      const tables = await db.query<{ table_name: string }>(
        `SELECT table_name FROM information_schema.tables WHERE table_schema = $1 ORDER BY table_name`,
        [schema],
      );
      assert.deepEqual(
        tables.rows.map((r) => r.table_name),
        ['ok', 'outbox', 'outbox_origin', 'schema_migrations'],
      );
    });

    void it('serialises concurrent migrators: every migration runs exactly once', async () => {
      const files: Record<string, string> = {};
      for (let i = 1; i <= 6; i++) {
        // not idempotent on purpose: running one twice fails
        files[`000${i}_step.sql`] = `CREATE TABLE step${i} (x int); INSERT INTO log VALUES (${i});`;
      }
      files['0000_log.sql'] = 'CREATE TABLE log (v int);';
      const { dir, schema } = await fresh(files);
      const dbs =
        backend.name === 'postgres'
          ? [db, ...(await Promise.all([1, 2, 3].map(() => openDb({ url: PG_URL, logger }))))]
          : [db, db, db, db];
      try {
        const results = await Promise.all(dbs.map((d) => migrate(d, { schema, dir, logger })));
        const all = results.flatMap((r) => r.applied).sort();
        assert.deepEqual(all, Object.keys(files).sort());
        for (const r of results) assert.equal(r.version, 6);
        const { rows } = await db.query<{ v: number }>(`SELECT v FROM "${schema}".log ORDER BY v`);
        assert.deepEqual(
          rows.map((r) => r.v),
          [1, 2, 3, 4, 5, 6],
        );
      } finally {
        for (const d of new Set(dbs)) if (d !== db) await d.close();
      }
    });

    void it('can skip the outbox table', async () => {
      const { dir, schema } = await fresh({ '0001_a.sql': 'SELECT 1;' });
      await migrate(db, { schema, dir, logger, outbox: false });
      const t = await db.query(
        `SELECT 1 FROM information_schema.tables WHERE table_schema = $1 AND table_name = 'outbox'`,
        [schema],
      );
      assert.equal(t.rowCount, 0);
    });
  });
}
