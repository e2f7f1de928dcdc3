// `veranda import`: the Synthea sample, rejected lines, Bundles, and an
// import killed with SIGKILL half-way.
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import fsp from 'node:fs/promises';
import path from 'node:path';
import {
  BIN,
  TESTDATA,
  childEnv,
  runCli,
  startServer,
  makeTempDir,
  removeDir,
  initDataDir,
  requireBinary,
  allPages,
  withoutServerMeta,
  pool,
  sleep,
} from './lib/server.mjs';

const SYNTHEA = path.join(TESTDATA, 'synthea-10');
const syntheaFiles = fs.existsSync(SYNTHEA)
  ? fs.readdirSync(SYNTHEA).filter((f) => f.endsWith('.ndjson')).sort().map((f) => path.join(SYNTHEA, f))
  : [];
const noSynthea = syntheaFiles.length === 0 && `test data not found at ../shared/testdata/synthea-10 (a clone outside the workplace): skipped`;

before(() => requireBinary());

function readNdjson(file) {
  return fs
    .readFileSync(file, 'utf8')
    .split('\n')
    .filter((l) => l.trim() !== '')
    .map((l) => JSON.parse(l));
}

// "  Patient                  13" lines of the import summary.
function summaryCounts(stdout) {
  const counts = {};
  for (const m of stdout.matchAll(/^\s+([A-Z][A-Za-z]+)\s+(\d+)\s*$/gm)) counts[m[1]] = Number(m[2]);
  return counts;
}

describe('import of the Synthea sample', { skip: noSynthea }, () => {
  let dir;
  let srv;
  let result;
  const sources = [];
  before(async () => {
    dir = await makeTempDir();
    await initDataDir(dir);
    for (const f of syntheaFiles) sources.push(...readNdjson(f));
    result = await runCli(['import', '--data', dir, ...syntheaFiles], { timeout: 180000 });
  });
  after(async () => {
    if (srv) await srv.stop();
    await removeDir(dir);
  });

  it('exits 0 and the summary counts per type match the files', () => {
    assert.equal(result.code, 0, `stderr: ${result.stderr.slice(0, 2000)}`);
    const expected = {};
    for (const r of sources) expected[r.resourceType] = (expected[r.resourceType] || 0) + 1;
    assert.deepEqual(summaryCounts(result.stdout), expected, result.stdout);
    assert.match(result.stdout, new RegExp(`imported ${sources.length} of ${sources.length}\\b`));
    assert.match(result.stdout, /\b0 rejected/);
    assert.doesNotMatch(result.stderr, /rejected/);
  });

  it('every imported resource reads back equal to its source line (but for versionId/lastUpdated)', async () => {
    srv = await startServer({ dataDir: dir });
    const mismatches = [];
    await pool(sources, 8, async (src) => {
      const r = await srv.get(`/fhir/${src.resourceType}/${src.id}`);
      if (r.status !== 200) {
        mismatches.push(`${src.resourceType}/${src.id}: ${r.status}`);
        return;
      }
      assert.equal(r.json.meta.versionId, '1');
      assert.ok(r.json.meta.lastUpdated);
      try {
        assert.deepEqual(withoutServerMeta(r.json), withoutServerMeta(src));
      } catch (e) {
        mismatches.push(`${src.resourceType}/${src.id}: ${e.message.slice(0, 500)}`);
      }
    });
    assert.deepEqual(mismatches.slice(0, 10), [], `${mismatches.length} of ${sources.length} differ`);
  });

  it('the type histories hold exactly the imported resources', async () => {
    const byType = {};
    for (const r of sources) (byType[r.resourceType] ||= new Set()).add(r.id);
    for (const [type, ids] of Object.entries(byType)) {
      const r = await srv.fetch(`/fhir/${type}/_history?_count=1`);
      assert.equal(r.status, 200);
      assert.equal(r.json.total, ids.size, type);
    }
  });
});

describe('import with bad lines', () => {
  let dir;
  let file;
  let result;
  const good = [
    { resourceType: 'Patient', id: 'imp-good-1', name: [{ family: 'One' }] },
    { resourceType: 'Observation', id: 'imp-good-2', status: 'final', code: { text: 'hb' }, effectiveDateTime: '2023-02-28' },
    { resourceType: 'Patient', id: 'imp-good-3', birthDate: '1970-01-01' },
    { resourceType: 'Patient', id: 'imp-good-4', gender: 'female' },
  ];
  const lines = [
    JSON.stringify(good[0]), // 1
    '{"resourceType":"Patient","id":"imp-bad-json",', // 2: invalid JSON
    JSON.stringify(good[1]), // 3
    JSON.stringify({ resourceType: 'Frobnicator', id: 'imp-unknown' }), // 4: unknown type
    JSON.stringify(good[2]), // 5
    JSON.stringify({ resourceType: 'Observation', id: 'imp-bad-date', status: 'final', code: { text: 'x' }, effectiveDateTime: '2023-02-30' }), // 6: bad date
    JSON.stringify(good[3]), // 7
    JSON.stringify({ resourceType: 'Patient', id: 'bad_id!' }), // 8: bad id
  ];
  before(async () => {
    dir = await makeTempDir();
    await initDataDir(dir);
    file = path.join(dir, 'mixed.ndjson');
    await fsp.writeFile(file, lines.join('\n') + '\n');
    result = await runCli(['import', '--data', dir, file]);
  });
  after(async () => removeDir(dir));

  it('exits 3 and reports each bad line with file:line and a reason', () => {
    assert.equal(result.code, 3, `exit ${result.code}; stderr: ${result.stderr}`);
    const rejected = result.stderr.split('\n').filter((l) => l.includes(`${file}:`));
    const at = (n) => rejected.find((l) => l.includes(`${file}:${n}:`) || l.includes(`${file}:${n} `));
    for (const n of [2, 4, 6, 8]) {
      const l = at(n);
      assert.ok(l, `line ${n} is reported: ${result.stderr}`);
      const reason = l.slice(l.indexOf(`${file}:${n}`) + `${file}:${n}`.length).replace(/^[:\s]+/, '');
      assert.ok(reason.length > 5, `line ${n} has a reason: ${l}`);
    }
    for (const n of [1, 3, 5, 7]) assert.equal(at(n), undefined, `line ${n} is not reported`);
    assert.match(at(2), /json|parse|syntax|invalid|end of/i);
    assert.match(at(4), /Frobnicator|type/);
    assert.match(at(6), /date|effective|2023-02-30/i);
    assert.match(at(8), /id/);
    assert.match(result.stdout, /imported 4 of/);
    assert.match(result.stdout, /\b4 rejected/);
  });

  it('the good lines are imported, the bad ones are not', async () => {
    const srv = await startServer({ dataDir: dir });
    try {
      for (const g of good) {
        const r = await srv.fetch(`/fhir/${g.resourceType}/${g.id}`);
        assert.equal(r.status, 200, `${g.resourceType}/${g.id}`);
        assert.deepEqual(withoutServerMeta(r.json), g);
      }
      assert.equal((await srv.fetch('/fhir/Patient/imp-bad-json')).status, 404);
      assert.equal((await srv.fetch('/fhir/Observation/imp-bad-date')).status, 404);
      assert.equal((await srv.fetch('/fhir/Frobnicator/imp-unknown')).status, 404);
      const h = await srv.fetch('/fhir/_history?_count=100');
      assert.equal(h.json.total, good.length, 'nothing else was written');
    } finally {
      await srv.stop();
    }
  });

  it('CRLF line ends, empty lines and a last line without a newline are fine', async () => {
    const f = path.join(dir, 'crlf.ndjson');
    await fsp.writeFile(f, '{"resourceType":"Patient","id":"crlf-1"}\r\n\r\n{"resourceType":"Patient","id":"crlf-2"}\r\n\n{"resourceType":"Patient","id":"crlf-3"}');
    const r = await runCli(['import', '--data', dir, f]);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /imported 3 of 3\b/);
  });

  it('a missing file is a fatal error (exit 1) naming the file', async () => {
    const missing = path.join(dir, 'no-such-file.ndjson');
    const r = await runCli(['import', '--data', dir, missing]);
    assert.equal(r.code, 1, r.stderr);
    assert.ok(r.stderr.includes(missing), r.stderr);
  });
});

describe('import of Bundles', () => {
  let dir;
  let srv;
  const collection = {
    resourceType: 'Bundle',
    type: 'collection',
    entry: [
      { fullUrl: 'urn:uuid:0b0a5bd0-3e4f-4a52-9a57-4f6f3f4b0001', resource: { resourceType: 'Patient', id: 'bundle-p1', name: [{ family: 'Bundled' }] } },
      {
        resource: {
          resourceType: 'Observation',
          id: 'bundle-o1',
          status: 'final',
          code: { coding: [{ system: 'http://loinc.org', code: '718-7', display: 'Hemoglobin' }] },
          subject: { reference: 'Patient/bundle-p1' },
          effectiveDateTime: '2024-03-01T09:30:00Z',
          valueQuantity: { value: 13.9, unit: 'g/dL', system: 'http://unitsofmeasure.org', code: 'g/dL' },
        },
      },
      { resource: { resourceType: 'Condition', id: 'bundle-c1', subject: { reference: 'Patient/bundle-p1' }, code: { text: 'Asthma' } } },
    ],
  };
  const transaction = {
    resourceType: 'Bundle',
    type: 'transaction',
    entry: [
      { fullUrl: 'urn:uuid:6c1f0e2e-0000-4000-8000-000000000001', resource: { resourceType: 'Patient', id: 'bundle-t1', gender: 'male' }, request: { method: 'PUT', url: 'Patient/bundle-t1' } },
      { resource: { resourceType: 'Practitioner', id: 'bundle-t2', name: [{ family: 'Txn' }] }, request: { method: 'PUT', url: 'Practitioner/bundle-t2' } },
    ],
  };
  const lineBundle = { resourceType: 'Bundle', type: 'collection', entry: [{ resource: { resourceType: 'Patient', id: 'bundle-l1' } }] };
  const all = [...collection.entry, ...transaction.entry, ...lineBundle.entry].map((e) => e.resource);

  before(async () => {
    dir = await makeTempDir();
    await initDataDir(dir);
  });
  after(async () => {
    if (srv) await srv.stop();
    await removeDir(dir);
  });

  it('a collection Bundle, a transaction Bundle (both pretty-printed JSON) and an NDJSON line holding a Bundle import', async () => {
    const f1 = path.join(dir, 'collection.json');
    const f2 = path.join(dir, 'transaction.json');
    const f3 = path.join(dir, 'bundles.ndjson');
    await fsp.writeFile(f1, JSON.stringify(collection, null, 2));
    await fsp.writeFile(f2, JSON.stringify(transaction, null, 2));
    await fsp.writeFile(f3, JSON.stringify(lineBundle) + '\n' + JSON.stringify({ resourceType: 'Patient', id: 'bundle-l2' }) + '\n');
    const r = await runCli(['import', '--data', dir, f1, f2, f3]);
    assert.equal(r.code, 0, r.stderr);
    const counts = summaryCounts(r.stdout);
    assert.equal(counts.Patient, 4, r.stdout);
    assert.equal(counts.Observation, 1);
    assert.equal(counts.Condition, 1);
    assert.equal(counts.Practitioner, 1);
    assert.equal(counts.Bundle, undefined, 'Bundles are containers, not stored resources');
    // on record in the command line's stream: one change of the whole import, by the operator
    const q = await runCli(['audit', 'query', '--data', dir, '--node', 'cli', '--format', 'ndjson', '--type', 'fhir.update']);
    assert.equal(q.code, 0, q.stderr);
    const recs = q.stdout.split('\n').filter(Boolean).map((l) => JSON.parse(l));
    assert.deepEqual(recs.map((e) => [e.action, e.agent.role, e.entity]),
      [['U', 'operator', [{ type: 'Bundle', query: `import=${Object.values(counts).reduce((a, b) => a + b, 0)}` }]]], q.stdout);
    assert.match(recs[0].agent.user, /^os:/);
  });

  it('the Bundle entries read back as they were', async () => {
    srv = await startServer({ dataDir: dir });
    for (const res of [...all, { resourceType: 'Patient', id: 'bundle-l2' }]) {
      const r = await srv.fetch(`/fhir/${res.resourceType}/${res.id}`);
      assert.equal(r.status, 200, `${res.resourceType}/${res.id}`);
      assert.deepEqual(withoutServerMeta(r.json), res);
    }
  });

  it('importing the same file again adds a version, keeping ids', async () => {
    await srv.stop();
    srv = null;
    const f1 = path.join(dir, 'collection.json');
    const r = await runCli(['import', '--data', dir, f1]);
    assert.equal(r.code, 0, r.stderr);
    srv = await startServer({ dataDir: dir });
    const p = await srv.fetch('/fhir/Patient/bundle-p1');
    assert.equal(p.json.meta.versionId, '2');
  });
});

describe('import killed with SIGKILL', () => {
  const N = 50000;
  let dir;
  let file;
  const line = (i) =>
    JSON.stringify({
      resourceType: 'Observation',
      id: `kill-obs-${i}`,
      status: 'final',
      category: [{ coding: [{ system: 'http://terminology.hl7.org/CodeSystem/observation-category', code: 'laboratory' }] }],
      code: { coding: [{ system: 'http://loinc.org', code: '2345-7', display: 'Glucose [Mass/volume] in Serum or Plasma' }] },
      subject: { reference: `Patient/kill-p-${i % 100}` },
      effectiveDateTime: `2023-${String((i % 12) + 1).padStart(2, '0')}-${String((i % 28) + 1).padStart(2, '0')}T08:00:00Z`,
      valueQuantity: { value: 70 + (i % 60), unit: 'mg/dL', system: 'http://unitsofmeasure.org', code: 'mg/dL' },
      note: [{ text: `sample ${i} `.repeat(5) }],
    });

  before(async () => {
    dir = await makeTempDir();
    await initDataDir(dir);
    file = path.join(dir, 'big.ndjson');
    const out = fs.createWriteStream(file);
    for (let i = 0; i < N; i++) out.write(line(i) + '\n');
    await new Promise((res) => out.end(res));
  });
  after(async () => removeDir(dir));

  it('leaves only whole resources; history versions equal the resources read; a rerun completes', async (t) => {
    const child = spawn(BIN, ['import', '--data', dir, file], { env: childEnv(), stdio: ['ignore', 'pipe', 'pipe'] });
    let stderr = '';
    child.stderr.on('data', (d) => (stderr += d));
    child.stdout.resume();
    const exited = new Promise((res) => child.on('close', (code, signal) => res({ code, signal })));
    let done = null;
    exited.then((x) => (done = x));
    // Kill once several batches have been committed (the database and its
    // WAL have grown to roughly a fifth of the full import), well before the end.
    const size = (f) => (fs.existsSync(f) ? fs.statSync(f).size : 0);
    const db = path.join(dir, 'veranda.db');
    const t0 = Date.now();
    while (!done && Date.now() - t0 < 60000) {
      if (size(db) + size(`${db}-wal`) > 20 * 1024 * 1024) break;
      await sleep(5);
    }
    child.kill('SIGKILL');
    const exit = await exited;
    assert.equal(exit.signal, 'SIGKILL', `the import was still running when killed (it ended with ${JSON.stringify(exit)}; stderr ${stderr.slice(0, 500)})`);

    const srv = await startServer({ dataDir: dir });
    try {
      const pages = await allPages(srv, '/Observation/_history?_count=1000');
      const entries = pages.flatMap((p) => p.entry);
      const total = pages[0].total;
      assert.equal(entries.length, total);
      assert.ok(total < N, `killed part-way: ${total} of ${N}`);
      t.diagnostic(`killed after ${total} of ${N} resources were committed`);
      const ids = new Set();
      for (const e of entries) {
        assert.ok(e.resource, 'every version is a whole resource');
        const i = Number(e.resource.id.replace('kill-obs-', ''));
        assert.deepEqual(withoutServerMeta(e.resource), JSON.parse(line(i)));
        ids.add(e.resource.id);
      }
      assert.equal(ids.size, entries.length, 'one version per resource');
      // every resource in history reads back whole; the others do not exist
      const idList = [...ids];
      const bad = [];
      await pool(idList, 16, async (id) => {
        const r = await srv.get(`/fhir/Observation/${id}`);
        if (r.status !== 200 || !r.json || r.json.id !== id) bad.push(`${id}: ${r.status}`);
        else {
          const i = Number(id.replace('kill-obs-', ''));
          try {
            assert.deepEqual(withoutServerMeta(r.json), JSON.parse(line(i)));
          } catch {
            bad.push(`${id}: differs`);
          }
        }
      });
      assert.deepEqual(bad.slice(0, 10), [], `${bad.length} resources did not read back whole`);
      assert.equal(idList.length, total, 'resources read = history versions');
      const missing = [];
      for (let i = 0; i < N && missing.length < 20; i += 997) if (!ids.has(`kill-obs-${i}`)) missing.push(i);
      for (const i of missing) assert.equal((await srv.fetch(`/fhir/Observation/kill-obs-${i}`)).status, 404);
      await srv.stop({ keepData: true });

      // run it again to finish
      const again = await runCli(['import', '--data', dir, file], { timeout: 180000 });
      assert.equal(again.code, 0, again.stderr.slice(0, 1000));
      const srv2 = await startServer({ dataDir: dir });
      try {
        const h = await srv2.fetch('/fhir/Observation/_history?_count=1');
        assert.equal(h.json.total, total + N);
        assert.equal((await srv2.fetch(`/fhir/Observation/kill-obs-${N - 1}`)).status, 200);
      } finally {
        await srv2.stop();
      }
    } finally {
      await srv.stop();
    }
  });
});
