// `veranda client …` (the registry of apps) and `veranda keys …` (the
// authorization server's signing keys) through the real binary.
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import fs from 'node:fs/promises';
import path from 'node:path';
import { runCli, makeTempDir, removeDir, initDataDir, requireBinary } from './lib/server.mjs';

before(() => requireBinary());

// `keys list` as rows: { kid, alg, created, status, retires }.
async function listKeys(dir) {
  const r = await runCli(['keys', 'list', '--data', dir]);
  assert.equal(r.code, 0, r.stderr);
  const [header, ...lines] = r.stdout.trim().split('\n');
  assert.match(header, /^KID\s+ALG\s+CREATED\s+STATUS\s+RETIRES$/);
  return lines.map((l) => {
    const [kid, alg, created, status, retires] = l.trim().split(/\s+/);
    return { kid, alg, created, status, retires };
  });
}

// `client list` as rows: { id, kind, status, redirects }.
async function listClients(dir) {
  const r = await runCli(['client', 'list', '--data', dir]);
  assert.equal(r.code, 0, r.stderr);
  const [header, ...lines] = r.stdout.trim().split('\n');
  assert.match(header, /^CLIENT ID\s+KIND\s+STATUS\s+REDIRECT URIS$/);
  return { text: r.stdout, rows: lines.map((l) => {
    const [id, kind, status, ...redirects] = l.trim().split(/\s+/);
    return { id, kind, status, redirects };
  }) };
}

function clientAdd(dir, args) {
  return runCli(['client', 'add', '--data', dir, ...args]);
}

// A public JWK Set file of one new P-384 key (kid "k1"); with 'withPrivate' the private part too.
async function jwksFile(dir, name, withPrivate = false) {
  const { publicKey, privateKey } = crypto.generateKeyPairSync('ec', { namedCurve: 'P-384' });
  const jwk = (withPrivate ? privateKey : publicKey).export({ format: 'jwk' });
  const file = path.join(dir, name);
  await fs.writeFile(file, JSON.stringify({ keys: [{ ...jwk, kid: 'k1', alg: 'ES384', use: 'sig' }] }));
  return file;
}

describe('keys command', () => {
  let dir;

  before(async () => {
    dir = await makeTempDir();
    await initDataDir(dir);
  });
  after(() => removeDir(dir));

  it('init creates one RS256 and one ES256 key, private to the owner, and keeps them', async () => {
    const keys = await listKeys(dir);
    assert.deepEqual(keys.map((k) => [k.alg, k.status, k.retires]), [
      ['RS256', 'signing', '-'],
      ['ES256', 'signing', '-'],
    ]);
    for (const k of keys) {
      assert.match(k.kid, /^[A-Za-z0-9_-]{43}$/, 'kid is an RFC 7638 thumbprint');
      assert.match(k.created, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/);
    }
    const st = await fs.stat(path.join(dir, 'keys'));
    assert.equal(st.mode & 0o777, 0o700);
    const files = await fs.readdir(path.join(dir, 'keys'));
    assert.equal(files.length, 2);
    for (const f of files) {
      assert.match(f, /^(rs256|es256)-\d+\.pem$/);
      assert.equal((await fs.stat(path.join(dir, 'keys', f))).mode & 0o777, 0o600);
    }
    await initDataDir(dir);
    assert.deepEqual(await listKeys(dir), keys, 'a second init keeps the keys');
  });

  it('rotate makes new signing keys and keeps the replaced ones published', async () => {
    const before = await listKeys(dir);
    let r = await runCli(['keys', 'rotate', '--data', dir, '--retire-after', '3600']);
    assert.equal(r.code, 0, r.stderr);
    const m = r.stdout.match(/^new signing keys: RS256 (\S+), ES256 (\S+)$/m);
    assert.ok(m, r.stdout);
    assert.match(r.stdout, /stay published for 3600 s/);
    assert.match(r.stdout, /restart 'veranda serve'/);
    let keys = await listKeys(dir);
    assert.equal(keys.length, 4);
    const signing = keys.filter((k) => k.status === 'signing');
    assert.deepEqual(signing.map((k) => k.kid), [m[1], m[2]]);
    assert.ok(!before.some((k) => k.kid === m[1] || k.kid === m[2]), 'new kids');
    const published = keys.filter((k) => k.status === 'published');
    assert.deepEqual(published.map((k) => k.kid).sort(), before.map((k) => k.kid).sort());
    for (const k of published) {
      const left = Date.parse(k.retires) - Date.now();
      assert.ok(left > 3500e3 && left <= 3600e3, `retires in about an hour: ${k.retires}`);
    }

    // an emergency rotation drops every replaced key at once
    r = await runCli(['keys', 'rotate', '--data', dir, '--retire-after=0']);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /were removed/);
    keys = await listKeys(dir);
    assert.deepEqual(keys.map((k) => k.status), ['signing', 'signing']);
    assert.equal((await fs.readdir(path.join(dir, 'keys'))).length, 2);
  });

  it('refuses bad arguments and a data directory without keys', async () => {
    for (const args of [
      ['keys', 'rotate', '--data', dir, '--retire-after', '-5'],
      ['keys', 'rotate', '--data', dir, '--retire-after', 'soon'],
      ['keys', 'rotate', '--data', dir, '--retire-after'],
      ['keys', 'list', '--data', dir, '--retire-after', '5'],
      ['keys', 'frob', '--data', dir],
      ['keys', '--data', dir],
    ]) {
      const r = await runCli(args);
      assert.equal(r.code, 2, `${args.join(' ')}: ${r.stderr}`);
      assert.match(r.stderr, /^veranda: /);
    }
    const empty = await makeTempDir();
    try {
      const r = await runCli(['keys', 'list', '--data', empty]);
      assert.equal(r.code, 1);
      assert.match(r.stderr, /veranda init/);
    } finally {
      await removeDir(empty);
    }
    const r = await runCli(['keys', '--help']);
    assert.equal(r.code, 0);
    assert.match(r.stdout, /--retire-after SECONDS/);
  });
});

describe('client command', () => {
  let dir;
  const SECRET = 'conf-app-secret-4f9c1e77a2';

  before(async () => {
    dir = await makeTempDir();
    await initDataDir(dir);
  });
  after(() => removeDir(dir));

  it('registers public, symmetric, asymmetric and backend apps and lists them without secrets', async () => {
    let r = await clientAdd(dir, ['--client-id', 'web-app', '--redirect-uri', 'https://app.example/callback',
      '--public', '--origin', 'https://app.example', '--scope', 'launch/patient openid fhirUser patient/*.rs',
      '--launch-url', 'https://app.example/launch', '--name', 'Web App']);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.stdout, "added client 'web-app' (public)\n");

    r = await clientAdd(dir, ['--client-id', 'conf-app', '--redirect-uri', 'https://conf.example/cb',
      '--redirect-uri', 'http://127.0.0.1:8765/cb', '--secret', SECRET]);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.stdout, "added client 'conf-app' (confidential-symmetric)\n");
    assert.ok(!r.stdout.includes(SECRET) && !r.stderr.includes(SECRET));

    const jwks = await jwksFile(dir, 'app-jwks.json');
    r = await clientAdd(dir, ['--client-id', 'asym-app', '--redirect-uri', 'https://asym.example/cb', '--jwks', jwks]);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.stdout, "added client 'asym-app' (confidential-asymmetric)\n");

    // a backend service: keys by URL, no redirect URI
    r = await clientAdd(dir, ['--client-id', 'bulk-export', '--jwks-url', 'https://backend.example/.well-known/jwks.json',
      '--scope', 'system/*.rs']);
    assert.equal(r.code, 0, r.stderr);

    const { text, rows } = await listClients(dir);
    assert.deepEqual(rows, [
      { id: 'asym-app', kind: 'confidential-asymmetric', status: 'enabled', redirects: ['https://asym.example/cb'] },
      { id: 'bulk-export', kind: 'confidential-asymmetric', status: 'enabled', redirects: ['-'] },
      { id: 'conf-app', kind: 'confidential-symmetric', status: 'enabled',
        redirects: ['https://conf.example/cb', 'http://127.0.0.1:8765/cb'] },
      { id: 'web-app', kind: 'public', status: 'enabled', redirects: ['https://app.example/callback'] },
    ]);
    assert.ok(!text.includes(SECRET), 'no secret listed');

    // the secret is not stored in clear anywhere in the database
    for (const f of await fs.readdir(dir)) {
      if (!f.startsWith('veranda.db')) continue;
      const bytes = await fs.readFile(path.join(dir, f));
      assert.ok(!bytes.includes(Buffer.from(SECRET)), `${f} holds the secret`);
    }
  });

  it('refuses what RFC 9700 and the SMART profiles do not allow', async () => {
    const cases = [
      [['--client-id', 'r1', '--redirect-uri', 'http://app.example/cb', '--public'], /must use https/],
      [['--client-id', 'r2', '--redirect-uri', 'https://*.example/cb', '--public'], /wildcard/],
      [['--client-id', 'r3', '--redirect-uri', 'https://app.example/cb#top', '--public'], /fragment/],
      [['--client-id', 'r4', '--redirect-uri', 'app.example/cb', '--public'], /absolute/],
      [['--client-id', 'r5', '--public'], /at least one redirect URI/],
      [['--client-id', 'r6', '--redirect-uri', 'https://a.example/cb', '--secret', 'too-short'], /at least 16 characters/],
      [['--client-id', 'r7', '--redirect-uri', 'https://a.example/cb'], /exactly one of --public, --secret/],
      [['--client-id', 'r8', '--redirect-uri', 'https://a.example/cb', '--public', '--secret', 'long-enough-secret-1'],
        /exactly one of/],
      [['--client-id', 'bad id', '--redirect-uri', 'https://a.example/cb', '--public'], /client_id must be/],
      [['--client-id', 'r9', '--jwks-url', 'http://keys.example/jwks'], /JWKS URL .* must use https/],
      [['--client-id', 'r10', '--redirect-uri', 'https://a.example/cb', '--public', '--origin', 'https://a.example/app'],
        /origin/],
      [['--redirect-uri', 'https://a.example/cb', '--public'], /needs --client-id/],
      [['--client-id', 'r11', '--redirect-uri', 'https://a.example/cb', '--public', '--frobnicate', 'x'], /unknown flag/],
    ];
    for (const [args, msg] of cases) {
      const r = await clientAdd(dir, args);
      assert.equal(r.code, 2, `${args.join(' ')}: ${r.stdout}${r.stderr}`);
      assert.match(r.stderr, msg, args.join(' '));
    }
    // a JWK Set holding a private key
    const priv = await jwksFile(dir, 'private-jwks.json', true);
    let r = await clientAdd(dir, ['--client-id', 'leaky', '--jwks', priv]);
    assert.equal(r.code, 2);
    assert.match(r.stderr, /private key material/);
    r = await clientAdd(dir, ['--client-id', 'nofile', '--jwks', path.join(dir, 'missing.json')]);
    assert.equal(r.code, 1);
    assert.match(r.stderr, /cannot read/);
    // a taken id
    r = await clientAdd(dir, ['--client-id', 'dup', '--redirect-uri', 'https://a.example/cb', '--public']);
    assert.equal(r.code, 0, r.stderr);
    r = await clientAdd(dir, ['--client-id', 'dup', '--redirect-uri', 'https://b.example/cb', '--public']);
    assert.equal(r.code, 1);
    assert.match(r.stderr, /client 'dup' already exists/);
    // an id that is a user's username, and a username that is an app's id: tokens name both in "sub" (RFC 9068 6)
    r = await runCli(['user', 'add', '--data', dir, '--username', 'sam-u', '--role', 'support', '--password-stdin'],
      { input: 'a-long-password-1\n' });
    assert.equal(r.code, 0, r.stderr);
    r = await clientAdd(dir, ['--client-id', 'sam-u', '--redirect-uri', 'https://a.example/cb', '--public']);
    assert.notEqual(r.code, 0);
    assert.match(r.stderr, /client_id 'sam-u' is a user's username/);
    r = await runCli(['user', 'add', '--data', dir, '--username', 'dup', '--role', 'support', '--password-stdin'],
      { input: 'a-long-password-1\n' });
    assert.notEqual(r.code, 0);
    assert.match(r.stderr, /the username 'dup' is an app's client_id/);
    assert.ok(!(await runCli(['user', 'list', '--data', dir])).stdout.split('\n').some((l) => /^dup\s/.test(l)),
      'no such account was made');
    // nothing refused was registered
    const { rows } = await listClients(dir);
    assert.ok(!rows.some((c) => /^r\d+$/.test(c.id) || c.id === 'leaky' || c.id === 'sam-u'), JSON.stringify(rows));
  });

  it('disables, enables and removes apps', async () => {
    let r = await clientAdd(dir, ['--client-id', 'gone-soon', '--redirect-uri', 'http://[::1]/cb', '--public']);
    assert.equal(r.code, 0, r.stderr);
    r = await runCli(['client', 'disable', '--data', dir, '--client-id', 'gone-soon']);
    assert.equal(r.code, 0, r.stderr);
    assert.equal((await listClients(dir)).rows.find((c) => c.id === 'gone-soon').status, 'disabled');
    r = await runCli(['client', 'enable', '--data', dir, '--client-id', 'gone-soon']);
    assert.equal(r.code, 0, r.stderr);
    assert.equal((await listClients(dir)).rows.find((c) => c.id === 'gone-soon').status, 'enabled');
    r = await runCli(['client', 'remove', '--data', dir, '--client-id', 'gone-soon']);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.stdout, "removed client 'gone-soon'\n");
    assert.ok(!(await listClients(dir)).rows.some((c) => c.id === 'gone-soon'));
    r = await runCli(['client', 'remove', '--data', dir, '--client-id', 'gone-soon']);
    assert.equal(r.code, 1);
    assert.match(r.stderr, /no client 'gone-soon'/);

    for (const args of [['client', 'frob', '--data', dir], ['client', '--data', dir],
      ['client', 'list', '--data', dir, '--client-id', 'x'], ['client', 'remove', '--data', dir]]) {
      r = await runCli(args);
      assert.equal(r.code, 2, `${args.join(' ')}: ${r.stderr}`);
    }
    r = await runCli(['client', '--help']);
    assert.equal(r.code, 0);
    assert.match(r.stdout, /--jwks-url URL/);
  });
});
