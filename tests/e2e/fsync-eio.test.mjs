// A disk that fails to sync (security plan case 86), through the real
// server: fsync() and fdatasync() start failing with EIO under a running
// server (an LD_PRELOAD shim, tests/e2e/fixtures/eio/eio.c, compiled here).
// After an fsync error the kernel may have dropped the data, so a later
// success would prove nothing: writes must get 503 with an
// OperationOutcome, reads that disclose data must get 503 too (their audit
// records cannot be made durable), readiness must say so, and all of that
// must last until a restart even once the disk works again.  After the
// restart everything works, every acknowledged write is there and the
// audit log verifies.
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { startServer, runCli, makeTempDir, removeDir, ROOT } from './lib/server.mjs';

const FHIR_JSON = 'application/fhir+json';
const CC = spawnSync('cc', ['--version']).status === 0 ? 'cc' : null;
let work, shim;

before(async () => {
  work = await makeTempDir('veranda-eio-');
  if (!CC) return;
  shim = path.join(work, 'eio.so');
  const r = spawnSync(CC, ['-shared', '-fPIC', '-O2', '-o', shim, path.join(ROOT, 'tests/e2e/fixtures/eio/eio.c'), '-ldl']);
  assert.equal(r.status, 0, String(r.stderr));
});

after(async () => {
  await removeDir(work);
});

// The server's environment: syncs fail while 'trigger' exists (only of files whose path holds 'match').
const shimEnv = (trigger, match) => ({
  LD_PRELOAD: shim,
  VERANDA_EIO_TRIGGER: trigger,
  ...(match ? { VERANDA_EIO_MATCH: match } : {}),
  // under AddressSanitizer (make e2e-san) the shim comes before its runtime
  ASAN_OPTIONS: `${process.env.ASAN_OPTIONS ? process.env.ASAN_OPTIONS + ':' : ''}verify_asan_link_order=0`,
});

const put = (srv, id, text) => srv.fetch(`/fhir/Observation/${id}`, {
  method: 'PUT',
  headers: { 'content-type': FHIR_JSON },
  body: JSON.stringify({ resourceType: 'Observation', id, status: 'final', code: { text }, subject: { reference: 'Patient/alice' } }),
});

describe('fsync fails with EIO', { skip: CC ? false : 'no C compiler to build the LD_PRELOAD shim' }, () => {
  it('writes and disclosing reads get 503 until a restart; then all is well and nothing acknowledged is lost', async () => {
    const trigger = path.join(work, 'fail-syncs');
    const env = shimEnv(trigger);
    let srv = await startServer({ patients: 0, seed: true, env });
    const dir = srv.dataDir;
    try {
      let r = await put(srv, 'eio-before', 'before');
      assert.equal(r.status, 201, r.text);
      const before = r.json;
      assert.equal((await srv.fetch('/fhir/Patient/alice')).status, 200);

      fs.writeFileSync(trigger, '');
      r = await put(srv, 'eio-during', 'during');
      assert.equal(r.status, 503, r.text);
      assert.equal(r.json?.resourceType, 'OperationOutcome', r.text);
      assert.doesNotMatch(r.text, /sqlite|fsync|fdatasync|\.db\b/i, 'no internals in the answer');
      r = await srv.fetch('/fhir/Patient/alice');
      assert.equal(r.status, 503, 'a read is not answered when its audit record cannot be made durable');
      assert.equal(r.json?.resourceType, 'OperationOutcome');
      assert.doesNotMatch(r.text, /Alice|birthDate/, 'no data in the refusal');
      assert.equal((await srv.fetch('/readyz')).status, 503, 'not ready');
      assert.ok(srv.logs.some((l) => /I\/O error|disk I\/O|Input\/output/i.test(l)), 'the log says what happened');

      fs.unlinkSync(trigger);
      r = await put(srv, 'eio-after', 'after');
      assert.equal(r.status, 503, 'a sync that works again proves nothing: still refused');
      assert.equal((await srv.fetch('/fhir/Patient/alice')).status, 503);
      assert.equal((await srv.fetch('/readyz')).status, 503);
      assert.equal((await srv.fetch('/healthz')).status, 200, 'the process itself is alive');

      await srv.kill();
      srv = await startServer({ dataDir: dir, init: false });
      assert.equal((await srv.fetch('/readyz')).status, 200, 'ready after a restart');
      r = await srv.fetch('/fhir/Observation/eio-before');
      assert.equal(r.status, 200);
      assert.deepEqual(r.json, before, 'the acknowledged write is there');
      // the refused write may or may not have reached the disk before its sync failed;
      // if it is there, it is whole
      r = await srv.fetch('/fhir/Observation/eio-during');
      assert.ok(r.status === 404 || (r.status === 200 && r.json.code.text === 'during'), `${r.status} ${r.text}`);
      assert.equal((await srv.fetch('/fhir/Observation/eio-after')).status, 404, 'refused before it was written');
      r = await put(srv, 'eio-later', 'later');
      assert.equal(r.status, 201, r.text);
      assert.equal((await srv.fetch('/fhir/Patient/alice')).status, 200);
      await srv.stop();
      const v = await runCli(['audit', 'verify', '--data', dir], { timeout: 120000 });
      assert.equal(v.code, 0, v.stdout + v.stderr);
    } finally {
      await srv.stop();
    }
  });

  it('when only the audit journal fails: disclosures and writes get 503, /readyz says why, until a restart', async () => {
    const trigger = path.join(work, 'fail-journal-syncs');
    const env = shimEnv(trigger, '/audit-journal/');
    let srv = await startServer({ patients: 0, seed: true, env });
    const dir = srv.dataDir;
    try {
      let r = await put(srv, 'jeio-before', 'before');
      assert.equal(r.status, 201, r.text);
      assert.equal((await srv.fetch('/readyz')).status, 200);

      fs.writeFileSync(trigger, '');
      r = await srv.fetch('/fhir/Patient/alice');
      assert.equal(r.status, 503, 'a read is not answered when its audit record cannot be made durable');
      assert.equal(r.json?.resourceType, 'OperationOutcome');
      assert.doesNotMatch(r.text, /Alice|birthDate|journal|fdatasync/i, 'no data and no internals in the refusal');
      fs.unlinkSync(trigger);
      r = await put(srv, 'jeio-after', 'after');
      assert.equal(r.status, 503, 'a write waits for its record too');
      assert.equal((await srv.fetch('/fhir/Patient/alice')).status, 503, 'not trusted again in this run');
      r = await srv.fetch('/readyz');
      assert.equal(r.status, 503, 'not ready: the store answers, the audit log does not');
      assert.match(r.json.reason, /audit log has failed/);
      assert.equal(r.headers.get('retry-after'), '5');
      assert.equal((await srv.fetch('/healthz')).status, 200, 'the process itself is alive');

      await srv.kill();
      srv = await startServer({ dataDir: dir, init: false });
      assert.equal((await srv.fetch('/readyz')).status, 200, 'ready after a restart');
      assert.equal((await srv.fetch('/fhir/Observation/jeio-before')).status, 200);
      assert.equal((await srv.fetch('/fhir/Observation/jeio-after')).status, 404, 'refused before it was written');
      await srv.stop();
      const v = await runCli(['audit', 'verify', '--data', dir], { timeout: 120000 });
      assert.equal(v.code, 0, v.stdout + v.stderr);
    } finally {
      await srv.stop();
    }
  });
});
