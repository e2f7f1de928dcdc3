// FHIR search through a real client (fhir-kit-client) and raw fetch, on the
// seeded demo people: a typical patient-app query, _total, _summary,
// _elements, _include/_revinclude, unknown and malformed parameters, POST
// _search, compartment search, Patient/$everything, self links, and paging
// while resources are being created.
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { Client } from 'fhir-kit-client';
import { startServer, allPages } from './lib/server.mjs';

const FHIR_JSON = 'application/fhir+json';
const H = { 'content-type': FHIR_JSON, accept: FHIR_JSON };
const LAB = 'http://terminology.hl7.org/CodeSystem/observation-category|laboratory';

let srv;
let client;
let history; // every current resource, read through type history (independent of search)

before(async () => {
  srv = await startServer({ seed: 3, patients: 5 });
  client = new Client({ baseUrl: srv.fhirBase, customHeaders: srv.authHeaders });
  history = new Map();
  for (const page of await allPages(srv, '/_history?_count=1000')) {
    for (const e of page.entry || []) {
      const key = `${e.resource ? e.resource.resourceType : ''}/${e.resource ? e.resource.id : ''}`;
      if (e.resource && !history.has(key)) history.set(key, e.resource);
    }
  }
});
after(async () => {
  if (srv) await srv.stop();
});

const get = (p, headers = {}) => srv.fhirFetch(p, { headers: { accept: FHIR_JSON, ...headers } });
const post = (p, body, headers = {}) => srv.fhirFetch(p, { method: 'POST', headers: { ...H, ...headers }, body: JSON.stringify(body) });
const matches = (b) => (b.entry || []).filter((e) => e.search && e.search.mode === 'match');
const ids = (b) => matches(b).map((e) => `${e.resource.resourceType}/${e.resource.id}`);
const isLab = (r) => (r.category || []).some((c) => (c.coding || []).some((cd) => cd.code === 'laboratory'));
const refersTo = (r, target) => JSON.stringify(r).includes(`"reference":"${target}"`) || JSON.stringify(r).includes(`/${target}"`);
const effective = (r) => r.effectiveDateTime || r.effectiveInstant || (r.effectivePeriod && r.effectivePeriod.start);

function current(type, pred = () => true) {
  return [...history.values()].filter((r) => r.resourceType === type && pred(r));
}

async function clientPages(first) {
  const pages = [first];
  for (let b = first; ; ) {
    b = await client.nextPage({ bundle: b });
    if (!b) break;
    pages.push(b);
    assert.ok(pages.length < 500, 'paging ends');
  }
  return pages;
}

async function rawPages(path, { between } = {}) {
  const pages = [];
  let url = srv.fhirBase + path;
  for (let i = 0; url; i++) {
    const r = await fetch(url, { headers: { accept: FHIR_JSON } });
    const body = await r.json();
    assert.equal(r.status, 200, `GET ${url}: ${JSON.stringify(body).slice(0, 400)}`);
    pages.push(body);
    const next = (body.link || []).find((l) => l.relation === 'next');
    url = next ? next.url : null;
    if (url && between) await between(i);
    assert.ok(i < 500, 'paging ends');
  }
  return pages;
}

function assertOutcome(r, status, name) {
  assert.equal(r.status, status, `expected ${status}, got ${r.status}: ${r.text}`);
  assert.equal(r.json && r.json.resourceType, 'OperationOutcome', r.text);
  const issue = r.json.issue[0];
  assert.equal(issue.severity, 'error');
  if (name) {
    const named = (issue.diagnostics || '').includes(name) || (issue.expression || []).includes(name);
    assert.ok(named, `the outcome names '${name}': ${r.text}`);
  }
  return r.json;
}

describe('a patient app query', () => {
  it("Observation?patient=alice&category=laboratory&_sort=-date&_count=20: only alice's labs, newest first", async () => {
    const first = await client.search({
      resourceType: 'Observation',
      searchParams: { patient: 'alice', category: 'laboratory', _sort: '-date', _count: 20 },
    });
    assert.equal(first.resourceType, 'Bundle');
    assert.equal(first.type, 'searchset');
    assert.ok(matches(first).length <= 20 && matches(first).length > 0);
    const pages = await clientPages(first);
    assert.ok(pages.length > 1, 'more than one page of 20');
    const got = pages.flatMap(matches).map((e) => e.resource);
    for (const r of got) {
      assert.equal(r.subject.reference, 'Patient/alice', `${r.id} is alice's`);
      assert.ok(isLab(r), `${r.id} is a lab`);
    }
    const want = current('Observation', (r) => r.subject && r.subject.reference === 'Patient/alice' && isLab(r));
    assert.deepEqual(got.map((r) => r.id).sort(), want.map((r) => r.id).sort(), 'all of them, each once');
    assert.equal(first.total, undefined, 'no total by default when there is more than one page');
    const counted = await get(`/Observation?patient=alice&category=${encodeURIComponent(LAB)}&_total=accurate&_count=20`);
    assert.equal(counted.json.total, want.length, '_total=accurate counts every match');
    const dates = got.map((r) => Date.parse(effective(r)));
    for (let i = 1; i < dates.length; i++) assert.ok(dates[i - 1] >= dates[i], `newest first at ${i}: ${effective(got[i - 1])} then ${effective(got[i])}`);
  });

  it('POST Observation/_search with a form body answers as the GET does', async () => {
    const q = 'patient=alice&category=laboratory&_sort=-date&_count=20';
    const g = await get(`/Observation?${q}`);
    const p = await srv.fhirFetch('/Observation/_search', {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded', accept: FHIR_JSON },
      body: q,
    });
    assert.equal(g.status, 200, g.text);
    assert.equal(p.status, 200, p.text);
    assert.deepEqual(ids(p.json), ids(g.json));
    assert.equal(p.json.total, g.json.total);
    const self = (b) => b.link.find((l) => l.relation === 'self').url;
    assert.equal(self(p.json), self(g.json), 'the same self link: each parameter once');
    const viaClient = await client.search({
      resourceType: 'Observation',
      searchParams: { patient: 'alice', category: 'laboratory', _sort: '-date', _count: 20 },
      options: { postSearch: true },
    });
    assert.deepEqual(ids(viaClient), ids(g.json));
    // the next link of a POSTed search is a GET that continues it
    const nextP = p.json.link.find((l) => l.relation === 'next');
    const nextG = g.json.link.find((l) => l.relation === 'next');
    assert.ok(nextP && nextG);
    const [a, b] = await Promise.all([fetch(nextP.url).then((r) => r.json()), fetch(nextG.url).then((r) => r.json())]);
    assert.deepEqual(ids(a), ids(b));
  });

  it('a compartment search Patient/alice/Observation?category=laboratory finds the same as patient=alice', async () => {
    const comp = await client.search({
      resourceType: 'Observation',
      compartment: { resourceType: 'Patient', id: 'alice' },
      searchParams: { category: 'laboratory', _count: 1000 },
    });
    const plain = await client.search({ resourceType: 'Observation', searchParams: { patient: 'alice', category: 'laboratory', _count: 1000 } });
    assert.ok(matches(comp).length > 10);
    assert.deepEqual(ids(comp).sort(), ids(plain).sort());
    const self = comp.link.find((l) => l.relation === 'self');
    assert.match(self.url, /\/Patient\/alice\/Observation\?/);
    // another patient's compartment has none of alice's
    const other = await get('/Patient/bob-self/Observation?category=laboratory&_count=1000');
    assert.equal(other.status, 200, other.text);
    for (const e of matches(other.json)) assert.notEqual(e.resource.subject.reference, 'Patient/alice');
  });
});

describe('result parameters', () => {
  it('_total=accurate gives the number of matches; _total=none gives none', async () => {
    const want = current('Observation', (r) => r.subject && r.subject.reference === 'Patient/alice').length;
    const acc = await get('/Observation?patient=alice&_total=accurate&_count=5');
    assert.equal(acc.status, 200, acc.text);
    assert.equal(acc.json.total, want);
    assert.equal(matches(acc.json).length, 5);
    const none = await get('/Observation?patient=alice&_total=none&_count=5');
    assert.equal(none.status, 200, none.text);
    assert.equal(none.json.total, undefined, 'no total');
    assert.deepEqual(ids(none.json), ids(acc.json));
    const bad = await get('/Observation?patient=alice&_total=maybe');
    assertOutcome(bad, 400, '_total');
  });

  it('_summary=count gives the total and no entries', async () => {
    const r = await get(`/Observation?patient=alice&category=${encodeURIComponent(LAB)}&_summary=count`);
    assert.equal(r.status, 200, r.text);
    assert.equal(r.json.total, current('Observation', (o) => o.subject.reference === 'Patient/alice' && isLab(o)).length);
    assert.equal(matches(r.json).length, 0);
  });

  it('_elements=code,subject returns only those elements and the mandatory status, marked SUBSETTED', async () => {
    const r = await get('/Observation?patient=alice&_elements=code,subject&_count=10');
    assert.equal(r.status, 200, r.text);
    assert.equal(matches(r.json).length, 10);
    for (const e of matches(r.json)) {
      const keys = Object.keys(e.resource).sort();
      assert.deepEqual(keys.filter((k) => !['resourceType', 'id', 'meta'].includes(k)), ['code', 'status', 'subject'], `elements of ${e.resource.id}: ${keys}`);
      const tags = (e.resource.meta && e.resource.meta.tag) || [];
      assert.ok(tags.some((t) => t.code === 'SUBSETTED' && t.system === 'http://terminology.hl7.org/CodeSystem/v3-ObservationValue'), 'SUBSETTED tag');
      const full = history.get(`Observation/${e.resource.id}`);
      assert.deepEqual(e.resource.code, full.code);
    }
  });

  it('_include=Observation:patient adds Patient/alice once, marked include', async () => {
    const b = await client.search({ resourceType: 'Observation', searchParams: { patient: 'alice', _include: 'Observation:patient', _count: 30 } });
    assert.equal(matches(b).length, 30);
    const inc = b.entry.filter((e) => e.search.mode === 'include');
    assert.deepEqual(inc.map((e) => `${e.resource.resourceType}/${e.resource.id}`), ['Patient/alice']);
    assert.ok(matches(b).every((e) => e.resource.resourceType === 'Observation'));
  });

  it('_revinclude=Provenance:target adds the Provenance of the matches, marked include', async () => {
    const labs = current('Observation', (r) => r.subject.reference === 'Patient/alice' && isLab(r)).slice(0, 3);
    const made = [];
    for (const o of labs) {
      const r = await post('/Provenance', {
        resourceType: 'Provenance',
        target: [{ reference: `Observation/${o.id}` }],
        recorded: '2024-01-01T00:00:00Z',
        agent: [{ who: { reference: 'Practitioner/drsmith' } }],
      });
      assert.equal(r.status, 201, r.text);
      made.push(r.json.id);
    }
    // one about something else: not included
    const other = await post('/Provenance', { resourceType: 'Provenance', target: [{ reference: 'Patient/bob-self' }], recorded: '2024-01-01T00:00:00Z', agent: [{ who: { reference: 'Practitioner/drsmith' } }] });
    assert.equal(other.status, 201, other.text);
    const b = await client.search({ resourceType: 'Observation', searchParams: { patient: 'alice', category: 'laboratory', _revinclude: 'Provenance:target', _count: 1000 } });
    const inc = b.entry.filter((e) => e.search.mode === 'include');
    assert.deepEqual(inc.map((e) => e.resource.id).sort(), made.sort());
    assert.ok(inc.every((e) => e.resource.resourceType === 'Provenance'));
    assert.equal(matches(b).length, b.total, 'includes do not count in the total');
  });

  it('the self link shows only the parameters that were applied', async () => {
    const r = await get('/Observation?patient=alice&no-such-param=1&category=laboratory&_format=json&_count=10');
    assert.equal(r.status, 200, r.text);
    const self = new URL(r.json.link.find((l) => l.relation === 'self').url);
    assert.equal(self.pathname, '/fhir/Observation');
    const names = [...self.searchParams.keys()];
    assert.deepEqual(names.filter((n) => n !== '_count').sort(), ['category', 'patient']);
    assert.equal(self.searchParams.get('patient'), 'alice');
    assert.equal(self.searchParams.get('category'), 'laboratory');
    // following self gives the same page
    const again = await fetch(self, { headers: { accept: FHIR_JSON } }).then((x) => x.json());
    assert.deepEqual(ids(again), ids(r.json));
  });
});

describe('unknown and malformed parameters', () => {
  it('an unknown parameter is ignored with an outcome entry; with Prefer: handling=strict it is a 400 naming it', async () => {
    const r = await get('/Observation?patient=alice&frobnicate=3&_count=5');
    assert.equal(r.status, 200, r.text);
    assert.equal(matches(r.json).length, 5, 'the rest of the search still applies');
    const out = r.json.entry.filter((e) => e.search && e.search.mode === 'outcome');
    assert.equal(out.length, 1, 'one outcome entry');
    assert.equal(out[0].resource.resourceType, 'OperationOutcome');
    assert.ok(JSON.stringify(out[0].resource).includes('frobnicate'), JSON.stringify(out[0].resource));
    const strict = await get('/Observation?patient=alice&frobnicate=3', { prefer: 'handling=strict' });
    assertOutcome(strict, 400, 'frobnicate');
    const lenient = await get('/Observation?patient=alice&frobnicate=3&_count=5', { prefer: 'handling=lenient' });
    assert.equal(lenient.status, 200, lenient.text);
  });

  it('a malformed date, number or token is a 400 naming the parameter', async () => {
    for (const [q, name] of [
      ['date=2023-13-45', 'date'],
      ['date=gtyesterday', 'date'],
      ['value-quantity=abc', 'value-quantity'],
      ['value-quantity=5.4|http://unitsofmeasure.org', 'value-quantity'],
      ['code=a|b|c', 'code'],
      ['patient=Nonsense/1', 'patient'],
      ['status:missing=maybe', 'status:missing'],
      ['_count=-1', '_count'],
      ['_sort=no-such-param', '_sort'],
    ]) {
      assertOutcome(await get(`/Observation?${q}`), 400, name);
    }
    assertOutcome(await get('/Encounter?length=1.2.3'), 400, 'length');
    assertOutcome(await get('/Patient/alice/$everything?_since=last-week'), 400, '_since');
  });
});

describe('Patient/$everything', () => {
  it("pages through only alice's resources plus Patient/alice, honouring _type, _since and _count", async () => {
    const pages = await rawPages('/Patient/alice/$everything?_count=25');
    assert.ok(pages.length > 2, 'several pages');
    const all = pages.flatMap(matches).map((e) => e.resource);
    const keys = all.map((r) => `${r.resourceType}/${r.id}`);
    assert.equal(new Set(keys).size, keys.length, 'each resource once');
    assert.ok(keys.includes('Patient/alice'));
    for (const r of all) {
      if (r.resourceType === 'Patient') assert.equal(r.id, 'alice');
      else assert.ok(refersTo(r, 'Patient/alice'), `${r.resourceType}/${r.id} refers to alice`);
    }
    // complete: every resource whose subject or patient is alice
    const want = [...history.values()].filter((r) => ['subject', 'patient'].some((k) => r[k] && r[k].reference === 'Patient/alice'));
    for (const r of want) assert.ok(keys.includes(`${r.resourceType}/${r.id}`), `${r.resourceType}/${r.id} is in $everything`);
    assert.ok(!keys.some((k) => k === 'Patient/bob-self'));

    // _type
    const typed = (await rawPages('/Patient/alice/$everything?_type=Condition,AllergyIntolerance&_count=3')).flatMap(matches).map((e) => e.resource);
    assert.ok(typed.length > 0);
    assert.ok(typed.every((r) => ['Condition', 'AllergyIntolerance'].includes(r.resourceType)), typed.map((r) => r.resourceType).join());
    assert.equal(typed.length, want.filter((r) => ['Condition', 'AllergyIntolerance'].includes(r.resourceType)).length);

    // _since: only what changed since
    await new Promise((res) => setTimeout(res, 20));
    const since = new Date().toISOString();
    await new Promise((res) => setTimeout(res, 20));
    const c = await post('/Condition', {
      resourceType: 'Condition',
      code: { text: 'Seasonal allergies' },
      subject: { reference: 'Patient/alice' },
    });
    assert.equal(c.status, 201, c.text);
    const recent = (await rawPages(`/Patient/alice/$everything?_since=${encodeURIComponent(since)}&_count=10`)).flatMap(matches).map((e) => `${e.resource.resourceType}/${e.resource.id}`);
    assert.ok(recent.includes(`Condition/${c.json.id}`), `the new Condition is there: ${recent}`);
    assert.deepEqual(recent, [`Condition/${c.json.id}`], 'only what changed since');
    // the links keep _since and _type
    const first = await get(`/Patient/alice/$everything?_since=${encodeURIComponent(since)}&_type=Condition&_count=1`);
    assert.equal(first.status, 200, first.text);
    const self = new URL(first.json.link.find((l) => l.relation === 'self').url);
    assert.equal(self.pathname, '/fhir/Patient/alice/$everything');
    assert.equal(self.searchParams.get('_type'), 'Condition');
    assert.ok(self.searchParams.get('_since'));
  });

  it('an unknown patient is a 404', async () => {
    assertOutcome(await get('/Patient/no-such-patient/$everything'), 404);
  });

  it("a reference to another server's Patient/alice does not put a resource in alice's record", async () => {
    const r = await post('/Observation', {
      resourceType: 'Observation',
      status: 'final',
      category: [{ coding: [{ system: 'http://terminology.hl7.org/CodeSystem/observation-category', code: 'laboratory' }] }],
      code: { text: 'Lab result from elsewhere' },
      subject: { reference: 'http://other.example.org/fhir/Patient/alice' },
    });
    assert.equal(r.status, 201, r.text);
    const id = r.json.id;
    const comp = await get(`/Patient/alice/Observation?_id=${id}`);
    assert.equal(comp.status, 200, comp.text);
    assert.deepEqual(ids(comp.json), [], 'not in the compartment');
    const byParam = await get(`/Observation?patient=alice&_id=${id}`);
    assert.deepEqual(ids(byParam.json), [], 'patient=alice does not match it');
    const byUrl = await get(`/Observation?subject=${encodeURIComponent('http://other.example.org/fhir/Patient/alice')}`);
    assert.deepEqual(ids(byUrl.json), [`Observation/${id}`], 'its own URL does');
    const every = (await rawPages('/Patient/alice/$everything?_type=Observation&_count=1000')).flatMap(matches).map((e) => e.resource.id);
    assert.ok(!every.includes(id), 'not in $everything');
  });
});

describe('paging while resources are created', () => {
  for (const sort of [null, '-date', 'date']) {
    it(`no original match is repeated or skipped (${sort ? `_sort=${sort}` : 'default order'})`, async () => {
      const q = `patient=alice&category=laboratory&_count=4${sort ? `&_sort=${sort}` : ''}`;
      const before = (await rawPages(`/Observation?${q.replace('_count=4', '_count=1000')}`)).flatMap(ids);
      let n = 0;
      const created = [];
      const pages = await rawPages(`/Observation?${q}`, {
        between: async () => {
          // new matches that sort first, last and in between
          for (const when of ['2099-01-01T00:00:00Z', '1901-01-01T00:00:00Z', '2020-06-15T12:00:00Z']) {
            const r = await post('/Observation', {
              resourceType: 'Observation',
              status: 'final',
              category: [{ coding: [{ system: 'http://terminology.hl7.org/CodeSystem/observation-category', code: 'laboratory' }] }],
              code: { coding: [{ system: 'http://loinc.org', code: '2345-7' }] },
              subject: { reference: 'Patient/alice' },
              effectiveDateTime: when,
              valueQuantity: { value: 90 + n++, unit: 'mg/dL', system: 'http://unitsofmeasure.org', code: 'mg/dL' },
            });
            assert.equal(r.status, 201, r.text);
            created.push(`Observation/${r.json.id}`);
          }
        },
      });
      const got = pages.flatMap(ids);
      const byKey = new Map(pages.flatMap(matches).map((e) => [`Observation/${e.resource.id}`, e.resource]));
      const counts = new Map();
      for (const k of got) counts.set(k, (counts.get(k) || 0) + 1);
      const repeated = [...counts].filter(([, c]) => c > 1).map(([k]) => k);
      assert.deepEqual(repeated, [], 'no repeats');
      const skipped = before.filter((k) => !counts.has(k));
      assert.deepEqual(skipped, [], 'no original match skipped');
      const strangers = got.filter((k) => !before.includes(k) && !created.includes(k));
      assert.deepEqual(strangers, [], 'nothing but matches');
      assert.ok(created.length >= 9, 'resources were created between pages');
      if (sort) {
        // resources without a date may sort at either end; the rest in date order
        const dated = got.filter((k) => before.includes(k) && effective(byKey.get(k)));
        const dates = dated.map((k) => Date.parse(effective(byKey.get(k))));
        for (let i = 1; i < dates.length; i++) {
          const ok = sort === 'date' ? dates[i - 1] <= dates[i] : dates[i - 1] >= dates[i];
          assert.ok(ok, `order at ${i}: ${dated[i - 1]} ${effective(byKey.get(dated[i - 1]))} then ${dated[i]} ${effective(byKey.get(dated[i]))}`);
        }
      }
    });
  }
});
