// The command line: help, usage errors, data directory problems, port in
// use, a database from a newer schema, configuration precedence and the
// loopback-only rule.
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import fsp from 'node:fs/promises';
import net from 'node:net';
import path from 'node:path';
import {
  runCli,
  startServer,
  freePort,
  makeTempDir,
  removeDir,
  initDataDir,
  requireBinary,
} from './lib/server.mjs';

const oneLine = (s) => s.trim().split('\n').length === 1;
const haveSqlite3 = spawnSync('sqlite3', ['-version']).status === 0;

before(() => requireBinary());

describe('help', () => {
  it('veranda --help exits 0 and names every command', async () => {
    const r = await runCli(['--help']);
    assert.equal(r.code, 0, r.stderr);
    for (const cmd of ['init', 'serve', 'seed', 'import', 'version']) {
      assert.match(r.stdout, new RegExp(`\\b${cmd}\\b`), `--help names '${cmd}'`);
    }
  });

  it('veranda without a command exits 2 with the usage on stderr', async () => {
    const r = await runCli([]);
    assert.equal(r.code, 2);
    assert.match(r.stderr, /usage/i);
  });

  const flags = {
    init: ['--data'],
    serve: ['--data', '--listen', '--base-url', '--page-size', '--fhir-body-max', '--allow-remote', '--config'],
    seed: ['--data', '--patients', '--seed', '--demo-password'],
    import: ['--data'],
    version: [],
  };
  for (const [cmd, names] of Object.entries(flags)) {
    it(`veranda ${cmd} --help exits 0 and names its flags`, async () => {
      const r = await runCli([cmd, '--help']);
      assert.equal(r.code, 0, r.stderr);
      assert.match(r.stdout, /usage/i);
      assert.match(r.stdout, new RegExp(`veranda ${cmd}`));
      for (const f of names) assert.ok(r.stdout.includes(f), `'${cmd} --help' names ${f}:\n${r.stdout}`);
    });
  }

  it('veranda version prints the version and exits 0', async () => {
    const r = await runCli(['version']);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /^veranda \d+\.\d+\.\d+/);
  });
});

describe('usage errors', () => {
  it('an unknown command exits 2 with a one-line error', async () => {
    const r = await runCli(['frobnicate']);
    assert.equal(r.code, 2);
    assert.ok(oneLine(r.stderr), `one line: ${JSON.stringify(r.stderr)}`);
    assert.match(r.stderr, /frobnicate/);
    assert.equal(r.stdout, '');
  });

  it('an unknown flag exits 2 with a one-line error', async () => {
    for (const cmd of ['init', 'serve', 'seed', 'import']) {
      const r = await runCli([cmd, '--no-such-flag', 'x']);
      assert.equal(r.code, 2, `${cmd}: ${r.stderr}`);
      assert.ok(oneLine(r.stderr), `${cmd}: one line: ${JSON.stringify(r.stderr)}`);
      assert.match(r.stderr, /no-such-flag/);
    }
  });

  it('missing or extra arguments exit 2 with a one-line error', async () => {
    const dir = await makeTempDir();
    try {
      for (const args of [
        ['import', '--data', dir],
        ['init', '--data', dir, 'extra'],
        ['seed', '--data', dir, '--patients'],
        ['seed', '--data', dir, '--demo-password', 'short'],
      ]) {
        const r = await runCli(args);
        assert.equal(r.code, 2, `${args.join(' ')}: ${r.stderr}`);
        assert.ok(oneLine(r.stderr), JSON.stringify(r.stderr));
      }
    } finally {
      await removeDir(dir);
    }
  });

  it('a malformed --listen exits 2 with a message about the address', async () => {
    const dir = await makeTempDir();
    try {
      await initDataDir(dir);
      const problems = [];
      for (const listen of ['nonsense', '127.0.0.1:99999', '127.0.0.1:', 'localhost:abc']) {
        const r = await runCli(['serve', '--data', dir, '--listen', listen], { timeout: 10000 });
        assert.equal(r.timedOut, false, `${listen}: serve must exit`);
        assert.ok(oneLine(r.stderr), JSON.stringify(r.stderr));
        if (!/malformed|invalid|not a valid/i.test(r.stderr)) problems.push(`${listen}: message does not say the address is malformed: ${r.stderr.trim()}`);
        if (r.code !== 2) problems.push(`${listen}: exit ${r.code}, want 2 (a bad flag value is a usage error)`);
      }
      assert.deepEqual(problems, []);
    } finally {
      await removeDir(dir);
    }
  });

  it('a bad flag value exits 2 with a one-line error', async () => {
    const dir = await makeTempDir();
    try {
      const r = await runCli(['serve', '--data', dir, '--page-size', 'lots']);
      assert.equal(r.code, 2, r.stderr);
      assert.ok(oneLine(r.stderr), JSON.stringify(r.stderr));
      assert.match(r.stderr, /page_size|page-size/);
      const s = await runCli(['seed', '--data', dir, '--patients', '-1']);
      assert.equal(s.code, 2, s.stderr);
      assert.ok(oneLine(s.stderr), JSON.stringify(s.stderr));
    } finally {
      await removeDir(dir);
    }
  });
});

describe('data directory', () => {
  let tmp;
  before(async () => {
    tmp = await makeTempDir();
  });
  after(async () => removeDir(tmp));

  it('serve on a missing data directory fails with a clear message', async () => {
    const dir = path.join(tmp, 'missing');
    const r = await runCli(['serve', '--data', dir, '--listen', `127.0.0.1:${await freePort()}`], { timeout: 10000 });
    assert.notEqual(r.code, 0);
    assert.equal(r.timedOut, false);
    assert.ok(r.stderr.includes(dir), `names the directory: ${r.stderr}`);
    assert.match(r.stderr, /does not exist|init/);
  });

  it('serve on an initialized-less directory (no database) fails and says to run init', async () => {
    const dir = path.join(tmp, 'empty');
    await fsp.mkdir(dir);
    const r = await runCli(['serve', '--data', dir, '--listen', `127.0.0.1:${await freePort()}`], { timeout: 10000 });
    assert.notEqual(r.code, 0);
    assert.match(r.stderr, /init/);
  });

  it('init into an unwritable location fails with a clear message', async () => {
    // Tests may run as root, where chmod does not stop writes: a path below a
    // regular file can never be created.
    const file = path.join(tmp, 'plainfile');
    await fsp.writeFile(file, 'not a directory');
    const dir = path.join(file, 'sub');
    const r = await runCli(['init', '--data', dir]);
    assert.notEqual(r.code, 0);
    assert.ok(oneLine(r.stderr), JSON.stringify(r.stderr));
    assert.ok(r.stderr.includes(dir), `names the directory: ${r.stderr}`);
    const s = await runCli(['serve', '--data', dir, '--listen', `127.0.0.1:${await freePort()}`], { timeout: 10000 });
    assert.notEqual(s.code, 0);
    assert.ok(s.stderr.includes(dir), s.stderr);
  });

  it('a data directory that is a regular file is refused', async () => {
    const file = path.join(tmp, 'afile');
    await fsp.writeFile(file, 'x');
    const r = await runCli(['init', '--data', file]);
    assert.notEqual(r.code, 0);
    assert.match(r.stderr, /not a directory/);
  });

  it(
    'init into a read-only directory (chmod 0500) fails',
    { skip: process.getuid && process.getuid() === 0 ? 'running as root: permissions do not stop root' : false },
    async () => {
      const ro = path.join(tmp, 'ro');
      await fsp.mkdir(ro, { mode: 0o500 });
      const r = await runCli(['init', '--data', ro]);
      await fsp.chmod(ro, 0o700);
      assert.notEqual(r.code, 0);
      assert.match(r.stderr, /writable|permission/i);
    },
  );

  it('a database from a newer schema version is refused', { skip: !haveSqlite3 && 'sqlite3 command not installed' }, async () => {
    const dir = path.join(tmp, 'newer');
    await initDataDir(dir);
    const db = path.join(dir, 'veranda.db');
    const set = spawnSync('sqlite3', [db, 'PRAGMA user_version=999;'], { encoding: 'utf8' });
    assert.equal(set.status, 0, set.stderr);
    const r = await runCli(['serve', '--data', dir, '--listen', `127.0.0.1:${await freePort()}`], { timeout: 10000 });
    assert.notEqual(r.code, 0);
    assert.equal(r.timedOut, false, 'serve must not start');
    assert.match(r.stderr, /newer/);
    const i = await runCli(['init', '--data', dir]);
    assert.notEqual(i.code, 0, 'init must not touch a newer database');
    assert.match(i.stderr, /newer/);
    const v = spawnSync('sqlite3', [db, 'PRAGMA user_version;'], { encoding: 'utf8' });
    assert.equal(v.stdout.trim(), '999', 'the schema version is left alone');
  });

  it('init twice is fine (migrations are idempotent)', async () => {
    const dir = path.join(tmp, 'twice');
    await initDataDir(dir);
    const r = await runCli(['init', '--data', dir]);
    assert.equal(r.code, 0, r.stderr);
  });
});

describe('serve start-up refusals', () => {
  let dir;
  before(async () => {
    dir = await makeTempDir();
    await initDataDir(dir);
  });
  after(async () => removeDir(dir));

  it('a port in use fails with "already in use"', async () => {
    const blocker = net.createServer();
    await new Promise((res) => blocker.listen(0, '127.0.0.1', res));
    const { port } = blocker.address();
    try {
      const r = await runCli(['serve', '--data', dir, '--listen', `127.0.0.1:${port}`], { timeout: 10000 });
      assert.equal(r.timedOut, false, 'serve must exit, not hang');
      assert.notEqual(r.code, 0);
      assert.match(r.stderr, /already in use/);
      assert.ok(r.stderr.includes(String(port)), r.stderr);
    } finally {
      await new Promise((res) => blocker.close(res));
    }
  });

  it('a non-loopback --listen without --allow-remote is refused', async () => {
    const port = await freePort();
    const r = await runCli(['serve', '--data', dir, '--listen', `0.0.0.0:${port}`], { timeout: 10000 });
    assert.equal(r.timedOut, false, 'serve must exit, not listen');
    assert.notEqual(r.code, 0);
    assert.ok(oneLine(r.stderr), JSON.stringify(r.stderr));
    assert.match(r.stderr, /0\.0\.0\.0/);
    assert.match(r.stderr, /loopback|allow-remote|allow_remote/);
  });
});

describe('--base-url', () => {
  it('is the base of Location, history links and the CapabilityStatement; a trailing slash is dropped', async () => {
    const srv = await startServer({ args: ['--base-url', 'https://ehr.example.test/'] });
    try {
      const c = await srv.fetch('/fhir/Patient', {
        method: 'POST',
        headers: { 'content-type': 'application/fhir+json' },
        body: JSON.stringify({ resourceType: 'Patient' }),
      });
      assert.equal(c.status, 201);
      assert.equal(c.headers.get('location'), `https://ehr.example.test/fhir/Patient/${c.json.id}/_history/1`);
      const m = await srv.fetch('/fhir/metadata');
      assert.equal(m.json.implementation.url, 'https://ehr.example.test/fhir');
      const h = await srv.fetch('/fhir/_history');
      for (const l of h.json.link) assert.match(l.url, /^https:\/\/ehr\.example\.test\/fhir\/_history\?/);
      assert.equal(h.json.entry[0].fullUrl, `https://ehr.example.test/fhir/Patient/${c.json.id}`);
    } finally {
      await srv.stop();
    }
  });
});

describe('configuration precedence: file < environment < flag', () => {
  let dir;
  const versions = 9;
  before(async () => {
    dir = await makeTempDir();
    await initDataDir(dir);
    await fsp.writeFile(path.join(dir, 'veranda.conf'), '# test configuration\npage_size = 3\n');
    // Give one resource several versions so that history paging shows page_size.
    const srv = await startServer({ dataDir: dir });
    try {
      for (let i = 0; i < versions; i++) {
        const r = await srv.fhirFetch('/Patient/conf', {
          method: 'PUT',
          headers: { 'content-type': 'application/fhir+json' },
          body: JSON.stringify({ resourceType: 'Patient', id: 'conf', gender: i % 2 ? 'male' : 'female' }),
        });
        assert.ok(r.status === 200 || r.status === 201, `PUT ${r.status} ${r.text}`);
      }
    } finally {
      await srv.stop();
    }
  });
  after(async () => removeDir(dir));

  async function pageLen(opts) {
    const srv = await startServer({ dataDir: dir, ...opts });
    try {
      const r = await srv.fhirFetch('/Patient/conf/_history');
      assert.equal(r.status, 200, r.text);
      const next = (r.json.link || []).find((l) => l.relation === 'next');
      assert.ok(next, 'there is a next page');
      return { n: r.json.entry.length, next: next.url };
    } finally {
      await srv.stop();
    }
  }

  it('the configuration file sets page_size', async () => {
    const { n, next } = await pageLen({});
    assert.equal(n, 3);
    assert.match(next, /_count=3\b/);
  });

  it('VERANDA_PAGE_SIZE overrides the file', async () => {
    const { n } = await pageLen({ env: { VERANDA_PAGE_SIZE: '4' } });
    assert.equal(n, 4);
  });

  it('--page-size overrides the environment and the file', async () => {
    const { n } = await pageLen({ env: { VERANDA_PAGE_SIZE: '4' }, args: ['--page-size', '5'] });
    assert.equal(n, 5);
  });

  it('a bad value in the configuration file is a clear error', async () => {
    const bad = await makeTempDir();
    try {
      await initDataDir(bad);
      await fsp.writeFile(path.join(bad, 'veranda.conf'), 'page_size = many\n');
      const r = await runCli(['serve', '--data', bad, '--listen', `127.0.0.1:${await freePort()}`], { timeout: 10000 });
      assert.notEqual(r.code, 0);
      assert.equal(r.timedOut, false);
      assert.match(r.stderr, /page_size/);
    } finally {
      await removeDir(bad);
    }
  });
});
