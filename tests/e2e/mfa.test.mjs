// Two-step verification (TOTP, RFC 6238) through the real server: enrolment
// from the account page, the code step after the password (for the account
// page and inside an app's authorization), recovery codes, replayed and
// wrong codes, throttling that a new sign-in does not reset, a new session
// id once both steps are done, CSRF on every form, and `veranda user
// reset-mfa`.  The codes are computed here from the key the page shows,
// as an authenticator app would.
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { makeTempDir, removeDir, initDataDir, seedDataDir, startServer, runCli, requireBinary } from './lib/server.mjs';
import { Browser, signIn, accountPage, parseForms, formFor, field, registerClient, authzRequest, redeem, decodeEntities } from './lib/oauth.mjs';
import { base32, totp, nowStep } from './lib/totp.mjs';
import { hashId } from './lib/audit.mjs';

/* A form's fields (name, value pairs) with some set to other values. */
const formWith = (fields, set) => {
  const body = new URLSearchParams(fields);
  for (const [k, v] of Object.entries(set)) body.set(k, v);
  return body;
};

const CB = 'http://127.0.0.1:9999/cb';
const PASSWORD = 'a-long-mfa-password-1';
let dir, srv;

before(async () => {
  requireBinary();
  dir = await makeTempDir('veranda-mfa-');
  await initDataDir(dir);
  await seedDataDir(dir, { patients: 0 });
  await registerClient(dir, { clientId: 'mfa-app', public: true, redirectUris: [CB], name: 'MFA App' });
  for (const u of ['mia', 'max', 'moe', 'mae', 'mel', 'mox', 'mik', 'mic']) {
    const r = await runCli(['user', 'add', '--data', dir, '--username', u, '--role', 'support', '--password-stdin'], { input: `${PASSWORD}\n` });
    assert.equal(r.code, 0, r.stderr);
  }
  srv = await startServer({ dataDir: dir, init: false });
});

after(async () => {
  if (srv) await srv.stop();
  await removeDir(dir);
});


/* ---- helpers ---- */

const cookieName = (b) => [...b.jar.keys()].find((k) => /veranda(?!.*csrf)/i.test(k) && !/csrf/i.test(k));

// Enrol 'user': resolves { key, codes (recovery), step (the one used) }.
async function enrol(user) {
  const b = new Browser(srv.baseUrl);
  assert.equal((await signIn(b, user, PASSWORD)).status, 303);
  const acc = await accountPage(b);
  const start = acc.forms.find((f) => f.action === '/account/mfa');
  assert.ok(start, 'the account page offers two-step verification');
  const setup = await b.post('/account/mfa', formWith(start.fields, { current: PASSWORD }));
  assert.equal(setup.status, 200, setup.text.slice(0, 300));
  const secret = decodeEntities((setup.text.match(/<code class="secret">([^<]+)<\/code>/) || [])[1] || '');
  assert.match(secret, /^[A-Z2-7]{16,}$/, 'a base32 key is shown');
  const uri = decodeEntities((setup.text.match(/href="(otpauth:[^"]+)"/) || [])[1] || '');
  const u = new URL(uri);
  assert.equal(u.protocol, 'otpauth:');
  assert.equal(u.host, 'totp');
  assert.equal(u.searchParams.get('secret'), secret, 'the link carries the same key');
  assert.match(decodeURIComponent(u.pathname), new RegExp(user));
  const key = base32(secret);
  const confirm = formFor(setup.text, '/account/mfa/confirm');
  const body = new URLSearchParams(confirm.fields);
  const step = nowStep();
  body.set('code', totp(key, step));
  const before = b.cookie(cookieName(b));
  const done = await b.post('/account/mfa/confirm', body);
  assert.equal(done.status, 200, done.text.slice(0, 300));
  const codes = [...done.text.matchAll(/<li><code>([^<]+)<\/code><\/li>/g)].map((m) => decodeEntities(m[1]));
  assert.equal(codes.length, 10, 'ten recovery codes');
  assert.equal(new Set(codes).size, 10);
  return { key, codes, step, page: done.text, before, after: b.cookie(cookieName(b)) };
}

// Sign in with the password only: resolves the browser, now at the code step.
async function halfSignIn(user) {
  const b = new Browser(srv.baseUrl);
  const r = await signIn(b, user, PASSWORD);
  assert.equal(r.status, 303);
  assert.match(r.location, /\/oauth\/mfa$/, 'the password leads to the code step');
  const page = await b.get('/oauth/mfa');
  assert.equal(page.status, 200);
  return { b, form: formFor(page.text, '/oauth/mfa'), cookie: b.cookie(cookieName(b)) };
}

// The audit records of 'type' for 'user' (sign-in events are queued, not
// waited for: give the writer a moment).
async function records(type, user, atLeast = 1) {
  let list = [], text = '';
  for (let i = 0; i < 40 && list.length < atLeast; i++) {
    if (i) await new Promise((r) => setTimeout(r, 50));
    const r = await runCli(['audit', 'query', '--data', dir, '--node', 'node-1', '--format', 'ndjson',
      '--type', type, '--agent', user]);
    assert.equal(r.code, 0, r.stderr);
    text = r.stdout;
    list = text.split('\n').filter(Boolean).map((l) => JSON.parse(l));
  }
  return { list, text };
}

async function sendCode(h, code) {
  const body = new URLSearchParams(h.form.fields);
  body.set('code', code);
  return h.b.post('/oauth/mfa', body);
}

/* ================================================================ */

describe('two-step verification', () => {
  let mia;

  it('enrols from the account page with a code from the key shown', async () => {
    mia = await enrol('mia');
  });

  it('a wrong code at enrolment leaves it off', async () => {
    const b = new Browser(srv.baseUrl);
    assert.equal((await signIn(b, 'moe', PASSWORD)).status, 303);
    const acc = await accountPage(b);
    const setup = await b.post('/account/mfa', formWith(acc.forms.find((f) => f.action === '/account/mfa').fields, { current: PASSWORD }));
    const body = new URLSearchParams(formFor(setup.text, '/account/mfa/confirm').fields);
    body.set('code', '000000');
    const r = await b.post('/account/mfa/confirm', body);
    assert.equal(r.status, 400);
    const again = await signIn(new Browser(srv.baseUrl), 'moe', PASSWORD);
    assert.equal(again.status, 303);
    assert.match(again.location, /\/account$/, 'still password only');
    // on record as a failed enrolment, by moe's session
    const { list } = await records('session.mfa-enrol', 'moe');
    const rid = r.headers.get('x-request-id');
    const rec = list.find((x) => x.correlation?.request === rid);
    assert.ok(rec, `the refused confirmation ${rid} is on record: ${JSON.stringify(list)}`);
    assert.deepEqual([rec.outcome, rec.outcomeCode], [4, 'wrong-code']);
    assert.equal(rec.source?.session, hashId(b.cookie(cookieName(b))), 'the session as a hash');
  });

  it('after the password, nothing but the code step until the code is given', async () => {
    const h = await halfSignIn('mia');
    const acc = await h.b.get('/account');
    assert.equal(acc.status, 303, 'the account page needs both steps');
    assert.doesNotMatch(acc.text, /Apps with access/);
    assert.equal((await h.b.get('/account/access')).status, 303);
    const r = await sendCode(h, totp(mia.key, mia.step + 1));
    assert.equal(r.status, 303, r.text.slice(0, 300));
    assert.match(r.location, /\/account$/);
    const now = h.b.cookie(cookieName(h.b));
    assert.ok(now && now !== h.cookie, 'a new session id once both steps are done');
    assert.equal((await h.b.get('/account')).status, 200);
    const stale = new Browser(srv.baseUrl);
    stale.setCookie(cookieName(h.b), h.cookie);
    assert.equal((await stale.get('/account')).status, 303, 'the half-signed-in id is gone');
  });

  it('a code is accepted once, and wrong codes are refused', async () => {
    const h = await halfSignIn('mia');
    const replay = await sendCode(h, totp(mia.key, mia.step + 1));
    assert.equal(replay.status, 401, 'the code just used does not work again');
    assert.match(replay.text, /That code is not right/);
    const wrong = await sendCode(h, totp(mia.key, nowStep() + 5));
    assert.equal(wrong.status, 401, 'a code far from now is refused');
    assert.equal((await h.b.get('/account')).status, 303, 'still half signed in');
  });

  it('enrolment and every code entered are on record, without the key or a code', async () => {
    const enrolled = await records('session.mfa-enrol', 'mia');
    assert.equal(enrolled.list.length, 1, enrolled.text);
    const [r] = enrolled.list;
    assert.equal(r.outcome, 0);
    assert.equal(r.action, 'C');
    assert.equal(r.source.session, hashId(mia.before), 'the session that confirmed, by the id its earlier records carry');
    assert.ok(mia.after && mia.after !== mia.before);
    assert.deepEqual(r.entity, [{ type: 'Session', id: hashId(mia.after) }],
      'and the new id it goes on under, so its records before and after can be joined');
    // the two earlier tests: one right code at the code step, then a replay and a wrong code
    const used = await records('session.mfa-use', 'mia', 3);
    const codes = used.list.map((x) => [x.outcome, x.outcomeCode || '']);
    assert.equal(codes.filter(([o]) => o === 0).length, 1, used.text);
    assert.equal(codes.filter(([o, w]) => o === 4 && w === 'wrong-code').length, 2, used.text);
    assert.ok(used.list.every((x) => x.source.session), 'each names its session');
    const secret = mia.page.match(/<li><code>([^<]+)<\/code><\/li>/)[1];
    for (const t of [enrolled.text, used.text]) {
      assert.ok(!t.includes(secret), 'no recovery code in the log');
      assert.ok(!t.includes(totp(mia.key, mia.step)), 'no code in the log');
    }
  });

  it('a signed-in session cannot replace the authenticator, even with two set-ups begun side by side', async () => {
    const begin = async () => {
      const b = new Browser(srv.baseUrl);
      assert.equal((await signIn(b, 'mae', PASSWORD)).status, 303);
      const acc = await accountPage(b);
      const setup = await b.post('/account/mfa', formWith(acc.forms.find((f) => f.action === '/account/mfa').fields, { current: PASSWORD }));
      assert.equal(setup.status, 200, setup.text.slice(0, 300));
      const key = base32(decodeEntities((setup.text.match(/<code class="secret">([^<]+)<\/code>/) || [])[1] || ''));
      return { b, key, form: formFor(setup.text, '/account/mfa/confirm') };
    };
    const confirm = (x) => {
      const body = new URLSearchParams(x.form.fields);
      body.set('code', totp(x.key, nowStep()));
      return x.b.post('/account/mfa/confirm', body);
    };
    const one = await begin();
    const two = await begin();
    assert.equal((await confirm(one)).status, 200, 'the first set-up confirmed turns it on');
    const late = await confirm(two);
    assert.equal(late.status, 403, `turning it on ended the other session, and its set-up: ${late.text.slice(0, 300)}`);
    assert.match(late.text, /This form has expired/);
    // a new set-up is refused too, and offers nothing to scan (the form of the session's new id)
    const again = await one.b.post('/account/mfa', new URLSearchParams((await accountPage(one.b)).forms.find((f) => f.action === '/account/mfa').fields));
    assert.equal(again.status, 409, again.text.slice(0, 300));
    assert.doesNotMatch(again.text, /otpauth:|class="secret"/);
    // the second key opens nothing at sign-in
    const h = await halfSignIn('mae');
    assert.equal((await sendCode(h, totp(two.key, nowStep()))).status, 401, 'the refused key is not the account\'s');
  });

  it('a code of the current authenticator lets the user replace it; the old key and recovery codes stop working', async () => {
    const first = await enrol('mel');
    // signed in with both steps
    const h = await halfSignIn('mel');
    assert.equal((await sendCode(h, totp(first.key, first.step + 1))).status, 303);
    const acc = await accountPage(h.b);
    const form = acc.forms.find((f) => f.action === '/account/mfa');
    assert.ok(form, 'the account page offers to use another authenticator');
    // a wrong code (or none) opens nothing to scan
    for (const current of ['', '000000', 'not-a-recovery-code']) {
      const body = new URLSearchParams(form.fields);
      body.set('current', current);
      const r = await h.b.post('/account/mfa', body);
      assert.equal(r.status, current ? 400 : 409, r.text.slice(0, 300));
      assert.doesNotMatch(r.text, /otpauth:|class="secret"/);
      assert.match(r.text, /<a href="\/account">Back to your account<\/a>/, 'a way back');
    }
    // the code just used at sign-in does not work again here either
    const replay = new URLSearchParams(form.fields);
    replay.set('current', totp(first.key, first.step + 1));
    assert.equal((await h.b.post('/account/mfa', replay)).status, 400);
    // a recovery code of the current authenticator does
    const body = new URLSearchParams(form.fields);
    body.set('current', first.codes[0]);
    const setup = await h.b.post('/account/mfa', body);
    assert.equal(setup.status, 200, setup.text.slice(0, 300));
    const key = base32(decodeEntities((setup.text.match(/<code class="secret">([^<]+)<\/code>/) || [])[1] || ''));
    const confirm = new URLSearchParams(formFor(setup.text, '/account/mfa/confirm').fields);
    const step = nowStep();
    confirm.set('code', totp(key, step));
    const done = await h.b.post('/account/mfa/confirm', confirm);
    assert.equal(done.status, 200, done.text.slice(0, 300));
    const codes = [...done.text.matchAll(/<li><code>([^<]+)<\/code><\/li>/g)].map((m) => decodeEntities(m[1]));
    assert.equal(codes.length, 10, 'new recovery codes');
    // at the next sign-in the old key and the old recovery codes are refused, the new ones work
    const old = await halfSignIn('mel');
    assert.equal((await sendCode(old, totp(first.key, nowStep()))).status, 401, 'the old key');
    assert.equal((await sendCode(old, first.codes[1])).status, 401, 'an old recovery code');
    assert.equal((await sendCode(old, totp(key, step + 1))).status, 303, 'the new key');
    const rec = await halfSignIn('mel');
    assert.equal((await sendCode(rec, codes[0])).status, 303, 'a new recovery code');
  });

  it('of two replacements begun side by side, the first confirmed wins; the other finds the authenticator changed', async () => {
    const first = await enrol('mox');
    const session = async (code) => {
      const h = await halfSignIn('mox');
      assert.equal((await sendCode(h, code)).status, 303);
      const acc = await accountPage(h.b);
      const body = new URLSearchParams(acc.forms.find((f) => f.action === '/account/mfa').fields);
      return { b: h.b, body };
    };
    const begin = async (x, current) => {
      x.body.set('current', current);
      const setup = await x.b.post('/account/mfa', x.body);
      assert.equal(setup.status, 200, setup.text.slice(0, 300));
      return { ...x, key: base32(decodeEntities((setup.text.match(/<code class="secret">([^<]+)<\/code>/) || [])[1] || '')),
        form: formFor(setup.text, '/account/mfa/confirm') };
    };
    const confirm = (x) => {
      const body = new URLSearchParams(x.form.fields);
      body.set('code', totp(x.key, nowStep()));
      return x.b.post('/account/mfa/confirm', body);
    };
    const one = await begin(await session(first.codes[0]), first.codes[1]);
    const two = await begin(await session(first.codes[2]), first.codes[3]);
    // sent at once, both may find their session alive: the check inside the
    // transaction still lets only one through
    const [a, b] = await Promise.all([confirm(one), confirm(two)]);
    const won = a.status === 200 ? one : two, lost = a.status === 200 ? b : a;
    assert.equal([a, b].filter((r) => r.status === 200).length, 1, `one wins: ${a.status} ${b.status}`);
    if (lost.status === 409)
      assert.match(lost.text, /changed after this set-up began/);
    else
      assert.equal(lost.status, 403, `or the winner ended the loser's session first: ${lost.text.slice(0, 300)}`);
    const loser = won === one ? two : one;
    const h = await halfSignIn('mox');
    assert.equal((await sendCode(h, totp(loser.key, nowStep()))).status, 401, 'the losing key opens nothing');
    assert.equal((await sendCode(h, totp(won.key, nowStep() + 1))).status, 303, 'the winning key does');
  });

  it('turning it on signs out every other session of the account; this one goes on', async () => {
    const other = new Browser(srv.baseUrl);
    assert.equal((await signIn(other, 'mik', PASSWORD)).status, 303);
    assert.equal((await other.get('/account')).status, 200);
    const b = new Browser(srv.baseUrl);
    assert.equal((await signIn(b, 'mik', PASSWORD)).status, 303);
    const acc = await accountPage(b);
    const start = acc.forms.find((f) => f.action === '/account/mfa');
    // a session alone cannot turn it on: no password, or a wrong one, shows nothing to scan
    for (const current of [undefined, 'not-the-password']) {
      const r = await b.post('/account/mfa', formWith(start.fields, current ? { current } : {}));
      assert.equal(r.status, 400, r.text.slice(0, 300));
      assert.match(r.text, /That password is not right/);
      assert.doesNotMatch(r.text, /otpauth:|class="secret"/);
    }
    const setup = await b.post('/account/mfa', formWith(start.fields, { current: PASSWORD }));
    const key = base32(decodeEntities((setup.text.match(/<code class="secret">([^<]+)<\/code>/) || [])[1] || ''));
    const body = new URLSearchParams(formFor(setup.text, '/account/mfa/confirm').fields);
    body.set('code', totp(key, nowStep()));
    const old = cookieName(b) && b.cookie(cookieName(b));
    const done = await b.post('/account/mfa/confirm', body);
    assert.equal(done.status, 200, done.text.slice(0, 300));
    assert.match(done.text, /Everywhere else you were signed in \(1 other sign-in\), you are now signed out/);
    assert.equal((await other.get('/account')).status, 303, 'the session that did not prove the new factor ended');
    const now = b.cookie(cookieName(b));
    assert.ok(now && now !== old, 'this browser goes on under a new session id');
    assert.equal((await b.get('/account')).status, 200, 'and is still signed in');
    const stale = new Browser(srv.baseUrl);
    stale.setCookie(cookieName(b), old);
    assert.equal((await stale.get('/account')).status, 303, 'a copy of the old cookie is signed out');
  });

  it('turning it on with no other session says nothing about other sign-ins', async () => {
    const { page } = await enrol('mic');
    assert.doesNotMatch(page, /Everywhere else|other sign-in/, 'no other session: nothing said about one');
    const b = new Browser(srv.baseUrl);
    assert.equal((await signIn(b, 'mic', PASSWORD)).status, 303);
    assert.match((await b.get('/oauth/mfa')).text, /code/i, 'the code step now');
  });

  it('each recovery code works once', async () => {
    const h = await halfSignIn('mia');
    const r = await sendCode(h, mia.codes[3]);
    assert.equal(r.status, 303, r.text.slice(0, 300));
    assert.equal((await h.b.get('/account')).status, 200);
    const again = await halfSignIn('mia');
    assert.equal((await sendCode(again, mia.codes[3])).status, 401, 'a used recovery code is refused');
  });

  it('the code step inside an app\'s authorization leads on to consent and a code', async () => {
    const max = await enrol('max');
    const b = new Browser(srv.baseUrl);
    const req = authzRequest(srv, { clientId: 'mfa-app', redirectUri: CB, scope: 'openid fhirUser user/Patient.rs' });
    let r = await b.get(req.url);
    assert.equal(r.status, 200);
    const login = new URLSearchParams(formFor(r.text, '/oauth/login').fields);
    login.set('username', 'max');
    login.set('password', PASSWORD);
    r = await b.post('/oauth/login', login);
    assert.equal(r.status, 303);
    assert.match(r.location, /\/oauth\/mfa\?req=/, 'the request goes along');
    r = await b.get(r.location);
    const body = new URLSearchParams(formFor(r.text, '/oauth/mfa').fields);
    assert.ok(body.get('req'), 'the code form carries the request');
    body.set('code', totp(max.key, max.step + 1));
    r = await b.post('/oauth/mfa', body);
    assert.equal(r.status, 303);
    r = await b.get(r.location);
    const consent = formFor(r.text, '/oauth/decide');
    assert.ok(consent, `the consent page follows (${r.status})`);
    const allow = new URLSearchParams(consent.fields);
    allow.set('action', 'allow');
    r = await b.post('/oauth/decide', allow);
    assert.equal(r.status, 303);
    const code = new URL(r.location).searchParams.get('code');
    assert.ok(code, r.location);
    const t = await redeem(srv, { code, verifier: req.verifier, redirectUri: CB, clientId: 'mfa-app' });
    assert.equal(t.status, 200, t.text);
  });

  it('every code form needs the session\'s CSRF token', async () => {
    const h = await halfSignIn('mia');
    const body = new URLSearchParams({ code: '123456' });
    const r = await h.b.post('/oauth/mfa', body);
    assert.equal(r.status, 403, 'the code step');
    const b = new Browser(srv.baseUrl);
    assert.equal((await signIn(b, 'moe', PASSWORD)).status, 303);
    assert.equal((await b.post('/account/mfa', new URLSearchParams({}))).status, 403, 'starting enrolment');
    assert.equal((await b.post('/account/mfa/confirm', new URLSearchParams({ code: '123456' }))).status, 403, 'confirming it');
    const forged = await b.post('/account/mfa', new URLSearchParams({ csrf: 'x'.repeat(43) }));
    assert.equal(forged.status, 403, 'a made-up token');
  });

  it('wrong codes are throttled, and signing in again with the password does not reset the count', async () => {
    const { key, step } = await enrol('moe');
    let h = await halfSignIn('moe');
    // THROTTLE_FREE (3) wrong codes cost nothing yet
    for (let i = 0; i < 3; i++) assert.equal((await sendCode(h, '999999')).status, 401);
    // a right password starts a new half session, but the code count goes on
    h = await halfSignIn('moe');
    assert.equal((await sendCode(h, '999999')).status, 401);
    const r = await sendCode(h, totp(key, step + 1));
    assert.equal(r.status, 429, 'now even a right code waits');
    assert.ok(Number(r.headers.get('retry-after')) >= 1, 'with Retry-After');
    // after the wait, the right code works and clears the count
    await new Promise((res) => setTimeout(res, Number(r.headers.get('retry-after')) * 1000 + 100));
    const ok = await sendCode(h, totp(key, step + 1));
    assert.equal(ok.status, 303, ok.text.slice(0, 200));
    h = await halfSignIn('moe');
    assert.equal((await sendCode(h, '999999')).status, 401, 'counting starts again from nothing');
  });

  it('veranda user reset-mfa turns it off', async () => {
    const r = await runCli(['user', 'reset-mfa', '--data', dir, '--username', 'mia']);
    assert.equal(r.code, 0, r.stderr);
    const b = new Browser(srv.baseUrl);
    const s = await signIn(b, 'mia', PASSWORD);
    assert.equal(s.status, 303);
    assert.match(s.location, /\/account$/, 'password only again');
  });
});
