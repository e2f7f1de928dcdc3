// kill -9 in the middle of reads and writes, several times over (security
// plan cases 81 and 83): under the default audit mode ("sync") an answer
// that disclosed data or acknowledged a write is sent only after its audit
// record is durable, so after any crash every such answer's request id must
// be in the audit log, every acknowledged write must be in the store, the
// audit log must verify, and the server must start again on the same data.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { startServer, runCli, sleep } from './lib/server.mjs';

const FHIR_JSON = 'application/fhir+json';
const CYCLES = 3;
const WORKERS = 8;

// Every request id in the data directory's audit log.
async function loggedRequestIds(dir) {
  const r = await runCli(['audit', 'query', '--data', dir, '--format', 'ndjson'], { timeout: 120000 });
  assert.equal(r.code, 0, r.stderr);
  const ids = new Set();
  for (const line of r.stdout.split('\n')) {
    if (!line.trim()) continue;
    const rec = JSON.parse(line);
    const id = rec.correlation?.request ?? JSON.parse(rec.record ?? '{}').correlation?.request;
    if (id) ids.add(id);
  }
  return ids;
}

describe('kill -9 under load', () => {
  it(`${CYCLES} crashes lose no acknowledged write and no record of a disclosed read`, async () => {
    let srv = await startServer({ patients: 0, seed: true });
    const dir = srv.dataDir;
    const writes = new Map(); // id -> the acknowledged resource
    const disclosed = [];     // request ids of answers that carried data or acknowledged a write
    const what = new Map();   // request id -> what it was, for the failure message
    try {
      for (let cycle = 0; cycle < CYCLES; cycle++) {
        let stop = false;
        const load = Array.from({ length: WORKERS }, async (_, w) => {
          for (let i = 0; !stop; i++) {
            try {
              let r;
              if (i % 3 === 2) {
                const id = `crash-${cycle}-${w}-${i % 7}`;
                r = await srv.fetch(`/fhir/Observation/${id}`, {
                  method: 'PUT',
                  headers: { 'content-type': FHIR_JSON },
                  body: JSON.stringify({ resourceType: 'Observation', id, status: 'final', code: { text: `c${cycle} i${i}` },
                    subject: { reference: 'Patient/alice' } }),
                });
                if (r.status === 200 || r.status === 201) writes.set(id, r.json);
              } else {
                r = await srv.fetch(i % 3 ? '/fhir/Observation?patient=alice&_count=5' : '/fhir/Patient/alice');
              }
              if (r.status >= 200 && r.status < 300) {
                disclosed.push(r.headers.get('x-request-id'));
                what.set(r.headers.get('x-request-id'), `cycle ${cycle} worker ${w} request ${i}: ${r.status}`);
              }
            } catch {
              return; // the server is gone
            }
          }
        });
        await sleep(700 + 300 * cycle);
        await srv.kill();
        stop = true;
        await Promise.all(load);
        assert.ok(disclosed.length > 50, `load ran (${disclosed.length} answers)`);
        srv = await startServer({ dataDir: dir, init: false });
      }
      // every acknowledged write: the version acknowledged last, or a later one
      // whose answer the crash cut off (committed, never acknowledged)
      for (const [id, res] of writes) {
        const r = await srv.fetch(`/fhir/Observation/${id}`);
        assert.equal(r.status, 200, id);
        const now = Number(r.json.meta.versionId), acked = Number(res.meta.versionId);
        assert.ok(now >= acked, `${id}: version ${now} is older than the acknowledged ${acked}`);
        if (now === acked) assert.deepEqual(r.json, res, `${id} is the version acknowledged last`);
        else assert.deepEqual((await srv.fetch(`/fhir/Observation/${id}/_history/${acked}`)).json, res, `${id}: the acknowledged version is in its history`);
      }
      await srv.stop();
      // every disclosure has its record, and the log verifies
      const ids = await loggedRequestIds(dir);
      const missing = disclosed.filter((id) => !ids.has(id));
      assert.deepEqual(missing.slice(0, 5).map((id) => `${id} (${what.get(id)})`), [],
        `${missing.length} of ${disclosed.length} answers have no audit record`);
      const v = await runCli(['audit', 'verify', '--data', dir], { timeout: 120000 });
      assert.equal(v.code, 0, v.stdout + v.stderr);
    } finally {
      await srv.stop();
    }
  });
});
