// The audit log's proofs as an outsider checks them: every inclusion and
// consistency proof the server gives for every signed size of every stream
// verifies under an RFC 9162 verifier written here (sections 2.1.3.2 and
// 2.1.4.2), and not for another leaf or root; the checkpoint history stays
// servable however long it grows; the documented offline procedure
// (the script in docs/audit.md, run as written) accepts a genuine receipt
// with the JWK Set the server publishes and refuses altered ones; the
// command line treats an impossible size range as a usage error.
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import fsp from 'node:fs/promises';
import path from 'node:path';
import * as jose from 'jose';
import { ROOT, makeTempDir, removeDir, startServer, runCli, requireBinary, sleep } from './lib/server.mjs';

const SQLITE3 = spawnSync('sqlite3', ['-version']).status === 0 ? 'sqlite3' : null;

const sha256 = (...parts) => crypto.createHash('sha256').update(Buffer.concat(parts)).digest();
const b64u = (s) => Buffer.from(s, 'base64url');
const leafHash = (record) => sha256(Buffer.from([0]), Buffer.from(record, 'utf8'));
const nodeHash = (l, r) => sha256(Buffer.from([1]), l, r);

/* RFC 9162 section 2.1.3.2. */
function inclusionHolds(index, size, leaf, proof, root) {
  if (index >= size) return false;
  let fn = BigInt(index), sn = BigInt(size) - 1n, r = leaf;
  for (const p of proof) {
    if (sn === 0n) return false;
    if ((fn & 1n) === 1n || fn === sn) {
      r = nodeHash(p, r);
      while ((fn & 1n) === 0n && fn !== 0n) { fn >>= 1n; sn >>= 1n; }
    } else {
      r = nodeHash(r, p);
    }
    fn >>= 1n; sn >>= 1n;
  }
  return sn === 0n && r.equals(root);
}

/* RFC 9162 section 2.1.4.2 (equal sizes: an empty proof and equal roots). */
function consistencyHolds(size1, size2, root1, root2, proof) {
  if (size1 === size2) return proof.length === 0 && root1.equals(root2);
  if (size1 === 0 || size1 > size2 || proof.length === 0) return false;
  const path = (size1 & (size1 - 1)) === 0 ? [root1, ...proof] : [...proof];
  let fn = BigInt(size1 - 1), sn = BigInt(size2 - 1);
  while ((fn & 1n) === 1n) { fn >>= 1n; sn >>= 1n; }
  let fr = path[0], sr = path[0];
  for (const c of path.slice(1)) {
    if (sn === 0n) return false;
    if ((fn & 1n) === 1n || fn === sn) {
      fr = nodeHash(c, fr);
      sr = nodeHash(c, sr);
      while ((fn & 1n) === 0n && fn !== 0n) { fn >>= 1n; sn >>= 1n; }
    } else {
      sr = nodeHash(sr, c);
    }
    fn >>= 1n; sn >>= 1n;
  }
  return sn === 0n && fr.equals(root1) && sr.equals(root2);
}

describe('proofs, checkpoint history and the documented receipt check', () => {
  let srv, tmp, jwks, jwksFile;

  /* A checkpoint's payload, once its signature verifies under the published JWK Set. */
  async function signed(jws) {
    const { payload, protectedHeader } = await jose.compactVerify(jws, jose.createLocalJWKSet(jwks));
    assert.equal(protectedHeader.typ, 'veranda-audit-checkpoint');
    return JSON.parse(Buffer.from(payload).toString('utf8'));
  }

  /* Every record of a stream, in sequence order, from the export. */
  async function records(node) {
    const r = await runCli(['audit', 'export', '--data', srv.dataDir, '--node', node]);
    assert.equal(r.code, 0, r.stderr);
    return r.stdout.trim().split('\n').map((l) => JSON.parse(l)).filter((l) => l.record).map((l) => l.record);
  }

  before(async () => {
    requireBinary();
    tmp = await makeTempDir('veranda-audit-proofs-');
    srv = await startServer({ seed: true, args: ['--audit-checkpoint-records', '1', '--audit-checkpoint-seconds', '1'] });
    for (let i = 0; i < 12; i++) assert.equal((await srv.fhirFetch('/Patient/alice')).status, 200);
    await sleep(1300);
    jwks = (await srv.fetch('/oauth/jwks')).json;
    jwksFile = path.join(tmp, 'jwks.json');
    await fsp.writeFile(jwksFile, JSON.stringify(jwks));
  });

  after(async () => {
    await srv?.stop();
    await removeDir(tmp);
  });

  it('every inclusion and consistency proof of every signed size verifies under RFC 9162, and not for another leaf or root', async () => {
    const all = (await srv.fetch('/audit/checkpoints?history=1')).json.checkpoints;
    for (const node of ['node-1', 'cli']) {
      const sizes = all.filter((c) => c.node === node).map((c) => c.size);
      assert.ok(sizes.length >= 2, `${node}: several checkpoints (${sizes})`);
      const recs = await records(node);
      const roots = new Map();
      for (const size of sizes) {
        for (let seq = 0; seq < size; seq++) {
          const p = await srv.fetch(`/audit/proof?node=${node}&seq=${seq}&size=${size}`);
          assert.equal(p.status, 200, p.text);
          const cp = await signed(p.json.checkpoint);
          assert.deepEqual([cp.node, cp.size, p.json.tree_size], [node, size, size]);
          roots.set(size, b64u(cp.root));
          const leaf = leafHash(recs[seq]);
          assert.equal(p.json.leaf_hash, leaf.toString('base64url'));
          const proof = p.json.hashes.map(b64u);
          assert.ok(inclusionHolds(seq, size, leaf, proof, b64u(cp.root)), `${node} ${seq}@${size}`);
          const other = leafHash(recs[(seq + 1) % recs.length]);
          assert.ok(!inclusionHolds(seq, size, other, proof, b64u(cp.root)), `another leaf at ${seq}@${size}`);
        }
        const beyond = await srv.fetch(`/audit/proof?node=${node}&seq=${size}&size=${size}`);
        assert.equal(beyond.status, 404, 'index == size');
        assert.match(beyond.headers.get('content-type'), /json/);
      }
      for (const s1 of sizes) {
        for (const s2 of sizes) {
          const c = await srv.fetch(`/audit/consistency?node=${node}&from=${s1}&to=${s2}`);
          if (s1 > s2) {
            assert.equal(c.status, 400, `${s1} > ${s2}`);
            continue;
          }
          assert.equal(c.status, 200, c.text);
          const [c1, c2] = [await signed(c.json.checkpoint1), await signed(c.json.checkpoint2)];
          assert.deepEqual([c1.size, c2.size, c1.node, c2.node], [s1, s2, node, node]);
          const proof = c.json.hashes.map(b64u);
          assert.ok(consistencyHolds(s1, s2, roots.get(s1), roots.get(s2), proof), `${node} ${s1}..${s2}`);
          if (s1 < s2) assert.ok(!consistencyHolds(s1, s2, roots.get(s1), sha256(Buffer.from('x')), proof));
        }
      }
    }
  });

  it('the checkpoint history comes in bounded pages with a next link, however long it grows', { skip: SQLITE3 ? false : 'the sqlite3 command-line shell is not installed' }, async () => {
    // the history of node-1, a page of three at a time, is the whole history
    const whole = (await srv.fetch('/audit/checkpoints?history=1&node=node-1')).json.checkpoints;
    const seen = [];
    let next = '/audit/checkpoints?history=1&node=node-1&limit=3';
    for (let pages = 0; next; pages++) {
      assert.ok(pages < 100, 'paging ends');
      const r = await srv.fetch(next);
      assert.equal(r.status, 200, r.text);
      assert.ok(r.json.checkpoints.length <= 3);
      seen.push(...r.json.checkpoints);
      next = r.json.next;
    }
    assert.deepEqual(seen.map((c) => c.size), whole.map((c) => c.size));

    // a long-lived stream: 12,000 checkpoints of another node (their JWS a real one; only the
    // size of the answer matters here), written next to the running server's
    const jws = whole.at(-1).jws.replace(/'/g, "''");
    const db = path.join(srv.dataDir, 'audit.db');
    const ins = spawnSync(SQLITE3, [db], {
      encoding: 'utf8',
      input: `.timeout 10000
WITH RECURSIVE k(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM k WHERE i < 12000)
INSERT INTO checkpoint(node, size, time_ms, root, compact, kid, jws, final)
SELECT 'node-old', i, 1700000000000 + i, zeroblob(32), zeroblob(41), NULL, '${jws}', 0 FROM k;
`,
    });
    assert.equal(ins.status, 0, ins.stderr);
    const first = await srv.fetch('/audit/checkpoints?history=1');
    assert.equal(first.status, 200, first.text.slice(0, 200));
    assert.ok(first.json.checkpoints.length > 0 && first.json.checkpoints.length <= 1000,
      `a bounded page (${first.json.checkpoints.length})`);
    assert.ok(first.json.next, 'a link to the next page');
    let total = 0, last = null;
    for (let r = first, pages = 0; ; pages++) {
      assert.ok(pages < 50, 'paging ends');
      for (const c of r.json.checkpoints) {
        if (c.node === 'node-old') {
          assert.equal(c.size, (last ?? 0) + 1, 'in order, none skipped or repeated');
          last = c.size;
        }
        total++;
      }
      if (!r.json.next) break;
      r = await srv.fetch(r.json.next);
      assert.equal(r.status, 200, r.text.slice(0, 200));
    }
    assert.equal(last, 12000);
    assert.ok(total >= 12000 + whole.length);
    // the latest of each stream is still one line per stream
    const latest = await srv.fetch('/audit/checkpoints');
    assert.equal(latest.status, 200);
    assert.deepEqual(latest.json.checkpoints.map((c) => c.node).sort(), ['cli', 'node-1', 'node-old']);
  });

  it('/audit/checkpoints refuses an invalid stream name and a malformed cursor with a JSON 400', async () => {
    for (const p of ['/audit/checkpoints?node=..%2F', '/audit/checkpoints?node=a%20b', '/audit/checkpoints?history=1&after=x',
      '/audit/checkpoints?history=1&after=node-1:-1', '/audit/checkpoints?history=1&after=node-1', '/audit/checkpoints?after=node-1:3',
      `/audit/checkpoints?node=${'n'.repeat(65)}`, '/audit/checkpoints?history=yes', '/audit/checkpoints?history=']) {
      const r = await srv.fetch(p);
      assert.equal(r.status, 400, `${p}: ${r.text}`);
      assert.equal(typeof r.json.error, 'string', p);
    }
    // history=true is history=1, history=false the latest only
    const yes = (await srv.fetch('/audit/checkpoints?history=true&node=node-1')).json.checkpoints;
    const one = (await srv.fetch('/audit/checkpoints?history=1&node=node-1')).json.checkpoints;
    const no = (await srv.fetch('/audit/checkpoints?history=false&node=node-1')).json.checkpoints;
    assert.ok(one.length > 1);
    assert.deepEqual(yes, one);
    assert.equal(no.length, 1);
  });

  it('veranda audit consistency with --from beyond --to is a usage error', async () => {
    const r = await runCli(['audit', 'consistency', '--data', srv.dataDir, '--node', 'node-1', '--from', '5', '--to', '3']);
    assert.equal(r.code, 2, r.stdout + r.stderr);
    assert.match(r.stderr, /--from/);
  });

  it('the offline procedure of docs/audit.md, run as written with the published JWK Set, accepts a genuine receipt and refuses altered ones', async () => {
    const doc = fs.readFileSync(path.join(ROOT, 'docs', 'audit.md'), 'utf8');
    const m = /```js\n(\/\/ node check-receipt\.mjs[^\n]*\n[\s\S]*?)```/.exec(doc);
    assert.ok(m, 'docs/audit.md holds the script');
    const script = path.join(tmp, 'check-receipt.mjs');
    await fsp.writeFile(script, m[1]);
    const run = async (receipt) => {
      const file = path.join(tmp, `receipt-${crypto.randomUUID()}.json`);
      await fsp.writeFile(file, JSON.stringify(receipt));
      return spawnSync(process.execPath, [script, file, jwksFile], { encoding: 'utf8', cwd: tmp });
    };
    const receipt = async (node, seq) => {
      const r = await runCli(['audit', 'proof', '--data', srv.dataDir, '--node', node, '--seq', String(seq)]);
      assert.equal(r.code, 0, r.stderr);
      return JSON.parse(r.stdout);
    };
    const size = JSON.parse(b64u((await receipt('node-1', 0)).checkpoint.split('.')[1])).size;
    for (const [node, seq] of [['node-1', 0], ['node-1', 1], ['node-1', size - 1], ['cli', 0]]) {
      const ok = await run(await receipt(node, seq));
      assert.equal(ok.status, 0, `${node} ${seq}: ${ok.stderr}`);
      assert.match(ok.stdout, new RegExp(`^ok: record ${seq} of ${node} `));
    }
    const good = await receipt('node-1', 1);
    const other = await receipt('node-1', 2);
    const [h, p, s] = good.checkpoint.split('.');
    const payload = JSON.parse(b64u(p));
    const forgedPayload = Buffer.from(JSON.stringify({ ...payload, root: sha256(Buffer.from('x')).toString('base64url') })).toString('base64url');
    const { privateKey } = await jose.generateKeyPair('ES256');
    const foreign = await new jose.CompactSign(b64u(p)).setProtectedHeader(JSON.parse(b64u(h))).sign(privateKey);
    const cases = {
      'an altered record': { ...good, record: good.record.replace('"outcome":0', '"outcome":4') },
      'another record': { ...good, record: other.record },
      'another proof': { ...good, hashes: other.hashes },
      'a proof one hash short': { ...good, hashes: good.hashes.slice(1) },
      'an extra hash': { ...good, hashes: [...good.hashes, good.hashes[0]] },
      'another seq': { ...good, seq: 2 },
      'an altered checkpoint payload': { ...good, checkpoint: `${h}.${forgedPayload}.${s}` },
      'a checkpoint signed by another key': { ...good, checkpoint: foreign },
      'an access token in place of the checkpoint': { ...good, checkpoint: srv.token },
    };
    for (const [what, r] of Object.entries(cases)) {
      const x = await run(r);
      assert.notEqual(x.status, 0, `${what} must be refused: ${x.stdout}`);
      assert.doesNotMatch(x.stdout, /^ok:/, what);
    }
  });
});
