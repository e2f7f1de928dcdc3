// The account holder's own change of password (POST /account/password)
// through the real server: the current password is checked on the sign-in
// throttle, the change ends every other session of the account but keeps
// this one and the apps' grants, bad input changes nothing and says why in
// plain words, the form needs the session's CSRF token, and every attempt
// is in the audit log without a password in it.
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import { makeTempDir, removeDir, initDataDir, seedDataDir, startServer, runCli, requireBinary } from './lib/server.mjs';
import { Browser, signIn, accountPage, field, registerClient, authorize, redeem, postForm } from './lib/oauth.mjs';

const CB = 'http://127.0.0.1:9999/cb';
const FIRST = 'first-password-for-pat';
let dir, srv;

before(async () => {
  requireBinary();
  dir = await makeTempDir('veranda-password-');
  await initDataDir(dir);
  await seedDataDir(dir, { patients: 0 });
  await registerClient(dir, { clientId: 'pw-app', public: true, redirectUris: [CB], name: 'Password App' });
  for (const u of ['pat', 'pam', 'pol', 'pru', 'pax']) {
    const r = await runCli(['user', 'add', '--data', dir, '--username', u, '--role', 'support', '--password-stdin'],
      { input: `${FIRST}\n` });
    assert.equal(r.code, 0, r.stderr);
  }
  srv = await startServer({ dataDir: dir, init: false });
});

after(async () => {
  if (srv) await srv.stop();
  await removeDir(dir);
});

/* A browser signed in as 'user' with 'password', and its account page's password form. */
async function signedIn(user, password = FIRST) {
  const b = new Browser(srv.baseUrl);
  const r = await signIn(b, user, password);
  assert.equal(r.status, 303, `${user} signs in`);
  const acc = await accountPage(b);
  assert.equal(acc.status, 200);
  const form = acc.forms.find((f) => f.action === '/account/password');
  assert.ok(form, 'the account page has a password form');
  return { b, form };
}

// apps: false unticks "Also remove every app's access" (ticked on the page)
function change(s, { current, password, again = password, csrf, apps } = {}) {
  const body = new URLSearchParams(s.form.fields);
  if (csrf !== undefined) body.set('csrf', csrf);
  if (apps === false) body.delete('apps');
  for (const [k, v] of Object.entries({ current, password, again }))
    if (v === undefined) body.delete(k);
    else body.set(k, v);
  return s.b.post('/account/password', body);
}

const canSignIn = async (user, password) => (await signIn(new Browser(srv.baseUrl), user, password)).status === 303;

// The session.password-change records of 'user'.  They are queued, not waited for (they
// disclose no patient data), and a busy audit writer lets records gather for up to 20 ms
// before audit.db has them: wait until 'ready' (by default: one that went through is there).
async function records(user, ready = (list) => list.some((e) => e.outcome === 0)) {
  let out;
  for (let i = 0; i < 40; i++) {
    if (i) await new Promise((res) => setTimeout(res, 50));
    const r = await runCli(['audit', 'query', '--data', dir, '--node', 'node-1', '--format', 'ndjson',
      '--type', 'session.password-change', '--agent', user]);
    assert.equal(r.code, 0, r.stderr);
    out = { list: r.stdout.split('\n').filter(Boolean).map((l) => JSON.parse(l)), text: r.stdout };
    if (ready(out.list)) break;
  }
  return out;
}

describe('changing one\'s own password', () => {
  it('the form asks for the current password and the new one twice, with the browser\'s password hints', async () => {
    const s = await signedIn('pat');
    assert.ok(field(s.form, 'csrf'), 'a CSRF token');
    const page = (await s.b.get('/account')).text;
    assert.match(page, /name="current" type="password" autocomplete="current-password"/);
    assert.match(page, /name="password" type="password" autocomplete="new-password"/);
    assert.match(page, /name="again" type="password" autocomplete="new-password"/);
  });

  it('changes it, keeps this session and, with the box unticked, the apps\' access, and signs out every other session', async () => {
    const s = await signedIn('pat');
    const other = await signedIn('pat');
    // an app the user allowed before the change
    const a = await authorize(s.b, srv, { clientId: 'pw-app', redirectUri: CB, scope: 'openid offline_access user/Patient.rs' });
    assert.ok(a.code, `a code (${a.walk.pages})`);
    const t = await redeem(srv, { code: a.code, verifier: a.verifier, redirectUri: CB, clientId: 'pw-app' });
    assert.equal(t.status, 200, t.text);
    // and one allowed only while this session lives (online_access)
    const on = await authorize(s.b, srv, { clientId: 'pw-app', redirectUri: CB, scope: 'openid online_access user/Patient.rs' });
    assert.ok(on.code, `a code (${on.walk.pages})`);
    const ton = await redeem(srv, { code: on.code, verifier: on.verifier, redirectUri: CB, clientId: 'pw-app' });
    assert.equal(ton.status, 200, ton.text);
    assert.ok(ton.json.refresh_token, 'online access has a refresh token');

    const NEW = 'second-password-for-pat';
    const cookieName = [...s.b.jar.keys()].find((k) => !/csrf/i.test(k));
    const oldId = s.b.cookie(cookieName);
    const r = await change(s, { current: FIRST, password: NEW, apps: false });
    assert.equal(r.status, 303, r.text.slice(0, 300));
    const newId = s.b.cookie(cookieName);
    assert.ok(newId && newId !== oldId, 'this browser goes on under a new session id');
    const copy = new Browser(srv.baseUrl);
    copy.setCookie(cookieName, oldId);
    assert.equal((await copy.get('/account')).status, 303, 'a copy of the old cookie is signed out');
    assert.equal(new URL(r.location).pathname + new URL(r.location).search, '/account?changed=password');
    const acc = await s.b.get(r.location);
    assert.equal(acc.status, 200, 'this session goes on');
    assert.match(acc.text, /role="status">Your password is changed\. Everywhere else you were signed in, you are now signed out\./);
    assert.equal((await other.b.get('/account')).status, 303, 'the other session ended');
    assert.equal(await canSignIn('pat', FIRST), false, 'the old password is refused');
    assert.equal(await canSignIn('pat', NEW), true, 'the new one works');
    const rt = await postForm(`${srv.baseUrl}/oauth/token`, { grant_type: 'refresh_token', refresh_token: t.json.refresh_token, client_id: 'pw-app' });
    assert.equal(rt.status, 200, `the app keeps its access: ${rt.text}`);
    const rton = await postForm(`${srv.baseUrl}/oauth/token`, { grant_type: 'refresh_token', refresh_token: ton.json.refresh_token, client_id: 'pw-app' });
    assert.equal(rton.status, 200, `the online grant follows the session to its new id: ${rton.text}`);
    // the notice is a fixed text: nothing of the query is shown
    const odd = await s.b.get('/account?changed=%3Cb%3Ex');
    assert.equal(odd.status, 200);
    assert.doesNotMatch(odd.text, /role="status"|<b>x/);
    // ... and still ends with it
    const so = await accountPage(s.b);
    assert.equal((await s.b.post('/signout', new URLSearchParams({ csrf: so.csrf, everywhere: '0' }))).status < 400, true);
    const after = await postForm(`${srv.baseUrl}/oauth/token`, { grant_type: 'refresh_token', refresh_token: rton.json.refresh_token, client_id: 'pw-app' });
    assert.equal(after.status, 400, `signed out: the online grant cannot refresh: ${after.text}`);

    const { list, text } = await records('pat');
    const ok = list.filter((e) => e.outcome === 0);
    assert.equal(ok.length, 1, 'the change is on record');
    assert.equal(ok[0].action, 'U');
    assert.equal(ok[0].agent.username, 'pat');
    assert.equal(ok[0].source.session, `sha256:${crypto.createHash('sha256').update(oldId).digest('base64url')}`,
      'the session that asked, as a hash of the id its earlier records carry');
    assert.deepEqual(ok[0].entity, [{ type: 'Session', id: `sha256:${crypto.createHash('sha256').update(newId).digest('base64url')}` }],
      'and the new id it goes on under, so its records before and after can be joined');
    assert.ok(list.filter((e) => e.outcome !== 0).every((e) => !e.entity), 'a refused change names no new session');
    assert.ok(!text.includes(FIRST) && !text.includes(NEW), 'no password in the record');
  });

  it('with the box ticked (as the page offers it), every app must ask again: its refresh and access tokens stop at once', async () => {
    const s = await signedIn('pax');
    assert.deepEqual(s.form.fields.filter(([k]) => k === 'apps'), [['apps', 'end']], 'the box is ticked on the page');
    const a = await authorize(s.b, srv, { clientId: 'pw-app', redirectUri: CB, scope: 'openid offline_access user/Patient.rs', user: 'pax' });
    assert.ok(a.code, `a code (${a.walk.pages})`);
    const t = await redeem(srv, { code: a.code, verifier: a.verifier, redirectUri: CB, clientId: 'pw-app' });
    assert.equal(t.status, 200, t.text);
    const read = () => fetch(`${srv.baseUrl}/oauth/userinfo`, { headers: { authorization: `Bearer ${t.json.access_token}` } });
    assert.equal((await read()).status, 200, 'the app\'s token works before the change');

    const r = await change(s, { current: FIRST, password: 'pax-new-password-1' });
    assert.equal(r.status, 303, r.text.slice(0, 300));
    assert.equal(new URL(r.location).search, '?changed=password-apps');
    const acc = await s.b.get(r.location);
    assert.equal(acc.status, 200, 'this session goes on');
    assert.match(acc.text, /role="status">Your password is changed\. .*every app you had allowed must ask for your permission again\./);
    assert.match(acc.text, /No app has access\./, 'the account page lists no app');
    const rt = await postForm(`${srv.baseUrl}/oauth/token`, { grant_type: 'refresh_token', refresh_token: t.json.refresh_token, client_id: 'pw-app' });
    assert.equal(rt.status, 400, rt.text);
    assert.equal(rt.json.error, 'invalid_grant');
    const after = await read();
    assert.equal(after.status, 401, 'its access token stops at once');
    assert.match(after.headers.get('www-authenticate') || '', /invalid_token/);
    const { list } = await records('pax');
    const ok = list.filter((e) => e.outcome === 0);
    assert.equal(ok.length, 1);
    assert.equal(ok[0].outcomeCode, 'apps-ended', 'the record says the apps were signed out too');
  });

  it('of two changes sent at once from one session, one goes through and the other changes nothing', async () => {
    const s = await signedIn('pam');
    const [a, b] = await Promise.all([
      change(s, { current: FIRST, password: 'pam-password-one' }),
      change(s, { current: FIRST, password: 'pam-password-two' }),
    ]);
    const won = [a, b].filter((r) => r.status === 303);
    assert.equal(won.length, 1, `one goes through: ${a.status} ${b.status}`);
    const lost = a.status === 303 ? b : a;
    // the loser finds its session renewed by the winner (409), or, if the winner committed
    // before its password check, a current password that is no longer right (400)
    assert.ok([409, 400].includes(lost.status), `${lost.status}: ${lost.text.slice(0, 200)}`);
    assert.match(lost.text, lost.status === 409 ? /Your sign-in changed while this was being done/ : /not right/);
    const winner = a.status === 303 ? 'pam-password-one' : 'pam-password-two';
    assert.equal(await canSignIn('pam', winner), true, 'the winner\'s password is the one');
    assert.equal(await canSignIn('pam', winner === 'pam-password-one' ? 'pam-password-two' : 'pam-password-one'), false);
  });

  it('refuses, in plain words and without a change, a new password that does not fit', async () => {
    const s = await signedIn('pol');
    const cases = [
      [{ current: FIRST, password: 'pol-new-password', again: 'pol-new-passw0rd' }, /The two new passwords are not the same\./],
      [{ current: FIRST, password: 'short' }, /The new password must have at least 8 characters\./],
      [{ current: FIRST, password: 'x'.repeat(257) }, /The new password is longer than 256 characters\./],
      [{ current: FIRST, password: FIRST }, /The new password is the one you use now\./],
      [{ current: FIRST, password: undefined, again: undefined }, /The two new passwords are not the same\./],
    ];
    for (const [form, msg] of cases) {
      const r = await change(s, form);
      assert.equal(r.status, 400, `${JSON.stringify(form).slice(0, 80)}: ${r.text.slice(0, 200)}`);
      assert.match(r.text, /<h1>Your password is not changed<\/h1>/);
      assert.match(r.text, msg);
    }
    assert.equal(await canSignIn('pol', FIRST), true, 'the password is unchanged');
    assert.equal((await s.b.get('/account')).status, 200, 'and the session goes on');
  });

  it('needs the session and its CSRF token', async () => {
    const s = await signedIn('pru');
    for (const csrf of ['', 'not-the-token']) {
      const r = await change(s, { current: FIRST, password: 'pru-new-password', csrf });
      assert.equal(r.status, 403, r.text.slice(0, 200));
      assert.match(r.text, /This form has expired/);
    }
    const stranger = new Browser(srv.baseUrl);
    const r = await stranger.post('/account/password', new URLSearchParams({
      csrf: field(s.form, 'csrf'), current: FIRST, password: 'pru-new-password', again: 'pru-new-password' }));
    assert.equal(r.status, 403, 'no session, no change');
    // a cross-site post with the session's cookie and token is refused by its Origin
    const xs = await s.b.post('/account/password', new URLSearchParams({
      csrf: field(s.form, 'csrf'), current: FIRST, password: 'pru-new-password', again: 'pru-new-password' }),
    { origin: 'https://evil.example' });
    assert.equal(xs.status, 403, 'another origin');
    assert.equal(await canSignIn('pru', FIRST), true, 'the password is unchanged');
  });
});

/* Wrong passwords also count per client address: a server of its own, so the others' tests start clean. */
describe('changing one\'s own password: the throttle (a fresh server)', () => {
  let mainDir, mainSrv;

  before(async () => {
    [mainDir, mainSrv] = [dir, srv];
    dir = await makeTempDir('veranda-password-throttle-');
    await initDataDir(dir);
    for (const u of ['pia', 'pim']) {
      const r = await runCli(['user', 'add', '--data', dir, '--username', u, '--role', 'support', '--password-stdin'],
        { input: `${FIRST}\n` });
      assert.equal(r.code, 0, r.stderr);
    }
    srv = await startServer({ dataDir: dir, init: false });
  });

  after(async () => {
    await srv?.stop();
    await removeDir(dir);
    [dir, srv] = [mainDir, mainSrv];
  });

  it('a wrong current password changes nothing, is recorded, and counts on the sign-in throttle', async () => {
    const s = await signedIn('pia');
    const wrong = async (i) => {
      const r = await change(s, { current: `wrong-password-${i}`, password: 'pia-new-password-1' });
      assert.equal(r.status, 400, r.text.slice(0, 300));
      assert.match(r.text, /The current password you entered is not right\./);
      assert.match(r.text, /<a href="\/account">Back to your account<\/a>/);
    };
    for (let i = 0; i < 4; i++)
      await wrong(i);
    // the fourth failure asks for a second's wait; a fifth after it asks for two
    let held = await change(s, { current: `wrong-password-4`, password: 'pia-new-password-1' });
    assert.equal(held.status, 429, 'sent at once, it waits');
    await new Promise((r) => setTimeout(r, 1000 * Number(held.headers.get('retry-after')) + 100));
    await wrong(4);
    // now, within two seconds: the right password waits too, and so does signing in, for
    // this account and (the same address) another one
    held = await change(s, { current: FIRST, password: 'pia-new-password-1' });
    assert.equal(held.status, 429, held.text.slice(0, 300));
    assert.ok(Number(held.headers.get('retry-after')) >= 1, 'Retry-After');
    assert.match(held.text, /Too many wrong passwords were tried\. Try again in \d+ seconds?\./);
    assert.equal((await signIn(new Browser(srv.baseUrl), 'pia', FIRST)).status, 429, 'the account\'s sign-in waits');
    assert.equal((await signIn(new Browser(srv.baseUrl), 'pim', FIRST)).status, 429, 'the address\'s other sign-ins wait');
    assert.equal((await s.b.get('/account')).status, 200, 'the session itself is not ended');
    const { list, text } = await records('pia', (l) => l.some((e) => e.outcomeCode === 'throttled'));
    const codes = list.map((e) => [e.outcome, e.outcomeCode]);
    assert.equal(codes.filter(([o, c]) => o === 4 && c === 'wrong-password').length, 5, JSON.stringify(codes));
    assert.ok(codes.some(([o, c]) => o === 4 && c === 'throttled'), JSON.stringify(codes));
    assert.ok(!text.includes('wrong-password-0') && !text.includes('pia-new-password-1'), 'no password in the records');
    // and after the wait the right password changes it
    await new Promise((r) => setTimeout(r, 1000 * Number(held.headers.get('retry-after')) + 100));
    const r = await change(s, { current: FIRST, password: 'pia-new-password-1' });
    assert.equal(r.status, 303, r.text.slice(0, 300));
    assert.equal(await canSignIn('pia', 'pia-new-password-1'), true);
  });

});
