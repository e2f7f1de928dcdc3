// Exact values the SMART / OAuth conformance checklist asks for
// (shared/reference/smart-conformance.md; the letter and number in each test
// name are the checklist section and item) that the broader suites
// (oauth, scopes, authz) check only loosely: literal field values and types
// in discovery, the JWK Set, token, refresh, introspection and id_token
// answers; iss on every error redirect; token_type_hint never hiding a
// token (RFC 7009 2.1, RFC 7662 2.1); the code_verifier syntax (RFC 7636
// 4.1); CORS on the token endpoint's errors; how long a code may wait.
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import http from 'node:http';
import * as jose from 'jose';
import { makeTempDir, removeDir, initDataDir, seedDataDir, startServer, freePort } from './lib/server.mjs';
import {
  Browser, authorize, authzRequest, walk, redeem, postForm, basic, fhirGet, keyPair, assertion, registerClient,
  signIn, serveFixed, JWT_BEARER, fetchJson,
} from './lib/oauth.mjs';

const SCOPE = 'launch/patient openid fhirUser offline_access patient/*.rs';
const CB = 'http://127.0.0.1:7777/cb';            // the registered loopback URI, another port
const CONF_CB = 'https://conf.example/cb';
const CONF_SECRET = 'conf-secret-0123456789';
const APP_ORIGIN = 'https://app.example';

let dir, srv, tokenUrl, bsKey, alice;

before(async () => {
  dir = await makeTempDir('veranda-checklist-');
  await initDataDir(dir);
  await seedDataDir(dir, { patients: 0 });
  bsKey = await keyPair('ES384');
  await registerClient(dir, { clientId: 'pub', public: true, redirectUris: ['http://127.0.0.1/cb'], origins: [APP_ORIGIN] });
  await registerClient(dir, { clientId: 'conf', secret: CONF_SECRET, redirectUris: [CONF_CB] });
  await registerClient(dir, { clientId: 'bs', jwks: { keys: [bsKey.publicJwk] }, scope: 'system/*.rs' });
  srv = await startServer({ dataDir: dir, init: false, auth: false });
  tokenUrl = `${srv.baseUrl}/oauth/token`;
  alice = new Browser(srv.baseUrl);
  assert.equal((await signIn(alice, 'alice')).status, 303, 'alice signs in');
});

after(async () => {
  if (srv) await srv.stop();
  await removeDir(dir);
});

/* ---- helpers ---- */

async function launchTokens({ scope = SCOPE, nonce, clientId = 'pub', redirectUri = CB, auth } = {}) {
  const a = await authorize(alice, srv, { clientId, redirectUri, scope, nonce });
  assert.ok(a.code, `a code (${a.error} after ${a.walk.pages})`);
  const r = await redeem(srv, { code: a.code, verifier: a.verifier, redirectUri, clientId, auth });
  assert.equal(r.status, 200, r.text);
  return r;
}

const introspect = (token, extra = {}) =>
  postForm(`${srv.baseUrl}/oauth/introspect`, { token, ...extra }, { auth: basic('conf', CONF_SECRET) });

const refresh = (refreshToken, extra = {}) =>
  postForm(tokenUrl, { grant_type: 'refresh_token', refresh_token: refreshToken, client_id: 'pub', ...extra });

// RFC 6749 5.1 and SMART app-launch "response-5": the headers and the common fields, with literal values.
function assertTokenResponse(r) {
  assert.equal(r.status, 200, r.text);
  assert.match(r.headers.get('content-type') || '', /^application\/json\b/);
  assert.match(r.headers.get('cache-control') || '', /(^|[ ,])no-store($|[ ,])/);
  assert.equal(r.headers.get('pragma'), 'no-cache');
  const t = r.json;
  assert.equal(typeof t.access_token, 'string');
  assert.ok(t.access_token.length > 0);
  assert.equal(t.token_type, 'Bearer', 'SMART: token_type "Bearer"');
  assert.ok(Number.isInteger(t.expires_in), `expires_in is a JSON integer: ${JSON.stringify(t.expires_in)}`);
  assert.ok(t.expires_in > 0 && t.expires_in <= 3600, `expires_in ${t.expires_in}`);
  assert.equal(typeof t.scope, 'string');
  return t;
}

function assertOAuthError(r, status, error) {
  assert.equal(r.status, status, r.text);
  assert.match(r.headers.get('content-type') || '', /^application\/json\b/, r.text);
  assert.equal(r.json?.error, error, r.text);
  assert.equal(typeof r.json.error_description, 'string');
  assert.match(r.headers.get('cache-control') || '', /no-store/);
}

/* ================================================================ */

describe('A. discovery: literal values', () => {
  it('A2 smart-configuration is the same JSON with no Accept header at all, or Accept: application/fhir+xml', async () => {
    // fetch() always adds "Accept: */*", so the request without one goes through node:http, which adds none
    const get = (headers) => new Promise((resolve, reject) => {
      const req = http.request(`${srv.fhirBase}/.well-known/smart-configuration`, { headers, agent: false }, (res) => {
        const chunks = [];
        res.on('data', (d) => chunks.push(d));
        res.on('end', () => resolve({ status: res.statusCode, type: res.headers['content-type'] || '',
          text: Buffer.concat(chunks).toString('utf8') }));
        res.on('error', reject);
      });
      req.on('error', reject);
      assert.equal(req.getHeader('accept'), headers.accept, 'the Accept header sent is exactly the one asked for');
      req.end();
    });
    const json = await get({ accept: 'application/json' });
    assert.equal(json.status, 200, json.text);
    assert.match(json.type, /^application\/json\b/);
    const want = JSON.parse(json.text);
    assert.equal(want.issuer, srv.baseUrl, 'the application/json answer is the discovery document');
    for (const [what, headers] of [['no Accept', {}], ['Accept: application/fhir+xml', { accept: 'application/fhir+xml' }]]) {
      const r = await get(headers);
      assert.equal(r.status, 200, `${what}: ${r.text.slice(0, 200)}`);
      assert.match(r.type, /^application\/json\b/, `${what}: Content-Type ${r.type}`);
      let body;
      assert.doesNotThrow(() => (body = JSON.parse(r.text)), `${what}: the body is JSON`);
      assert.deepEqual(body, want, `${what}: the same document`);
    }
  });

  it('A3 every endpoint and the issuer in smart-configuration are absolute URLs on this server', async () => {
    const d = (await fetchJson(`${srv.fhirBase}/.well-known/smart-configuration`)).json;
    const urls = Object.entries(d).filter(([k]) => k === 'issuer' || k === 'jwks_uri' || k.endsWith('_endpoint'));
    assert.ok(urls.length >= 7, urls.map(([k]) => k).join(' '));
    for (const [k, v] of urls) {
      assert.equal(typeof v, 'string', k);
      const u = new URL(v); // throws on a relative URL
      assert.equal(u.origin, srv.baseUrl, `${k}: ${v}`);
    }
    assert.equal(d.issuer, srv.baseUrl);
    assert.equal(d.token_endpoint, tokenUrl);
  });

  it('A10 openid-configuration: application/json for Accept: application/json; subject types and signing algs are registered values', async () => {
    const res = await fetchJson(`${srv.baseUrl}/.well-known/openid-configuration`, { headers: { accept: 'application/json' } });
    assert.equal(res.status, 200);
    assert.match(res.headers.get('content-type'), /^application\/json\b/);
    const d = res.json;
    assert.equal(d.issuer, srv.baseUrl);
    assert.ok(d.subject_types_supported.length > 0);
    for (const s of d.subject_types_supported) assert.ok(['public', 'pairwise'].includes(s), `subject type ${s}`);
    assert.ok(d.id_token_signing_alg_values_supported.includes('RS256'));
    assert.ok(!d.id_token_signing_alg_values_supported.includes('none'), 'unsigned id_tokens are not offered');
    assert.deepEqual(d.response_types_supported, ['code']);
  });

  it('A12,F64 the JWK Set: JSON, unique kids, public RSA signing keys for RS256; the id_token names one of them', async () => {
    const conf = (await fetchJson(`${srv.baseUrl}/.well-known/openid-configuration`)).json;
    const res = await fetchJson(conf.jwks_uri);
    assert.equal(res.status, 200);
    assert.match(res.headers.get('content-type'), /^application\/(jwk-set\+)?json\b/);
    const { keys } = res.json;
    assert.ok(Array.isArray(keys) && keys.length > 0);
    const kids = keys.map((k) => k.kid);
    assert.ok(kids.every((k) => typeof k === 'string' && k.length > 0), 'every key has a kid');
    assert.equal(new Set(kids).size, kids.length, 'kids are unique');
    for (const k of keys) {
      if (k.use !== undefined) assert.equal(k.use, 'sig', `${k.kid}: use`);
      for (const p of ['d', 'p', 'q', 'dp', 'dq', 'qi', 'oth', 'k']) assert.ok(!(p in k), `${k.kid}: no private member ${p}`);
    }
    const rsa = keys.filter((k) => k.kty === 'RSA');
    assert.ok(rsa.length > 0, 'an RSA key');
    for (const k of rsa) {
      assert.match(k.n, /^[A-Za-z0-9_-]+$/);
      assert.equal(k.e, 'AQAB');
      assert.ok(Buffer.from(k.n, 'base64url').length >= 256, `${k.kid}: at least 2048 bits`);
    }
    // the key that signs id_tokens: RSA, for RS256 (or no alg), and verifies the id_token
    const t = (await launchTokens()).json;
    const hdr = jose.decodeProtectedHeader(t.id_token);
    assert.equal(hdr.alg, 'RS256');
    assert.ok(hdr.typ === undefined || hdr.typ === 'JWT', `typ ${hdr.typ}`);
    assert.equal(hdr.jku, undefined);
    assert.equal(hdr.jwk, undefined);
    const key = keys.find((k) => k.kid === hdr.kid);
    assert.ok(key, 'the id_token kid is in the set');
    assert.equal(key.kty, 'RSA');
    assert.ok(key.alg === undefined || key.alg === 'RS256', `alg ${key.alg}`);
    await jose.compactVerify(t.id_token, await jose.importJWK(key, 'RS256'));
  });
});

/* ================================================================ */

describe('B. authorization endpoint: iss and state on every error redirect', () => {
  it('B21,24,25 an aud that is not this FHIR base: invalid_request with state and iss, no code', async () => {
    for (const aud of ['https://inferno.healthit.gov/invalid_aud', undefined]) {
      const req = authzRequest(srv, { clientId: 'pub', redirectUri: CB, scope: SCOPE, extra: { aud } });
      const r = await alice.get(req.url);
      assert.equal(r.status, 303, `aud ${aud}: ${r.status}`);
      const u = new URL(r.location);
      assert.equal(`${u.origin}${u.pathname}`, CB);
      assert.equal(u.searchParams.get('code'), null);
      assert.equal(u.searchParams.get('error'), 'invalid_request');
      assert.equal(u.searchParams.get('state'), req.state);
      assert.equal(u.searchParams.get('iss'), srv.baseUrl, 'RFC 9207: iss on an error response too');
    }
  });

  it('B14,25 a code response carries exactly one code, state and iss', async () => {
    const a = await authorize(alice, srv, { clientId: 'pub', redirectUri: CB, scope: SCOPE });
    const q = a.redirect.searchParams;
    assert.equal(a.walk.response.status, 303);
    for (const p of ['code', 'state', 'iss']) assert.equal(q.getAll(p).length, 1, p);
    assert.equal(q.get('state'), a.sentState);
    assert.equal(q.get('iss'), srv.baseUrl);
    assert.equal(q.has('error'), false);
  });

  it('B14,23-24 state comes back byte for byte, whatever its characters, on GET, POST and a denial', async () => {
    for (const state of ['a b+c/d=e&f%20g', '\u00e9\u2603', '"<x>\'', '#frag?q=1']) {
      for (const post of [false, true]) {
        const a = await authorize(alice, srv, { clientId: 'pub', redirectUri: CB, scope: SCOPE, state, post });
        assert.ok(a.code, `${JSON.stringify(state)} post=${post}: ${a.error}`);
        assert.equal(a.state, state, `post=${post}`);
        assert.equal(a.redirect.hash, '', 'nothing in a fragment');
      }
      const d = await authorize(alice, srv, { clientId: 'pub', redirectUri: CB, scope: SCOPE, state, action: 'deny' });
      assert.equal(d.error, 'access_denied');
      assert.equal(d.state, state, 'on a denial');
    }
  });
});

/* ================================================================ */

describe('E. token endpoint: literal values', () => {
  it('E51-52 authorization_code: token_type "Bearer", integer expires_in, scope, context types, no-store and no-cache', async () => {
    const t = assertTokenResponse(await launchTokens());
    assert.deepEqual(t.scope.split(' ').sort(), SCOPE.split(' ').sort());
    assert.equal(typeof t.refresh_token, 'string');
    assert.equal(typeof t.id_token, 'string');
    assert.equal(t.id_token.split('.').length, 3, 'a compact JWS, not a JWE');
    assert.equal(t.patient, 'alice', 'an id, not a reference');
    assert.equal(typeof t.need_patient_banner, 'boolean');
    assert.equal(new URL(t.smart_style_url).origin, srv.baseUrl, 'smart_style_url is absolute');
    const style = await fetchJson(t.smart_style_url);
    assert.equal(style.status, 200);
    assert.match(style.headers.get('content-type'), /^application\/json\b/);
    assert.equal(typeof style.json, 'object');
    // the access token's lifetime is what expires_in says
    const at = jose.decodeJwt(t.access_token);
    assert.equal(at.exp - at.iat, t.expires_in);
  });

  it('E49,51 a confidential client gets the same literal fields', async () => {
    const t = assertTokenResponse(await launchTokens({ clientId: 'conf', redirectUri: CONF_CB, auth: basic('conf', CONF_SECRET) }));
    assert.equal(t.patient, 'alice');
  });

  it('E55 a public request naming an unknown client: invalid_client as a JSON error with no-store', async () => {
    const a = await authorize(alice, srv, { clientId: 'pub', redirectUri: CB, scope: SCOPE });
    const r = await redeem(srv, { code: a.code, verifier: a.verifier, redirectUri: CB, clientId: 'BAD_CLIENT_ID' });
    assert.ok([400, 401].includes(r.status), r.text);
    assertOAuthError(r, r.status, 'invalid_client');
  });

  it('E56 a code_verifier that matches the challenge but breaks RFC 7636 4.1 (length, characters) is refused', async () => {
    for (const verifier of ['abc', 'a'.repeat(42), 'a'.repeat(129), `${'a'.repeat(43)}+/=`]) {
      const challenge = crypto.createHash('sha256').update(verifier).digest('base64url');
      const req = authzRequest(srv, { clientId: 'pub', redirectUri: CB, scope: SCOPE, extra: { code_challenge: challenge } });
      const w = await walk(alice, req.url, {});
      const code = w.redirect?.searchParams.get('code');
      assert.ok(code, `a code for a well-formed challenge (${w.redirect})`);
      const r = await redeem(srv, { code, verifier, redirectUri: CB, clientId: 'pub' });
      assertOAuthError(r, 400, 'invalid_grant');
    }
    // the boundaries are accepted
    for (const verifier of ['a'.repeat(43), `${'A'.repeat(124)}-._~`]) {
      const challenge = crypto.createHash('sha256').update(verifier).digest('base64url');
      const req = authzRequest(srv, { clientId: 'pub', redirectUri: CB, scope: SCOPE, extra: { code_challenge: challenge } });
      const w = await walk(alice, req.url, {});
      const r = await redeem(srv, { code: w.redirect.searchParams.get('code'), verifier, redirectUri: CB, clientId: 'pub' });
      assert.equal(r.status, 200, `${verifier.length} characters: ${r.text}`);
    }
  });

  it('E61 a registered origin can read the token endpoint\'s errors too (the app must see why)', async () => {
    const r = await postForm(tokenUrl, { grant_type: 'authorization_code', code: 'BAD_CODE', client_id: 'pub', redirect_uri: CB,
      code_verifier: 'a'.repeat(43) }, { headers: { origin: APP_ORIGIN } });
    assertOAuthError(r, 400, 'invalid_grant');
    assert.equal(r.headers.get('access-control-allow-origin'), APP_ORIGIN);
    assert.equal(r.headers.get('access-control-allow-credentials'), null, 'no cookies cross-origin');
    const ok = await postForm(tokenUrl, { grant_type: 'refresh_token', refresh_token: (await launchTokens()).json.refresh_token,
      client_id: 'pub' }, { headers: { origin: APP_ORIGIN } });
    assertTokenResponse(ok);
    assert.equal(ok.headers.get('access-control-allow-origin'), APP_ORIGIN, 'a refresh from the browser app');
  });
});

/* ================================================================ */

describe('F. id_token claims', () => {
  it('F65,67 iss, sub, aud, exp and iat are exact; nonce is echoed, and absent when none was sent', async () => {
    const nonce = crypto.randomBytes(16).toString('base64url');
    const before = Math.floor(Date.now() / 1000);
    const t = (await launchTokens({ nonce })).json;
    const c = jose.decodeJwt(t.id_token);
    assert.equal(c.iss, srv.baseUrl);
    assert.equal(c.sub, 'alice');
    assert.ok(c.aud === 'pub' || (Array.isArray(c.aud) && c.aud.includes('pub')), `aud ${c.aud}`);
    if (Array.isArray(c.aud) && c.aud.length > 1) assert.equal(c.azp, 'pub', 'azp with several audiences');
    assert.ok(Number.isInteger(c.iat) && Number.isInteger(c.exp));
    assert.ok(c.iat >= before - 5 && c.iat <= Math.floor(Date.now() / 1000) + 5, `iat ${c.iat} is now`);
    assert.ok(c.exp > c.iat, 'exp after iat');
    assert.equal(c.nonce, nonce);
    assert.equal(c.fhirUser, `${srv.fhirBase}/Patient/alice`);
    if (c.at_hash !== undefined) {
      // OIDC Core 3.1.3.6: the left half of SHA-256 of the access token, base64url
      const h = crypto.createHash('sha256').update(t.access_token).digest();
      assert.equal(c.at_hash, h.subarray(0, 16).toString('base64url'));
    }
    const plain = jose.decodeJwt((await launchTokens()).json.id_token);
    assert.equal('nonce' in plain, false, 'no nonce claim without a nonce in the request');
  });
});

/* ================================================================ */

describe('G. refresh: literal values', () => {
  it('G68-69 a refresh answer, with and without scope, has the same literal fields and headers', async () => {
    const first = (await launchTokens()).json;
    const r1 = assertTokenResponse(await refresh(first.refresh_token));
    assert.equal(r1.scope, first.scope);
    assert.equal(typeof r1.refresh_token, 'string');
    assert.notEqual(r1.access_token, first.access_token);
    const r2 = assertTokenResponse(await refresh(r1.refresh_token, { scope: first.scope }));
    assert.equal(r2.scope, first.scope);
    assert.equal(r2.patient, 'alice');
    assert.equal((await fhirGet(srv, 'Patient/alice', r2.access_token)).status, 200);
  });
});

/* ================================================================ */

describe('I/J. token_type_hint never hides a token', () => {
  it('I87-88 a refresh token revoked under the hint access_token (or an unknown hint) is revoked, grant and all', async () => {
    for (const hint of ['access_token', 'no_such_type']) {
      const t = (await launchTokens()).json;
      const r = await postForm(`${srv.baseUrl}/oauth/revoke`, { token: t.refresh_token, token_type_hint: hint, client_id: 'pub' });
      assert.equal(r.status, 200, `${hint}: ${r.text}`);
      assertOAuthError(await refresh(t.refresh_token), 400, 'invalid_grant');
      assert.equal((await fhirGet(srv, 'Patient/alice', t.access_token)).status, 401, `${hint}: the grant's access token`);
    }
  });

  it('I87-88 an access token revoked under the hint refresh_token is revoked', async () => {
    const t = (await launchTokens()).json;
    assert.equal((await fhirGet(srv, 'Patient/alice', t.access_token)).status, 200);
    const r = await postForm(`${srv.baseUrl}/oauth/revoke`, { token: t.access_token, token_type_hint: 'refresh_token', client_id: 'pub' });
    assert.equal(r.status, 200, r.text);
    assert.equal((await fhirGet(srv, 'Patient/alice', t.access_token)).status, 401);
    assert.deepEqual((await introspect(t.access_token)).json, { active: false });
  });

  it('J91 introspection finds a token under the wrong hint, with the active-token fields', async () => {
    const t = (await launchTokens()).json;
    for (const [token, hint] of [[t.access_token, 'refresh_token'], [t.refresh_token, 'access_token'], [t.access_token, 'other']]) {
      const r = await introspect(token, { token_type_hint: hint });
      assert.equal(r.status, 200, r.text);
      assert.match(r.headers.get('content-type'), /^application\/json\b/);
      assert.equal(r.json.active, true, `hint ${hint}: ${r.text}`);
      assert.equal(r.json.client_id, 'pub');
      assert.equal(r.json.scope, t.scope);
      assert.equal(r.json.patient, 'alice');
      assert.ok(Number.isInteger(r.json.exp));
    }
  });

  it('J91 an active access token: iss, sub and fhirUser agree with the id_token; exp with expires_in', async () => {
    const t = (await launchTokens()).json;
    const idt = jose.decodeJwt(t.id_token);
    const at = jose.decodeJwt(t.access_token);
    const r = (await introspect(t.access_token)).json;
    assert.equal(r.active, true);
    assert.equal(r.iss, idt.iss);
    assert.equal(r.sub, idt.sub);
    assert.equal(r.fhirUser, idt.fhirUser);
    assert.equal(r.exp, at.exp);
    assert.equal(r.exp - at.iat, t.expires_in);
    if (r.token_type !== undefined) assert.equal(r.token_type, 'Bearer');
  });
});

/* ================================================================ */

describe('K. backend services: literal values', () => {
  const cc = async (extra = {}) => postForm(tokenUrl, { grant_type: 'client_credentials', scope: 'system/*.rs',
    client_assertion_type: JWT_BEARER, client_assertion: await assertion(tokenUrl, 'bs', bsKey), ...extra });

  it('K95 client_credentials: token_type "Bearer", integer expires_in <= 300, the scope, no refresh token, no-store', async () => {
    const t = assertTokenResponse(await cc());
    assert.ok(t.expires_in <= 300, `expires_in ${t.expires_in}`);
    assert.equal(t.scope, 'system/*.rs');
    assert.equal('refresh_token' in t, false);
    assert.equal('id_token' in t, false);
    assert.equal('patient' in t, false);
  });

  it('K97 an invalid client_assertion_type: exactly 400 invalid_client (what every G10 version accepts)', async () => {
    assertOAuthError(await cc({ client_assertion_type: 'not_an_assertion_type' }), 400, 'invalid_client');
  });

  it('K96 an invalid grant_type with a valid assertion: exactly 400 unsupported_grant_type', async () => {
    assertOAuthError(await cc({ grant_type: 'not_a_grant_type' }), 400, 'unsupported_grant_type');
  });
});

/* ================================================================ */

describe('B26 a code waits at most ten minutes (a restart with the clock moved forward)', () => {
  let d2;
  before(async () => {
    d2 = await makeTempDir('veranda-checklist-code-');
    await initDataDir(d2);
    await seedDataDir(d2, { patients: 0 });
    await registerClient(d2, { clientId: 'pub', public: true, redirectUris: ['http://127.0.0.1/cb'] });
  });
  after(() => removeDir(d2));

  it('B26 a code issued 62 s ago is refused (it lasts 60 s); one 50 s old, or kept across a restart, still redeems', async () => {
    const port = await freePort();
    let s = await serveFixed({ dataDir: d2, port });
    const codes = [];
    try {
      const b = new Browser(s.baseUrl);
      await signIn(b, 'alice');
      for (let i = 0; i < 3; i++) {
        const a = await authorize(b, s, { clientId: 'pub', redirectUri: CB, scope: SCOPE });
        assert.ok(a.code);
        codes.push(a);
      }
    } finally {
      await s.stop();
    }
    s = await serveFixed({ dataDir: d2, port });
    try {
      const r = await redeem(s, { code: codes[0].code, verifier: codes[0].verifier, redirectUri: CB, clientId: 'pub' });
      assert.equal(r.status, 200, `the baseline: a restart alone does not spend a code (${r.text})`);
    } finally {
      await s.stop();
    }
    s = await serveFixed({ dataDir: d2, port, env: { VERANDA_CLOCK_OFFSET: '50' } });
    try {
      const r = await redeem(s, { code: codes[1].code, verifier: codes[1].verifier, redirectUri: CB, clientId: 'pub' });
      assert.equal(r.status, 200, `50 s (and the seconds the restarts took) is within the 60 s: ${r.text}`);
    } finally {
      await s.stop();
    }
    s = await serveFixed({ dataDir: d2, port, env: { VERANDA_CLOCK_OFFSET: '62' } });
    try {
      const r = await redeem(s, { code: codes[2].code, verifier: codes[2].verifier, redirectUri: CB, clientId: 'pub' });
      assertOAuthError(r, 400, 'invalid_grant');
    } finally {
      await s.stop();
    }
  });
});
