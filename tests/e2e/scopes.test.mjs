// Scopes, launch context, refresh-token lifetimes and error bodies against
// the SMART / OAuth conformance checklist (shared/reference/smart-conformance.md;
// the letter and number in each test name are the checklist section and
// item): v2 and v1 scope syntax, the granted scope string, patient-level
// grants in a standalone launch, category scopes, the patient picker,
// online_access and offline_access, the wildcard, PKCE without a challenge,
// JSON error bodies, and refresh tokens that last three months.
//
// What each scope means is docs/scopes.md; what a token may reach is the
// FHIR API answering real reads and searches, compared with what an
// unrestricted system/*.cruds token (the harness's backend service) sees.
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import * as jose from 'jose';
import { makeTempDir, removeDir, initDataDir, seedDataDir, startServer } from './lib/server.mjs';
import {
  Browser, authorize, authzRequest, walk, redeem, postForm, basic, fhirGet, registerClient, signIn,
  accountPage, decodeEntities, fetchJson,
} from './lib/oauth.mjs';

const LOOP_CB = 'http://127.0.0.1/cb';      // registered; any port matches (RFC 8252)
const CB = 'http://127.0.0.1:7777/cb';
const CONF_CB = 'https://conf.example/cb';
const CONF_SECRET = 'conf-secret-0123456789';

const OBS_CAT = 'http://terminology.hl7.org/CodeSystem/observation-category';
const COND_CAT = 'http://terminology.hl7.org/CodeSystem/condition-category';
// Checklist item 41: the category values a (g)(10) server must support.
const CATEGORY_SCOPES = [
  ['Condition', `${COND_CAT}|encounter-diagnosis`],
  ['Condition', `${COND_CAT}|problem-list-item`],
  ['Condition', 'http://hl7.org/fhir/us/core/CodeSystem/condition-category|health-concern'],
  ['Observation', `${OBS_CAT}|laboratory`],
  ['Observation', `${OBS_CAT}|social-history`],
  ['Observation', `${OBS_CAT}|vital-signs`],
  ['Observation', `${OBS_CAT}|survey`],
  ['Observation', 'http://hl7.org/fhir/us/core/CodeSystem/us-core-category|sdoh'],
].map(([type, cat]) => ({ type, cat, scope: `patient/${type}.rs?category=${cat}` }));

// Checklist item 38: patient-compartment types a patient launch grants as patient/ scopes.
const COMPARTMENT_TYPES = ['AllergyIntolerance', 'CarePlan', 'CareTeam', 'Condition', 'DiagnosticReport',
  'DocumentReference', 'Goal', 'Immunization', 'MedicationRequest', 'Observation', 'Procedure', 'Provenance',
  'ServiceRequest', 'Coverage', 'MedicationDispense', 'Specimen', 'Location', 'Patient', 'Encounter'];

// docs/scopes.md, "Examples": what the authorization screen says for patient/*.rs.
const WILDCARD_TEXT = 'See all of your health record: every kind of information, now and in the future';

// RFC 6749 appendix A: scope-token, error and error_description characters.
const SCOPE_TOKEN = /^[\x21\x23-\x5B\x5D-\x7E]+$/;
const ERROR_CHARS = /^[\x20\x21\x23-\x5B\x5D-\x7E]+$/;

let dir, srv, tokenUrl, sys;
let alice, bob;          // signed-in browsers
let served;              // the resource types of the CapabilityStatement

before(async () => {
  dir = await makeTempDir('veranda-scopes-');
  await initDataDir(dir);
  await seedDataDir(dir, { patients: 0 });
  await registerClient(dir, { clientId: 'pub', public: true, redirectUris: [LOOP_CB], name: 'Scopes App' });
  // registered for fewer permissions than it will ask for (D36: v1 scopes narrowed)
  await registerClient(dir, { clientId: 'narrow', public: true, redirectUris: [LOOP_CB],
    scope: 'launch/patient openid patient/Observation.rs patient/Condition.cu patient/Goal.rs' });
  await registerClient(dir, { clientId: 'conf', secret: CONF_SECRET, redirectUris: [CONF_CB] });
  srv = await startServer({ dataDir: dir, init: false });
  sys = srv.token;
  tokenUrl = `${srv.baseUrl}/oauth/token`;
  alice = new Browser(srv.baseUrl);
  assert.equal((await signIn(alice, 'alice')).status, 303, 'alice signs in');
  bob = new Browser(srv.baseUrl);
  assert.equal((await signIn(bob, 'bob')).status, 303, 'bob signs in');
  const cs = await fhirGet(srv, 'metadata', '');
  served = new Set(cs.json.rest[0].resource.map((r) => r.type));
});

after(async () => {
  if (srv) await srv.stop();
  await removeDir(dir);
});

/* ---- helpers ---- */

// A standalone launch through sign-in, picker and consent; resolves the token response and the pages seen.
async function tokens(scope, { browser = alice, clientId = 'pub', redirectUri = CB, patient, consent } = {}) {
  const a = await authorize(browser, srv, { clientId, redirectUri, scope, patient, consent });
  assert.ok(a.code, `a code for "${scope}" (got ${a.redirect} after ${a.walk.pages})`);
  const auth = clientId === 'conf' ? basic('conf', CONF_SECRET) : undefined;
  const r = await redeem(srv, { code: a.code, verifier: a.verifier, redirectUri, clientId, auth });
  assert.equal(r.status, 200, r.text);
  return { ...r.json, pages: a.walk.pages };
}

// A FHIR write with a bearer token; resolves { status, json }.
async function fhirSend(method, p, token, body) {
  const res = await fetch(`${srv.fhirBase}/${p}`, { method, body: body && JSON.stringify(body),
    headers: { authorization: `Bearer ${token}`, 'content-type': 'application/fhir+json', accept: 'application/fhir+json' } });
  const text = await res.text();
  return { status: res.status, json: text ? JSON.parse(text) : undefined };
}

// The matches of a search (its first page): resources sorted by id.  The search must answer 200 with a
// searchset; unless 'page', one page must hold every match.
async function search(query, token, { page = false } = {}) {
  const r = await fhirGet(srv, query, token);
  assert.equal(r.status, 200, `${query}: ${r.text.slice(0, 300)}`);
  assert.equal(r.json.resourceType, 'Bundle', query);
  assert.equal(r.json.type, 'searchset', query);
  if (!page) assert.ok(!(r.json.link || []).some((l) => l.relation === 'next'), `${query}: one page holds every match`);
  return (r.json.entry || []).filter((e) => !e.search || e.search.mode === 'match').map((e) => e.resource)
    .sort((x, y) => (x.id < y.id ? -1 : x.id > y.id ? 1 : 0));
}

const idsOf = (resources) => resources.map((r) => r.id);

// A search for alice's records of 'type' (Patient has no patient parameter).
const aliceQuery = (type) => (type === 'Patient' ? 'Patient?_id=alice' : `${type}?patient=alice&_count=500`);

// "system|code" of every coding of a CodeableConcept list (or one CodeableConcept).
function codings(cc) {
  return [cc || []].flat().flatMap((c) => (c.coding || []).map((x) => `${x.system}|${x.code}`));
}

function assertNoStore(r) {
  assert.match(r.headers.get('cache-control') || '', /no-store/, 'Cache-Control: no-store');
}

// An OAuth error answer (RFC 6749 5.2): JSON {error, error_description}, no-store.
function assertOAuthError(r, status, error) {
  assert.equal(r.status, status, r.text);
  assert.match(r.headers.get('content-type') || '', /^application\/json/, r.text);
  assert.equal(r.json?.error, error, r.text);
  assert.equal(typeof r.json.error_description, 'string', `error_description: ${r.text}`);
  assert.ok(r.json.error_description.length > 0, 'error_description is not empty');
  assert.match(r.json.error, ERROR_CHARS);
  assert.match(r.json.error_description, ERROR_CHARS, 'error_description characters (RFC 6749 5.2)');
  assertNoStore(r);
}

async function introspect(token) {
  const r = await postForm(`${srv.baseUrl}/oauth/introspect`, { token }, { auth: basic('conf', CONF_SECRET) });
  assert.equal(r.status, 200, r.text);
  return r.json;
}

function refresh(refreshToken, extra = {}, auth) {
  const p = { grant_type: 'refresh_token', refresh_token: refreshToken, ...extra };
  if (!auth) p.client_id = 'pub';
  return postForm(tokenUrl, p, { auth });
}

// The visible text of a page.
const pageText = (html) => decodeEntities(html.replace(/<[^>]+>/g, ' ')).replace(/\s+/g, ' ');

/* ================================================================ */

describe('D. scopes and launch context', () => {
  it('D35 v2 scopes: cruds letters in order, ?param constraints; out-of-order or unknown suffixes dropped, never reinterpreted', async () => {
    // alice's observations as an unrestricted token sees them: pick a code of hers
    const obs = await search('Observation?patient=alice&_count=500', sys);
    const code = codings(obs.find((o) => codings(o.category).includes(`${OBS_CAT}|laboratory`)).code)[0];
    assert.ok(code, 'alice has a coded laboratory result');
    const withCode = obs.filter((o) => codings(o.code).includes(code));
    assert.ok(withCode.length > 0 && withCode.length < obs.length, 'the code selects some of her observations');
    const constrained = `patient/Observation.rs?code=${code}`;
    const kept = ['patient/AllergyIntolerance.cruds', 'patient/Condition.r', 'patient/Practitioner.s', constrained];
    const dropped = ['patient/Goal.dus', 'patient/Procedure.sr', 'patient/Encounter.rsc', 'patient/Immunization.x',
      'patient/MedicationRequest.READ', 'patient/DiagnosticReport.', 'patient/CarePlan.rs.'];
    const t = await tokens(['launch/patient', ...kept.slice(0, 2), ...dropped, ...kept.slice(2)].join(' '));
    // flags first, then the record scopes in the order asked, as written (docs/scopes.md)
    assert.deepEqual(t.scope.split(' '), ['launch/patient', ...kept], 'malformed scopes are left out of the grant');

    // r: read, vread, instance history; not search
    const cond = (await search('Condition?patient=alice', sys))[0];
    assert.equal((await fhirGet(srv, `Condition/${cond.id}`, t.access_token)).status, 200, 'r: read');
    assert.equal((await fhirGet(srv, `Condition/${cond.id}/_history/${cond.meta.versionId}`, t.access_token)).status, 200, 'r: vread');
    assert.equal((await fhirGet(srv, `Condition/${cond.id}/_history`, t.access_token)).status, 200, 'r: instance history');
    assert.equal((await fhirGet(srv, 'Condition?patient=alice', t.access_token)).status, 403, 'r is not s');
    // s: search and type history (Practitioner: outside the patient compartment); not read
    const pr = (await search('Practitioner?_count=1', sys, { page: true }))[0];
    assert.ok((await search('Practitioner?_count=5', t.access_token, { page: true })).length > 0, 's: search');
    assert.equal((await fhirGet(srv, 'Practitioner/_history?_count=5', t.access_token)).status, 200, 's: type history');
    assert.equal((await fhirGet(srv, `Practitioner/${pr.id}`, t.access_token)).status, 403, 's is not r');
    assert.equal((await fhirGet(srv, `Practitioner/${pr.id}/_history`, t.access_token)).status, 403, 's is not r (instance history)');
    // the dropped scopes granted nothing: neither search nor read
    for (const type of ['Goal', 'Procedure', 'Encounter', 'Immunization', 'MedicationRequest', 'DiagnosticReport', 'CarePlan']) {
      assert.equal((await fhirGet(srv, `${type}?patient=alice`, t.access_token)).status, 403, `${type}: search`);
    }
    const enc = (await search('Encounter?patient=alice&_count=1', sys, { page: true }))[0];
    assert.equal((await fhirGet(srv, `Encounter/${enc.id}`, t.access_token)).status, 403, '.rsc is not read as .rs');
    const goal = (await search('Goal?patient=alice&_count=1', sys, { page: true }))[0];
    assert.equal((await fhirGet(srv, `Goal/${goal.id}`, t.access_token)).status, 403, '.dus is not read as .uds');

    // cruds: every interaction
    const ai = { resourceType: 'AllergyIntolerance', patient: { reference: 'Patient/alice' }, code: { text: 'latex (scopes test)' } };
    const made = await fhirSend('POST', 'AllergyIntolerance', t.access_token, ai);
    assert.equal(made.status, 201, 'c: create');
    const id = made.json.id;
    assert.equal((await fhirGet(srv, `AllergyIntolerance/${id}`, t.access_token)).status, 200, 'r: read');
    assert.ok(idsOf(await search('AllergyIntolerance?patient=alice', t.access_token)).includes(id), 's: search');
    const changed = { ...ai, id, code: { text: 'latex' } };
    assert.equal((await fhirSend('PUT', `AllergyIntolerance/${id}`, t.access_token, changed)).status, 200, 'u: update');
    assert.ok([200, 204].includes((await fhirSend('DELETE', `AllergyIntolerance/${id}`, t.access_token)).status), 'd: delete');
    assert.equal((await fhirSend('POST', 'Condition', t.access_token, { resourceType: 'Condition',
      subject: { reference: 'Patient/alice' }, code: { text: 'x' } })).status, 403, 'r grants no create');

    // ?param=value: only the matching records
    assert.deepEqual(idsOf(await search('Observation?patient=alice&_count=500', t.access_token)), idsOf(withCode),
      `${constrained}: exactly the observations with that code`);
    const other = obs.find((o) => !codings(o.code).includes(code));
    assert.equal((await fhirGet(srv, `Observation/${other.id}`, t.access_token)).status, 404, 'a read outside the constraint');
    // several parameters: all must match
    const both = `patient/Observation.rs?category=${OBS_CAT}|vital-signs&code=${code}`;
    const t2 = await tokens(`launch/patient ${both}`);
    assert.deepEqual(t2.scope.split(' '), ['launch/patient', both]);
    const expect = obs.filter((o) => codings(o.code).includes(code) && codings(o.category).includes(`${OBS_CAT}|vital-signs`));
    assert.ok(expect.length < withCode.length, 'the second parameter narrows');
    assert.deepEqual(idsOf(await search('Observation?patient=alice&_count=500', t2.access_token)), idsOf(expect),
      'both parameters apply (not either)');
  });

  it('D36 v1 scopes: .read, .write and .* mean rs, cud and cruds, and are answered in v1 form', async () => {
    const conf = await (await fetch(`${srv.fhirBase}/.well-known/smart-configuration`)).json();
    assert.ok(conf.capabilities.includes('permission-v1'), 'permission-v1 is advertised');
    const v1 = ['patient/Observation.read', 'patient/Patient.read', 'patient/Condition.write', 'patient/Goal.*'];
    const t = await tokens(`openid fhirUser launch/patient offline_access ${v1.join(' ')}`);
    assert.deepEqual(t.scope.split(' '), ['openid', 'fhirUser', 'launch/patient', 'offline_access', ...v1],
      'a v1 request is answered in v1 form (docs/scopes.md)');
    const cond = (await search('Condition?patient=alice', sys))[0];
    const goal = (await search('Goal?patient=alice&_count=1', sys, { page: true }))[0];
    // .read = rs
    assert.equal((await fhirGet(srv, 'Patient/alice', t.access_token)).status, 200, '.read: read');
    assert.ok((await search('Observation?patient=alice&_count=1', t.access_token, { page: true })).length > 0, '.read: search');
    assert.equal((await fhirSend('POST', 'Observation', t.access_token, { resourceType: 'Observation', status: 'final',
      code: { text: 'x' }, subject: { reference: 'Patient/alice' } })).status, 403, '.read: no create');
    // .write = cud: no read, no search
    assert.equal((await fhirGet(srv, `Condition/${cond.id}`, t.access_token)).status, 403, '.write: no read');
    assert.equal((await fhirGet(srv, 'Condition?patient=alice', t.access_token)).status, 403, '.write: no search');
    const made = await fhirSend('POST', 'Condition', t.access_token, { resourceType: 'Condition',
      subject: { reference: 'Patient/alice' }, code: { text: 'scopes test' } });
    assert.equal(made.status, 201, '.write: create');
    const changed = { ...made.json, code: { text: 'scopes test 2' } };
    assert.equal((await fhirSend('PUT', `Condition/${made.json.id}`, t.access_token, changed)).status, 200, '.write: update');
    assert.ok([200, 204].includes((await fhirSend('DELETE', `Condition/${made.json.id}`, t.access_token)).status), '.write: delete');
    // .* = cruds
    assert.equal((await fhirGet(srv, `Goal/${goal.id}`, t.access_token)).status, 200, '.*: read');
    assert.ok(idsOf(await search('Goal?patient=alice', t.access_token)).includes(goal.id), '.*: search');
    // a refresh answers the same v1 scope string
    const r = await refresh(t.refresh_token);
    assert.equal(r.status, 200, r.text);
    assert.equal(r.json.scope, t.scope);

    // narrowed by the registration: v1 where a v1 word says it, v2 where none does
    const n = await tokens('launch/patient openid patient/Observation.* patient/Condition.write patient/Goal.read',
      { clientId: 'narrow', redirectUri: CB });
    assert.deepEqual(n.scope.split(' '), ['openid', 'launch/patient', 'patient/Observation.read', 'patient/Condition.cu',
      'patient/Goal.read']);
    assert.equal((await fhirSend('DELETE', `Condition/${cond.id}`, n.access_token)).status, 403, '.cu: no delete');
    assert.equal((await fhirSend('POST', 'Observation', n.access_token, { resourceType: 'Observation', status: 'final',
      code: { text: 'x' }, subject: { reference: 'Patient/alice' } })).status, 403, '.* narrowed to read: no create');
  });

  it('D37 the token response scope is the exact granted set as one space-separated string', async () => {
    const t = await tokens('patient/Observation.rs openid patient/Patient.rs launch/patient fhirUser offline_access patient/Observation.rs');
    assert.equal(typeof t.scope, 'string');
    const list = t.scope.split(' ');
    assert.ok(list.every((s) => SCOPE_TOKEN.test(s)), `one space between scope tokens, nothing else: ${JSON.stringify(t.scope)}`);
    assert.equal(new Set(list).size, list.length, 'no duplicates');
    // docs/scopes.md: flags first, then the record scopes in the order asked
    assert.deepEqual(list, ['openid', 'fhirUser', 'launch/patient', 'offline_access', 'patient/Observation.rs', 'patient/Patient.rs']);
    // the same set everywhere the grant is described
    assert.equal((await introspect(t.access_token)).scope, t.scope, 'introspection of the access token');
    assert.equal((await introspect(t.refresh_token)).scope, t.scope, 'introspection of the refresh token');
    const r = await refresh(t.refresh_token);
    assert.equal(r.status, 200, r.text);
    assert.equal(r.json.scope, t.scope, 'a refresh without scope');
    // and exactly that set is enforced
    assert.equal((await fhirGet(srv, 'Patient/alice', r.json.access_token)).status, 200);
    assert.equal((await fhirGet(srv, 'Observation?patient=alice&_count=1', r.json.access_token)).status, 200);
    assert.equal((await fhirGet(srv, 'Condition?patient=alice&_count=1', r.json.access_token)).status, 403, 'not granted');
    assert.ok(t.id_token, 'openid granted: an id_token');
    // every patient-compartment type, by the wildcard
    const w = await tokens('launch/patient openid fhirUser offline_access patient/*.rs');
    assert.deepEqual(w.scope.split(' '), ['openid', 'fhirUser', 'launch/patient', 'offline_access', 'patient/*.rs']);
  });

  it('D38 a patient standalone launch grants the patient-compartment types as patient/ scopes, user/ only for the others', async () => {
    const asked = COMPARTMENT_TYPES.map((x) => `patient/${x}.rs`);
    const t = await tokens(`launch/patient openid fhirUser offline_access ${asked.join(' ')} user/Practitioner.rs user/Organization.rs`);
    const got = t.scope.split(' ');
    for (const s of asked) assert.ok(got.includes(s), `${s} granted: ${t.scope}`);
    for (const x of COMPARTMENT_TYPES) {
      assert.ok(!got.some((s) => s.startsWith(`user/${x}.`)), `${x} is never granted as user/`);
    }
    assert.deepEqual(got.filter((s) => s.startsWith('user/')), ['user/Practitioner.rs', 'user/Organization.rs']);
    assert.equal(t.patient, 'alice');
    // each of them reaches alice's records and only hers (types this server does not serve have nothing to reach)
    let reached = 0;
    for (const x of COMPARTMENT_TYPES.filter((y) => served.has(y))) {
      const mine = await search(aliceQuery(x), t.access_token);
      assert.deepEqual(idsOf(mine), idsOf(await search(aliceQuery(x), sys)), `${x}: the same as unrestricted`);
      if (mine.length) reached++;
    }
    assert.ok(reached >= 8, `alice has records of several of these types (${reached})`);
    assert.equal((await fhirGet(srv, 'Patient/alice', t.access_token)).status, 200);
    assert.equal((await fhirGet(srv, 'Patient/bob-self', t.access_token)).status, 404, 'another patient does not exist for the app');
    assert.ok((await search('Practitioner?_count=5', t.access_token, { page: true })).length > 0, 'user/Practitioner.rs');
    assert.ok((await search('Organization?_count=5', t.access_token, { page: true })).length > 0, 'user/Organization.rs');
  });

  it('D41 category scopes of (g)(10) are granted and enforced on search and read', async () => {
    // what alice has, as an unrestricted token sees it
    const all = {
      Observation: await search('Observation?patient=alice&_count=500', sys),
      Condition: await search('Condition?patient=alice&_count=500', sys),
    };
    const withCat = (type, cats) => all[type].filter((r) => codings(r.category).some((c) => cats.includes(c)));
    const present = CATEGORY_SCOPES.filter((c) => withCat(c.type, [c.cat]).length > 0);
    const absent = CATEGORY_SCOPES.filter((c) => withCat(c.type, [c.cat]).length === 0);
    assert.ok(present.some((c) => c.type === 'Observation') && present.some((c) => c.type === 'Condition'),
      `alice has categorised observations and conditions (${present.map((c) => c.cat)})`);
    assert.ok(absent.length > 0, 'some categories have no data (the empty case is tested too)');

    // all eight at once: granted as asked, no resource-level scope
    const every = CATEGORY_SCOPES.map((c) => c.scope);
    const t = await tokens(`launch/patient patient/Patient.rs ${every.join(' ')}`);
    assert.deepEqual(t.scope.split(' '), ['launch/patient', 'patient/Patient.rs', ...every]);
    for (const type of ['Observation', 'Condition']) {
      const cats = CATEGORY_SCOPES.filter((c) => c.type === type).map((c) => c.cat);
      assert.deepEqual(idsOf(await search(`${type}?patient=alice&_count=500`, t.access_token)), idsOf(withCat(type, cats)),
        `${type}: any granted category`);
    }

    // one at a time: a search returns exactly that category, or an empty searchset
    for (const c of CATEGORY_SCOPES) {
      const one = await tokens(`launch/patient ${c.scope}`);
      assert.deepEqual(one.scope.split(' '), ['launch/patient', c.scope]);
      const got = await search(`${c.type}?patient=alice&_count=500`, one.access_token);
      assert.deepEqual(idsOf(got), idsOf(withCat(c.type, [c.cat])), `${c.scope}: only that category`);
      for (const r of got) assert.ok(codings(r.category).includes(c.cat), `${r.id} is in ${c.cat}`);
      // a read outside the category answers as if the record did not exist
      const outside = all[c.type].find((r) => !codings(r.category).includes(c.cat));
      if (outside) assert.equal((await fhirGet(srv, `${c.type}/${outside.id}`, one.access_token)).status, 404, `${c.scope}: read outside`);
      if (got.length) assert.equal((await fhirGet(srv, `${c.type}/${got[0].id}`, one.access_token)).status, 200, `${c.scope}: read inside`);
      // a search naming another category finds nothing
      if (outside) {
        const otherCat = codings(outside.category)[0];
        assert.deepEqual(await search(`${c.type}?patient=alice&category=${encodeURIComponent(otherCat)}`, one.access_token), [],
          `${c.scope}: searching ${otherCat}`);
      }
    }
  });

  it('D41 social-history, survey, sdoh and health-concern scopes each find exactly their records; a survey+sdoh Observation is in both', async () => {
    // the seed has no record in these four categories: create some for alice, and remove them afterwards
    const SDOH = 'http://hl7.org/fhir/us/core/CodeSystem/us-core-category|sdoh';
    const HEALTH_CONCERN = 'http://hl7.org/fhir/us/core/CodeSystem/condition-category|health-concern';
    const concept = (cat) => {
      const [system, code] = cat.split('|');
      return { coding: [{ system, code }] };
    };
    const specs = [
      ['Observation', [`${OBS_CAT}|social-history`]],
      ['Observation', [`${OBS_CAT}|survey`]],
      ['Observation', [SDOH]],
      ['Observation', [`${OBS_CAT}|survey`, SDOH]],   // US Core SDOH assessment: two categories
      ['Condition', [HEALTH_CONCERN]],
      // decoys: the right code under the wrong system matches no scope
      ['Observation', [`${OBS_CAT}|sdoh`]],
      ['Condition', [`${COND_CAT}|health-concern`]],
    ];
    const scopes = [
      { type: 'Observation', cat: `${OBS_CAT}|social-history` },
      { type: 'Observation', cat: `${OBS_CAT}|survey` },
      { type: 'Observation', cat: SDOH },
      { type: 'Condition', cat: HEALTH_CONCERN },
    ];
    for (const c of scopes) {
      c.scope = `patient/${c.type}.rs?category=${c.cat}`;
      assert.ok(CATEGORY_SCOPES.some((x) => x.scope === c.scope), `${c.scope} is one of the (g)(10) forms`);
    }
    const created = [];
    try {
      for (const [type, cats] of specs) {
        const body = type === 'Observation'
          ? { resourceType: 'Observation', status: 'final', category: cats.map(concept), code: { text: `D41 ${cats.join(' + ')}` },
            subject: { reference: 'Patient/alice' } }
          : { resourceType: 'Condition', category: cats.map(concept), code: { text: 'D41 health concern' },
            subject: { reference: 'Patient/alice' } };
        const r = await fhirSend('POST', type, sys, body);
        assert.equal(r.status, 201, JSON.stringify(r.json));
        assert.ok(r.json.id, `${type} created with an id`);
        created.push({ type, id: r.json.id, cats });
      }
      const both = created[3];
      // alice's records as the unrestricted token sees them, now with the new ones
      const all = {
        Observation: await search('Observation?patient=alice&_count=500', sys),
        Condition: await search('Condition?patient=alice&_count=500', sys),
      };
      for (const x of created) assert.ok(idsOf(all[x.type]).includes(x.id), `${x.type}/${x.id} is alice's`);
      const lab = all.Observation.find((r) => codings(r.category).includes(`${OBS_CAT}|laboratory`));
      assert.ok(lab, 'alice has a laboratory Observation');

      for (const c of scopes) {
        const t = await tokens(`launch/patient ${c.scope}`);
        assert.deepEqual(t.scope.split(' '), ['launch/patient', c.scope], 'granted as asked');
        const want = all[c.type].filter((r) => codings(r.category).includes(c.cat)).map((r) => r.id).sort();
        const mine = created.filter((x) => x.type === c.type && x.cats.includes(c.cat)).map((x) => x.id);
        assert.ok(mine.length > 0 && mine.every((id) => want.includes(id)), `${c.scope}: the created records are expected`);
        const got = await search(`${c.type}?patient=alice&_count=500`, t.access_token);
        assert.deepEqual(idsOf(got), want, `${c.scope}: exactly the records in that category`);
        for (const id of mine) {
          assert.equal((await fhirGet(srv, `${c.type}/${id}`, t.access_token)).status, 200, `${c.scope}: read ${id}`);
        }
        // the other new records of the type (decoys included) answer as if they did not exist
        for (const x of created.filter((y) => y.type === c.type && !y.cats.includes(c.cat))) {
          assert.equal((await fhirGet(srv, `${c.type}/${x.id}`, t.access_token)).status, 404, `${c.scope}: read ${x.cats}`);
        }
        if (c.type === 'Observation') {
          assert.equal((await fhirGet(srv, `Observation/${lab.id}`, t.access_token)).status, 404,
            `${c.scope}: a laboratory Observation is out of reach`);
        }
        if (c.cat === `${OBS_CAT}|survey` || c.cat === SDOH) {
          assert.ok(idsOf(got).includes(both.id), `${c.scope} alone finds the survey+sdoh Observation`);
        }
      }
    } finally {
      for (const x of created) await fhirSend('DELETE', `${x.type}/${x.id}`, sys);
    }
    // gone again: the other tests see the seed as it was
    for (const x of created) {
      const r = await fhirGet(srv, `${x.type}/${x.id}`, sys);
      assert.ok([404, 410].includes(r.status), `${x.type}/${x.id} deleted: ${r.status}`);
    }
  });

  it('D42 launch/patient: a single patient is chosen automatically, a caregiver picks one; the token carries patient', async () => {
    // alice has one record: no picker
    const t = await tokens('launch/patient openid fhirUser patient/Patient.rs');
    assert.ok(!t.pages.includes('picker'), `no picker for alice (${t.pages})`);
    const own = new URL(jose.decodeJwt(t.id_token).fhirUser).pathname.split('/').slice(-2);
    assert.deepEqual(own, ['Patient', t.patient], 'the patient is alice\'s own record');
    const p = await fhirGet(srv, `Patient/${t.patient}`, t.access_token);
    assert.equal(p.status, 200);
    assert.equal(p.json.id, t.patient);

    // bob cares for others: the picker offers them
    const req = authzRequest(srv, { clientId: 'pub', redirectUri: CB, scope: 'launch/patient patient/Patient.rs' });
    const w = await walk(bob, req.url, { stopAt: 'picker' });
    assert.equal(w.pages.at(-1), 'picker', `a picker for bob (${w.pages})`);
    const offered = w.form.radios.filter((r) => r.name === 'patient').map((r) => r.value);
    for (const x of ['bob-child', 'bob-mother']) assert.ok(offered.includes(x), `${x} offered (${offered})`);
    assert.ok(!offered.includes('alice'), 'only the patients bob may act for');
    const b = await tokens('launch/patient patient/Patient.rs patient/Observation.rs', { browser: bob, patient: 'bob-mother' });
    assert.ok(b.pages.includes('picker'));
    assert.equal(b.patient, 'bob-mother');
    assert.equal((await fhirGet(srv, 'Patient/bob-mother', b.access_token)).status, 200);
    assert.equal((await fhirGet(srv, 'Patient/bob-child', b.access_token)).status, 404, 'one patient per token');
    const obs = await search('Observation?_count=500', b.access_token);
    assert.deepEqual(idsOf(obs), idsOf(await search('Observation?patient=bob-mother&_count=500', sys)), 'searches are confined to her');

    // any patient/ scope establishes a patient, even without launch/patient
    const t2 = await tokens('patient/Patient.rs');
    assert.equal(t2.patient, t.patient);
    const b2 = await tokens('patient/Patient.rs', { browser: bob, patient: 'bob-child' });
    assert.ok(b2.pages.includes('picker'), 'bob picks even without launch/patient');
    assert.equal(b2.patient, 'bob-child');
    assert.equal((await fhirGet(srv, 'Patient/bob-child', b2.access_token)).status, 200);
  });

  it('D45 offline_access and online_access give refresh tokens; the online one ends with the sign-in session', async () => {
    const b = new Browser(srv.baseUrl);
    assert.equal((await signIn(b, 'alice')).status, 303);
    const on = await tokens('launch/patient online_access patient/*.rs', { browser: b });
    assert.deepEqual(on.scope.split(' '), ['launch/patient', 'online_access', 'patient/*.rs']);
    assert.equal(typeof on.refresh_token, 'string', 'online_access: a refresh token');
    const off = await tokens('launch/patient offline_access patient/*.rs', { browser: b });
    assert.equal(typeof off.refresh_token, 'string', 'offline_access: a refresh token');
    const none = await tokens('launch/patient patient/*.rs', { browser: b });
    assert.equal(none.refresh_token, undefined, 'neither: no refresh token');
    // while the session lives the online token refreshes
    const r1 = await refresh(on.refresh_token);
    assert.equal(r1.status, 200, r1.text);
    assert.equal(r1.json.scope, on.scope);
    assert.equal(typeof r1.json.refresh_token, 'string');
    assert.equal((await fhirGet(srv, 'Patient/alice', r1.json.access_token)).status, 200);
    // sign out of this session only
    const acc = await accountPage(b);
    assert.equal((await b.post('/signout', { csrf: acc.csrf, everywhere: '0' })).status, 200);
    assert.equal((await b.get('/account')).status, 303, 'signed out');
    assertOAuthError(await refresh(r1.json.refresh_token), 400, 'invalid_grant');
    // the offline grant of the same session lives on
    const r2 = await refresh(off.refresh_token);
    assert.equal(r2.status, 200, r2.text);
    assert.equal((await fhirGet(srv, 'Patient/alice', r2.json.access_token)).status, 200);
    // and alice's other session was not touched
    assert.equal((await accountPage(alice)).status, 200);
  });

  it('D45 the consent page says an online_access grant ends at sign-out, and offers durations only for offline_access', async () => {
    const page = async (scope) => {
      const req = authzRequest(srv, { clientId: 'pub', redirectUri: CB, scope });
      const w = await walk(alice, req.url, { stopAt: 'consent' });
      assert.equal(w.pages.at(-1), 'consent');
      return { text: pageText(w.response.text), html: w.response.text };
    };
    const online = await page('launch/patient online_access patient/*.rs');
    assert.ok(online.text.includes('it ends when you sign out'), online.text);
    assert.ok(!online.text.includes('when you are not using it'), 'no offline wording for online_access');
    assert.ok(!online.html.includes('name="duration"'), 'no duration choice: the session bounds it');
    const offline = await page('launch/patient offline_access patient/*.rs');
    assert.ok(offline.text.includes('when you are not using it'), offline.text);
    assert.ok(offline.html.includes('name="duration"'), 'offline access offers durations');
  });

  it('D46 patient/*.rs reaches every type of the patient\'s record, and the consent page says it covers all types', async () => {
    const req = authzRequest(srv, { clientId: 'pub', redirectUri: CB, scope: 'launch/patient patient/*.rs' });
    const w = await walk(alice, req.url, { stopAt: 'consent' });
    assert.equal(w.pages.at(-1), 'consent');
    assert.ok(pageText(w.response.text).includes(WILDCARD_TEXT), `the wording of docs/scopes.md: ${pageText(w.response.text)}`);
    assert.ok(w.form.checkboxes.some((c) => c.name === 'type' && c.value === '*'), 'one choice for the wildcard');

    const t = await tokens('launch/patient patient/*.rs');
    assert.deepEqual(t.scope.split(' '), ['launch/patient', 'patient/*.rs']);
    const compared = [];
    for (const type of [...served].sort()) {
      if (type === 'AuditEvent') continue; // the compliance role's alone (docs/auth.md, FHIR API rule 7)
      const probe = await fhirGet(srv, aliceQuery(type), sys);
      if (probe.status !== 200) {
        // no patient search parameter: a type outside the compartment, shared reference data
        const r = await fhirGet(srv, `${type}?_count=5`, t.access_token);
        assert.equal(r.status, 200, `${type}: ${r.text.slice(0, 200)}`);
        continue;
      }
      const mine = await search(aliceQuery(type), t.access_token);
      assert.deepEqual(idsOf(mine), idsOf(await search(aliceQuery(type), sys)), `${type}: as unrestricted`);
      if (mine.length) {
        assert.equal((await fhirGet(srv, `${type}/${mine[0].id}`, t.access_token)).status, 200, `${type}: read`);
        compared.push(type);
      }
    }
    for (const x of ['Patient', 'Observation', 'Condition', 'AllergyIntolerance', 'MedicationRequest', 'Immunization', 'Encounter']) {
      assert.ok(compared.includes(x), `${x} was reached (${compared})`);
    }
  });
});

/* ================================================================ */

describe('E. token endpoint', () => {
  it('E57 PKCE downgrade: no code is issued without a code_challenge; a verifier that does not match is invalid_grant', async () => {
    for (const extra of [{ code_challenge: undefined, code_challenge_method: undefined }, { code_challenge: undefined }]) {
      for (const post of [false, true]) {
        const req = authzRequest(srv, { clientId: 'pub', redirectUri: CB, scope: 'launch/patient patient/*.rs', extra });
        const r = post ? await alice.post('/oauth/authorize', req.params) : await alice.get(req.url);
        assert.equal(r.status, 303, `an error redirect, not the consent page (${r.status})`);
        const u = new URL(r.location);
        assert.equal(`${u.origin}${u.pathname}`, CB);
        assert.equal(u.searchParams.get('error'), 'invalid_request', r.location);
        assert.equal(u.searchParams.get('code'), null, 'no code');
        assert.equal(u.searchParams.get('state'), req.state);
      }
    }
    // a code issued with a challenge: another verifier is refused, and the code is spent
    const a = await authorize(alice, srv, { clientId: 'pub', redirectUri: CB, scope: 'launch/patient patient/*.rs' });
    assert.ok(a.code);
    const other = crypto.randomBytes(32).toString('base64url');
    assertOAuthError(await redeem(srv, { code: a.code, verifier: other, redirectUri: CB, clientId: 'pub' }), 400, 'invalid_grant');
    assertOAuthError(await redeem(srv, { code: a.code, verifier: a.verifier, redirectUri: CB, clientId: 'pub' }), 400, 'invalid_grant');
    // with its own verifier a code redeems
    const b = await authorize(alice, srv, { clientId: 'pub', redirectUri: CB, scope: 'launch/patient patient/*.rs' });
    assert.equal((await redeem(srv, { code: b.code, verifier: b.verifier, redirectUri: CB, clientId: 'pub' })).status, 200);
  });

  it('E62 token, revocation and introspection errors are JSON {error, error_description} with no-store', async () => {
    const intro = `${srv.baseUrl}/oauth/introspect`;
    const revoke = `${srv.baseUrl}/oauth/revoke`;
    const raw = fetchJson;
    const jsonBody = (auth) => ({ method: 'POST', body: '{"token":"x"}',
      headers: { 'content-type': 'application/json', ...(auth ? { authorization: auth } : {}) } });
    const t = await tokens('launch/patient offline_access patient/Patient.rs');
    const confAuth = basic('conf', CONF_SECRET);
    const cases = [
      ['token: a bad code', () => redeem(srv, { code: 'BAD_CODE', verifier: 'a'.repeat(43), redirectUri: CB, clientId: 'pub' }),
        400, 'invalid_grant'],
      ['token: a random refresh token', () => refresh(crypto.randomUUID()), 400, 'invalid_grant'],
      ['token: no grant_type', () => postForm(tokenUrl, { client_id: 'pub' }), 400, 'invalid_request'],
      ['token: no code', () => postForm(tokenUrl, { grant_type: 'authorization_code', client_id: 'pub', redirect_uri: CB,
        code_verifier: 'a'.repeat(43) }), 400, 'invalid_request'],
      ['token: GET', () => raw(`${tokenUrl}?grant_type=authorization_code&code=x&client_id=pub`), 400, 'invalid_request'],
      ['token: a JSON body', () => raw(tokenUrl, jsonBody()), 400, 'invalid_request'],
      ['token: grant_type=password', () => postForm(tokenUrl, { grant_type: 'password', username: 'alice', password: 'x',
        client_id: 'pub' }), 400, 'unsupported_grant_type'],
      ['token: a wrong secret', () => redeem(srv, { code: 'x', verifier: 'a'.repeat(43), redirectUri: CONF_CB,
        auth: basic('conf', 'wrong-secret-0123456789') }), 401, 'invalid_client'],
      ['token: an unknown client', () => redeem(srv, { code: 'x', verifier: 'a'.repeat(43), redirectUri: CB, clientId: 'nobody' }),
        401, 'invalid_client'],
      ['token: client_credentials for a public client', () => postForm(tokenUrl, { grant_type: 'client_credentials',
        client_id: 'pub', scope: 'system/*.rs' }), 400, 'unauthorized_client'],
      ['token: a wider scope at refresh', () => refresh(t.refresh_token, { scope: 'launch/patient patient/*.cruds' }),
        400, 'invalid_scope'],
      ['revoke: no client authentication', () => postForm(revoke, { token: 'x' }), 401, 'invalid_client'],
      ['revoke: a confidential client without its secret', () => postForm(revoke, { token: 'x', client_id: 'conf' }),
        401, 'invalid_client'],
      ['revoke: a wrong secret', () => postForm(revoke, { token: 'x' }, { auth: basic('conf', 'bad') }), 401, 'invalid_client'],
      ['revoke: a JSON body', () => raw(revoke, jsonBody(confAuth)), 400, 'invalid_request'],
      ['introspect: no authentication', () => postForm(intro, { token: 'x' }), 401, 'invalid_client'],
      ['introspect: a public client', () => postForm(intro, { token: 'x', client_id: 'pub' }), 401, 'invalid_client'],
      ['introspect: a wrong secret', () => postForm(intro, { token: 'x' }, { auth: basic('conf', 'bad') }), 401, 'invalid_client'],
      ['introspect: a bad bearer token', () => postForm(intro, { token: 'x' }, { auth: 'Bearer garbage' }), 401, 'invalid_token'],
      ['introspect: a JSON body', () => raw(intro, jsonBody(confAuth)), 400, 'invalid_request'],
    ];
    const kinds = new Set();
    for (const [label, send, status, error] of cases) {
      const r = await send();
      try {
        assertOAuthError(r, status, error);
      } catch (e) {
        e.message = `${label}: ${e.message}`;
        throw e;
      }
      kinds.add(error);
    }
    for (const k of ['invalid_grant', 'invalid_request', 'unsupported_grant_type', 'invalid_client']) assert.ok(kinds.has(k), k);
    // the refused refresh left the token usable
    assert.equal((await refresh(t.refresh_token)).status, 200);
  });
});

/* ================================================================ */

describe('G. refresh tokens', () => {
  it('G75 offline_access refresh tokens last at least 90 days, and each refresh starts a new period of at least 90 days', async () => {
    const DAYS_90 = 90 * 86400;
    const MARGIN = 60; // seconds between the token's issue and the check
    const t = await tokens('launch/patient openid fhirUser offline_access patient/*.rs', { clientId: 'conf', redirectUri: CONF_CB });
    assert.equal(typeof t.refresh_token, 'string');
    const i1 = await introspect(t.refresh_token);
    assert.equal(i1.active, true, JSON.stringify(i1));
    assert.equal(i1.client_id, 'conf');
    assert.equal(typeof i1.exp, 'number', 'the refresh token has an expiry');
    assert.ok(i1.exp >= Date.now() / 1000 + DAYS_90 - MARGIN,
      `exp ${new Date(i1.exp * 1000).toISOString()} is at least 90 days away`);
    await new Promise((r) => setTimeout(r, 1100)); // so that a new period is visibly later
    const r = await refresh(t.refresh_token, {}, basic('conf', CONF_SECRET));
    assert.equal(r.status, 200, r.text);
    assert.equal(typeof r.json.refresh_token, 'string');
    assert.notEqual(r.json.refresh_token, t.refresh_token);
    const i2 = await introspect(r.json.refresh_token);
    assert.equal(i2.active, true);
    assert.ok(i2.exp >= Date.now() / 1000 + DAYS_90 - MARGIN,
      `the new refresh token's exp ${new Date(i2.exp * 1000).toISOString()} is at least 90 days away`);
    assert.ok(i2.exp > i1.exp, 'a new period, not the rest of the old one');
    assert.deepEqual(await introspect(t.refresh_token), { active: false }, 'the old refresh token is spent');
  });
});
