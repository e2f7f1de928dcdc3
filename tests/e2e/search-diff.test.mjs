// Differential search test: several hundred generated searches over a seeded
// population (200 patients, ~15k resources), each compared with a
// brute-force evaluation of the same search over every resource
// (lib/oracle.mjs: FHIRPath on each parameter's expression from
// `veranda params`, then the FHIR R4 matching rules in plain JS; the rules,
// and where either answer is accepted, are listed at the top of that file).
//
// Queries are generated from the data so that most return something: a
// resource of the type, one of its parameters that has a value there, that
// value in one of the forms the parameter kind allows (prefixes, modifiers,
// system|code, Type/id, chains, _has), sometimes ORed with a value from
// another resource, ANDed with a second parameter of the same resource, or
// with :missing.  Then focused queries take each feature of the search
// requirement in turn (FEATURES): chains (with OR and :missing), _has (with
// OR and :missing), :missing on each kind, token :not (comma lists, system|,
// |code), :of-type, :text and strings with accents and case the data does
// not have (:exact, :contains), quantities with and without system and
// unit, ap and ne, sa/eb on Periods, comma OR and repeated-parameter AND.
// A seeded PRNG makes every run the same:
//   SEARCH_DIFF_SEED=n     another sequence of queries (default 11)
//   SEARCH_DIFF_QUERIES=n  how many (default 800, plus the fixed edge queries)
//   SEARCH_DIFF_FOCUSED=n  how many focused queries (default 650)
//   SEARCH_DIFF_VERBOSE=1  print every query with its result size
// A mismatch prints the query and the symmetric difference of the ids, with
// each differing resource's values for the parameters involved.
//
// A subset of the queries, generated and focused, is also paged through with _count=7 (every match
// exactly once; the same pages again walking back with `previous`), and a
// subset is sorted (_sort on dates, strings, tokens, quantities, _id,
// _lastUpdated; the order must agree with the oracle's sort keys, ties in
// any order, resources without a value last).
//
// The seed's dates are relative to the day it runs and _lastUpdated to the
// moment, so a query list reproduces exactly on the same day; every mismatch
// prints its query, which can be replayed against any seeded server.
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startServer, runCli, httpGet, pool } from './lib/server.mjs';
import { Oracle, normalize, escape, compareKeys } from './lib/oracle.mjs';

const SEED = Number(process.env.SEARCH_DIFF_SEED || 11);
const QUERIES = Number(process.env.SEARCH_DIFF_QUERIES || 800);
const FOCUSED = Number(process.env.SEARCH_DIFF_FOCUSED || 650);
const VERBOSE = !!process.env.SEARCH_DIFF_VERBOSE;
const PAGED = 40; // queries also paged with _count=7
const SORTED_SHARE = 0.15;

const TYPES = [
  'Observation', 'Condition', 'MedicationRequest', 'Encounter', 'DiagnosticReport', 'DocumentReference',
  'Appointment', 'Communication', 'Patient', 'Practitioner', 'Organization', 'RelatedPerson', 'CareTeam',
  'Immunization', 'AllergyIntolerance',
];

// ---- seeded PRNG ----

function mulberry32(a) {
  return function () {
    a |= 0;
    a = (a + 0x6d2b79f5) | 0;
    let t = Math.imul(a ^ (a >>> 15), 1 | a);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

// ---- extra resources: shapes the seed does not have ----

// Created through the API before the data is read back, so that every
// parameter kind (uri, Timing, open Periods, text-only concepts, absolute
// references, typed identifiers, tags and profiles) has values.
function extraResources(base) {
  const tag = [{ system: 'http://example.org/tags', code: 'diff-test', display: 'Differential test' }];
  const profile = ['http://example.org/fhir/StructureDefinition/diff-test'];
  return [
    {
      resourceType: 'Patient',
      id: 'dx-pat-1',
      meta: { tag, profile },
      identifier: [
        {
          type: { coding: [{ system: 'http://terminology.hl7.org/CodeSystem/v2-0203', code: 'MR' }], text: 'Medical record number' },
          system: 'http://example.org/mrn',
          value: 'MRN-77,01|x',
        },
      ],
      active: false,
      name: [{ use: 'official', family: 'Ørsted-Nuñez', given: ['Zoë', 'Renée'], prefix: ['Dr.'], suffix: ['Jr.'] }],
      telecom: [{ system: 'email', value: 'Zoe.Orsted@Example.org' }, { system: 'phone', value: '+1 555 0101' }],
      gender: 'other',
      birthDate: '1961',
      address: [{ use: 'home', line: ['Straße 5'], city: 'São Paulo', postalCode: '01000-000', country: 'BR' }],
      managingOrganization: { reference: `${base}/Organization/org-clinic` },
    },
    {
      resourceType: 'Patient',
      id: 'dx-pat-2',
      meta: { tag },
      name: [{ text: 'Ana María de la Cruz' }],
      birthDate: '1975-06',
      gender: 'female',
    },
    {
      resourceType: 'Observation',
      id: 'dx-obs-1',
      meta: { tag, profile },
      status: 'final',
      identifier: [{ system: 'urn:ietf:rfc:3986', value: 'urn:uuid:7f0f9a5e-1b52-4c7e-9d0e-0c6b1c2b7a11' }],
      category: [{ text: 'Home monitoring' }],
      code: { coding: [{ code: 'LOCAL-1', display: 'Local test without a system' }], text: 'Local test' },
      subject: { reference: `${base}/Patient/dx-pat-1` },
      effectivePeriod: { start: '2024-02-29T10:00:00+02:00' },
      valueString: 'Négatif — trace amounts',
    },
    {
      resourceType: 'Observation',
      id: 'dx-obs-2',
      meta: { tag },
      status: 'amended',
      code: { coding: [{ system: 'http://loinc.org', code: '8310-5', display: 'Body temperature' }] },
      subject: { reference: 'Patient/dx-pat-1' },
      effectiveDateTime: '2024-03',
      valueQuantity: { value: 0.000125, unit: 'kg', system: 'http://unitsofmeasure.org', code: 'kg' },
    },
    {
      resourceType: 'Observation',
      id: 'dx-obs-3',
      status: 'final',
      code: { text: 'Symptom onset' },
      subject: { reference: 'Patient/dx-pat-2' },
      effectivePeriod: { end: '2023-12-31T23:59:59Z' },
      valuePeriod: { start: '2023-01-15', end: '2023-02-15' },
    },
    {
      resourceType: 'Observation',
      id: 'dx-obs-4',
      status: 'preliminary',
      code: { coding: [{ system: 'http://loinc.org', code: '2339-0', display: 'Glucose [Mass/volume] in Blood' }] },
      subject: { reference: 'Patient/dx-pat-2' },
      effectiveInstant: '2024-05-01T08:30:00.250Z',
      valueQuantity: { value: 1500, unit: 'milligram per liter', code: 'mg/L' },
    },
    {
      resourceType: 'Observation',
      id: 'dx-obs-5',
      status: 'final',
      code: { coding: [{ system: 'http://loinc.org', code: '72166-2', display: 'Tobacco smoking status' }] },
      subject: { reference: 'Patient/dx-pat-1' },
      effectiveDateTime: '2022-11-30',
      valueCodeableConcept: { coding: [{ system: 'http://snomed.info/sct', code: '8517006', display: 'Ex-smoker' }], text: 'Former smoker' },
    },
    {
      resourceType: 'Observation',
      id: 'dx-obs-6',
      status: 'final',
      category: [{ coding: [{ system: 'http://terminology.hl7.org/CodeSystem/observation-category', code: 'vital-signs' }] }],
      code: { coding: [{ system: 'http://loinc.org', code: '8867-4', display: 'Heart rate' }] },
      // another server's resources, with ids that exist here too
      subject: { reference: 'http://other.example.org/fhir/Patient/p-000007' },
      performer: [{ reference: 'http://other.example.org/fhir/Practitioner/pr-nguyen' }],
      effectiveDateTime: '2024-06-01T10:00:00Z',
      valueQuantity: { value: 72, unit: 'beats/minute', system: 'http://unitsofmeasure.org', code: '/min' },
    },
    {
      // about a Group: it has a subject but no patient (R4: subject.where(resolve() is Patient))
      resourceType: 'Observation',
      id: 'dx-obs-7',
      status: 'final',
      code: { coding: [{ code: 'LOCAL-2', display: 'Household survey' }] },
      subject: { reference: 'Group/dx-household-1' },
      effectiveDateTime: '2024-07-01',
    },
    {
      resourceType: 'DocumentReference',
      id: 'dx-doc-1',
      meta: { tag, profile },
      masterIdentifier: { system: 'http://example.org/docs', value: 'DOC-1' },
      status: 'current',
      type: { coding: [{ system: 'http://loinc.org', code: '34133-9', display: 'Summary of episode note' }] },
      subject: { reference: 'Patient/dx-pat-1' },
      date: '2024-04-01T12:00:00-05:00',
      description: 'Résumé of the episode, part 2',
      content: [{ attachment: { contentType: 'application/pdf', url: 'http://example.org/docs/summary/2024/1.pdf' } }],
      context: { period: { start: '2024-03-01' } },
    },
    {
      resourceType: 'DocumentReference',
      id: 'dx-doc-2',
      status: 'superseded',
      subject: { reference: 'Patient/dx-pat-2' },
      content: [{ attachment: { contentType: 'text/plain', url: 'http://example.org/docs/summary/2023/9.txt' } }],
      context: { period: { end: '2023-10-01T00:00:00Z' } },
    },
    {
      resourceType: 'MedicationRequest',
      id: 'dx-med-1',
      status: 'active',
      intent: 'order',
      medicationCodeableConcept: { text: 'Compounded cream' },
      subject: { reference: 'Patient/dx-pat-1' },
      authoredOn: '2024-01-10',
      dosageInstruction: [{ timing: { event: ['2024-01-11T08:00:00Z', '2024-01-12T08:00:00Z'] } }, { timing: { event: ['2024-02-01'] } }],
    },
    {
      resourceType: 'Encounter',
      id: 'dx-enc-1',
      status: 'in-progress',
      class: { system: 'http://terminology.hl7.org/CodeSystem/v3-ActCode', code: 'IMP', display: 'inpatient encounter' },
      identifier: [{ system: 'http://example.org/visits', value: 'V-1' }],
      subject: { reference: 'Patient/dx-pat-1' },
      period: { start: '2024-05-01T22:00:00+01:00' },
      length: { value: 3.5, unit: 'days', system: 'http://unitsofmeasure.org', code: 'd' },
    },
    {
      resourceType: 'Appointment',
      id: 'dx-appt-1',
      status: 'proposed',
      start: '2030-01-01T09:00:00Z',
      end: '2030-01-01T09:30:00Z',
      participant: [{ actor: { reference: 'Patient/dx-pat-2' }, status: 'needs-action' }],
    },
    {
      resourceType: 'Condition',
      id: 'dx-cond-1',
      clinicalStatus: { coding: [{ system: 'http://terminology.hl7.org/CodeSystem/condition-clinical', code: 'resolved' }] },
      code: { text: 'Sprained ankle' },
      subject: { reference: 'Patient/dx-pat-2' },
      onsetPeriod: { start: '2019-07', end: '2019-08-15' },
      abatementString: 'Resolved after physiotherapy',
      recordedDate: '2019-07-02',
    },
    {
      resourceType: 'Organization',
      id: 'dx-org-1',
      active: true,
      name: 'Clínica Ñandú',
      alias: ['CN Health'],
      partOf: { reference: 'Organization/org-clinic' },
      address: [{ city: 'Córdoba', country: 'AR' }],
    },
  ];
}

// Fixed searches on those shapes, checked against the oracle like the
// generated ones (random picks seldom land on the few extra resources).
const EDGE_QUERIES = [
  ['Observation', [['subject', 'Patient/p-000007']]],
  ['Observation', [['patient', 'p-000007'], ['code', 'http://loinc.org|8867-4']]],
  ['Observation', [['performer', 'Practitioner/pr-nguyen'], ['code', '8867-4']]],
  ['Observation', [['subject', 'http://other.example.org/fhir/Patient/p-000007']]],
  ['Observation', [['patient.name', 'a'], ['code', '8867-4'], ['date', 'ge2024-06-01']]],
  ['Observation', [['subject:missing', 'false'], ['code', '8867-4'], ['date', 'ge2024']]],
  ['Observation', [['value-quantity', '72||beats/minute']]],
  ['Observation', [['value-quantity', '72||/min'], ['date', '2024']]],
  ['Observation', [['value-quantity', '0.000125']]],
  ['Observation', [['value-quantity', '1.25e-4|http://unitsofmeasure.org|kg']]],
  ['Observation', [['value-quantity', '1.5e3||mg/L']]],
  ['Observation', [['value-quantity', 'gt1499||milligram per liter']]],
  ['Observation', [['value-string', 'neg']]],
  ['Observation', [['value-string:contains', 'TRACE']]],
  ['Observation', [['value-concept', 'http://snomed.info/sct|8517006']]],
  ['Observation', [['value-concept:text', 'former']]],
  ['Observation', [['value-date', '2023-02']]],
  ['Observation', [['value-date', 'ge2023-02-15']]],
  ['Observation', [['code', 'LOCAL-1']]],
  // an alias's :missing looks at the references to its type only
  ['Observation', [['patient:missing', 'true']]],
  ['Observation', [['patient:missing', 'false'], ['code', 'LOCAL-2']]],
  ['Observation', [['subject:missing', 'false'], ['code', 'LOCAL-2']]],
  ['Observation', [['patient:missing', 'true'], ['date', 'ge2024-07-01']]],
  ['Observation', [['code', '|LOCAL-1']]],
  ['Observation', [['code', 'local-1']]],
  ['Observation', [['code:text', 'local test']]],
  ['Observation', [['category:text', 'home']]],
  ['Observation', [['identifier', 'urn:ietf:rfc:3986|urn:uuid:7f0f9a5e-1b52-4c7e-9d0e-0c6b1c2b7a11']]],
  ['Observation', [['date', '2024-02-29']]],
  ['Observation', [['date', 'ne2024-02-29'], ['_tag', 'diff-test']]],
  ['Observation', [['date', 'ge2024-02-29T08:00Z'], ['_id', 'dx-obs-1,dx-obs-2,dx-obs-3,dx-obs-4']]],
  ['Observation', [['date', 'le2023-12-31T23:59:59Z'], ['_id', 'dx-obs-1,dx-obs-2,dx-obs-3,dx-obs-4']]],
  ['Observation', [['date', 'eb2024'], ['_id', 'dx-obs-1,dx-obs-2,dx-obs-3,dx-obs-4']]],
  ['Observation', [['date', 'sa2023'], ['_id', 'dx-obs-1,dx-obs-2,dx-obs-3,dx-obs-4']]],
  ['Observation', [['date', '2024-05-01T08:30:00.250Z']]],
  ['Observation', [['date', '2024-05-01T10:30:00+02:00']]],
  ['Patient', [['identifier', 'http://example.org/mrn|MRN-77\\,01\\|x']]],
  ['Patient', [['identifier:of-type', 'http://terminology.hl7.org/CodeSystem/v2-0203|MR|MRN-77\\,01\\|x']]],
  ['Patient', [['identifier:text', 'medical record']]],
  ['Patient', [['name', 'zoe']]],
  ['Patient', [['given', 'RENEE']]],
  ['Patient', [['family:exact', 'Ørsted-Nuñez']]],
  ['Patient', [['family:exact', 'ørsted-nuñez']]],
  ['Patient', [['family:contains', 'NUNEZ']]],
  ['Patient', [['name', 'dr.']]],
  ['Patient', [['name', 'ana maria de la']]],
  ['Patient', [['name:contains', 'maria de']]],
  ['Patient', [['address', 'sao paulo']]],
  ['Patient', [['address-city', 'São']]],
  ['Patient', [['address', 'strasse']]],
  ['Patient', [['email', 'Zoe.Orsted@Example.org']]],
  ['Patient', [['phone', '+1 555 0101']]],
  ['Patient', [['birthdate', '1961']]],
  ['Patient', [['birthdate', '1961-05']]],
  ['Patient', [['birthdate', 'ge1961-05'], ['_tag', 'diff-test']]],
  ['Patient', [['birthdate', 'sa1975'], ['_tag', 'diff-test']]],
  ['Patient', [['birthdate', 'eb1975-06-15'], ['_tag', 'diff-test']]],
  ['Patient', [['_profile', 'http://example.org/fhir/StructureDefinition/diff-test']]],
  ['Patient', [['_profile:below', 'http://example.org/fhir']]],
  ['Patient', [['_tag', 'http://example.org/tags|diff-test'], ['active', 'false']]],
  ['Patient', [['_tag:text', 'differential']]],
  ['Patient', [['organization', 'Organization/org-clinic']]],
  ['Patient', [['organization.name', 'maple']]],
  ['Patient', [['_has:Observation:subject:code', 'LOCAL-1']]],
  ['Patient', [['_has:Observation:patient:code', 'http://loinc.org|8867-4'], ['_id', 'p-000007']]],
  ['Practitioner', [['_has:Observation:performer:code', '8867-4'], ['_id', 'pr-nguyen']]],
  ['DocumentReference', [['location', 'http://example.org/docs/summary/2024/1.pdf']]],
  ['DocumentReference', [['location:below', 'http://example.org/docs/summary']]],
  ['DocumentReference', [['location:above', 'http://example.org/docs/summary/2023/9.txt/page/2']]],
  ['DocumentReference', [['identifier', 'http://example.org/docs|DOC-1']]],
  ['DocumentReference', [['period', 'ge2024-03-01']]],
  ['DocumentReference', [['period', '2023-09']]],
  ['DocumentReference', [['period', 'lt2023-09-30']]],
  ['DocumentReference', [['period', 'sa2023-09-30'], ['_id', 'dx-doc-1,dx-doc-2']]],
  ['DocumentReference', [['date', '2024-04-01']]],
  ['DocumentReference', [['date', '2024-04-01T17:00Z']]],
  ['DocumentReference', [['description', 'resume of']]],
  ['DocumentReference', [['description:exact', 'Résumé of the episode, part 2']]],
  ['DocumentReference', [['description', 'Résumé of the episode\\, part']]],
  ['MedicationRequest', [['date', '2024-01-11']]],
  ['MedicationRequest', [['date', 'gt2024-01-12T08:00:00Z']]],
  ['MedicationRequest', [['date', '2024-02']]],
  ['MedicationRequest', [['code:text', 'compounded']]],
  ['MedicationRequest', [['date:missing', 'false'], ['patient', 'dx-pat-1']]],
  ['Encounter', [['date', 'ge2024-05-01T21:00Z']]],
  ['Encounter', [['date', '2024-05-01'], ['_id', 'dx-enc-1']]],
  ['Encounter', [['date', 'ne2024-05-01'], ['_id', 'dx-enc-1']]],
  ['Encounter', [['date', 'eb2030'], ['_id', 'dx-enc-1']]],
  ['Encounter', [['length', '3.5|http://unitsofmeasure.org|d']]],
  ['Encounter', [['length', 'gt3||days']]],
  ['Encounter', [['identifier', 'V-1']]],
  ['Encounter', [['class', 'IMP']]],
  ['Appointment', [['date', 'ge2030-01-01T09:15:00Z']]],
  ['Appointment', [['patient', 'dx-pat-2'], ['part-status', 'needs-action']]],
  ['Condition', [['onset-date', '2019']]],
  ['Condition', [['onset-date', '2019-07']]],
  ['Condition', [['onset-date', 'ge2019-08'], ['code:text', 'sprain']]],
  ['Condition', [['recorded-date', '2019-07-02'], ['abatement-string:missing', 'false']]],
  ['Condition', [['abatement-date:missing', 'true'], ['code:text', 'sprain']]],
  ['Organization', [['name', 'cn']]],
  ['Organization', [['name', 'clinica nandu']]],
  ['Organization', [['partof', 'org-clinic']]],
  ['Organization', [['address-city', 'cordoba']]],
  // SQL LIKE / GLOB characters are literal
  ['Patient', [['name', '%']]],
  ['Patient', [['name', 'a_']]],
  ['Patient', [['name:contains', '_']]],
  ['Patient', [['family:contains', 'a%e']]],
  ['Patient', [['name', '[a-z]']]],
  ['Observation', [['code:text', '%']]],
  ['Observation', [['code', '8867-%']]],
  ['DocumentReference', [['location:below', 'http%']]],
  ['Observation', [['code:not', 'http://loinc.org|']]],
];

// ---- reading everything back through the API ----

async function readAll(srv) {
  const seen = new Map();
  let url = `${srv.fhirBase}/_history?_count=1000`;
  while (url) {
    const r = await httpGet(url);
    assert.equal(r.status, 200, `GET ${url}: ${r.text.slice(0, 300)}`);
    for (const e of r.json.entry || []) {
      // newest first: the first entry of each resource is its current version
      const key = /\/([A-Za-z]+\/[^/]+?)(\/_history\/.*)?$/.exec(e.fullUrl)[1];
      if (!seen.has(key)) seen.set(key, e);
    }
    const next = (r.json.link || []).find((l) => l.relation === 'next');
    url = next ? next.url : null;
  }
  return [...seen.values()].filter((e) => e.resource && !(e.request && e.request.method === 'DELETE')).map((e) => e.resource);
}

// ---- running a search ----

function qs(query) {
  return query.map(([n, v]) => `${n}=${encodeURIComponent(v)}`).join('&');
}

// Every page of a search: ids in order, per-page ids, the first Bundle's total.
async function searchAll(srv, type, query, { count = 1000, elements = true, maxPages = 200 } = {}) {
  let url = `${srv.fhirBase}/${type}?${qs(query)}&_count=${count}${elements ? '&_elements=id' : ''}`;
  const ids = [];
  const pages = [];
  const bundles = [];
  let total;
  for (let i = 0; url; i++) {
    if (i >= maxPages) throw new Error(`more than ${maxPages} pages for ${type}?${qs(query)}`);
    const r = await httpGet(url);
    if (r.status !== 200) return { status: r.status, error: r.text.slice(0, 500), url };
    if (i === 0) total = r.json.total;
    const page = [];
    for (const e of r.json.entry || []) {
      if (e.search && e.search.mode === 'outcome') continue;
      if (!e.resource || e.resource.resourceType !== type || !e.search || e.search.mode !== 'match') {
        return { status: 'bad-entry', error: JSON.stringify(e).slice(0, 300), url };
      }
      page.push(e.resource.id);
    }
    ids.push(...page);
    pages.push(page);
    bundles.push(r.json);
    const next = (r.json.link || []).find((l) => l.relation === 'next');
    url = next ? next.url : null;
  }
  return { status: 200, ids, pages, bundles, total };
}

// ---- the query generator ----

const DATE_PREFIXES = [['', 6], ['eq', 12], ['ne', 8], ['lt', 10], ['gt', 10], ['le', 12], ['ge', 12], ['sa', 10], ['eb', 10], ['ap', 3]];
const NUM_PREFIXES = [['', 25], ['eq', 8], ['ne', 8], ['lt', 10], ['gt', 10], ['le', 10], ['ge', 10], ['sa', 6], ['eb', 6], ['ap', 4]];
const DATE_PRECISIONS = [['y', 8], ['m', 12], ['d', 35], ['min', 20], ['s', 18], ['ms', 7]];
const OFFSETS = [0, 0, 0, 60, -300, 330, 120, -600];

// The focused queries cycle through these (Generator.feature).
const FEATURES = ['chain', 'chain-missing', 'has', 'missing', 'not', 'of-type', 'text', 'string', 'quantity', 'date-ap-ne', 'period', 'or', 'and'];
// Plain letters and an accented form of each, for search values with accents the data does not have.
const ACCENT = { a: 'á', e: 'é', i: 'í', o: 'ö', u: 'ü', n: 'ñ', c: 'ç', y: 'ÿ' };

class Generator {
  constructor(oracle, rand, base) {
    this.o = oracle;
    this.rand = rand;
    this.base = base;
    this.holdersCache = new Map();
    this.cycle = new Map();
    this.hasCandidates = new Map();
  }

  int(n) {
    return Math.floor(this.rand() * n);
  }
  chance(p) {
    return this.rand() < p;
  }
  pick(a) {
    return a[this.int(a.length)];
  }
  weighted(pairs) {
    const sum = pairs.reduce((s, [, w]) => s + w, 0);
    let x = this.rand() * sum;
    for (const [v, w] of pairs) if ((x -= w) < 0) return v;
    return pairs[pairs.length - 1][0];
  }

  usable(p, r) {
    const vals = this.o.values(p, r);
    if (p.kind === 'reference') return vals.some((v) => v.id);
    if (p.kind === 'token') return vals.some((v) => v.code !== undefined || v.text !== undefined);
    return vals.length > 0;
  }

  holders(type, p) {
    const key = `${type}.${p.code}`;
    if (!this.holdersCache.has(key)) this.holdersCache.set(key, this.o.resources(type).filter((r) => this.usable(p, r)));
    return this.holdersCache.get(key);
  }

  // The next parameter of 'type': round robin over the kinds the type has
  // values for, and within a kind over its parameters with values.
  nextParam(type) {
    let c = this.cycle.get(type);
    if (!c) {
      const byKind = new Map();
      for (const p of this.o.paramsOf(type)) {
        if (!this.holders(type, p).length) continue;
        if (!byKind.has(p.kind)) byKind.set(p.kind, { ps: [], i: 0 });
        byKind.get(p.kind).ps.push(p);
      }
      for (const k of byKind.values()) k.i = this.int(k.ps.length);
      c = { kinds: [...byKind.values()], k: this.int(byKind.size) };
      this.cycle.set(type, c);
    }
    const k = c.kinds[c.k++ % c.kinds.length];
    return k.ps[k.i++ % k.ps.length];
  }

  // Text variants: as is, lower case, ASCII upper case, accents removed.
  vary(s) {
    const x = this.rand();
    if (x < 0.4) return s;
    if (x < 0.7) return s.toLowerCase();
    if (x < 0.9) return s.replace(/[a-z]/g, (c) => c.toUpperCase());
    return s.normalize('NFD').replace(/\p{M}/gu, '').normalize('NFC');
  }

  prefixOf(s) {
    const cps = [...s];
    const n = Math.min(cps.length, 1 + this.int(cps.length));
    const p = cps.slice(0, Math.max(n, Math.min(3, cps.length))).join('').trim();
    return p || s;
  }

  substringOf(s) {
    const cps = [...s];
    if (cps.length <= 2) return s;
    const len = 2 + this.int(Math.min(8, cps.length - 1));
    const start = this.int(cps.length - len + 1);
    const sub = cps.slice(start, start + len).join('').trim();
    return sub || s;
  }

  renderDate(t, prec) {
    const d = new Date(t);
    const p2 = (n) => String(n).padStart(2, '0');
    const ymd = (x) => `${String(x.getUTCFullYear()).padStart(4, '0')}-${p2(x.getUTCMonth() + 1)}-${p2(x.getUTCDate())}`;
    if (prec === 'y') return String(d.getUTCFullYear()).padStart(4, '0');
    if (prec === 'm') return ymd(d).slice(0, 7);
    if (prec === 'd') return ymd(d);
    const off = this.pick(OFFSETS);
    const l = new Date(t + off * 60000);
    let s = `${ymd(l)}T${p2(l.getUTCHours())}:${p2(l.getUTCMinutes())}`;
    if (prec === 's' || prec === 'ms') s += `:${p2(l.getUTCSeconds())}`;
    if (prec === 'ms') s += `.${String(l.getUTCMilliseconds()).padStart(3, '0')}`;
    if (off === 0) return s + 'Z';
    const a = Math.abs(off);
    return `${s}${off < 0 ? '-' : '+'}${p2(Math.floor(a / 60))}:${p2(a % 60)}`;
  }

  renderNumber(v) {
    const s = String(v);
    const x = this.rand();
    const dec = s.includes('.') && !/e/i.test(s) ? s.split('.')[1].length : 0;
    if (x < 0.55 || /e/i.test(s)) return s;
    if (x < 0.7 && dec > 0) return v.toFixed(dec - 1);
    if (x < 0.85) return v.toFixed(dec + 1);
    if (x < 0.93) return v.toExponential(Math.max(0, s.replace(/^-?0*\.?0*/, '').replace('.', '').length - 1));
    return String(Math.round(v));
  }

  /*
   * One [name, value] for parameter p, from resource r's values.
   * opts.noChain: no chained reference (inside chains and _has).
   */
  cond(type, p, r, opts = {}) {
    const vals = this.o.values(p, r);
    const code = p.code;
    switch (p.kind) {
      case 'token': {
        const v = this.pick(vals.filter((x) => x.code !== undefined || x.text !== undefined));
        if (v.code === undefined) return [`${code}:text`, escape(this.vary(this.prefixOf(v.text)))];
        if (v.shape === 'contact' || v.shape === 'primitive') {
          if (this.chance(0.2)) return [`${code}:not`, escape(v.code)];
          if (this.chance(0.1) && code === '_id') {
            const other = this.pick(this.o.resources(type));
            return [code, `${escape(v.code)},${escape(other.id)}`];
          }
          return [code, escape(v.code)];
        }
        const full = v.sys !== undefined ? `${escape(v.sys)}|${escape(v.code)}` : `|${escape(v.code)}`;
        if (v.shape === 'identifier' && v.types.length && this.chance(0.3)) {
          const ty = this.pick(v.types);
          return [`${code}:of-type`, `${escape(ty.sys ?? '')}|${escape(ty.code)}|${escape(v.code)}`];
        }
        const x = this.rand();
        if (x < 0.35) return [code, full];
        if (x < 0.58) return [code, escape(v.code)];
        if (x < 0.66 && v.sys !== undefined) return [code, `${escape(v.sys)}|`];
        if (x < 0.78) return [`${code}:not`, this.chance(0.5) ? full : escape(v.code)];
        if (x < 0.9) {
          const texts = vals.filter((t) => t.text !== undefined);
          if (texts.length) return [`${code}:text`, escape(this.vary(this.prefixOf(this.pick(texts).text)))];
          return [code, full];
        }
        if (x < 0.95) return [code, `http://example.org/no-such-system|${escape(v.code)}`];
        return [code, `|${escape(v.code)}`];
      }
      case 'string': {
        const s = this.pick(vals);
        const x = this.rand();
        if (x < 0.45) return [code, escape(this.vary(this.prefixOf(s)))];
        if (x < 0.58) return [code, escape(this.vary(s))];
        if (x < 0.75) return [`${code}:exact`, escape(this.chance(0.75) ? s : this.vary(s))];
        return [`${code}:contains`, escape(this.vary(this.substringOf(s)))];
      }
      case 'date': {
        const v = this.pick(vals);
        const ends = [v.lo, v.hi].filter(Number.isFinite);
        const t = this.pick(ends);
        const pre = this.weighted(DATE_PREFIXES);
        const s = this.renderDate(t, this.weighted(DATE_PRECISIONS));
        return [code, pre + s];
      }
      case 'number':
      case 'quantity': {
        const v = this.pick(vals);
        const pre = this.weighted(NUM_PREFIXES);
        const n = this.renderNumber(v.v);
        const x = this.rand();
        let unit = '';
        if (p.kind === 'quantity') {
          if (x < 0.25 && v.code !== undefined) unit = `|${escape(v.system ?? '')}|${escape(v.code)}`;
          else if (x < 0.4 && v.unit !== undefined) unit = `||${escape(v.unit)}`;
          else if (x < 0.5 && v.code !== undefined) unit = `||${escape(v.code)}`;
          else if (x < 0.55 && v.system !== undefined) unit = `|${escape(v.system)}|`;
          else if (x < 0.58) unit = '|http://unitsofmeasure.org|no-such-unit';
        }
        return [code, pre + n + unit];
      }
      case 'reference': {
        const v = this.pick(vals.filter((x) => x.id));
        if (v.external && this.chance(0.5)) return [code, v.raw];
        if (!opts.noChain && !v.external && this.chance(0.22)) {
          const ch = this.chain(type, p, v);
          if (ch) return ch;
        }
        const x = this.rand();
        if (x < 0.4) return [code, `${v.type}/${v.id}`];
        if (x < 0.6) return [code, v.id];
        if (x < 0.72) return [`${code}:${v.type}`, v.id];
        if (x < 0.85) return [code, `${this.base}/${v.type}/${v.id}`];
        if (x < 0.92) {
          const other = this.pick(vals.filter((y) => y.id));
          const r2 = this.pick(this.o.resources(type));
          const v2 = this.pick(this.o.values(p, r2).filter((y) => y.id).concat([other]));
          return [code, `${v.type}/${v.id},${v2.type}/${v2.id}`];
        }
        return [code, `${v.type}/no-such-${v.id}`];
      }
      case 'uri': {
        const u = this.pick(vals);
        const x = this.rand();
        if (x < 0.5) return [code, escape(u)];
        if (x < 0.8) return [`${code}:below`, escape(u.slice(0, Math.max(8, this.int(u.length))))];
        return [`${code}:above`, escape(u + (this.chance(0.5) ? '' : '/more'))];
      }
    }
    throw new Error(`no generator for ${p.kind}`);
  }

  // ref[:Type].param=value through an existing referenced resource.
  chain(type, p, v) {
    const t = this.o.resource(v.type, v.id);
    if (!t) return null;
    const subs = this.o.paramsOf(t.resourceType).filter((sp) => sp.kind !== 'reference' || sp.code !== p.code).filter((sp) => this.usable(sp, t));
    if (!subs.length) return null;
    const sp = this.pick(subs);
    const [sname, sval] = this.cond(t.resourceType, sp, t, { noChain: true });
    const cands = (p.targets.length ? p.targets : [...this.o.own.keys()]).filter((T) => this.o.param(T, sp.code));
    const typed = cands.length !== 1 || this.chance(0.2);
    return [`${p.code}${typed ? `:${t.resourceType}` : ''}.${sname}`, sval];
  }

  // _has:Type:ref:param=value for a resource of 'type' that something references.
  has(type) {
    if (!this.hasCandidates.has(type)) {
      const out = [];
      for (const H of TYPES) {
        for (const rp of this.o.paramsOf(H)) {
          if (rp.kind !== 'reference' || (rp.targets.length && !rp.targets.includes(type))) continue;
          const from = this.o.referrers(H, rp);
          const hs = [];
          for (const [k, rs] of from) if (k.startsWith(`${type}/`)) hs.push(...rs);
          if (hs.length) out.push({ H, rp, hs: [...new Set(hs)] });
        }
      }
      this.hasCandidates.set(type, out);
    }
    const cands = this.hasCandidates.get(type);
    if (!cands.length) return null;
    const { H, rp, hs } = this.pick(cands);
    const h = this.pick(hs);
    const subs = this.o.paramsOf(H).filter((sp) => sp.kind !== 'reference' && this.usable(sp, h));
    if (!subs.length) return null;
    const [sname, sval] = this.cond(H, this.pick(subs), h, { noChain: true });
    return [`_has:${H}:${rp.code}:${sname}`, sval];
  }

  query(i) {
    const type = TYPES[i % TYPES.length];
    const p = this.nextParam(type);
    const r = this.pick(this.holders(type, p));
    const q = [this.cond(type, p, r)];
    if (this.chance(0.15)) {
      // OR with a value of the same parameter from another resource
      for (let k = 0; k < 5; k++) {
        const c2 = this.cond(type, p, this.pick(this.holders(type, p)), { noChain: true });
        if (c2[0] === q[0][0] && !q[0][0].includes('.')) {
          q[0][1] += `,${c2[1]}`;
          break;
        }
      }
    }
    if (this.chance(0.25)) {
      const others = this.o.paramsOf(type).filter((p2) => p2.code !== p.code && this.usable(p2, r));
      if (others.length) q.push(this.cond(type, this.pick(others), r, { noChain: true }));
    }
    if (this.chance(0.07)) q.push(this.cond(type, p, r, { noChain: true })); // repeated: AND
    if (this.chance(0.08)) {
      const h = this.has(type);
      if (h) q.push(h);
    }
    if (this.chance(0.06)) q.push([`${this.pick(this.o.paramsOf(type)).code}:missing`, this.chance(0.5) ? 'true' : 'false']);
    return { type, query: q };
  }

  // ---- focused queries: each feature of the search requirement in turn ----

  // Accents and case the stored value does not have: full Unicode upper
  // case (ß -> SS), or an accent added to a plain letter; the server folds
  // both sides, so the match is the same.
  unicodeVariant(s) {
    const x = this.rand();
    if (x < 0.35) return s.toUpperCase();
    const cps = [...s];
    const plain = cps.map((c, i) => (ACCENT[c.toLowerCase()] ? i : -1)).filter((i) => i >= 0);
    if (!plain.length) return s.toUpperCase();
    for (let k = 0; k < 1 + this.int(2); k++) {
      const i = this.pick(plain);
      const acc = ACCENT[cps[i].toLowerCase()];
      if (!acc) continue; // accented already
      cps[i] = cps[i] === cps[i].toLowerCase() ? acc : acc.toUpperCase();
    }
    const out = cps.join('');
    return x < 0.7 ? out : out.toUpperCase();
  }

  // A parameter of 'type' of kind 'kind' (one with values unless 'any').
  paramOfKind(type, kind, any = false) {
    const ps = this.o.paramsOf(type).filter((p) => p.kind === kind && (any || this.holders(type, p).length));
    return ps.length ? this.pick(ps) : null;
  }

  // A type (from 'types') that has a parameter of 'kind' with values.
  typeWith(kind, types = TYPES) {
    const ts = types.filter((t) => this.paramOfKind(t, kind));
    return ts.length ? this.pick(ts) : null;
  }

  // Two or three values of p (from different resources where the value
  // differs) as one comma list under one name, or null.
  orList(type, p, mk) {
    const first = mk(this.pick(this.holders(type, p)));
    if (!first) return null;
    const vals = [first[1]];
    for (let k = 0; k < 8 && vals.length < 2 + this.int(2); k++) {
      const c = mk(this.pick(this.holders(type, p)));
      if (c && c[0] === first[0] && !vals.includes(c[1])) vals.push(c[1]);
    }
    return [first[0], vals.join(',')];
  }

  focused(i) {
    const feature = FEATURES[i % FEATURES.length];
    for (let attempt = 0; attempt < 20; attempt++) {
      const q = this.feature(feature);
      if (q) return { ...q, feature };
    }
    throw new Error(`no query for feature ${feature}`);
  }

  // A type with a reference parameter, a resource of it holding one, and one of its values that
  // points at a resource of this server: { type, p, r, v }, or null when the draw finds none.
  internalReference() {
    const type = this.pick(TYPES);
    const p = this.paramOfKind(type, 'reference');
    if (!p) return null;
    const r = this.pick(this.holders(type, p));
    const v = this.pick(this.o.values(p, r).filter((x) => x.id && !x.external));
    return v ? { type, p, r, v } : null;
  }

  feature(f) {
    switch (f) {
      case 'chain': {
        const ref = this.internalReference();
        if (!ref) return null;
        const { type, p, r, v } = ref;
        const ch = this.chain(type, p, v);
        if (!ch) return null;
        const q = [ch];
        if (this.chance(0.3)) {
          // the same chain ORed with the value of another referenced resource
          const [name] = ch;
          const sub = name.slice(name.indexOf('.') + 1);
          const t2 = this.pick(this.o.resources(v.type));
          const sp = this.o.param(t2.resourceType, sub.split(':')[0]);
          if (sp && this.usable(sp, t2)) {
            const c2 = this.cond(t2.resourceType, sp, t2, { noChain: true });
            if (c2[0] === sub) q[0] = [name, `${ch[1]},${c2[1]}`];
          }
        }
        if (this.chance(0.3)) q.push(this.cond(type, p, r, { noChain: true }));
        return { type, query: q };
      }
      case 'chain-missing': {
        const ref = this.internalReference();
        const t = ref && this.o.resource(ref.v.type, ref.v.id);
        if (!t) return null;
        const { type, p } = ref;
        const sp = this.pick(this.o.paramsOf(t.resourceType).filter((x) => x.kind !== 'reference' || x.code !== p.code));
        const cands = (p.targets.length ? p.targets : [...this.o.own.keys()]).filter((T) => this.o.param(T, sp.code));
        const typed = cands.length !== 1 || this.chance(0.2);
        return { type, query: [[`${p.code}${typed ? `:${t.resourceType}` : ''}.${sp.code}:missing`, this.chance(0.5) ? 'true' : 'false']] };
      }
      case 'has': {
        const type = this.pick(['Patient', 'Patient', 'Practitioner', 'Encounter', 'Organization', 'Observation', 'MedicationRequest']);
        const h = this.has(type);
        if (!h) return null;
        const q = [h];
        const [name] = h;
        const [, H, rc, sub] = name.split(':');
        if (this.chance(0.35)) {
          // OR inside the _has value
          const sp = this.o.param(H, sub);
          const hs = this.o.resources(H).filter((x) => this.usable(sp, x));
          const mod = name.split(':')[4];
          for (let k = 0; k < 6; k++) {
            const c2 = this.cond(H, sp, this.pick(hs), { noChain: true });
            if (c2[0] === `${sub}${mod ? `:${mod}` : ''}`) {
              q[0] = [name, `${h[1]},${c2[1]}`];
              break;
            }
          }
        } else if (this.chance(0.3)) {
          q[0] = [`_has:${H}:${rc}:${sub}:missing`, this.chance(0.5) ? 'true' : 'false'];
        }
        if (this.chance(0.3)) {
          const h2 = this.has(type);
          if (h2) q.push(h2);
        }
        return { type, query: q };
      }
      case 'missing': {
        const kind = this.pick(['token', 'string', 'date', 'reference', 'quantity', 'uri']);
        const type = this.typeWith(kind);
        if (!type) return null;
        const p = this.paramOfKind(type, kind, this.chance(0.2));
        const q = [[`${p.code}:missing`, this.chance(0.5) ? 'true' : 'false']];
        if (this.chance(0.5)) {
          const p2 = this.nextParam(type);
          q.push(this.cond(type, p2, this.pick(this.holders(type, p2)), { noChain: true }));
        }
        return { type, query: q };
      }
      case 'not': {
        const type = this.typeWith('token');
        const p = this.paramOfKind(type, 'token');
        const mk = (r) => {
          const v = this.pick(this.o.values(p, r).filter((x) => x.code !== undefined));
          if (!v) return null;
          const x = this.rand();
          if (x < 0.4 || v.shape === 'contact' || v.shape === 'primitive') return [`${p.code}:not`, escape(v.code)];
          if (x < 0.7) return [`${p.code}:not`, `${escape(v.sys ?? '')}|${escape(v.code)}`];
          if (x < 0.85 && v.sys !== undefined) return [`${p.code}:not`, `${escape(v.sys)}|`];
          return [`${p.code}:not`, `|${escape(v.code)}`];
        };
        const c = this.chance(0.5) ? this.orList(type, p, mk) : mk(this.pick(this.holders(type, p)));
        if (!c) return null;
        const q = [c];
        if (this.chance(0.3)) {
          const c2 = mk(this.pick(this.holders(type, p)));
          if (c2) q.push(c2);
        }
        if (this.chance(0.4)) {
          const p2 = this.nextParam(type);
          q.push(this.cond(type, p2, this.pick(this.holders(type, p2)), { noChain: true }));
        }
        return { type, query: q };
      }
      case 'of-type': {
        const cands = [];
        for (const type of TYPES) {
          for (const p of this.o.paramsOf(type).filter((x) => x.kind === 'token')) {
            for (const r of this.holders(type, p)) {
              for (const v of this.o.values(p, r)) if (v.shape === 'identifier' && v.types.length) cands.push({ type, p, v });
            }
          }
          if (cands.length > 400) break;
        }
        if (!cands.length) return null;
        const mk = ({ p, v }) => {
          const ty = this.pick(v.types);
          const value = this.chance(0.8) ? v.code : v.code.toLowerCase() === v.code ? v.code.toUpperCase() : v.code.toLowerCase();
          return [`${p.code}:of-type`, `${escape(ty.sys ?? '')}|${escape(ty.code)}|${escape(value)}`];
        };
        const c = this.pick(cands);
        const first = mk(c);
        const same = cands.filter((x) => x.type === c.type && x.p === c.p);
        if (this.chance(0.4)) first[1] += `,${mk(this.pick(same))[1]}`;
        return { type: c.type, query: [first] };
      }
      case 'text': {
        const type = this.typeWith('token');
        const p = this.paramOfKind(type, 'token');
        const withText = this.holders(type, p).filter((r) => this.o.values(p, r).some((v) => v.text !== undefined));
        if (!withText.length) return null;
        const mk = (r) => {
          const t = this.pick(this.o.values(p, r).filter((v) => v.text !== undefined)).text;
          const s = this.prefixOf(t);
          return [`${p.code}:text`, escape(this.chance(0.5) ? this.unicodeVariant(s) : this.vary(s))];
        };
        const c = mk(this.pick(withText));
        if (this.chance(0.3)) c[1] += `,${mk(this.pick(withText))[1]}`;
        return { type, query: [c] };
      }
      case 'string': {
        const type = this.typeWith('string');
        const p = this.paramOfKind(type, 'string');
        const mk = (r) => {
          const s = this.pick(this.o.values(p, r));
          const x = this.rand();
          if (x < 0.3) return [p.code, escape(this.unicodeVariant(this.prefixOf(s)))];
          if (x < 0.5) return [`${p.code}:exact`, escape(this.chance(0.5) ? s : this.unicodeVariant(s))];
          if (x < 0.8) return [`${p.code}:contains`, escape(this.unicodeVariant(this.substringOf(s)))];
          return [p.code, escape(this.unicodeVariant(s))];
        };
        const q = [this.chance(0.3) ? this.orList(type, p, mk) : mk(this.pick(this.holders(type, p)))];
        if (this.chance(0.3)) {
          // AND: a second value of the same parameter on the same resource
          const r = this.pick(this.holders(type, p));
          q[0] = mk(r);
          q.push(mk(r));
        }
        return { type, query: q };
      }
      case 'quantity': {
        const type = this.typeWith('quantity');
        const p = this.paramOfKind(type, 'quantity');
        const mk = (r) => {
          const v = this.pick(this.o.values(p, r));
          const pre = this.pick(['', '', 'eq', 'ne', 'lt', 'gt', 'le', 'ge', 'sa', 'eb', 'ap', 'ap']);
          const n = this.renderNumber(v.v);
          const x = this.rand();
          let unit = '';
          if (x < 0.2 && v.code !== undefined) unit = `|${escape(v.system ?? '')}|${escape(v.code)}`;
          else if (x < 0.35 && v.unit !== undefined) unit = `||${escape(v.unit)}`;
          else if (x < 0.5 && v.code !== undefined) unit = `||${escape(v.code)}`;
          else if (x < 0.6 && v.system !== undefined) unit = `|${escape(v.system)}|`;
          else if (x < 0.65) unit = `|http://unitsofmeasure.org|${escape(v.code === 'kg' ? 'g' : 'kg')}`;
          return [p.code, pre + n + unit];
        };
        const r = this.pick(this.holders(type, p));
        const q = [this.chance(0.3) ? this.orList(type, p, mk) : mk(r)];
        if (this.chance(0.3)) q.push(mk(r));
        return { type, query: q };
      }
      case 'date-ap-ne': {
        const type = this.typeWith('date');
        const p = this.paramOfKind(type, 'date');
        const v = this.pick(this.o.values(p, this.pick(this.holders(type, p))));
        const t = this.pick([v.lo, v.hi].filter(Number.isFinite));
        return { type, query: [[p.code, this.pick(['ap', 'ne']) + this.renderDate(t, this.weighted(DATE_PRECISIONS))]] };
      }
      case 'period': {
        // sa / eb (and the others) on values that are ranges: Periods, open Periods
        const wide = (v) => !Number.isFinite(v.lo) || !Number.isFinite(v.hi) || v.hi - v.lo > 86400000;
        if (!this.periods) {
          this.periods = [];
          for (const type of TYPES) {
            for (const p of this.o.paramsOf(type).filter((x) => x.kind === 'date')) {
              const rs = this.holders(type, p).filter((r) => this.o.values(p, r).some(wide));
              if (rs.length) this.periods.push({ type, p, rs });
            }
          }
        }
        const { type, p, rs } = this.pick(this.periods);
        const r = this.pick(rs);
        const v = this.pick(this.o.values(p, r).filter(wide));
        const ends = [v.lo, v.hi].filter(Number.isFinite);
        let t = this.pick(ends);
        if (ends.length === 2 && this.chance(0.3)) t = Math.floor((v.lo + v.hi) / 2); // inside the Period
        t += this.pick([0, 0, -86400000, 86400000, -1000, 1000]);
        const pre = this.pick(['sa', 'eb', 'sa', 'eb', 'ge', 'le', 'gt', 'lt', 'eq', 'ne', 'ap']);
        const q = [[p.code, pre + this.renderDate(t, this.weighted(DATE_PRECISIONS))]];
        if (this.chance(0.5)) q.push(['_id', [r.id, ...Array.from({ length: 5 }, () => this.pick(rs).id)].join(',')]);
        return { type, query: q };
      }
      case 'or': {
        const type = this.pick(TYPES);
        const p = this.nextParam(type);
        const c = this.orList(type, p, (r) => this.cond(type, p, r, { noChain: true }));
        return c && c[1].includes(',') ? { type, query: [c] } : null;
      }
      case 'and': {
        const type = this.pick(TYPES);
        const p = this.nextParam(type);
        const r = this.pick(this.holders(type, p));
        if (p.kind === 'date') {
          // a range around one of the resource's values: ge/gt and le/lt
          const v = this.pick(this.o.values(p, r));
          const lo = Number.isFinite(v.lo) ? v.lo : v.hi - 86400000 * 30;
          const hi = Number.isFinite(v.hi) ? v.hi : v.lo + 86400000 * 30;
          const a = this.renderDate(lo - this.int(3) * 86400000, this.weighted(DATE_PRECISIONS));
          const b = this.renderDate(hi + this.int(3) * 86400000, this.weighted(DATE_PRECISIONS));
          return { type, query: [[p.code, this.pick(['ge', 'gt', 'sa']) + a], [p.code, this.pick(['le', 'lt', 'eb']) + b]] };
        }
        const q = [this.cond(type, p, r, { noChain: true }), this.cond(type, p, r, { noChain: true })];
        if (this.chance(0.3)) q.push(this.cond(type, p, this.pick(this.holders(type, p)), { noChain: true }));
        return { type, query: q };
      }
    }
    throw new Error(`unknown feature ${f}`);
  }

  sortKeys(type) {
    const ps = this.o.paramsOf(type).filter(
      (p) => ['date', 'string', 'token', 'quantity', 'number'].includes(p.kind) && this.holders(type, p).length > 0 && !p.code.startsWith('_'),
    );
    const pickKey = () => {
      const x = this.rand();
      const code = x < 0.15 ? '_id' : x < 0.25 || !ps.length ? '_lastUpdated' : this.pick(ps).code;
      return (this.chance(0.5) ? '-' : '') + code;
    };
    const keys = [pickKey()];
    if (this.chance(0.3)) keys.push(pickKey());
    return [...new Set(keys)];
  }
}

// ---- comparing ----

function kindsOf(oracle, type, query) {
  const out = [];
  for (const [name] of query) {
    if (name.startsWith('_has:')) {
      out.push('_has');
      continue;
    }
    if (name.includes('.')) out.push('chain');
    const code = name.split(/[.:]/)[0];
    const p = oracle.param(type, code);
    const mod = name.includes('.') ? null : name.split(':')[1];
    if (p) out.push(p.kind + (mod ? `:${mod}` : ''));
  }
  return out;
}

function describeValues(oracle, type, id, query) {
  const r = oracle.resource(type, id);
  if (!r) return `${type}/${id}: not a known resource`;
  const parts = [];
  for (const [name] of query) {
    if (name.startsWith('_has:') || name.includes('.')) {
      const code = name.startsWith('_has:') ? null : name.split(/[.:]/)[0];
      if (code) parts.push(`${code}=${JSON.stringify(oracle.values(oracle.param(type, code), r))}`);
      continue;
    }
    const code = name.split(':')[0];
    const p = oracle.param(type, code);
    if (p) parts.push(`${code}=${JSON.stringify(oracle.values(p, r), (k, v) => (v === Infinity ? 'inf' : v === -Infinity ? '-inf' : typeof v === 'number' && v > 1e11 ? new Date(v).toISOString() : v))}`);
  }
  return `${type}/${id}: ${parts.join('; ').slice(0, 600)}`;
}

// Is 'ids' ordered by the oracle's keys for 'sort'?  Ties may come in any
// order; resources without a value for a key come after those with one, in
// both directions (docs/search.md; R4 leaves it open).  Returns null or what
// is out of order.
function checkOrder(oracle, type, ids, sort) {
  const keys = ids.map((id) => sort.map((k) => oracle.sortKey(oracle.resource(type, id), k)));
  for (let i = 1; i < ids.length; i++) {
    for (let k = 0; k < sort.length; k++) {
      const a = keys[i - 1][k];
      const b = keys[i][k];
      let c;
      if (a === undefined && b === undefined) c = 0;
      else if (a === undefined) c = 1;
      else if (b === undefined) c = -1;
      else c = compareKeys(a, b) * (sort[k].startsWith('-') ? -1 : 1);
      if (c < 0) break;
      if (c > 0) return `position ${i}: ${ids[i - 1]} (${JSON.stringify(keys[i - 1])}) before ${ids[i]} (${JSON.stringify(keys[i])})`;
    }
  }
  return null;
}

// ---- the test ----

let srv;
let oracle;
let gen;

const timings = [];
let phaseStart = Date.now();
function phase(name) {
  const now = Date.now();
  timings.push(`${name} ${((now - phaseStart) / 1000).toFixed(1)} s`);
  phaseStart = now;
}

before(async () => {
  phaseStart = Date.now();
  srv = await startServer({ seed: 11, patients: 200, args: ['--page-max', '1000', '--search-time-max', '60000'] });
  phase('seed and start');
  const params = JSON.parse((await runCli(['params'])).stdout);
  for (const res of extraResources(srv.fhirBase)) {
    const r = await srv.fhirFetch(`/${res.resourceType}/${res.id}`, {
      method: 'PUT',
      headers: { 'content-type': 'application/fhir+json', accept: 'application/fhir+json' },
      body: JSON.stringify(res),
    });
    assert.ok(r.status === 201 || r.status === 200, `PUT ${res.resourceType}/${res.id}: ${r.status} ${r.text}`);
  }
  const all = await readAll(srv);
  phase(`read ${all.length} resources`);
  oracle = new Oracle(all, params, { base: srv.fhirBase });
  gen = new Generator(oracle, mulberry32(SEED), srv.fhirBase);
});

after(async () => {
  if (srv) await srv.stop();
});

describe('search differential', () => {
  const results = [];
  const focusedResults = [];

  it(`${QUERIES} generated searches return exactly what the oracle finds (seed ${SEED})`, async (t) => {
    assert.ok(oracle.resources('Observation').length > 5000, 'the seed was read back');
    const queries = EDGE_QUERIES.map(([type, query], i) => ({ i: `edge${i}`, type, query }));
    for (let i = 0; i < QUERIES; i++) queries.push({ i, ...gen.query(i) });
    for (let i = 0; i < FOCUSED; i++) queries.push({ i: `f${i}`, ...gen.focused(i) });
    phase('generate');
    const mismatches = [];
    const kinds = new Map();
    const readings = new Map();
    let nonEmpty = 0;
    let totalMatches = 0;
    await pool(queries, 4, async (q) => {
      const got = await searchAll(srv, q.type, q.query);
      const expected = oracle.search(q.type, q.query);
      const label = `#${q.i}${q.feature ? ` (${q.feature})` : ''} GET /fhir/${q.type}?${qs(q.query)}`;
      for (const k of kindsOf(oracle, q.type, q.query)) kinds.set(k, (kinds.get(k) || 0) + 1);
      if (got.status !== 200) {
        mismatches.push(`${label}\n    status ${got.status}: ${got.error}`);
        return;
      }
      const set = new Set(got.ids);
      const problems = [];
      if (set.size !== got.ids.length) problems.push(`${got.ids.length - set.size} duplicate entries across pages`);
      if (got.total !== undefined && got.total !== got.ids.length) problems.push(`Bundle.total ${got.total} but ${got.ids.length} matches`);
      const missing = [...expected.must].filter((id) => !set.has(id));
      const extra = [...set].filter((id) => !expected.must.has(id) && !expected.may.has(id));
      if (missing.length || extra.length) {
        problems.push(
          `missing ${missing.length} (oracle matches, server does not), extra ${extra.length} (server matches, oracle does not); ` +
            `server ${set.size}, oracle ${expected.must.size}${expected.may.size ? ` + ${expected.may.size} either way` : ''}`,
        );
        if (missing.length) problems.push(`  missing ids: ${missing.slice(0, 20).join(' ')}${missing.length > 20 ? ' ...' : ''}`);
        if (extra.length) problems.push(`  extra ids: ${extra.slice(0, 20).join(' ')}${extra.length > 20 ? ' ...' : ''}`);
        for (const id of missing.slice(0, 4)) problems.push(`  missing ${describeValues(oracle, q.type, id, q.query)}`);
        for (const id of extra.slice(0, 4)) problems.push(`  extra   ${describeValues(oracle, q.type, id, q.query)}`);
      }
      if (problems.length) mismatches.push(`${label}\n    ${problems.join('\n    ')}`);
      if (expected.may.size) {
        // which reading of the open cases does the server follow?
        const same = (e) => e.may.size === 0 && e.must.size === set.size && [...e.must].every((id) => set.has(id));
        const strict = same(oracle.search(q.type, q.query, 'strict'));
        const loose = same(oracle.search(q.type, q.query, 'loose'));
        const k = strict && loose ? 'both' : strict ? 'strict' : loose ? 'loose' : 'neither';
        readings.set(k, (readings.get(k) || 0) + 1);
      }
      if (set.size) nonEmpty++;
      totalMatches += set.size;
      if (typeof q.i === 'number') results[q.i] = { ...q, ids: got.ids, ok: !problems.length };
      else if (q.feature) focusedResults[Number(q.i.slice(1))] = { ...q, ids: got.ids, ok: !problems.length };
      if (VERBOSE) t.diagnostic(`${label} -> ${set.size}`);
    });
    phase('search and compare');
    t.diagnostic(`queries ${queries.length} (${EDGE_QUERIES.length} fixed), non-empty ${nonEmpty}, matches ${totalMatches}, FHIRPath evaluations ${oracle.evaluations}`);
    t.diagnostic(`kinds: ${[...kinds].sort().map(([k, n]) => `${k} ${n}`).join(', ')}`);
    if (oracle.tolerated.size) t.diagnostic(`either answer accepted: ${[...oracle.tolerated].map(([k, n]) => `${k} (${n})`).join('; ')}`);
    // 'strict': R4's range table (date ge/le) and exact stored numbers; 'loose': overlap and stored precision ranges
    if (readings.size) t.diagnostic(`searches with open cases, by the reading the server's answer fits: ${[...readings].map(([k, n]) => `${k} ${n}`).join(', ')}`);
    assert.ok(nonEmpty > queries.length * 0.6, `most queries return something (${nonEmpty} of ${queries.length})`);
    assert.equal(mismatches.length, 0, `${mismatches.length} of ${queries.length} searches differ from the oracle:\n${mismatches.slice(0, 40).join('\n')}`);
  });

  it('paging with _count=7: every match exactly once, and the same pages walking back with previous links', async () => {
    const pageable = (r) => r && r.ok && r.ids.length >= 8 && r.ids.length <= 120;
    const picked = results.filter(pageable).slice(0, PAGED);
    assert.ok(picked.length >= 10, `enough queries to page (${picked.length})`);
    // and chains, _has, :not, :missing, OR and AND lists, which drive other plans
    const focusedPicked = focusedResults.filter(pageable).slice(0, PAGED);
    assert.ok(focusedPicked.length >= 10, `enough focused queries to page (${focusedPicked.length})`);
    picked.push(...focusedPicked);
    const problems = [];
    // decided before any request, so that the PRNG sequence does not depend on timing
    const sorts = picked.map((q, i) => (i % 2 ? gen.sortKeys(q.type) : null));
    await pool(picked, 4, async (q, i) => {
      const sort = sorts[i];
      const query = sort ? [...q.query, ['_sort', sort.join(',')]] : q.query;
      const label = `GET /fhir/${q.type}?${qs(query)}&_count=7`;
      const fwd = await searchAll(srv, q.type, query, { count: 7, elements: false });
      if (fwd.status !== 200) return problems.push(`${label}: ${fwd.status} ${fwd.error}`);
      const seen = new Map();
      for (const id of fwd.ids) seen.set(id, (seen.get(id) || 0) + 1);
      const dup = [...seen].filter(([, c]) => c > 1).map(([id]) => id);
      const want = oracle.search(q.type, q.query);
      const missing = [...want.must].filter((id) => !seen.has(id));
      const extra = [...seen.keys()].filter((id) => !want.must.has(id) && !want.may.has(id));
      if (dup.length || missing.length || extra.length) {
        return problems.push(`${label}: duplicates [${dup.slice(0, 5)}], missing [${missing.slice(0, 5)}], extra [${extra.slice(0, 5)}] over ${fwd.pages.length} pages`);
      }
      if (fwd.pages.slice(0, -1).some((p) => p.length !== 7)) problems.push(`${label}: a page before the last is not 7 long: ${fwd.pages.map((p) => p.length)}`);
      if (sort) {
        const bad = checkOrder(oracle, q.type, fwd.ids, sort);
        if (bad) problems.push(`${label}: order wrong at ${bad}`);
      }
      // walk back from the last page
      const back = [];
      let prev = (fwd.bundles[fwd.bundles.length - 1].link || []).find((l) => l.relation === 'previous');
      if (fwd.pages.length > 1 && !prev) return problems.push(`${label}: the last of ${fwd.pages.length} pages has no previous link`);
      while (prev) {
        const r = await httpGet(prev.url);
        if (r.status !== 200) return problems.push(`${label}: previous ${prev.url} -> ${r.status}`);
        back.unshift((r.json.entry || []).filter((e) => e.search && e.search.mode === 'match').map((e) => e.resource.id));
        prev = (r.json.link || []).find((l) => l.relation === 'previous');
        if (back.length > fwd.pages.length) return problems.push(`${label}: previous links go on beyond the first page`);
      }
      const fwdPages = fwd.pages.slice(0, -1);
      if (JSON.stringify(back) !== JSON.stringify(fwdPages)) {
        problems.push(`${label}: walking back gives other pages:\n      forward ${JSON.stringify(fwdPages).slice(0, 300)}\n      back    ${JSON.stringify(back).slice(0, 300)}`);
      }
    });
    phase(`paging ${picked.length}`);
    assert.equal(problems.length, 0, problems.join('\n'));
  });

  // "This patient's laboratory results, newest first": a patient, one
  // category or code and _sort=-date read the patient-token index
  // (0006_patient_token.sql) instead of probing each resource; the same
  // sets as the oracle, in date order, paged by 3 with nothing repeated.
  it('a patient\'s resources of one category or code, newest first, paged', async (t) => {
    const patients = Array.from({ length: 25 }, (_, i) => `p-${String(i * 8 + 1).padStart(6, '0')}`);
    const shapes = [
      ['Observation', [['category', 'laboratory']]],
      ['Observation', [['category', 'http://terminology.hl7.org/CodeSystem/observation-category|vital-signs']]],
      ['Observation', [['category', 'vital-signs'], ['date', 'ge2024-01-01']]],
      ['Observation', [['code', 'http://loinc.org|8867-4']]],
      ['Observation', [['code', '8867-4'], ['status', 'final']]],
      ['Observation', [['category', 'http://terminology.hl7.org/CodeSystem/observation-category|laboratory'], ['date', 'ge2023-06-01']]],
      ['DiagnosticReport', [['category', 'LAB']]],
      ['DocumentReference', [['category', 'clinical-note']]],
    ];
    const problems = [];
    let nonEmpty = 0;
    const cases = patients.flatMap((p) => shapes.map(([type, rest]) => ({ type, query: [['patient', p], ...rest] })));
    await pool(cases, 4, async (q) => {
      const query = [...q.query, ['_sort', '-date']];
      const label = `GET /fhir/${q.type}?${qs(query)}&_count=3`;
      const got = await searchAll(srv, q.type, query, { count: 3 });
      if (got.status !== 200) return problems.push(`${label}: ${got.status} ${got.error}`);
      const want = oracle.search(q.type, q.query);
      const seen = new Set(got.ids);
      const missing = [...want.must].filter((id) => !seen.has(id));
      const extra = [...seen].filter((id) => !want.must.has(id) && !want.may.has(id));
      if (seen.size !== got.ids.length || missing.length || extra.length) {
        return problems.push(`${label}: ${got.ids.length - seen.size} repeated, missing [${missing.slice(0, 5)}], extra [${extra.slice(0, 5)}]`);
      }
      if (got.ids.length) nonEmpty++;
      const bad = checkOrder(oracle, q.type, got.ids, ['-date']);
      if (bad) problems.push(`${label}: ${bad}`);
    });
    t.diagnostic(`${cases.length} searches, ${nonEmpty} with matches`);
    assert.ok(nonEmpty > cases.length / 3, `enough of them find something (${nonEmpty} of ${cases.length})`);
    assert.equal(problems.length, 0, problems.slice(0, 30).join('\n'));
  });

  it('sorted searches come back in the order of the sort keys', async (t) => {
    const rand = mulberry32(SEED + 1);
    const picked = results.filter((r) => r && r.ok && r.ids.length >= 2 && rand() < SORTED_SHARE * 2).slice(0, Math.ceil(QUERIES * SORTED_SHARE));
    const problems = [];
    const sorts = picked.map((q) => gen.sortKeys(q.type));
    await pool(picked, 4, async (q, i) => {
      const sort = sorts[i];
      const query = [...q.query, ['_sort', sort.join(',')]];
      const label = `GET /fhir/${q.type}?${qs(query)}`;
      const got = await searchAll(srv, q.type, query);
      if (got.status !== 200) return problems.push(`${label}: ${got.status} ${got.error}`);
      if (JSON.stringify([...got.ids].sort()) !== JSON.stringify([...q.ids].sort())) {
        return problems.push(`${label}: _sort changed the result set (${got.ids.length} vs ${q.ids.length})`);
      }
      const bad = checkOrder(oracle, q.type, got.ids, sort);
      if (bad) problems.push(`${label}: ${bad}`);
    });
    phase(`sorting ${picked.length}`);
    t.diagnostic(`time: ${timings.join(', ')}`);
    assert.ok(picked.length >= 20, `enough sorted queries (${picked.length})`);
    // the checker itself can fail: a reversed result with distinct keys is out of order
    const probe = picked.find((q, i) => new Set(q.ids.map((id) => JSON.stringify(sorts[i].map((k) => oracle.sortKey(oracle.resource(q.type, id), k))))).size > 2);
    if (probe) {
      const i = picked.indexOf(probe);
      const ordered = [...probe.ids].sort((a, b) => {
        for (const k of sorts[i]) {
          const x = oracle.sortKey(oracle.resource(probe.type, a), k);
          const y = oracle.sortKey(oracle.resource(probe.type, b), k);
          // as checkOrder(): missing last, and two missing keys leave it to the next key
          if (x === undefined && y === undefined) continue;
          if (x === undefined || y === undefined) return (x === undefined) - (y === undefined);
          const c = compareKeys(x, y) * (k.startsWith('-') ? -1 : 1);
          if (c) return c;
        }
        return 0;
      });
      assert.equal(checkOrder(oracle, probe.type, ordered, sorts[i]), null, 'the oracle order passes');
      assert.notEqual(checkOrder(oracle, probe.type, ordered.reverse(), sorts[i]), null, 'a reversed order fails');
    }
    assert.equal(problems.length, 0, `${problems.length} of ${picked.length} sorted searches out of order:\n${problems.slice(0, 30).join('\n')}`);
  });
});
