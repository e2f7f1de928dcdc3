// Conditional create (If-None-Exist), update (PUT Type?query) and delete
// (DELETE Type?query) over REST: what each answers for no match, one match
// and several, that a refused one keeps nothing, that each is audited as
// the plain interaction is, and that the scopes bound them (a conditional
// interaction searches, so it needs the search scope too).
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startServer, runCli, sleep, etagVersion } from './lib/server.mjs';
import { registerClient, keyPair, assertion, postForm, JWT_BEARER } from './lib/oauth.mjs';

const FHIR_JSON = 'application/fhir+json';
const H = { 'content-type': FHIR_JSON, accept: FHIR_JSON };
const SYS = 'http://example.org/cond';

function assertOutcome(r, status, pattern) {
  assert.equal(r.status, status, `expected ${status}, got ${r.status}: ${r.text.slice(0, 300)}`);
  assert.equal(r.json?.resourceType, 'OperationOutcome', r.text.slice(0, 300));
  if (pattern) assert.match(r.json.issue[0].diagnostics, pattern);
}

const patient = (value, extra = {}) => ({ resourceType: 'Patient', identifier: [{ system: SYS, value }], ...extra });

describe('conditional interactions over REST', () => {
  let srv;
  const send = (method, p, body, headers = {}) =>
    srv.fhirFetch(p, { method, headers: { ...H, ...headers }, body: body === undefined ? undefined : JSON.stringify(body) });
  const byIdent = async (value) => {
    const r = await srv.fhirFetch(`/Patient?identifier=${encodeURIComponent(`${SYS}|${value}`)}`, { headers: { accept: FHIR_JSON } });
    assert.equal(r.status, 200, r.text);
    return (r.json.entry || []).map((e) => e.resource);
  };
  const records = async () => {
    await sleep(300);
    const q = await runCli(['audit', 'query', '--data', srv.dataDir, '--format', 'ndjson', '--node', 'node-1']);
    assert.equal(q.code, 0, q.stderr);
    return q.stdout.split('\n').filter(Boolean).map((l) => JSON.parse(l));
  };
  const recordOf = (all, r) => all.filter((x) => x.correlation?.request === r.headers.get('x-request-id'));

  before(async () => {
    srv = await startServer();
  });
  after(async () => {
    if (srv) await srv.stop();
  });

  it('If-None-Exist creates once (201), then answers the match (200) without writing', async () => {
    const first = await send('POST', '/Patient', patient('c1', { gender: 'female' }), { 'if-none-exist': `identifier=${SYS}|c1` });
    assert.equal(first.status, 201, first.text);
    const id = first.json.id;
    assert.match(first.headers.get('location'), new RegExp(`/fhir/Patient/${id}/_history/1$`));
    assert.equal(etagVersion(first.headers.get('etag')), 1);
    // the header's other spellings, and a body that differs: the match is answered as it is
    for (const ine of [`identifier=${SYS}|c1`, `?identifier=${SYS}|c1`, `Patient?identifier=${encodeURIComponent(`${SYS}|c1`)}`]) {
      const again = await send('POST', '/Patient', patient('c1', { gender: 'male' }), { 'if-none-exist': ine });
      assert.equal(again.status, 200, `${ine}: ${again.text}`);
      assert.equal(again.json.id, id);
      assert.equal(again.json.gender, 'female');
      assert.equal(etagVersion(again.headers.get('etag')), 1);
    }
    const found = await byIdent('c1');
    assert.equal(found.length, 1);
    assert.equal(found[0].meta.versionId, '1');
    // Prefer: return=OperationOutcome says that nothing was written
    const oo = await send('POST', '/Patient', patient('c1'), { 'if-none-exist': `identifier=${SYS}|c1`, prefer: 'return=OperationOutcome' });
    assertOutcome(oo, 200, new RegExp(`Patient/${id} already exists as version 1`));
    // Prefer: return=minimal gives no body but the Location
    const min = await send('POST', '/Patient', patient('c1b'), { 'if-none-exist': `identifier=${SYS}|c1b`, prefer: 'return=minimal' });
    assert.equal(min.status, 201);
    assert.equal(min.text, '');
    assert.match(min.headers.get('location'), /\/fhir\/Patient\/[^/]+\/_history\/1$/);
  });

  it('If-None-Exist that matches several resources is 412 and creates nothing', async () => {
    for (let i = 0; i < 2; i++) assert.equal((await send('POST', '/Patient', patient('dup')).then((r) => r.status)), 201);
    const r = await send('POST', '/Patient', patient('dup', { gender: 'other' }), { 'if-none-exist': `identifier=${SYS}|dup` });
    assertOutcome(r, 412, /more than one/);
    assert.doesNotMatch(r.json.issue[0].diagnostics, /entry/);
    assert.equal((await byIdent('dup')).length, 2);
    // an unknown parameter would widen the match to everything: refused, nothing written
    const bad = await send('POST', '/Patient', patient('unk'), { 'if-none-exist': 'no-such-param=1' });
    assertOutcome(bad, 400);
    assert.equal((await byIdent('unk')).length, 0);
    // a body that is not JSON is the create's own 400
    const junk = await srv.fhirFetch('/Patient', { method: 'POST', headers: { ...H, 'if-none-exist': `identifier=${SYS}|j` }, body: '{"resourceType":"Patient",' });
    assertOutcome(junk, 400);
  });

  it('PUT Type?query: no match creates, one match updates it, several is 412', async () => {
    const q = `/Patient?identifier=${encodeURIComponent(`${SYS}|u1`)}`;
    const made = await send('PUT', q, patient('u1', { gender: 'female' }));
    assert.equal(made.status, 201, made.text);
    const id = made.json.id;
    const upd = await send('PUT', q, patient('u1', { gender: 'male' }));
    assert.equal(upd.status, 200, upd.text);
    assert.equal(upd.json.id, id);
    assert.equal(upd.json.meta.versionId, '2');
    assert.equal(etagVersion(upd.headers.get('etag')), 2);
    // the body may carry the match's id, but no other
    const same = await send('PUT', q, patient('u1', { id, gender: 'other' }));
    assert.equal(same.status, 200, same.text);
    const other = await send('PUT', q, patient('u1', { id: 'not-the-match', gender: 'unknown' }));
    assertOutcome(other, 400, /id/);
    assert.equal((await byIdent('u1'))[0].gender, 'other');
    // If-Match applies to the match
    const stale = await send('PUT', q, patient('u1', { gender: 'female' }), { 'if-match': 'W/"1"' });
    assertOutcome(stale, 412);
    const fresh = await send('PUT', q, patient('u1', { gender: 'female' }), { 'if-match': 'W/"3"' });
    assert.equal(fresh.status, 200, fresh.text);
    assert.equal(fresh.json.meta.versionId, '4');
    // several matches
    const sev = await send('PUT', `/Patient?identifier=${encodeURIComponent(`${SYS}|dup`)}`, patient('dup', { gender: 'female' }));
    assertOutcome(sev, 412, /more than one/);
    for (const p of await byIdent('dup')) assert.equal(p.meta.versionId, '1');
  });

  it('PUT Type?query with no match and an id creates that id, but never overwrites a resource the query did not match', async () => {
    const taken = await send('PUT', '/Patient/cond-taken', { resourceType: 'Patient', id: 'cond-taken', gender: 'female' });
    assert.equal(taken.status, 201, taken.text);
    const over = await send('PUT', `/Patient?identifier=${encodeURIComponent(`${SYS}|none`)}`, patient('none', { id: 'cond-taken', gender: 'male' }));
    assertOutcome(over, 412, /exists/);
    const kept = await srv.fhirFetch('/Patient/cond-taken', { headers: { accept: FHIR_JSON } });
    assert.equal(kept.json.gender, 'female');
    assert.equal(kept.json.meta.versionId, '1');
    const made = await send('PUT', `/Patient?identifier=${encodeURIComponent(`${SYS}|chosen`)}`, patient('chosen', { id: 'cond-chosen' }));
    assert.equal(made.status, 201, made.text);
    assert.equal(made.json.id, 'cond-chosen');
    assert.match(made.headers.get('location'), /\/fhir\/Patient\/cond-chosen\/_history\/1$/);
  });

  it('DELETE Type?query deletes the one match, answers 204 for none, and 412 for several (nothing deleted)', async () => {
    const made = await send('POST', '/Patient', patient('d1'));
    assert.equal(made.status, 201);
    const del = await srv.fhirFetch(`/Patient?identifier=${encodeURIComponent(`${SYS}|d1`)}`, { method: 'DELETE' });
    assert.equal(del.status, 204, del.text);
    assert.equal(etagVersion(del.headers.get('etag')), 2);
    assert.equal((await srv.fhirFetch(`/Patient/${made.json.id}`)).status, 410);
    const none = await srv.fhirFetch(`/Patient?identifier=${encodeURIComponent(`${SYS}|d1`)}`, { method: 'DELETE' });
    assert.equal(none.status, 204, none.text);
    const sev = await srv.fhirFetch(`/Patient?identifier=${encodeURIComponent(`${SYS}|dup`)}`, { method: 'DELETE', headers: { accept: FHIR_JSON } });
    assertOutcome(sev, 412, /more than one/);
    assert.equal((await byIdent('dup')).length, 2);
    // no match answers as a delete of a missing resource: If-Match names a version that is not there
    const im = await srv.fhirFetch(`/Patient?identifier=${encodeURIComponent(`${SYS}|none-at-all`)}`, { method: 'DELETE', headers: { accept: FHIR_JSON, 'if-match': 'W/"1"' } });
    assertOutcome(im, 412, /matched no Patient/);
    const oo = await srv.fhirFetch(`/Patient?identifier=${encodeURIComponent(`${SYS}|none-at-all`)}`, { method: 'DELETE', headers: { accept: FHIR_JSON, prefer: 'return=OperationOutcome' } });
    assertOutcome(oo, 200, /matched no Patient; nothing to delete/);
  });

  it('an If-None-Exist that is not UTF-8 is 400, not a plain create', async () => {
    const before = (await srv.fhirFetch('/Patient?_summary=count', { headers: { accept: FHIR_JSON } })).json.total;
    // the header's bytes as sent: 0xFC alone is not UTF-8
    const r = await send('POST', '/Patient', patient('latin'), { 'if-none-exist': `identifier=${SYS}|M\u00fcller` });
    assertOutcome(r, 400, /UTF-8/);
    assert.equal((await srv.fhirFetch('/Patient?_summary=count', { headers: { accept: FHIR_JSON } })).json.total, before);
  });

  it('a conditional update or delete without search parameters is 400 and changes nothing', async () => {
    const before = (await srv.fhirFetch('/Patient?_summary=count', { headers: { accept: FHIR_JSON } })).json.total;
    assertOutcome(await send('PUT', '/Patient', patient('np')), 400, /search parameters/);
    assertOutcome(await srv.fhirFetch('/Patient', { method: 'DELETE', headers: { accept: FHIR_JSON } }), 400, /search parameters/);
    assertOutcome(await srv.fhirFetch('/Patient?_format=json', { method: 'DELETE', headers: { accept: FHIR_JSON } }), 400, /search parameters/);
    const after = (await srv.fhirFetch('/Patient?_summary=count', { headers: { accept: FHIR_JSON } })).json.total;
    assert.equal(after, before);
  });

  it('decimals keep their written form through a conditional create and update', async () => {
    const obs = (v) => `{"resourceType":"Observation","status":"final","identifier":[{"system":"${SYS}","value":"dec"}],"code":{"text":"x"},"valueQuantity":{"value":${v},"unit":"mg"}}`;
    const c = await srv.fhirFetch('/Observation', { method: 'POST', headers: { ...H, 'if-none-exist': `identifier=${SYS}|dec` }, body: obs('1.50') });
    assert.equal(c.status, 201, c.text);
    assert.match(c.text, /"value":1\.50\b/);
    const u = await srv.fhirFetch(`/Observation?identifier=${encodeURIComponent(`${SYS}|dec`)}`, { method: 'PUT', headers: H, body: obs('2.000') });
    assert.equal(u.status, 200, u.text);
    const read = await srv.fhirFetch(`/Observation/${c.json.id}`, { headers: { accept: FHIR_JSON } });
    assert.match(read.text, /"value":2\.000\b/);
  });

  it('each is audited as the plain interaction, a refused one as a failure', async () => {
    const c = await send('POST', '/Patient', patient('a1'), { 'if-none-exist': `identifier=${SYS}|a1` });
    const m = await send('POST', '/Patient', patient('a1'), { 'if-none-exist': `identifier=${SYS}|a1` });
    const u = await send('PUT', `/Patient?identifier=${encodeURIComponent(`${SYS}|a1`)}`, patient('a1', { gender: 'male' }));
    const f = await send('PUT', `/Patient?identifier=${encodeURIComponent(`${SYS}|dup`)}`, patient('dup'));
    const d = await srv.fhirFetch(`/Patient?identifier=${encodeURIComponent(`${SYS}|a1`)}`, { method: 'DELETE' });
    assert.deepEqual([c.status, m.status, u.status, f.status, d.status], [201, 200, 200, 412, 204]);
    const all = await records();
    const one = (r, type, outcome = 0) => {
      const recs = recordOf(all, r);
      const rec = recs.find((x) => x.type === type);
      assert.ok(rec, `a ${type} record for ${r.status}: ${JSON.stringify(recs)}`);
      assert.equal(rec.outcome, outcome);
      return rec;
    };
    const id = c.json.id;
    assert.equal(one(c, 'fhir.create').entity[0].id, id);
    assert.equal(one(c, 'fhir.create').patient, id);
    assert.equal(one(m, 'fhir.read').entity[0].id, id);
    assert.equal(one(u, 'fhir.update').entity[0].version, '2');
    assert.equal(one(f, 'fhir.update', 4).outcome, 4);
    assert.equal(one(d, 'fhir.delete').entity[0].id, id);
    // a conditional delete that matched nothing is on record too (type only)
    const none = await srv.fhirFetch(`/Patient?identifier=${encodeURIComponent(`${SYS}|a1`)}`, { method: 'DELETE' });
    assert.equal(none.status, 204);
    const rec = recordOf(await records(), none).find((x) => x.type === 'fhir.delete');
    assert.ok(rec, 'a fhir.delete record');
    assert.equal(rec.entity[0].type, 'Patient');
    assert.equal(rec.entity[0].id, undefined);
    // no Bundle record: the client sent no Bundle
    for (const r of [c, m, u, d]) assert.ok(!recordOf(all, r).some((x) => x.entity?.[0]?.type === 'Bundle'));
  });

  it('the CapabilityStatement claims conditional create, update and single delete', async () => {
    const cs = (await srv.fhirFetch('/metadata', { headers: { accept: FHIR_JSON } })).json;
    const p = cs.rest[0].resource.find((r) => r.type === 'Patient');
    assert.equal(p.conditionalCreate, true);
    assert.equal(p.conditionalUpdate, true);
    assert.equal(p.conditionalDelete, 'single');
    const ae = cs.rest[0].resource.find((r) => r.type === 'AuditEvent');
    assert.equal(ae.conditionalCreate, false);
  });

  it('a conditional interaction needs the search scope as well as the write scope', async () => {
    const key = await keyPair('ES384');
    const clientId = 'cond-nosearch';
    await registerClient(srv.dataDir, { clientId, jwks: { keys: [key.publicJwk] }, scope: 'system/Patient.cud' });
    const tokenUrl = `${srv.baseUrl}/oauth/token`;
    const t = await postForm(tokenUrl, { grant_type: 'client_credentials', scope: 'system/Patient.cud', client_assertion_type: JWT_BEARER,
      client_assertion: await assertion(tokenUrl, clientId, key) });
    assert.equal(t.status, 200, t.text);
    const auth = { authorization: `Bearer ${t.json.access_token}` };
    // a plain create works with this token
    const plain = await send('POST', '/Patient', patient('ns'), auth);
    assert.equal(plain.status, 201, plain.text);
    for (const [method, p, hdr] of [['POST', '/Patient', { 'if-none-exist': `identifier=${SYS}|ns` }],
      ['PUT', `/Patient?identifier=${encodeURIComponent(`${SYS}|ns`)}`, {}], ['DELETE', `/Patient?identifier=${encodeURIComponent(`${SYS}|ns`)}`, {}]]) {
      const r = await send(method, p, method === 'DELETE' ? undefined : patient('ns', { gender: 'male' }), { ...auth, ...hdr });
      assertOutcome(r, 403, /search/);
    }
    const left = await byIdent('ns');
    assert.equal(left.length, 1);
    assert.equal(left[0].meta.versionId, '1');
  });
});

describe('conditional interactions with the audit log off', () => {
  let srv;
  before(async () => {
    srv = await startServer({ args: ['--audit', 'off'] });
  });
  after(async () => {
    if (srv) await srv.stop();
  });

  it('answer as with it on (the answer does not depend on the records)', async () => {
    const send = (method, p, body, headers = {}) =>
      srv.fhirFetch(p, { method, headers: { ...H, ...headers }, body: body === undefined ? undefined : JSON.stringify(body) });
    const c = await send('POST', '/Patient', patient('off-1'), { 'if-none-exist': `identifier=${SYS}|off-1` });
    assert.equal(c.status, 201, c.text);
    assert.equal(c.json.resourceType, 'Patient');
    const m = await send('POST', '/Patient', patient('off-1'), { 'if-none-exist': `identifier=${SYS}|off-1` });
    assert.equal(m.status, 200, m.text);
    assert.equal(m.json.id, c.json.id);
    const u = await send('PUT', `/Patient?identifier=${encodeURIComponent(`${SYS}|off-1`)}`, patient('off-1', { gender: 'male' }));
    assert.equal(u.status, 200, u.text);
    assert.equal(u.json.meta.versionId, '2');
    const d = await srv.fhirFetch(`/Patient?identifier=${encodeURIComponent(`${SYS}|off-1`)}`, { method: 'DELETE' });
    assert.equal(d.status, 204);
    assert.equal(etagVersion(d.headers.get('etag')), 3);
  });
});
