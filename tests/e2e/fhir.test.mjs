// The FHIR REST API through a real client (fhir-kit-client) and raw fetch:
// capabilities, create/read/vread/update/delete, history and paging,
// conditional requests, Prefer, content negotiation and every error status.
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { Client } from 'fhir-kit-client';
import { startServer, allPages, entryKey, etagVersion, sleep } from './lib/server.mjs';

const BODY_MAX = 65536;
const TYPES = [
  'AllergyIntolerance', 'Appointment', 'AuditEvent', 'Binary', 'CarePlan', 'CareTeam', 'Communication',
  'Condition', 'Consent', 'Device', 'DiagnosticReport', 'DocumentReference', 'Encounter', 'Goal',
  'Immunization', 'Location', 'Medication', 'MedicationRequest', 'Observation', 'Organization', 'Patient',
  'Practitioner', 'PractitionerRole', 'Procedure', 'Provenance', 'Questionnaire', 'QuestionnaireResponse',
  'RelatedPerson', 'ServiceRequest', 'Task',
];
const RW = ['create', 'delete', 'history-instance', 'history-type', 'read', 'update', 'vread'];
const FHIR_JSON = 'application/fhir+json';
const H = { 'content-type': FHIR_JSON, accept: FHIR_JSON };

let srv;
let client;

before(async () => {
  srv = await startServer({ args: ['--fhir-body-max', String(BODY_MAX)] });
  client = new Client({ baseUrl: srv.fhirBase, customHeaders: srv.authHeaders });
});
after(async () => {
  if (srv) await srv.stop();
});

const http = (res) => Client.httpFor(res).response;

async function clientError(promise) {
  try {
    await promise;
  } catch (e) {
    if (!e.response) throw e;
    return e.response;
  }
  assert.fail('the request was expected to fail');
}

function assertOutcome(r, status) {
  assert.equal(r.status, status, `expected ${status}, got ${r.status}: ${r.text ?? JSON.stringify(r.data)}`);
  const oo = r.json ?? r.data;
  assert.equal(oo && oo.resourceType, 'OperationOutcome', `an OperationOutcome: ${r.text ?? JSON.stringify(oo)}`);
  assert.ok(Array.isArray(oo.issue) && oo.issue.length > 0, 'has issues');
  assert.ok(['error', 'fatal'].includes(oo.issue[0].severity), `severity: ${oo.issue[0].severity}`);
  assert.equal(typeof oo.issue[0].code, 'string');
  assert.ok(oo.issue[0].diagnostics && oo.issue[0].diagnostics.length > 5, 'diagnostics says what is wrong');
  if (r.headers) assert.match(r.headers.get('content-type') || '', /application\/fhir\+json/);
  return oo;
}

const put = (p, body, headers = {}) =>
  srv.fhirFetch(p, { method: 'PUT', headers: { ...H, ...headers }, body: typeof body === 'string' || Buffer.isBuffer(body) ? body : JSON.stringify(body) });
const post = (p, body, headers = {}) =>
  srv.fhirFetch(p, { method: 'POST', headers: { ...H, ...headers }, body: typeof body === 'string' || Buffer.isBuffer(body) ? body : JSON.stringify(body) });
const get = (p, headers = {}) => srv.fhirFetch(p, { headers: { accept: FHIR_JSON, ...headers } });

async function totals() {
  const t = {};
  for (const p of ['/_history', '/Patient/_history', '/Observation/_history']) {
    const r = await get(`${p}?_count=1`);
    assert.equal(r.status, 200, r.text);
    t[p] = r.json.total;
  }
  return t;
}

let uniq = 0;
const newId = (p) => `${p}-${process.pid}-${++uniq}`;

describe('capabilities', () => {
  it('GET metadata is a CapabilityStatement listing every type and exactly the implemented interactions', async () => {
    const cs = await client.capabilityStatement();
    assert.equal(cs.resourceType, 'CapabilityStatement');
    assert.equal(cs.fhirVersion, '4.0.1');
    assert.equal(cs.kind, 'instance');
    assert.ok(cs.format.some((f) => f === 'json' || f === FHIR_JSON), `format: ${cs.format}`);
    assert.ok(!cs.format.some((f) => /xml/.test(f)), 'no XML format is claimed');
    assert.equal(cs.implementation && cs.implementation.url, srv.fhirBase);
    const rest = cs.rest.find((r) => r.mode === 'server');
    assert.ok(rest, 'a server rest entry');
    const byType = new Map(rest.resource.map((r) => [r.type, r]));
    assert.deepEqual([...byType.keys()].sort(), [...TYPES].sort());
    const searchClaimed = [];
    for (const t of TYPES) {
      let codes = byType.get(t).interaction.map((i) => i.code).sort();
      if (codes.includes('search-type')) {
        // claimed only if it works (search lands after the Foundation)
        searchClaimed.push(t);
        codes = codes.filter((c) => c !== 'search-type');
      }
      if (t === 'AuditEvent') {
        // the audit log: read and search only, and only for the compliance role
        assert.deepEqual(codes, ['read'], `AuditEvent: ${codes}`);
        assert.match(byType.get(t).documentation || '', /compliance role/);
        searchClaimed.pop();
        const r = await get('/AuditEvent?_count=1');
        assert.equal(r.status, 403, `a backend token searched the audit log: ${r.status}`);
      } else {
        assert.deepEqual(codes, RW, `${t} interactions`);
      }
    }
    for (const t of searchClaimed) {
      const r = await get(`/${t}?_count=1`);
      assert.equal(r.status, 200, `${t} claims search-type, but GET /${t} answers ${r.status}: ${r.text.slice(0, 300)}`);
      assert.equal(r.json.type, 'searchset');
    }
    const sys = (rest.interaction || []).map((i) => i.code);
    assert.ok(sys.includes('history-system'), `system interactions: ${sys}`);
    assert.ok(!sys.includes('search-system'), `system: ${sys}`);
    for (const kind of ['transaction', 'batch']) {
      // claimed only if it works
      if (!sys.includes(kind)) continue;
      const r = await fetch(`${srv.fhirBase}`, {
        method: 'POST',
        headers: { 'content-type': FHIR_JSON, accept: FHIR_JSON },
        body: JSON.stringify({ resourceType: 'Bundle', type: kind, entry: [] }),
      });
      assert.equal(r.status, 200, `${kind} is claimed but POST [base] answers ${r.status}`);
      assert.equal((await r.json()).type, `${kind}-response`);
    }
  });

  it('metadata answers with FHIR JSON and security headers', async () => {
    const r = await get('/metadata');
    assert.equal(r.status, 200);
    assert.match(r.headers.get('content-type'), /^application\/fhir\+json/);
  });
});

describe('create, read, vread, update, delete', () => {
  let created;
  const start = Date.now();

  it('create assigns the id, version 1 and lastUpdated, ignoring what the client sent', async () => {
    const body = {
      resourceType: 'Patient',
      id: 'client-chosen-id',
      meta: { versionId: '42', lastUpdated: '2001-01-01T00:00:00Z', tag: [{ system: 'urn:test', code: 'e2e' }] },
      name: [{ family: 'Createson', given: ['Ada', 'Zoë', '李', '😀'] }],
      gender: 'female',
      birthDate: '1990-05-17',
    };
    created = await client.create({ resourceType: 'Patient', body });
    const res = http(created);
    assert.equal(res.status, 201);
    assert.notEqual(created.id, 'client-chosen-id');
    assert.match(created.id, /^[A-Za-z0-9\-.]{1,64}$/);
    assert.equal(created.meta.versionId, '1');
    const lu = Date.parse(created.meta.lastUpdated);
    assert.ok(lu >= start - 60000 && lu <= Date.now() + 60000, `lastUpdated is now, not ${created.meta.lastUpdated}`);
    assert.match(created.meta.lastUpdated, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?(Z|[+-]\d\d:\d\d)$/);
    assert.deepEqual(created.meta.tag, body.meta.tag, 'other meta elements are kept');
    assert.deepEqual(created.name, body.name);
    const loc = `${srv.fhirBase}/Patient/${created.id}/_history/1`;
    assert.equal(res.headers.get('location'), loc);
    assert.equal(res.headers.get('content-location'), loc);
    assert.equal(res.headers.get('etag'), 'W/"1"');
    assert.ok(res.headers.get('last-modified'), 'Last-Modified is set');
    assert.match(res.headers.get('content-type'), /^application\/fhir\+json/);
  });

  it('read returns the stored resource with ETag and Last-Modified', async () => {
    const r = await client.read({ resourceType: 'Patient', id: created.id });
    assert.deepEqual(r, created);
    const res = http(r);
    assert.equal(res.status, 200);
    assert.equal(res.headers.get('etag'), 'W/"1"');
    assert.equal(Date.parse(res.headers.get('last-modified')) / 1000 | 0, Date.parse(created.meta.lastUpdated) / 1000 | 0);
  });

  it('decimals keep their precision and digits (FHIR: 0.010 is not 0.01)', async () => {
    // FHIR R4 decimal: "the precision of the decimal value has significance ... the original
    // precision should be preserved"; JSON numbers are decimals, not binary doubles.
    const values = ['1.50', '0.010', '100.0', '123456789.123456789', '3.14159265358979323846'];
    const body = `{"resourceType":"Observation","status":"final","code":{"text":"precision"},"component":[${values
      .map((v, i) => `{"code":{"text":"c${i}"},"valueQuantity":{"value":${v}}}`)
      .join(',')}]}`;
    const c = await post('/Observation', body);
    assert.equal(c.status, 201, c.text);
    const r = await get(`/Observation/${c.json.id}`);
    const lost = values.filter((v) => !r.text.includes(`"value":${v}}`));
    assert.deepEqual(lost, [], `decimals changed on the way through: ${r.text}`);
  });

  it('two creates get two different ids', async () => {
    const a = await client.create({ resourceType: 'Patient', body: { resourceType: 'Patient' } });
    const b = await client.create({ resourceType: 'Patient', body: { resourceType: 'Patient' } });
    assert.notEqual(a.id, b.id);
  });

  it('update makes version 2; vread reads either version', async () => {
    const body = { ...created, gender: 'other' };
    body.meta = { ...created.meta, versionId: '77' };
    const u = await client.update({ resourceType: 'Patient', id: created.id, body });
    const res = http(u);
    assert.equal(res.status, 200);
    assert.equal(u.meta.versionId, '2');
    assert.equal(u.gender, 'other');
    assert.equal(res.headers.get('etag'), 'W/"2"');
    assert.equal(res.headers.get('location'), `${srv.fhirBase}/Patient/${created.id}/_history/2`);
    const v1 = await client.vread({ resourceType: 'Patient', id: created.id, version: '1' });
    assert.deepEqual(v1, created);
    const v2 = await client.vread({ resourceType: 'Patient', id: created.id, version: '2' });
    assert.deepEqual(v2, u);
    assert.equal(http(v2).headers.get('etag'), 'W/"2"');
    const cur = await client.read({ resourceType: 'Patient', id: created.id });
    assert.deepEqual(cur, u);
    assertOutcome(await clientError(client.vread({ resourceType: 'Patient', id: created.id, version: '3' })), 404);
    assertOutcome(await get(`/Patient/${created.id}/_history/abc`), 404);
  });

  it('update of an absent id creates it with that id (201)', async () => {
    const id = newId('upd-create');
    const r = await client.update({ resourceType: 'Patient', id, body: { resourceType: 'Patient', id, active: true } });
    const res = http(r);
    assert.equal(res.status, 201);
    assert.equal(r.id, id);
    assert.equal(r.meta.versionId, '1');
    assert.equal(res.headers.get('location'), `${srv.fhirBase}/Patient/${id}/_history/1`);
    assert.equal(res.headers.get('etag'), 'W/"1"');
  });

  it('the client\'s conditional create (If-None-Exist) and conditional update (searchParams) find their match', async () => {
    const value = newId('kit');
    const body = { resourceType: 'Patient', identifier: [{ system: 'urn:e2e:kit', value }], gender: 'female' };
    const ine = { headers: { 'If-None-Exist': `identifier=urn:e2e:kit|${value}` } };
    const a = await client.create({ resourceType: 'Patient', body, options: ine });
    assert.equal(http(a).status, 201);
    const b = await client.create({ resourceType: 'Patient', body: { ...body, gender: 'male' }, options: ine });
    assert.equal(http(b).status, 200);
    assert.equal(b.id, a.id);
    assert.equal(b.gender, 'female', 'the match is answered, nothing written');
    const u = await client.update({ resourceType: 'Patient', searchParams: { identifier: `urn:e2e:kit|${value}` }, body: { ...body, gender: 'other' } });
    assert.equal(http(u).status, 200);
    assert.equal(u.id, a.id);
    assert.equal(u.meta.versionId, '2');
    const found = await client.search({ resourceType: 'Patient', searchParams: { identifier: `urn:e2e:kit|${value}` } });
    assert.equal(found.entry.length, 1);
    assert.equal(found.entry[0].resource.gender, 'other');
  });

  it('delete: then read is 410 with an OperationOutcome, old versions still vread, history shows the delete', async () => {
    const id = newId('del');
    await client.update({ resourceType: 'Patient', id, body: { resourceType: 'Patient', id, active: true } });
    await client.update({ resourceType: 'Patient', id, body: { resourceType: 'Patient', id, active: false } });
    const d = await client.delete({ resourceType: 'Patient', id });
    assert.ok([200, 204].includes(http(d).status), `delete status ${http(d).status}`);
    const gone = await clientError(client.read({ resourceType: 'Patient', id }));
    assertOutcome(gone, 410);
    const raw = await get(`/Patient/${id}`);
    assertOutcome(raw, 410);
    const v2 = await client.vread({ resourceType: 'Patient', id, version: '2' });
    assert.equal(v2.active, false);
    assertOutcome(await get(`/Patient/${id}/_history/3`), 410);
    const h = await client.resourceHistory({ resourceType: 'Patient', id });
    assert.equal(h.resourceType, 'Bundle');
    assert.equal(h.type, 'history');
    assert.equal(h.entry.length, 3);
    assert.equal(h.entry[0].request.method, 'DELETE');
    assert.equal(h.entry[0].resource, undefined, 'a delete entry carries no resource');
    assert.deepEqual(h.entry.map((e) => etagVersion(e.response.etag)), [3, 2, 1]);
    // deleting again changes nothing
    const again = await srv.fhirFetch(`/Patient/${id}`, { method: 'DELETE' });
    assert.ok([200, 204].includes(again.status), `second delete ${again.status}`);
    const h2 = await client.resourceHistory({ resourceType: 'Patient', id });
    assert.equal(h2.entry.length, 3, 'a repeated delete adds no version');
    // an update brings it back
    const back = await put(`/Patient/${id}`, { resourceType: 'Patient', id, active: true });
    assert.equal(back.status, 201, back.text);
    assert.ok(Number(back.json.meta.versionId) > 3);
    assert.equal((await get(`/Patient/${id}`)).status, 200);
  });

  it('delete of an unknown id is idempotent (204/200, no version made)', async () => {
    const id = newId('never');
    const r = await srv.fhirFetch(`/Patient/${id}`, { method: 'DELETE' });
    assert.ok([200, 204].includes(r.status), `${r.status} ${r.text}`);
    assertOutcome(await get(`/Patient/${id}`), 404);
  });
});

describe('history and paging', () => {
  // Writes to a type no other test touches, so the exact order is known.
  async function writeSeries(type, n) {
    const keys = [];
    const ids = [];
    const subj = type === 'ServiceRequest' ? { subject: { reference: 'Patient/paging-subject' } } : {};
    for (let i = 0; i < n; i++) {
      if (i % 3 === 2) {
        // update the previous one
        const id = ids[ids.length - 1];
        const r = await put(`/${type}/${id}`, { resourceType: type, id, status: 'completed', intent: 'order', ...subj });
        assert.equal(r.status, 200, r.text);
        keys.push(`${type}/${id}/_history/${r.json.meta.versionId}`);
      } else {
        const r = await post(`/${type}`, { resourceType: type, status: type === 'Task' ? 'requested' : 'active', intent: 'order', ...subj });
        assert.equal(r.status, 201, r.text);
        ids.push(r.json.id);
        keys.push(`${type}/${r.json.id}/_history/1`);
      }
    }
    return { keys, ids };
  }

  it('type history with _count=2: following next links gives every version exactly once, newest first', async () => {
    const { keys, ids } = await writeSeries('Task', 8);
    const del = await srv.fhirFetch(`/Task/${ids[0]}`, { method: 'DELETE' });
    assert.equal(del.status, 204, del.text);
    keys.push(`Task/${ids[0]}/_history/2`);
    // through the real client's paging
    let bundle = await client.request('Task/_history?_count=2');
    assert.equal(bundle.type, 'history');
    assert.equal(bundle.total, keys.length, 'total on the first page');
    const seen = [];
    let pages = 0;
    while (bundle) {
      pages++;
      assert.ok(bundle.entry.length <= 2, `page size ${bundle.entry.length}`);
      seen.push(...bundle.entry.map(entryKey));
      const hasNext = (bundle.link || []).some((l) => l.relation === 'next');
      bundle = hasNext ? await client.nextPage({ bundle }) : undefined;
    }
    assert.deepEqual(seen, [...keys].reverse());
    assert.equal(pages, Math.ceil(keys.length / 2));
    assert.equal(seen[0], `Task/${ids[0]}/_history/2`);
  });

  it('history entries carry request and response as FHIR describes', async () => {
    const id = newId('hist');
    await put(`/Goal/${id}`, { resourceType: 'Goal', id, lifecycleStatus: 'proposed', description: { text: 'walk' }, subject: { reference: 'Patient/x' } });
    await put(`/Goal/${id}`, { resourceType: 'Goal', id, lifecycleStatus: 'active', description: { text: 'walk' }, subject: { reference: 'Patient/x' } });
    const h = await client.resourceHistory({ resourceType: 'Goal', id });
    assert.equal(h.entry.length, 2);
    const [e2, e1] = h.entry;
    assert.equal(e2.resource.lifecycleStatus, 'active');
    assert.equal(e2.resource.meta.versionId, '2');
    assert.equal(e1.resource.meta.versionId, '1');
    assert.equal(e2.response.etag, 'W/"2"');
    assert.match(e2.request.method, /^(PUT|POST)$/);
    assert.ok(e2.fullUrl.endsWith(`/Goal/${id}`), e2.fullUrl);
  });

  it('instance history pages with _count=2 cover every version once, newest first', async () => {
    const id = newId('inst');
    for (let i = 1; i <= 5; i++) {
      const r = await put(`/Patient/${id}`, { resourceType: 'Patient', id, gender: i % 2 ? 'male' : 'female' });
      assert.ok(r.status === 200 || r.status === 201);
    }
    const pages = await allPages(srv, `/Patient/${id}/_history?_count=2`);
    assert.equal(pages.length, 3);
    const versions = pages.flatMap((p) => p.entry.map((e) => etagVersion(e.response.etag)));
    assert.deepEqual(versions, [5, 4, 3, 2, 1]);
  });

  it('system history with _count=2 has every version exactly once and matches total', async () => {
    const pages = await allPages(srv, '/_history?_count=2');
    const keys = pages.flatMap((p) => p.entry.map(entryKey));
    assert.equal(new Set(keys).size, keys.length, 'no version appears twice');
    assert.equal(keys.length, pages[0].total, 'every version is there');
    for (const p of pages) assert.ok(p.entry.length <= 2);
    // newest first: lastModified never increases along the pages
    const times = pages.flatMap((p) => p.entry.map((e) => Date.parse(e.response.lastModified)));
    for (let i = 1; i < times.length; i++) assert.ok(times[i] <= times[i - 1], `entry ${i} is older than entry ${i - 1}`);
    // and versions of one resource come newest first
    const lastSeen = new Map();
    for (const k of keys) {
      const [t, id, , v] = k.split('/');
      const prev = lastSeen.get(`${t}/${id}`);
      if (prev !== undefined) assert.ok(Number(v) < prev, `${k} after version ${prev}`);
      lastSeen.set(`${t}/${id}`, Number(v));
    }
  });

  it('paging stays correct while new writes happen between pages', async () => {
    const { keys, ids } = await writeSeries('ServiceRequest', 7);
    let extra = 0;
    const pages = await allPages(srv, '/ServiceRequest/_history?_count=2', {
      async between() {
        // a new resource and a new version of an old one, between every page
        const c = await post('/ServiceRequest', { resourceType: 'ServiceRequest', status: 'draft', intent: 'plan', subject: { reference: 'Patient/paging-subject' } });
        assert.equal(c.status, 201);
        const u = await put(`/ServiceRequest/${ids[0]}`, { resourceType: 'ServiceRequest', id: ids[0], status: 'revoked', intent: 'order', subject: { reference: 'Patient/paging-subject' } });
        assert.equal(u.status, 200);
        extra += 2;
      },
    });
    const seen = pages.flatMap((p) => p.entry.map(entryKey));
    assert.ok(extra > 0);
    assert.deepEqual(seen, [...keys].reverse(), 'the pages list the versions that existed when paging began, each once');
    // a fresh walk sees everything, still once each
    const again = (await allPages(srv, '/ServiceRequest/_history?_count=2')).flatMap((p) => p.entry.map(entryKey));
    assert.equal(again.length, keys.length + extra);
    assert.equal(new Set(again).size, again.length);
  });

  it('_count defaults to page_size, _count=0 gives no entries, bad _count/_since are 400', async () => {
    const r = await get('/_history');
    assert.equal(r.status, 200);
    assert.ok(r.json.entry.length <= 50);
    const z = await get('/_history?_count=0');
    assert.equal(z.status, 200);
    assert.equal((z.json.entry || []).length, 0);
    const huge = await get('/_history?_count=100000');
    assert.equal(huge.status, 200, 'a _count over page_max is clamped, not refused');
    assert.ok(huge.json.entry.length <= 1000);
    assertOutcome(await get('/_history?_count=abc'), 400);
    assertOutcome(await get('/_history?_since=yesterday'), 400);
    const future = await get('/_history?_since=2999-01-01T00:00:00Z');
    assert.equal(future.status, 200);
    assert.equal((future.json.entry || []).length, 0);
  });

  it('history of an unknown type or id is 404', async () => {
    assertOutcome(await get('/Frobnicator/_history'), 404);
    assertOutcome(await get(`/Patient/${newId('nohist')}/_history`), 404);
  });
});

describe('conditional requests', () => {
  let id;
  before(async () => {
    id = newId('cond');
    const r = await put(`/Patient/${id}`, { resourceType: 'Patient', id, active: true });
    assert.equal(r.status, 201, r.text);
  });

  it('If-Match with a stale version is 412 and changes nothing; the current version succeeds', async () => {
    const stale = await clientError(
      client.update({ resourceType: 'Patient', id, body: { resourceType: 'Patient', id, active: false }, options: { headers: { 'If-Match': 'W/"7"' } } }),
    );
    assertOutcome(stale, 412);
    assert.equal((await get(`/Patient/${id}`)).json.meta.versionId, '1');
    const ok = await client.update({ resourceType: 'Patient', id, body: { resourceType: 'Patient', id, active: false }, options: { headers: { 'If-Match': 'W/"1"' } } });
    assert.equal(http(ok).status, 200);
    assert.equal(ok.meta.versionId, '2');
    // the strong form is accepted too
    const strong = await put(`/Patient/${id}`, { resourceType: 'Patient', id, active: true }, { 'If-Match': '"2"' });
    assert.equal(strong.status, 200, strong.text);
  });

  it('If-Match on delete: stale is 412, and a malformed If-Match is 400', async () => {
    const tmp = newId('cond-del');
    await put(`/Patient/${tmp}`, { resourceType: 'Patient', id: tmp });
    assertOutcome(await srv.fhirFetch(`/Patient/${tmp}`, { method: 'DELETE', headers: { 'If-Match': 'W/"9"' } }), 412);
    assert.equal((await get(`/Patient/${tmp}`)).status, 200);
    assertOutcome(await put(`/Patient/${tmp}`, { resourceType: 'Patient', id: tmp }, { 'If-Match': 'version one' }), 400);
    const del = await srv.fhirFetch(`/Patient/${tmp}`, { method: 'DELETE', headers: { 'If-Match': 'W/"1"' } });
    assert.equal(del.status, 204);
  });

  it('If-Match on an absent resource is 412 and creates nothing', async () => {
    const tmp = newId('cond-absent');
    assertOutcome(await put(`/Patient/${tmp}`, { resourceType: 'Patient', id: tmp }, { 'If-Match': 'W/"1"' }), 412);
    assertOutcome(await get(`/Patient/${tmp}`), 404);
  });

  it('10 concurrent updates with the same If-Match: exactly one succeeds, the rest get 412', async () => {
    const rid = newId('race');
    const c = await put(`/Observation/${rid}`, { resourceType: 'Observation', id: rid, status: 'preliminary', code: { text: 'race' } });
    assert.equal(c.status, 201, c.text);
    const results = await Promise.all(
      Array.from({ length: 10 }, (_, i) =>
        put(`/Observation/${rid}`, { resourceType: 'Observation', id: rid, status: 'final', code: { text: `race ${i}` } }, { 'If-Match': 'W/"1"' }),
      ),
    );
    const statuses = results.map((r) => r.status).sort();
    const wins = results.filter((r) => r.status === 200 || r.status === 201);
    assert.equal(wins.length, 1, `statuses: ${statuses}`);
    assert.equal(results.filter((r) => r.status === 412).length, 9, `statuses: ${statuses}`);
    for (const r of results) if (r.status === 412) assertOutcome(r, 412);
    const cur = await get(`/Observation/${rid}`);
    assert.equal(cur.json.meta.versionId, '2');
    assert.equal(cur.json.code.text, wins[0].json.code.text, 'the winner is what is stored');
    const h = await get(`/Observation/${rid}/_history`);
    assert.equal(h.json.entry.length, 2, 'losers left no versions');
  });

  it('10 concurrent updates without If-Match all succeed, each making its own version', async () => {
    const rid = newId('lww');
    await put(`/Patient/${rid}`, { resourceType: 'Patient', id: rid });
    const results = await Promise.all(
      Array.from({ length: 10 }, (_, i) => put(`/Patient/${rid}`, { resourceType: 'Patient', id: rid, name: [{ family: `w${i}` }] })),
    );
    assert.deepEqual(results.map((r) => r.status), Array(10).fill(200), results.map((r) => r.text).join('\n').slice(0, 500));
    const versions = results.map((r) => Number(r.json.meta.versionId)).sort((a, b) => a - b);
    assert.deepEqual(versions, [2, 3, 4, 5, 6, 7, 8, 9, 10, 11]);
    const cur = await get(`/Patient/${rid}`);
    assert.equal(cur.json.meta.versionId, '11');
    const last = results.find((r) => r.json.meta.versionId === '11');
    assert.deepEqual(cur.json, last.json, 'the last version written is the current one');
  });

  it('20 concurrent creates get 20 distinct ids, all readable', async () => {
    const results = await Promise.all(Array.from({ length: 20 }, (_, i) => post('/Patient', { resourceType: 'Patient', name: [{ family: `c${i}` }] })));
    assert.deepEqual(results.map((r) => r.status), Array(20).fill(201));
    const ids = new Set(results.map((r) => r.json.id));
    assert.equal(ids.size, 20);
    for (const r of results) assert.equal((await get(`/Patient/${r.json.id}`)).json.name[0].family, r.json.name[0].family);
  });

  it('HEAD on a read answers like GET without a body', async () => {
    const r = await srv.fhirFetch(`/Patient/${id}`, { method: 'HEAD' });
    assert.equal(r.status, 200);
    assert.equal(r.text, '');
    assert.match(r.headers.get('etag') || '', /^W\/"\d+"$/);
  });

  it('If-None-Match with the current ETag is 304; with another is 200', async () => {
    const cur = await get(`/Patient/${id}`);
    const etag = cur.headers.get('etag');
    const r = await get(`/Patient/${id}`, { 'If-None-Match': etag });
    assert.equal(r.status, 304);
    assert.equal(r.text, '');
    assert.equal(r.headers.get('etag'), etag);
    const other = await get(`/Patient/${id}`, { 'If-None-Match': 'W/"1"' });
    assert.equal(other.status, 200);
    // a list of tags (RFC 9110 13.1.2): 304 when any is the current one; "*" matches any version
    const v = Number(etag.match(/"(\d+)"/)[1]);
    for (const list of [`W/"${v + 7}", ${etag}`, `${etag},W/"${v + 8}"`, '*'])
      assert.equal((await get(`/Patient/${id}`, { 'If-None-Match': list })).status, 304, list);
    for (const list of [`W/"${v + 7}", W/"${v + 8}"`, `W/"${v + 7}" ${etag}`])
      assert.equal((await get(`/Patient/${id}`, { 'If-None-Match': list })).status, 200, list);
  });

  it('If-Modified-Since at Last-Modified is 304; earlier is 200', async () => {
    const cur = await get(`/Patient/${id}`);
    const lm = cur.headers.get('last-modified');
    assert.ok(lm);
    const r = await get(`/Patient/${id}`, { 'If-Modified-Since': lm });
    assert.equal(r.status, 304);
    assert.equal(r.text, '');
    const earlier = new Date(Date.parse(lm) - 86400000).toUTCString();
    const r2 = await get(`/Patient/${id}`, { 'If-Modified-Since': earlier });
    assert.equal(r2.status, 200);
  });
});

describe('Prefer', () => {
  it('return=minimal: 201 with headers and an empty body', async () => {
    const r = await post('/Patient', { resourceType: 'Patient', active: true }, { Prefer: 'return=minimal' });
    assert.equal(r.status, 201);
    assert.equal(r.text, '');
    assert.match(r.headers.get('location'), /\/fhir\/Patient\/[A-Za-z0-9\-.]+\/_history\/1$/);
    assert.equal(r.headers.get('etag'), 'W/"1"');
    const loc = r.headers.get('location').replace(/\/_history\/1$/, '');
    assert.equal((await (await fetch(loc)).json()).active, true);
  });

  it('return=minimal on update: 200 with an empty body', async () => {
    const id = newId('pref');
    await put(`/Patient/${id}`, { resourceType: 'Patient', id });
    const r = await put(`/Patient/${id}`, { resourceType: 'Patient', id, active: false }, { Prefer: 'return=minimal' });
    assert.equal(r.status, 200);
    assert.equal(r.text, '');
    assert.equal(r.headers.get('etag'), 'W/"2"');
  });

  it('return=representation: the stored resource', async () => {
    const r = await post('/Patient', { resourceType: 'Patient', gender: 'unknown' }, { Prefer: 'return=representation' });
    assert.equal(r.status, 201);
    assert.equal(r.json.resourceType, 'Patient');
    assert.equal(r.json.gender, 'unknown');
    assert.equal(r.json.meta.versionId, '1');
  });

  it('return=OperationOutcome: an OperationOutcome about the write', async () => {
    const r = await post('/Patient', { resourceType: 'Patient' }, { Prefer: 'return=OperationOutcome' });
    assert.equal(r.status, 201);
    assert.equal(r.json.resourceType, 'OperationOutcome');
    assert.ok(r.headers.get('location'));
  });
});

describe('content negotiation', () => {
  let id;
  before(async () => {
    id = newId('neg');
    await put(`/Patient/${id}`, { resourceType: 'Patient', id });
  });

  it('Accept: application/fhir+xml is 406', async () => {
    assertOutcome(await get(`/Patient/${id}`, { accept: 'application/fhir+xml' }), 406);
    assertOutcome(await get('/metadata', { accept: 'application/fhir+xml' }), 406);
  });

  it('_format=xml is 406, _format=json is served', async () => {
    assertOutcome(await get(`/Patient/${id}?_format=xml`), 406);
    assert.equal((await get(`/Patient/${id}?_format=json`)).status, 200);
    assert.equal((await get(`/Patient/${id}?_format=${encodeURIComponent('application/fhir+json')}`)).status, 200);
  });

  it('application/json, */* and a list with an acceptable type are served as FHIR JSON', async () => {
    for (const accept of ['application/json', '*/*', 'application/fhir+xml, application/fhir+json;q=0.9', 'application/fhir+json; fhirVersion=4.0']) {
      const r = await get(`/Patient/${id}`, { accept });
      assert.equal(r.status, 200, `Accept: ${accept}`);
      assert.match(r.headers.get('content-type'), /^application\/fhir\+json/);
    }
  });

  it('a text/plain body is 415; no Content-Type is 415; application/json with parameters is accepted', async () => {
    const body = JSON.stringify({ resourceType: 'Patient' });
    assertOutcome(await srv.fhirFetch('/Patient', { method: 'POST', headers: { 'content-type': 'text/plain', accept: FHIR_JSON }, body }), 415);
    assertOutcome(await srv.fhirFetch(`/Patient/${id}`, { method: 'PUT', headers: { 'content-type': 'application/xml' }, body }), 415);
    const none = await srv.fhirFetch('/Patient', { method: 'POST', body: new Uint8Array(Buffer.from(body)) });
    assertOutcome(none, 415);
    const ok = await srv.fhirFetch('/Patient', { method: 'POST', headers: { 'content-type': 'application/json; charset=utf-8' }, body });
    assert.equal(ok.status, 201, ok.text);
    const ok2 = await srv.fhirFetch('/Patient', { method: 'POST', headers: { 'content-type': 'application/fhir+json; fhirVersion=4.0' }, body });
    assert.equal(ok2.status, 201, ok2.text);
  });
});

describe('errors are OperationOutcomes with the right status', () => {
  it('400: malformed JSON', async () => {
    assertOutcome(await post('/Patient', '{"resourceType":"Patient",'), 400);
    assertOutcome(await post('/Patient', ''), 400);
    assertOutcome(await post('/Patient', '[1,2,3]'), 400);
    assertOutcome(await post('/Patient', '{"resourceType":"Patient"} trailing'), 400);
  });

  it('400: resourceType missing, unknown or not the URL type', async () => {
    assertOutcome(await post('/Patient', { resourceType: 'Observation', status: 'final', code: { text: 'x' } }), 400);
    assertOutcome(await post('/Patient', { name: [{ family: 'NoType' }] }), 400);
    const id = newId('mismatch');
    assertOutcome(await put(`/Patient/${id}`, { resourceType: 'Practitioner', id }), 400);
    assertOutcome(await get(`/Patient/${id}`), 404);
  });

  it('400: bad id syntax', async () => {
    assertOutcome(await put('/Patient/bad_id', { resourceType: 'Patient', id: 'bad_id' }), 400);
    const long = 'a'.repeat(65);
    assertOutcome(await put(`/Patient/${long}`, { resourceType: 'Patient', id: long }), 400);
    assertOutcome(await put('/Patient/has%20space', { resourceType: 'Patient', id: 'has space' }), 400);
  });

  it('400: body id differs from the URL id', async () => {
    const id = newId('idm');
    assertOutcome(await put(`/Patient/${id}`, { resourceType: 'Patient', id: `${id}-other` }), 400);
    assertOutcome(await get(`/Patient/${id}`), 404);
    assertOutcome(await get(`/Patient/${id}-other`), 404);
  });

  it('400/422: null values and empty objects or arrays are not valid FHIR JSON', async () => {
    // FHIR R4 JSON representation: elements never have null values, objects and arrays are never empty
    const accepted = [];
    for (const body of [
      '{"resourceType":"Patient","gender":null}',
      '{"resourceType":"Patient","name":[]}',
      '{"resourceType":"Patient","name":[{}]}',
      '{"resourceType":"Patient","maritalStatus":{}}',
    ]) {
      const r = await post('/Patient', body);
      if ([400, 422].includes(r.status)) assertOutcome(r, r.status);
      else accepted.push(`${body} -> ${r.status}`);
    }
    assert.deepEqual(accepted, [], 'invalid FHIR JSON must be refused');
  });

  it('400: duplicate keys in the body', async () => {
    assertOutcome(await post('/Patient', '{"resourceType":"Patient","gender":"male","gender":"female"}'), 400);
  });

  it('404: unknown id, unknown type, unknown path', async () => {
    assertOutcome(await get(`/Patient/${newId('nobody')}`), 404);
    assertOutcome(await get('/Frobnicator/1'), 404);
    assertOutcome(await post('/Frobnicator', { resourceType: 'Frobnicator' }), 404);
    assertOutcome(await put('/Frobnicator/1', { resourceType: 'Frobnicator', id: '1' }), 404);
    assertOutcome(await get('/Patient/1/_history/1/extra/segments'), 404);
  });

  it('405: PATCH, POST to an instance, writes to AuditEvent', async () => {
    const id = newId('m');
    await put(`/Patient/${id}`, { resourceType: 'Patient', id });
    const patch = await srv.fhirFetch(`/Patient/${id}`, {
      method: 'PATCH',
      headers: { 'content-type': 'application/json-patch+json', accept: FHIR_JSON },
      body: JSON.stringify([{ op: 'replace', path: '/active', value: true }]),
    });
    assertOutcome(patch, 405);
    assert.ok(patch.headers.get('allow'), 'Allow header names the allowed methods');
    assert.doesNotMatch(patch.headers.get('allow'), /PATCH/);
    assertOutcome(await post(`/Patient/${id}`, { resourceType: 'Patient' }), 405);
    const audit = await post('/AuditEvent', { resourceType: 'AuditEvent' });
    assertOutcome(audit, 405);
    assert.ok(audit.headers.get('allow'));
    assertOutcome(await put('/AuditEvent/x', { resourceType: 'AuditEvent', id: 'x' }), 405);
    assertOutcome(await srv.fhirFetch('/AuditEvent/x', { method: 'DELETE' }), 405);
    assertOutcome(await srv.fhirFetch('/metadata', { method: 'DELETE' }), 405);
  });

  it('413: a body over --fhir-body-max', async () => {
    const big = { resourceType: 'Patient', text: { status: 'generated', div: `<div xmlns="http://www.w3.org/1999/xhtml">${'x'.repeat(BODY_MAX + 10)}</div>` } };
    assertOutcome(await post('/Patient', big), 413);
    const id = newId('big');
    assertOutcome(await put(`/Patient/${id}`, { ...big, id }), 413);
    assertOutcome(await get(`/Patient/${id}`), 404);
  });

  it('a search past --search-time-max stops with 413 too-costly; the server goes on', async () => {
    const q = '/Observation?_count=1000&_total=accurate';
    const quick = await startServer({ patients: 5, seed: true, args: ['--search-time-max', '1'] });
    try {
      const r = await quick.fhirFetch(q);
      const oo = assertOutcome(r, 413);
      assert.equal(oo.issue[0].code, 'too-costly');
      assert.match(oo.issue[0].diagnostics, /longer than the search time limit \(1 ms\)/);
      assert.equal((await quick.fhirFetch('/Patient/alice')).status, 200, 'reads go on');
    } finally {
      await quick.stop();
    }
    // the same search under the default limit (5 s)
    const r = await srv.fhirFetch(q);
    assert.equal(r.status, 200, r.text.slice(0, 200));
  });

  it('422: an invalid date in an indexed element', async () => {
    const oo = assertOutcome(
      await post('/Observation', { resourceType: 'Observation', status: 'final', code: { text: 'glucose' }, effectiveDateTime: '2023-02-30' }),
      422,
    );
    const where = JSON.stringify(oo.issue.map((i) => [i.expression, i.diagnostics]));
    assert.match(where, /effective/, `the outcome points at the element: ${where}`);
    assertOutcome(await post('/Patient', { resourceType: 'Patient', birthDate: '1990-13-01' }), 422);
    const id = newId('bad-date');
    assertOutcome(await put(`/Observation/${id}`, { resourceType: 'Observation', id, status: 'final', code: { text: 'x' }, effectiveDateTime: '2023-02-30' }), 422);
    assertOutcome(await get(`/Observation/${id}`), 404);
  });

  it('deep JSON nesting over the limit is 400/413, not a crash', async () => {
    for (const depth of [100, 20000]) {
      const body = `{"resourceType":"Patient","extension":${'['.repeat(depth)}${']'.repeat(depth)}}`;
      const r = await post('/Patient', body);
      assert.ok([400, 413].includes(r.status), `array depth ${depth}: ${r.status} ${r.text}`);
      assertOutcome(r, r.status);
    }
    for (const depth of [100, 8000]) {
      const body = `{"resourceType":"Patient","x":${'{"a":'.repeat(depth)}1${'}'.repeat(depth)}}`;
      const r = await post('/Patient', body);
      assert.ok([400, 413].includes(r.status), `object depth ${depth}: ${r.status} ${r.text}`);
      assertOutcome(r, r.status);
    }
    assert.equal((await srv.fetch('/healthz')).status, 200);
  });

  it('invalid UTF-8 in the body is 400', async () => {
    const pre = Buffer.from('{"resourceType":"Patient","name":[{"family":"');
    const post_ = Buffer.from('"}]}');
    for (const bad of [[0xc3, 0x28], [0xff], [0xc0, 0xaf], [0xed, 0xa0, 0x80]]) {
      const body = Buffer.concat([pre, Buffer.from(bad), post_]);
      const r = await srv.fhirFetch('/Patient', { method: 'POST', headers: H, body });
      assertOutcome(r, 400);
    }
  });

  it('rejected writes keep nothing', async () => {
    const before_ = await totals();
    const id = newId('kept');
    const bad = [
      () => post('/Patient', '{"resourceType":"Patient",'),
      () => post('/Patient', { resourceType: 'Observation' }),
      () => put(`/Patient/${id}`, { resourceType: 'Patient', id: 'other' }),
      () => put('/Patient/bad_id', { resourceType: 'Patient', id: 'bad_id' }),
      () => post('/Observation', { resourceType: 'Observation', status: 'final', code: { text: 'x' }, effectiveDateTime: '2023-02-30' }),
      () => put(`/Observation/${id}`, { resourceType: 'Observation', id, status: 'final', code: { text: 'x' }, effectiveDateTime: '2023-02-30' }),
      () => post('/Patient', { resourceType: 'Patient', text: { status: 'generated', div: 'y'.repeat(BODY_MAX + 1) } }),
      () => srv.fhirFetch('/Patient', { method: 'POST', headers: { 'content-type': 'text/plain' }, body: '{"resourceType":"Patient"}' }),
      () => srv.fhirFetch('/Patient', { method: 'POST', headers: H, body: Buffer.from([0x7b, 0xff, 0x7d]) }),
      () => post('/Patient', `{"resourceType":"Patient","extension":${'['.repeat(200)}${']'.repeat(200)}}`),
      () => put(`/Patient/${id}`, { resourceType: 'Patient', id }, { 'If-Match': 'W/"3"' }),
      () => post('/AuditEvent', { resourceType: 'AuditEvent' }),
    ];
    for (const f of bad) {
      const r = await f();
      assert.ok(r.status >= 400, `expected an error, got ${r.status}: ${r.text}`);
    }
    assert.deepEqual(await totals(), before_);
    assertOutcome(await get(`/Patient/${id}`), 404);
    assertOutcome(await get(`/Observation/${id}`), 404);
  });

  it('the server is still healthy after all of the above', async () => {
    assert.equal((await srv.fetch('/healthz')).status, 200);
    assert.equal((await srv.fetch('/readyz')).status, 200);
    await sleep(1);
  });
});
