// Transactions at their edges: links to urn:uuid entries outside
// Reference.reference, links no entry resolves, full URLs used twice, two
// writes to one resource, conditional creates after the deletes of the
// same transaction, malformed request.ifMatch, and what a rolled-back
// transaction leaves in the audit log.
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { setTimeout as sleep } from 'node:timers/promises';
import { startServer, runCli } from './lib/server.mjs';

const FHIR_JSON = 'application/fhir+json';
const U = (n) => `urn:uuid:5c0e7d1a-2b3c-4d5e-8f90-${String(n).padStart(12, '0')}`;

describe('transaction edges', () => {
  let srv;
  const post = (bundle) =>
    srv.fhirFetch('', {
      method: 'POST',
      headers: { 'content-type': FHIR_JSON, accept: FHIR_JSON },
      body: JSON.stringify(bundle),
    });
  const tx = (entry, type = 'transaction') => post({ resourceType: 'Bundle', type, entry });
  const put = (path, resource) =>
    srv.fhirFetch(path, { method: 'PUT', headers: { 'content-type': FHIR_JSON }, body: JSON.stringify(resource) });
  const count = async (query) => (await srv.fhirFetch(`${query}&_summary=count`)).json.total;
  const noVersion = (loc) => loc.replace(/\/_history\/\d+$/, '');

  before(async () => {
    srv = await startServer();
  });
  after(async () => {
    if (srv) await srv.stop();
  });

  it('links to an entry are resolved in uri and url elements and the narrative, not in Identifier.value', async () => {
    const r = await tx([
      { fullUrl: U(1), resource: { resourceType: 'Patient', name: [{ family: 'Verweis' }] }, request: { method: 'POST', url: 'Patient' } },
      {
        fullUrl: U(2),
        resource: {
          resourceType: 'DocumentReference',
          status: 'current',
          text: { status: 'generated', div: `<div xmlns="http://www.w3.org/1999/xhtml"><a href="${U(1)}">patient</a> <a href="urn:uuid:other">x</a></div>` },
          identifier: [{ system: 'urn:ietf:rfc:3986', value: U(1) }],
          subject: { reference: U(1) },
          content: [{ attachment: { url: U(1) } }],
          extension: [{ url: 'http://example.org/uri', valueUri: U(1) }],
        },
        request: { method: 'POST', url: 'DocumentReference' },
      },
    ]);
    assert.equal(r.status, 200, r.text);
    const pat = noVersion(r.json.entry[0].response.location);
    const doc = (await srv.fhirFetch(`/${noVersion(r.json.entry[1].response.location)}`)).json;
    assert.equal(doc.subject.reference, pat);
    assert.equal(doc.content[0].attachment.url, pat, 'Attachment.url (type url) is resolved');
    assert.equal(doc.extension[0].valueUri, pat, 'valueUri (type uri) is resolved');
    assert.ok(doc.text.div.includes(`href="${pat}"`), doc.text.div);
    assert.ok(doc.text.div.includes('href="urn:uuid:other"'), 'a link to no entry is left as it is');
    assert.equal(doc.identifier[0].value, U(1), 'Identifier.value is a string, not a link');
  });

  it('a reference to a urn:uuid that no entry defines fails the transaction', async () => {
    const r = await tx([
      { resource: { resourceType: 'Patient', name: [{ family: 'Haengend' }] }, request: { method: 'POST', url: 'Patient' } },
      {
        resource: { resourceType: 'Observation', status: 'final', code: { text: 'dangling' }, subject: { reference: U(99) } },
        request: { method: 'POST', url: 'Observation' },
      },
    ]);
    assert.equal(r.status, 400, r.text);
    assert.equal(r.json.resourceType, 'OperationOutcome');
    assert.match(r.json.issue[0].diagnostics, new RegExp(`entry 2: .*'${U(99)}'`));
    assert.equal(await count('/Patient?family=Haengend'), 0, 'nothing of the transaction is kept');
  });

  it('a fullUrl two entries share fails the transaction', async () => {
    const r = await tx([
      { fullUrl: U(3), resource: { resourceType: 'Patient', name: [{ family: 'Doppelt' }] }, request: { method: 'POST', url: 'Patient' } },
      { fullUrl: U(3), resource: { resourceType: 'Patient', name: [{ family: 'Doppelt' }] }, request: { method: 'POST', url: 'Patient' } },
      {
        resource: { resourceType: 'Observation', status: 'final', code: { text: 'which' }, subject: { reference: U(3) } },
        request: { method: 'POST', url: 'Observation' },
      },
    ]);
    assert.equal(r.status, 400, r.text);
    assert.match(r.json.issue[0].diagnostics, /entries 1 and 2 have the same fullUrl/);
    assert.equal(await count('/Patient?family=Doppelt'), 0);
  });

  it('two writes to one resource fail the transaction', async () => {
    const twoPuts = await tx([
      { resource: { resourceType: 'Patient', id: 'edge-twice', name: [{ family: 'Eins' }] }, request: { method: 'PUT', url: 'Patient/edge-twice' } },
      { resource: { resourceType: 'Patient', id: 'edge-twice', name: [{ family: 'Zwei' }] }, request: { method: 'PUT', url: 'Patient/edge-twice' } },
    ]);
    assert.equal(twoPuts.status, 400, twoPuts.text);
    assert.match(twoPuts.json.issue[0].diagnostics, /entry 2 .*Patient\/edge-twice is changed by entry 1/);
    assert.equal((await srv.fhirFetch('/Patient/edge-twice')).status, 404);

    assert.equal((await put('/Patient/edge-kept', { resourceType: 'Patient', id: 'edge-kept' })).status, 201);
    const delPut = await tx([
      { resource: { resourceType: 'Patient', id: 'edge-kept', active: false }, request: { method: 'PUT', url: 'Patient/edge-kept' } },
      { request: { method: 'DELETE', url: 'Patient/edge-kept' } },
    ]);
    assert.equal(delPut.status, 400, delPut.text);
    const kept = await srv.fhirFetch('/Patient/edge-kept');
    assert.equal(kept.status, 200);
    assert.equal(kept.json.meta.versionId, '1', 'neither the delete nor the update was kept');

    // a conditional update resolved to the resource another entry writes
    await put('/Patient/edge-cond', { resourceType: 'Patient', id: 'edge-cond', identifier: [{ system: 'urn:e2e:edge', value: 'cond' }] });
    const cond = await tx([
      { resource: { resourceType: 'Patient', id: 'edge-cond', identifier: [{ system: 'urn:e2e:edge', value: 'cond' }], active: true }, request: { method: 'PUT', url: 'Patient/edge-cond' } },
      { resource: { resourceType: 'Patient', identifier: [{ system: 'urn:e2e:edge', value: 'cond' }] }, request: { method: 'PUT', url: 'Patient?identifier=urn:e2e:edge|cond' } },
    ]);
    assert.equal(cond.status, 400, cond.text);
    assert.equal((await srv.fhirFetch('/Patient/edge-cond')).json.meta.versionId, '1');
  });

  it('two conditional creates that find the same existing resource both answer it: nothing is written twice', async () => {
    await put('/Patient/edge-found', { resourceType: 'Patient', id: 'edge-found', identifier: [{ system: 'urn:e2e:edge', value: 'found' }] });
    const r = await tx([
      { fullUrl: U(70), resource: { resourceType: 'Patient', identifier: [{ system: 'urn:e2e:edge', value: 'found' }] }, request: { method: 'POST', url: 'Patient', ifNoneExist: 'identifier=urn:e2e:edge|found' } },
      { fullUrl: U(71), resource: { resourceType: 'Patient', identifier: [{ system: 'urn:e2e:edge', value: 'found' }] }, request: { method: 'POST', url: 'Patient', ifNoneExist: 'identifier=urn:e2e:edge|found' } },
    ]);
    assert.equal(r.status, 200, r.text);
    assert.deepEqual(r.json.entry.map((e) => e.response.status), ['200 OK', '200 OK']);
    assert.deepEqual(r.json.entry.map((e) => e.response.location.split('/_history')[0]), ['Patient/edge-found', 'Patient/edge-found']);
    assert.equal((await srv.fhirFetch('/Patient/edge-found')).json.meta.versionId, '1');
  });

  it('a conditional create does not find what a DELETE of the same transaction removes', async () => {
    const ident = { system: 'urn:e2e:edge', value: 'recreate' };
    assert.equal((await put('/Patient/edge-old', { resourceType: 'Patient', id: 'edge-old', identifier: [ident] })).status, 201);
    const r = await tx([
      { resource: { resourceType: 'Patient', identifier: [ident], name: [{ family: 'Neu' }] }, request: { method: 'POST', url: 'Patient', ifNoneExist: 'identifier=urn:e2e:edge|recreate' } },
      { request: { method: 'DELETE', url: 'Patient/edge-old' } },
    ]);
    assert.equal(r.status, 200, r.text);
    assert.equal(r.json.entry[0].response.status, '201 Created');
    assert.equal(r.json.entry[1].response.status, '204 No Content');
    const created = noVersion(r.json.entry[0].response.location);
    assert.notEqual(created, 'Patient/edge-old');
    assert.equal((await srv.fhirFetch('/Patient/edge-old')).status, 410);
    const found = await srv.fhirFetch('/Patient?identifier=urn:e2e:edge|recreate');
    assert.deepEqual(found.json.entry.map((e) => `Patient/${e.resource.id}`), [created]);
  });

  it('a malformed request.ifMatch is refused, not read as a version', async () => {
    assert.equal((await put('/Patient/edge-match', { resourceType: 'Patient', id: 'edge-match' })).status, 201);
    for (const ifMatch of ['W/"1x"', 'W/"1', '1"', '"1" junk']) {
      const r = await tx([{ resource: { resourceType: 'Patient', id: 'edge-match', active: true }, request: { method: 'PUT', url: 'Patient/edge-match', ifMatch } }]);
      assert.equal(r.status, 400, `${ifMatch}: ${r.text}`);
      assert.match(r.json.issue[0].diagnostics, /ifMatch/);
    }
    assert.equal((await srv.fhirFetch('/Patient/edge-match')).json.meta.versionId, '1');
    for (const [ifMatch, version] of [['W/"1"', '2'], ['"2"', '3'], ['3', '4']]) {
      const r = await tx([{ resource: { resourceType: 'Patient', id: 'edge-match', active: true }, request: { method: 'PUT', url: 'Patient/edge-match', ifMatch } }]);
      assert.equal(r.status, 200, `${ifMatch}: ${r.text}`);
      assert.equal(r.json.entry[0].response.etag, `W/"${version}"`);
    }
  });

  it('a rolled-back transaction leaves no resource, no version and no audit record of its writes', async () => {
    const r = await tx([
      { fullUrl: U(10), resource: { resourceType: 'Patient', id: 'ignored', name: [{ family: 'Spurlos' }] }, request: { method: 'POST', url: 'Patient' } },
      { resource: { resourceType: 'Patient', id: 'edge-gone', name: [{ family: 'Spurlos' }] }, request: { method: 'PUT', url: 'Patient/edge-gone' } },
      { resource: { resourceType: 'Observation', status: 'final', code: { text: 'x' }, subject: { reference: U(10) } }, request: { method: 'POST', url: 'Observation' } },
      { request: { method: 'GET', url: 'Patient/edge-gone' } },
      { resource: { resourceType: 'Observation', status: 'final' }, request: { method: 'POST', url: 'Observation' } },
    ]);
    assert.equal(r.status, 422, r.text);
    assert.match(r.json.issue[0].diagnostics, /entry 5/);
    assert.equal(await count('/Patient?family=Spurlos'), 0);
    assert.equal((await srv.fhirFetch('/Patient/edge-gone/_history')).status, 404);
    // a later request's record follows any record of the failed one
    assert.equal((await srv.fhirFetch('/Patient/edge-match')).status, 200);
    await sleep(200);
    const q = await runCli(['audit', 'query', '--data', srv.dataDir, '--format', 'ndjson', '--node', 'node-1']);
    assert.equal(q.code, 0, q.stderr);
    const records = q.stdout.split('\n').filter(Boolean).map((l) => JSON.parse(l));
    assert.ok(records.some((x) => x.type === 'fhir.read' && x.entity?.[0]?.id === 'edge-match'), 'the log was read up to the later request');
    const writes = records.filter((x) => x.entity?.some((e) => e.id === 'edge-gone'));
    assert.deepEqual(writes, [], 'no record claims the rolled-back writes or read');
    // the attempt itself is recorded, as a failed write is
    const attempt = records.find((x) => x.correlation?.request === r.headers.get('x-request-id'));
    assert.ok(attempt, 'the failed transaction has a record');
    assert.equal(attempt.type, 'fhir.update');
    assert.equal(attempt.entity?.[0]?.type, 'Bundle');
    assert.notEqual(attempt.outcome, 0, 'recorded as a failure');
    assert.match(attempt.outcomeCode || '', /^[a-z0-9-]+$/);
  });

  it("the Bundle's audit record names its type, whatever its resources say", async () => {
    const r = await tx(
      [{ resource: { resourceType: 'Patient', name: [{ family: 'transaction' }] }, request: { method: 'POST', url: 'Patient' } }],
      'batch',
    );
    assert.equal(r.status, 200, r.text);
    assert.equal(r.json.type, 'batch-response');
    const t = await tx([{ request: { method: 'GET', url: 'Patient?family=transaction' } }]);
    assert.equal(t.status, 200, t.text);
    const q = await runCli(['audit', 'query', '--data', srv.dataDir, '--format', 'ndjson', '--node', 'node-1']);
    assert.equal(q.code, 0, q.stderr);
    const bundles = q.stdout.split('\n').filter(Boolean).map((l) => JSON.parse(l))
      .filter((x) => x.entity?.[0]?.type === 'Bundle').slice(-2);
    assert.deepEqual(bundles.map((x) => x.entity[0].query), ['batch', 'transaction']);
  });
});
