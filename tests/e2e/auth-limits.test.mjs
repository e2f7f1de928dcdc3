// Sign-in limits that must hold when requests arrive at once, through the
// real server: concurrent wrong passwords for one account get no more
// guesses than the throttle allows; one recovery code or one TOTP code sent
// from several half-open sessions at once opens exactly one; and
// `veranda user reset-mfa` ends the account's sessions and app access
// (a lost authenticator is a suspected compromise, like a password reset);
// a disabled app's refresh token introspects as inactive, as its access
// tokens do.
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { makeTempDir, removeDir, initDataDir, seedDataDir, startServer, runCli, requireBinary } from './lib/server.mjs';
import { DEMO_PASSWORD, Browser, signIn, accountPage, formFor, decodeEntities, authorize, redeem, fhirGet, postForm, registerClient, basic } from './lib/oauth.mjs';
import { base32, totp, nowStep } from './lib/totp.mjs';

const PASSWORD = 'a-long-race-password-1';
/* A form's fields (name, value pairs) with some set to other values. */
const formWith = (fields, set) => {
  const body = new URLSearchParams(fields);
  for (const [k, v] of Object.entries(set)) body.set(k, v);
  return body;
};

const CB = 'http://127.0.0.1:9999/cb';
const RS_SECRET = 'resource-server-secret-1';
let dir, srv;

before(async () => {
  requireBinary();
  dir = await makeTempDir('veranda-races-');
  await initDataDir(dir);
  await seedDataDir(dir, { patients: 0 });
  await registerClient(dir, { clientId: 'race-app', public: true, redirectUris: [CB], name: 'Race App' });
  await registerClient(dir, { clientId: 'off-app', public: true, redirectUris: [CB], name: 'Off App' });
  await registerClient(dir, { clientId: 'rs', secret: RS_SECRET, redirectUris: [CB], name: 'Resource server' });
  for (const u of ['ron0', 'ron1', 'ron2', 'ron3', 'rex', 'rob', 'roy', 'ria']) {
    const r = await runCli(['user', 'add', '--data', dir, '--username', u, '--role', 'support', '--password-stdin'], { input: `${PASSWORD}\n` });
    assert.equal(r.code, 0, r.stderr);
  }
  srv = await startServer({ dataDir: dir, init: false });
});

after(async () => {
  if (srv) await srv.stop();
  await removeDir(dir);
});


async function enrol(user) {
  const b = new Browser(srv.baseUrl);
  assert.equal((await signIn(b, user, PASSWORD)).status, 303);
  const acc = await accountPage(b);
  const start = acc.forms.find((f) => f.action === '/account/mfa');
  const setup = await b.post('/account/mfa', formWith(start.fields, { current: PASSWORD }));
  assert.equal(setup.status, 200);
  const secret = decodeEntities((setup.text.match(/<code class="secret">([^<]+)<\/code>/) || [])[1] || '');
  const key = base32(secret);
  const body = new URLSearchParams(formFor(setup.text, '/account/mfa/confirm').fields);
  const step = nowStep();
  body.set('code', totp(key, step));
  const done = await b.post('/account/mfa/confirm', body);
  assert.equal(done.status, 200, done.text.slice(0, 300));
  const codes = [...done.text.matchAll(/<li><code>([^<]+)<\/code><\/li>/g)].map((m) => decodeEntities(m[1]));
  assert.equal(codes.length, 10);
  return { key, codes, step, browser: b };
}

// n browsers, each signed in with the password and waiting at the code step.
async function halfSessions(user, n) {
  const out = [];
  for (let i = 0; i < n; i++) {
    const b = new Browser(srv.baseUrl);
    const r = await signIn(b, user, PASSWORD);
    assert.equal(r.status, 303);
    assert.match(r.location, /\/oauth\/mfa$/);
    const page = await b.get('/oauth/mfa');
    out.push({ b, form: formFor(page.text, '/oauth/mfa') });
  }
  return out;
}

function sendCode(h, code) {
  const body = new URLSearchParams(h.form.fields);
  body.set('code', code);
  return h.b.post('/oauth/mfa', body);
}

/* ================================================================ */

describe('sign-in under concurrent requests', () => {
  // a server of its own: the burst throttles its client address too
  let s2;
  before(async () => {
    s2 = await startServer({ seed: true, auth: false, args: ['--signin-lock-after', '5'] });
  });
  after(() => s2?.stop());

  it('right passwords sent at once are all let in, for one account and for several from one address', async () => {
    // a person signing in on two devices, a clinic's staff behind one address: they wait, never 429
    const prepared = async (users) => Promise.all(users.map(async (u) => {
      const b = new Browser(s2.baseUrl);
      const page = await b.get('/signin');
      const body = new URLSearchParams(formFor(page.text, '/oauth/login').fields);
      body.set('username', u);
      body.set('password', DEMO_PASSWORD);
      return { b, body };
    }));
    for (const users of [Array(8).fill('alice'), ['alice', 'bob', 'erin', 'frank', 'drsmith', 'sam', 'carol', 'admin', 'alice', 'bob']]) {
      const ready = await prepared(users);
      const res = await Promise.all(ready.map(({ b, body }) => b.post('/oauth/login', body)));
      assert.deepEqual(res.map((r) => r.status), users.map(() => 303), `${users.join(',')}`);
    }
  });

  it('wrong passwords sent at once for one account get no more guesses than the lock allows', async () => {
    const n = 40;
    // every browser holds its sign-in form first, so the posts leave together
    const ready = [];
    for (let i = 0; i < n; i++) {
      const b = new Browser(s2.baseUrl);
      const page = await b.get('/signin');
      const body = new URLSearchParams(formFor(page.text, '/oauth/login').fields);
      body.set('username', 'alice');
      body.set('password', `wrong-guess-${i}`);
      ready.push({ b, body });
    }
    const t0 = Date.now();
    const res = await Promise.all(ready.map(({ b, body }) => b.post('/oauth/login', body)));
    const checked = res.filter((r) => r.status === 401).length;
    const refused = res.filter((r) => r.status === 429).length;
    assert.equal(checked + refused, n, `every answer is 401 or 429: ${res.map((r) => r.status)}`);
    // one by one, four attempts go without waiting (three free failures, then the fourth
    // waits a second); a burst must not buy more, let alone signin_lock_after (5) or more
    assert.ok(checked <= 4, `${checked} passwords were checked for one account in one burst`);
    // the fourth failure makes the next attempt wait a second
    const ok = await signIn(new Browser(s2.baseUrl), 'alice');
    if (Date.now() - t0 < 900) assert.equal(ok.status, 429, 'right after the burst even the right password waits');
  });

  it('one recovery code sent from several half-open sessions at once opens exactly one', async () => {
    // several accounts: the losers' wrong codes throttle each one afterwards
    for (const user of ['ron0', 'ron1', 'ron2', 'ron3']) {
      const { codes } = await enrol(user);
      const hs = await halfSessions(user, 8);
      const res = await Promise.all(hs.map((h) => sendCode(h, codes[0])));
      assert.equal(res.filter((r) => r.status === 303).length, 1, `${user}: statuses ${res.map((r) => r.status)}`);
      let full = 0;
      for (const h of hs) if ((await h.b.get('/account')).status === 200) full++;
      assert.equal(full, 1, 'one signed-in session');
    }
  });

  it('one TOTP code sent from several half-open sessions at once opens exactly one', async () => {
    const { key, step } = await enrol('rex');
    const hs = await halfSessions('rex', 12);
    // a step after the one used at enrolment, still inside the accepted window
    const code = totp(key, Math.max(step + 1, nowStep()));
    const res = await Promise.all(hs.map((h) => sendCode(h, code)));
    const opened = res.filter((r) => r.status === 303).length;
    assert.equal(opened, 1, `statuses ${res.map((r) => r.status)}`);
  });
});

describe('wrong two-step codes under concurrent requests', () => {
  it('a burst of wrong codes is throttled as if the codes came one by one', async () => {
    const { key, step } = await enrol('rob');
    const hs = await halfSessions('rob', 20);
    const t0 = Date.now();
    const res = await Promise.all(hs.map((h, i) => sendCode(h, String(100000 + i))));
    const checked = res.filter((r) => r.status === 401).length;
    assert.equal(checked + res.filter((r) => r.status === 429).length, hs.length, `statuses ${res.map((r) => r.status)}`);
    assert.ok(checked <= 4, `${checked} codes were checked in one burst`);
    const r = await sendCode(hs[0], totp(key, Math.max(step + 1, nowStep())));
    if (Date.now() - t0 < 900) assert.equal(r.status, 429, 'right after the burst even a right code waits');
  });
});

describe('veranda user reset-mfa', () => {
  it('ends the account\'s sessions, half-open ones included, and its apps\' access at once', async () => {
    const { browser } = await enrol('roy');
    assert.equal((await browser.get('/account')).status, 200, 'the enrolling session is signed in');
    // an app allowed from that session, with a refresh token
    const a = await authorize(browser, srv, { clientId: 'race-app', redirectUri: CB, scope: 'openid user/Organization.rs offline_access' });
    assert.ok(a.code, JSON.stringify(a.walk.pages));
    const t = await redeem(srv, { code: a.code, verifier: a.verifier, redirectUri: CB, clientId: 'race-app' });
    assert.equal(t.status, 200, t.text);
    const userinfo = () => fetch(`${srv.baseUrl}/oauth/userinfo`, { headers: { authorization: `Bearer ${t.json.access_token}` } })
      .then(async (x) => (await x.arrayBuffer(), x.status));
    assert.equal(await userinfo(), 200, 'the token works before');
    const [half] = await halfSessions('roy', 1);
    const r = await runCli(['user', 'reset-mfa', '--data', dir, '--username', 'roy']);
    assert.equal(r.code, 0, r.stderr);
    const acc = await browser.get('/account');
    assert.equal(acc.status, 303, 'the signed-in session ended');
    assert.match(acc.location, /\/signin$/);
    const mfa = await half.b.get('/oauth/mfa');
    assert.equal(mfa.status, 303, 'the half-open session ended');
    assert.equal(await userinfo(), 401, 'the app\'s access token (a cached one)');
    assert.equal((await fhirGet(srv, '/fhir/Organization', t.json.access_token)).status, 401, 'on the FHIR API too');
    const rt = await postForm(`${srv.baseUrl}/oauth/token`, { grant_type: 'refresh_token', refresh_token: t.json.refresh_token, client_id: 'race-app' });
    assert.equal(rt.status, 400, 'the app\'s refresh token');
    // the password alone signs in now
    const again = await signIn(new Browser(srv.baseUrl), 'roy', PASSWORD);
    assert.equal(again.status, 303);
    assert.match(again.location, /\/account$/);
  });
});

describe('introspection of a disabled app\'s tokens', () => {
  it('its refresh token is {"active":false}, like its access token, until the app is enabled again', async () => {
    const b = new Browser(srv.baseUrl);
    assert.equal((await signIn(b, 'ria', PASSWORD)).status, 303);
    const a = await authorize(b, srv, { clientId: 'off-app', redirectUri: CB, scope: 'openid user/Organization.rs offline_access' });
    assert.ok(a.code, JSON.stringify(a.walk.pages));
    const t = await redeem(srv, { code: a.code, verifier: a.verifier, redirectUri: CB, clientId: 'off-app' });
    assert.equal(t.status, 200, t.text);
    const introspect = (token) => postForm(`${srv.baseUrl}/oauth/introspect`, { token }, { auth: basic('rs', RS_SECRET) });
    const cli = async (sub) => {
      const r = await runCli(['client', sub, '--data', dir, '--client-id', 'off-app']);
      assert.equal(r.code, 0, r.stderr);
    };
    assert.equal((await introspect(t.json.refresh_token)).json.active, true, 'active before');
    assert.equal((await introspect(t.json.access_token)).json.active, true, 'active before');
    await cli('disable');
    for (const token of [t.json.access_token, t.json.refresh_token]) {
      const r = await introspect(token);
      assert.equal(r.status, 200);
      assert.equal(r.text, '{"active":false}', `a disabled app's ${token.includes('.') ? 'access' : 'refresh'} token`);
    }
    await cli('enable');
    assert.equal((await introspect(t.json.refresh_token)).json.active, true, 'active again once enabled');
  });
});
