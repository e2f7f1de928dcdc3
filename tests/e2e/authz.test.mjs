// Authorization on the FHIR API (SMART checklist section H, items 76-86):
// bearer tokens (missing, malformed, forged, expired, revoked), scopes per
// type and interaction, the patient context of patient/ scopes, granular
// (category) scopes, user/ and system/ scopes, _include/_revinclude/_has,
// batches and transactions, CORS, the audit log and app registration kept
// from patients, caregivers and clinicians, and the decisions of DESIGN.md:
// a hidden resource answers a 404 byte-identical to one that does not
// exist, a type outside the scopes answers 403 insufficient_scope, and
// searches never reveal hidden matches in entries or totals.
//
// Tokens come from the real code flow (authorize -> sign-in -> patient
// picker -> consent -> token) walked with fetch and a cookie jar; the
// invalid ones are forged with the server's own ES256 key from DATA/keys.
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import fs from 'node:fs/promises';
import http from 'node:http';
import path from 'node:path';
import * as jose from 'jose';
import {
  startServer, makeTempDir, removeDir, initDataDir, seedDataDir, runCli, fetchRaw, clientAssertion,
} from './lib/server.mjs';
import { consentToken } from './lib/oauth.mjs';

const FHIR_JSON = 'application/fhir+json';
const APP = 'authz-app';
const REDIRECT = 'http://127.0.0.1:9999/cb';
const ORIGIN = 'https://app.example';
const BACKEND = 'authz-backend';
const CAT = 'http://terminology.hl7.org/CodeSystem/observation-category';
const LAB = `${CAT}|laboratory`;
const VITAL = `${CAT}|vital-signs`;
const OTHERS = ['bob-child', 'bob-mother', 'bob-self', 'erin', 'frank'];

let dir;
let srv;
let B; // server root
let F; // FHIR base
let backendKey;
let signKey; // the server's ES256 signing key (private)

// What the seed holds, read with the harness's system/*.cruds token.
const data = {
  aliceLab: [], // ids of alice's laboratory Observations
  aliceVital: [], // ids of alice's vital-signs Observations
  aliceObs: [], // every Observation id of alice
  childObs: [], // every Observation id of bob-child
  childCondition: null,
  forbidden: new Set(), // resource ids and personal details of patients other than alice
  forbiddenWords: new Set(),
};

// Error answers (status >= 400) to alice's tokens, checked at the end for other patients' data.
const errorsSeen = [];

before(async () => {
  dir = await makeTempDir('veranda-authz-');
  await initDataDir(dir);
  await seedDataDir(dir, { patients: 0 });
  let r = await runCli(['client', 'add', '--data', dir, '--client-id', APP, '--redirect-uri', REDIRECT, '--public',
    '--origin', ORIGIN]);
  assert.equal(r.code, 0, r.stderr);
  const { publicKey, privateKey } = await jose.generateKeyPair('ES384', { extractable: true });
  backendKey = privateKey;
  const jwk = { ...(await jose.exportJWK(publicKey)), kid: 'authz-1', alg: 'ES384', use: 'sig' };
  const file = path.join(dir, 'authz-backend-jwks.json');
  await fs.writeFile(file, JSON.stringify({ keys: [jwk] }));
  r = await runCli(['client', 'add', '--data', dir, '--client-id', BACKEND, '--jwks', file, '--scope', 'system/*.rs']);
  assert.equal(r.code, 0, r.stderr);
  srv = await startServer({ dataDir: dir });
  B = srv.baseUrl;
  F = srv.fhirBase;

  const pem = (await fs.readdir(path.join(dir, 'keys'))).find((f) => /^es256-.*\.pem$/.test(f));
  signKey = await jose.importPKCS8(await fs.readFile(path.join(dir, 'keys', pem), 'utf8'), 'ES256');

  const obs = await sys('Observation?patient=alice&_count=1000');
  for (const e of obs.json.entry) {
    const cats = (e.resource.category || []).flatMap((c) => c.coding.map((x) => x.code));
    data.aliceObs.push(e.resource.id);
    if (cats.includes('laboratory')) data.aliceLab.push(e.resource.id);
    if (cats.includes('vital-signs')) data.aliceVital.push(e.resource.id);
  }
  assert.ok(data.aliceLab.length > 5 && data.aliceVital.length > 5, 'the seed gives alice labs and vital signs');
  assert.ok(data.aliceLab.every((id) => !data.aliceVital.includes(id)), 'no Observation of alice is both');
  for (const p of OTHERS) {
    const ev = await sys(`Patient/${p}/$everything?_count=5000`);
    for (const e of ev.json.entry) {
      data.forbidden.add(e.resource.id);
      if (p === 'bob-child' && e.resource.resourceType === 'Observation') data.childObs.push(e.resource.id);
      if (p === 'bob-child' && e.resource.resourceType === 'Condition') data.childCondition ??= e.resource.id;
      if (e.resource.resourceType === 'Patient') {
        for (const n of e.resource.name || []) for (const w of [n.family, ...(n.given || [])]) data.forbiddenWords.add(w);
        data.forbiddenWords.add(e.resource.birthDate);
      }
    }
  }
  // family names shared with alice's own record would prove nothing
  for (const w of ['Alice', 'Marie', 'Walker']) data.forbiddenWords.delete(w);
  assert.ok(data.childObs.length > 10 && data.childCondition, 'the seed gives bob-child Observations and a Condition');
});

after(async () => {
  if (srv) await srv.stop();
  await removeDir(dir);
});

/* ---- helpers ---- */

// A request to the FHIR API with 'token' (null: no Authorization header at all).
async function api(token, p, init = {}) {
  const headers = { accept: FHIR_JSON, ...(init.headers || {}), authorization: token ? `Bearer ${token}` : '' };
  if (init.body && !headers['content-type']) headers['content-type'] = FHIR_JSON;
  const r = await fetchRaw(`${F}/${p}`, { ...init, headers });
  if (r.status >= 400 && init.watch !== false) errorsSeen.push({ path: p, body: init.body || '', text: r.text, status: r.status });
  return r;
}

// The harness's backend token (system/*.cruds): sees and writes everything.
async function sys(p, init = {}) {
  const r = await fetchRaw(`${F}/${p}`, { ...init, headers: { accept: FHIR_JSON, 'content-type': FHIR_JSON, ...(init.headers || {}) } });
  if (!init.any) assert.equal(r.status, 200, `system ${p}: ${r.status} ${r.text.slice(0, 300)}`);
  return r;
}

const ids = (bundle) => (bundle.entry || []).filter((e) => e.search?.mode !== 'outcome' && e.resource.resourceType !== 'OperationOutcome')
  .map((e) => `${e.resource.resourceType}/${e.resource.id}`);
const matchIds = (bundle) => (bundle.entry || []).filter((e) => e.search?.mode === 'match').map((e) => e.resource.id);

// Follow 'next' links; every match id of every page.
async function allMatches(token, first) {
  const out = [];
  let url = `${F}/${first}`;
  for (let i = 0; url && i < 200; i++) {
    const r = await fetchRaw(url, { headers: { accept: FHIR_JSON, authorization: `Bearer ${token}` } });
    assert.equal(r.status, 200, r.text);
    out.push(...matchIds(r.json));
    url = (r.json.link || []).find((l) => l.relation === 'next')?.url;
  }
  return out;
}

/*
 * A token from the code flow for 'user' (password veranda-demo): authorize
 * with 'scope', sign in, pick 'patient' when the picker shows, then allow
 * on the consent screen keeping 'keep' (default: every type offered),
 * ticking the category boxes 'cats' ("Type system|code") and, when the
 * scope asks for offline_access, the offline box.
 */
async function userToken(user, scope, opts = {}) {
  return consentToken({ base: B, fhirBase: F, clientId: APP, redirectUri: REDIRECT }, user, scope, opts);
}

// A backend (client_credentials) token of our own backend client for 'scope'.
async function backendToken(scope) {
  const body = new URLSearchParams({
    grant_type: 'client_credentials', scope,
    client_assertion_type: 'urn:ietf:params:oauth:client-assertion-type:jwt-bearer',
    client_assertion: await clientAssertion(B, BACKEND, backendKey, 'authz-1'),
  });
  const r = await fetchRaw(`${B}/oauth/token`, { method: 'POST', body });
  assert.equal(r.status, 200, r.text);
  assert.equal(r.json.scope, scope);
  return r.json.access_token;
}

// A token signed with the server's key: the claims of 'real' (a genuine access token) with 'over' applied.
async function forge(real, over = {}, drop = []) {
  const claims = { ...jose.decodeJwt(real), jti: crypto.randomBytes(12).toString('base64url'), ...over };
  for (const k of drop) delete claims[k];
  return new jose.SignJWT(claims).setProtectedHeader(jose.decodeProtectedHeader(real)).sign(signKey);
}

function assertOutcome(r, status) {
  assert.equal(r.status, status, `expected ${status}, got ${r.status}: ${r.text.slice(0, 400)}`);
  assert.equal(r.json?.resourceType, 'OperationOutcome', r.text.slice(0, 300));
  assert.match(r.headers.get('content-type') || '', /application\/fhir\+json/);
  return r.json;
}

function assertInsufficientScope(r) {
  assertOutcome(r, 403);
  const www = r.headers.get('www-authenticate') || '';
  assert.match(www, /^Bearer\b/, www);
  assert.match(www, /error="insufficient_scope"/, www);
}

function assertInvalidToken(r) {
  assertOutcome(r, 401);
  const www = r.headers.get('www-authenticate') || '';
  assert.match(www, /^Bearer\b/, www);
  assert.match(www, /error="invalid_token"/, www);
  assert.ok(!r.text.includes('"entry"') && !r.text.includes('Walker'), 'no data with a 401');
}

// Same length, same shape, letters replaced: an id that certainly does not exist.
const fakeOf = (id) => id.replace(/[a-z]/g, 'q');

const HEADERS_VARYING = new Set(['date', 'x-request-id', 'traceparent', 'server-timing']);
function headerMap(r) {
  const m = {};
  for (const [k, v] of r.headers) if (!HEADERS_VARYING.has(k)) m[k] = v;
  return m;
}

/*
 * The answer to 'p' (naming the hidden 'id') with 'token' must be the
 * answer for an id of the same length that does not exist, byte for byte
 * once the two ids are swapped back, with the same headers (but Date and
 * the request id).  Returns both responses.
 */
async function assertLikeNonexistent(token, p, id, init = {}) {
  const fake = fakeOf(id);
  assert.equal((await sys(`${p.split('/')[0]}/${fake}`, { any: true })).status, 404, `${fake} must not exist`);
  const hidden = await api(token, p, init);
  const none = await api(token, p.replace(id, fake), init.body ? { ...init, body: init.body.replaceAll(id, fake) } : init);
  if (none.status === 201) await sys(`${p.split('/')[0]}/${fake}`, { method: 'DELETE', any: true }); // update as create: undo
  assert.equal(hidden.status, none.status, `${p}: ${hidden.status} ${hidden.text.slice(0, 200)} vs ${none.status} ${none.text.slice(0, 200)}`);
  assert.equal(hidden.bytes.length, none.bytes.length, 'same length');
  assert.equal(hidden.text, none.text.replaceAll(fake, id), 'byte-identical bodies');
  assert.deepEqual(headerMap(hidden), headerMap(none), 'same headers');
  return { hidden, none };
}

const newObs = (patient, marker, category = 'laboratory') => ({
  resourceType: 'Observation',
  status: 'final',
  identifier: [{ system: 'urn:authz-test', value: marker }],
  category: [{ coding: [{ system: CAT, code: category }] }],
  code: { coding: [{ system: 'http://loinc.org', code: '2345-7' }], text: 'Glucose' },
  subject: { reference: `Patient/${patient}` },
  valueQuantity: { value: 99, unit: 'mg/dL' },
});
let markers = 0;
const marker = () => `m-${process.pid}-${++markers}`;
async function markerCount(m) {
  return (await sys(`Observation?identifier=urn:authz-test|${m}&_total=accurate`)).json.total;
}

/* ---- 76-78: authentication ---- */

describe('bearer tokens (items 76-78)', () => {
  let alice;

  before(async () => {
    alice = await userToken('alice', 'launch/patient openid fhirUser offline_access patient/*.rs');
  });

  it('no Authorization header: exactly 401 with WWW-Authenticate: Bearer and no error code', async () => {
    for (const p of ['Patient/alice', 'Observation?patient=alice', 'Patient/alice/$everything', '_history']) {
      const r = await api(null, p);
      assertOutcome(r, 401);
      const www = r.headers.get('www-authenticate');
      assert.match(www, /^Bearer( realm="[^"]*")?$/, `${p}: ${www}`);
      assert.ok(!/error=/.test(www), www);
      assert.ok(!r.text.includes('Walker'), 'no data');
    }
    const b = await api(null, '', { method: 'POST', body: JSON.stringify({ resourceType: 'Bundle', type: 'batch', entry: [{ request: { method: 'GET', url: 'Patient/alice' } }] }) });
    assertOutcome(b, 401);
    // another scheme is no bearer token either
    const basic = await fetchRaw(`${F}/Patient/alice`, { headers: { authorization: 'Basic YWxpY2U6dmVyYW5kYS1kZW1v' } });
    assertOutcome(basic, 401);
    assert.match(basic.headers.get('www-authenticate'), /^Bearer/);
    // the CapabilityStatement stays public
    assert.equal((await api(null, 'metadata')).status, 200);
  });

  it('a genuine token works (the baseline of the failures below)', async () => {
    const r = await api(alice.access_token, 'Patient/alice');
    assert.equal(r.status, 200, r.text);
    assert.equal(r.json.id, 'alice');
  });

  it('malformed, badly signed, foreign-key, alg none and non-access tokens: 401 invalid_token', async () => {
    const t = alice.access_token;
    assert.ok(alice.id_token && alice.refresh_token);
    const [h, p, s] = t.split('.');
    const flip = (str, i) => str.slice(0, i) + (str[i] === 'A' ? 'B' : 'A') + str.slice(i + 1);
    const other = await jose.generateKeyPair('ES256');
    const cases = {
      garbage: 'not-a-token',
      'two parts': `${h}.${p}`,
      'bad signature': `${h}.${p}.${flip(s, 10)}`,
      'changed payload': `${h}.${jose.base64url.encode(JSON.stringify({ ...jose.decodeJwt(t), patient: 'bob-child' }))}.${s}`,
      'signed by another key with the same kid': await new jose.SignJWT(jose.decodeJwt(t)).setProtectedHeader(jose.decodeProtectedHeader(t)).sign(other.privateKey),
      'alg none': `${jose.base64url.encode(JSON.stringify({ alg: 'none', typ: 'at+jwt' }))}.${p}.`,
      'an id token': alice.id_token,
      'a refresh token': alice.refresh_token,
    };
    for (const [name, tok] of Object.entries(cases)) {
      const r = await api(tok, 'Patient/alice');
      assert.equal(r.status, 401, `${name}: ${r.status}`);
      assertInvalidToken(r);
    }
  });

  it('expired, wrong audience, wrong issuer, no jti, no grant, wrong typ: 401 invalid_token', async () => {
    const t = alice.access_token;
    const now = Math.floor(Date.now() / 1000);
    const cases = {
      expired: await forge(t, { exp: now - 5, iat: now - 3600 }),
      'aud is the issuer': await forge(t, { aud: B }),
      'aud is another FHIR server': await forge(t, { aud: 'https://other.example/fhir' }),
      'no aud': await forge(t, {}, ['aud']),
      'another issuer': await forge(t, { iss: 'https://evil.example' }),
      'no jti': await forge(t, {}, ['jti']),
      'no grant': await forge(t, {}, ['grant']),
      'a grant that does not exist': await forge(t, { grant: 'AAAAAAAAAAAAAAAAAAAAAA' }),
      'no exp': await forge(t, {}, ['exp']),
      'typ JWT': await new jose.SignJWT({ ...jose.decodeJwt(t), jti: 'x1' }).setProtectedHeader({ ...jose.decodeProtectedHeader(t), typ: 'JWT' }).sign(signKey),
    };
    for (const [name, tok] of Object.entries(cases)) {
      const r = await api(tok, 'Patient/alice');
      assert.equal(r.status, 401, `${name}: ${r.status} ${r.text.slice(0, 200)}`);
      assertInvalidToken(r);
    }
    // the same forging with nothing changed is accepted: the cases above fail for their one change
    assert.equal((await api(await forge(t), 'Patient/alice')).status, 200);
  });

  it('a revoked access token is refused on the very next request (the verified-token cache is invalidated)', async () => {
    const tok = await userToken('alice', 'launch/patient patient/*.rs');
    assert.equal((await api(tok.access_token, 'Patient/alice')).status, 200); // now cached
    assert.equal((await api(tok.access_token, 'Observation?_count=1')).status, 200);
    const rv = await fetchRaw(`${B}/oauth/revoke`, { method: 'POST', body: new URLSearchParams({ token: tok.access_token, client_id: APP }) });
    assert.equal(rv.status, 200, rv.text);
    assertInvalidToken(await api(tok.access_token, 'Patient/alice'));
    assertInvalidToken(await api(tok.access_token, 'Observation?_count=1'));
  });

  it('revoking the refresh token ends the grant: its access tokens, even freshly signed ones, are refused at once', async () => {
    const tok = await userToken('alice', 'launch/patient offline_access patient/*.rs');
    const second = await userToken('alice', 'launch/patient patient/*.rs'); // another grant, must survive
    assert.equal((await api(tok.access_token, 'Patient/alice')).status, 200);
    assert.equal((await api(second.access_token, 'Patient/alice')).status, 200);
    assert.ok(tok.refresh_token, 'a refresh token');
    const rv = await fetchRaw(`${B}/oauth/revoke`, { method: 'POST', body: new URLSearchParams({ token: tok.refresh_token, client_id: APP }) });
    assert.equal(rv.status, 200, rv.text);
    assertInvalidToken(await api(tok.access_token, 'Patient/alice'));
    // right signature, live expiry, new jti, but the revoked grant
    assertInvalidToken(await api(await forge(tok.access_token), 'Patient/alice'));
    assert.equal((await api(second.access_token, 'Patient/alice')).status, 200, 'other grants are untouched');
  });
});

/* ---- security plan case 29: forged tokens ---- */

// An attacker who holds a genuine token (or only knows its shape) signs one
// with a key of their own and tells the server where to find that key: in
// the token (jwk), at a URL (jku), or under a kid the server does not have.
// The server must verify against its own keys only.  Every forgery below
// carries alice's genuine, live claims with a fresh jti, so the signature
// is the only thing wrong with it.
describe('forged tokens: the token naming its own key, unknown kids, nbf (security plan case 29)', () => {
  let real; // alice's genuine access token
  let attacker; // { privateKey, jwk }: the attacker's ES256 key pair
  let serverKid; // the kid of the server's signing key
  let jwksServer; // the attacker's JWK Set, served over HTTP
  let jku;
  const jwksAsked = []; // requests the attacker's JWK Set server received

  before(async () => {
    real = (await userToken('alice', 'launch/patient patient/*.rs')).access_token;
    serverKid = jose.decodeProtectedHeader(real).kid;
    const kp = await jose.generateKeyPair('ES256', { extractable: true });
    attacker = { privateKey: kp.privateKey, jwk: { ...(await jose.exportJWK(kp.publicKey)), kid: 'attacker-1', alg: 'ES256', use: 'sig' } };
    // a server the attacker controls: a jku pointing here must never be fetched
    jwksServer = http.createServer((req, res) => {
      jwksAsked.push(req.url);
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ keys: [attacker.jwk, { ...attacker.jwk, kid: serverKid }] }));
    });
    await new Promise((resolve) => jwksServer.listen(0, '127.0.0.1', resolve));
    jku = `http://127.0.0.1:${jwksServer.address().port}/jwks.json`;
  });

  after(async () => {
    if (!jwksServer) return;
    jwksServer.closeAllConnections();
    await new Promise((resolve) => jwksServer.close(resolve));
  });

  // alice's claims with a fresh jti, under 'header', signed with the attacker's key
  const attackerSigned = (header) => new jose.SignJWT({ ...jose.decodeJwt(real), jti: crypto.randomBytes(12).toString('base64url') })
    .setProtectedHeader(header).sign(attacker.privateKey);

  async function assertAllRefused(cases) {
    for (const [name, tok] of Object.entries(cases)) {
      const r = await api(tok, 'Patient/alice');
      assert.equal(r.status, 401, `${name}: ${r.status} ${r.text.slice(0, 200)}`);
      assertInvalidToken(r);
    }
  }

  it('the same claims signed by the server\'s own key are accepted (the baseline of the refusals below)', async () => {
    const r = await api(await forge(real), 'Patient/alice');
    assert.equal(r.status, 200, r.text.slice(0, 300));
  });

  it('a jwk header carrying the attacker\'s public key, signed with that key: 401 invalid_token', async () => {
    const { kid, ...bare } = attacker.jwk;
    assert.equal(kid, 'attacker-1');
    await assertAllRefused({
      'jwk, no kid': await attackerSigned({ alg: 'ES256', typ: 'at+jwt', jwk: bare }),
      'jwk under its own kid': await attackerSigned({ alg: 'ES256', typ: 'at+jwt', kid: 'attacker-1', jwk: attacker.jwk }),
      'jwk under the server\'s kid': await attackerSigned({ alg: 'ES256', typ: 'at+jwt', kid: serverKid, jwk: { ...bare, kid: serverKid } }),
    });
  });

  it('a jku header pointing to the attacker\'s JWK Set, signed with the attacker\'s key: 401 invalid_token, the URL never fetched', async () => {
    // the attacker's server does answer: were the server to follow jku, the forgery would verify
    const own = await fetchRaw(jku);
    assert.equal(own.status, 200);
    assert.ok(own.json.keys.some((k) => k.kid === 'attacker-1'));
    jwksAsked.length = 0;
    await assertAllRefused({
      'jku under the attacker\'s kid': await attackerSigned({ alg: 'ES256', typ: 'at+jwt', kid: 'attacker-1', jku }),
      'jku under the server\'s kid': await attackerSigned({ alg: 'ES256', typ: 'at+jwt', kid: serverKid, jku }),
      'jku and no kid': await attackerSigned({ alg: 'ES256', typ: 'at+jwt', jku }),
    });
    assert.deepEqual(jwksAsked, [], 'the server did not fetch the token\'s jku');
  });

  it('a kid that is none of the server\'s keys, signed with the attacker\'s key: 401 invalid_token', async () => {
    const published = (await fetchRaw(`${B}/oauth/jwks`)).json.keys.map((k) => k.kid);
    assert.ok(published.includes(serverKid), `the token's kid is published: ${published}`);
    const kids = ['attacker-1', `${serverKid}x`, serverKid.slice(0, -1), '', '../keys/es256', `${serverKid}\u0000`];
    for (const kid of kids) assert.ok(!published.includes(kid), `'${kid}' is not a published kid`);
    await assertAllRefused(Object.fromEntries(await Promise.all(kids.map(async (kid) =>
      [`kid ${JSON.stringify(kid)}`, await attackerSigned({ alg: 'ES256', typ: 'at+jwt', kid })]))));
  });

  // The server signs its own access tokens without nbf, but one that carries
  // it must not be accepted before then (RFC 7519 4.1.5; a minute of skew).
  it('a token signed by the server\'s key but not valid before an hour from now (nbf): 401 invalid_token',
    async () => {
      const now = Math.floor(Date.now() / 1000);
      const r = await api(await forge(real, { nbf: now + 3600 }), 'Patient/alice');
      assert.equal(r.status, 401, `nbf an hour ahead: ${r.status} ${r.text.slice(0, 200)}`);
      assertInvalidToken(r);
      // an nbf already past changes nothing
      assert.equal((await api(await forge(real, { nbf: now - 60 }), 'Patient/alice')).status, 200);
    });
});

/* ---- 79-80: types and interactions ---- */

describe('scopes per type and interaction (items 79-80)', () => {
  it('a type outside the scopes: 403 OperationOutcome with error="insufficient_scope", for search and read', async () => {
    const t = (await userToken('alice', 'launch/patient patient/Patient.rs patient/Observation.rs')).access_token;
    assert.equal((await api(t, 'Observation?patient=alice')).status, 200, 'a granted type searches (item 80)');
    const cond = (await sys('Condition?patient=alice')).json.entry[0].resource.id;
    for (const p of ['Condition?patient=alice', `Condition/${cond}`, 'MedicationRequest?patient=alice', 'Patient/alice/Condition',
      `Condition/${cond}/_history`, 'Condition/_history', 'Practitioner?_count=1']) {
      assertInsufficientScope(await api(t, p));
    }
    assertInsufficientScope(await api(t, 'Condition/_search', { method: 'POST', body: 'patient=alice', headers: { 'content-type': 'application/x-www-form-urlencoded' } }));
  });

  it('a granted-type search by patient is a 200 searchset Bundle (item 80)', async () => {
    const t = (await userToken('alice', 'launch/patient patient/Patient.rs patient/Condition.rs')).access_token;
    const r = await api(t, 'Condition?patient=alice');
    assert.equal(r.status, 200, r.text);
    assert.equal(r.json.resourceType, 'Bundle');
    assert.equal(r.json.type, 'searchset');
    assert.ok(matchIds(r.json).length > 0);
  });

  it('.r allows read and vread but not search; .s allows search but not read', async () => {
    const obs = data.aliceObs[0];
    const r = (await userToken('alice', 'launch/patient patient/Patient.r patient/Observation.r')).access_token;
    assert.equal((await api(r, `Observation/${obs}`)).status, 200);
    assert.equal((await api(r, `Observation/${obs}/_history/1`)).status, 200);
    assertInsufficientScope(await api(r, 'Observation?patient=alice'));
    assertInsufficientScope(await api(r, 'Patient/alice/Observation'));
    assertInsufficientScope(await api(r, 'Observation/_search', { method: 'POST', body: 'patient=alice', headers: { 'content-type': 'application/x-www-form-urlencoded' } }));
    assertInsufficientScope(await api(r, 'Patient?_id=alice'));

    const s = (await userToken('alice', 'launch/patient patient/Patient.s patient/Observation.s')).access_token;
    const found = await api(s, 'Observation?patient=alice&_count=5');
    assert.equal(found.status, 200, found.text);
    assert.ok(matchIds(found.json).length > 0);
    assertInsufficientScope(await api(s, `Observation/${obs}`));
    assertInsufficientScope(await api(s, `Observation/${obs}/_history/1`));
    assertInsufficientScope(await api(s, 'Patient/alice'));
  });

  it('writes need c, u and d: each letter allows its own interaction only', async () => {
    const obs = newObs('alice', marker());
    const rs = (await userToken('alice', 'launch/patient patient/Observation.rs')).access_token;
    assertInsufficientScope(await api(rs, 'Observation', { method: 'POST', body: JSON.stringify(obs) }));

    const c = (await userToken('alice', 'launch/patient patient/Observation.crs')).access_token;
    const made = await api(c, 'Observation', { method: 'POST', body: JSON.stringify(obs) });
    assert.equal(made.status, 201, made.text);
    const id = made.json.id;
    const changed = { ...made.json, valueQuantity: { value: 100, unit: 'mg/dL' } };
    assertInsufficientScope(await api(c, `Observation/${id}`, { method: 'PUT', body: JSON.stringify(changed) }));
    assertInsufficientScope(await api(c, `Observation/${id}`, { method: 'DELETE' }));

    const u = (await userToken('alice', 'launch/patient patient/Observation.u')).access_token;
    assertInsufficientScope(await api(u, 'Observation', { method: 'POST', body: JSON.stringify(newObs('alice', marker())) }));
    const put = await api(u, `Observation/${id}`, { method: 'PUT', body: JSON.stringify(changed) });
    assert.equal(put.status, 200, put.text);
    assertInsufficientScope(await api(u, `Observation/${id}`, { method: 'DELETE' }));
    assertInsufficientScope(await api(u, `Observation/${id}`));

    const d = (await userToken('alice', 'launch/patient patient/Observation.d')).access_token;
    assertInsufficientScope(await api(d, `Observation/${id}`, { method: 'PUT', body: JSON.stringify(changed) }));
    assert.equal((await api(d, `Observation/${id}`, { method: 'DELETE' })).status, 204);
    assert.equal((await sys(`Observation/${id}`, { any: true })).status, 410);
  });
});

/* ---- 81, 85: the patient context ---- */

describe('patient/ scopes confine to the patient in context (items 81, 85)', () => {
  let rs; // alice, patient/*.rs
  let cruds; // alice, patient/*.cruds

  before(async () => {
    rs = (await userToken('alice', 'launch/patient openid fhirUser patient/*.rs')).access_token;
    cruds = (await userToken('alice', 'launch/patient patient/*.cruds')).access_token;
  });

  it('reads of alice\'s own record answer 200', async () => {
    for (const p of ['Patient/alice', `Observation/${data.aliceObs[0]}`, `Observation/${data.aliceObs[0]}/_history/1`]) {
      const r = await api(rs, p);
      assert.equal(r.status, 200, `${p}: ${r.text.slice(0, 200)}`);
    }
  });

  // Decision: the hidden id and an id of the same length that does not exist
  // (its letters replaced) are read with the same token, and the two answers
  // must be byte-identical once the ids are swapped back (bodies, lengths,
  // headers).  Comparing against a normalised diagnostic would miss a
  // difference in a field we did not think of; comparing equal-length ids
  // keeps Content-Length comparable too.
  it('another patient\'s resources answer a 404 byte-identical to an id that does not exist', async () => {
    const child = data.childObs[3];
    await assertLikeNonexistent(rs, 'Patient/bob-child', 'bob-child');
    await assertLikeNonexistent(rs, 'Patient/bob-mother', 'bob-mother');
    const { hidden } = await assertLikeNonexistent(rs, `Observation/${child}`, child);
    assertOutcome(hidden, 404);
    await assertLikeNonexistent(rs, `Condition/${data.childCondition}`, data.childCondition);
    await assertLikeNonexistent(rs, `Observation/${child}/_history/1`, child);
    await assertLikeNonexistent(rs, `Observation/${child}/_history`, child);
    await assertLikeNonexistent(rs, `Observation/${child}`, child, { headers: { 'if-none-match': 'W/"1"' } });
    // and the same as what the server says to anyone about a missing id
    const none = await sys(`Observation/${fakeOf(child)}`, { any: true });
    assert.equal(hidden.text, none.text.replaceAll(fakeOf(child), child));
  });

  it('a deleted resource of another patient answers 404, not 410, and its id cannot be taken over to read its history', async () => {
    const made = await sys('Observation', { method: 'POST', body: JSON.stringify(newObs('bob-child', marker())), any: true });
    assert.equal(made.status, 201, made.text);
    assert.equal((await sys(`Observation/${made.json.id}`, { method: 'DELETE', any: true })).status, 204);
    assert.equal((await sys(`Observation/${made.json.id}`, { any: true })).status, 410);
    await assertLikeNonexistent(rs, `Observation/${made.json.id}`, made.json.id);
    // nor can its id be taken over to read its old versions
    const revive = { ...newObs('alice', marker()), id: made.json.id };
    try {
      const put = await assertLikeNonexistent(cruds, `Observation/${made.json.id}`, made.json.id, { method: 'PUT', body: JSON.stringify(revive) });
      assert.equal(put.hidden.status, 404, put.hidden.text);
      await assertLikeNonexistent(rs, `Observation/${made.json.id}/_history/1`, made.json.id);
      await assertLikeNonexistent(rs, `Observation/${made.json.id}/_history`, made.json.id);
      assert.equal((await sys(`Observation/${made.json.id}`, { any: true })).status, 410, 'still deleted');
    } finally {
      // a failure must not leave an Observation in alice's record for the tests after this one
      if ((await sys(`Observation/${made.json.id}`, { any: true })).status === 200) await sys(`Observation/${made.json.id}`, { method: 'DELETE', any: true });
    }
  });

  it('a search across patients returns only alice\'s matches, and the total counts only hers', async () => {
    const q = 'Observation?code=http://loinc.org|8867-4&_total=accurate&_count=500';
    const everyone = await sys(q);
    const hers = await sys(`${q}&patient=alice`);
    assert.ok(everyone.json.total > hers.json.total && hers.json.total > 0, 'the code is in other records too');
    const r = await api(rs, q);
    assert.equal(r.status, 200, r.text);
    assert.equal(r.json.total, hers.json.total);
    assert.deepEqual(matchIds(r.json).sort(), matchIds(hers.json).sort());
    for (const e of r.json.entry) if (e.search?.mode === 'match') assert.equal(e.resource.subject.reference, 'Patient/alice');
    // _summary=count: only the total
    assert.equal((await api(rs, 'Observation?code=http://loinc.org|8867-4&_summary=count')).json.total, hers.json.total);
    // naming another patient finds nothing, with an honest zero total
    for (const p of ['Observation?patient=bob-child&_total=accurate', 'Observation?subject=Patient/bob-child&_total=accurate',
      `Observation?_id=${data.childObs[0]}&_total=accurate`, 'Condition?patient=bob-child&_total=accurate']) {
      const x = await api(rs, p);
      assert.equal(x.status, 200, `${p}: ${x.text.slice(0, 200)}`);
      assert.equal(x.json.total, 0, p);
      assert.deepEqual(matchIds(x.json), [], p);
    }
  });

  it('chained parameters: through shared reference data yes, into patient records never beyond alice\'s', async () => {
    assert.ok((await sys('Observation?subject:Patient.name=Martin&_total=accurate&_count=0')).json.total > 0);
    // bob's mother's birth date (the seed dates people relative to today), which the chain must not reach
    const born = (await sys('Patient/bob-mother')).json.birthDate;
    assert.ok((await sys(`Observation?patient.birthdate=${born}&_total=accurate&_count=0`)).json.total > 0, 'the chain finds hers');
    for (const p of ['Observation?subject:Patient.name=Martin&_total=accurate', `Observation?patient.birthdate=${born}&_total=accurate`,
      'Observation?subject.name=Lily&_total=accurate']) {
      const r = await api(rs, p);
      if (r.status === 200) assert.equal(r.json.total, 0, p);
      else assert.ok(r.status === 403 || r.status === 400, `${p}: ${r.status}`);
    }
    const perf = (await sys(`Observation/${data.aliceObs[0]}`)).json.performer[0].reference.split('/')[1];
    const name = (await sys(`Practitioner/${perf}`)).json.name[0].family;
    const r = await api(rs, `Observation?performer:Practitioner.family=${encodeURIComponent(name)}&_count=500`);
    assert.equal(r.status, 200, r.text);
    assert.ok(matchIds(r.json).includes(data.aliceObs[0]));
    for (const id of matchIds(r.json)) assert.ok(data.aliceObs.includes(id), id);
  });

  it('Patient searches return alice only', async () => {
    assert.ok((await sys('Patient?name=Rose&_total=accurate')).json.total >= 2, 'Rose names bob-child and bob-mother');
    let r = await api(rs, 'Patient?name=Rose&_total=accurate');
    assert.equal(r.status, 200);
    assert.equal(r.json.total, 0);
    r = await api(rs, 'Patient?gender=female&_total=accurate');
    assert.deepEqual(matchIds(r.json), ['alice']);
    assert.equal(r.json.total, 1);
    r = await api(rs, 'Patient?name=Alice');
    assert.deepEqual(matchIds(r.json), ['alice']);
    r = await api(rs, 'Patient?_id=bob-child,alice&_total=accurate');
    assert.deepEqual(matchIds(r.json), ['alice']);
    assert.equal(r.json.total, 1);
    r = await api(rs, 'Patient/_search', { method: 'POST', body: 'gender=female', headers: { 'content-type': 'application/x-www-form-urlencoded' } });
    assert.deepEqual(matchIds(r.json), ['alice']);
  });

  it('compartment searches and $everything: alice\'s allowed, another patient\'s refused', async () => {
    let r = await api(rs, 'Patient/alice/Observation?_count=500');
    assert.equal(r.status, 200, r.text);
    assert.deepEqual(matchIds(r.json).sort(), [...data.aliceObs].sort());
    assertInsufficientScope(await api(rs, 'Patient/bob-child/Observation'));
    assertInsufficientScope(await api(rs, 'Patient/bob-child/Condition'));

    r = await api(rs, 'Patient/alice/$everything?_count=5000');
    assert.equal(r.status, 200, r.text);
    const got = ids(r.json);
    assert.ok(got.length > 50, 'alice\'s record');
    assert.ok(got.includes('Patient/alice'));
    for (const x of got) assert.ok(!data.forbidden.has(x.split('/')[1]), `${x} is not alice's`);
    assertInsufficientScope(await api(rs, 'Patient/bob-child/$everything'));
    assertInsufficientScope(await api(rs, 'Patient/bob-mother/$everything?_type=Observation'));
    // security plan 44: another patient's record and one that does not exist look the same
    for (const p of ['Patient/%s/$everything', 'Patient/%s/Observation', 'Patient/%s', 'Patient/%s/_history']) {
      const a = await api(rs, p.replace('%s', 'bob-child')), b = await api(rs, p.replace('%s', 'no-such-patient'));
      assert.equal(a.status, b.status, p);
      assert.equal(a.text.replaceAll('bob-child', 'X'), b.text.replaceAll('no-such-patient', 'X'), `${p}: the same answer`);
    }
  });

  it('$everything?_type: an unknown type is a 400, a type no record holds finds nothing, and no type outside the scopes comes in', async () => {
    let r = await api(rs, 'Patient/alice/$everything?_type=Nope');
    assert.equal(r.status, 400, r.text);
    assert.equal(r.json.resourceType, 'OperationOutcome');
    assert.match(JSON.stringify(r.json.issue), /unknown resource type 'Nope'/);
    // allowed by patient/*.rs but in no record: an empty answer, not a refusal
    for (const t of ['Practitioner', 'Organization', 'Practitioner,Organization']) {
      r = await api(rs, `Patient/alice/$everything?_type=${t}`);
      assert.equal(r.status, 200, `${t}: ${r.text.slice(0, 300)}`);
      assert.deepEqual(ids(r.json), [], t);
    }
    // no Condition in the scopes: a type no record holds asked beside Condition brings no Condition
    const obsOnly = (await userToken('alice', 'launch/patient patient/Patient.rs patient/Observation.rs patient/Practitioner.rs')).access_token;
    r = await api(obsOnly, 'Patient/alice/$everything?_type=Practitioner,Condition&_count=500');
    assert.equal(r.status, 200, r.text.slice(0, 300));
    assert.deepEqual(ids(r.json), []);
    r = await api(obsOnly, 'Patient/alice/$everything?_type=Observation,Condition&_count=500');
    assert.equal(r.status, 200, r.text.slice(0, 300));
    assert.ok(ids(r.json).length > 0 && ids(r.json).every((x) => x.startsWith('Observation/')), ids(r.json).join(' '));
    // a type the scopes do not allow, alone: refused as before
    assertInsufficientScope(await api(obsOnly, 'Patient/alice/$everything?_type=Condition'));
  });

  it('history: alice\'s resource yes, another\'s 404, type and system history refused', async () => {
    const r = await api(rs, `Observation/${data.aliceObs[0]}/_history`);
    assert.equal(r.status, 200, r.text);
    assert.equal(r.json.type, 'history');
    assert.equal((await api(rs, 'Patient/alice/_history')).status, 200);
    await assertLikeNonexistent(rs, `Observation/${data.childObs[1]}/_history`, data.childObs[1]);
    await assertLikeNonexistent(rs, 'Patient/bob-self/_history', 'bob-self');
    for (const p of ['Observation/_history', 'Patient/_history', '_history', 'Condition/_history?_count=1']) {
      assertInsufficientScope(await api(rs, p));
    }
  });

  // Types outside the patient compartment: shared reference data, readable under patient/ scopes.
  const SHARED = new Set(['Practitioner', 'PractitionerRole', 'Organization', 'Location', 'Medication', 'Questionnaire', 'Binary']);
  const includes = (bundle) => (bundle.entry || []).filter((e) => e.search?.mode === 'include').map((e) => `${e.resource.resourceType}/${e.resource.id}`).sort();

  it('_include and _revinclude bring in alice\'s record and shared data, exactly, and nothing of another patient (item 85)', async () => {
    // a Provenance in alice's record (it names her) and one in bob-child's, both about Observations
    const prov = async (pid, obs) => {
      const body = { resourceType: 'Provenance', target: [{ reference: `Observation/${obs}` }, { reference: `Patient/${pid}` }], recorded: '2024-01-01T00:00:00Z', agent: [{ who: { reference: 'Practitioner/drsmith' } }] };
      const r = await sys('Provenance', { method: 'POST', body: JSON.stringify(body), any: true });
      assert.equal(r.status, 201, r.text);
      return r.json.id;
    };
    const mine = await prov('alice', data.aliceObs[0]);
    const theirs = await prov('bob-child', data.childObs[0]);
    // in bob-child's record, about alice's Observation: it must still not come in
    const mixed = await prov('bob-child', data.aliceObs[0]);
    const record = new Set(ids((await sys('Patient/alice/$everything?_count=5000')).json));
    assert.ok(record.has(`Provenance/${mine}`) && !record.has(`Provenance/${theirs}`) && !record.has(`Provenance/${mixed}`));
    let filtered = 0;
    for (const p of ['Observation?patient=alice&_revinclude=Provenance:target', 'Observation?patient=alice&_revinclude=DiagnosticReport:result',
      'Practitioner?_revinclude=Observation:performer', 'Encounter?patient=alice&_revinclude:iterate=Observation:encounter',
      'Practitioner?_revinclude=Encounter:participant', 'Observation?patient=alice&_include=Observation:performer',
      ['Observation?code=http://loinc.org|8867-4&_include=Observation:subject&_include=Observation:performer',
        'Observation?code=http://loinc.org|8867-4&patient=alice&_include=Observation:subject&_include=Observation:performer'],
      'MedicationRequest?patient=alice&_include=MedicationRequest:medication', 'Encounter?patient=alice&_include=Encounter:participant&_include=Encounter:subject',
      `Observation?_id=${data.aliceObs[0]}&_revinclude=Provenance:target`]) {
      // the same search by the system token, with alice's matches (the confinement named)
      const [q, sq] = Array.isArray(p) ? p.map((x) => `${x}&_count=1000`) : [`${p}&_count=1000`, `${p}&_count=1000`];
      const r = await api(rs, q);
      assert.equal(r.status, 200, `${q}: ${r.text.slice(0, 300)}`);
      const all = includes((await sys(sq)).json);
      const want = all.filter((x) => record.has(x) || SHARED.has(x.split('/')[0]));
      const got = includes(r.json);
      assert.deepEqual(got, want, q);
      for (const x of got) assert.ok(!data.forbidden.has(x.split('/')[1]), `${q}: ${x} is another patient's`);
      filtered += all.length - want.length;
    }
    assert.ok(filtered > 100, `the system token's answers held other patients' resources that were left out (${filtered})`);
    const pv = includes((await api(rs, `Observation?_id=${data.aliceObs[0]}&_revinclude=Provenance:target`)).json);
    assert.deepEqual(pv, [`Provenance/${mine}`]);
    for (const id of [mine, theirs, mixed]) await sys(`Provenance/${id}`, { method: 'DELETE', any: true });
  });

  it('_has cannot probe another patient\'s record through shared reference data', async () => {
    // which practitioners performed Observations of bob-child: must not differ from a patient that does not exist
    const probe = async (pid) => api(rs, `Practitioner?_has:Observation:performer:subject=Patient/${pid}&_total=accurate`);
    assert.ok((await sys('Practitioner?_has:Observation:performer:subject=Patient/bob-child&_total=accurate')).json.total > 0,
      'bob-child has performers to find');
    const child = await probe('bob-child');
    const none = await probe('qqq-qqqqq');
    if (child.status === 200) {
      assert.equal(child.json.total, none.json.total, 'the same answer as for nobody');
      assert.deepEqual(matchIds(child.json), matchIds(none.json));
    } else {
      assertInsufficientScope(child);
    }
  });

  it('creates: alice\'s Observation 201; one for bob-child 403 and nothing written; a Patient 403', async () => {
    const m1 = marker();
    const ok = await api(cruds, 'Observation', { method: 'POST', body: JSON.stringify(newObs('alice', m1)) });
    assert.equal(ok.status, 201, ok.text);
    assert.equal(await markerCount(m1), 1);
    assert.equal((await api(cruds, `Observation/${ok.json.id}`, { method: 'DELETE' })).status, 204);
    const m2 = marker();
    assertInsufficientScope(await api(cruds, 'Observation', { method: 'POST', body: JSON.stringify(newObs('bob-child', m2)) }));
    const both = newObs('alice', m2);
    both.performer = [{ reference: 'Patient/bob-child' }]; // performer puts it in bob-child's compartment too
    // it would land in bob-child's record as well as alice's: refused
    assertInsufficientScope(await api(cruds, 'Observation', { method: 'POST', body: JSON.stringify(both) }));
    const orphan = newObs('alice', m2);
    delete orphan.subject;
    assertInsufficientScope(await api(cruds, 'Observation', { method: 'POST', body: JSON.stringify(orphan) }));
    assert.equal(await markerCount(m2), 0);
    const pat = { resourceType: 'Patient', name: [{ family: 'Intruder' }] };
    assertInsufficientScope(await api(cruds, 'Patient', { method: 'POST', body: JSON.stringify(pat) }));
    assert.equal((await sys('Patient?family=Intruder&_total=accurate')).json.total, 0);
  });

  it('updates and deletes of another patient\'s resource: 404 like a missing one, nothing changed', async () => {
    const id = data.childObs[5];
    const before = (await sys(`Observation/${id}`)).json;
    const edited = { ...before, valueQuantity: { value: 1, unit: 'x' } };
    delete edited.meta;
    await assertLikeNonexistent(cruds, `Observation/${id}`, id, { method: 'PUT', body: JSON.stringify(edited) });
    // moving it into alice's record does not help
    await assertLikeNonexistent(cruds, `Observation/${id}`, id, { method: 'PUT', body: JSON.stringify({ ...edited, subject: { reference: 'Patient/alice' } }) });
    await assertLikeNonexistent(cruds, `Observation/${id}`, id, { method: 'DELETE' });
    await assertLikeNonexistent(cruds, `Observation/${id}`, id, { method: 'DELETE', headers: { prefer: 'return=OperationOutcome' } });
    await assertLikeNonexistent(cruds, 'Patient/bob-child', 'bob-child', { method: 'DELETE' });
    const after = (await sys(`Observation/${id}`)).json;
    assert.deepEqual(after, before, 'unchanged');
    assert.equal((await sys('Patient/bob-child')).status, 200);
    // and alice cannot push her own resource into bob-child's record
    const mine = (await sys(`Observation/${data.aliceObs[2]}`)).json;
    const moved = { ...mine, subject: { reference: 'Patient/bob-child' } };
    delete moved.meta;
    assertInsufficientScope(await api(cruds, `Observation/${mine.id}`, { method: 'PUT', body: JSON.stringify(moved) }));
    assert.deepEqual((await sys(`Observation/${mine.id}`)).json, mine);
    // a client-chosen id that does not exist yet (update as create) for bob-child
    const m = marker();
    const uc = await api(cruds, `Observation/authz-${m}`, { method: 'PUT', body: JSON.stringify({ ...newObs('bob-child', m), id: `authz-${m}` }) });
    assert.ok(uc.status === 403 || uc.status === 404, `${uc.status} ${uc.text.slice(0, 200)}`);
    assert.equal(await markerCount(m), 0);
  });

  it('alice may update her own Patient, but not the elements the clinic keeps, nor delete it (security plan 50)', async () => {
    const cur = (await sys('Patient/alice')).json;
    const strip = (r) => { const x = JSON.parse(JSON.stringify(r)); delete x.meta; return x; };
    const put = (body, token = cruds) => api(token, 'Patient/alice', { method: 'PUT', body: JSON.stringify(body) });
    // an ordinary change (her phone) is hers to make
    const phone = { ...strip(cur), telecom: [...(cur.telecom || []), { system: 'phone', value: '555-0199', use: 'mobile' }] };
    const ok = await put(phone);
    assert.equal(ok.status, 200, ok.text);
    const v = (await sys('Patient/alice')).json.meta.versionId;
    for (const [what, body] of [
      ['link to another patient', { ...strip(cur), link: [{ other: { reference: 'Patient/bob-child' }, type: 'seealso' }] }],
      ['identifier', { ...strip(cur), identifier: [{ system: 'urn:oid:2.16.840.1.113883.19.5', value: 'MRN-FORGED' }] }],
      ['managingOrganization', { ...strip(cur), managingOrganization: { reference: 'Organization/elsewhere' } }],
      ['generalPractitioner', { ...strip(cur), generalPractitioner: [{ reference: 'Practitioner/pr-chen' }] }],
      ['active', { ...strip(cur), active: false }],
      ['meta.security', { ...strip(cur), meta: { security: [{ system: 'http://terminology.hl7.org/CodeSystem/v3-Confidentiality', code: 'N' }] } }],
    ]) {
      const r = await put(body);
      assertInsufficientScope(r);
      assert.match(r.json.issue[0].diagnostics, /kept by the clinic/, what);
      const tx = await post(cruds, 'transaction', [{ resource: body, request: { method: 'PUT', url: 'Patient/alice' } }]);
      assertInsufficientScope(tx);
      assert.equal((await sys('Patient/alice')).json.meta.versionId, v, `${what}: nothing written`);
    }
    const child = ids((await sys('Patient/bob-child/$everything?_count=5000')).json);
    assert.ok(!child.includes('Patient/alice'), 'alice did not enter bob-child\'s record');
    assertInsufficientScope(await api(cruds, 'Patient/alice', { method: 'DELETE' }));
    assertInsufficientScope(await post(cruds, 'batch', [{ request: { method: 'DELETE', url: 'Patient/alice' } }]));
    assert.equal((await sys('Patient/alice')).status, 200);
    // put her record back as it was
    assert.equal((await sys('Patient/alice', { method: 'PUT', body: JSON.stringify(strip(cur)) })).status, 200);
  });

  it('shared reference data (Practitioner, Organization...) cannot be written under a patient context', async () => {
    const before = (await sys('Practitioner/pr-chen')).json;
    const edited = { ...before, name: [{ text: 'Not Dr Chen' }] };
    delete edited.meta;
    const r = await api(cruds, 'Practitioner/pr-chen', { method: 'PUT', body: JSON.stringify(edited) });
    assert.deepEqual((await sys('Practitioner/pr-chen')).json, before, 'Practitioner/pr-chen unchanged');
    assertInsufficientScope(r);
    assertInsufficientScope(await api(cruds, 'Practitioner/pr-chen', { method: 'DELETE' }));
    assert.equal((await sys('Practitioner/pr-chen', { any: true })).status, 200);
    assertInsufficientScope(await api(cruds, 'Organization', { method: 'POST', body: JSON.stringify({ resourceType: 'Organization', name: 'Alice Clinic' }) }));
  });

  const bundle = (type, entry) => JSON.stringify({ resourceType: 'Bundle', type, entry });
  const post = (token, type, entry, headers = {}) => api(token, '', { method: 'POST', body: bundle(type, entry), headers });

  it('a batch of alice\'s reads answers 200 entry by entry', async () => {
    const r = await post(rs, 'batch', [
      { request: { method: 'GET', url: 'Patient/alice' } },
      { request: { method: 'GET', url: `Observation/${data.aliceObs[0]}` } },
      { request: { method: 'GET', url: `${F}/Observation/${data.aliceObs[1]}/_history/1` } },
    ]);
    assert.equal(r.status, 200, r.text);
    assert.equal(r.json.type, 'batch-response');
    assert.deepEqual(r.json.entry.map((e) => e.response.status.split(' ')[0]), ['200', '200', '200']);
    assert.equal(r.json.entry[0].resource.id, 'alice');
  });

  it('one entry outside the record refuses the whole batch or transaction with 403: nothing runs', async () => {
    const child = data.childObs[2];
    for (const [type, touch] of [
      ['batch', { request: { method: 'GET', url: `Observation/${child}` } }],
      ['batch', { request: { method: 'GET', url: `${F}/Patient/bob-child` } }],
      ['batch', { request: { method: 'GET', url: `Observation/${child}/_history/1` } }],
      ['batch', { request: { method: 'DELETE', url: `Observation/${child}` } }],
      ['transaction', { resource: newObs('bob-child', 'x'), request: { method: 'POST', url: 'Observation' } }],
      ['transaction', { resource: { ...newObs('alice', 'x'), id: child }, request: { method: 'PUT', url: `Observation/${child}` } }],
      ['transaction', { resource: { resourceType: 'Patient', id: 'bob-child', gender: 'male' }, request: { method: 'PUT', url: 'Patient/bob-child' } }],
    ]) {
      const m = marker();
      const r = await post(cruds, type, [
        { fullUrl: 'urn:uuid:00000000-0000-4000-8000-000000000001', resource: newObs('alice', m), request: { method: 'POST', url: 'Observation' } },
        touch,
      ]);
      assertInsufficientScope(r);
      assert.equal(await markerCount(m), 0, `${type} ${touch.request.method} ${touch.request.url}: the alice entry did not run`);
    }
    assert.equal((await sys(`Observation/${child}`)).json.meta.versionId, '1');
    assert.equal((await sys('Patient/bob-child')).json.gender, 'female');
  });

  it('conditional entries cannot reach another patient\'s resources', async () => {
    const id = data.childObs[4];
    const before = (await sys(`Observation/${id}`)).json;
    // conditional update: the query matches bob-child's Observation
    const upd = await post(cruds, 'transaction', [
      { resource: newObs('alice', marker()), request: { method: 'PUT', url: `Observation?_id=${id}` } },
    ]);
    const after = (await sys(`Observation/${id}`)).json;
    if (after.meta.versionId !== before.meta.versionId) {
      // put it back into bob-child's record before failing, for the tests after this one
      const back = { ...before };
      delete back.meta;
      await sys(`Observation/${id}`, { method: 'PUT', body: JSON.stringify(back) });
    }
    assert.deepEqual(after, before, `bob-child's Observation unchanged (${upd.status})`);
    assert.ok(upd.status >= 400, `refused: ${upd.status} ${upd.text.slice(0, 300)}`);
    // conditional create: an existing match would be answered with its id and content
    const other = data.childObs[6];
    const cc = await post(cruds, 'transaction', [
      { fullUrl: 'urn:uuid:00000000-0000-4000-8000-000000000002', resource: newObs('alice', marker()), request: { method: 'POST', url: 'Observation', ifNoneExist: `_id=${other}` } },
    ], { prefer: 'return=representation' });
    assert.ok(!cc.text.includes(other) && !cc.text.includes('bob-child'), `no trace of bob-child's Observation: ${cc.text.slice(0, 400)}`);
    assert.ok(cc.status >= 400 || cc.status === 200, cc.text);
    // conditional delete
    const cd = await post(cruds, 'transaction', [{ request: { method: 'DELETE', url: `Observation?_id=${other}` } }]);
    assert.ok(cd.status >= 400, cd.text);
    assert.equal((await sys(`Observation/${other}`)).status, 200);
  });

  it('conditional creates, updates and deletes over REST are refused under a patient context, and change nothing', async () => {
    const id = data.childObs[4];
    const before = (await sys(`Observation/${id}`)).json;
    const upd = await api(cruds, `Observation?_id=${id}`, { method: 'PUT', body: JSON.stringify(newObs('alice', marker())) });
    assertInsufficientScope(upd);
    const cc = await api(cruds, 'Observation', { method: 'POST', body: JSON.stringify(newObs('alice', marker())), headers: { 'if-none-exist': `_id=${id}` } });
    assertInsufficientScope(cc);
    assert.ok(!cc.text.includes(id), cc.text);
    assertInsufficientScope(await api(cruds, `Observation?_id=${id}`, { method: 'DELETE' }));
    // not even within alice's own record: the query would run over every record
    assertInsufficientScope(await api(cruds, 'Observation?patient=alice', { method: 'DELETE' }));
    assert.deepEqual((await sys(`Observation/${id}`)).json, before);
  });

  it('searches inside a batch or transaction answer what the same searches answer alone: alice\'s record only', async () => {
    const qs = ['Observation?code=http://loinc.org|8867-4&_count=500', 'Condition?_count=500', 'Patient', 'Observation?patient=bob-child',
      'Observation?patient=alice&_include=Observation:subject&_count=500', 'Practitioner?_revinclude=Observation:performer&_count=1000',
      'Encounter?_count=200&_sort=-date'];
    let other = 0;
    for (const type of ['batch', 'transaction']) {
      const r = await post(rs, type, qs.map((url) => ({ request: { method: 'GET', url } })));
      assert.equal(r.status, 200, r.text.slice(0, 400));
      assert.equal(r.json.entry.length, qs.length);
      for (const [i, url] of qs.entries()) {
        const e = r.json.entry[i];
        assert.equal(e.response.status.split(' ')[0], '200', `${url}: ${JSON.stringify(e).slice(0, 300)}`);
        const alone = await api(rs, url);
        assert.deepEqual(ids(e.resource), ids(alone.json), `${type} ${url}`);
        for (const x of ids(e.resource)) assert.ok(!data.forbidden.has(x.split('/')[1]), `${type} ${url}: ${x}`);
        if (type === 'batch') other += ids((await sys(url)).json).filter((x) => data.forbidden.has(x.split('/')[1])).length;
      }
      assert.deepEqual(matchIds(r.json.entry[2].resource), ['alice']);
      assert.deepEqual(matchIds(r.json.entry[3].resource), []);
    }
    assert.ok(other > 100, `the same searches by the system token match other patients' data (${other})`);
  });

  it('a search entry a token may not run answers 403 in a batch (the others run) and fails a transaction', async () => {
    const lab = (await userToken('alice', 'launch/patient patient/Patient.rs patient/Observation.rs', { cats: [`Observation ${LAB}`] })).access_token;
    const entries = [{ request: { method: 'GET', url: 'Observation?patient=alice&_count=500' } },
      { request: { method: 'GET', url: 'Patient?_id=alice&_revinclude=Observation:subject' } }];
    const r = await post(lab, 'batch', entries);
    assert.equal(r.status, 200, r.text.slice(0, 400));
    assert.equal(r.json.entry[0].response.status.split(' ')[0], '200');
    assert.deepEqual(matchIds(r.json.entry[0].resource).sort(), [...data.aliceLab].sort(), 'the granular scope bounds the search in the batch');
    assert.equal(r.json.entry[1].response.status.split(' ')[0], '403');
    assert.equal(r.json.entry[1].response.outcome?.resourceType, 'OperationOutcome');
    assert.ok(!JSON.stringify(r.json.entry[1]).includes('"Observation/'), 'nothing of the refused entry');
    const m = marker();
    const t = await post(cruds, 'transaction', [
      { fullUrl: 'urn:uuid:00000000-0000-4000-8000-000000000003', resource: newObs('alice', m), request: { method: 'POST', url: 'Observation' } },
      { request: { method: 'GET', url: 'Practitioner?_has:Observation:performer:subject=Patient/bob-child' } },
    ]);
    assert.equal(t.status, 403, t.text.slice(0, 300));
    assert.equal(t.json.resourceType, 'OperationOutcome');
    assert.equal(await markerCount(m), 0, 'the transaction left no trace');
  });
});

/* ---- 82-84: granular scopes ---- */

describe('granular scopes (items 82-84)', () => {
  let full; // alice, patient/*.rs
  let lab; // alice, Observation limited to laboratory on the consent screen
  let both; // alice, laboratory + vital-signs

  before(async () => {
    full = (await userToken('alice', 'launch/patient patient/*.rs')).access_token;
    const l = await userToken('alice', 'launch/patient patient/Patient.rs patient/Observation.rs', { cats: [`Observation ${LAB}`] });
    assert.ok(l.scope.split(' ').includes(`patient/Observation.rs?category=${LAB}`), l.scope);
    lab = l.access_token;
    const b = await userToken('alice', 'launch/patient patient/Patient.rs patient/Observation.rs', { cats: [`Observation ${LAB}`, `Observation ${VITAL}`] });
    assert.ok(b.scope.includes(`category=${LAB}`) && b.scope.includes(`category=${VITAL}`), b.scope);
    both = b.access_token;
  });

  it('a search without category returns exactly the laboratory Observations a full token finds (82)', async () => {
    const expected = await allMatches(full, `Observation?patient=alice&category=${LAB}&_count=500`);
    assert.deepEqual([...expected].sort(), [...data.aliceLab].sort());
    const got = await allMatches(lab, 'Observation?patient=alice&_count=500');
    assert.deepEqual([...got].sort(), [...expected].sort(), 'no missing and no unexpected ids');
    for (const id of got) assert.ok(!data.aliceVital.includes(id), `${id} is a vital sign`);
    // across pages too, and with the total counting only what is visible
    assert.deepEqual((await allMatches(lab, 'Observation?patient=alice&_count=7')).sort(), [...expected].sort());
    const t = await api(lab, 'Observation?patient=alice&_total=accurate&_count=1');
    assert.equal(t.json.total, expected.length);
    // the compartment route and POST _search are filtered the same way
    assert.deepEqual((await allMatches(lab, 'Patient/alice/Observation?_count=500')).sort(), [...expected].sort());
    const p = await api(lab, 'Observation/_search', { method: 'POST', body: 'patient=alice&_count=500', headers: { 'content-type': 'application/x-www-form-urlencoded' } });
    assert.deepEqual(matchIds(p.json).sort(), [...expected].sort());
  });

  it('a search naming a category that was not granted: 200 and nothing (83)', async () => {
    for (const q of [`category=${VITAL}`, 'category=vital-signs', `category=${VITAL},${CAT}|survey`, `code=http://loinc.org|8867-4`]) {
      const r = await api(lab, `Observation?patient=alice&${q}&_total=accurate`);
      assert.equal(r.status, 200, r.text);
      assert.deepEqual(matchIds(r.json), [], q);
      assert.equal(r.json.total, 0, q);
    }
    // naming the granted one among others keeps only the granted
    const r = await api(lab, `Observation?patient=alice&category=${VITAL},${LAB}&_count=500`);
    assert.deepEqual(matchIds(r.json).sort(), [...data.aliceLab].sort());
  });

  it('reads: a laboratory Observation 200, a vital sign 404 like one that does not exist (84)', async () => {
    assert.equal((await api(lab, `Observation/${data.aliceLab[0]}`)).status, 200);
    assert.equal((await api(lab, `Observation/${data.aliceLab[0]}/_history/1`)).status, 200);
    assert.equal((await api(lab, `Observation/${data.aliceLab[0]}/_history`)).status, 200);
    await assertLikeNonexistent(lab, `Observation/${data.aliceVital[0]}`, data.aliceVital[0]);
    await assertLikeNonexistent(lab, `Observation/${data.aliceVital[0]}/_history/1`, data.aliceVital[0]);
    await assertLikeNonexistent(lab, `Observation/${data.aliceVital[0]}/_history`, data.aliceVital[0]);
    await assertLikeNonexistent(lab, `Observation/${data.childObs[0]}`, data.childObs[0]);
    // the patient read is not constrained
    assert.equal((await api(lab, 'Patient/alice')).status, 200);
  });

  it('a resource with several categories matches when any of them is granted (84)', async () => {
    const both2 = newObs('alice', marker(), 'vital-signs');
    both2.category.push({ coding: [{ system: CAT, code: 'laboratory' }] });
    const made = await sys('Observation', { method: 'POST', body: JSON.stringify(both2), any: true });
    assert.equal(made.status, 201, made.text);
    assert.equal((await api(lab, `Observation/${made.json.id}`)).status, 200);
    assert.ok((await allMatches(lab, 'Observation?patient=alice&_count=500')).includes(made.json.id));
    await sys(`Observation/${made.json.id}`, { method: 'DELETE', any: true });
  });

  it('two category scopes give the union', async () => {
    const got = await allMatches(both, 'Observation?patient=alice&_count=500');
    assert.deepEqual(got.sort(), [...data.aliceLab, ...data.aliceVital].sort());
    assert.equal((await api(both, `Observation/${data.aliceVital[0]}`)).status, 200);
    assert.equal((await api(both, `Observation/${data.aliceLab[0]}`)).status, 200);
  });

  it('the granular scope asked for directly behaves the same as one made on the consent screen', async () => {
    const t = await userToken('alice', `launch/patient patient/Patient.rs patient/Observation.rs?category=${LAB}`);
    assert.ok(t.scope.includes(`patient/Observation.rs?category=${LAB}`), t.scope);
    assert.deepEqual((await allMatches(t.access_token, 'Observation?patient=alice&_count=500')).sort(), [...data.aliceLab].sort());
    assert.equal((await api(t.access_token, `Observation/${data.aliceVital[1]}`)).status, 404);
  });

  it('Condition categories chosen on the consent screen replace its resource-level scope, as Observation\'s do (item 40)', async () => {
    const COND = 'http://terminology.hl7.org/CodeSystem/condition-category';
    const conds = (await sys('Condition?patient=alice&_count=500')).json.entry.map((e) => e.resource);
    const cats = (r) => (r.category || []).flatMap((c) => c.coding.map((x) => `${x.system}|${x.code}`));
    const problems = conds.filter((r) => cats(r).includes(`${COND}|problem-list-item`)).map((r) => r.id).sort();
    assert.ok(problems.length > 0 && problems.length < conds.length, `alice has problem-list and other Conditions (${problems.length} of ${conds.length})`);
    const t = await userToken('alice', 'launch/patient patient/Patient.rs patient/Condition.rs patient/Observation.rs',
      { cats: [`Condition ${COND}|problem-list-item`, `Observation ${LAB}`] });
    const sc = t.scope.split(' ');
    assert.ok(sc.includes(`patient/Condition.rs?category=${COND}|problem-list-item`), t.scope);
    assert.ok(sc.includes(`patient/Observation.rs?category=${LAB}`), t.scope);
    assert.ok(!sc.includes('patient/Condition.rs') && !sc.includes('patient/Observation.rs'), `no resource-level scope: ${t.scope}`);
    const r = await api(t.access_token, 'Condition?patient=alice&_count=500');
    assert.equal(r.status, 200, r.text);
    assert.deepEqual(matchIds(r.json).sort(), problems);
    const other = conds.find((x) => !problems.includes(x.id)).id;
    await assertLikeNonexistent(t.access_token, `Condition/${other}`, other);
  });

  it('a constraint by a parameter the server does not know grants nothing, not everything', async () => {
    const t = await userToken('alice', 'launch/patient patient/Patient.rs patient/Observation.rs?foo=bar');
    const r = await api(t.access_token, 'Observation?patient=alice&_count=500');
    if (r.status === 200) assert.deepEqual(matchIds(r.json), [], 'an unknown constraint does not match everything');
    else assertInsufficientScope(r);
    assert.notEqual((await api(t.access_token, `Observation/${data.aliceObs[0]}`)).status, 200);
    // result parameters are no constraint either
    const c = await userToken('alice', 'launch/patient patient/Patient.rs patient/Observation.rs?_count=1000');
    const rc = await api(c.access_token, 'Observation?patient=alice&_count=500');
    if (rc.status === 200) assert.deepEqual(matchIds(rc.json), []);
    else assertInsufficientScope(rc);
  });

  it('$everything, _include, history and writes do not widen a granular scope', async () => {
    const ev = await api(lab, 'Patient/alice/$everything?_count=5000');
    assert.equal(ev.status, 200, ev.text);
    for (const x of ids(ev.json)) assert.ok(!data.aliceVital.includes(x.split('/')[1]), `${x} is a vital sign`);
    assertInsufficientScope(await api(lab, 'Observation/_history'));
    assertInsufficientScope(await api(lab, 'Patient?_id=alice&_revinclude=Observation:subject'));
    const w = await userToken('alice', `launch/patient patient/Observation.cruds?category=${LAB}`);
    assertInsufficientScope(await api(w.access_token, 'Observation', { method: 'POST', body: JSON.stringify(newObs('alice', marker())) }));
    // a batch read is checked against the constraint too
    const b = await api(lab, '', { method: 'POST', body: JSON.stringify({ resourceType: 'Bundle', type: 'batch', entry: [{ request: { method: 'GET', url: `Observation/${data.aliceVital[2]}` } }] }) });
    assertInsufficientScope(b);
  });
});

/* ---- user/ and system/ scopes ---- */

describe('user/ scopes act with the user\'s own rights', () => {
  it('a conditional write whose search only a patient/ scope allows is refused: the search would not be confined', async () => {
    // user-level create, but searching Observations only in alice's record
    const t = await userToken('drsmith', 'launch/patient patient/Observation.rs user/Observation.c', { patient: 'alice' });
    assert.equal(t.patient, 'alice');
    const other = data.childObs[6];
    const cc = await api(t.access_token, 'Observation', { method: 'POST', body: JSON.stringify(newObs('alice', marker())),
      headers: { 'if-none-exist': `_id=${other}` } });
    assertInsufficientScope(cc);
    assert.ok(!cc.text.includes('bob-child'), cc.text);
    const tx = await api(t.access_token, '', { method: 'POST', body: JSON.stringify({ resourceType: 'Bundle', type: 'transaction',
      entry: [{ resource: newObs('alice', marker()), request: { method: 'POST', url: 'Observation', ifNoneExist: `_id=${other}` } }] }) });
    assertInsufficientScope(tx);
    assert.ok(!tx.text.includes('bob-child'), tx.text);
    // the plain create is allowed
    const plain = await api(t.access_token, 'Observation', { method: 'POST', body: JSON.stringify(newObs('alice', marker())) });
    assert.equal(plain.status, 201, plain.text);
  });

  it('a clinician with user/*.rs sees any patient\'s data', async () => {
    const t = await userToken('drsmith', 'openid fhirUser user/*.rs');
    assert.equal(t.patient, undefined);
    assert.equal((await api(t.access_token, `Observation/${data.childObs[0]}`)).status, 200);
    assert.equal((await api(t.access_token, 'Patient/erin')).status, 200);
    const q = 'Observation?code=http://loinc.org|8867-4&_total=accurate&_count=1';
    assert.equal((await api(t.access_token, q)).json.total, (await sys(q)).json.total);
    assert.equal((await api(t.access_token, 'Patient/bob-mother/$everything?_count=1')).status, 200);
  });

  it('a caregiver acting for bob-child cannot read bob-mother\'s or his own record, only his own fhirUser resource (item 66)', async () => {
    for (const scope of ['openid fhirUser launch/patient patient/*.rs', 'openid fhirUser launch/patient user/*.rs']) {
      const t = await userToken('bob', scope, { patient: 'bob-child' });
      assert.equal(t.patient, 'bob-child');
      assert.equal((await api(t.access_token, 'Patient/bob-child')).status, 200, scope);
      assert.equal((await api(t.access_token, `Observation/${data.childObs[0]}`)).status, 200, scope);
      const mother = (await sys('Observation?patient=bob-mother&_count=1')).json.entry[0].resource.id;
      await assertLikeNonexistent(t.access_token, `Observation/${mother}`, mother);
      await assertLikeNonexistent(t.access_token, 'Patient/bob-mother', 'bob-mother');
      // his fhirUser (Patient/bob-self) reads 200, as SMART apps read it to learn who signed in; nothing else of his record
      const self = await api(t.access_token, 'Patient/bob-self');
      assert.equal(self.status, 200, `${scope}: ${self.text.slice(0, 200)}`);
      assert.equal(self.json.id, 'bob-self');
      const inBatch = await api(t.access_token, '', { method: 'POST', body: JSON.stringify({ resourceType: 'Bundle', type: 'batch',
        entry: [{ request: { method: 'GET', url: 'Patient/bob-self' } }] }) });
      assert.equal(inBatch.status, 200, `${scope}: ${inBatch.text.slice(0, 200)}`);
      assert.equal(inBatch.json.entry[0].resource?.id, 'bob-self', 'and inside a batch');
      const own = (await sys('Observation?patient=bob-self&_count=1')).json.entry[0].resource.id;
      await assertLikeNonexistent(t.access_token, `Observation/${own}`, own);
      assert.deepEqual(matchIds((await api(t.access_token, 'Patient?_id=bob-self')).json), [], 'searches stay confined');
      assertInsufficientScope(await api(t.access_token, 'Patient/bob-self/$everything'));
      const r = await api(t.access_token, 'Observation?patient=bob-mother&_total=accurate');
      assert.equal(r.json.total, 0, scope);
      assertInsufficientScope(await api(t.access_token, 'Patient/bob-mother/$everything'));
      const all = await api(t.access_token, 'Observation?code=http://loinc.org|8867-4&_count=500');
      for (const e of all.json.entry || []) if (e.search?.mode === 'match') assert.equal(e.resource.subject.reference, 'Patient/bob-child');
    }
  });

  it('a patient with user/ scopes and no patient picked is confined to his own record', async () => {
    const t = await userToken('bob', 'openid fhirUser user/*.rs');
    assert.equal((await api(t.access_token, 'Patient/bob-self')).status, 200);
    assert.equal((await api(t.access_token, 'Patient/bob-child')).status, 404);
    assert.equal((await api(t.access_token, `Observation/${data.childObs[0]}`)).status, 404);
  });

  for (const user of ['sam', 'carol']) {
    it(`a ${user === 'sam' ? 'support agent' : 'compliance officer'} with user/*.rs does not read clinical records without an elevation or break-the-glass`, async () => {
      const t = await userToken(user, 'openid fhirUser user/*.rs');
      const r = await api(t.access_token, `Observation/${data.childObs[0]}`, { watch: false });
      assert.equal(r.status, 403);
      assert.match(r.text, /elevation or break-the-glass/);
      assert.equal((await api(t.access_token, 'Observation?_count=1', { watch: false })).status, 403);
    });
  }
});

describe('system/ scopes (backend services)', () => {
  it('the harness backend token (system/*.cruds) sees every patient', async () => {
    assert.equal((await sys(`Observation/${data.childObs[0]}`)).status, 200);
    assert.equal((await sys('Patient/alice')).status, 200);
    const r = await sys('Patient?_total=accurate&_count=100');
    assert.ok(r.json.total >= 6);
    assert.equal((await sys('_history?_count=1')).status, 200);
    assert.equal((await sys('Patient/bob-child/$everything?_count=1')).status, 200);
  });

  it('a backend token with system/Patient.rs reads Patients but no Observation, by any route', async () => {
    const t = await backendToken('system/Patient.rs');
    assert.equal((await api(t, 'Patient/bob-child')).status, 200);
    assert.equal((await api(t, 'Patient?_count=100')).json.entry.length >= 6, true);
    assertInsufficientScope(await api(t, 'Observation?patient=alice'));
    assertInsufficientScope(await api(t, `Observation/${data.aliceObs[0]}`));
    assertInsufficientScope(await api(t, 'Patient/alice/Observation'));
    const ev = await api(t, 'Patient/alice/$everything?_count=5000');
    assert.equal(ev.status, 200, ev.text);
    assert.deepEqual(ids(ev.json), ['Patient/alice']);
    // asking for the type twice does not slip it past the scopes
    const ev2 = await api(t, 'Patient/alice/$everything?_type=Observation&_type=Patient&_count=5000');
    assert.ok(ev2.status === 403 || ids(ev2.json).every((x) => x.startsWith('Patient/')), `${ev2.status}: ${ids(ev2.json || {}).slice(0, 5)}`);
    // nor _revinclude, _has, system history or a Bundle
    const ri = await api(t, 'Patient?_id=alice&_revinclude=Observation:subject');
    assert.ok(ri.status === 403 || ids(ri.json).every((x) => x.startsWith('Patient/')), `_revinclude: ${ri.status} ${ids(ri.json || {}).slice(0, 5)}`);
    const has = await api(t, 'Patient?_has:Observation:subject:code=http://loinc.org|8867-4');
    assert.equal(has.status, 403, `_has on Observation: ${has.status}`);
    const hist = await api(t, '_history?_count=500');
    assert.ok(hist.status === 403 || (hist.json.entry || []).every((e) => e.resource?.resourceType === 'Patient' || !e.resource),
      `system history: ${hist.status} ${(hist.json.entry || []).map((e) => e.resource?.resourceType).slice(0, 5)}`);
    const b = await api(t, '', { method: 'POST', body: JSON.stringify({ resourceType: 'Bundle', type: 'batch', entry: [{ request: { method: 'GET', url: `Observation/${data.aliceObs[0]}` } }] }) });
    assertInsufficientScope(b);
  });

  it('a backend token with system/Observation.rs does not _include the Patients', async () => {
    const t = await backendToken('system/Observation.rs');
    assert.equal((await api(t, 'Observation?_count=5')).status, 200);
    assertInsufficientScope(await api(t, 'Patient/alice'));
    const r = await api(t, 'Observation?patient=alice&_include=Observation:subject&_count=5');
    assert.ok(r.status === 403 || ids(r.json).every((x) => x.startsWith('Observation/')), `${r.status}: ${ids(r.json || {})}`);
    const c = await api(t, 'Observation?patient=alice&_revinclude=DiagnosticReport:result&_count=5');
    assert.ok(c.status === 403 || ids(c.json).every((x) => x.startsWith('Observation/')), `${c.status}: ${ids(c.json || {})}`);
    // a chain into Patient would tell whose birth date it is
    const born = (await sys('Patient/bob-mother')).json.birthDate;
    for (const p of [`Observation?subject:Patient.birthdate=${born}&_total=accurate&_count=0`, 'Observation?patient.name=Martin&_total=accurate&_count=0',
      'Observation?subject.name=Martin&_total=accurate&_count=0']) {
      const x = await api(t, p);
      assert.ok(x.status === 403 || x.status === 400, `${p}: ${x.status} total ${x.json?.total}`);
    }
    assert.equal((await api(t, 'Observation?code=http://loinc.org|8867-4&_count=1')).status, 200);
  });

  it('a backend token cannot write with .rs scopes', async () => {
    const t = await backendToken('system/*.rs');
    assertInsufficientScope(await api(t, 'Observation', { method: 'POST', body: JSON.stringify(newObs('alice', marker())) }));
    assertInsufficientScope(await api(t, `Observation/${data.aliceObs[0]}`, { method: 'DELETE' }));
  });
});

/* ---- 86: CORS ---- */

describe('CORS for registered app origins (item 86)', () => {
  let t;
  before(async () => {
    t = (await userToken('alice', 'launch/patient patient/*.rs')).access_token;
  });

  it('a registered origin gets Access-Control-Allow-Origin equal to it, on success and on errors', async () => {
    for (const p of ['Patient/alice', 'Observation?patient=alice&_count=1', `Observation/${data.childObs[0]}`, 'Condition/_history']) {
      const r = await api(t, p, { headers: { origin: ORIGIN }, watch: false });
      assert.equal(r.headers.get('access-control-allow-origin'), ORIGIN, `${p} (${r.status})`);
      assert.match(r.headers.get('vary') || '', /Origin/i);
    }
    const r = await api(null, 'Patient/alice', { headers: { origin: ORIGIN } });
    assert.equal(r.status, 401);
    assert.equal(r.headers.get('access-control-allow-origin'), ORIGIN, 'the browser app can read the 401');
    const ok = await api(t, 'Patient/alice', { headers: { origin: ORIGIN } });
    assert.match(ok.headers.get('access-control-expose-headers') || '', /ETag/i);
  });

  it('an unregistered origin gets no CORS headers', async () => {
    for (const origin of ['https://evil.example', 'https://app.example.evil.example', 'http://app.example', 'https://app.example:8443', 'null']) {
      const r = await api(t, 'Patient/alice', { headers: { origin } });
      assert.equal(r.headers.get('access-control-allow-origin'), null, origin);
      const pre = await fetchRaw(`${F}/Patient/alice`, { method: 'OPTIONS', headers: { origin, 'access-control-request-method': 'GET' } });
      assert.equal(pre.headers.get('access-control-allow-origin'), null, origin);
      assert.equal(pre.headers.get('access-control-allow-methods'), null, origin);
    }
  });

  it('a preflight from a registered origin answers with the methods and headers a SMART app sends', async () => {
    for (const p of ['Patient/alice', 'Observation', '', 'Observation/_search', 'Patient/alice/$everything']) {
      const r = await fetchRaw(p ? `${F}/${p}` : F, {
        method: 'OPTIONS',
        headers: { origin: ORIGIN, 'access-control-request-method': 'PUT', 'access-control-request-headers': 'authorization, content-type' },
      });
      assert.ok(r.status === 200 || r.status === 204, `${p}: ${r.status}`);
      assert.equal(r.headers.get('access-control-allow-origin'), ORIGIN);
      const methods = (r.headers.get('access-control-allow-methods') || '').split(/\s*,\s*/);
      for (const m of ['GET', 'POST', 'PUT', 'DELETE']) assert.ok(methods.includes(m), `${p}: ${methods}`);
      const hdrs = (r.headers.get('access-control-allow-headers') || '').toLowerCase().split(/\s*,\s*/);
      for (const h of ['authorization', 'content-type', 'accept']) assert.ok(hdrs.includes(h), `${p}: ${hdrs}`);
      assert.equal(r.headers.get('access-control-allow-credentials'), null, 'bearer tokens, not cookies');
    }
  });
});

/* ---- security plan case 51: vertical escalation ---- */

// The audit log is the compliance role's alone (docs/auth.md, FHIR API rule
// 7), and registering apps needs an administrator: a patient, a caregiver
// and a clinician holding ordinary tokens reach neither.
describe('vertical escalation: the audit log and app registration (security plan case 51)', () => {
  const tokens = {}; // the access tokens of each kind of user, by a short description

  before(async () => {
    tokens['alice (patient)'] = (await userToken('alice', 'launch/patient openid fhirUser patient/*.rs')).access_token;
    tokens['bob (caregiver, for bob-child)'] = (await userToken('bob', 'openid fhirUser launch/patient patient/*.rs', { patient: 'bob-child' })).access_token;
    tokens['drsmith (clinician)'] = (await userToken('drsmith', 'openid fhirUser user/*.rs')).access_token;
    tokens['carol (compliance)'] = (await userToken('carol', 'openid fhirUser user/*.rs')).access_token;
  });

  // No AuditEvent anywhere in an answer, however deeply nested (a batch's searchset).
  const auditEventsIn = (json) => JSON.stringify(json ?? null).split('"resourceType":"AuditEvent"').length - 1;

  it('GET /fhir/AuditEvent: 403 to a patient, a caregiver and a clinician, with no audit record in the body', async () => {
    // alice reads her record first, so the log holds a record about her that a leak could show
    assert.equal((await api(tokens['alice (patient)'], 'Patient/alice')).status, 200);
    for (const who of ['alice (patient)', 'bob (caregiver, for bob-child)', 'drsmith (clinician)']) {
      for (const p of ['AuditEvent', 'AuditEvent?patient=alice']) {
        const r = await api(tokens[who], p);
        assertOutcome(r, 403);
        assert.equal(r.json.entry, undefined, `${who} ${p}: ${r.text.slice(0, 300)}`);
        assert.equal(auditEventsIn(r.json), 0, `${who} ${p}: no AuditEvent in ${r.text.slice(0, 300)}`);
      }
    }
  });

  it('GET /fhir/AuditEvent: a searchset of AuditEvents to the compliance role, filtered by patient', async () => {
    const carol = tokens['carol (compliance)'];
    const all = await api(carol, 'AuditEvent?_count=20');
    assert.equal(all.status, 200, all.text.slice(0, 300));
    assert.equal(all.json.resourceType, 'Bundle');
    assert.equal(all.json.type, 'searchset');
    assert.ok(all.json.entry.length > 0, 'the log is not empty');
    assert.equal(auditEventsIn(all.json), all.json.entry.length, 'every entry is an AuditEvent');
    // alice's read of her own record (and this suite's others) are there, and only records about her
    const hers = await api(carol, 'AuditEvent?patient=alice&_count=100');
    assert.equal(hers.status, 200, hers.text.slice(0, 300));
    assert.equal(hers.json.type, 'searchset');
    assert.ok(hers.json.entry.length > 0, 'records about alice');
    for (const e of hers.json.entry) {
      assert.equal(e.resource.resourceType, 'AuditEvent');
      assert.ok(JSON.stringify(e.resource).includes('Patient/alice'), `about alice: ${JSON.stringify(e.resource).slice(0, 300)}`);
    }
  });

  // The other routes to the type (POST _search, a batch entry, $everything)
  // run the ordinary search over the FHIR store, where no AuditEvent can be
  // written (405): they must not turn into a way around the role check.
  it('POST _search, a compartment search, a batch entry and $everything bring a non-compliance token no audit record', async () => {
    const form = { method: 'POST', body: 'patient=alice', headers: { 'content-type': 'application/x-www-form-urlencoded' } };
    const batch = { method: 'POST', body: JSON.stringify({ resourceType: 'Bundle', type: 'batch', entry: [{ request: { method: 'GET', url: 'AuditEvent?_count=10' } }] }) };
    for (const who of ['alice (patient)', 'bob (caregiver, for bob-child)', 'drsmith (clinician)']) {
      const t = tokens[who];
      const p = who.startsWith('alice') ? 'alice' : 'bob-child';
      const refused = {
        'POST _search': await api(t, 'AuditEvent/_search', form),
        compartment: await api(t, `Patient/${p}/AuditEvent`),
        batch: await api(t, '', batch),
      };
      for (const [route, r] of Object.entries(refused)) {
        assert.equal(r.status, 403, `${who} ${route}: ${r.status} ${r.text.slice(0, 200)}`);
        assert.equal(auditEventsIn(r.json), 0, `${who} ${route}: ${r.text.slice(0, 300)}`);
      }
      // $everything covers the stored record, where no AuditEvent is
      const ev = await api(t, `Patient/${p}/$everything?_type=AuditEvent`);
      assert.ok(ev.status === 200 || ev.status === 403, `${who} $everything: ${ev.status}`);
      assert.equal(auditEventsIn(ev.json), 0, `${who} $everything: ${ev.text.slice(0, 300)}`);
    }
    // compliance: POST _search is the same search as GET; elsewhere, a pointer to it
    const carol = tokens['carol (compliance)'];
    const get = await api(carol, 'AuditEvent?patient=alice&_count=5');
    const post = await api(carol, 'AuditEvent/_search', { ...form, body: 'patient=alice&_count=5' });
    assert.equal(post.status, 200, post.text.slice(0, 200));
    assert.ok(auditEventsIn(post.json) > 0, 'POST _search finds the log');
    // the same records as GET, newest first (the GET, recorded meanwhile, may come first)
    const postIds = post.json.entry.map((e) => e.resource.id);
    for (const id of get.json.entry.slice(0, 3).map((e) => e.resource.id)) assert.ok(postIds.includes(id), `${id} in ${postIds}`);
    assert.match(get.json.link.find((l) => l.relation === 'self').url, /patient=alice/, 'self shows the filters applied');
    assert.equal((await api(carol, 'Patient/alice/AuditEvent')).status, 400, 'pointed to /fhir/AuditEvent');
    assert.equal((await api(carol, '', batch)).status, 403, 'not in a Bundle');
  });

  it('POST /oauth/register (RFC 7591) with a non-administrator\'s token: 403 insufficient_scope, and no app is registered', async () => {
    const clients = async () => {
      const r = await runCli(['client', 'list', '--data', dir]);
      assert.equal(r.code, 0, r.stderr);
      return r.stdout;
    };
    const register = (token, name) => fetchRaw(`${B}/oauth/register`, {
      method: 'POST',
      headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
      body: JSON.stringify({ client_name: name, redirect_uris: [`https://escalation.example/${name}/cb`], token_endpoint_auth_method: 'none' }),
    });
    const before = await clients();
    const refusals = [];
    for (const [who, t] of Object.entries(tokens)) {
      const name = `escalation-${who.split(' ')[0]}`;
      const r = await register(t, name);
      refusals.push([who.split(' ')[0], r.headers.get('x-request-id')]);
      // handle_register in src/auth/endpoints.c: a valid token without the admin role
      assert.equal(r.status, 403, `${who}: ${r.status} ${r.text}`);
      assert.match(r.headers.get('www-authenticate') || '', /error="insufficient_scope"/, who);
      assert.equal(r.json?.error, 'insufficient_scope', r.text);
      assert.equal(r.json.client_id, undefined, `${who}: no client_id`);
      assert.ok(!r.text.includes(name), `${who}: the metadata is not echoed as registered`);
    }
    const after = await clients();
    assert.equal(after, before, 'the list of apps is unchanged');
    assert.ok(!after.includes('escalation.example'), after);
    // the same request with an administrator's token registers: the refusals were for the role, and the list shows a new app
    const admin = (await userToken('admin', 'openid fhirUser user/*.rs')).access_token;
    const ok = await register(admin, 'escalation-admin');
    assert.equal(ok.status, 201, ok.text);
    const listed = await clients();
    assert.ok(listed.includes(ok.json.client_id) && listed.includes('https://escalation.example/escalation-admin/cb'), listed);
    // on record: each refusal as policy.denied by its user; the registration as admin.client naming the new app
    const rids = [...refusals.map(([, rid]) => rid), ok.headers.get('x-request-id')];
    const recs = await recordsOf(rids);
    for (const [user, rid] of refusals) {
      const mine = recs.filter((r) => r.correlation?.request === rid);
      assert.deepEqual(mine.map((r) => [r.type, r.outcome, r.outcomeCode, r.agent?.username]),
        [['policy.denied', 4, 'register-needs-admin', user]], JSON.stringify(mine));
      assert.ok(mine[0].source?.token, `${user}: the token as a hash`);
    }
    const reg = recs.filter((r) => r.correlation?.request === rids.at(-1));
    assert.deepEqual(reg.map((r) => [r.type, r.action, r.agent?.username, r.entity]),
      [['admin.client', 'C', 'admin', [{ type: 'Client', id: ok.json.client_id }]]], JSON.stringify(reg));
  });

  it('POST /oauth/register refuses an http: redirect URI other than loopback (checklist item 28)', async () => {
    const admin = (await userToken('admin', 'openid fhirUser user/*.rs')).access_token;
    const register = (uri) => fetchRaw(`${B}/oauth/register`, {
      method: 'POST',
      headers: { authorization: `Bearer ${admin}`, 'content-type': 'application/json' },
      body: JSON.stringify({ client_name: 'plain-http', redirect_uris: [uri], token_endpoint_auth_method: 'none' }),
    });
    const before = (await runCli(['client', 'list', '--data', dir])).stdout;
    const bad = await register('http://app.example/cb');
    assert.equal(bad.status, 400, bad.text);
    assert.equal(bad.json?.error, 'invalid_redirect_uri', bad.text);
    assert.equal((await runCli(['client', 'list', '--data', dir])).stdout, before, 'nothing registered');
    const loop = await register('http://127.0.0.1:8000/cb');
    assert.equal(loop.status, 201, loop.text);
    assert.ok((await runCli(['client', 'list', '--data', dir])).stdout.includes(loop.json.client_id));
  });
});

/* The server's audit records of these requests, once all are in (they are written after the answer). */
async function recordsOf(rids) {
  let recs = [];
  for (let i = 0; i < 60; i++) {
    const r = await runCli(['audit', 'query', '--data', dir, '--node', 'node-1', '--format', 'ndjson']);
    assert.equal(r.code, 0, r.stderr);
    recs = r.stdout.split('\n').filter(Boolean).map((l) => JSON.parse(l));
    if (rids.every((rid) => recs.some((x) => x.correlation?.request === rid))) break;
    await new Promise((res) => setTimeout(res, 50));
  }
  return recs;
}

/* ---- no other patient's data in errors ---- */

describe('error answers', () => {
  it('no answer to alice\'s or bob\'s tokens names another patient\'s data beyond what the request itself named', () => {
    assert.ok(errorsSeen.length > 60, `errors collected: ${errorsSeen.length}`);
    for (const e of errorsSeen) {
      const asked = new Set(`${e.path} ${e.body}`.split(/[^A-Za-z0-9.-]+/));
      for (const tok of e.text.split(/[^A-Za-z0-9.-]+/)) {
        if (!tok || asked.has(tok)) continue;
        assert.ok(!data.forbidden.has(tok), `${e.status} ${e.path}: '${tok}' in ${e.text.slice(0, 300)}`);
        assert.ok(!data.forbiddenWords.has(tok), `${e.status} ${e.path}: '${tok}' in ${e.text.slice(0, 300)}`);
      }
    }
  });
});
