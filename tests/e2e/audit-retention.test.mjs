// Retention through the real binary: a server that starts with records
// older than --audit-retention-days archives them (with their proofs),
// signs a system.audit-prune record, and clears their bodies; the log still
// verifies, queries no longer return the pruned records, a receipt for one
// answers that it is gone, and the archive still proves each archived record
// offline against the checkpoint it was written with.  Time is moved with
// the VERANDA_CLOCK_OFFSET test hook (clock.h).
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import fsp from 'node:fs/promises';
import path from 'node:path';
import { startServer, runCli, makeTempDir, removeDir, initDataDir, seedDataDir, sleep } from './lib/server.mjs';

const FHIR_JSON = 'application/fhir+json';
const DAY = 86400;

async function query(dir, env = {}, extra = []) {
  const q = await runCli(['audit', 'query', '--data', dir, '--format', 'ndjson', '--limit', '100000', ...extra], { env });
  assert.equal(q.code, 0, q.stderr);
  return q.stdout.split('\n').filter(Boolean).map((l) => JSON.parse(l));
}

describe('audit retention', () => {
  let dir;
  let srv;
  const oldReads = [];
  let before1;

  before(async () => {
    dir = await makeTempDir('veranda-retention-');
    await initDataDir(dir);
    await seedDataDir(dir, { patients: 0 });
    // day 0: reads of alice's record
    srv = await startServer({ dataDir: dir });
    for (let i = 0; i < 5; i++) {
      const r = await srv.fhirFetch('/Patient/alice', { headers: { accept: FHIR_JSON, ...srv.authHeaders } });
      assert.equal(r.status, 200, r.text);
      oldReads.push(r.headers.get('x-request-id'));
    }
    await srv.stop({ keepData: true }); // a final checkpoint signs everything
    srv = null;
    // the server's own stream (the seed and the command line write to 'cli')
    before1 = (await query(dir)).filter((x) => x.node === 'node-1');
  });
  after(async () => {
    if (srv) await srv.stop({ keepData: true });
    if (dir) await removeDir(dir);
  });

  it('records older than the retention period are archived, a prune record is signed, and the bodies are cleared', async () => {
    assert.ok(before1.length > oldReads.length);
    const old = before1.filter((x) => oldReads.includes(x.correlation?.request));
    assert.equal(old.length, oldReads.length, 'each read has its record');
    // three days later, with one day of retention
    const env = { VERANDA_CLOCK_OFFSET: String(3 * DAY) };
    // no backend token: its client assertion would be three days old to this server
    srv = await startServer({ dataDir: dir, env, auth: 'none', args: ['--audit-retention-days', '1', '--fhir-auth=false'] });
    let prune;
    for (let i = 0; i < 100 && !prune; i++) {
      prune = (await query(dir, env)).find((x) => x.type === 'system.audit-prune');
      if (!prune) await sleep(100);
    }
    assert.ok(prune, 'a system.audit-prune record');
    const below = Number(/below=(\d+)/.exec(JSON.stringify(prune))?.[1]);
    assert.ok(below >= before1.length, `below=${below} covers the ${before1.length} records of day 0`);
    // the reads of day 0 are gone from queries (their bodies and identifiers cleared)
    let left;
    for (let i = 0; i < 100; i++) {
      left = (await query(dir, env)).filter((x) => x.node === 'node-1' && x.seq < below);
      if (!left.length) break;
      await sleep(100);
    }
    assert.deepEqual(left, [], 'no pruned record is returned');
    assert.equal((await query(dir, env, ['--patient', 'alice'])).filter((x) => oldReads.includes(x.correlation?.request)).length, 0);
    // the server goes on recording
    const r = await srv.fhirFetch('/Patient/alice', { headers: { accept: FHIR_JSON } });
    assert.equal(r.status, 200);
    await srv.stop({ keepData: true });
    srv = null;
    const after2 = await query(dir, env);
    assert.ok(after2.some((x) => x.correlation?.request === r.headers.get('x-request-id')), 'the new read is recorded');
    // the whole log still verifies, pruned records included
    const v = await runCli(['audit', 'verify', '--data', dir], { env });
    assert.equal(v.code, 0, v.stdout + v.stderr);
    const pruned = Number(/\((\d+) pruned\)/.exec(v.stdout)?.[1]);
    assert.ok(pruned >= before1.length, v.stdout);
    // a receipt for a pruned record says it is gone
    const seq = old[0].seq;
    const gone = await runCli(['audit', 'proof', '--data', dir, '--node', 'node-1', '--seq', String(seq)], { env });
    assert.notEqual(gone.code, 0);
    assert.match(gone.stderr, /removed by retention/);
  });

  it('the archive holds every pruned record with a proof that checks offline', async () => {
    const files = await fsp.readdir(path.join(dir, 'audit-archive'));
    const mine = files.filter((f) => /^node-1-\d+-\d+\.ndjson$/.test(f));
    assert.equal(mine.length, 1, files.join(' '));
    const lines = (await fsp.readFile(path.join(dir, 'audit-archive', mine[0]), 'utf8')).split('\n').filter(Boolean).map((l) => JSON.parse(l));
    const head = lines.find((l) => l.checkpoint);
    assert.ok(head, 'a checkpoint line');
    const recs = lines.filter((l) => l.record);
    assert.equal(recs.length, before1.length, 'every record of day 0 is archived');
    assert.deepEqual(recs.map((l) => JSON.parse(l.record).correlation?.request).filter((x) => oldReads.includes(x)).sort(), [...oldReads].sort());
    // a receipt of a live record gives the signing key; the archive's lines are receipts but for it
    const latest = await runCli(['audit', 'checkpoints', '--data', dir, '--node', 'node-1']);
    assert.equal(latest.code, 0, latest.stderr);
    const size = Number(/"size":\s*(\d+)/.exec(latest.stdout)?.[1]);
    const live = await runCli(['audit', 'proof', '--data', dir, '--node', 'node-1', '--seq', String(size - 1)]);
    assert.equal(live.code, 0, live.stderr);
    const { jwk } = JSON.parse(live.stdout);
    const read = recs.find((l) => oldReads.includes(JSON.parse(l.record).correlation?.request));
    const receipt = { receipt: 'veranda-audit-receipt/1', record: read.record, node: read.node, seq: read.seq,
      tree_size: head.size, hashes: read.hashes, checkpoint: head.checkpoint, jwk };
    const file = path.join(dir, 'archived-receipt.json');
    await fsp.writeFile(file, JSON.stringify(receipt));
    const ok = await runCli(['audit', 'check-receipt', file]);
    assert.equal(ok.code, 0, ok.stdout + ok.stderr);
    // and one altered byte of the archived record does not
    await fsp.writeFile(file, JSON.stringify({ ...receipt, record: read.record.replace('"alice"', '"alicf"') }));
    const bad = await runCli(['audit', 'check-receipt', file]);
    assert.notEqual(bad.code, 0, bad.stdout);
  });
});
