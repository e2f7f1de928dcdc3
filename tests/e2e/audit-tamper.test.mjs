// Attacks on the audit log's tamper evidence by someone who can write the
// data directory but holds neither the signing key's private half nor the
// checkpoints and public keys already copied off the host: a log made by a
// real server and the command line, then changed directly in SQLite (two
// changes at once, the command line's stream, the whole stream re-signed
// with a key of the attacker's), receipts forged or replayed, and the proof
// endpoints asked for sizes that do not exist.
//
// Tampering uses the sqlite3 command-line shell; those tests are skipped,
// saying so, when it is missing.
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import crypto from 'node:crypto';
import fsp from 'node:fs/promises';
import path from 'node:path';
import * as jose from 'jose';
import { makeTempDir, removeDir, initDataDir, seedDataDir, startServer, runCli, requireBinary, sleep } from './lib/server.mjs';

const SQLITE3 = spawnSync('sqlite3', ['-version']).status === 0 ? 'sqlite3' : null;
const NO_SQLITE = SQLITE3 ? false : 'the sqlite3 command-line shell is not installed';

const sha256 = (...parts) => crypto.createHash('sha256').update(Buffer.concat(parts)).digest();
const leafHash = (record) => sha256(Buffer.from([0]), Buffer.from(record, 'utf8'));
const nodeHash = (l, r) => sha256(Buffer.from([1]), l, r);
const q = (s) => `'${s.replace(/'/g, "''")}'`;
const hex = (b) => `X'${b.toString('hex')}'`;

function sql(db, statements) {
  const r = spawnSync(SQLITE3, [db], { input: statements, encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`sqlite3 failed: ${r.stderr}`);
  return r.stdout;
}

/* RFC 9162 MTH over leaf hashes. */
function mth(leaves) {
  if (leaves.length === 0) return sha256(Buffer.alloc(0));
  if (leaves.length === 1) return leaves[0];
  let k = 1;
  while (k * 2 < leaves.length) k *= 2;
  return nodeHash(mth(leaves.slice(0, k)), mth(leaves.slice(k)));
}

/* The stored compact range of the first n leaves: 0x01, size (8 bytes), subtree roots, largest first. */
function compact(leaves, n) {
  const parts = [Buffer.from([1]), Buffer.alloc(8)];
  parts[1].writeBigUInt64BE(BigInt(n));
  let start = 0;
  for (let bit = 61; bit >= 0; bit--) {
    const span = 2 ** bit;
    if (Math.floor(n / span) % 2 === 1) {
      parts.push(mth(leaves.slice(start, start + span)));
      start += span;
    }
  }
  return Buffer.concat(parts);
}

/* "first bad record: 7" or "first bad record: one of 0 to 7" -> [first, last] */
function namedRange(out) {
  const m = /first bad record: (?:one of (\d+) to (\d+)|(\d+))/.exec(out);
  if (!m) return null;
  return m[3] !== undefined ? [Number(m[3]), Number(m[3])] : [Number(m[1]), Number(m[2])];
}

describe('tampering with a real log', { skip: NO_SQLITE }, () => {
  let dir, tmp, jwksFile, savedCkpt, streamNo;
  const records = {};   // node -> canonical bodies in sequence order
  const copies = [];

  before(async () => {
    requireBinary();
    dir = await makeTempDir('veranda-tamper-');
    tmp = await makeTempDir('veranda-tamper-offhost-');
    await initDataDir(dir);
    await seedDataDir(dir, { patients: 1 });
    const srv = await startServer({ dataDir: dir, args: ['--audit-checkpoint-records', '4', '--audit-checkpoint-seconds', '1'] });
    try {
      for (let i = 0; i < 40; i++) assert.equal((await srv.fhirFetch('/Patient/alice')).status, 200);
      await sleep(1200);
      // what a witness keeps off the host: the published keys and the latest checkpoint
      jwksFile = path.join(tmp, 'jwks.json');
      await fsp.writeFile(jwksFile, (await srv.fetch('/oauth/jwks')).text);
      const cps = (await srv.fetch('/audit/checkpoints')).json.checkpoints;
      savedCkpt = path.join(tmp, 'checkpoint.jws');
      await fsp.writeFile(savedCkpt, cps.find((c) => c.node === 'node-1').jws);
    } finally {
      await srv.stop();
    }
    for (const node of ['node-1', 'cli']) {
      const r = await runCli(['audit', 'query', '--data', dir, '--node', node]);
      assert.equal(r.code, 0, r.stderr);
      records[node] = r.stdout.split('\n').filter(Boolean);
    }
    assert.ok(records['node-1'].length >= 40, `a log to work on (${records['node-1'].length} records)`);
    assert.ok(records.cli.length >= 2, 'the command line wrote its own stream');
    streamNo = Object.fromEntries(sql(path.join(dir, 'audit.db'), 'SELECT node, no FROM stream;')
      .trim().split('\n').map((l) => { const [n, no] = l.split('|'); return [n, BigInt(no)]; }));
  });

  after(async () => {
    for (const c of copies) await removeDir(c);
    await removeDir(tmp);
    await removeDir(dir);
  });

  const id = (node, seq) => ((streamNo[node] << 48n) + BigInt(seq)).toString();

  /* A fresh copy of the data dir, changed by 'statements' (and 'more'); verify's result. */
  async function tampered(statements, args = [], more = async () => {}) {
    const work = await makeTempDir('veranda-tamper-copy-');
    copies.push(work);
    await fsp.cp(dir, work, { recursive: true });
    if (statements) sql(path.join(work, 'audit.db'), statements);
    await more(work);
    const r = await runCli(['audit', 'verify', '--data', work, ...args]);
    const out = r.stdout + r.stderr;
    return { ...r, out, range: namedRange(out), work };
  }

  it('the untouched log verifies with the keys and the checkpoint kept off the host', async () => {
    const r = await tampered('', ['--jwks', jwksFile, '--checkpoint', savedCkpt]);
    assert.equal(r.code, 0, r.out);
    assert.match(r.out, /2 streams/);
    assert.match(r.out, /it extends the checkpoint/);
  });

  it('two changes: verify names the first, not the one that is easier to see', async () => {
    // a record rewritten with its leaf hash (only a signed root can tell) and a later one
    // changed alone, both before the same checkpoint: the first bad record is the rewritten
    // one, which lies in a perfect subtree of that checkpoint ending before the later one
    const sizes = sql(path.join(dir, 'audit.db'), "SELECT size FROM checkpoint WHERE node = 'node-1' ORDER BY size;")
      .trim().split('\n').map(Number);
    let a = -1, b = -1;
    for (let i = 1; i < sizes.length && a < 0; i++) {
      const [prev, next] = [sizes[i - 1], sizes[i]];
      let start = 0;
      for (let bit = 30; bit >= 0 && a < 0; bit--) {
        if (Math.floor(next / 2 ** bit) % 2 === 0) continue;
        const end = start + 2 ** bit;
        if (end > prev && end < next) [a, b] = [Math.max(start, prev), end];
        start = end;
      }
    }
    assert.ok(a >= 0, `two checkpoints to work between (${sizes})`);
    const body = records['node-1'];
    const forged = body[a].replace(/"time":"[^"]+"/, '"time":"2020-01-01T00:00:00.000Z"');
    assert.notEqual(forged, body[a]);
    const r = await tampered(`
      UPDATE record SET body = ${q(forged)}, leaf = ${hex(leafHash(forged))}, time_ms = 1577836800000 WHERE id = ${id('node-1', a)};
      UPDATE record SET body = replace(body, '"seq":${b},', '"seq":${b} ,') WHERE id = ${id('node-1', b)};`);
    assert.equal(r.code, 1, r.out);
    assert.ok(r.range && r.range[0] <= a && a <= r.range[1] && r.range[1] < b, `names a range holding ${a} before ${b}: ${r.out}`);
    assert.match(r.out, /signed root/);
  });

  it('the command line\'s stream: a record changed, deleted or cut off is named in stream cli', async () => {
    const n = records.cli.length;
    let r = await tampered(`UPDATE record SET body = replace(body, '"action":"', '"action": "') WHERE id = ${id('cli', 1)};`);
    assert.equal(r.code, 1, r.out);
    assert.match(r.out, /stream: cli/);
    assert.deepEqual(r.range, [1, 1], r.out);
    r = await tampered(`DELETE FROM record WHERE id = ${id('cli', 0)};`);
    assert.equal(r.code, 1, r.out);
    assert.match(r.out, /stream: cli/);
    assert.deepEqual(r.range, [0, 0], r.out);
    r = await tampered(`DELETE FROM record WHERE id = ${id('cli', n - 1)};`);
    assert.equal(r.code, 1, r.out);
    assert.match(r.out, /stream: cli/);
    assert.equal(r.range?.[0], n - 1, r.out);
  });

  it('records swapped between the two streams are caught', async () => {
    const r = await tampered(`
      UPDATE record SET id = 1 WHERE id = ${id('node-1', 1)};
      UPDATE record SET id = ${id('node-1', 1)} WHERE id = ${id('cli', 1)};
      UPDATE record SET id = ${id('cli', 1)} WHERE id = 1;`);
    assert.equal(r.code, 1, r.out);
    assert.deepEqual(r.range, [1, 1], r.out);
  });

  it('a record rewritten and the whole stream re-signed with a key the attacker added: the keys kept off the host catch it', async () => {
    const body = [...records['node-1']];
    body[5] = body[5].replace(/"time":"[^"]+"/, '"time":"2020-01-01T00:00:00.000Z"');
    const leaves = body.map(leafHash);
    const { publicKey, privateKey } = await jose.generateKeyPair('ES256', { extractable: true });
    const pub = await jose.exportJWK(publicKey);
    const kid = await jose.calculateJwkThumbprint(pub);
    const sizes = sql(path.join(dir, 'audit.db'), "SELECT size, time_ms, final FROM checkpoint WHERE node = 'node-1' ORDER BY size;")
      .trim().split('\n').map((l) => l.split('|').map(Number));
    let stmts = `UPDATE record SET body = ${q(body[5])}, leaf = ${hex(leaves[5])}, time_ms = 1577836800000 WHERE id = ${id('node-1', 5)};
      INSERT INTO signer(kid, jwk, first_ms) VALUES (${q(kid)}, ${q(JSON.stringify({ ...pub, kid, alg: 'ES256', use: 'sig' }))}, 0);\n`;
    for (const [size, time, final] of sizes) {
      const root = mth(leaves.slice(0, size));
      const payload = { log: 'veranda-audit', node: 'node-1', size, root: root.toString('base64url'), time: new Date(time).toISOString(), ...(final ? { final: true } : {}) };
      const jws = await new jose.CompactSign(Buffer.from(JSON.stringify(payload)))
        .setProtectedHeader({ alg: 'ES256', kid, typ: 'veranda-audit-checkpoint' }).sign(privateKey);
      stmts += `UPDATE checkpoint SET root = ${hex(root)}, compact = ${hex(compact(leaves, size))}, kid = ${q(kid)}, jws = ${q(jws)} WHERE node = 'node-1' AND size = ${size};\n`;
    }
    const addKey = async (work) => {
      // the attacker's key beside the server's, as `veranda keys` names them
      await fsp.writeFile(path.join(work, 'keys', `es256-${Date.now() + 1000}.pem`), await jose.exportPKCS8(privateKey), { mode: 0o600 });
    };
    // trusting the data directory's own keys, the forgery passes: that is why keys are kept elsewhere
    const local = await tampered(stmts, [], addKey);
    assert.equal(local.code, 0, `a re-signed log is consistent with the keys beside it: ${local.out}`);
    const r = await tampered(stmts, ['--jwks', jwksFile], addKey);
    assert.equal(r.code, 1, r.out);
    assert.match(r.out, /unknown key|does not verify/);
    const both = await tampered(stmts, ['--jwks', jwksFile, '--checkpoint', savedCkpt], addKey);
    assert.equal(both.code, 1, both.out);
    // and the saved checkpoint alone, with the attacker's key trusted, still sees the change
    const ck = await tampered(stmts, ['--checkpoint', savedCkpt], addKey);
    assert.equal(ck.code, 1, ck.out);
    assert.match(ck.out, /does not extend the checkpoint/);
  });

  it('cached subtree roots and checkpoint columns cannot be altered unseen', async () => {
    let r = await tampered(`UPDATE checkpoint SET root = zeroblob(32) WHERE node = 'node-1' AND size = (SELECT min(size) FROM checkpoint WHERE node = 'node-1');`,
      ['--jwks', jwksFile]);
    assert.equal(r.code, 1, r.out);
    assert.match(r.out, /stored columns differ/);
    r = await tampered(`UPDATE checkpoint SET compact = zeroblob(41) WHERE node = 'node-1';`, ['--jwks', jwksFile]);
    assert.equal(r.code, 0, `the compact range only narrows a failure down: ${r.out}`);
  });
});

describe('receipts and proof endpoints', () => {
  let srv, tmp, jwksFile, receipt, other;

  before(async () => {
    requireBinary();
    tmp = await makeTempDir('veranda-receipt-');
    srv = await startServer({ seed: true, args: ['--audit-checkpoint-records', '4', '--audit-checkpoint-seconds', '1'] });
    for (let i = 0; i < 12; i++) assert.equal((await srv.fhirFetch('/Patient/alice')).status, 200);
    await sleep(1200);
    jwksFile = path.join(tmp, 'jwks.json');
    await fsp.writeFile(jwksFile, (await srv.fetch('/oauth/jwks')).text);
    const get = async (seq) => {
      const r = await runCli(['audit', 'proof', '--data', srv.dataDir, '--node', 'node-1', '--seq', String(seq)]);
      assert.equal(r.code, 0, r.stderr);
      return JSON.parse(r.stdout);
    };
    receipt = await get(5);
    other = await get(6);
  });

  after(async () => {
    await srv?.stop();
    await removeDir(tmp);
  });

  async function check(doc) {
    const file = path.join(tmp, `r-${crypto.randomUUID()}.json`);
    await fsp.writeFile(file, typeof doc === 'string' ? doc : JSON.stringify(doc));
    const r = await runCli(['audit', 'check-receipt', file, '--jwks', jwksFile]);
    return { ...r, out: r.stdout + r.stderr };
  }

  it('a genuine receipt checks', async () => {
    const r = await check(receipt);
    assert.equal(r.code, 0, r.out);
  });

  it('forged and replayed receipts do not check', async () => {
    const cases = {
      'the record of another seq': { ...receipt, record: other.record },
      'another seq for the record': { ...receipt, seq: 6 },
      'the proof of another record': { ...receipt, hashes: other.hashes },
      'a proof with an extra hash': { ...receipt, hashes: [...receipt.hashes, receipt.hashes[0]] },
      'a proof with a hash missing': { ...receipt, hashes: receipt.hashes.slice(1) },
      'a tree size other than the checkpoint\'s': { ...receipt, tree_size: receipt.tree_size + 1 },
      'the record re-serialized (non-canonical JSON)': { ...receipt, record: JSON.stringify(JSON.parse(receipt.record), null, 1) },
      'the record with members reordered': { ...receipt, record: JSON.stringify(Object.fromEntries(Object.entries(JSON.parse(receipt.record)).reverse())) },
      'another stream': { ...receipt, node: 'cli' },
      'a negative seq': { ...receipt, seq: -1 },
      'a hash that is not one': { ...receipt, hashes: ['x', ...receipt.hashes.slice(1)] },
    };
    for (const [what, doc] of Object.entries(cases)) {
      const r = await check(doc);
      assert.equal(r.code, 1, `${what}: ${r.out}`);
    }
    // a checkpoint signed by a key the server never published
    const { privateKey } = await jose.generateKeyPair('ES256');
    const payload = JSON.parse(Buffer.from(receipt.checkpoint.split('.')[1], 'base64url'));
    const jws = await new jose.CompactSign(Buffer.from(JSON.stringify(payload)))
      .setProtectedHeader({ alg: 'ES256', kid: JSON.parse(Buffer.from(receipt.checkpoint.split('.')[0], 'base64url')).kid, typ: 'veranda-audit-checkpoint' })
      .sign(privateKey);
    assert.equal((await check({ ...receipt, checkpoint: jws })).code, 1);
  });

  it('the proof endpoints refuse sizes that are negative, not numbers, too large or not signed', async () => {
    const cps = (await srv.fetch('/audit/checkpoints?history=1&node=node-1')).json.checkpoints.map((c) => c.size);
    const [s1, s2] = [cps[0], cps.at(-1)];
    assert.ok(s2 > s1, `two checkpoints (${cps})`);
    const status = async (p) => (await srv.fetch(p)).status;
    for (const p of ['/audit/proof?node=node-1&seq=-1', '/audit/proof?node=node-1&seq=1e3', '/audit/proof?node=node-1&seq=',
      '/audit/proof?node=node-1&seq=0&size=-4', '/audit/consistency?node=node-1&from=-1&to=4', '/audit/consistency?node=node-1&from=a&to=4',
      `/audit/consistency?node=node-1&from=${s2}&to=${s1}`, '/audit/consistency?node=node-1&from=0&to=4',
      '/audit/consistency?node=node-1&from=99999999999999999999&to=4', '/audit/checkpoints?limit=-1', '/audit/proof?node=..%2F&seq=0']) {
      assert.equal(await status(p), 400, p);
    }
    for (const p of ['/audit/proof?node=node-1&seq=9223372036854775807', `/audit/proof?node=node-1&seq=0&size=${s2 + 1000}`,
      `/audit/proof?node=node-1&seq=${s2}&size=${s2}`, `/audit/consistency?node=node-1&from=${s1}&to=9223372036854775807`,
      `/audit/consistency?node=node-1&from=${s1}&to=${s2 + 1000}`, '/audit/proof?node=nobody&seq=0']) {
      assert.equal(await status(p), 404, p);
    }
    const same = await srv.fetch(`/audit/consistency?node=node-1&from=${s2}&to=${s2}`);
    assert.equal(same.status, 200, same.text);
    assert.deepEqual(same.json.hashes, []);
    assert.equal(same.json.checkpoint1, same.json.checkpoint2);
  });
});
