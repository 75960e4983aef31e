import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import {
  MigrationError,
  buildMigrationList,
  checksumSql,
  parseMigrationFileName,
  planMigrations,
} from './migration-files.js';

const list = (...names: string[]) =>
  buildMigrationList(
    'dir',
    names.map((file) => ({ file, sql: `-- ${file}` })),
  );

void describe('migration file names', () => {
  void it('parses NNNN_name.sql', () => {
    assert.deepEqual(parseMigrationFileName('0001_create_nodes.sql'), { version: 1, name: 'create_nodes' });
    assert.deepEqual(parseMigrationFileName('0042_add-tags.sql'), { version: 42, name: 'add-tags' });
    for (const bad of ['1_x.sql', '0001.sql', '0001_X.sql', '0001_x.SQL', '0001_x.sql.bak', 'x_0001.sql']) {
      assert.equal(parseMigrationFileName(bad), undefined, bad);
    }
  });
  void it('sorts by version and refuses bad names and duplicate versions', () => {
    assert.deepEqual(
      list('0010_c.sql', '0002_b.sql', '0001_a.sql').map((m) => m.version),
      [1, 2, 10],
    );
    assert.throws(() => list('0001_a.sql', 'oops.sql'), /oops\.sql is not a valid migration file name/);
    assert.throws(
      () => list('0001_a.sql', '0001_b.sql'),
      /0001_a\.sql and 0001_b\.sql have the same version/,
    );
  });
  void it('checksums ignore CRLF versus LF', () => {
    assert.equal(checksumSql('a;\r\nb;\r\n'), checksumSql('a;\nb;\n'));
    assert.notEqual(checksumSql('a;'), checksumSql('a; '));
  });
});

void describe('planMigrations', () => {
  const files = list('0001_a.sql', '0002_b.sql', '0003_c.sql');
  const applied = (n: number) =>
    files.slice(0, n).map(({ version, name, checksum }) => ({ version, name, checksum }));

  void it('returns what is pending, in order', () => {
    assert.deepEqual(
      planMigrations('s', files, []).map((m) => m.file),
      ['0001_a.sql', '0002_b.sql', '0003_c.sql'],
    );
    assert.deepEqual(
      planMigrations('s', files, applied(2)).map((m) => m.file),
      ['0003_c.sql'],
    );
    assert.deepEqual(planMigrations('s', files, applied(3)), []);
  });
  void it('refuses a changed applied migration, naming it', () => {
    const changed = applied(2).map((a) => (a.version === 2 ? { ...a, checksum: 'f'.repeat(64) } : a));
    assert.throws(
      () => planMigrations('keyreg', files, changed),
      (err: unknown) =>
        err instanceof MigrationError &&
        err.code === 'migration_conflict' &&
        /0002_b\.sql was changed after it was applied to schema keyreg/.test(err.message) &&
        /forward-only/.test(err.hint ?? ''),
    );
  });
  void it('refuses a missing applied file and a pending file older than the newest applied', () => {
    assert.throws(
      () => planMigrations('s', files.slice(1), applied(2)),
      /0001_a\.sql was applied .* missing/,
    );
    const withGap = [files[0]!, files[2]!].map(({ version, name, checksum }) => ({
      version,
      name,
      checksum,
    }));
    assert.throws(() => planMigrations('s', files, withGap), /0002_b\.sql is older than 0003_c\.sql/);
  });
});
