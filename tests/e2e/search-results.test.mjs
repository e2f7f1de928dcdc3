// Result control at its edges: $everything page links whose _since carries
// a zone offset, POST _search with a content type that only starts like a
// form's, and _elements / _summary=text keeping the mandatory elements of
// each resource (FHIR R4 search.html#elements, #summary).
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startServer } from './lib/server.mjs';

const FHIR_JSON = 'application/fhir+json';
const SUBSETTED = 'http://terminology.hl7.org/CodeSystem/v3-ObservationValue';

let srv;

before(async () => {
  srv = await startServer({ seed: 3, patients: 1 });
});
after(async () => {
  if (srv) await srv.stop();
});

const get = (p) => srv.fhirFetch(p, { headers: { accept: FHIR_JSON } });
const matches = (b) => (b.entry || []).filter((e) => e.search && e.search.mode === 'match');
const keys = (b) => matches(b).map((e) => `${e.resource.resourceType}/${e.resource.id}`);
const link = (b, rel) => ((b.link || []).find((l) => l.relation === rel) || {}).url;

async function walk(first) {
  const pages = [];
  let url = srv.fhirBase + first;
  while (url) {
    const r = await fetch(url, { headers: { accept: FHIR_JSON } });
    const body = await r.json();
    assert.equal(r.status, 200, `GET ${url}: ${JSON.stringify(body).slice(0, 300)}`);
    pages.push(body);
    url = link(body, 'next');
    assert.ok(pages.length < 200, 'paging ends');
  }
  return pages;
}

describe('$everything links keep _since as it was given', () => {
  it('a _since with a +hh:mm offset survives the next links: every page answers, each resource once', async () => {
    const since = '2000-01-01T00:00:00+01:00';
    const one = await get(`/Patient/alice/$everything?_since=${encodeURIComponent(since)}&_count=1000`);
    assert.equal(one.status, 200, one.text);
    const want = keys(one.json);
    assert.ok(want.length > 10, `alice has a record (${want.length})`);
    const pages = await walk(`/Patient/alice/$everything?_since=${encodeURIComponent(since)}&_count=7`);
    assert.ok(pages.length > 2, 'several pages');
    for (const p of pages) {
      assert.equal(new URL(link(p, 'self')).searchParams.get('_since'), since, 'self keeps the offset');
    }
    assert.deepEqual(pages.flatMap(keys), want);
  });

  it('the self link names the one _since that was applied', async () => {
    const r = await get('/Patient/alice/$everything?_since=2000-01-01&_since=2001-01-01&_count=3');
    assert.equal(r.status, 200, r.text);
    const self = new URL(link(r.json, 'self'));
    assert.deepEqual(self.searchParams.getAll('_since'), ['2001-01-01']);
    const again = await fetch(self, { headers: { accept: FHIR_JSON } });
    assert.equal(again.status, 200);
    assert.deepEqual(keys(await again.json()), keys(r.json));
  });
});

describe('POST _search', () => {
  it('a content type that only begins like the form type is 415, not a search without the body', async () => {
    for (const ct of ['application/x-www-form-urlencodedX', 'application/x-www-form-urlencoded-v2', 'application/x-www-form-urlencoded+json']) {
      const r = await srv.fhirFetch('/Observation/_search', {
        method: 'POST',
        headers: { 'content-type': ct, accept: FHIR_JSON },
        body: 'patient=alice&_count=3',
      });
      assert.equal(r.status, 415, `${ct}: ${r.status} ${r.text.slice(0, 300)}`);
      assert.equal(r.json.resourceType, 'OperationOutcome');
    }
    // the form type with parameters is the form type
    const ok = await srv.fhirFetch('/Observation/_search', {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded; charset=UTF-8', accept: FHIR_JSON },
      body: 'patient=alice&_count=3',
    });
    assert.equal(ok.status, 200, ok.text);
    assert.ok(matches(ok.json).every((e) => e.resource.subject.reference === 'Patient/alice'));
    assert.equal(new URL(link(ok.json, 'self')).searchParams.get('patient'), 'alice');
  });

  it('POST Patient/{id}/{type}/_search is the compartment search with a form body', async () => {
    const form = { method: 'POST', headers: { 'content-type': 'application/x-www-form-urlencoded', accept: FHIR_JSON } };
    const q = 'category=laboratory&_sort=-date&_count=4';
    const got = await get(`/Patient/alice/Observation?${q}`);
    assert.equal(got.status, 200, got.text);
    assert.equal(matches(got.json).length, 4);
    const post = await srv.fhirFetch('/Patient/alice/Observation/_search', { ...form, body: q });
    assert.equal(post.status, 200, post.text);
    assert.deepEqual(keys(post.json), keys(got.json));
    assert.ok(matches(post.json).every((e) => e.resource.subject.reference === 'Patient/alice'));
    // the next page is the same one GET gives
    assert.equal(link(post.json, 'next'), link(got.json, 'next'));
    // another patient's compartment holds another patient's data only
    const bob = await srv.fhirFetch('/Patient/bob-child/Observation/_search', { ...form, body: 'category=laboratory&_count=50' });
    assert.equal(bob.status, 200, bob.text);
    assert.ok(matches(bob.json).length > 0);
    assert.ok(matches(bob.json).every((e) => e.resource.subject.reference === 'Patient/bob-child'));
    // not a form: 415 with an OperationOutcome, as for POST [type]/_search
    const json = await srv.fhirFetch('/Patient/alice/Observation/_search', {
      method: 'POST', headers: { 'content-type': 'application/json', accept: FHIR_JSON }, body: '{"category":"laboratory"}' });
    assert.equal(json.status, 415, json.text);
    assert.equal(json.json.resourceType, 'OperationOutcome');
    // a bad parameter value names the parameter, as GET does
    const bad = await srv.fhirFetch('/Patient/alice/Observation/_search', { ...form, body: 'date=notadate' });
    assert.equal(bad.status, 400, bad.text);
    assert.match(JSON.stringify(bad.json.issue), /date/);
  });
});

describe('subsets keep the mandatory elements', () => {
  const tagged = (r) => ((r.meta && r.meta.tag) || []).some((t) => t.system === SUBSETTED && t.code === 'SUBSETTED');

  it('_elements=subject on Observation still has status and code (1..1), marked SUBSETTED', async () => {
    const r = await get('/Observation?patient=alice&_elements=subject&_count=5');
    assert.equal(r.status, 200, r.text);
    assert.equal(matches(r.json).length, 5);
    for (const { resource: o } of matches(r.json)) {
      const rest = Object.keys(o).filter((k) => !['resourceType', 'id', 'meta'].includes(k)).sort();
      assert.deepEqual(rest, ['code', 'status', 'subject'], `elements of Observation/${o.id}`);
      assert.ok(tagged(o), 'SUBSETTED tag');
    }
  });

  it('_elements=id on Immunization keeps status, vaccineCode, patient and occurrence[x]', async () => {
    const full = await get('/Immunization?patient=alice&_count=1');
    assert.equal(matches(full.json).length, 1, full.text);
    const id = matches(full.json)[0].resource.id;
    const r = await get(`/Immunization?_id=${id}&_elements=id`);
    assert.equal(r.status, 200, r.text);
    const imm = matches(r.json)[0].resource;
    const rest = Object.keys(imm).filter((k) => !['resourceType', 'id', 'meta'].includes(k)).sort();
    const f = matches(full.json)[0].resource;
    const occ = Object.keys(f).filter((k) => k.startsWith('occurrence'));
    assert.equal(occ.length, 1);
    assert.deepEqual(rest, ['patient', 'status', 'vaccineCode', occ[0]].sort());
    assert.deepEqual(imm.vaccineCode, f.vaccineCode);
  });

  it('_summary=text is text, id, meta and the top-level mandatory elements', async () => {
    const r = await get('/Observation?patient=alice&_summary=text&_count=5');
    assert.equal(r.status, 200, r.text);
    for (const { resource: o } of matches(r.json)) {
      const rest = Object.keys(o).filter((k) => !['resourceType', 'id', 'meta', 'text'].includes(k)).sort();
      assert.deepEqual(rest, ['code', 'status'], `elements of Observation/${o.id}`);
      assert.ok(tagged(o), 'SUBSETTED tag');
    }
    // a Patient has no mandatory element: text only
    const p = await get('/Patient?_id=alice&_summary=text');
    assert.equal(p.status, 200, p.text);
    const pat = matches(p.json)[0].resource;
    assert.deepEqual(Object.keys(pat).filter((k) => !['resourceType', 'id', 'meta', 'text'].includes(k)), []);
  });

  // R4's summary elements (isSummary in the 4.0.1 StructureDefinitions) of
  // types Synthea writes with elements outside them: each must keep exactly
  // its summary elements, not only lose its narrative.
  const SUMMARY = {
    AllergyIntolerance: ['identifier', 'clinicalStatus', 'verificationStatus', 'type', 'category', 'criticality', 'code', 'patient', 'asserter'],
    CarePlan: ['identifier', 'instantiatesCanonical', 'instantiatesUri', 'basedOn', 'replaces', 'partOf', 'status', 'intent', 'category',
      'title', 'description', 'subject', 'encounter', 'period', 'created', 'author', 'addresses'],
    CareTeam: ['identifier', 'status', 'category', 'name', 'subject', 'encounter', 'period', 'managingOrganization'],
    Immunization: ['status', 'vaccineCode', 'patient', 'occurrence', 'primarySource', 'performer', 'note', 'isSubpotent'],
  };
  const choice = (k, list) => list.includes(k) || list.some((e) => k.startsWith(e) && /^[A-Z]/.test(k.slice(e.length)));

  for (const [type, list] of Object.entries(SUMMARY)) {
    it(`_summary=true on ${type} keeps R4's summary elements only`, async () => {
      const full = await get(`/${type}?patient=alice&_count=20`);
      assert.equal(full.status, 200, full.text);
      assert.ok(matches(full.json).length > 0, `alice has ${type} resources`);
      const sum = await get(`/${type}?patient=alice&_count=20&_summary=true`);
      assert.equal(sum.status, 200, sum.text);
      assert.deepEqual(keys(sum.json), keys(full.json));
      let dropped = 0;
      matches(full.json).forEach(({ resource: f }, i) => {
        const r = matches(sum.json)[i].resource;
        const want = Object.keys(f).filter((k) => ['resourceType', 'id', 'meta'].includes(k) || choice(k, list)).sort();
        assert.deepEqual(Object.keys(r).sort(), want, `elements of ${type}/${f.id}`);
        for (const k of want) if (k !== 'meta') assert.deepEqual(r[k], f[k], `${type}/${f.id} ${k}`);
        assert.ok(tagged(r), 'SUBSETTED tag');
        dropped += Object.keys(f).length - want.length;
      });
      assert.ok(dropped > 0, `some ${type} element outside the summary was dropped`);
    });
  }
});
