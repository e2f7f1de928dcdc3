// A full disk (security plan case 87): the data directory on a small tmpfs
// that a filler file fills up while the server runs.  Writes then get 503
// with an OperationOutcome (never a 2xx for something not stored, never a
// 500 or a crash), reads get their answer or 503, and once the filler is
// gone both work again without a restart: every acknowledged write is
// there and the audit log verifies.  Needs root (mount); skipped otherwise.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { makeTempDir, removeDir, runCli, sleep, startServer } from './lib/server.mjs';

const FHIR_JSON = { 'content-type': 'application/fhir+json' };

function observation(i) {
  return JSON.stringify({
    resourceType: 'Observation', status: 'final', code: { text: `disk-full ${i}` },
    subject: { reference: 'Patient/full-p' }, valueString: 'x'.repeat(2000),
  });
}

/* Write zeros to 'file' until the file system refuses (ENOSPC), in big chunks then small. */
function fill(file) {
  const fd = fs.openSync(file, 'w');
  try {
    for (const size of [64 * 1024, 512]) {
      const chunk = Buffer.alloc(size);
      try {
        for (;;) fs.writeSync(fd, chunk);
      } catch (e) {
        if (e.code !== 'ENOSPC') throw e;
      }
    }
  } finally {
    fs.closeSync(fd);
  }
}

function outcome(r) {
  assert.equal(r.json?.resourceType, 'OperationOutcome', r.text);
  return r.json;
}

test('a full disk: writes get 503 and store nothing; reads and writes work again when there is room, without a restart', async (t) => {
  if (typeof process.getuid !== 'function' || process.getuid() !== 0) {
    t.skip('needs root to mount a small tmpfs for the data directory');
    return;
  }
  const mnt = await makeTempDir('veranda-full-');
  const m = spawnSync('mount', ['-t', 'tmpfs', '-o', 'size=24m,mode=0700', 'tmpfs', mnt], { encoding: 'utf8' });
  if (m.status !== 0) {
    await removeDir(mnt);
    t.skip(`cannot mount a tmpfs here: ${(m.stderr || '').trim()}`);
    return;
  }
  let srv;
  const filler = path.join(mnt, 'filler');
  try {
    const dataDir = path.join(mnt, 'data');
    fs.mkdirSync(dataDir, { mode: 0o700 });
    srv = await startServer({ dataDir, init: true });
    let r = await srv.fhirFetch('/Patient/full-p', {
      method: 'PUT', headers: FHIR_JSON,
      body: JSON.stringify({ resourceType: 'Patient', id: 'full-p', name: [{ family: 'Full' }] }),
    });
    assert.equal(r.status, 201, r.text);

    fill(filler);
    const acked = [];
    let refused = null;
    for (let i = 0; i < 4000 && !refused; i++) {
      r = await srv.fhirFetch('/Observation', { method: 'POST', headers: FHIR_JSON, body: observation(i) });
      if (r.status === 201) {
        acked.push(r.json.id);
      } else {
        refused = r;
      }
    }
    assert.ok(refused, 'some write was refused once the disk was full');
    assert.equal(refused.status, 503);
    assert.ok(refused.headers.get('retry-after'), 'a 503 says when to retry');
    const oo = outcome(refused);
    assert.equal(oo.issue[0].severity, 'error');

    /* while full: writes keep being refused; a read is answered or refused, never half */
    r = await srv.fhirFetch('/Observation', { method: 'POST', headers: FHIR_JSON, body: observation('x') });
    assert.equal(r.status, 503);
    outcome(r);
    r = await srv.fhirFetch('/Patient/full-p');
    assert.ok(r.status === 200 || r.status === 503, `read while full: ${r.status}`);
    if (r.status === 200) assert.equal(r.json.id, 'full-p');
    else outcome(r);

    /* room again: the same server writes and reads */
    fs.rmSync(filler);
    let ok = false;
    for (let i = 0; i < 100 && !ok; i++) {
      r = await srv.fhirFetch('/Observation', { method: 'POST', headers: FHIR_JSON, body: observation(`after-${i}`) });
      if (r.status === 201) {
        acked.push(r.json.id);
        ok = true;
      } else {
        assert.equal(r.status, 503, `while the writers recover: ${r.status}`);
        await sleep(200);
      }
    }
    assert.ok(ok, 'writes resume once the disk has room');
    r = await srv.fhirFetch('/Patient/full-p');
    assert.equal(r.status, 200);
    for (const id of acked) {
      r = await srv.fhirFetch(`/Observation/${id}`);
      assert.equal(r.status, 200, `acknowledged Observation/${id}`);
      }
    r = await srv.fhirFetch('/Observation?subject=Patient/full-p&_summary=count');
    assert.equal(r.json.total, acked.length, 'no write that was refused was stored');
    assert.ok(srv.logText().includes('the disk is full'), 'the operator is told');

    const stopped = await srv.stop();
    srv = null;
    assert.equal(stopped.code, 0);
    const v = await runCli(['audit', 'verify', '--data', dataDir]);
    assert.equal(v.code, 0, v.stdout + v.stderr);
  } finally {
    if (srv) await srv.stop();
    fs.rmSync(filler, { force: true });
    spawnSync('umount', [mnt]);
    await removeDir(mnt);
  }
});
