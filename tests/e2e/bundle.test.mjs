// Batch and transaction Bundles (POST [base]): all-or-nothing transactions,
// urn:uuid references, conditional create / update / delete, processing
// order, per-entry statuses in batches, and the FHIR client's own
// transaction call.
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { Client } from 'fhir-kit-client';
import { startServer } from './lib/server.mjs';

const FHIR_JSON = 'application/fhir+json';

describe('batch and transaction', () => {
  let srv;
  let client;
  const post = (bundle, headers = {}) =>
    srv.fhirFetch('', {
      method: 'POST',
      headers: { 'content-type': FHIR_JSON, accept: FHIR_JSON, ...headers },
      body: JSON.stringify(bundle),
    });
  const count = async (query) => (await srv.fhirFetch(`${query}&_summary=count`)).json.total;

  before(async () => {
    srv = await startServer();
    client = new Client({ baseUrl: srv.fhirBase, customHeaders: srv.authHeaders });
  });
  after(async () => {
    if (srv) await srv.stop();
  });

  it('a transaction creates resources and resolves urn:uuid references', async () => {
    const pat = 'urn:uuid:3a9f4c2e-1111-4a2b-9c3d-000000000001';
    const r = await post({
      resourceType: 'Bundle',
      type: 'transaction',
      entry: [
        {
          fullUrl: 'urn:uuid:3a9f4c2e-1111-4a2b-9c3d-000000000002',
          resource: { resourceType: 'Observation', status: 'final', code: { text: 'tx-obs' }, subject: { reference: pat } },
          request: { method: 'POST', url: 'Observation' },
        },
        {
          fullUrl: pat,
          resource: { resourceType: 'Patient', name: [{ family: 'Transaktion' }] },
          request: { method: 'POST', url: 'Patient' },
        },
      ],
    });
    assert.equal(r.status, 200, r.text);
    assert.equal(r.json.type, 'transaction-response');
    assert.equal(r.json.entry.length, 2);
    for (const e of r.json.entry) assert.match(e.response.status, /^201/);
    const obsLoc = r.json.entry[0].response.location;
    const patLoc = r.json.entry[1].response.location;
    assert.match(patLoc, /^Patient\/[^/]+\/_history\/1$/);
    const obs = (await srv.fhirFetch(obsLoc.replace(/\/_history\/1$/, ''))).json;
    assert.equal(obs.subject.reference, patLoc.replace(/\/_history\/1$/, ''), 'the urn:uuid reference points at the new Patient');
  });

  it('a failing transaction keeps nothing and names the entry', async () => {
    const before = await count('/Patient?family=Rueckgaengig');
    const r = await post({
      resourceType: 'Bundle',
      type: 'transaction',
      entry: [
        { resource: { resourceType: 'Patient', name: [{ family: 'Rueckgaengig' }] }, request: { method: 'POST', url: 'Patient' } },
        { resource: { resourceType: 'Patient', id: 'tx-upd', name: [{ family: 'Rueckgaengig' }] }, request: { method: 'PUT', url: 'Patient/tx-upd' } },
        {
          resource: { resourceType: 'Observation', status: 'final', code: { text: 'x' }, effectiveDateTime: '2023-02-30' },
          request: { method: 'POST', url: 'Observation' },
        },
      ],
    });
    assert.equal(r.status, 422, r.text);
    assert.equal(r.json.resourceType, 'OperationOutcome');
    assert.match(r.json.issue[0].diagnostics, /entry 3/);
    assert.equal(await count('/Patient?family=Rueckgaengig'), before, 'no Patient of the failed transaction exists');
    assert.equal((await srv.fhirFetch('/Patient/tx-upd')).status, 404, 'the PUT of the failed transaction was rolled back');
  });

  it('conditional create (ifNoneExist) creates once, then returns the existing resource', async () => {
    const bundle = {
      resourceType: 'Bundle',
      type: 'transaction',
      entry: [
        {
          resource: { resourceType: 'Patient', identifier: [{ system: 'urn:e2e:mrn', value: 'cc-1' }] },
          request: { method: 'POST', url: 'Patient', ifNoneExist: 'identifier=urn:e2e:mrn|cc-1' },
        },
      ],
    };
    const a = await post(bundle);
    assert.equal(a.status, 200, a.text);
    assert.match(a.json.entry[0].response.status, /^201/);
    const b = await post(bundle);
    assert.match(b.json.entry[0].response.status, /^200/);
    assert.equal(b.json.entry[0].response.location, a.json.entry[0].response.location);
    assert.equal(await count('/Patient?identifier=urn:e2e:mrn|cc-1'), 1);
  });

  it('conditional update and conditional delete find their target by search', async () => {
    const put = (family) => ({
      resourceType: 'Bundle',
      type: 'transaction',
      entry: [
        {
          resource: { resourceType: 'Patient', identifier: [{ system: 'urn:e2e:mrn', value: 'cu-1' }], name: [{ family }] },
          request: { method: 'PUT', url: 'Patient?identifier=urn:e2e:mrn|cu-1' },
        },
      ],
    });
    const a = await post(put('Erst'));
    assert.match(a.json.entry[0].response.status, /^201/, 'no match: created');
    const b = await post(put('Zweit'));
    assert.match(b.json.entry[0].response.status, /^200/, 'one match: updated');
    assert.equal(b.json.entry[0].response.location.split('/')[1], a.json.entry[0].response.location.split('/')[1]);
    assert.match(b.json.entry[0].response.location, /_history\/2$/);
    const d = await post({
      resourceType: 'Bundle',
      type: 'transaction',
      entry: [{ request: { method: 'DELETE', url: 'Patient?identifier=urn:e2e:mrn|cu-1' } }],
    });
    assert.equal(d.status, 200, d.text);
    assert.equal(await count('/Patient?identifier=urn:e2e:mrn|cu-1'), 0);
  });

  it('a conditional update that matches several resources fails with 412', async () => {
    for (let i = 0; i < 2; i++) {
      await srv.fhirFetch('/Patient', {
        method: 'POST',
        headers: { 'content-type': FHIR_JSON },
        body: JSON.stringify({ resourceType: 'Patient', identifier: [{ system: 'urn:e2e:dup', value: 'd' }] }),
      });
    }
    const r = await post({
      resourceType: 'Bundle',
      type: 'transaction',
      entry: [{ resource: { resourceType: 'Patient' }, request: { method: 'PUT', url: 'Patient?identifier=urn:e2e:dup|d' } }],
    });
    assert.equal(r.status, 412, r.text);
    assert.equal(r.json.resourceType, 'OperationOutcome');
  });

  it('a PUT or DELETE entry whose url names both an id and a search is 400, and nothing is written', async () => {
    const made = await srv.fhirFetch('/Patient/bq-1', { method: 'PUT', headers: { 'content-type': FHIR_JSON },
      body: JSON.stringify({ resourceType: 'Patient', id: 'bq-1', gender: 'female' }) });
    assert.equal(made.status, 201, made.text);
    const tx = await post({
      resourceType: 'Bundle',
      type: 'transaction',
      entry: [{ resource: { resourceType: 'Patient', id: 'bq-1', gender: 'male' }, request: { method: 'PUT', url: 'Patient/bq-1?identifier=urn:e2e:x|1' } }],
    });
    assert.equal(tx.status, 400, tx.text);
    assert.match(tx.json.issue[0].diagnostics, /names both a resource and a search/);
    const batch = await post({
      resourceType: 'Bundle',
      type: 'batch',
      entry: [{ request: { method: 'DELETE', url: 'Patient/bq-1?gender=female' } }],
    });
    assert.equal(batch.status, 200, batch.text);
    assert.match(batch.json.entry[0].response.status, /^400/);
    const now = await srv.fhirFetch('/Patient/bq-1', { headers: { accept: FHIR_JSON } });
    assert.equal(now.status, 200);
    assert.equal(now.json.gender, 'female');
    assert.equal(now.json.meta.versionId, '1');
  });

  it('a batch answers each entry on its own', async () => {
    const r = await post({
      resourceType: 'Bundle',
      type: 'batch',
      entry: [
        { resource: { resourceType: 'Patient', name: [{ family: 'Stapel' }] }, request: { method: 'POST', url: 'Patient' } },
        { request: { method: 'GET', url: 'Patient/does-not-exist' } },
        { resource: { resourceType: 'Observation', status: 'final' }, request: { method: 'POST', url: 'Observation' } },
        { request: { method: 'GET', url: 'Patient?family=Stapel' } },
        { request: { method: 'PATCH', url: 'Patient/x' } },
      ],
    });
    assert.equal(r.status, 200, r.text);
    assert.equal(r.json.type, 'batch-response');
    const st = r.json.entry.map((e) => e.response.status.slice(0, 3));
    assert.deepEqual(st, ['201', '404', '422', '200', '400']);
    assert.equal(r.json.entry[1].response.outcome.resourceType, 'OperationOutcome');
    assert.equal(r.json.entry[3].resource.type, 'searchset');
    assert.equal(r.json.entry[3].resource.total, 1, 'the GET sees the POST of the same batch');
  });

  it('transaction entries run in FHIR order: DELETE, POST, PUT, GET', async () => {
    await srv.fhirFetch('/Patient/order-1', {
      method: 'PUT',
      headers: { 'content-type': FHIR_JSON },
      body: JSON.stringify({ resourceType: 'Patient', id: 'order-1', name: [{ family: 'Reihenfolge' }] }),
    });
    const r = await post({
      resourceType: 'Bundle',
      type: 'transaction',
      entry: [
        { request: { method: 'GET', url: 'Patient?family=Reihenfolge' } },
        { resource: { resourceType: 'Patient', id: 'order-2', name: [{ family: 'Reihenfolge' }] }, request: { method: 'PUT', url: 'Patient/order-2' } },
        { request: { method: 'DELETE', url: 'Patient/order-1' } },
      ],
    });
    assert.equal(r.status, 200, r.text);
    // the GET is answered last: it sees the delete and the put
    const ids = r.json.entry[0].resource.entry.map((e) => e.resource.id);
    assert.deepEqual(ids, ['order-2']);
    assert.match(r.json.entry[2].response.status, /^204/);
  });

  it('malformed Bundles get a 400 OperationOutcome', async () => {
    for (const bad of [
      { resourceType: 'Patient' },
      { resourceType: 'Bundle', type: 'collection', entry: [] },
      { resourceType: 'Bundle', type: 'transaction', entry: [{ resource: { resourceType: 'Patient' } }] },
      { resourceType: 'Bundle', type: 'transaction', entry: [{ resource: { resourceType: 'Observation' }, request: { method: 'POST', url: 'Patient' } }] },
    ]) {
      const r = await post(bad);
      assert.equal(r.status, 400, `${JSON.stringify(bad)}: ${r.text}`);
      assert.equal(r.json.resourceType, 'OperationOutcome');
    }
  });

  it("fhir-kit-client's transaction and batch calls work", async () => {
    const tx = await client.transaction({
      body: {
        resourceType: 'Bundle',
        type: 'transaction',
        entry: [{ resource: { resourceType: 'Patient', name: [{ family: 'Kit' }] }, request: { method: 'POST', url: 'Patient' } }],
      },
    });
    assert.equal(tx.type, 'transaction-response');
    const b = await client.batch({
      body: { resourceType: 'Bundle', type: 'batch', entry: [{ request: { method: 'GET', url: 'Patient?family=Kit' } }] },
    });
    assert.equal(b.type, 'batch-response');
    assert.equal(b.entry[0].resource.total, 1);
  });
});
