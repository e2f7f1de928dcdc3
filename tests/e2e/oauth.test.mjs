// The authorization server's protocol endpoints against the SMART / OAuth
// conformance checklist (docs: shared/reference/smart-conformance.md; the
// number in each test name is the checklist item).  A certified client,
// openid-client, drives the happy paths; raw requests drive the rest.
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import fs from 'node:fs';
import http from 'node:http';
import path from 'node:path';
import * as jose from 'jose';
import * as oc from 'openid-client';
import { makeTempDir, removeDir, initDataDir, seedDataDir, startServer, requireBinary, freePort, runCli } from './lib/server.mjs';
import {
  Browser, authorize, authzRequest, walk, redeem, postForm, basic, fhirGet, keyPair, assertion,
  registerClient, signIn, accountPage, formFor, field, parseForms, serveFixed, JWT_BEARER, fetchJson, DEMO_PASSWORD,
} from './lib/oauth.mjs';

const SCOPE = 'launch/patient openid fhirUser offline_access patient/*.rs';
const LOOP_CB = 'http://127.0.0.1/cb';          // registered; any port matches (RFC 8252)
const CB = 'http://127.0.0.1:7777/cb';
const CONF_CB = 'https://conf.example/cb';
const CONF_SECRET = 'conf-secret-0123456789';
const APP_ORIGIN = 'https://app.example';

let dir, srv, tokenUrl, keys, jwksServer, jwksHits = 0;
const jwksBy = {}; // path -> { hits, accept }
let pubConfig, confConfig;        // openid-client configurations
let alice;                         // a signed-in browser for alice

const G10_CAPABILITIES = ['launch-standalone', 'launch-ehr', 'client-public', 'client-confidential-symmetric',
  'client-confidential-asymmetric', 'sso-openid-connect', 'context-standalone-patient', 'context-ehr-patient',
  'context-ehr-encounter', 'context-banner', 'context-style', 'permission-offline', 'permission-patient',
  'permission-user', 'authorize-post', 'permission-v1', 'permission-v2'];

before(async () => {
  requireBinary();
  dir = await makeTempDir('veranda-oauth-');
  await initDataDir(dir);
  await seedDataDir(dir, { patients: 0 });
  keys = {
    rs: await keyPair('RS384'), es: await keyPair('ES384'),
    bsRs: await keyPair('RS384'), bsEs: await keyPair('ES384'), bsUrl: await keyPair('ES384'),
    // K 100: two keys under one kid, and one kid for keys of two types
    dupA: await keyPair('ES384', 'dup-kid'), dupB: await keyPair('ES384', 'dup-kid'),
    mixEc: await keyPair('ES384', 'mix-kid'), mixRs: await keyPair('RS384', 'mix-kid'),
    bsNoStore: await keyPair('ES384'), bsShort: await keyPair('ES384'),
  };
  // a client's JWK Set served by URL (K 94); /dup.json and /mix.json break K 100's one-key rule
  // /no-store.json and /short.json (max-age=1) bound how long a set may be kept
  jwksServer = http.createServer((req, res) => {
    jwksHits++;
    jwksBy[req.url] = { hits: (jwksBy[req.url]?.hits || 0) + 1, accept: req.headers.accept };
    const cache = req.url === '/no-store.json' ? 'no-store' : req.url === '/short.json' ? 'max-age=1' : 'max-age=60';
    res.writeHead(200, { 'content-type': 'application/json', 'cache-control': cache });
    const set = req.url === '/dup.json' ? [keys.dupA.publicJwk, keys.dupB.publicJwk]
      : req.url === '/mix.json' ? [keys.mixEc.publicJwk, keys.mixRs.publicJwk]
        : req.url === '/no-store.json' ? [keys.bsNoStore.publicJwk]
          : req.url === '/short.json' ? [keys.bsShort.publicJwk] : [keys.bsUrl.publicJwk];
    res.end(JSON.stringify({ keys: set }));
  });
  await new Promise((r) => jwksServer.listen(0, '127.0.0.1', r));
  const jwksUrl = `http://127.0.0.1:${jwksServer.address().port}/jwks.json`;
  await registerClient(dir, { clientId: 'pub', public: true, redirectUris: [LOOP_CB, 'https://app.example/cb'],
    launchUrl: 'http://127.0.0.1:9/launch', origins: [APP_ORIGIN], name: 'Pub App' });
  await registerClient(dir, { clientId: 'pub2', public: true, redirectUris: ['https://other.example/cb'],
    launchUrl: 'https://other.example/launch' });
  await registerClient(dir, { clientId: 'conf', secret: CONF_SECRET, redirectUris: [CONF_CB] });
  await registerClient(dir, { clientId: 'rs-app', jwks: { keys: [keys.rs.publicJwk] }, redirectUris: ['https://rs.example/cb'] });
  await registerClient(dir, { clientId: 'es-app', jwks: { keys: [keys.es.publicJwk] }, redirectUris: ['https://es.example/cb'] });
  await registerClient(dir, { clientId: 'bs-rs', jwks: { keys: [keys.bsRs.publicJwk] }, scope: 'system/Patient.rs system/Observation.rs' });
  await registerClient(dir, { clientId: 'bs-es', jwks: { keys: [keys.bsEs.publicJwk] }, scope: 'system/*.rs' });
  await registerClient(dir, { clientId: 'bs-url', jwksUrl, scope: 'system/*.rs' });
  await registerClient(dir, { clientId: 'bs-dup', jwksUrl: jwksUrl.replace('/jwks.json', '/dup.json'), scope: 'system/*.rs' });
  await registerClient(dir, { clientId: 'bs-mix', jwksUrl: jwksUrl.replace('/jwks.json', '/mix.json'), scope: 'system/*.rs' });
  await registerClient(dir, { clientId: 'bs-nostore', jwksUrl: jwksUrl.replace('/jwks.json', '/no-store.json'), scope: 'system/*.rs' });
  await registerClient(dir, { clientId: 'bs-short', jwksUrl: jwksUrl.replace('/jwks.json', '/short.json'), scope: 'system/*.rs' });
  srv = await startServer({ dataDir: dir, init: false, auth: false });
  tokenUrl = `${srv.baseUrl}/oauth/token`;
  const insecure = { execute: [oc.allowInsecureRequests] };
  pubConfig = await oc.discovery(new URL(srv.baseUrl), 'pub', undefined, oc.None(), insecure);
  confConfig = await oc.discovery(new URL(srv.baseUrl), 'conf', undefined, oc.ClientSecretBasic(CONF_SECRET), insecure);
  alice = new Browser(srv.baseUrl);
  const r = await signIn(alice, 'alice');
  assert.equal(r.status, 303, 'alice signs in');
});

after(async () => {
  if (srv) await srv.stop();
  if (jwksServer) await new Promise((r) => jwksServer.close(r));
  await removeDir(dir);
});

/* ---- helpers ---- */

// A full standalone launch for alice by the public client; resolves the token response.
async function aliceTokens({ scope = SCOPE, nonce, browser = alice, clientId = 'pub', redirectUri = CB, patient } = {}) {
  const a = await authorize(browser, srv, { clientId, redirectUri, scope, nonce, patient });
  assert.ok(a.code, `a code (got ${a.redirect} after ${a.walk.pages})`);
  const r = await redeem(srv, { code: a.code, verifier: a.verifier, redirectUri, clientId });
  assert.equal(r.status, 200, r.text);
  return r.json;
}

// openid-client's code flow for the public client: resolves { tokens, nonce, state }.
async function ocCodeFlow(config, { redirectUri = CB, scope = SCOPE, browser = alice, post = false } = {}) {
  const verifier = oc.randomPKCECodeVerifier();
  const state = oc.randomState();
  const nonce = oc.randomNonce();
  const params = { redirect_uri: redirectUri, scope, state, nonce, aud: srv.fhirBase,
    code_challenge: await oc.calculatePKCECodeChallenge(verifier), code_challenge_method: 'S256' };
  const url = oc.buildAuthorizationUrl(config, params);
  const start = post ? { url: `${srv.baseUrl}/oauth/authorize`, form: url.searchParams } : url.href;
  const w = await walk(browser, start, {});
  assert.ok(w.redirect, `redirected to the app (${w.pages}: ${w.response.status})`);
  const tokens = await oc.authorizationCodeGrant(config, w.redirect, { pkceCodeVerifier: verifier,
    expectedState: state, expectedNonce: nonce, idTokenExpected: scope.includes('openid') });
  return { tokens, nonce, state, redirect: w.redirect };
}

// An authorization error sent back to the app: error code, the state sent, iss.
function assertErrorRedirect(r, error, state) {
  assert.equal(r.status, 303, `a redirect (got ${r.status}: ${r.text.slice(0, 200)})`);
  const u = new URL(r.location);
  assert.equal(u.searchParams.get('error'), error, r.location);
  assert.equal(u.searchParams.get('code'), null, 'no code');
  assert.equal(u.searchParams.get('state'), state, 'state is echoed (24)');
  assert.equal(u.searchParams.get('iss'), srv.baseUrl, 'iss is sent (25)');
  return u;
}

// An error page, never a redirect.
function assertErrorPage(r) {
  assert.equal(r.status, 400, r.text.slice(0, 200));
  assert.equal(r.location, null, 'no Location');
  assert.match(r.headers.get('content-type'), /^text\/html/);
}

function assertNoStore(r) {
  assert.match(r.headers.get('cache-control') || '', /no-store/);
  assert.equal(r.headers.get('pragma'), 'no-cache');
}

function assertOAuthError(r, status, error) {
  assert.equal(r.status, status, r.text);
  assert.equal(r.json?.error, error, r.text);
  assert.equal(typeof r.json.error_description, 'string', 'error_description (62)');
  assert.match(r.headers.get('content-type'), /^application\/json/);
  assertNoStore(r);
}

async function introspect(token) {
  const r = await postForm(`${srv.baseUrl}/oauth/introspect`, { token }, { auth: basic('conf', CONF_SECRET) });
  assert.equal(r.status, 200, r.text);
  return r.json;
}

/* ================================================================ */

describe('A. discovery', () => {
  it('A1-2 smart-configuration is JSON whatever the Accept header', async () => {
    const bodies = [];
    for (const accept of ['application/json', 'text/html', undefined]) {
      const res = await fetch(`${srv.fhirBase}/.well-known/smart-configuration`, { headers: accept ? { accept } : {} });
      assert.equal(res.status, 200);
      assert.match(res.headers.get('content-type'), /^application\/json/, `Accept: ${accept}`);
      bodies.push(await res.json());
    }
    assert.deepEqual(bodies[1], bodies[0]);
    assert.deepEqual(bodies[2], bodies[0]);
  });

  it('A3,10,13 no discovery document offers implicit, password, plain PKCE or a token response type (security plan 21)', async () => {
    for (const p of ['/fhir/.well-known/smart-configuration', '/.well-known/openid-configuration', '/.well-known/oauth-authorization-server']) {
      const d = (await fetchJson(`${srv.baseUrl}${p}`)).json;
      assert.deepEqual(d.code_challenge_methods_supported, ['S256'], p);
      assert.deepEqual(d.response_types_supported, ['code'], p);
      for (const g of d.grant_types_supported || []) assert.ok(!['implicit', 'password'].includes(g), `${p}: ${g}`);
      assert.ok(!(d.response_modes_supported || []).includes('fragment'), `${p}: no fragment response mode`);
    }
  });

  it('A3-4,6-7 smart-configuration has the required fields, S256 only, absolute URLs', async () => {
    const d = await (await fetch(`${srv.fhirBase}/.well-known/smart-configuration`)).json();
    for (const k of ['authorization_endpoint', 'token_endpoint', 'introspection_endpoint', 'revocation_endpoint',
      'management_endpoint', 'jwks_uri', 'issuer']) {
      assert.equal(typeof d[k], 'string', k);
      assert.ok(new URL(d[k]).protocol.startsWith('http'), `${k} is absolute`);
    }
    assert.ok(Array.isArray(d.capabilities) && d.capabilities.every((c) => typeof c === 'string'));
    assert.ok(d.grant_types_supported.includes('authorization_code'));
    assert.ok(d.grant_types_supported.includes('client_credentials'));
    assert.ok(d.code_challenge_methods_supported.includes('S256'));
    assert.ok(!d.code_challenge_methods_supported.includes('plain'), 'no plain PKCE');
    assert.deepEqual(d.response_types_supported, ['code']);
    assert.ok(d.capabilities.includes('sso-openid-connect'));
    for (const m of ['client_secret_basic', 'private_key_jwt']) assert.ok(d.token_endpoint_auth_methods_supported.includes(m), m);
    for (const a of ['RS384', 'ES384']) assert.ok(d.token_endpoint_auth_signing_alg_values_supported.includes(a), a);
    assert.ok(Array.isArray(d.scopes_supported) && d.scopes_supported.includes('openid'));
  });

  it('A5 capabilities include every (g)(10) capability', async () => {
    const d = await (await fetch(`${srv.fhirBase}/.well-known/smart-configuration`)).json();
    for (const c of G10_CAPABILITIES) assert.ok(d.capabilities.includes(c), c);
  });

  it('A6 every advertised scope can be granted', async () => {
    const d = await (await fetch(`${srv.fhirBase}/.well-known/smart-configuration`)).json();
    for (const sc of d.scopes_supported) {
      if (sc === 'launch') continue; // needs an EHR launch: section C
      if (sc.startsWith('system/')) {
        const r = await postForm(tokenUrl, { grant_type: 'client_credentials', scope: sc, client_assertion_type: JWT_BEARER,
          client_assertion: await assertion(tokenUrl, 'bs-es', keys.bsEs) });
        assert.equal(r.status, 200, `${sc}: ${r.text}`);
        continue;
      }
      const a = await authorize(alice, srv, { clientId: 'pub', redirectUri: CB, scope: `launch/patient ${sc}` });
      assert.ok(a.code, `${sc}: ${a.error}`);
      const t = await redeem(srv, { code: a.code, verifier: a.verifier, redirectUri: CB, clientId: 'pub' });
      assert.equal(t.status, 200);
      assert.ok(t.json.scope.split(' ').includes(sc), `${sc} granted: ${t.json.scope}`);
    }
  });

  it('A6 every advertised endpoint is served', async () => {
    const d = await (await fetch(`${srv.baseUrl}/.well-known/openid-configuration`)).json();
    const smart = await (await fetch(`${srv.fhirBase}/.well-known/smart-configuration`)).json();
    const post = { method: 'POST', headers: { 'content-type': 'application/x-www-form-urlencoded' }, body: '', redirect: 'manual' };
    const checks = [[d.authorization_endpoint, {}], [d.token_endpoint, post], [d.introspection_endpoint, post],
      [d.revocation_endpoint, post], [d.userinfo_endpoint, {}], [d.jwks_uri, {}], [smart.management_endpoint, { redirect: 'manual' }]];
    if (d.registration_endpoint) checks.push([d.registration_endpoint, { ...post, headers: { 'content-type': 'application/json' }, body: '{}' }]);
    for (const [url, init] of checks) {
      const res = await fetch(url, init);
      await res.arrayBuffer();
      assert.ok(![404, 405].includes(res.status) && res.status < 500, `${url}: ${res.status}`);
    }
  });

  it('A6 the end_session_endpoint answers GET (OIDC RP-Initiated Logout) with a sign-out form', async () => {
    const d = await (await fetch(`${srv.baseUrl}/.well-known/openid-configuration`)).json();
    const b = new Browser(srv.baseUrl);
    await signIn(b, 'alice');
    const r = await b.get(d.end_session_endpoint);
    assert.equal(r.status, 200, `GET ${d.end_session_endpoint}: ${r.status}`);
    assert.match(r.text, /<form method="post" action="\/signout"/);
    assert.match(r.text, /name="csrf" value="[^"]+"/);
  });

  it('A8 discovery documents and /fhir/metadata answer CORS for any origin', async () => {
    for (const p of ['/fhir/.well-known/smart-configuration', '/.well-known/openid-configuration',
      '/.well-known/oauth-authorization-server', '/oauth/jwks', '/fhir/metadata']) {
      const res = await fetch(srv.baseUrl + p, { headers: { origin: 'https://tester.example' } });
      await res.arrayBuffer();
      assert.equal(res.status, 200, p);
      const acao = res.headers.get('access-control-allow-origin');
      assert.ok(acao === '*' || acao === 'https://tester.example', `${p}: ${acao}`);
    }
  });

  it('A9 /fhir/metadata is readable without a token and names SMART-on-FHIR', async () => {
    const r = await fhirGet(srv, 'metadata', '');
    assert.equal(r.status, 200);
    assert.equal(r.json.resourceType, 'CapabilityStatement');
  });

  it('A9 CapabilityStatement carries rest.security with the oauth-uris extension', async () => {
    const cs = (await fhirGet(srv, 'metadata', '')).json;
    const conf = await (await fetch(`${srv.fhirBase}/.well-known/smart-configuration`)).json();
    const sec = cs.rest[0].security;
    assert.ok(sec, 'rest.security');
    assert.ok(sec.service.some((s) => s.coding.some((c) => c.code === 'SMART-on-FHIR')));
    const ext = sec.extension.find((e) => e.url === 'http://fhir-registry.smarthealthit.org/StructureDefinition/oauth-uris');
    const v = Object.fromEntries(ext.extension.map((e) => [e.url, e.valueUri]));
    assert.equal(v.authorize, conf.authorization_endpoint);
    assert.equal(v.token, conf.token_endpoint);
    assert.equal(v.revoke, conf.revocation_endpoint);
    assert.equal(v.introspect, conf.introspection_endpoint);
    assert.equal(v.manage, conf.management_endpoint);
  });

  it('A10 {issuer}/.well-known/openid-configuration has the OIDC fields and RS256', async () => {
    const res = await fetch(`${srv.baseUrl}/.well-known/openid-configuration`, { headers: { accept: 'text/html' } });
    assert.equal(res.status, 200);
    assert.match(res.headers.get('content-type'), /^application\/json/);
    const d = await res.json();
    for (const k of ['issuer', 'authorization_endpoint', 'token_endpoint', 'jwks_uri']) assert.equal(typeof d[k], 'string', k);
    assert.ok(d.response_types_supported.includes('code'));
    assert.ok(Array.isArray(d.subject_types_supported) && d.subject_types_supported.length);
    assert.ok(d.id_token_signing_alg_values_supported.includes('RS256'));
    assert.ok(d.code_challenge_methods_supported.includes('S256') && !d.code_challenge_methods_supported.includes('plain'));
  });

  it('A11,13 the issuer is the same in all three documents and openid-client accepts it', async () => {
    const docs = await Promise.all(['/fhir/.well-known/smart-configuration', '/.well-known/openid-configuration',
      '/.well-known/oauth-authorization-server'].map(async (p) => (await fetch(srv.baseUrl + p)).json()));
    for (const d of docs) {
      assert.equal(d.issuer, srv.baseUrl);
      assert.equal(d.authorization_endpoint, docs[0].authorization_endpoint);
      assert.equal(d.token_endpoint, docs[0].token_endpoint);
    }
    assert.equal(docs[2].authorization_response_iss_parameter_supported, true, 'RFC 9207 flag');
    assert.equal(docs[1].authorization_response_iss_parameter_supported, true);
    // openid-client checks the issuer of both discovery algorithms
    assert.equal(pubConfig.serverMetadata().issuer, srv.baseUrl);
    const c2 = await oc.discovery(new URL(srv.baseUrl), 'pub', undefined, oc.None(),
      { algorithm: 'oauth2', execute: [oc.allowInsecureRequests] });
    assert.equal(c2.serverMetadata().issuer, srv.baseUrl);
  });

  it('A12 the JWKS has an RSA key with kid, n and e, and no private members', async () => {
    const d = await (await fetch(`${srv.baseUrl}/.well-known/openid-configuration`)).json();
    const res = await fetch(d.jwks_uri);
    assert.equal(res.status, 200);
    const jwks = await res.json();
    const rsa = jwks.keys.filter((k) => k.kty === 'RSA');
    assert.ok(rsa.length >= 1);
    for (const k of rsa) {
      assert.equal(typeof k.kid, 'string');
      assert.equal(typeof k.n, 'string');
      assert.equal(typeof k.e, 'string');
    }
    for (const k of jwks.keys) for (const p of ['d', 'p', 'q', 'dp', 'dq', 'qi', 'k']) assert.ok(!(p in k), `no ${p}`);
  });
});

/* ================================================================ */

describe('B. authorization endpoint', () => {
  it('B14,25 GET: openid-client gets a code with the same state and iss', async () => {
    const { tokens, state, redirect } = await ocCodeFlow(pubConfig);
    assert.equal(redirect.searchParams.get('state'), state);
    assert.equal(redirect.searchParams.get('iss'), srv.baseUrl);
    assert.equal(tokens.patient, 'alice');
  });

  it('B15 POST with a form body works like GET', async () => {
    const { tokens, redirect } = await ocCodeFlow(pubConfig, { post: true });
    assert.equal(redirect.searchParams.get('iss'), srv.baseUrl);
    assert.ok(tokens.access_token);
    // and the raw form POST from a cross-site page (no cookie yet) reaches the sign-in page
    const b = new Browser(srv.baseUrl);
    const req = authzRequest(srv, { clientId: 'pub', redirectUri: CB, scope: SCOPE });
    const r = await b.request('/oauth/authorize', { method: 'POST', form: req.params, headers: { origin: 'https://inferno.example' } });
    assert.equal(r.status, 200);
    assert.ok(formFor(r.text, '/oauth/login'), 'the sign-in page');
  });

  it('B16 a redirect_uri that is not registered gets an error page, not a redirect', async () => {
    for (const uri of ['https://evil.example/cb', 'https://app.example/cb/', 'https://app.example/cbx', 'https://app.example/Cb',
      'http://app.example/cb', 'http://localhost:7777/cb', '']) {
      const req = authzRequest(srv, { clientId: 'pub', redirectUri: uri, scope: SCOPE });
      const r = await alice.get(req.url);
      assertErrorPage(r);
      assert.ok(!r.text.includes('code='), uri);
    }
    // loopback IP literal: any port (RFC 8252 7.3), same path
    const ok = authzRequest(srv, { clientId: 'pub', redirectUri: 'http://127.0.0.1:51234/cb', scope: SCOPE });
    const w = await walk(alice, ok.url, {});
    assert.ok(w.redirect && w.redirect.searchParams.get('code'), 'another loopback port works');
  });

  it('B17 a missing or unknown client_id gets an error page, not a redirect', async () => {
    for (const cid of [undefined, '', 'no-such-app']) {
      const req = authzRequest(srv, { clientId: cid, redirectUri: CB, scope: SCOPE });
      assertErrorPage(await alice.get(req.url));
    }
    // a repeated client_id too
    const req = authzRequest(srv, { clientId: 'pub', redirectUri: CB, scope: SCOPE });
    assertErrorPage(await alice.get(`${req.url}&client_id=pub2`));
  });

  it('B18,24,25 bad response_type, missing scope, repeated parameters: error redirect with state and iss', async () => {
    let req = authzRequest(srv, { clientId: 'pub', redirectUri: CB, scope: SCOPE, extra: { response_type: 'token' } });
    assertErrorRedirect(await alice.get(req.url), 'unsupported_response_type', req.state);
    req = authzRequest(srv, { clientId: 'pub', redirectUri: CB, scope: SCOPE, extra: { response_type: undefined } });
    assertErrorRedirect(await alice.get(req.url), 'invalid_request', req.state);
    req = authzRequest(srv, { clientId: 'pub', redirectUri: CB, scope: undefined });
    assertErrorRedirect(await alice.get(req.url), 'invalid_request', req.state);
    req = authzRequest(srv, { clientId: 'pub', redirectUri: CB, scope: '' });
    assertErrorRedirect(await alice.get(req.url), 'invalid_request', req.state);
    req = authzRequest(srv, { clientId: 'pub', redirectUri: CB, scope: SCOPE });
    assertErrorRedirect(await alice.get(`${req.url}&scope=openid`), 'invalid_request', req.state);
    // a repeated state: which one to echo cannot be known, so no redirect at all
    req = authzRequest(srv, { clientId: 'pub', redirectUri: CB, scope: SCOPE });
    assertErrorPage(await alice.get(`${req.url}&state=other`));
    // unknown parameters are ignored
    req = authzRequest(srv, { clientId: 'pub', redirectUri: CB, scope: SCOPE, extra: { foo: 'bar', display: 'page' } });
    const w = await walk(alice, req.url, {});
    assert.ok(w.redirect.searchParams.get('code'), 'unknown parameters ignored');
  });

  it('B19-20 PKCE: a missing challenge, method plain or no method: invalid_request', async () => {
    for (const extra of [{ code_challenge: undefined, code_challenge_method: undefined }, { code_challenge: undefined },
      { code_challenge_method: 'plain' }, { code_challenge_method: undefined }, { code_challenge: 'short' },
      { code_challenge_method: 's256' }]) {
      const req = authzRequest(srv, { clientId: 'pub', redirectUri: CB, scope: SCOPE, extra });
      assertErrorRedirect(await alice.get(req.url), 'invalid_request', req.state);
    }
  });

  it('B21-22 aud missing or not this FHIR base: no code; the FHIR base (or a trailing slash) works', async () => {
    for (const aud of [undefined, 'https://inferno.healthit.gov/invalid_aud', `${srv.baseUrl}`, `${srv.fhirBase}x`,
      `${srv.fhirBase}/Patient`, srv.fhirBase.replace('127.0.0.1', 'localhost')]) {
      const req = authzRequest(srv, { clientId: 'pub', redirectUri: CB, scope: SCOPE, extra: { aud } });
      const w = await walk(alice, req.url, {});
      assert.ok(w.redirect, `aud ${aud}: redirect or page`);
      assert.equal(w.redirect.searchParams.get('code'), null, `no code for aud ${aud}`);
      assert.equal(w.redirect.searchParams.get('error'), 'invalid_request');
      assert.equal(w.redirect.searchParams.get('state'), req.state);
    }
    const req = authzRequest(srv, { clientId: 'pub', redirectUri: CB, scope: SCOPE, extra: { aud: `${srv.fhirBase}/` } });
    assert.ok((await walk(alice, req.url, {})).redirect.searchParams.get('code'));
  });

  it('B21-22 resource (RFC 8707) stands in for a missing aud: the FHIR base gets a code; another URL invalid_request with state and iss', async () => {
    const ok = authzRequest(srv, { clientId: 'pub', redirectUri: CB, scope: SCOPE, extra: { aud: undefined, resource: srv.fhirBase } });
    assert.equal(ok.params.get('aud'), null, 'no aud is sent');
    const w = await walk(alice, ok.url, {});
    assert.ok(w.redirect, `redirected to the app (${w.pages})`);
    assert.equal(w.redirect.searchParams.get('error'), null, w.redirect.href);
    assert.ok(w.redirect.searchParams.get('code'), `a code for resource=${srv.fhirBase}`);
    assert.equal(w.redirect.searchParams.get('state'), ok.state);
    const bad = authzRequest(srv, { clientId: 'pub', redirectUri: CB, scope: SCOPE,
      extra: { aud: undefined, resource: 'https://inferno.healthit.gov/invalid_aud' } });
    assertErrorRedirect(await alice.get(bad.url), 'invalid_request', bad.state);
    // beside a good aud, a resource this server cannot issue for: invalid_target (RFC 8707 2)
    const both = authzRequest(srv, { clientId: 'pub', redirectUri: CB, scope: SCOPE, extra: { resource: 'https://evil.example/fhir' } });
    assert.equal(both.params.get('aud'), srv.fhirBase);
    assertErrorRedirect(await alice.get(both.url), 'invalid_target', both.state);
    const same = authzRequest(srv, { clientId: 'pub', redirectUri: CB, scope: SCOPE, extra: { resource: srv.fhirBase } });
    const ws = await walk(alice, same.url, {});
    assert.ok(ws.redirect?.searchParams.get('code'), `aud and the same resource: a code (${ws.redirect?.href})`);
  });

  it('B23-25 Deny: access_denied with state and iss', async () => {
    const req = authzRequest(srv, { clientId: 'pub', redirectUri: CB, scope: SCOPE });
    const w = await walk(alice, req.url, { action: 'deny' });
    assert.ok(w.pages.includes('consent'));
    assertErrorRedirect(w.response, 'access_denied', req.state);
  });

  it('B24 an error redirect without a state sends none', async () => {
    const req = authzRequest(srv, { clientId: 'pub', redirectUri: CB, scope: SCOPE, extra: { state: undefined, response_type: 'id_token' } });
    const r = await alice.get(req.url);
    const u = new URL(r.location);
    assert.equal(u.searchParams.get('error'), 'unsupported_response_type');
    assert.equal(u.searchParams.has('state'), false);
    assert.equal(u.searchParams.get('iss'), srv.baseUrl);
  });

  it('B25 prompt=none: login_required / consent_required redirects with state and iss', async () => {
    const b = new Browser(srv.baseUrl);
    let req = authzRequest(srv, { clientId: 'pub', redirectUri: CB, scope: SCOPE, extra: { prompt: 'none' } });
    assertErrorRedirect(await b.get(req.url), 'login_required', req.state);
    // erin never allowed this app: nothing to answer silently
    const erin = new Browser(srv.baseUrl);
    await signIn(erin, 'erin');
    req = authzRequest(srv, { clientId: 'pub', redirectUri: CB, scope: SCOPE, extra: { prompt: 'none' } });
    assertErrorRedirect(await erin.get(req.url), 'consent_required', req.state);
  });

  it('B25 prompt=none after an allowed grant: a code without any page; none once the grant is removed', async () => {
    const b = new Browser(srv.baseUrl);
    await signIn(b, 'frank');
    const first = await authorize(b, srv, { clientId: 'pub', redirectUri: CB, scope: SCOPE });
    assert.ok(first.code, 'the first authorization (with consent) gives a code');
    let req = authzRequest(srv, { clientId: 'pub', redirectUri: CB, scope: SCOPE, extra: { prompt: 'none' } });
    let r = await b.get(req.url);
    assert.equal(r.status, 303);
    let u = new URL(r.headers.get('location'));
    assert.ok(u.searchParams.get('code'), `no code: ${u}`);
    assert.equal(u.searchParams.get('state'), req.state);
    const t = await redeem(srv, { code: u.searchParams.get('code'), verifier: req.verifier, redirectUri: CB, clientId: 'pub' });
    assert.equal(t.status, 200, t.text);
    // a wider request than was allowed is not answered silently
    req = authzRequest(srv, { clientId: 'pub', redirectUri: CB, scope: `${SCOPE} user/Practitioner.cruds`, extra: { prompt: 'none' } });
    noSilentCode(await b.get(req.url), req.state);
    // revoke every grant (sign out everywhere ends them): then silence gives nothing
    const acct = await b.get(`${srv.baseUrl}/account`);
    const csrf = acct.text.match(/name="csrf" value="([^"]+)"/)[1];
    await b.post(`${srv.baseUrl}/signout`, { csrf, everywhere: '1' });
    await signIn(b, 'frank');
    req = authzRequest(srv, { clientId: 'pub', redirectUri: CB, scope: SCOPE, extra: { prompt: 'none' } });
    noSilentCode(await b.get(req.url), req.state);
  });

  /* prompt=none that cannot be answered silently: an error redirect without a code
     (frank acts for two patients, so the picker would be needed first: interaction_required) */
  function noSilentCode(r, state) {
    assert.equal(r.status, 303);
    const u = new URL(r.headers.get('location'));
    assert.equal(u.searchParams.has('code'), false, `a code was issued: ${u}`);
    assert.ok(['consent_required', 'interaction_required'].includes(u.searchParams.get('error')), String(u));
    assert.equal(u.searchParams.get('state'), state);
  }

  it('B14 max_age=0 and prompt=login ask for a fresh sign-in, then issue a code', async () => {
    for (const extra of [{ max_age: '0' }, { prompt: 'login' }]) {
      const a = await authorize(alice, srv, { clientId: 'pub', redirectUri: CB, scope: SCOPE, extra });
      assert.deepEqual(a.walk.pages, ['login', 'consent'], JSON.stringify(extra));
      assert.ok(a.code, `a code with ${JSON.stringify(extra)}`);
    }
    // a recent enough sign-in needs none
    const a = await authorize(alice, srv, { clientId: 'pub', redirectUri: CB, scope: SCOPE, extra: { max_age: '3600' } });
    assert.deepEqual(a.walk.pages, ['consent']);
    assert.ok(a.code);
  });

  it('B26 codes carry at least 128 random bits and are single use', async () => {
    const codes = new Set();
    for (let i = 0; i < 3; i++) {
      const a = await authorize(alice, srv, { clientId: 'pub', redirectUri: CB, scope: SCOPE });
      assert.match(a.code, /^[A-Za-z0-9_-]{22,}$/, 'base64url, >= 128 bits');
      codes.add(a.code);
      if (i === 0) {
        const r1 = await redeem(srv, { code: a.code, verifier: a.verifier, redirectUri: CB, clientId: 'pub' });
        assert.equal(r1.status, 200);
        const r2 = await redeem(srv, { code: a.code, verifier: a.verifier, redirectUri: CB, clientId: 'pub' });
        assertOAuthError(r2, 400, 'invalid_grant');
      }
    }
    assert.equal(codes.size, 3);
    // short-lived: no setting lets a code wait longer than ten minutes
    const long = await runCli(['serve', '--data', dir, '--listen', '127.0.0.1:1', '--code-ttl', '601']);
    assert.notEqual(long.code, 0, 'a code lifetime over 600 s is refused');
    assert.match(long.stderr, /code-ttl|code_ttl/);
  });

  it('B26 the authorization endpoint answers no cross-origin reads; its pages leak no Referer (security plan 26)', async () => {
    const evil = { origin: 'https://evil.example' };
    const req = authzRequest(srv, { clientId: 'pub', redirectUri: CB, scope: SCOPE });
    const b = new Browser(srv.baseUrl);
    let r = await b.get(req.url, evil);
    assert.equal(r.headers.get('access-control-allow-origin'), null, 'GET /oauth/authorize');
    assert.equal(r.headers.get('referrer-policy'), 'no-referrer');
    r = await b.post('/oauth/authorize', req.params, evil);
    assert.equal(r.headers.get('access-control-allow-origin'), null, 'POST /oauth/authorize');
    const w = await walk(alice, req.url, { stopAt: 'consent' });
    assert.equal(w.response.headers.get('referrer-policy'), 'no-referrer', 'the consent page');
    assert.equal(w.response.headers.get('access-control-allow-origin'), null);
  });

  it('B27 sign-in and consent pages cannot be framed; the credentials POST answers 303', async () => {
    const noFrame = (r, what) => {
      const csp = r.headers.get('content-security-policy') || '';
      const xfo = r.headers.get('x-frame-options') || '';
      assert.ok(/frame-ancestors 'none'/.test(csp) || /^deny$/i.test(xfo), `${what}: CSP ${csp} / XFO ${xfo}`);
    };
    const b = new Browser(srv.baseUrl);
    noFrame(await b.get('/signin'), '/signin');
    const req = authzRequest(srv, { clientId: 'pub', redirectUri: CB, scope: SCOPE });
    const w = await walk(b, req.url, { stopAt: 'login' });
    noFrame(w.response, 'sign-in page of a request');
    const f = formFor(w.response.text, '/oauth/login');
    const body = new URLSearchParams(f.fields);
    body.set('username', 'alice');
    body.set('password', 'veranda-demo');
    const r = await b.post('/oauth/login', body);
    assert.equal(r.status, 303, 'credentials POST answers 303');
    const c = await walk(b, r.location, { stopAt: 'consent' });
    assert.deepEqual(c.pages, ['consent']);
    noFrame(c.response, 'consent page');
  });

  it('B28 registration refuses http redirect URIs except loopback', async () => {
    for (const uri of ['http://app.example/cb', 'http://10.0.0.1/cb', 'http://127.0.0.1.nip.io/cb', 'ftp://app.example/cb',
      'https://app.example/cb#frag', 'app.example/cb']) {
      const r = await registerClient(dir, { clientId: `bad-${crypto.randomBytes(3).toString('hex')}`, public: true,
        redirectUris: [uri], expectFail: true });
      assert.notEqual(r.code, 0, `${uri} refused`);
    }
    for (const uri of ['http://127.0.0.1:8000/cb', 'http://[::1]/cb', 'http://localhost:3000/cb', 'https://app.example/cb']) {
      const r = await registerClient(dir, { clientId: `ok-${crypto.randomBytes(3).toString('hex')}`, public: true,
        redirectUris: [uri], expectFail: true });
      assert.equal(r.code, 0, `${uri} accepted: ${r.stderr}`);
    }
  });
});

/* ================================================================ */

describe('C. EHR launch', () => {
  let dr, encounter;

  before(async () => {
    dr = new Browser(srv.baseUrl);
    assert.equal((await signIn(dr, 'drsmith')).status, 303);
    const t = await aliceTokens();
    const r = await fhirGet(srv, 'Encounter?patient=alice&_count=1', t.access_token);
    assert.equal(r.status, 200);
    encounter = r.json.entry?.[0]?.resource?.id;
    assert.ok(encounter, 'alice has an encounter');
  });

  async function launch(browser, clientId, patient = 'alice', enc) {
    const acc = await accountPage(browser);
    assert.ok(acc.csrf, 'account page csrf');
    const form = { client_id: clientId, patient, csrf: acc.csrf };
    if (enc) form.encounter = enc;
    return browser.post('/oauth/launch', form);
  }

  it('C29 a clinician launch sends the browser to the launch URL with iss and launch', async () => {
    const r = await launch(dr, 'pub', 'alice');
    assert.equal(r.status, 303);
    const u = new URL(r.location);
    assert.equal(u.origin + u.pathname, 'http://127.0.0.1:9/launch');
    assert.equal(u.searchParams.get('iss'), srv.fhirBase, 'iss is the FHIR base exactly');
    assert.match(u.searchParams.get('launch'), /^[A-Za-z0-9_-]{22,}$/);
  });

  it('C30,32-34 scope launch + launch param: the token carries patient and encounter', async () => {
    const r = await launch(dr, 'pub', 'alice', encounter);
    const lid = new URL(r.location).searchParams.get('launch');
    const scope = 'launch openid fhirUser offline_access patient/*.rs';
    const a = await authorize(dr, srv, { clientId: 'pub', redirectUri: CB, scope, launch: lid });
    assert.ok(a.code, `code (${a.walk.pages} ${a.error})`);
    assert.equal(a.state, a.sentState);
    const t = await redeem(srv, { code: a.code, verifier: a.verifier, redirectUri: CB, clientId: 'pub' });
    assert.equal(t.status, 200, t.text);
    assert.equal(t.json.patient, 'alice');
    assert.equal(t.json.encounter, encounter);
    // Veranda's launch replaces its own page with the app: nothing else shows whose record is open
    assert.equal(t.json.need_patient_banner, true, 'the app must show the banner');
    assert.equal(typeof t.json.smart_style_url, 'string');
    assert.equal((await fhirGet(srv, 'Patient/alice', t.json.access_token)).status, 200);
    assert.equal((await fhirGet(srv, `Encounter/${encounter}`, t.json.access_token)).status, 200);
    // introspection names the launch context too (J91)
    const ir = await postForm(`${srv.baseUrl}/oauth/introspect`, { token: t.json.access_token }, { auth: basic('conf', CONF_SECRET) });
    assert.equal(ir.json.active, true, ir.text);
    assert.equal(ir.json.patient, 'alice');
    assert.equal(ir.json.encounter, encounter);
    // the clinician is the user: fhirUser names the Practitioner, readable with the token (F66)
    const idt = jose.decodeJwt(t.json.id_token);
    assert.equal(idt.sub, 'drsmith');
    assert.equal(idt.fhirUser, `${srv.fhirBase}/Practitioner/drsmith`);
    const pr = await fetch(idt.fhirUser, { headers: { authorization: `Bearer ${t.json.access_token}` } });
    assert.equal(pr.status, 200);
    assert.equal((await pr.json()).resourceType, 'Practitioner');
    // without an encounter: patient only
    const r2 = await launch(dr, 'pub', 'alice');
    const a2 = await authorize(dr, srv, { clientId: 'pub', redirectUri: CB, scope, launch: new URL(r2.location).searchParams.get('launch') });
    const t2 = await redeem(srv, { code: a2.code, verifier: a2.verifier, redirectUri: CB, clientId: 'pub' });
    assert.equal(t2.json.patient, 'alice');
    assert.equal(t2.json.encounter, undefined);
  });

  it('C32,37 an EHR launch grants exactly what it asked: launch, openid, fhirUser, offline_access, patient/Patient.rs without launch/patient, or user/ scopes', async () => {
    const grant = async (scope) => {
      const r = await launch(dr, 'pub', 'alice');
      const a = await authorize(dr, srv, { clientId: 'pub', redirectUri: CB, scope, launch: new URL(r.location).searchParams.get('launch') });
      assert.ok(a.code, `code for ${scope} (${a.walk.pages} ${a.error})`);
      const t = await redeem(srv, { code: a.code, verifier: a.verifier, redirectUri: CB, clientId: 'pub' });
      assert.equal(t.status, 200, t.text);
      assert.deepEqual(t.json.scope.split(' ').sort(), scope.split(' ').sort(), 'the granted scope, exactly');
      assert.equal(typeof t.json.refresh_token, 'string', 'offline_access gives a refresh token');
      return t.json;
    };
    // a patient-level Patient scope without launch/patient: the launch's patient is the context
    const p = await grant('launch openid fhirUser offline_access patient/Patient.rs');
    assert.equal(p.patient, 'alice');
    assert.equal((await fhirGet(srv, 'Patient/alice', p.access_token)).status, 200);
    assert.equal((await fhirGet(srv, 'Patient/bob-self', p.access_token)).status, 404, 'confined to the launch\'s patient');
    assert.equal((await fhirGet(srv, 'Observation?patient=alice', p.access_token)).status, 403, 'no Observation scope');
    // user/ scopes (a clinician's app): the clinician's own rights, the launch's patient as context
    const u = await grant('launch openid fhirUser offline_access user/*.rs');
    assert.equal(u.patient, 'alice');
    assert.equal((await fhirGet(srv, 'Patient/bob-self', u.access_token)).status, 200, 'a clinician reads any record');
  });

  it('C31 an unknown, used, other-client or other-user launch gives no code', async () => {
    const scope = 'launch openid patient/*.rs';
    // unknown
    let a = await authorize(dr, srv, { clientId: 'pub', redirectUri: CB, scope, launch: crypto.randomBytes(32).toString('base64url') });
    assert.equal(a.code, null);
    assert.equal(a.error, 'invalid_request');
    assert.equal(a.state, a.sentState);
    // missing
    a = await authorize(dr, srv, { clientId: 'pub', redirectUri: CB, scope });
    assert.equal(a.code, null);
    assert.equal(a.error, 'invalid_request');
    // used
    let lid = new URL((await launch(dr, 'pub')).location).searchParams.get('launch');
    a = await authorize(dr, srv, { clientId: 'pub', redirectUri: CB, scope, launch: lid });
    assert.ok(a.code);
    a = await authorize(dr, srv, { clientId: 'pub', redirectUri: CB, scope, launch: lid });
    assert.equal(a.code, null, 'a launch is single use');
    assert.equal(a.error, 'invalid_request');
    // another client's launch
    lid = new URL((await launch(dr, 'pub2')).location).searchParams.get('launch');
    a = await authorize(dr, srv, { clientId: 'pub', redirectUri: CB, scope, launch: lid });
    assert.equal(a.code, null, 'a launch for another app');
    assert.equal(a.error, 'invalid_request');
    // made for drsmith, used by alice's browser
    lid = new URL((await launch(dr, 'pub')).location).searchParams.get('launch');
    a = await authorize(alice, srv, { clientId: 'pub', redirectUri: CB, scope, launch: lid });
    assert.equal(a.code, null, 'a launch for another user');
  });

  it('C29 patients cannot launch apps', async () => {
    const r = await launch(alice, 'pub', 'bob-self');
    assert.equal(r.status, 403);
    assert.equal(r.location, null);
  });
});

/* ================================================================ */

describe('D/E. token endpoint', () => {
  it('D43,44 a standalone launch/encounter is accepted and ignored (no encounter to give); no fhirContext unless asked', async () => {
    const a = await authorize(alice, srv, { clientId: 'pub', redirectUri: CB, scope: `${SCOPE} launch/encounter` });
    assert.ok(a.code, `no code: ${a.error}`);
    const t = await redeem(srv, { code: a.code, verifier: a.verifier, redirectUri: CB, clientId: 'pub' });
    assert.equal(t.status, 200, t.text);
    assert.equal(t.json.patient, 'alice');
    assert.equal('encounter' in t.json, false, 'a standalone launch has no encounter');
    assert.equal('fhirContext' in t.json, false, 'fhirContext is only sent when asked for');
    assert.equal((await fhirGet(srv, 'Patient/alice', t.json.access_token)).status, 200);
  });

  it('E47,51-53 token response: fields, types, no-store', async () => {
    const a = await authorize(alice, srv, { clientId: 'pub', redirectUri: CB, scope: SCOPE });
    const r = await redeem(srv, { code: a.code, verifier: a.verifier, redirectUri: CB, clientId: 'pub' });
    assert.equal(r.status, 200);
    assert.match(r.headers.get('content-type'), /^application\/json/);
    assertNoStore(r);
    const t = r.json;
    assert.equal(typeof t.access_token, 'string');
    assert.match(t.token_type, /^bearer$/i);
    assert.equal(typeof t.expires_in, 'number');
    assert.ok(t.expires_in > 0 && t.expires_in <= 3600, `expires_in ${t.expires_in}`);
    assert.equal(typeof t.scope, 'string');
    assert.deepEqual(t.scope.split(' ').sort(), SCOPE.split(' ').sort());
    assert.equal(typeof t.refresh_token, 'string');
    assert.equal(typeof t.id_token, 'string');
    assert.equal(t.patient, 'alice', 'patient is an id, not a reference');
    assert.equal(t.need_patient_banner, true);
    const style = await fetch(t.smart_style_url);
    assert.equal(style.status, 200, 'smart_style_url without a token');
    assert.equal(typeof (await style.json()), 'object');
    assert.equal((await fhirGet(srv, `Patient/${t.patient}`, t.access_token)).status, 200);
  });

  it('D39 the consent screen grants a subset: types left unticked and offline access declined', async () => {
    const scope = 'launch/patient openid fhirUser offline_access patient/Patient.rs patient/Observation.rs patient/Condition.rs';
    const a = await authorize(alice, srv, { clientId: 'pub', redirectUri: CB, scope, consent: (form, body) => {
      body.delete('type');
      body.append('type', 'Patient');
      body.append('type', 'Observation');
      body.delete('offline');
    } });
    const t = (await redeem(srv, { code: a.code, verifier: a.verifier, redirectUri: CB, clientId: 'pub' })).json;
    assert.deepEqual(t.scope.split(' ').sort(), ['fhirUser', 'launch/patient', 'openid', 'patient/Observation.rs', 'patient/Patient.rs']);
    assert.equal(t.refresh_token, undefined, 'offline access declined');
    assert.equal((await fhirGet(srv, 'Observation?patient=alice&_count=1', t.access_token)).status, 200);
    assert.equal((await fhirGet(srv, 'Condition?patient=alice&_count=1', t.access_token)).status, 403);
  });

  it('D40 category choices replace the resource-level scope', async () => {
    const lab = 'http://terminology.hl7.org/CodeSystem/observation-category|laboratory';
    const scope = 'launch/patient openid fhirUser patient/Patient.rs patient/Observation.rs';
    const a = await authorize(alice, srv, { clientId: 'pub', redirectUri: CB, scope, consent: (form, body) => {
      assert.ok(form.checkboxes.some((c) => c.name === 'cat' && c.value === `Observation ${lab}`), 'the laboratory category is offered');
      body.append('cat', `Observation ${lab}`);
    } });
    const t = (await redeem(srv, { code: a.code, verifier: a.verifier, redirectUri: CB, clientId: 'pub' })).json;
    const got = t.scope.split(' ');
    assert.ok(!got.includes('patient/Observation.rs'), t.scope);
    assert.ok(got.includes(`patient/Observation.rs?category=${lab}`), t.scope);
    assert.ok(got.includes('patient/Patient.rs'));
    const r = await fhirGet(srv, 'Observation?patient=alice&_count=50', t.access_token);
    assert.equal(r.status, 200);
    for (const e of r.json.entry || []) {
      const codes = (e.resource.category || []).flatMap((c) => (c.coding || []).map((x) => `${x.system}|${x.code}`));
      assert.ok(codes.includes(lab), `only laboratory results (${codes})`);
    }
  });

  it('E48 a public client with an empty client_secret is still public', async () => {
    const a = await authorize(alice, srv, { clientId: 'pub', redirectUri: CB, scope: SCOPE });
    const r = await redeem(srv, { code: a.code, verifier: a.verifier, redirectUri: CB, clientId: 'pub', extra: { client_secret: '' } });
    assert.equal(r.status, 200, r.text);
  });

  it('E49 a confidential client with client_secret_basic (openid-client)', async () => {
    const { tokens } = await ocCodeFlow(confConfig, { redirectUri: CONF_CB });
    assert.equal(tokens.patient, 'alice');
    assert.ok(tokens.refresh_token);
    // without its secret it cannot redeem
    const a = await authorize(alice, srv, { clientId: 'conf', redirectUri: CONF_CB, scope: SCOPE });
    let r = await redeem(srv, { code: a.code, verifier: a.verifier, redirectUri: CONF_CB, clientId: 'conf' });
    assertOAuthError(r, 401, 'invalid_client');
    const b = await authorize(alice, srv, { clientId: 'conf', redirectUri: CONF_CB, scope: SCOPE });
    r = await redeem(srv, { code: b.code, verifier: b.verifier, redirectUri: CONF_CB, auth: basic('conf', 'wrong-secret-0123456789') });
    assertOAuthError(r, 401, 'invalid_client');
    assert.match(r.headers.get('www-authenticate') || '', /^Basic/);
  });

  for (const [label, id, k] of [['RS384', 'rs-app', 'rs'], ['ES384', 'es-app', 'es']]) {
    it(`E50 private_key_jwt with ${label} (openid-client)`, async () => {
      const key = keys[k];
      const config = await oc.discovery(new URL(srv.baseUrl), id, undefined,
        oc.PrivateKeyJwt({ key: key.privateKey, kid: key.kid }, {
          [oc.modifyAssertion]: (header, payload) => { payload.aud = tokenUrl; header.typ = 'JWT'; },
        }), { execute: [oc.allowInsecureRequests] });
      const redirectUri = `https://${k}.example/cb`;
      const { tokens } = await ocCodeFlow(config, { redirectUri });
      assert.equal(tokens.patient, 'alice');
      const rt = await oc.refreshTokenGrant(config, tokens.refresh_token);
      assert.ok(rt.access_token, 'refresh with a new assertion');
    });
  }

  it('E54 a bad code: exactly 400 invalid_grant', async () => {
    const r = await redeem(srv, { code: 'BAD_CODE', verifier: 'a'.repeat(43), redirectUri: CB, clientId: 'pub' });
    assertOAuthError(r, 400, 'invalid_grant');
    const r2 = await redeem(srv, { code: 'BAD_CODE', verifier: 'a'.repeat(43), redirectUri: CONF_CB, auth: basic('conf', CONF_SECRET) });
    assertOAuthError(r2, 400, 'invalid_grant');
  });

  it('E55 a valid code with a wrong client: 400/401 invalid_client', async () => {
    const a = await authorize(alice, srv, { clientId: 'conf', redirectUri: CONF_CB, scope: SCOPE });
    let r = await redeem(srv, { code: a.code, verifier: a.verifier, redirectUri: CONF_CB, auth: basic('BAD_CLIENT_ID', CONF_SECRET) });
    assertOAuthError(r, 401, 'invalid_client');
    assert.match(r.headers.get('www-authenticate') || '', /^Basic/, 'Basic challenge after Basic auth');
    const b = await authorize(alice, srv, { clientId: 'pub', redirectUri: CB, scope: SCOPE });
    r = await redeem(srv, { code: b.code, verifier: b.verifier, redirectUri: CB, clientId: 'BAD_CLIENT_ID' });
    assert.ok([400, 401].includes(r.status), r.text);
    assert.equal(r.json.error, 'invalid_client');
  });

  it('E56 PKCE at the token endpoint: missing, empty, wrong, verifier = challenge: 400 invalid_grant', async () => {
    for (const bad of [undefined, '', crypto.randomBytes(32).toString('base64url'), 'challenge']) {
      const a = await authorize(alice, srv, { clientId: 'pub', redirectUri: CB, scope: SCOPE });
      const challenge = a.request.params.get('code_challenge');
      const verifier = bad === 'challenge' ? challenge : bad;
      const p = { grant_type: 'authorization_code', code: a.code, redirect_uri: CB, client_id: 'pub' };
      if (verifier !== undefined) p.code_verifier = verifier;
      const r = await postForm(tokenUrl, p);
      assertOAuthError(r, 400, 'invalid_grant');
      // and the code is spent
      const again = await redeem(srv, { code: a.code, verifier: a.verifier, redirectUri: CB, clientId: 'pub' });
      assertOAuthError(again, 400, 'invalid_grant');
    }
  });

  it('E58 a replayed code: 400, and the tokens of its first use are revoked', async () => {
    const a = await authorize(alice, srv, { clientId: 'pub', redirectUri: CB, scope: SCOPE });
    const first = await redeem(srv, { code: a.code, verifier: a.verifier, redirectUri: CB, clientId: 'pub' });
    assert.equal(first.status, 200);
    const t = first.json;
    assert.equal((await fhirGet(srv, 'Patient/alice', t.access_token)).status, 200);
    assert.equal((await introspect(t.access_token)).active, true);
    const second = await redeem(srv, { code: a.code, verifier: a.verifier, redirectUri: CB, clientId: 'pub' });
    assertOAuthError(second, 400, 'invalid_grant');
    assert.deepEqual(await introspect(t.access_token), { active: false });
    assert.equal((await fhirGet(srv, 'Patient/alice', t.access_token)).status, 401);
    const rr = await postForm(tokenUrl, { grant_type: 'refresh_token', refresh_token: t.refresh_token, client_id: 'pub' });
    assertOAuthError(rr, 400, 'invalid_grant');
  });

  it('E59 redirect_uri missing or different, code of another client: 400 invalid_grant, and the code is spent', async () => {
    let a = await authorize(alice, srv, { clientId: 'pub', redirectUri: CB, scope: SCOPE });
    assertOAuthError(await redeem(srv, { code: a.code, verifier: a.verifier, redirectUri: 'http://127.0.0.1:7778/cb', clientId: 'pub' }),
      400, 'invalid_grant');
    // security plan case 4: the attempt consumed it, so the right redirect_uri is refused too
    assertOAuthError(await redeem(srv, { code: a.code, verifier: a.verifier, redirectUri: CB, clientId: 'pub' }), 400, 'invalid_grant');
    a = await authorize(alice, srv, { clientId: 'pub', redirectUri: CB, scope: SCOPE });
    assertOAuthError(await redeem(srv, { code: a.code, verifier: a.verifier, redirectUri: undefined, clientId: 'pub' }),
      400, 'invalid_grant');
    assertOAuthError(await redeem(srv, { code: a.code, verifier: a.verifier, redirectUri: CB, clientId: 'pub' }), 400, 'invalid_grant');
    a = await authorize(alice, srv, { clientId: 'pub', redirectUri: CB, scope: SCOPE });
    assertOAuthError(await redeem(srv, { code: a.code, verifier: a.verifier, redirectUri: CB, clientId: 'pub2' }),
      400, 'invalid_grant');
  });

  it('E60 unsupported grant_type: exactly 400; GET, JSON body, two auth methods, repeats: 400', async () => {
    assertOAuthError(await postForm(tokenUrl, { grant_type: 'password', username: 'alice', password: 'veranda-demo', client_id: 'pub' }),
      400, 'unsupported_grant_type');
    assertOAuthError(await postForm(tokenUrl, { grant_type: 'not_a_grant_type', client_id: 'pub' }), 400, 'unsupported_grant_type');
    let res = await fetch(`${tokenUrl}?grant_type=authorization_code&code=x&client_id=pub`);
    assert.equal(res.status, 400);
    assert.equal((await res.json()).error, 'invalid_request');
    res = await fetch(tokenUrl, { method: 'POST', headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ grant_type: 'authorization_code', code: 'x', client_id: 'pub' }) });
    assert.equal(res.status, 400);
    assert.equal((await res.json()).error, 'invalid_request');
    // a type that only starts like the form type: its body is not read as a form, and the answer says why
    res = await fetch(tokenUrl, { method: 'POST', headers: { 'content-type': 'application/x-www-form-urlencodedX' },
      body: 'grant_type=authorization_code&code=x&client_id=pub' });
    assert.equal(res.status, 400);
    const lookalike = await res.json();
    assert.equal(lookalike.error, 'invalid_request');
    assert.match(lookalike.error_description, /application\/x-www-form-urlencoded body/);
    // Basic and client_secret_post at once
    const a = await authorize(alice, srv, { clientId: 'conf', redirectUri: CONF_CB, scope: SCOPE });
    let r = await redeem(srv, { code: a.code, verifier: a.verifier, redirectUri: CONF_CB, auth: basic('conf', CONF_SECRET),
      extra: { client_secret: CONF_SECRET, client_id: 'conf' } });
    assertOAuthError(r, 400, 'invalid_request');
    // Basic and a client assertion at once
    r = await postForm(tokenUrl, { grant_type: 'client_credentials', scope: 'system/*.rs', client_assertion_type: JWT_BEARER,
      client_assertion: await assertion(tokenUrl, 'bs-es', keys.bsEs) }, { auth: basic('conf', CONF_SECRET) });
    assertOAuthError(r, 400, 'invalid_request');
    // a parameter twice
    r = await fetch(tokenUrl, { method: 'POST', headers: { 'content-type': 'application/x-www-form-urlencoded' },
      body: 'grant_type=authorization_code&grant_type=authorization_code&code=x&client_id=pub' });
    assert.equal(r.status, 400);
    assert.equal((await r.json()).error, 'invalid_request');
    // no grant_type
    assertOAuthError(await postForm(tokenUrl, { client_id: 'pub' }), 400, 'invalid_request');
  });

  it('E61 CORS on the token endpoint for a registered origin (preflight and POST)', async () => {
    let res = await fetch(tokenUrl, { method: 'OPTIONS', headers: { origin: APP_ORIGIN, 'access-control-request-method': 'POST',
      'access-control-request-headers': 'content-type' } });
    assert.ok(res.status === 204 || res.status === 200, `preflight ${res.status}`);
    assert.equal(res.headers.get('access-control-allow-origin'), APP_ORIGIN);
    assert.match(res.headers.get('access-control-allow-methods') || '', /POST/);
    assert.match(res.headers.get('access-control-allow-headers') || '', /content-type/i);
    const a = await authorize(alice, srv, { clientId: 'pub', redirectUri: CB, scope: SCOPE });
    const r = await redeem(srv, { code: a.code, verifier: a.verifier, redirectUri: CB, clientId: 'pub' });
    assert.equal(r.status, 200);
    const a2 = await authorize(alice, srv, { clientId: 'pub', redirectUri: CB, scope: SCOPE });
    const r2 = await postForm(tokenUrl, { grant_type: 'authorization_code', code: a2.code, redirect_uri: CB, client_id: 'pub',
      code_verifier: a2.verifier }, { headers: { origin: APP_ORIGIN } });
    assert.equal(r2.status, 200);
    assert.equal(r2.headers.get('access-control-allow-origin'), APP_ORIGIN);
    // an origin nobody registered gets no CORS grant
    res = await fetch(tokenUrl, { method: 'OPTIONS', headers: { origin: 'https://evil.example', 'access-control-request-method': 'POST' } });
    assert.equal(res.headers.get('access-control-allow-origin'), null);
    const r3 = await postForm(tokenUrl, { grant_type: 'authorization_code', code: 'x', client_id: 'pub', redirect_uri: CB,
      code_verifier: 'a'.repeat(43) }, { headers: { origin: 'https://evil.example' } });
    assert.equal(r3.headers.get('access-control-allow-origin'), null);
    // the pages people navigate to never answer a preflight, even for a registered origin
    for (const page of ['authorize', 'login', 'decide', 'patient', 'launch']) {
      res = await fetch(`${srv.baseUrl}/oauth/${page}`, { method: 'OPTIONS', headers: { origin: APP_ORIGIN, 'access-control-request-method': 'POST' } });
      assert.equal(res.headers.get('access-control-allow-origin'), null, `/oauth/${page}`);
    }
  });
});

/* ================================================================ */

describe('F. id_token', () => {
  it('F63-67 id_token: RS256 with a JWKS kid, verified claims, nonce, fhirUser readable', async () => {
    const nonce = crypto.randomBytes(16).toString('base64url');
    const t = await aliceTokens({ nonce });
    const hdr = jose.decodeProtectedHeader(t.id_token);
    assert.equal(hdr.alg, 'RS256');
    assert.equal(typeof hdr.kid, 'string');
    const conf = await (await fetch(`${srv.baseUrl}/.well-known/openid-configuration`)).json();
    const jwks = await (await fetch(conf.jwks_uri)).json();
    assert.ok(jwks.keys.some((k) => k.kid === hdr.kid && k.kty === 'RSA'), 'kid is in the JWKS');
    const { payload } = await jose.jwtVerify(t.id_token, jose.createRemoteJWKSet(new URL(conf.jwks_uri)),
      { issuer: conf.issuer, audience: 'pub', algorithms: ['RS256'] });
    assert.equal(payload.iss, srv.baseUrl, 'iss is the issuer byte for byte (11)');
    assert.equal(payload.sub, 'alice');
    assert.ok(payload.sub.length <= 255);
    assert.ok(payload.exp > Date.now() / 1000 && Number.isInteger(payload.iat));
    assert.equal(payload.nonce, nonce);
    assert.match(payload.fhirUser, /\/Patient\/alice$/);
    assert.ok(payload.fhirUser.startsWith(srv.fhirBase + '/'), payload.fhirUser);
    const res = await fetch(payload.fhirUser, { headers: { authorization: `Bearer ${t.access_token}`, accept: 'application/fhir+json' } });
    assert.equal(res.status, 200);
    assert.equal((await res.json()).resourceType, 'Patient');
    // an id_token is no access token
    assert.equal((await fhirGet(srv, 'Patient/alice', t.id_token)).status, 401);
  });

  it('F63 no openid, no id_token; openid without fhirUser: no fhirUser claim', async () => {
    let t = await aliceTokens({ scope: 'launch/patient patient/*.rs' });
    assert.equal(t.id_token, undefined);
    t = await aliceTokens({ scope: 'openid launch/patient patient/*.rs' });
    assert.equal(jose.decodeJwt(t.id_token).fhirUser, undefined);
  });

  it('F66 userinfo via openid-client', async () => {
    const { tokens } = await ocCodeFlow(pubConfig);
    const ui = await oc.fetchUserInfo(pubConfig, tokens.access_token, tokens.claims().sub);
    assert.equal(ui.sub, 'alice');
    assert.equal(ui.fhirUser, `${srv.fhirBase}/Patient/alice`);
    const res = await fetch(`${srv.baseUrl}/oauth/userinfo`);
    assert.equal(res.status, 401);
  });
});

/* ================================================================ */

describe('G. refresh tokens', () => {
  it('G68-69,73 refresh without scope and with the same scope (openid-client); the new token reads the patient', async () => {
    const { tokens } = await ocCodeFlow(pubConfig);
    const r1 = await oc.refreshTokenGrant(pubConfig, tokens.refresh_token);
    assert.equal(typeof r1.expires_in, 'number');
    assert.match(r1.token_type, /^bearer$/i);
    assert.deepEqual(r1.scope.split(' ').sort(), tokens.scope.split(' ').sort());
    assert.notEqual(r1.refresh_token, tokens.refresh_token, 'rotated');
    assert.equal((await fhirGet(srv, `Patient/${tokens.patient}`, r1.access_token)).status, 200);
    const r2 = await oc.refreshTokenGrant(pubConfig, r1.refresh_token, { scope: tokens.scope });
    assert.deepEqual(r2.scope.split(' ').sort(), tokens.scope.split(' ').sort());
    assert.equal((await fhirGet(srv, `Patient/${tokens.patient}`, r2.access_token)).status, 200);
    // headers on a raw refresh
    const r3 = await postForm(tokenUrl, { grant_type: 'refresh_token', refresh_token: r2.refresh_token, client_id: 'pub' });
    assert.equal(r3.status, 200);
    assertNoStore(r3);
  });

  it('G70 a narrower scope narrows; a wider one is invalid_scope', async () => {
    const t = await aliceTokens();
    let r = await postForm(tokenUrl, { grant_type: 'refresh_token', refresh_token: t.refresh_token, client_id: 'pub',
      scope: 'launch/patient offline_access patient/Patient.rs' });
    assert.equal(r.status, 200, r.text);
    assert.deepEqual(r.json.scope.split(' ').sort(), ['launch/patient', 'offline_access', 'patient/Patient.rs']);
    assert.equal((await fhirGet(srv, 'Patient/alice', r.json.access_token)).status, 200);
    assert.equal((await fhirGet(srv, 'Observation?patient=alice', r.json.access_token)).status, 403, 'narrowed token');
    assertOAuthError(await postForm(tokenUrl, { grant_type: 'refresh_token', refresh_token: r.json.refresh_token, client_id: 'pub',
      scope: `${SCOPE} patient/*.cruds` }), 400, 'invalid_scope');
    assertOAuthError(await postForm(tokenUrl, { grant_type: 'refresh_token', refresh_token: r.json.refresh_token, client_id: 'pub',
      scope: 'user/*.rs' }), 400, 'invalid_scope');
    // a malformed scope (a control character) is invalid_scope too, not a server error
    assertOAuthError(await postForm(tokenUrl, { grant_type: 'refresh_token', refresh_token: r.json.refresh_token, client_id: 'pub',
      scope: 'launch/patient\tpatient/Patient.rs' }), 400, 'invalid_scope');
    // the refused requests did not spend the token (and were not taken for a replay)
    r = await postForm(tokenUrl, { grant_type: 'refresh_token', refresh_token: r.json.refresh_token, client_id: 'pub' });
    assert.equal(r.status, 200, r.text);
    assert.equal((await fhirGet(srv, 'Patient/alice', r.json.access_token)).status, 200);
    // RFC 6749 6: with no scope, the scope granted at first (a narrowing is for that token only)
    assert.deepEqual(r.json.scope.split(' ').sort(), t.scope.split(' ').sort());
    // a narrowing that leaves out offline_access: the access token is narrowed, but the
    // rotated refresh token keeps the grant's scope (RFC 6749 6), so offline access goes on
    r = await postForm(tokenUrl, { grant_type: 'refresh_token', refresh_token: r.json.refresh_token, client_id: 'pub',
      scope: 'launch/patient patient/Patient.rs' });
    assert.equal(r.status, 200, r.text);
    assert.deepEqual(r.json.scope.split(' ').sort(), ['launch/patient', 'patient/Patient.rs']);
    assert.ok(r.json.refresh_token, 'a new refresh token in place of the one spent');
    r = await postForm(tokenUrl, { grant_type: 'refresh_token', refresh_token: r.json.refresh_token, client_id: 'pub' });
    assert.equal(r.status, 200, r.text);
    assert.deepEqual(r.json.scope.split(' ').sort(), t.scope.split(' ').sort());
  });

  it('G74 rotation: an old refresh token replayed revokes the whole family', async () => {
    const t = await aliceTokens();
    const r1 = await postForm(tokenUrl, { grant_type: 'refresh_token', refresh_token: t.refresh_token, client_id: 'pub' });
    assert.equal(r1.status, 200);
    const r2 = await postForm(tokenUrl, { grant_type: 'refresh_token', refresh_token: r1.json.refresh_token, client_id: 'pub' });
    assert.equal(r2.status, 200);
    assert.equal(new Set([t.refresh_token, r1.json.refresh_token, r2.json.refresh_token]).size, 3, 'a new one each time');
    const replay = await postForm(tokenUrl, { grant_type: 'refresh_token', refresh_token: t.refresh_token, client_id: 'pub' });
    assertOAuthError(replay, 400, 'invalid_grant');
    assert.equal((await fhirGet(srv, 'Patient/alice', r2.json.access_token)).status, 401, 'newest access token revoked');
    assert.equal((await fhirGet(srv, 'Patient/alice', t.access_token)).status, 401, 'first access token revoked');
    assertOAuthError(await postForm(tokenUrl, { grant_type: 'refresh_token', refresh_token: r2.json.refresh_token, client_id: 'pub' }),
      400, 'invalid_grant');
  });

  it('G71-72 a random or another client\'s refresh token: 400 invalid_grant; a confidential client must authenticate', async () => {
    assertOAuthError(await postForm(tokenUrl, { grant_type: 'refresh_token', refresh_token: crypto.randomUUID(), client_id: 'pub' }),
      400, 'invalid_grant');
    const t = await aliceTokens();
    assertOAuthError(await postForm(tokenUrl, { grant_type: 'refresh_token', refresh_token: t.refresh_token, client_id: 'pub2' }),
      400, 'invalid_grant');
    assertOAuthError(await postForm(tokenUrl, { grant_type: 'refresh_token', refresh_token: t.refresh_token },
      { auth: basic('conf', CONF_SECRET) }), 400, 'invalid_grant');
    // the owner can still use it
    assert.equal((await postForm(tokenUrl, { grant_type: 'refresh_token', refresh_token: t.refresh_token, client_id: 'pub' })).status, 200);
    const { tokens } = await ocCodeFlow(confConfig, { redirectUri: CONF_CB });
    assertOAuthError(await postForm(tokenUrl, { grant_type: 'refresh_token', refresh_token: tokens.refresh_token, client_id: 'conf' }),
      401, 'invalid_client');
  });

  it('G72 an asymmetric client refreshes only with a fresh assertion of its own: none, a replayed jti, another client\'s: refused, token kept', async () => {
    const config = await oc.discovery(new URL(srv.baseUrl), 'rs-app', undefined,
      oc.PrivateKeyJwt({ key: keys.rs.privateKey, kid: keys.rs.kid }, {
        [oc.modifyAssertion]: (header, payload) => { payload.aud = tokenUrl; header.typ = 'JWT'; },
      }), { execute: [oc.allowInsecureRequests] });
    const { tokens } = await ocCodeFlow(config, { redirectUri: 'https://rs.example/cb' });
    assert.ok(tokens.refresh_token, 'a refresh token');
    const refreshAs = (refreshToken, extra) => postForm(tokenUrl, { grant_type: 'refresh_token', refresh_token: refreshToken, ...extra });
    const signed = (jwt) => ({ client_assertion_type: JWT_BEARER, client_assertion: jwt });

    // a valid refresh spends the assertion's jti (and rotates the token)
    const used = await assertion(tokenUrl, 'rs-app', keys.rs);
    let r = await refreshAs(tokens.refresh_token, signed(used));
    assert.equal(r.status, 200, r.text);
    const rt = r.json.refresh_token;
    assert.ok(rt && rt !== tokens.refresh_token, 'rotated');

    // (a) the client_id alone, as a public client would send it
    assertOAuthError(await refreshAs(rt, { client_id: 'rs-app' }), 401, 'invalid_client');
    // (b) an assertion whose jti was already used, with and without client_id
    assertOAuthError(await refreshAs(rt, signed(used)), 401, 'invalid_client');
    assertOAuthError(await refreshAs(rt, { client_id: 'rs-app', ...signed(used) }), 401, 'invalid_client');
    // (c) the other asymmetric client, properly authenticated: not its token
    assertOAuthError(await refreshAs(rt, signed(await assertion(tokenUrl, 'es-app', keys.es))), 400, 'invalid_grant');
    // (d) none of that spent or revoked the token: a fresh assertion refreshes, and the new access token works
    r = await refreshAs(rt, signed(await assertion(tokenUrl, 'rs-app', keys.rs)));
    assert.equal(r.status, 200, r.text);
    assert.ok(r.json.refresh_token && r.json.refresh_token !== rt, 'rotated again');
    assert.equal((await fhirGet(srv, 'Patient/alice', r.json.access_token)).status, 200);
  });

  it('G45 no offline_access, no refresh token', async () => {
    const t = await aliceTokens({ scope: 'launch/patient openid fhirUser patient/*.rs' });
    assert.equal(t.refresh_token, undefined);
  });
});

/* ================================================================ */

describe('I. revocation', () => {
  it('I87 revoking a refresh token (openid-client) ends the grant: refresh 400, access token 401', async () => {
    const { tokens } = await ocCodeFlow(pubConfig);
    assert.equal((await fhirGet(srv, 'Patient/alice', tokens.access_token)).status, 200);
    await oc.tokenRevocation(pubConfig, tokens.refresh_token, { token_type_hint: 'refresh_token' });
    const r = await postForm(tokenUrl, { grant_type: 'refresh_token', refresh_token: tokens.refresh_token, client_id: 'pub' });
    assertOAuthError(r, 400, 'invalid_grant');
    assert.equal((await fhirGet(srv, 'Patient/alice', tokens.access_token)).status, 401);
  });

  it('I87 revoking an access token ends that token', async () => {
    const { tokens } = await ocCodeFlow(confConfig, { redirectUri: CONF_CB });
    assert.equal((await fhirGet(srv, 'Patient/alice', tokens.access_token)).status, 200);
    await oc.tokenRevocation(confConfig, tokens.access_token, { token_type_hint: 'access_token' });
    assert.equal((await fhirGet(srv, 'Patient/alice', tokens.access_token)).status, 401);
    assert.deepEqual(await introspect(tokens.access_token), { active: false });
  });

  it('I88 an unknown token or hint still answers 200', async () => {
    for (const p of [{ token: 'no-such-token' }, { token: 'a.b.c' }, { token: crypto.randomUUID(), token_type_hint: 'something' }]) {
      const r = await postForm(`${srv.baseUrl}/oauth/revoke`, { ...p, client_id: 'pub' });
      assert.equal(r.status, 200, r.text);
    }
  });

  it('I89 a client may only revoke its own tokens; confidential clients must authenticate', async () => {
    const t = await aliceTokens();
    for (const token of [t.refresh_token, t.access_token]) {
      const r = await postForm(`${srv.baseUrl}/oauth/revoke`, { token, client_id: 'pub2' });
      assert.ok(r.status === 400 || r.status === 401 || r.status === 403, `${r.status} ${r.text}`);
    }
    assert.equal((await fhirGet(srv, 'Patient/alice', t.access_token)).status, 200, 'still valid');
    assert.equal((await postForm(tokenUrl, { grant_type: 'refresh_token', refresh_token: t.refresh_token, client_id: 'pub' })).status, 200);
    const r = await postForm(`${srv.baseUrl}/oauth/revoke`, { token: 'x', client_id: 'conf' });
    assertOAuthError(r, 401, 'invalid_client');
  });

  it('I90 "Remove access" on /account ends the grant', async () => {
    const t = await aliceTokens();
    const acc = await accountPage(alice);
    const gid = jose.decodeJwt(t.access_token).grant;
    const f = acc.forms.find((x) => x.action === '/account/revoke' && field(x, 'grant') === gid);
    assert.ok(f, 'the grant is listed on /account');
    const r = await alice.post('/account/revoke', new URLSearchParams(f.fields));
    assert.equal(r.status, 303);
    assert.equal((await fhirGet(srv, 'Patient/alice', t.access_token)).status, 401);
    assertOAuthError(await postForm(tokenUrl, { grant_type: 'refresh_token', refresh_token: t.refresh_token, client_id: 'pub' }),
      400, 'invalid_grant');
    const again = await accountPage(alice);
    assert.ok(!again.forms.some((x) => field(x, 'grant') === gid), 'no longer listed');
  });
});

/* ================================================================ */

describe('J. introspection', () => {
  it('J91 client_secret_basic (openid-client): an active token\'s fields', async () => {
    const t = await aliceTokens();
    const idt = jose.decodeJwt(t.id_token);
    const before = Math.floor(Date.now() / 1000);
    const r = await oc.tokenIntrospection(confConfig, t.access_token);
    assert.equal(r.active, true);
    assert.deepEqual(r.scope.split(' ').sort(), t.scope.split(' ').sort());
    assert.equal(r.client_id, 'pub');
    assert.ok(Number.isInteger(r.exp));
    assert.ok(Math.abs(r.exp - (before + t.expires_in)) <= 5, 'exp agrees with expires_in');
    assert.equal(r.patient, 'alice');
    assert.equal(r.sub, idt.sub);
    assert.equal(r.iss, idt.iss);
    assert.equal(r.fhirUser, idt.fhirUser);
  });

  it('J93 a bearer token may introspect', async () => {
    const t = await aliceTokens();
    const bs = await postForm(tokenUrl, { grant_type: 'client_credentials', scope: 'system/*.rs', client_assertion_type: JWT_BEARER,
      client_assertion: await assertion(tokenUrl, 'bs-es', keys.bsEs) });
    assert.equal(bs.status, 200, bs.text);
    const r = await postForm(`${srv.baseUrl}/oauth/introspect`, { token: t.access_token }, { auth: `Bearer ${bs.json.access_token}` });
    assert.equal(r.status, 200);
    assert.equal(r.json.active, true);
    assert.equal(r.json.patient, 'alice');
  });

  it('J93 an app\'s user token learns only about its own app\'s tokens', async () => {
    const mine = await aliceTokens();
    const { tokens: other } = await ocCodeFlow(confConfig, { redirectUri: CONF_CB });
    // pub's token about itself: active; about conf's token: nothing
    let r = await postForm(`${srv.baseUrl}/oauth/introspect`, { token: mine.access_token }, { auth: `Bearer ${mine.access_token}` });
    assert.equal(r.json.active, true);
    r = await postForm(`${srv.baseUrl}/oauth/introspect`, { token: other.access_token }, { auth: `Bearer ${mine.access_token}` });
    assert.deepEqual(r.json, { active: false });
    // the confidential client (a resource server) still sees it
    r = await postForm(`${srv.baseUrl}/oauth/introspect`, { token: other.access_token }, { auth: basic('conf', CONF_SECRET) });
    assert.equal(r.json.active, true);
  });

  it('J introspection answers are not cached, and no error description carries a line break (security plan 27)', async () => {
    const t = await aliceTokens();
    const r = await postForm(`${srv.baseUrl}/oauth/introspect`, { token: t.access_token }, { auth: basic('conf', CONF_SECRET) });
    assert.equal(r.status, 200);
    assert.equal(r.json.active, true);
    assertNoStore(r);
    for (const body of [{ grant_type: 'authorization_code', code: 'x\r\nSet-Cookie: a=b', client_id: 'pub', redirect_uri: CB, code_verifier: 'v'.repeat(43) },
      { grant_type: 'refresh_token', refresh_token: 'r\nX', client_id: 'pub' }, { grant_type: 'wat\r\nx', client_id: 'pub' }]) {
      const e = await postForm(tokenUrl, body);
      assert.equal(e.status, 400, e.text);
      assert.doesNotMatch(e.json.error_description, /[\r\n\t]/, e.text);
      assert.equal(e.headers.get('set-cookie'), null);
    }
  });

  it('J92 an unknown, revoked or garbage token: exactly {"active":false}', async () => {
    const t = await aliceTokens();
    await postForm(`${srv.baseUrl}/oauth/revoke`, { token: t.refresh_token, client_id: 'pub' });
    for (const token of ['invalid_token_value', t.access_token, t.refresh_token, t.id_token, '']) {
      const r = await postForm(`${srv.baseUrl}/oauth/introspect`, { token }, { auth: basic('conf', CONF_SECRET) });
      assert.equal(r.status, 200);
      assert.deepEqual(r.json, { active: false }, `token ${token.slice(0, 12)}`);
    }
  });

  it('J93 without authorization: 401', async () => {
    const t = await aliceTokens();
    let r = await postForm(`${srv.baseUrl}/oauth/introspect`, { token: t.access_token });
    assert.equal(r.status, 401);
    assert.equal(r.json.active, undefined);
    r = await postForm(`${srv.baseUrl}/oauth/introspect`, { token: t.access_token, client_id: 'pub' });
    assert.equal(r.status, 401, 'a public client is no caller');
    r = await postForm(`${srv.baseUrl}/oauth/introspect`, { token: t.access_token }, { auth: 'Bearer not-a-token' });
    assert.equal(r.status, 401);
    r = await postForm(`${srv.baseUrl}/oauth/introspect`, { token: t.access_token }, { auth: basic('conf', 'wrong-secret-000000') });
    assert.equal(r.status, 401);
  });
});

/* ================================================================ */

describe('K. backend services', () => {
  async function cc(clientId, key, { scope = 'system/*.rs', claims, header, alg, extra = {} } = {}) {
    return postForm(tokenUrl, { grant_type: 'client_credentials', scope, client_assertion_type: JWT_BEARER,
      client_assertion: await assertion(tokenUrl, clientId, key, { claims, header, alg }), ...extra });
  }

  for (const [label, id, k, scope] of [['RS384', 'bs-rs', 'bsRs', 'system/Patient.rs'], ['ES384', 'bs-es', 'bsEs', 'system/*.rs']]) {
    it(`K95 client_credentials with ${label}: fields, no refresh token, expires_in <= 300`, async () => {
      const r = await cc(id, keys[k], { scope });
      assert.equal(r.status, 200, r.text);
      assertNoStore(r);
      assert.equal(typeof r.json.access_token, 'string');
      assert.match(r.json.token_type, /^bearer$/i);
      assert.equal(typeof r.json.expires_in, 'number');
      assert.ok(r.json.expires_in > 0 && r.json.expires_in <= 300);
      assert.equal(r.json.scope, scope);
      assert.equal(r.json.refresh_token, undefined);
      assert.equal(r.json.id_token, undefined);
      const s = await fhirGet(srv, 'Patient?_count=2', r.json.access_token);
      assert.equal(s.status, 200);
    });
  }

  it('K95 client_credentials through openid-client (PrivateKeyJwt)', async () => {
    const config = await oc.discovery(new URL(srv.baseUrl), 'bs-es', undefined,
      oc.PrivateKeyJwt({ key: keys.bsEs.privateKey, kid: keys.bsEs.kid }, {
        [oc.modifyAssertion]: (header, payload) => { payload.aud = tokenUrl; },
      }), { execute: [oc.allowInsecureRequests] });
    const t = await oc.clientCredentialsGrant(config, { scope: 'system/Observation.rs' });
    assert.equal(t.scope, 'system/Observation.rs');
    assert.equal(t.refresh_token, undefined);
  });

  it('K95 v1 backend scopes (system/*.read) are granted in v1 form and read every type', async () => {
    const r = await cc('bs-es', keys.bsEs, { scope: 'system/*.read' });
    assert.equal(r.status, 200, r.text);
    assert.equal(r.json.scope, 'system/*.read');
    assert.equal((await fhirGet(srv, 'Observation?_count=1', r.json.access_token)).status, 200);
    assert.equal((await fhirGet(srv, 'Patient/alice', r.json.access_token)).status, 200);
    const w = await fetchJson(`${srv.fhirBase}/Observation`, { method: 'POST',
      body: JSON.stringify({ resourceType: 'Observation', status: 'final', code: { text: 'x' }, subject: { reference: 'Patient/alice' } }),
      headers: { 'content-type': 'application/fhir+json', authorization: `Bearer ${r.json.access_token}` } });
    assert.equal(w.status, 403, 'read is not write');
  });

  it('K96-97 invalid grant_type: exactly 400; invalid client_assertion_type: 400/401', async () => {
    let r = await postForm(tokenUrl, { grant_type: 'not_a_grant_type', scope: 'system/*.rs', client_assertion_type: JWT_BEARER,
      client_assertion: await assertion(tokenUrl, 'bs-es', keys.bsEs) });
    assertOAuthError(r, 400, 'unsupported_grant_type');
    r = await postForm(tokenUrl, { grant_type: 'client_credentials', scope: 'system/*.rs', client_assertion_type: 'not_an_assertion_type',
      client_assertion: await assertion(tokenUrl, 'bs-es', keys.bsEs) });
    assert.ok([400, 401].includes(r.status), r.text);
    assert.equal(r.json.error, 'invalid_client');
  });

  it('K98-99 bad assertions: 401 invalid_client', async () => {
    const now = Math.floor(Date.now() / 1000);
    const other = await keyPair('ES384', keys.bsEs.kid);           // same kid, different key
    const rsOther = await keyPair('RS384', keys.bsRs.kid);
    // the registered RSA key itself, usable for RS256
    const rs256 = { ...keys.bsRs, alg: 'RS256',
      privateKey: await jose.importJWK(await jose.exportJWK(keys.bsRs.privateKey), 'RS256') };
    const cases = [
      ['wrong aud', 'bs-es', keys.bsEs, { claims: { aud: srv.baseUrl } }],
      ['aud another server', 'bs-es', keys.bsEs, { claims: { aud: 'https://elsewhere.example/oauth/token' } }],
      ['expired', 'bs-es', keys.bsEs, { claims: { exp: now - 120, iat: now - 400 } }],
      ['exp too far', 'bs-es', keys.bsEs, { claims: { exp: now + 3600 } }],
      ['no exp', 'bs-es', keys.bsEs, { claims: { exp: undefined } }],
      ['iss != sub', 'bs-es', keys.bsEs, { claims: { sub: 'bs-rs' } }],
      ['iss not registered', 'bs-es', keys.bsEs, { claims: { iss: 'not_a_valid_iss', sub: 'not_a_valid_iss' } }],
      ['another client\'s key', 'bs-rs', keys.bsEs, { header: { kid: keys.bsEs.kid } }],
      ['unknown kid', 'bs-es', keys.bsEs, { header: { kid: 'no-such-kid' } }],
      ['bad signature', 'bs-es', other, {}],
      ['RS256', 'bs-rs', rs256, {}],
      ['bad RS signature', 'bs-rs', rsOther, {}],
      ['no jti', 'bs-es', keys.bsEs, { claims: { jti: undefined } }],
    ];
    for (const [what, id, key, opts] of cases) {
      const r = await cc(id, key, opts);
      assert.equal(r.status, 401, `${what}: ${r.text}`);
      assert.equal(r.json.error, 'invalid_client', what);
    }
    // alg none
    const none = `${Buffer.from(JSON.stringify({ alg: 'none', typ: 'JWT', kid: keys.bsEs.kid })).toString('base64url')}.${
      Buffer.from(JSON.stringify({ iss: 'bs-es', sub: 'bs-es', aud: tokenUrl, exp: now + 60, jti: crypto.randomUUID() })).toString('base64url')}.`;
    const r = await postForm(tokenUrl, { grant_type: 'client_credentials', scope: 'system/*.rs', client_assertion_type: JWT_BEARER, client_assertion: none });
    assert.ok([400, 401].includes(r.status));
    assert.equal(r.json.error, 'invalid_client');
    // a replayed jti
    const jwt = await assertion(tokenUrl, 'bs-es', keys.bsEs);
    const body = { grant_type: 'client_credentials', scope: 'system/*.rs', client_assertion_type: JWT_BEARER, client_assertion: jwt };
    assert.equal((await postForm(tokenUrl, body)).status, 200);
    const again = await postForm(tokenUrl, body);
    assert.equal(again.status, 401, again.text);
    assert.equal(again.json.error, 'invalid_client');
  });

  it('K94,100 a JWK Set by URL: fetched, cached, jku must match', async () => {
    const hits0 = jwksHits;
    let r = await cc('bs-url', keys.bsUrl);
    assert.equal(r.status, 200, r.text);
    assert.ok(jwksHits > hits0, 'fetched');
    const hits1 = jwksHits;
    r = await cc('bs-url', keys.bsUrl);
    assert.equal(r.status, 200);
    assert.equal(jwksHits, hits1, 'cached (max-age=60)');
    r = await cc('bs-url', keys.bsUrl, { header: { jku: 'https://evil.example/jwks.json' } });
    assert.equal(r.status, 401);
    r = await cc('bs-url', keys.bsUrl, { header: { jku: `http://127.0.0.1:${jwksServer.address().port}/jwks.json` } });
    assert.equal(r.status, 200, r.text);
  });

  it('K100 a fetched JWK Set is kept no longer than Cache-Control allows, and is asked for as JSON', async () => {
    const hits = (p) => jwksBy[p]?.hits || 0;
    for (let i = 0; i < 2; i++) assert.equal((await cc('bs-nostore', keys.bsNoStore)).status, 200);
    assert.equal(hits('/no-store.json'), 2, 'no-store: fetched for every assertion');
    assert.equal((await cc('bs-short', keys.bsShort)).status, 200);
    assert.equal((await cc('bs-short', keys.bsShort)).status, 200);
    assert.equal(hits('/short.json'), 1, 'max-age=1: kept for a second');
    await new Promise((r) => setTimeout(r, 1600));
    assert.equal((await cc('bs-short', keys.bsShort)).status, 200);
    assert.equal(hits('/short.json'), 2, 'fetched again once max-age ran out');
    assert.match(jwksBy['/short.json'].accept || '', /application\/(jwk-set\+)?json/);
  });

  it('K100 exactly one key by kid and type: two keys under one kid are refused (at registration, and when fetched)', async () => {
    // registration refuses a set with a repeated kid outright
    const dupFile = path.join(dir, 'dup-jwks.json');
    fs.writeFileSync(dupFile, JSON.stringify({ keys: [keys.dupA.publicJwk, keys.dupB.publicJwk] }));
    const reg = await runCli(['client', 'add', '--data', dir, '--client-id', 'bs-dup-file', '--jwks', dupFile, '--scope', 'system/*.rs']);
    assert.notEqual(reg.code, 0);
    assert.match(reg.stderr, /same kid/);
    // fetched by URL: two matching keys, whichever signed, is invalid_client
    for (const key of [keys.dupA, keys.dupB]) {
      const r = await cc('bs-dup', key);
      assert.equal(r.status, 401, r.text);
      assert.equal(r.json.error, 'invalid_client');
    }
    // one kid on an EC and an RSA key: the key whose type fits the assertion's alg is the one
    for (const key of [keys.mixEc, keys.mixRs]) {
      const r = await cc('bs-mix', key);
      assert.equal(r.status, 200, `${key.alg}: ${r.text}`);
    }
    // ... and a signature by any other key sent under that kid does not verify
    const forged = { ...keys.mixEc, privateKey: keys.dupA.privateKey };
    const bad = await cc('bs-mix', forged);
    assert.equal(bad.status, 401, bad.text);
  });

  it('K101 scopes never exceed the registration', async () => {
    let r = await cc('bs-rs', keys.bsRs, { scope: 'system/*.rs' });
    assert.equal(r.status, 200, r.text);
    const got = r.json.scope.split(' ');
    for (const s of got) assert.ok(['system/Patient.rs', 'system/Observation.rs'].includes(s), `granted ${s}`);
    assert.equal((await fhirGet(srv, 'Condition?_count=1', r.json.access_token)).status, 403);
    assert.equal((await fhirGet(srv, 'Observation?_count=1', r.json.access_token)).status, 200);
    r = await cc('bs-rs', keys.bsRs, { scope: 'system/Condition.rs' });
    assertOAuthError(r, 400, 'invalid_scope');
    r = await cc('bs-es', keys.bsEs, { scope: 'system/*.cruds' });
    if (r.status === 200) assert.ok(!/[cud]/.test(r.json.scope.split('.').pop()), `narrowed: ${r.json.scope}`);
    else assertOAuthError(r, 400, 'invalid_scope');
    r = await cc('bs-es', keys.bsEs, { scope: 'patient/*.rs' });
    assertOAuthError(r, 400, 'invalid_scope');
    r = await cc('bs-es', keys.bsEs, { scope: 'system/Patient.rs\tsystem/Observation.rs' });
    assertOAuthError(r, 400, 'invalid_scope');
    // a symmetric client may not use client_credentials
    r = await postForm(tokenUrl, { grant_type: 'client_credentials', scope: 'system/*.rs' }, { auth: basic('conf', CONF_SECRET) });
    assert.equal(r.status, 400);
    assert.ok(['unauthorized_client', 'invalid_client'].includes(r.json.error), r.text);
  });
});

/* ================================================================ */

describe('sign-out', () => {
  it('sign out ends the session but not the apps\' tokens', async () => {
    const b = new Browser(srv.baseUrl);
    assert.equal((await signIn(b, 'alice')).status, 303);
    const t = await aliceTokens({ browser: b });
    const acc = await accountPage(b);
    assert.equal(acc.status, 200);
    const r = await b.post('/signout', { csrf: acc.csrf, everywhere: '0' });
    assert.equal(r.status, 200);
    const after = await b.get('/account');
    assert.equal(after.status, 303, 'signed out');
    assert.match(after.location, /\/signin$/);
    assert.equal((await fhirGet(srv, 'Patient/alice', t.access_token)).status, 200, 'the app keeps its grant');
  });

  it('sign out everywhere ends every session and every token of the user', async () => {
    const b1 = new Browser(srv.baseUrl);
    const b2 = new Browser(srv.baseUrl);
    assert.equal((await signIn(b1, 'bob')).status, 303);
    assert.equal((await signIn(b2, 'bob')).status, 303);
    const a = await authorize(b2, srv, { clientId: 'pub', redirectUri: CB, scope: SCOPE, patient: 'bob-self' });
    const t = (await redeem(srv, { code: a.code, verifier: a.verifier, redirectUri: CB, clientId: 'pub' })).json;
    assert.equal(t.patient, 'bob-self');
    assert.equal((await fhirGet(srv, 'Patient/bob-self', t.access_token)).status, 200);
    const acc = await accountPage(b1);
    const r = await b1.post('/signout', { csrf: acc.csrf, everywhere: '1' });
    assert.equal(r.status, 200);
    assert.equal((await b1.get('/account')).status, 303);
    assert.equal((await b2.get('/account')).status, 303, 'the other session ended too');
    assert.equal((await fhirGet(srv, 'Patient/bob-self', t.access_token)).status, 401);
    assertOAuthError(await postForm(tokenUrl, { grant_type: 'refresh_token', refresh_token: t.refresh_token, client_id: 'pub' }),
      400, 'invalid_grant');
    // alice was not touched
    assert.equal((await accountPage(alice)).status, 200);
  });

  it('a session id kept from before sign-out is refused afterwards', async () => {
    const b = new Browser(srv.baseUrl);
    assert.equal((await signIn(b, 'alice')).status, 303);
    const name = [...b.jar.keys()].find((k) => !/csrf/i.test(k));
    const kept = b.cookie(name);
    assert.ok(kept, 'a session cookie');
    const acc = await accountPage(b);
    assert.equal((await b.post('/signout', { csrf: acc.csrf, everywhere: '0' })).status, 200);
    const replay = new Browser(srv.baseUrl);
    replay.setCookie(name, kept);
    const r = await replay.get('/account');
    assert.equal(r.status, 303, 'the server forgot the session, whatever the browser keeps');
    assert.match(r.location, /\/signin$/);
  });

  it('sign-out needs the session\'s CSRF token', async () => {
    const b = new Browser(srv.baseUrl);
    await signIn(b, 'alice');
    const r = await b.post('/signout', { everywhere: '1' });
    assert.equal(r.status, 403);
    assert.equal((await b.get('/account')).status, 200, 'still signed in');
  });
});

/* ================================================================ */
describe('revocation from the command line', () => {
  // The server caches verified tokens; a change made by another process
  // (the command line on the same data directory) must reach that cache
  // at once, not at its next periodic re-check (30 s).
  const cliOk = async (args) => {
    const r = await runCli(args);
    assert.equal(r.code, 0, `veranda ${args.join(' ')}: ${r.stderr}`);
  };

  it('user disable ends a running server\'s cached tokens of the account at once', async () => {
    const b = new Browser(srv.baseUrl);
    assert.equal((await signIn(b, 'erin')).status, 303);
    const t = await aliceTokens({ browser: b });
    assert.equal(t.patient, 'erin');
    assert.equal((await fhirGet(srv, 'Patient/erin', t.access_token)).status, 200, 'the token works (and is cached)');
    const other = new Browser(srv.baseUrl);
    assert.equal((await signIn(other, 'erin')).status, 303);
    assert.equal((await other.get('/account')).status, 200, 'a second browser signed in');
    await cliOk(['user', 'disable', '--data', dir, '--username', 'erin']);
    assert.equal((await other.get('/account')).status, 303, 'every session of the account ended');
    const r = await fhirGet(srv, 'Patient/erin', t.access_token);
    assert.equal(r.status, 401, 'refused by the very next request');
    assert.match(r.headers.get('www-authenticate') || '', /invalid_token/);
    await cliOk(['user', 'enable', '--data', dir, '--username', 'erin']);
    assert.equal((await fhirGet(srv, 'Patient/erin', t.access_token)).status, 401, 'enabling again does not revive its grants');
    assertOAuthError(await postForm(tokenUrl, { grant_type: 'refresh_token', refresh_token: t.refresh_token, client_id: 'pub' }),
      400, 'invalid_grant');
  });

  it('user reset-password ends the account\'s sessions, tokens and old password at once', async () => {
    const b = new Browser(srv.baseUrl);
    assert.equal((await signIn(b, 'frank')).status, 303);
    const t = await aliceTokens({ browser: b, patient: 'frank' });
    assert.equal((await fhirGet(srv, 'Patient/frank', t.access_token)).status, 200);
    const set = (pw) => runCli(['user', 'reset-password', '--data', dir, '--username', 'frank', '--password-stdin'], { input: `${pw}\n` });
    try {
      const r = await set('a-new-password-for-frank');
      assert.equal(r.code, 0, r.stderr);
      assert.equal((await b.get('/account')).status, 303, 'the session ended');
      assert.equal((await fhirGet(srv, 'Patient/frank', t.access_token)).status, 401, 'the cached token is refused at once');
      assertOAuthError(await postForm(tokenUrl, { grant_type: 'refresh_token', refresh_token: t.refresh_token, client_id: 'pub' }),
        400, 'invalid_grant');
      assert.equal((await signIn(new Browser(srv.baseUrl), 'frank')).status, 401, 'the old password no longer works');
      assert.equal((await signIn(new Browser(srv.baseUrl), 'frank', 'a-new-password-for-frank')).status, 303);
    } finally {
      assert.equal((await set(DEMO_PASSWORD)).code, 0);
    }
  });

  it('client disable and enable reach a running server\'s cached tokens at once', async () => {
    await registerClient(dir, { clientId: 'cli-off', public: true, redirectUris: [CB] });
    const t = await aliceTokens({ clientId: 'cli-off' });
    assert.equal((await fhirGet(srv, 'Patient/alice', t.access_token)).status, 200);
    const refresh = (token) => postForm(`${srv.baseUrl}/oauth/token`, { grant_type: 'refresh_token', refresh_token: token, client_id: 'cli-off' });
    // the token endpoint has read the app's record (and keeps it): a change must still reach it at once
    let rt = await refresh(t.refresh_token);
    assert.equal(rt.status, 200, rt.text);
    await cliOk(['client', 'disable', '--data', dir, '--client-id', 'cli-off']);
    assert.equal((await fhirGet(srv, 'Patient/alice', t.access_token)).status, 401, 'a disabled app\'s token is refused at once');
    const off = await refresh(rt.json.refresh_token);
    assert.notEqual(off.status, 200, 'a disabled app cannot refresh');
    assert.equal(off.json?.error, 'invalid_client', off.text);
    await cliOk(['client', 'enable', '--data', dir, '--client-id', 'cli-off']);
    assert.equal((await fhirGet(srv, 'Patient/alice', t.access_token)).status, 200, 'and works again once the app is enabled');
    rt = await refresh(rt.json.refresh_token);
    assert.equal(rt.status, 200, `the enabled app refreshes again: ${rt.text}`);
    await cliOk(['client', 'remove', '--data', dir, '--client-id', 'cli-off']);
    assert.equal((await fhirGet(srv, 'Patient/alice', t.access_token)).status, 401, 'a removed app\'s token is refused at once');
    const gone = await refresh(rt.json.refresh_token);
    assert.equal(gone.json?.error, 'invalid_client', gone.text);
  });
});

/* ================================================================ */

describe('expiry (a restart with the clock moved forward)', () => {
  let d2, port;

  before(async () => {
    d2 = await makeTempDir('veranda-oauth-exp-');
    await initDataDir(d2);
    await seedDataDir(d2, { patients: 0 });
    await registerClient(d2, { clientId: 'pub', public: true, redirectUris: [LOOP_CB], launchUrl: 'http://127.0.0.1:9/launch' });
    await registerClient(d2, { clientId: 'conf', secret: CONF_SECRET, redirectUris: [CONF_CB] });
    port = await freePort();
  });
  after(() => removeDir(d2));

  it('E53,59 C30 an expired code, access token and launch are refused', async () => {
    let s = await serveFixed({ dataDir: d2, port });
    let t, code, verifier, lid, sessionCookie;
    const b = new Browser(s.baseUrl);
    try {
      t = (await (async () => {
        const a = await authorize(b, s, { clientId: 'pub', redirectUri: CB, scope: SCOPE });
        return redeem(s, { code: a.code, verifier: a.verifier, redirectUri: CB, clientId: 'pub' });
      })()).json;
      assert.ok(t.access_token);
      const a2 = await authorize(b, s, { clientId: 'pub', redirectUri: CB, scope: SCOPE });
      code = a2.code;
      verifier = a2.verifier;
      const dr = new Browser(s.baseUrl);
      await signIn(dr, 'drsmith');
      const acc = await accountPage(dr);
      lid = new URL((await dr.post('/oauth/launch', { client_id: 'pub', patient: 'alice', csrf: acc.csrf })).location).searchParams.get('launch');
      sessionCookie = b.cookie('veranda');
    } finally {
      await s.stop();
    }
    // 1000 s later: past the code (60 s), access token (900 s), launch (300 s) and idle session (900 s) lifetimes
    s = await serveFixed({ dataDir: d2, port, env: { VERANDA_CLOCK_OFFSET: '1000' } });
    try {
      const r = await redeem(s, { code, verifier, redirectUri: CB, clientId: 'pub' });
      assertOAuthError(r, 400, 'invalid_grant');
      assert.equal((await fhirGet(s, 'Patient/alice', t.access_token)).status, 401, 'expired access token');
      const ir = await postForm(`${s.baseUrl}/oauth/introspect`, { token: t.access_token }, { auth: basic('conf', CONF_SECRET) });
      assert.equal(ir.status, 200, ir.text);
      assert.deepEqual(ir.json, { active: false }, 'an expired token introspects as exactly {"active":false} (J92)');
      const rr = await postForm(`${s.baseUrl}/oauth/token`, { grant_type: 'refresh_token', refresh_token: t.refresh_token, client_id: 'pub' });
      assert.equal(rr.status, 200, 'the refresh token outlives the access token');
      const dr = new Browser(s.baseUrl);
      await signIn(dr, 'drsmith');
      const a = await authorize(dr, s, { clientId: 'pub', redirectUri: CB, scope: 'launch patient/*.rs', launch: lid });
      assert.equal(a.code, null, 'expired launch');
      assert.equal(a.error, 'invalid_request');
      const old = new Browser(s.baseUrl);
      old.setCookie('veranda', sessionCookie);
      assert.equal((await old.get('/account')).status, 303, 'idle session ended');
    } finally {
      await s.stop();
    }
  });

  it('G75 a refresh token unused for its lifetime is refused (security plan 18)', async () => {
    const args = ['--refresh-token-ttl', '3600'];
    let s = await serveFixed({ dataDir: d2, port, args });
    let t;
    try {
      const a = await authorize(new Browser(s.baseUrl), s, { clientId: 'pub', redirectUri: CB, scope: SCOPE });
      t = (await redeem(s, { code: a.code, verifier: a.verifier, redirectUri: CB, clientId: 'pub' })).json;
      assert.ok(t.refresh_token);
    } finally {
      await s.stop();
    }
    // an hour and a bit later, unused: gone
    s = await serveFixed({ dataDir: d2, port, args, env: { VERANDA_CLOCK_OFFSET: '3700' } });
    try {
      assertOAuthError(await postForm(`${s.baseUrl}/oauth/token`, { grant_type: 'refresh_token', refresh_token: t.refresh_token, client_id: 'pub' }),
        400, 'invalid_grant');
    } finally {
      await s.stop();
    }
  });

  it('G75 a grant allowed for one day ends after a day however often the app refreshes (security plan 18)', async () => {
    let s = await serveFixed({ dataDir: d2, port });
    let t;
    try {
      const a = await authorize(new Browser(s.baseUrl), s, { clientId: 'pub', redirectUri: CB, scope: SCOPE,
        consent: (f, body) => body.set('duration', '86400') });
      t = (await redeem(s, { code: a.code, verifier: a.verifier, redirectUri: CB, clientId: 'pub' })).json;
      assert.ok(t.refresh_token);
    } finally {
      await s.stop();
    }
    const start = Date.now() / 1000;
    // twelve hours later: refreshes, but the new token ends with the grant, not 90 days on
    s = await serveFixed({ dataDir: d2, port, env: { VERANDA_CLOCK_OFFSET: String(12 * 3600) } });
    try {
      const r = await postForm(`${s.baseUrl}/oauth/token`, { grant_type: 'refresh_token', refresh_token: t.refresh_token, client_id: 'pub' });
      assert.equal(r.status, 200, r.text);
      t = r.json;
      const i = await postForm(`${s.baseUrl}/oauth/introspect`, { token: t.refresh_token }, { auth: basic('conf', CONF_SECRET) });
      assert.equal(i.json.active, true, i.text);
      assert.ok(i.json.exp <= start + 86400 + 60, `the refresh token ends with the grant: exp ${i.json.exp - start} s after it began`);
    } finally {
      await s.stop();
    }
    // a day and an hour after the consent: refused, however recently it was refreshed
    s = await serveFixed({ dataDir: d2, port, env: { VERANDA_CLOCK_OFFSET: String(25 * 3600) } });
    try {
      assertOAuthError(await postForm(`${s.baseUrl}/oauth/token`, { grant_type: 'refresh_token', refresh_token: t.refresh_token, client_id: 'pub' }),
        400, 'invalid_grant');
    } finally {
      await s.stop();
    }
  });

  it('a sign-in lock survives a restart and ends after its time (security plan 41, 91)', async () => {
    // a data directory of its own: the failures also count on this address's counter
    const d3 = await makeTempDir('veranda-oauth-lock-');
    await initDataDir(d3);
    await seedDataDir(d3, { patients: 0 });
    const args = ['--signin-lock-time', '900'];
    let s = await serveFixed({ dataDir: d3, port, args });
    const attempt = async (srvx, password) => (await signIn(new Browser(srvx.baseUrl), 'erin', password)).status;
    try {
      let locked = false;
      for (let i = 0; i < 40 && !locked; i++) {
        const st = await attempt(s, `wrong-password-${i}`);
        locked = st === 429 || st === 403;
        if (st === 429) await new Promise((r) => setTimeout(r, 50));
      }
      assert.ok(locked, 'throttled or locked after repeated failures');
    } finally {
      await s.stop();
    }
    // a restart forgets nothing: the right password is still refused
    s = await serveFixed({ dataDir: d3, port, args });
    try {
      assert.notEqual(await attempt(s, 'veranda-demo'), 303, 'still locked after a restart');
    } finally {
      await s.stop();
    }
    // sixteen minutes later the lock is over and the right password works
    s = await serveFixed({ dataDir: d3, port, args, env: { VERANDA_CLOCK_OFFSET: String(16 * 60) } });
    try {
      assert.equal(await attempt(s, 'veranda-demo'), 303, 'the lock ended');
    } finally {
      await s.stop();
      await removeDir(d3);
    }
  });

  it('a session ends at its absolute lifetime even while it is used (security plan 35)', async () => {
    const args = ['--session-max', '300'];
    let s = await serveFixed({ dataDir: d2, port, args });
    const b = new Browser(s.baseUrl);
    try {
      assert.equal((await signIn(b, 'alice')).status, 303);
      assert.equal((await b.get('/account')).status, 200);
    } finally {
      await s.stop();
    }
    // 250 s later: used again, within both limits
    s = await serveFixed({ dataDir: d2, port, args, env: { VERANDA_CLOCK_OFFSET: '250' } });
    try {
      assert.equal((await b.get('/account')).status, 200, 'idle 250 s: still signed in');
    } finally {
      await s.stop();
    }
    // 350 s after sign-in, 100 s after the last use: past the absolute limit
    s = await serveFixed({ dataDir: d2, port, args, env: { VERANDA_CLOCK_OFFSET: '350' } });
    try {
      const r = await b.get('/account');
      assert.equal(r.status, 303, 'the absolute limit ends the session');
      assert.match(r.location, /\/signin$/);
    } finally {
      await s.stop();
    }
  });
});

/* ================================================================ */

describe('sign-in page and throttling (a fresh server)', () => {
  let s2;

  before(async () => {
    s2 = await startServer({ seed: true, auth: false });
  });
  after(() => s2?.stop());

  // The page without its per-response values (CSRF tokens, the echoed username).
  const normal = (html) => html.replace(/name="csrf" value="[^"]*"/g, 'csrf').replace(/name="username"([^>]*)value="[^"]*"/, 'username$1');

  it('wrong password and unknown user: the same status and page', async () => {
    const b = new Browser(s2.baseUrl);
    const wrong = await signIn(b, 'alice', 'not-the-password');
    const unknown = await signIn(b, 'nobody-here', 'not-the-password');
    assert.equal(wrong.status, unknown.status);
    assert.ok(wrong.status === 401 || wrong.status === 200, `status ${wrong.status}`);
    assert.equal(normal(wrong.text), normal(unknown.text));
    assert.match(wrong.text, /wrong username or password/i);
    assert.equal(b.cookie('veranda'), undefined, 'no session');
  });

  it('repeated failures: 429 with Retry-After, even for the right password', async () => {
    const b = new Browser(s2.baseUrl);
    let r;
    let n = 0;
    for (; n < 8; n++) {
      r = await signIn(b, 'erin', `bad-${n}`);
      if (r.status === 429) break;
    }
    assert.equal(r.status, 429, 'throttled');
    assert.ok(n <= 6, `after ${n} failures`);
    const ra = Number(r.headers.get('retry-after'));
    assert.ok(Number.isInteger(ra) && ra >= 1 && ra <= 900, `Retry-After ${r.headers.get('retry-after')}`);
    r = await signIn(b, 'erin', 'veranda-demo');
    assert.equal(r.status, 429, 'no password check while throttled');
    assert.equal(b.cookie('veranda'), undefined);
  });
});
