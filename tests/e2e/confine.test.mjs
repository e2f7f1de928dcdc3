// Confinement of patient/ scopes (docs/auth.md, "How the FHIR API checks
// tokens", rules 3 to 7): a token confined to alice's record must not read,
// count, infer or change another patient's data, nor see alice's own data
// outside its granular (category) scopes, through any interaction: read,
// vread, history, search with chains, _has, includes and totals, compartment
// search, $everything, batch and transaction entries of every method, and
// writes that would move a resource between records.  Every check compares
// with what the seed holds, read with the harness's system/*.cruds token.
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import { startServer, makeTempDir, removeDir, initDataDir, seedDataDir, runCli, fetchRaw } from './lib/server.mjs';
import { consentToken } from './lib/oauth.mjs';

const FHIR_JSON = 'application/fhir+json';
const APP = 'confine-app';
const REDIRECT = 'http://127.0.0.1:9999/cb';
const CAT = 'http://terminology.hl7.org/CodeSystem/observation-category';
const LAB = `${CAT}|laboratory`;
const VITAL = `${CAT}|vital-signs`;
const OTHERS = ['bob-child', 'bob-mother', 'bob-self', 'erin', 'frank'];

let dir, srv, B, F;
let full;        // alice, patient/*.cruds
let vitals;      // alice, Patient + DiagnosticReport + Observation limited to vital signs
let noObs;       // alice, Patient + DiagnosticReport, no Observation scope

const seen = {
  aliceLab: [], aliceVital: [], aliceObs: [], aliceReports: [],
  childObs: null, childCond: null,
  foreign: new Set(), // ids of resources in other patients' records
};

before(async () => {
  dir = await makeTempDir('veranda-confine-');
  await initDataDir(dir);
  await seedDataDir(dir, { patients: 0 });
  const r = await runCli(['client', 'add', '--data', dir, '--client-id', APP, '--redirect-uri', REDIRECT, '--public']);
  assert.equal(r.code, 0, r.stderr);
  srv = await startServer({ dataDir: dir });
  B = srv.baseUrl;
  F = srv.fhirBase;

  const obs = await sys('Observation?patient=alice&_count=1000');
  for (const e of obs.json.entry) {
    const cats = (e.resource.category || []).flatMap((c) => c.coding.map((x) => x.code));
    seen.aliceObs.push(e.resource.id);
    if (cats.includes('laboratory')) seen.aliceLab.push(e.resource.id);
    if (cats.includes('vital-signs')) seen.aliceVital.push(e.resource.id);
  }
  const dr = await sys('DiagnosticReport?patient=alice&_count=1000');
  seen.aliceReports = dr.json.entry.filter((e) => (e.resource.result || []).length).map((e) => e.resource.id);
  assert.ok(seen.aliceLab.length && seen.aliceVital.length && seen.aliceReports.length, 'the seed gives alice labs, vitals and reports');
  for (const p of OTHERS) {
    const ev = await sys(`Patient/${p}/$everything?_count=5000`);
    for (const e of ev.json.entry) {
      seen.foreign.add(e.resource.id);
      if (p === 'bob-child' && e.resource.resourceType === 'Observation') seen.childObs ??= e.resource.id;
      if (p === 'bob-child' && e.resource.resourceType === 'Condition') seen.childCond ??= e.resource.id;
    }
  }
  assert.ok(seen.childObs && seen.childCond, 'the seed gives bob-child an Observation and a Condition');

  // References across records, as staff may write them: an Observation of alice whose members
  // and sources are bob-child's, a Provenance in alice's record naming bob-child's Observation,
  // and one in bob-child's record naming alice's.
  const ref = (r) => ({ reference: r });
  await sys('Observation/cross-alice', { method: 'PUT', body: JSON.stringify({
    resourceType: 'Observation', id: 'cross-alice', status: 'final', code: { text: 'panel' },
    category: [{ coding: [{ system: CAT, code: 'vital-signs' }] }],
    subject: ref('Patient/alice'), hasMember: [ref(`Observation/${seen.childObs}`)],
    derivedFrom: [ref(`Observation/${seen.childObs}`)], focus: [ref(`Condition/${seen.childCond}`)],
  }) });
  await sys('Provenance/prov-alice', { method: 'PUT', body: JSON.stringify({
    resourceType: 'Provenance', id: 'prov-alice', recorded: '2024-01-01T00:00:00Z',
    target: [ref('Patient/alice'), ref(`Observation/${seen.childObs}`)], agent: [{ who: ref('Practitioner/drsmith') }],
  }) });
  await sys('Provenance/prov-child', { method: 'PUT', body: JSON.stringify({
    resourceType: 'Provenance', id: 'prov-child', recorded: '2024-01-01T00:00:00Z',
    target: [ref('Patient/bob-child'), ref('Observation/cross-alice')], agent: [{ who: ref('Practitioner/drsmith') }],
  }) });
  seen.foreign.add('prov-child');
  seen.aliceObs.push('cross-alice');
  seen.aliceVital.push('cross-alice');

  full = (await userToken('alice', 'launch/patient patient/*.cruds')).access_token;
  vitals = (await userToken('alice', 'launch/patient patient/Patient.rs patient/DiagnosticReport.rs patient/Observation.rs',
    { cats: [`Observation ${VITAL}`] })).access_token;
  noObs = (await userToken('alice', 'launch/patient patient/Patient.rs patient/DiagnosticReport.rs')).access_token;
});

after(async () => {
  if (srv) await srv.stop();
  await removeDir(dir);
});

/* ---- helpers ---- */

async function api(token, p, init = {}) {
  const headers = { accept: FHIR_JSON, ...(init.headers || {}), authorization: `Bearer ${token}` };
  if (init.body && !headers['content-type']) headers['content-type'] = FHIR_JSON;
  return fetchRaw(`${F}/${p}`, { ...init, headers });
}

async function sys(p, init = {}) {
  const r = await fetchRaw(`${F}/${p}`, { ...init, headers: { accept: FHIR_JSON, 'content-type': FHIR_JSON, ...(init.headers || {}) } });
  if (!init.any) assert.ok(r.status < 300, `system ${p}: ${r.status} ${r.text.slice(0, 300)}`);
  return r;
}

const bundle = (type, entry) => JSON.stringify({ resourceType: 'Bundle', type, entry });

// Resources of other patients' records in a response text, at any depth (an id echoed from
// the request, in a message or a link, is not one; nor is a reference in alice's own data).
function foreignIn(text) {
  return [...seen.foreign].filter((id) => text.includes(`"id":"${id}"`));
}

// A token from the code flow for 'user', picking 'patient' when the picker shows, keeping
// every offered type and ticking 'cats'.
async function userToken(user, scope, { cats = [], patient } = {}) {
  const tok = await consentToken({ base: B, fhirBase: F, clientId: APP, redirectUri: REDIRECT }, user, scope, { cats, patient });
  if (cats.length) assert.match(tok.scope, /category=/, 'the grant holds category scopes');
  return tok;
}

/* ---- batch and transaction entries ---- */

describe('Bundle entries of every method are checked', () => {
  it('a batch entry with method HEAD does not read another patient\'s resource', async () => {
    const r = await api(full, '', {
      method: 'POST',
      body: bundle('batch', [{ request: { method: 'HEAD', url: `Observation/${seen.childObs}` } }]),
    });
    assert.deepEqual(foreignIn(r.text), [], `bob-child's Observation came back: ${r.text.slice(0, 300)}`);
    assert.equal(r.status, 403, 'refused as the same GET is');
  });

  it('a transaction entry with method HEAD does not read another patient\'s resource', async () => {
    const r = await api(full, '', {
      method: 'POST',
      body: bundle('transaction', [{ request: { method: 'HEAD', url: `Condition/${seen.childCond}` } }]),
    });
    assert.deepEqual(foreignIn(r.text), [], r.text.slice(0, 300));
    assert.equal(r.status, 403);
  });

  it('a HEAD entry is bound by the scopes\' types and categories as a GET entry is', async () => {
    // a lab result of alice's own record, under a token limited to vital signs
    const lab = seen.aliceLab[0];
    for (const method of ['GET', 'HEAD']) {
      const r = await api(vitals, '', {
        method: 'POST', body: bundle('batch', [{ request: { method, url: `Observation/${lab}` } }]),
      });
      assert.equal(r.status, 403, `${method}: ${r.text.slice(0, 300)}`);
      assert.ok(!r.text.includes('"resourceType":"Observation"'), `${method} entry shows a lab result`);
    }
    const r = await api(noObs, '', {
      method: 'POST', body: bundle('batch', [{ request: { method: 'HEAD', url: `Observation/${seen.aliceVital[0]}` } }]),
    });
    assert.equal(r.status, 403, r.text.slice(0, 300));
  });

  it('a HEAD entry of the patient\'s own resource still reads it', async () => {
    const r = await api(full, '', {
      method: 'POST', body: bundle('batch', [{ request: { method: 'HEAD', url: `Observation/${seen.aliceObs[0]}` } }]),
    });
    assert.equal(r.status, 200, r.text.slice(0, 300));
    assert.equal(r.json.entry[0].resource?.id, seen.aliceObs[0]);
  });

  it('GET, PUT and DELETE entries naming another patient\'s resource refuse the Bundle', async () => {
    const child = (await sys(`Observation/${seen.childObs}`)).json;
    const moved = { ...child, subject: { reference: 'Patient/alice' } };
    const cases = [
      { request: { method: 'GET', url: `Observation/${seen.childObs}` } },
      { request: { method: 'GET', url: `Observation/${seen.childObs}/_history/1` } },
      { request: { method: 'PUT', url: `Observation/${seen.childObs}` }, resource: moved },
      { request: { method: 'DELETE', url: `Observation/${seen.childObs}` } },
      { request: { method: 'DELETE', url: `Observation?_id=${seen.childObs}` } },
      { request: { method: 'PUT', url: `Observation?_id=${seen.childObs}` }, resource: moved },
      { request: { method: 'POST', url: 'Observation', ifNoneExist: `_id=${seen.childObs}` }, resource: moved },
    ];
    for (const type of ['batch', 'transaction']) {
      for (const en of cases) {
        const r = await api(full, '', { method: 'POST', body: bundle(type, [en]) });
        assert.equal(r.status, 403, `${type} ${en.request.method} ${en.request.url}: ${r.text.slice(0, 300)}`);
        assert.deepEqual(foreignIn(r.text), [], r.text.slice(0, 300));
      }
    }
    const after = await sys(`Observation/${seen.childObs}`);
    assert.equal(after.json.meta.versionId, child.meta.versionId, 'bob-child\'s Observation is unchanged');
  });

  it('a refused entry answers the same for another patient\'s resource and a missing one', async () => {
    const ask = async (id) => {
      const r = await api(full, '', { method: 'POST', body: bundle('batch', [{ request: { method: 'GET', url: `Condition/${id}` } }]) });
      return [r.status, r.text.replace(id, 'ID')];
    };
    assert.deepEqual(await ask(seen.childCond), await ask(crypto.randomUUID()));
  });

  it('a search entry is confined to the patient, and chained or _has entries are refused', async () => {
    let r = await api(full, '', {
      method: 'POST',
      body: bundle('batch', [
        { request: { method: 'GET', url: `Observation?_id=${seen.childObs}&_total=accurate` } },
        { request: { method: 'GET', url: 'Observation?patient=bob-child&_summary=count' } },
        { request: { method: 'GET', url: 'Observation?patient.name=Walker' } },
        { request: { method: 'GET', url: 'Patient?_has:Observation:patient:status=final' } },
      ]),
    });
    assert.equal(r.status, 200, r.text.slice(0, 300));
    assert.deepEqual(foreignIn(r.text), []);
    assert.equal(r.json.entry[0].resource.total, 0);
    assert.equal(r.json.entry[1].resource.total, 0);
    assert.match(r.json.entry[2].response.status, /^403/);
    assert.match(r.json.entry[3].response.status, /^403/);
  });

  it('a transaction cannot create or move a resource into another patient\'s record', async () => {
    const obs = {
      resourceType: 'Observation', status: 'final', code: { text: 'x' },
      subject: { reference: 'Patient/bob-child' },
    };
    for (const en of [
      { fullUrl: 'urn:uuid:1', request: { method: 'POST', url: 'Observation' }, resource: obs },
      { request: { method: 'PUT', url: `Observation/${seen.aliceObs[0]}` },
        resource: { ...obs, id: seen.aliceObs[0] } },
      { request: { method: 'POST', url: 'Observation' },
        resource: { ...obs, subject: { reference: 'Patient/alice' }, performer: [{ reference: 'Patient/bob-child' }] } },
    ]) {
      const r = await api(full, '', { method: 'POST', body: bundle('transaction', [en]) });
      assert.equal(r.status, 403, r.text.slice(0, 300));
    }
    const n = await sys('Observation?patient=bob-child&_summary=count&_total=accurate');
    const m = await sys('Observation?performer=Patient/bob-child&_summary=count&_total=accurate');
    assert.equal(m.json.total, 0);
    assert.ok(n.json.total > 0);
  });
});

/* ---- $everything ---- */

describe('$everything stays within the scopes', () => {
  it('_include cannot bring in Observations outside the granted categories', async () => {
    const r = await api(vitals, `Patient/alice/$everything?_include=DiagnosticReport:result&_count=1000`);
    assert.ok(r.status === 200 || r.status === 403, r.text.slice(0, 300));
    const got = (r.json.entry || []).filter((e) => e.resource?.resourceType === 'Observation').map((e) => e.resource.id);
    const outside = got.filter((id) => !seen.aliceVital.includes(id));
    assert.deepEqual(outside, [], `Observations outside vital signs came in (${outside.length})`);
  });

  it('_include cannot bring in a type the scopes do not grant', async () => {
    const r = await api(noObs, `Patient/alice/$everything?_include=DiagnosticReport:result&_count=1000`);
    assert.ok(r.status === 200 || r.status === 403, r.text.slice(0, 300));
    const got = (r.json.entry || []).filter((e) => e.resource?.resourceType === 'Observation');
    assert.equal(got.length, 0, 'Observations came in without an Observation scope');
  });

  it('the same _include on a DiagnosticReport search is refused', async () => {
    const r = await api(noObs, 'DiagnosticReport?_include=DiagnosticReport:result');
    assert.equal(r.status, 403, r.text.slice(0, 300));
  });

  it('$everything of another patient is refused; alice\'s holds nothing of others', async () => {
    const other = await api(full, 'Patient/bob-child/$everything');
    assert.equal(other.status, 403);
    assert.deepEqual(foreignIn(other.text), []);
    const own = await api(full, 'Patient/alice/$everything?_count=5000&_include=*&_include:iterate=*');
    assert.equal(own.status, 200, own.text.slice(0, 300));
    assert.deepEqual(foreignIn(own.text), []);
  });
});

/* ---- reads, history and searches ---- */

describe('reads, history and searches of another patient', () => {
  it('read, vread and instance history of another patient\'s resource answer as a missing one', async () => {
    const miss = crypto.randomUUID();
    for (const suffix of ['', '/_history', '/_history/1']) {
      const a = await api(full, `Observation/${seen.childObs}${suffix}`);
      const b = await api(full, `Observation/${miss}${suffix}`);
      assert.equal(a.status, 404, `${suffix}: ${a.text.slice(0, 200)}`);
      assert.equal(a.text.replace(seen.childObs, 'ID'), b.text.replace(miss, 'ID'));
    }
  });

  it('type and system history are refused', async () => {
    for (const p of ['Observation/_history', '_history', 'Patient/_history']) {
      const r = await api(full, p);
      assert.equal(r.status, 403, p);
      assert.deepEqual(foreignIn(r.text), []);
    }
  });

  it('searches and totals count only alice\'s record', async () => {
    for (const q of [
      `Observation?_id=${seen.childObs}&_total=accurate`,
      'Observation?subject=Patient/bob-child&_summary=count',
      'Observation?patient=bob-child&_total=accurate&_elements=id',
      `Condition?_id=${seen.childCond}&_summary=count`,
      'Patient?_id=bob-child&_total=accurate',
      'Patient?name=Walker&_total=accurate&_count=0',
    ]) {
      const r = await api(full, q);
      assert.equal(r.status, 200, `${q}: ${r.text.slice(0, 200)}`);
      assert.deepEqual(foreignIn(r.text), [], q);
      if (!q.startsWith('Patient?name')) assert.equal(r.json.total, 0, q);
      else assert.ok(r.json.total <= 1, q);
    }
  });

  it('chains and _has reaching the record are refused', async () => {
    for (const q of [
      'Observation?patient.name=Walker', 'Observation?subject:Patient.name=Walker',
      'Observation?performer.name=Walker', 'Observation?encounter.status=finished',
      'Patient?_has:Observation:patient:code=http://loinc.org|4548-4',
      'Practitioner?_has:Observation:performer:status=final',
    ]) {
      const r = await api(full, q);
      assert.equal(r.status, 403, `${q}: ${r.text.slice(0, 200)}`);
    }
  });

  it('a compartment search of another patient is refused, with or without matches', async () => {
    const a = await api(full, 'Patient/bob-child/Observation');
    const b = await api(full, `Patient/${crypto.randomUUID()}/Observation`);
    assert.equal(a.status, 403);
    assert.equal(a.status, b.status);
    assert.deepEqual(foreignIn(a.text), []);
  });

  it('includes of alice\'s resources do not pull in other patients\' resources', async () => {
    for (const q of [
      'Observation?_id=cross-alice&_include=*&_include:iterate=*&_revinclude=Provenance:target',
      'Observation?_id=cross-alice&_include=Observation:has-member&_include=Observation:derived-from&_include=Observation:focus',
      'Provenance?_include=Provenance:target&_include:iterate=Observation:has-member&_count=1000',
      'Condition?_include=*&_include:iterate=*&_count=1000',
      'Patient?_revinclude=Provenance:target&_revinclude=Observation:subject&_include=Patient:link&_count=1000',
      'Practitioner?_revinclude=Provenance:agent&_revinclude=Observation:performer&_count=1000',
    ]) {
      const r = await api(full, q);
      assert.equal(r.status, 200, `${q}: ${r.text.slice(0, 200)}`);
      const inc = (r.json.entry || []).filter((e) => e.search?.mode === 'include').map((e) => e.resource.id);
      const bad = inc.filter((id) => seen.foreign.has(id));
      assert.deepEqual(bad, [], `${q} included another patient's resources`);
    }
    // the references themselves are alice's to see; what they point at is not
    const own = await api(full, 'Observation/cross-alice');
    assert.equal(own.status, 200);
    assert.equal((await api(full, 'Provenance/prov-alice')).status, 200);
    assert.equal((await api(full, 'Provenance/prov-child')).status, 404);
  });
});

describe('user/ scopes of a patient account', () => {
  it('are confined to the patient\'s own record, Bundles included', async () => {
    const t = (await userToken('alice', 'openid fhirUser user/*.cruds')).access_token;
    assert.equal((await api(t, `Observation/${seen.childObs}`)).status, 404);
    assert.equal((await api(t, 'Patient/bob-child')).status, 404);
    assert.equal((await api(t, 'Observation?patient=bob-child&_total=accurate')).json.total, 0);
    assert.equal((await api(t, 'Patient/bob-child/Observation')).status, 403);
    for (const method of ['GET', 'HEAD']) {
      const r = await api(t, '', { method: 'POST', body: bundle('batch', [{ request: { method, url: `Observation/${seen.childObs}` } }]) });
      assert.equal(r.status, 403, `${method}: ${r.text.slice(0, 300)}`);
      assert.deepEqual(foreignIn(r.text), []);
    }
  });
});

/* ---- granular scopes ---- */

describe('granular scopes on every path', () => {
  it('reads, history and searches outside the categories answer as missing or empty', async () => {
    const lab = seen.aliceLab[0];
    assert.equal((await api(vitals, `Observation/${lab}`)).status, 404);
    assert.equal((await api(vitals, `Observation/${lab}/_history`)).status, 404);
    assert.equal((await api(vitals, `Observation/${lab}/_history/1`)).status, 404);
    const s = await api(vitals, `Observation?_id=${lab}&_total=accurate`);
    assert.equal(s.json.total, 0);
    const c = await api(vitals, `Patient/alice/Observation?category=laboratory&_summary=count`);
    assert.equal(c.json.total, 0);
    assert.equal((await api(vitals, 'Observation/_history')).status, 403);
  });

  it('includes of the constrained type are refused', async () => {
    for (const q of [
      'DiagnosticReport?_include=DiagnosticReport:result',
      'Patient?_revinclude=Observation:subject',
      'DiagnosticReport?_include=*',
    ]) assert.equal((await api(vitals, q)).status, 403, q);
  });
});

/* ---- old versions ---- */

describe('old versions are judged by the record and categories they were written in', () => {
  let child; // bob (caregiver) for bob-child, patient/*.cruds
  const obs = (id, patient, name, cat, extra = {}) => ({
    resourceType: 'Observation', id, status: 'final', code: { text: `reading ${id}` },
    category: [{ coding: [{ system: CAT, code: cat }] }],
    subject: { reference: `Patient/${patient}`, display: name }, ...extra,
  });
  const put = (o) => sys(`Observation/${o.id}`, { method: 'PUT', body: JSON.stringify(o) });
  // an answer with the ids, version numbers and times that differ taken out
  const shape = (r, ...ids) => {
    let t = r.text;
    for (const id of ids) t = t.replaceAll(id, 'ID');
    return `${r.status} ${t.replace(/version \d+/g, 'version N').replace(/"timestamp":"[^"]*"/g, '')}`;
  };
  const vread = (token, id, v) => api(token, '', { method: 'POST', body: bundle('batch', [{ request: { method: 'GET', url: `Observation/${id}/_history/${v}` } }]) });
  const versions = (r) => (r.json.entry || []).map((e) => e.response.etag);

  before(async () => {
    child = (await userToken('bob', 'launch/patient patient/*.cruds', { patient: 'bob-child' })).access_token;
    // staff move an Observation from bob-child's record to alice's
    await put(obs('moved', 'bob-child', 'Lily Martin', 'vital-signs', { note: [{ text: 'Lily is doing well' }] }));
    await put(obs('moved', 'alice', 'Alice', 'vital-signs'));
    // one deleted in bob-child's record, then written again in alice's
    await put(obs('moved-del', 'bob-child', 'Lily Martin', 'vital-signs'));
    await sys('Observation/moved-del', { method: 'DELETE' });
    await put(obs('moved-del', 'alice', 'Alice', 'vital-signs'));
    // alice's own: a lab result recategorized as a vital sign, and the reverse
    await put(obs('to-vital', 'alice', 'Alice', 'laboratory', { note: [{ text: 'lab only' }] }));
    await put(obs('to-vital', 'alice', 'Alice', 'vital-signs'));
    await put(obs('to-lab', 'alice', 'Alice', 'vital-signs'));
    await put(obs('to-lab', 'alice', 'Alice', 'laboratory', { note: [{ text: 'lab only' }] }));
  });

  it('the new patient cannot vread a version written in another record: it answers as a missing version', async () => {
    // staff still see every version
    assert.deepEqual(versions(await sys('Observation/moved/_history')), ['W/"2"', 'W/"1"']);
    assert.deepEqual(versions(await sys('Observation/moved-del/_history')), ['W/"3"', 'W/"2"', 'W/"1"']);
    assert.equal((await sys('Observation/moved/_history/1')).json.subject.reference, 'Patient/bob-child');
    const r = await api(full, 'Observation/moved/_history/1');
    assert.equal(r.status, 404, r.text.slice(0, 300));
    assert.ok(!r.text.includes('bob-child') && !r.text.includes('Lily'), r.text);
    assert.equal(shape(r), shape(await api(full, 'Observation/moved/_history/9')));
    assert.equal((await api(full, 'Observation/moved/_history/2')).status, 200);
  });

  it('the new patient\'s instance history lists only the versions of its record, with a total and links to match', async () => {
    const r = await api(full, 'Observation/moved/_history');
    assert.equal(r.status, 200, r.text.slice(0, 300));
    assert.ok(!r.text.includes('bob-child') && !r.text.includes('Lily'), r.text);
    assert.deepEqual(versions(r), ['W/"2"']);
    assert.equal(r.json.total, 1);
    const p = await api(full, 'Observation/moved/_history?_count=1');
    assert.deepEqual(versions(p), ['W/"2"']);
    assert.ok(!p.json.link.some((l) => l.relation === 'next'), 'no next page of hidden versions');
  });

  it('a Bundle vread entry of such a version answers as a missing version', async () => {
    const r = await vread(full, 'moved', 1);
    assert.equal(r.status, 200, r.text.slice(0, 300));
    assert.ok(!r.text.includes('bob-child') && !r.text.includes('Lily'), r.text);
    assert.match(r.json.entry[0].response.status, /^404/);
    assert.equal(shape(r), shape(await vread(full, 'moved', 9)));
    assert.equal((await vread(full, 'moved', 2)).json.entry[0].resource?.subject?.reference, 'Patient/alice');
  });

  it('the old patient still reads the versions of its record, and nothing written since', async () => {
    const v1 = await api(child, 'Observation/moved/_history/1');
    assert.equal(v1.status, 200, v1.text.slice(0, 300));
    assert.equal(v1.json.subject.reference, 'Patient/bob-child');
    const miss = crypto.randomUUID();
    const v2 = await api(child, 'Observation/moved/_history/2');
    assert.equal(v2.status, 404);
    assert.ok(!v2.text.includes('alice') && !v2.text.includes('Alice'), v2.text);
    // as a resource it cannot see, of which it knows one version
    assert.equal(shape(v2, 'moved'), shape(await api(child, `Observation/${miss}/_history/2`), miss));
    assert.equal((await api(child, 'Observation/moved')).status, 404);
    const h = await api(child, 'Observation/moved/_history');
    assert.equal(h.status, 200, h.text.slice(0, 300));
    assert.deepEqual(versions(h), ['W/"1"']);
    assert.equal(h.json.total, 1);
    assert.ok(!h.text.includes('alice') && !h.text.includes('Alice'), h.text);
    let b = await vread(child, 'moved', 1);
    assert.equal(b.status, 200, b.text.slice(0, 300));
    assert.equal(b.json.entry[0].resource?.subject?.reference, 'Patient/bob-child');
    // a version outside its record is refused as an unknown resource's entry is
    b = await vread(child, 'moved', 2);
    assert.equal(shape(b, 'moved'), shape(await vread(child, miss, 2), miss));
    assert.equal(b.status, 403);
  });

  it('a deletion shows where the version it ended showed', async () => {
    const a = await api(full, 'Observation/moved-del/_history');
    assert.deepEqual(versions(a), ['W/"3"']);
    assert.equal(a.json.total, 1);
    assert.equal(shape(await api(full, 'Observation/moved-del/_history/2')), shape(await api(full, 'Observation/moved-del/_history/9')));
    const b = await api(child, 'Observation/moved-del/_history');
    assert.deepEqual(versions(b), ['W/"2"', 'W/"1"']);
    assert.equal(b.json.total, 2);
    assert.equal((await api(child, 'Observation/moved-del/_history/2')).status, 410);
  });

  it('a version outside the granted categories answers as a missing version, though the resource is in them now', async () => {
    const r = await api(vitals, 'Observation/to-vital/_history/1');
    assert.equal(r.status, 404, r.text.slice(0, 300));
    assert.ok(!r.text.includes('lab only'), r.text);
    assert.equal(shape(r), shape(await api(vitals, 'Observation/to-vital/_history/9')));
    const h = await api(vitals, 'Observation/to-vital/_history');
    assert.deepEqual(versions(h), ['W/"2"']);
    assert.equal(h.json.total, 1);
    assert.ok(!h.text.includes('lab only'), h.text);
    const b = await vread(vitals, 'to-vital', 1);
    assert.match(b.json.entry[0].response.status, /^404/);
    assert.ok(!b.text.includes('lab only'), b.text);
    // the whole record's token sees both
    assert.deepEqual(versions(await api(full, 'Observation/to-vital/_history')), ['W/"2"', 'W/"1"']);
  });

  it('a version in the granted categories still shows after the resource left them', async () => {
    assert.equal((await api(vitals, 'Observation/to-lab')).status, 404);
    const v1 = await api(vitals, 'Observation/to-lab/_history/1');
    assert.equal(v1.status, 200, v1.text.slice(0, 300));
    const v2 = await api(vitals, 'Observation/to-lab/_history/2');
    assert.equal(v2.status, 404);
    assert.ok(!v2.text.includes('lab only'), v2.text);
    const h = await api(vitals, 'Observation/to-lab/_history');
    assert.deepEqual(versions(h), ['W/"1"']);
    assert.equal(h.json.total, 1);
    assert.ok(!h.text.includes('lab only'), h.text);
    assert.equal((await vread(vitals, 'to-lab', 1)).json.entry[0].response.status.slice(0, 3), '200');
  });
});

/* ---- writes ---- */

describe('writes that would move a resource between records', () => {
  it('a delete answers the same for another patient\'s live or deleted resource and a missing one', async () => {
    // a deleted resource of bob-child's record, with a few versions
    const body = { resourceType: 'Condition', id: 'gone-child', subject: { reference: 'Patient/bob-child' }, code: { text: 'x' } };
    await sys('Condition/gone-child', { method: 'PUT', body: JSON.stringify(body) });
    await sys('Condition/gone-child', { method: 'PUT', body: JSON.stringify({ ...body, note: [{ text: 'y' }] }) });
    await sys('Condition/gone-child', { method: 'DELETE' });
    const ask = async (id, headers) => {
      const r = await api(full, `Condition/${id}`, { method: 'DELETE', headers });
      return `${r.status} ${r.headers.get('etag')} ${r.text.replaceAll(id, 'ID')}`;
    };
    for (const headers of [{}, { 'if-match': 'W/"1"' }, { 'if-match': 'W/"3"' }, { prefer: 'return=OperationOutcome' },
      { 'if-match': 'W/"2"', prefer: 'return=OperationOutcome' }]) {
      const missing = await ask(crypto.randomUUID(), headers);
      assert.equal(await ask(seen.childCond, headers), missing, `live, ${JSON.stringify(headers)}`);
      assert.equal(await ask('gone-child', headers), missing, `deleted, ${JSON.stringify(headers)}`);
    }
    assert.equal((await sys(`Condition/${seen.childCond}`)).status, 200, 'bob-child\'s Condition is still there');
    const h = await sys('Condition/gone-child/_history');
    assert.equal(h.json.entry.length, 3, 'the deleted one was not written again');
  });

  it('an update cannot move alice\'s resource to another patient, nor take one from another', async () => {
    const own = (await sys(`Observation/${seen.aliceObs[1]}`)).json;
    let r = await api(full, `Observation/${own.id}`, { method: 'PUT', body: JSON.stringify({ ...own, subject: { reference: 'Patient/bob-child' } }) });
    assert.equal(r.status, 403);
    const child = (await sys(`Observation/${seen.childObs}`)).json;
    r = await api(full, `Observation/${child.id}`, { method: 'PUT', body: JSON.stringify({ ...child, subject: { reference: 'Patient/alice' } }) });
    assert.equal(r.status, 404);
    r = await api(full, `Observation/${child.id}`, { method: 'DELETE' });
    assert.equal((await sys(`Observation/${child.id}`)).json.meta.versionId, child.meta.versionId);
    assert.equal((await sys(`Observation/${own.id}`)).json.meta.versionId, own.meta.versionId);
  });
});
