// Attacks from the OAuth 2.0 Security Best Current Practice (RFC 9700)
// against the authorization server: redirect-URI manipulation, open
// redirects, code injection and replay, PKCE downgrade, mix-up, refresh
// token replay, CSRF on the sign-in and consent forms, session fixation,
// and access tokens in URLs.  Each test plays the attacker and checks
// that nothing was issued or reached.
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import http from 'node:http';
import * as jose from 'jose';
import * as oc from 'openid-client';
import { makeTempDir, removeDir, initDataDir, seedDataDir, startServer, requireBinary } from './lib/server.mjs';
import {
  Browser, authorize, authzRequest, walk, redeem, postForm, basic, fhirGet, registerClient, signIn,
  accountPage, formFor, field, pkcePair,
} from './lib/oauth.mjs';

const SCOPE = 'launch/patient openid fhirUser offline_access patient/*.rs';
const APP_CB = 'https://app.example/cb';
const NATIVE_CB = 'http://127.0.0.1/native';
const OTHER_CB = 'https://other.example/cb';
const CONF_CB = 'https://conf.example/cb';
const CONF_SECRET = 'conf-secret-0123456789';
const CONF2_SECRET = 'conf2-secret-9876543210';
const EVIL = 'https://evil.example';
const XSS_NAME = '"><script>alert(1)</script><img src=x onerror=alert(2)>';

let dir, srv, tokenUrl, alice;

before(async () => {
  requireBinary();
  dir = await makeTempDir('veranda-oauth-attacks-');
  await initDataDir(dir);
  await seedDataDir(dir, { patients: 0 });
  await registerClient(dir, { clientId: 'app', public: true, redirectUris: [APP_CB, NATIVE_CB, 'https://app.example/q?x=1'],
    launchUrl: 'https://app.example/launch' });
  await registerClient(dir, { clientId: 'other', public: true, redirectUris: [OTHER_CB] });
  await registerClient(dir, { clientId: 'conf', secret: CONF_SECRET, redirectUris: [CONF_CB] });
  await registerClient(dir, { clientId: 'conf2', secret: CONF2_SECRET, redirectUris: [CONF_CB] });
  await registerClient(dir, { clientId: 'xss', public: true, redirectUris: ['https://xss.example/cb'], name: XSS_NAME });
  srv = await startServer({ dataDir: dir, init: false, auth: false });
  tokenUrl = `${srv.baseUrl}/oauth/token`;
  alice = new Browser(srv.baseUrl);
  assert.equal((await signIn(alice, 'alice')).status, 303);
});

after(async () => {
  if (srv) await srv.stop();
  await removeDir(dir);
});

// No response may send the browser off this server, except to these.
function assertNoOffsiteRedirect(r, allowed = []) {
  if (!r.location) return;
  const u = new URL(r.location);
  if (u.origin === srv.baseUrl) return;
  assert.ok(allowed.some((a) => r.location.startsWith(a)), `redirect to ${r.location}`);
}

// An error page: 400, no Location, and no link or refresh to 'bad' in the page.
function assertRefusedPage(r, bad) {
  assert.equal(r.status, 400, `${bad}: ${r.status} ${r.location}`);
  assert.equal(r.location, null, `${bad}: no Location`);
  assert.ok(!/http-equiv\s*=\s*"?refresh/i.test(r.text), 'no meta refresh');
  if (bad && /^https?:/.test(bad)) assert.ok(!r.text.includes(`href="${bad}`), 'no link to the redirect URI');
}

async function tokensFor(browser, clientId = 'app', redirectUri = APP_CB, extra = {}) {
  const a = await authorize(browser, srv, { clientId, redirectUri, scope: SCOPE, ...extra });
  assert.ok(a.code, `a code for ${clientId}`);
  const r = await redeem(srv, { code: a.code, verifier: a.verifier, redirectUri, clientId });
  assert.equal(r.status, 200, r.text);
  return r.json;
}

/* ================================================================ */

describe('redirect URI manipulation (RFC 9700 4.1)', () => {
  const httpsVariants = [
    'https://app.example/cb/', 'https://app.example/cbx', 'https://app.example/cb/extra', 'https://app.example/CB',
    'https://app.example/cb/../evil', 'https://app.example/cb/%2e%2e/evil', 'https://app.example/cb%2F..%2Fevil',
    'https://app.example/evil/../cb', 'https://app.example/./cb', 'https://app.example//cb',
    'https://app.example/cb?next=https://evil.example', 'https://app.example/cb#frag', 'https://app.example/cb%00',
    'https://app.example/cb%23', 'https://app.example/cb ', ' https://app.example/cb',
    'https://app.example.evil.example/cb', 'https://evil.example/https://app.example/cb', 'https://evil.example/cb',
    'https://app.example@evil.example/cb', 'https://evil.example@app.example/cb', 'https://app.example:443@evil.example/cb',
    'https://app.example%2eevil.example/cb', 'https://app.example%40evil.example/cb', 'https://app.example\\@evil.example/cb',
    'https://app.example:8443/cb', 'https://app.example:443/cb', 'http://app.example/cb', 'HTTPS://APP.EXAMPLE/cb',
    'https://APP.example/cb', '//evil.example/cb', '/cb', 'javascript:alert(1)//https://app.example/cb',
    'https://app.example/q', 'https://app.example/q?x=2', 'https://app.example/q?x=1&y=2',
    // security test plan case 2: double encoding, a subdomain, a trailing-dot host
    'https://app.example/cb/%252E%252E/evil', 'https://app.example/cb%252F..%252Fevil', 'https://evil.app.example/cb',
    'https://app.example./cb',
  ];

  it('a redirect_uri that differs from the registered one in any way gets an error page', async () => {
    for (const uri of httpsVariants) {
      const req = authzRequest(srv, { clientId: 'app', redirectUri: uri, scope: SCOPE });
      assertRefusedPage(await alice.get(req.url), uri);
      // the same with an error that would otherwise go back to the app
      const bad = authzRequest(srv, { clientId: 'app', redirectUri: uri, scope: SCOPE, extra: { response_type: 'token' } });
      assertRefusedPage(await alice.get(bad.url), uri);
    }
  });

  it('loopback redirects: only the port may vary, on the registered IP literal', async () => {
    for (const uri of ['http://127.0.0.1:5555/native/../x', 'http://127.0.0.1:5555/nativex', 'http://127.0.0.1.evil.example/native',
      'http://127.0.0.1@evil.example/native', 'http://127.0.0.1:5555@evil.example/native', 'http://localhost:5555/native',
      'http://127.0.0.2/native', 'http://127.0.0.1:0/native', 'http://127.0.0.1:99999/native', 'http://127.0.0.1:5555x/native',
      'http://[::1]:5555/native', 'https://127.0.0.1:5555/native', 'http://127.0.0.1:5555/Native']) {
      const req = authzRequest(srv, { clientId: 'app', redirectUri: uri, scope: SCOPE });
      assertRefusedPage(await alice.get(req.url), uri);
    }
    const ok = authzRequest(srv, { clientId: 'app', redirectUri: 'http://127.0.0.1:5555/native', scope: SCOPE });
    const w = await walk(alice, ok.url, {});
    assert.equal(w.redirect?.origin, 'http://127.0.0.1:5555', 'the same path on another port is fine (RFC 8252)');
    assert.ok(w.redirect.searchParams.get('code'));
  });

  it('a registered redirect URI with a query keeps it and appends the response', async () => {
    const a = await authorize(alice, srv, { clientId: 'app', redirectUri: 'https://app.example/q?x=1', scope: SCOPE,
      state: 'a b&c=d#e/é+%' });
    assert.equal(a.redirect.origin + a.redirect.pathname, 'https://app.example/q');
    assert.equal(a.redirect.searchParams.get('x'), '1');
    assert.ok(a.code);
    assert.equal(a.state, 'a b&c=d#e/é+%', 'state comes back exactly');
    assert.equal(a.redirect.hash, '', 'no fragment');
  });

  it('the redirect URI of the authorization request is the one the code is bound to', async () => {
    const a = await authorize(alice, srv, { clientId: 'app', redirectUri: 'http://127.0.0.1:5555/native', scope: SCOPE });
    const r = await redeem(srv, { code: a.code, verifier: a.verifier, redirectUri: 'http://127.0.0.1:6666/native', clientId: 'app' });
    assert.equal(r.status, 400);
    assert.equal(r.json.error, 'invalid_grant');
  });
});

/* ================================================================ */

describe('open redirects (RFC 9700 4.11)', () => {
  it('no endpoint redirects to an unregistered URI, on success or error', async () => {
    const b = new Browser(srv.baseUrl);
    const bad = `${EVIL}/steal`;
    // authorization errors that must not redirect
    for (const q of [`client_id=nobody&redirect_uri=${encodeURIComponent(bad)}&response_type=code`,
      `redirect_uri=${encodeURIComponent(bad)}&response_type=code`,
      `client_id=app&redirect_uri=${encodeURIComponent(bad)}&response_type=code&scope=openid`,
      `client_id=app&client_id=other&redirect_uri=${encodeURIComponent(OTHER_CB)}&response_type=code`,
      `client_id=app&redirect_uri=${encodeURIComponent(APP_CB)}&redirect_uri=${encodeURIComponent(bad)}&response_type=code`]) {
      const r = await b.get(`/oauth/authorize?${q}`);
      assertRefusedPage(r, bad);
    }
    // pages that take a "next"-like parameter, with the forms browsers read as off-site (security test plan case 40)
    for (const v of [bad, '//evil.example', '/\\evil.example', 'https:evil.example', '%2F%2Fevil.example', '/%09/evil.example',
      'javascript:alert(1)', '/\t/evil.example']) {
      for (const p of [`/signin?next=${encodeURIComponent(v)}`, `/signin?redirect_uri=${encodeURIComponent(v)}`,
        `/oauth/continue?req=bogus&redirect_uri=${encodeURIComponent(v)}`, `/account?next=${encodeURIComponent(v)}`,
        `/signout?post_logout_redirect_uri=${encodeURIComponent(v)}`, `/signin?return_to=${encodeURIComponent(v)}`]) {
        const r = await b.get(p);
        assertNoOffsiteRedirect(r);
        if (r.location) assert.ok(!/evil|javascript/i.test(r.location), `${p}: ${r.location}`);
      }
    }
    // a sign-in with a "next" goes to the account page
    const page = await b.get(`/signin?next=${encodeURIComponent(bad)}&return_to=${encodeURIComponent(bad)}`);
    const f = formFor(page.text, '/oauth/login');
    const body = new URLSearchParams(f.fields);
    body.set('username', 'alice');
    body.set('password', 'veranda-demo');
    body.set('next', bad);
    body.set('redirect_uri', bad);
    let r = await b.post(`/oauth/login?next=${encodeURIComponent(bad)}`, body);
    assert.equal(r.status, 303);
    assert.equal(new URL(r.location).origin, srv.baseUrl, `after sign-in: ${r.location}`);
    // a bogus request id on the login form
    body.set('req', 'x'.repeat(43));
    r = await b.post('/oauth/login', body);
    assertNoOffsiteRedirect(r);
    // sign-out and account actions
    const acc = await accountPage(b);
    r = await b.post('/account/revoke', { csrf: acc.csrf, grant: 'nope', next: bad, redirect_uri: bad });
    assertNoOffsiteRedirect(r);
    r = await b.post('/oauth/decide', { csrf: acc.csrf, req: 'x'.repeat(43), action: 'allow', redirect_uri: bad });
    assertNoOffsiteRedirect(r);
    assert.equal(r.status, 400);
    r = await b.post('/signout', { csrf: acc.csrf, everywhere: '0', post_logout_redirect_uri: bad, next: bad });
    assertNoOffsiteRedirect(r);
  });

  it('an EHR launch only goes to the app\'s registered launch URL', async () => {
    const dr = new Browser(srv.baseUrl);
    await signIn(dr, 'drsmith');
    const acc = await accountPage(dr);
    let r = await dr.post('/oauth/launch', { csrf: acc.csrf, client_id: 'app', patient: 'alice', launch_url: EVIL, iss: EVIL });
    assert.equal(r.status, 303);
    assert.ok(r.location.startsWith('https://app.example/launch?'), r.location);
    assert.equal(new URL(r.location).searchParams.get('iss'), srv.fhirBase);
    // an app without a launch URL, or no app at all: a page
    for (const cid of ['other', 'nobody']) {
      r = await dr.post('/oauth/launch', { csrf: acc.csrf, client_id: cid, patient: 'alice' });
      assert.equal(r.location, null, cid);
      assert.ok(r.status >= 400);
    }
  });
});

/* ================================================================ */

describe('stolen and injected codes (RFC 9700 4.5, 4.2.4)', () => {
  it('a code of client A is useless to client B, and spent by the attempt', async () => {
    const a = await authorize(alice, srv, { clientId: 'app', redirectUri: APP_CB, scope: SCOPE });
    // the attacker's own public client, with the victim's verifier even
    let r = await redeem(srv, { code: a.code, verifier: a.verifier, redirectUri: OTHER_CB, clientId: 'other' });
    assert.equal(r.status, 400);
    assert.equal(r.json.error, 'invalid_grant');
    r = await redeem(srv, { code: a.code, verifier: a.verifier, redirectUri: APP_CB, clientId: 'other' });
    assert.equal(r.status, 400);
    // a confidential client
    const b = await authorize(alice, srv, { clientId: 'app', redirectUri: APP_CB, scope: SCOPE });
    r = await redeem(srv, { code: b.code, verifier: b.verifier, redirectUri: APP_CB, auth: basic('conf', CONF_SECRET) });
    assert.equal(r.status, 400);
    assert.equal(r.json.error, 'invalid_grant');
    // "consumed by its first redemption attempt": the victim's own exchange now fails too
    r = await redeem(srv, { code: b.code, verifier: b.verifier, redirectUri: APP_CB, clientId: 'app' });
    assert.equal(r.status, 400);
  });

  it('a confidential client\'s code: another registered client\'s id with its secret is invalid_client, with its own secret invalid_grant (security plan 11)', async () => {
    const a = await authorize(alice, srv, { clientId: 'conf', redirectUri: CONF_CB, scope: SCOPE });
    assert.ok(a.code, `a code (${a.walk.pages})`);
    let r = await redeem(srv, { code: a.code, verifier: a.verifier, redirectUri: CONF_CB, auth: basic('conf2', CONF_SECRET) });
    assert.equal(r.status, 401, r.text);
    assert.equal(r.json.error, 'invalid_client');
    r = await redeem(srv, { code: a.code, verifier: a.verifier, redirectUri: CONF_CB,
      extra: { client_id: 'conf2', client_secret: CONF_SECRET } });
    assert.equal(r.status, 401, r.text);
    assert.equal(r.json.error, 'invalid_client');
    r = await redeem(srv, { code: a.code, verifier: a.verifier, redirectUri: CONF_CB, auth: basic('conf2', CONF2_SECRET) });
    assert.equal(r.status, 400, r.text);
    assert.equal(r.json.error, 'invalid_grant');
    // the attempt spent the code: its own client cannot redeem it now
    r = await redeem(srv, { code: a.code, verifier: a.verifier, redirectUri: CONF_CB, auth: basic('conf', CONF_SECRET) });
    assert.equal(r.status, 400, r.text);
  });

  it('a code injected into another session is useless without its PKCE verifier', async () => {
    // the attacker obtains a code for the victim's account, then the victim's app
    // redeems it with its own verifier (the attacker cannot know it)
    const stolen = await authorize(alice, srv, { clientId: 'app', redirectUri: APP_CB, scope: SCOPE });
    const victimVerifier = pkcePair().verifier;
    const r = await redeem(srv, { code: stolen.code, verifier: victimVerifier, redirectUri: APP_CB, clientId: 'app' });
    assert.equal(r.status, 400);
    assert.equal(r.json.error, 'invalid_grant');
  });

  it('a replayed code fails and revokes what the first redemption got', async () => {
    const a = await authorize(alice, srv, { clientId: 'app', redirectUri: APP_CB, scope: SCOPE });
    const t = (await redeem(srv, { code: a.code, verifier: a.verifier, redirectUri: APP_CB, clientId: 'app' })).json;
    assert.equal((await fhirGet(srv, 'Patient/alice', t.access_token)).status, 200);
    const r = await redeem(srv, { code: a.code, verifier: a.verifier, redirectUri: APP_CB, clientId: 'app' });
    assert.equal(r.status, 400);
    assert.equal((await fhirGet(srv, 'Patient/alice', t.access_token)).status, 401);
    const rr = await postForm(tokenUrl, { grant_type: 'refresh_token', refresh_token: t.refresh_token, client_id: 'app' });
    assert.equal(rr.status, 400);
  });

  it('a code replayed a second and a half later fails too, and revokes what the first redemption got (security plan 9)', async () => {
    const a = await authorize(alice, srv, { clientId: 'app', redirectUri: APP_CB, scope: SCOPE });
    const first = await redeem(srv, { code: a.code, verifier: a.verifier, redirectUri: APP_CB, clientId: 'app' });
    assert.equal(first.status, 200, first.text);
    assert.equal((await fhirGet(srv, 'Patient/alice', first.json.access_token)).status, 200);
    await new Promise((r) => setTimeout(r, 1500));
    const again = await redeem(srv, { code: a.code, verifier: a.verifier, redirectUri: APP_CB, clientId: 'app' });
    assert.equal(again.status, 400);
    assert.equal(again.json.error, 'invalid_grant');
    assert.equal((await fhirGet(srv, 'Patient/alice', first.json.access_token)).status, 401, 'the first access token is revoked');
    const rr = await postForm(tokenUrl, { grant_type: 'refresh_token', refresh_token: first.json.refresh_token, client_id: 'app' });
    assert.equal(rr.status, 400, 'and its refresh token');
  });

  it('twenty redemptions of one code at once: exactly one succeeds, and what it got is then revoked', async () => {
    const a = await authorize(alice, srv, { clientId: 'app', redirectUri: APP_CB, scope: SCOPE });
    const all = await Promise.all(Array.from({ length: 20 },
      () => redeem(srv, { code: a.code, verifier: a.verifier, redirectUri: APP_CB, clientId: 'app' })));
    const won = all.filter((r) => r.status === 200);
    assert.equal(won.length, 1, `statuses: ${all.map((r) => r.status)}`);
    assert.ok(all.every((r) => r.status === 200 || (r.status === 400 && r.json.error === 'invalid_grant')));
    // the losers were replays: the winner's tokens are revoked
    assert.equal((await fhirGet(srv, 'Patient/alice', won[0].json.access_token)).status, 401);
  });

  it('ten uses of one refresh token at once: at most one succeeds, and the family is then revoked', async () => {
    const t = await tokensFor(alice);
    const all = await Promise.all(Array.from({ length: 10 },
      () => postForm(tokenUrl, { grant_type: 'refresh_token', refresh_token: t.refresh_token, client_id: 'app' })));
    const won = all.filter((r) => r.status === 200);
    assert.ok(won.length <= 1, `statuses: ${all.map((r) => r.status)}`);
    assert.ok(all.every((r) => r.status === 200 || r.status === 400), `statuses: ${all.map((r) => r.status)}`);
    for (const w of won) {
      assert.equal((await fhirGet(srv, 'Patient/alice', w.json.access_token)).status, 401, 'the reuse revoked the family');
      const next = await postForm(tokenUrl, { grant_type: 'refresh_token', refresh_token: w.json.refresh_token, client_id: 'app' });
      assert.equal(next.status, 400);
    }
  });

  it('codes, refresh tokens and id tokens are not access tokens', async () => {
    const a = await authorize(alice, srv, { clientId: 'app', redirectUri: APP_CB, scope: SCOPE });
    assert.equal((await fhirGet(srv, 'Patient/alice', a.code)).status, 401);
    const t = (await redeem(srv, { code: a.code, verifier: a.verifier, redirectUri: APP_CB, clientId: 'app' })).json;
    assert.equal((await fhirGet(srv, 'Patient/alice', t.refresh_token)).status, 401);
    assert.equal((await fhirGet(srv, 'Patient/alice', t.id_token)).status, 401);
    // an access token with a forged signature
    const [h, p] = t.access_token.split('.');
    const claims = JSON.parse(Buffer.from(p, 'base64url'));
    claims.patient = 'bob-self';
    const forged = `${h}.${Buffer.from(JSON.stringify(claims)).toString('base64url')}.${t.access_token.split('.')[2]}`;
    assert.equal((await fhirGet(srv, 'Patient/bob-self', forged)).status, 401);
    // alg none
    const none = `${Buffer.from(JSON.stringify({ alg: 'none', typ: 'at+jwt' })).toString('base64url')}.${Buffer.from(JSON.stringify(claims)).toString('base64url')}.`;
    assert.equal((await fhirGet(srv, 'Patient/bob-self', none)).status, 401);
  });
});

/* ================================================================ */

describe('PKCE downgrade (RFC 9700 4.8)', () => {
  it('a code issued with S256 cannot be redeemed without the verifier or with the challenge', async () => {
    for (const mutate of [(p) => delete p.code_verifier, (p) => (p.code_verifier = ''),
      (p, ch) => (p.code_verifier = ch), (p) => (p.code_verifier = 'x'.repeat(43)), (p, ch, v) => (p.code_verifier = `${v}x`),
      (p, ch, v) => (p.code_verifier = v.slice(0, 42))]) {
      const a = await authorize(alice, srv, { clientId: 'app', redirectUri: APP_CB, scope: SCOPE });
      const p = { grant_type: 'authorization_code', code: a.code, redirect_uri: APP_CB, client_id: 'app', code_verifier: a.verifier };
      mutate(p, a.request.params.get('code_challenge'), a.verifier);
      const r = await postForm(tokenUrl, p);
      assert.equal(r.status, 400, r.text);
      assert.equal(r.json.error, 'invalid_grant');
    }
  });

  it('no code is issued without an S256 challenge, so there is nothing to downgrade; confidential apps too (security plan 5)', async () => {
    for (const [clientId, cb] of [['app', APP_CB], ['conf', CONF_CB]]) {
      for (const extra of [{ code_challenge: undefined, code_challenge_method: undefined }, { code_challenge_method: 'plain' },
        { code_challenge_method: undefined }]) {
        const req = authzRequest(srv, { clientId, redirectUri: cb, scope: SCOPE, extra });
        const w = await walk(alice, req.url, {});
        assert.equal(w.redirect.searchParams.get('code'), null, `${clientId} ${JSON.stringify(extra)}`);
        assert.equal(w.redirect.searchParams.get('error'), 'invalid_request');
      }
    }
  });
});

/* ================================================================ */

describe('mix-up (RFC 9700 4.4, RFC 9207)', () => {
  it('every authorization response carries iss equal to the discovered issuer', async () => {
    const d = await (await fetch(`${srv.baseUrl}/.well-known/oauth-authorization-server`)).json();
    assert.equal(d.authorization_response_iss_parameter_supported, true);
    const responses = [];
    const ok = await authorize(alice, srv, { clientId: 'app', redirectUri: APP_CB, scope: SCOPE });
    responses.push(ok.redirect);
    responses.push((await authorize(alice, srv, { clientId: 'app', redirectUri: APP_CB, scope: SCOPE, action: 'deny' })).redirect);
    const errors = [];
    for (const extra of [{ response_type: 'token' }, { scope: undefined }, { aud: undefined }, { code_challenge: undefined },
      { prompt: 'none' }, { launch: 'nope', scope: 'launch patient/*.rs' }, { scope: 'patient/*.rs"' }]) {
      const req = authzRequest(srv, { clientId: 'app', redirectUri: APP_CB, scope: SCOPE, extra });
      const r = await new Browser(srv.baseUrl).get(req.url);
      assert.equal(r.status, 303, JSON.stringify(extra));
      responses.push(new URL(r.location));
      errors.push(new URL(r.location).searchParams.get('error'));
    }
    // security test plan case 20: the success, access_denied, invalid_scope and login_required responses
    for (const want of ['access_denied', 'invalid_scope', 'login_required', 'invalid_request', 'unsupported_response_type'])
      assert.ok([...errors, responses[1].searchParams.get('error')].includes(want), `${want} among ${errors}`);
    for (const u of responses) {
      assert.ok(u.searchParams.get('code') || u.searchParams.get('error'), u.href);
      assert.equal(u.searchParams.getAll('iss').length, 1, u.href);
      assert.equal(u.searchParams.get('iss'), d.issuer, u.href);
    }
  });

  it('a client that expects another issuer (openid-client) rejects the response', async () => {
    const real = await oc.discovery(new URL(srv.baseUrl), 'app', undefined, oc.None(), { execute: [oc.allowInsecureRequests] });
    const meta = { ...real.serverMetadata(), issuer: 'https://honest-as.example' };
    const confused = new oc.Configuration(meta, 'app', undefined, oc.None());
    oc.allowInsecureRequests(confused);
    const a = await authorize(alice, srv, { clientId: 'app', redirectUri: APP_CB, scope: SCOPE });
    await assert.rejects(oc.authorizationCodeGrant(confused, a.redirect, { pkceCodeVerifier: a.verifier, expectedState: a.sentState }),
      (e) => {
        assert.match(`${e.message}: ${e.cause?.message}`, /"iss"/, 'refused for its iss parameter');
        return true;
      });
    // the same response is accepted by the client of the right server
    const t = await oc.authorizationCodeGrant(real, a.redirect, { pkceCodeVerifier: a.verifier, expectedState: a.sentState });
    assert.ok(t.access_token);
  });

  it('the authorization response is a 303 (RFC 9700 4.12: never 307)', async () => {
    const req = authzRequest(srv, { clientId: 'app', redirectUri: APP_CB, scope: SCOPE });
    const w = await walk(alice, req.url, {});
    assert.equal(w.response.status, 303);
  });
});

/* ================================================================ */

describe('refresh token replay (RFC 9700 4.14)', () => {
  it('the legitimate client replaying after an attacker used the token ends the attacker\'s tokens too', async () => {
    const t = await tokensFor(alice);
    // the attacker uses a stolen refresh token first
    const stolen = await postForm(tokenUrl, { grant_type: 'refresh_token', refresh_token: t.refresh_token, client_id: 'app' });
    assert.equal(stolen.status, 200);
    assert.equal((await fhirGet(srv, 'Patient/alice', stolen.json.access_token)).status, 200);
    // the app then presents the same (now rotated) token
    const legit = await postForm(tokenUrl, { grant_type: 'refresh_token', refresh_token: t.refresh_token, client_id: 'app' });
    assert.equal(legit.status, 400);
    assert.equal(legit.json.error, 'invalid_grant');
    assert.equal((await fhirGet(srv, 'Patient/alice', stolen.json.access_token)).status, 401, 'attacker access token revoked');
    const more = await postForm(tokenUrl, { grant_type: 'refresh_token', refresh_token: stolen.json.refresh_token, client_id: 'app' });
    assert.equal(more.status, 400, 'attacker refresh token revoked');
  });

  it('a refresh token is bound to its client', async () => {
    const t = await tokensFor(alice);
    for (const r of [await postForm(tokenUrl, { grant_type: 'refresh_token', refresh_token: t.refresh_token, client_id: 'other' }),
      await postForm(tokenUrl, { grant_type: 'refresh_token', refresh_token: t.refresh_token }, { auth: basic('conf', CONF_SECRET) })]) {
      assert.equal(r.status, 400);
      assert.equal(r.json.error, 'invalid_grant');
    }
    assert.equal((await postForm(tokenUrl, { grant_type: 'refresh_token', refresh_token: t.refresh_token, client_id: 'app' })).status, 200);
  });
});

/* ================================================================ */

describe('CSRF (RFC 9700 4.7) and session fixation', () => {
  async function loginForm(b) {
    const page = await b.get('/signin');
    const f = formFor(page.text, '/oauth/login');
    const body = new URLSearchParams(f.fields);
    body.set('username', 'alice');
    body.set('password', 'veranda-demo');
    return body;
  }

  async function signedIn(b) {
    return (await b.get('/account')).status === 200;
  }

  it('the sign-in form: a missing or wrong token, or another origin, is refused and signs nobody in', async () => {
    const cases = [
      ['no csrf field', (body) => body.delete('csrf')],
      ['wrong csrf field', (body) => body.set('csrf', crypto.randomBytes(32).toString('base64url'))],
      ['no csrf cookie', (body, b) => b.setCookie('veranda-csrf', undefined)],
      ['another origin', (body, b, h) => (h.origin = EVIL)],
      ['empty csrf', (body, b) => { body.set('csrf', ''); b.setCookie('veranda-csrf', undefined); }],
    ];
    for (const [what, edit] of cases) {
      const b = new Browser(srv.baseUrl);
      const body = await loginForm(b);
      const headers = {};
      edit(body, b, headers);
      const r = await b.request('/oauth/login', { method: 'POST', form: body, headers });
      assert.equal(r.status, 403, what);
      assert.equal(b.cookie('veranda'), undefined, `${what}: no session cookie`);
      assert.equal(await signedIn(b), false, `${what}: not signed in`);
    }
    // the same browser with a correct form signs in (the control)
    const b = new Browser(srv.baseUrl);
    const r = await b.post('/oauth/login', await loginForm(b));
    assert.equal(r.status, 303);
    assert.equal(await signedIn(b), true);
  });

  // The same four forgeries against a form: each must answer 403.
  const forgeries = (fields, foreignCsrf) => [
    ['another origin', new URLSearchParams(fields), { origin: EVIL }],
    ['no csrf', (() => { const x = new URLSearchParams(fields); x.delete('csrf'); return x; })(), {}],
    ['wrong csrf', (() => { const x = new URLSearchParams(fields); x.set('csrf', crypto.randomBytes(32).toString('base64url')); return x; })(), {}],
    ['another session\'s csrf', (() => { const x = new URLSearchParams(fields); x.set('csrf', foreignCsrf); return x; })(), {}],
  ];

  it('"Remove access" on /account: a forged post is refused and the app keeps its access', async () => {
    const mallory = new Browser(srv.baseUrl);
    await signIn(mallory, 'bob');
    const t = await tokensFor(alice);
    const gid = jose.decodeJwt(t.access_token).grant;
    const f = (await accountPage(alice)).forms.find((x) => x.action === '/account/revoke' && field(x, 'grant') === gid);
    assert.ok(f, 'the grant is listed');
    for (const [what, body, headers] of forgeries(f.fields, (await accountPage(mallory)).csrf)) {
      const r = await alice.request('/account/revoke', { method: 'POST', form: body, headers });
      assert.equal(r.status, 403, what);
      assert.equal((await fhirGet(srv, 'Patient/alice', t.access_token)).status, 200, `${what}: access kept`);
    }
    // bob's own session, with its own valid token, cannot remove alice's grant either
    const own = new URLSearchParams(f.fields);
    own.set('csrf', (await accountPage(mallory)).csrf);
    await mallory.post('/account/revoke', own);
    assert.equal((await fhirGet(srv, 'Patient/alice', t.access_token)).status, 200, 'another user cannot remove alice\'s grant');
    // the genuine form works
    assert.equal((await alice.post('/account/revoke', new URLSearchParams(f.fields))).status, 303);
    assert.equal((await fhirGet(srv, 'Patient/alice', t.access_token)).status, 401);
  });

  it('an EHR launch (/oauth/launch): a forged post is refused and creates no launch', async () => {
    const dr = new Browser(srv.baseUrl);
    await signIn(dr, 'drsmith');
    const mallory = new Browser(srv.baseUrl);
    await signIn(mallory, 'bob');
    const fields = { client_id: 'app', patient: 'alice', csrf: (await accountPage(dr)).csrf };
    for (const [what, body, headers] of forgeries(fields, (await accountPage(mallory)).csrf)) {
      const r = await dr.request('/oauth/launch', { method: 'POST', form: body, headers });
      assert.equal(r.status, 403, what);
      assert.ok(!(r.location || '').includes('launch='), `${what}: no launch`);
    }
    const ok = await dr.post('/oauth/launch', new URLSearchParams(fields));
    assert.equal(ok.status, 303);
    assert.ok(new URL(ok.location).searchParams.get('launch'), 'the genuine form launches');
  });

  it('an app name with markup is shown as text on the consent page and on /account (security plan 38)', async () => {
    const req = authzRequest(srv, { clientId: 'xss', redirectUri: 'https://xss.example/cb', scope: SCOPE });
    const w = await walk(alice, req.url, { stopAt: 'consent' });
    assert.equal(w.response.status, 200);
    const page = w.response.text;
    assert.ok(!page.includes('<script>alert') && !page.includes('<img src=x'), 'no live markup from the app name');
    assert.ok(page.includes('&lt;script&gt;alert(1)&lt;/script&gt;'), 'the name is there, escaped');
    const decided = await walk(alice, req.url);
    assert.ok(decided.redirect?.searchParams.get('code'), 'allowed');
    const acc = await accountPage(alice);
    assert.ok(!acc.text.includes('<script>alert') && acc.text.includes('&lt;script&gt;'), '/account lists the app, escaped');
    assert.match(acc.headers.get('content-security-policy') || '', /default-src 'none'/);
  });

  it('the consent form: another origin, a missing or foreign token is refused and issues no code', async () => {
    const mallory = new Browser(srv.baseUrl);
    await signIn(mallory, 'bob');
    const malloryCsrf = (await accountPage(mallory)).csrf;
    const req = authzRequest(srv, { clientId: 'app', redirectUri: APP_CB, scope: SCOPE });
    const w = await walk(alice, req.url, { stopAt: 'consent' });
    const form = w.form;
    const good = new URLSearchParams(form.fields);
    good.set('action', 'allow');
    const attempts = [
      ['another origin', good, { origin: EVIL }],
      ['no csrf', (() => { const x = new URLSearchParams(good); x.delete('csrf'); return x; })(), {}],
      ['wrong csrf', (() => { const x = new URLSearchParams(good); x.set('csrf', crypto.randomBytes(32).toString('base64url')); return x; })(), {}],
      ['another session\'s csrf', (() => { const x = new URLSearchParams(good); x.set('csrf', malloryCsrf); return x; })(), {}],
    ];
    for (const [what, body, headers] of attempts) {
      const r = await alice.request('/oauth/decide', { method: 'POST', form: body, headers });
      assert.equal(r.status, 403, what);
      assert.ok(!r.location || !r.location.includes('code='), `${what}: no code`);
    }
    // another user's session posting alice's request id with its own token gets no code for alice
    const r = await mallory.post('/oauth/decide', (() => { const x = new URLSearchParams(good); x.set('csrf', malloryCsrf); return x; })());
    assert.equal(r.location, null, 'no code for alice\'s request from another user\'s session');
    assert.ok(!formFor(r.text, '/oauth/decide'), 'no consent for alice\'s record');
    // the genuine form still works
    const ok = await alice.post('/oauth/decide', good);
    assert.equal(ok.status, 303);
    const u = new URL(ok.location);
    assert.ok(u.searchParams.get('code'), 'the real decision issues a code');
    const t = await redeem(srv, { code: u.searchParams.get('code'), verifier: req.verifier, redirectUri: APP_CB, clientId: 'app' });
    assert.equal(t.json.patient, 'alice');
  });

  it('the patient picker cannot be pointed at someone else\'s record', async () => {
    const b = new Browser(srv.baseUrl);
    await signIn(b, 'bob');
    const req = authzRequest(srv, { clientId: 'app', redirectUri: APP_CB, scope: SCOPE });
    const w = await walk(b, req.url, { stopAt: 'picker' });
    const body = new URLSearchParams(w.form.fields);
    body.set('patient', 'alice');
    const r = await b.post('/oauth/patient', body);
    assert.ok(!formFor(r.text, '/oauth/decide'), 'no consent page for alice');
    // even if bob goes on to decide, the grant is not for alice
    const dec = new URLSearchParams({ csrf: field(w.form, 'csrf'), req: field(w.form, 'req'), action: 'allow' });
    const d = await b.post('/oauth/decide', dec);
    assert.equal(d.location, null, 'no code without a patient bob may act for');
  });

  it('signing in replaces any session id the browser had (no fixation); the cookie is HttpOnly and SameSite', async () => {
    const b = new Browser(srv.baseUrl);
    const planted = crypto.randomBytes(32).toString('base64url');
    b.setCookie('veranda', planted);
    const page = await b.get('/signin');
    const f = formFor(page.text, '/oauth/login');
    const body = new URLSearchParams(f.fields);
    body.set('username', 'alice');
    body.set('password', 'veranda-demo');
    const res = await fetch(`${srv.baseUrl}/oauth/login`, { method: 'POST', redirect: 'manual', body,
      headers: { cookie: b.cookieHeader(), 'content-type': 'application/x-www-form-urlencoded' } });
    assert.equal(res.status, 303);
    const sc = res.headers.getSetCookie().find((c) => c.startsWith('veranda='));
    assert.ok(sc, 'a session cookie is set');
    const value = sc.split(';')[0].slice('veranda='.length);
    assert.notEqual(value, planted);
    assert.match(sc, /;\s*HttpOnly/i);
    assert.match(sc, /;\s*SameSite=(Lax|Strict)/i);
    assert.match(sc, /;\s*Path=\//i);
    // the planted id is not a session
    const p = new Browser(srv.baseUrl);
    p.setCookie('veranda', planted);
    assert.equal((await p.get('/account')).status, 303);
  });
});

/* ================================================================ */

describe('bearer tokens in URLs (RFC 9700 4.3.2, RFC 6750 2.3)', () => {
  it('?access_token= and a form-body access_token are refused on the FHIR API, even beside the header (400 invalid_request)', async () => {
    const t = await tokensFor(alice);
    const refused = (r, what) => {
      assert.equal(r.status, 400, `${what}: ${r.status}`);
      assert.match(r.headers.get('www-authenticate') || '', /error="invalid_request"/, what);
      assert.ok(!(r.text || '').includes('"entry"'), `${what}: no data`);
    };
    const tok = encodeURIComponent(t.access_token);
    refused(await fhirGet(srv, `Patient/alice?access_token=${tok}`, ''), 'query alone');
    refused(await fhirGet(srv, `Patient?_id=alice&access_token=${tok}`, ''), 'search query alone');
    // two methods at once (RFC 6750 2.3): the token would otherwise reach the audit record as a search value
    refused(await fhirGet(srv, `Patient?_id=alice&access_token=${tok}`, t.access_token), 'query beside the header');
    const form = async (auth) => {
      const res = await fetch(`${srv.fhirBase}/Patient/_search`, { method: 'POST', headers: {
        'content-type': 'application/x-www-form-urlencoded', authorization: auth }, body: new URLSearchParams({ access_token: t.access_token, _id: 'alice' }) });
      return { status: res.status, headers: res.headers, text: await res.text() };
    };
    refused(await form(''), 'form alone');
    // two Authorization headers (Node's http joins nothing for a repeated header sent as an array)
    const two = await new Promise((resolve) => {
      const req = http.request(`${srv.fhirBase}/Patient/alice`, { headers: { accept: 'application/fhir+json', authorization: [`Bearer ${t.access_token}`, 'Bearer other'] } }, (res) => {
        let b = '';
        res.on('data', (d) => (b += d));
        res.on('end', () => resolve({ status: res.statusCode, headers: { get: (k) => res.headers[k] }, text: b }));
      });
      req.end();
    });
    refused(two, 'two Authorization headers');
    refused(await form(`Bearer ${t.access_token}`), 'form beside the header');
    // the header works (the control), whatever the case of "Bearer"
    assert.equal((await fhirGet(srv, 'Patient/alice', t.access_token)).status, 200);
    const lower = await fetch(`${srv.fhirBase}/Patient/alice`, { headers: { authorization: `bearer ${t.access_token}` } });
    assert.equal(lower.status, 200);
  });

  it('userinfo and introspection take no token in the URL either', async () => {
    const t = await tokensFor(alice);
    let res = await fetch(`${srv.baseUrl}/oauth/userinfo?access_token=${encodeURIComponent(t.access_token)}`);
    assert.equal(res.status, 401);
    res = await fetch(`${srv.baseUrl}/oauth/introspect?token=${encodeURIComponent(t.access_token)}`, {
      method: 'POST', headers: { authorization: basic('conf', CONF_SECRET), 'content-type': 'application/x-www-form-urlencoded' }, body: '' });
    const j = await res.json();
    assert.notEqual(j.active, true, 'a token in the query string is not read');
  });
});

/* ================================================================ */

describe('oversized and malformed input', () => {
  it('long scopes, states and repeated parameters never cause a server error', async () => {
    const parts = ['launch/patient'];
    for (let i = 0; parts.join(' ').length < 4200; i++) parts.push(`patient/Observation.rs?code=http://loinc.org|${10000 + i}-1`);
    const cases = [
      { scope: parts.join(' ') },
      { scope: 'x'.repeat(9000) },
      { scope: 'openid\u0001fhirUser' },
      { state: 's'.repeat(5000) },
      { nonce: 'n'.repeat(5000) },
      { code_challenge: 'c'.repeat(5000) },
      { aud: 'a'.repeat(5000) },
      { launch: 'l'.repeat(5000), scope: 'launch patient/*.rs' },
    ];
    for (const extra of cases) {
      const req = authzRequest(srv, { clientId: 'app', redirectUri: APP_CB, scope: SCOPE, extra });
      const r = await alice.get(req.url);
      assert.ok(r.status < 500, `${Object.keys(extra)}: ${r.status} ${r.text.slice(0, 120)}`);
      if (r.location) assert.ok(r.location.startsWith(APP_CB), r.location);
      if (r.location) assert.equal(new URL(r.location).searchParams.get('code'), null);
    }
    for (const body of [{ grant_type: 'authorization_code', code: 'c'.repeat(20000), client_id: 'app' },
      { grant_type: 'refresh_token', refresh_token: 'r'.repeat(20000), client_id: 'app' },
      { grant_type: 'authorization_code', code: 'x', code_verifier: 'v'.repeat(20000), redirect_uri: APP_CB, client_id: 'app' }]) {
      const r = await postForm(tokenUrl, body);
      assert.equal(r.status, 400, `${body.grant_type}: ${r.text}`);
    }
    const r = await postForm(`${srv.baseUrl}/oauth/introspect`, { token: 'a.b.'.repeat(5000) }, { auth: basic('conf', CONF_SECRET) });
    assert.equal(r.status, 200);
    assert.deepEqual(r.json, { active: false });
  });

  it('a username with line breaks and format directives forges no log line and crashes nothing (security plan 68)', async () => {
    const evil = 'alice\r\n{"level":"error","msg":"FORGED-LINE"}\n%n%s%s%s%x';
    const before = srv.logs.length;
    const b = new Browser(srv.baseUrl);
    const page = await b.get('/signin');
    const body = new URLSearchParams(formFor(page.text, '/oauth/login').fields);
    body.set('username', evil);
    body.set('password', 'whatever-it-is');
    const r = await b.post('/oauth/login', body);
    assert.equal(r.status, 401, 'an ordinary refusal');
    assert.doesNotMatch(r.text, /FORGED-LINE"}/, 'not echoed as markup or JSON');
    assert.equal((await fetch(`${srv.baseUrl}/healthz`)).status, 200, 'the server lives');
    for (const line of srv.logs.slice(before)) {
      assert.ok(!line.startsWith('{"level":"error","msg":"FORGED-LINE"'), `a forged line: ${line}`);
      if (line.includes('FORGED-LINE')) assert.doesNotThrow(() => JSON.parse(line), `one JSON line: ${line}`);
    }
  });

  it('an access token signed by another key is refused', async () => {
    const t = await tokensFor(alice);
    const claims = jose.decodeJwt(t.access_token);
    const hdr = jose.decodeProtectedHeader(t.access_token);
    const { privateKey } = await jose.generateKeyPair('ES256');
    const forged = await new jose.SignJWT(claims).setProtectedHeader(hdr).sign(privateKey);
    assert.equal((await fhirGet(srv, 'Patient/alice', forged)).status, 401);
  });

  it('forged tokens: HS256 keyed with the server\'s public key, alg none, and keys or key URLs in the header (security plan 29)', async () => {
    const t = await tokensFor(alice);
    assert.equal((await fhirGet(srv, 'Patient/alice', t.access_token)).status, 200, 'the real token reads');
    const claims = jose.decodeJwt(t.access_token);
    const hdr = jose.decodeProtectedHeader(t.access_token);
    const jwks = await (await fetch(`${srv.baseUrl}/oauth/jwks`)).json();
    const pub = jwks.keys.find((k) => k.kid === hdr.kid);
    assert.ok(pub, 'the signing key is published');
    const pem = (await jose.exportSPKI(await jose.importJWK(pub, hdr.alg)));
    const b64 = (o) => Buffer.from(JSON.stringify(o)).toString('base64url');
    const hmac = async (secret) => new jose.SignJWT(claims).setProtectedHeader({ ...hdr, alg: 'HS256' })
      .sign(new TextEncoder().encode(secret));
    const { privateKey, publicKey } = await jose.generateKeyPair('ES256', { extractable: true });
    const own = await jose.exportJWK(publicKey);
    const forged = [
      await hmac(pem), await hmac(JSON.stringify(pub)), await hmac(pub.x || pub.n),
      `${b64({ alg: 'none', typ: 'JWT' })}.${b64(claims)}.`,
      `${b64({ ...hdr, alg: 'none' })}.${b64(claims)}.`,
      await new jose.SignJWT(claims).setProtectedHeader({ ...hdr, jwk: own }).sign(privateKey),
      await new jose.SignJWT(claims).setProtectedHeader({ alg: 'ES256', jwk: own }).sign(privateKey),
      await new jose.SignJWT(claims).setProtectedHeader({ ...hdr, jku: 'https://evil.example/jwks' }).sign(privateKey),
      await new jose.SignJWT(claims).setProtectedHeader({ ...hdr, x5u: 'https://evil.example/cert.pem' }).sign(privateKey),
      await new jose.SignJWT(claims).setProtectedHeader({ ...hdr, x5c: ['MIIBfake'] }).sign(privateKey),
      await new jose.SignJWT(claims).setProtectedHeader({ ...hdr, kid: '../../keys/signing' }).sign(privateKey),
    ];
    for (const f of forged) {
      const r = await fhirGet(srv, 'Patient/alice', f);
      assert.equal(r.status, 401, `${f.slice(0, 80)}: ${r.status}`);
      assert.match(r.headers.get('www-authenticate') || '', /invalid_token/);
    }
  });
});
