// The consent (decision) form, the patient picker and the silent
// (prompt=none) path attacked from the browser side: a user or a page that
// edits the forms, replays them, or races them.  Each test checks that the
// grant, the token and the data the token reaches never exceed what the
// screen offered and the user left ticked.
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { makeTempDir, removeDir, initDataDir, seedDataDir, startServer, requireBinary, runCli } from './lib/server.mjs';
import {
  Browser, authzRequest, walk, redeem, fhirGet, registerClient, signIn, accountPage, field, decodeEntities,
} from './lib/oauth.mjs';

const CB = 'https://app.example/cb';
// Withdrawing a proxy link is done in the database (no command does it yet); skipped without the shell.

let dir, srv, alice, bob, dr;

before(async () => {
  requireBinary();
  dir = await makeTempDir('veranda-consent-attacks-');
  await initDataDir(dir);
  await seedDataDir(dir, { patients: 0 });
  await registerClient(dir, { clientId: 'app', public: true, redirectUris: [CB], launchUrl: 'https://app.example/launch',
    name: 'Consent Test App' });
  srv = await startServer({ dataDir: dir, init: false });
  alice = new Browser(srv.baseUrl);
  bob = new Browser(srv.baseUrl);
  dr = new Browser(srv.baseUrl);
  assert.equal((await signIn(alice, 'alice')).status, 303);
  assert.equal((await signIn(bob, 'bob')).status, 303);
  assert.equal((await signIn(dr, 'drsmith')).status, 303);
});

after(async () => {
  if (srv) await srv.stop();
  await removeDir(dir);
});

// The consent page for 'scope' in 'browser' (after the picker when 'patient'): { req, form, text }.
async function consentFor(browser, scope, { patient, extra } = {}) {
  const req = authzRequest(srv, { clientId: 'app', redirectUri: CB, scope, extra });
  const w = await walk(browser, req.url, { stopAt: 'consent', patient });
  assert.equal(w.pages.at(-1), 'consent', `a consent page (${w.pages}: ${w.response.status} ${w.response.text.slice(0, 200)})`);
  return { req, form: w.form, html: w.response.text };
}

// Post the decision; resolves the token response (asserting a code came back).
async function decide(browser, req, body) {
  const r = await browser.post('/oauth/decide', body);
  assert.equal(r.status, 303, `a redirect (${r.status}: ${r.text.slice(0, 200)})`);
  const u = new URL(r.location);
  const code = u.searchParams.get('code');
  assert.ok(code, `a code: ${u}`);
  const t = await redeem(srv, { code, verifier: req.verifier, redirectUri: CB, clientId: 'app' });
  assert.equal(t.status, 200, t.text);
  return t.json;
}

// Visible text of a page.
const textOf = (html) => decodeEntities(html.replace(/<[^>]*>/g, ' ')).replace(/\s+/g, ' ');

describe('the consent form', () => {
  it('unticking one of two scopes of the same type withholds that scope, not the other', async () => {
    const { req, form } = await consentFor(alice, 'launch/patient patient/Observation.rs patient/Observation.cud');
    const boxes = form.checkboxes.filter((c) => c.name === 'type');
    assert.equal(boxes.length, 2, 'one choice per scope');
    // the user unticks the second item ("Add, change and delete ...") and allows the first
    const body = new URLSearchParams(form.fields);
    body.delete('type');
    body.append('type', boxes[0].value);
    body.set('action', 'allow');
    const t = await decide(alice, req, body);
    assert.deepEqual(t.scope.split(' '), ['launch/patient', 'patient/Observation.rs'], 'the write scope was declined');
    // and the API agrees: no create with this token
    const obs = { resourceType: 'Observation', status: 'final', code: { text: 'x' }, subject: { reference: 'Patient/alice' } };
    const w = await fetch(`${srv.fhirBase}/Observation`, { method: 'POST', body: JSON.stringify(obs),
      headers: { authorization: `Bearer ${t.access_token}`, 'content-type': 'application/fhir+json' } });
    assert.equal(w.status, 403, 'a declined write scope writes nothing');
  });

  it('unticking the user/ scope of a type keeps only the patient/ one', async () => {
    const { req, form } = await consentFor(alice, 'launch/patient patient/Observation.rs user/Observation.rs');
    const boxes = form.checkboxes.filter((c) => c.name === 'type');
    assert.equal(boxes.length, 2);
    const body = new URLSearchParams(form.fields);
    body.delete('type');
    body.append('type', boxes[0].value);
    body.set('action', 'allow');
    const t = await decide(alice, req, body);
    assert.deepEqual(t.scope.split(' '), ['launch/patient', 'patient/Observation.rs']);
  });

  it('a bare resource type still keeps every scope of that type (the documented form field)', async () => {
    const { req, form } = await consentFor(alice, 'launch/patient patient/Observation.rs patient/Observation.cud patient/Patient.rs');
    const body = new URLSearchParams(form.fields);
    body.delete('type');
    body.append('type', 'Observation');
    body.set('action', 'allow');
    const t = await decide(alice, req, body);
    assert.deepEqual(t.scope.split(' '), ['launch/patient', 'patient/Observation.rs', 'patient/Observation.cud']);
  });

  it('the decision is taken once: ten posts of one form at the same moment issue one code', async () => {
    const { form } = await consentFor(alice, 'launch/patient patient/Patient.rs');
    const body = new URLSearchParams(form.fields);
    body.set('action', 'allow');
    const all = await Promise.all(Array.from({ length: 10 }, () => alice.post('/oauth/decide', body)));
    const codes = all.filter((r) => r.location && new URL(r.location).searchParams.get('code'));
    assert.equal(codes.length, 1, `codes issued: ${codes.length} (${all.map((r) => r.status)})`);
  });
});

describe('the patient picker', () => {
  it('a patient chosen in another session is neither shown nor granted to the user who continues the request', async () => {
    const req = authzRequest(srv, { clientId: 'app', redirectUri: CB, scope: 'launch/patient patient/*.rs' });
    const w = await walk(bob, req.url, { stopAt: 'picker' });
    const label = /value="bob-child"[^>]*>\s*([^<]+?)\s*<span/.exec(w.response.text);
    assert.ok(label, 'bob-child is offered to bob');
    const childName = label[1];
    const p = await bob.post('/oauth/patient', { csrf: field(w.form, 'csrf'), req: field(w.form, 'req'), patient: 'bob-child' });
    assert.ok(textOf(p.text).includes(childName), 'bob\'s consent page names his child');
    // the same request continued by alice: her own record, nothing of bob-child's
    const r = await alice.get(`/oauth/continue?req=${field(w.form, 'req')}`);
    assert.equal(r.status, 200);
    assert.ok(!textOf(r.text).includes(childName), `bob-child's name is not shown to alice: ${textOf(r.text).slice(0, 300)}`);
    const w2 = await walk(alice, `${srv.baseUrl}/oauth/continue?req=${field(w.form, 'req')}`);
    const code = w2.redirect?.searchParams.get('code');
    assert.ok(code, `a code for alice (${w2.pages})`);
    const t = await redeem(srv, { code, verifier: req.verifier, redirectUri: CB, clientId: 'app' });
    assert.equal(t.json.patient, 'alice');
    assert.equal((await fhirGet(srv, 'Patient/bob-child', t.json.access_token)).status, 404);
  });
});

describe('EHR launch context', () => {
  async function launch(patient, encounter) {
    const acc = await accountPage(dr);
    const form = { client_id: 'app', patient, csrf: acc.csrf };
    if (encounter) form.encounter = encounter;
    const r = await dr.post('/oauth/launch', form);
    assert.equal(r.status, 303);
    return new URL(r.location).searchParams.get('launch');
  }

  it('the patient of a launch cannot be swapped on the picker: the grant keeps the launch\'s patient and encounter', async () => {
    const lid = await launch('alice', 'enc-of-alice');
    const scope = 'launch patient/*.rs';
    const { req, form } = await consentFor(dr, scope, { extra: { launch: lid } });
    const p = await dr.post('/oauth/patient', { csrf: field(form, 'csrf'), req: field(form, 'req'), patient_id: 'bob-self' });
    assert.ok([200, 400, 403].includes(p.status), String(p.status));
    const body = new URLSearchParams(form.fields);
    body.set('action', 'allow');
    const t = await decide(dr, req, body);
    assert.equal(t.patient, 'alice', 'the launch\'s patient');
    assert.equal(t.encounter, 'enc-of-alice');
  });
});

describe('prompt=none', () => {
  it('a session older than max_age: login_required with state and iss, no page', async () => {
    await new Promise((r) => setTimeout(r, 1100));
    const req = authzRequest(srv, { clientId: 'app', redirectUri: CB, scope: 'launch/patient patient/Patient.rs',
      extra: { prompt: 'none', max_age: '1' } });
    const r = await alice.get(req.url);
    assert.equal(r.status, 303, r.text.slice(0, 200));
    const u = new URL(r.location);
    assert.equal(u.searchParams.get('error'), 'login_required');
    assert.equal(u.searchParams.get('state'), req.state);
    assert.equal(u.searchParams.get('iss'), srv.baseUrl);
  });

  it('a withdrawn proxy link ends silent requests, refreshes and access tokens for that patient at once', async () => {
    const scope = 'launch/patient offline_access patient/Patient.rs';
    const refresh = (token) => fetch(`${srv.baseUrl}/oauth/token`, { method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
      body: new URLSearchParams({ grant_type: 'refresh_token', refresh_token: token, client_id: 'app' }) });
    const silent = async () => {
      const req = authzRequest(srv, { clientId: 'app', redirectUri: CB, scope, extra: { prompt: 'none' } });
      const r = await bob.get(req.url);
      assert.equal(r.status, 303, r.text.slice(0, 200));
      return { req, u: new URL(r.location) };
    };
    // bob allows the app for bob-child (picked), then a silent request gets a code for bob-child
    const { req, form } = await consentFor(bob, scope, { patient: 'bob-child' });
    const body = new URLSearchParams(form.fields);
    body.set('action', 'allow');
    assert.equal((await decide(bob, req, body)).patient, 'bob-child');
    const first = await silent();
    const r1 = first.req;
    let u = first.u;
    assert.ok(u.searchParams.get('code'), `a silent code while the link stands: ${u}`);
    const t = await redeem(srv, { code: u.searchParams.get('code'), verifier: r1.verifier, redirectUri: CB, clientId: 'app' });
    assert.equal(t.json.patient, 'bob-child');
    assert.ok(t.json.refresh_token, 'offline access: a refresh token');
    const read = () => fetch(`${srv.baseUrl}/fhir/Patient/bob-child`, { headers: { authorization: `Bearer ${t.json.access_token}` } });
    assert.equal((await read()).status, 200, 'the access token works while the link stands');
    // the link from bob to bob-child is withdrawn with the command line (and put back
    // afterwards: later tests use it)
    const cli = async (...args) => {
      const r = await runCli(['user', ...args, '--data', dir, '--username', 'bob', '--patient', 'bob-child']);
      assert.equal(r.code, 0, r.stderr);
      return r.stdout;
    };
    const out = await cli('unlink');
    try {
      // this grant, and the one an earlier test made for bob-child
      assert.match(out, /no longer acts for Patient\/bob-child \([1-9]\d* app authorizations? for that patient ended\)/);
      // the access token issued under the grant stops working at once, not at its expiry
      const gone = await read();
      assert.equal(gone.status, 401);
      assert.match(gone.headers.get('www-authenticate') || '', /invalid_token/);
      ({ u } = await silent());
      assert.equal(u.searchParams.get('code'), null, `no code for a record bob no longer acts for: ${u}`);
      assert.equal(u.searchParams.get('error'), 'interaction_required', String(u));
      assert.equal(u.searchParams.get('iss'), srv.baseUrl);
      const refused = await refresh(t.json.refresh_token);
      assert.equal(refused.status, 400);
      const body = await refused.json();
      assert.equal(body.error, 'invalid_grant');
      assert.match(body.error_description, /revoked/);
    } finally {
      await cli('link', '--related-person', 'bob-for-child');
    }
    // the grant ended with the link: putting the link back does not revive it
    const again = await refresh(t.json.refresh_token);
    assert.equal(again.status, 400);
    assert.equal((await again.json()).error, 'invalid_grant');
  });

  it('none combined with another value is refused', async () => {
    for (const prompt of ['none select_account', 'select_account none']) {
      const req = authzRequest(srv, { clientId: 'app', redirectUri: CB, scope: 'launch/patient patient/Patient.rs', extra: { prompt } });
      const r = await alice.get(req.url);
      assert.equal(r.status, 303, prompt);
      const u = new URL(r.location);
      assert.equal(u.searchParams.get('error'), 'invalid_request', `${prompt}: ${u}`);
      assert.equal(u.searchParams.get('state'), req.state);
      assert.equal(u.searchParams.get('iss'), srv.baseUrl);
    }
  });
});

describe('the screen\'s words', () => {
  it('long constraints full of "your", on someone else\'s record: described as theirs, no overrun (ASan build)', async () => {
    const v = encodeURIComponent(`${'your '.repeat(50)}x`);
    const { html } = await consentFor(bob, `launch/patient patient/Observation.rs?code=${v}&category=${v}&status=${v}`,
      { patient: 'bob-child' });
    const text = textOf(html);
    assert.ok(text.includes('their test results'), text.slice(0, 400));
    const after2 = await fetch(`${srv.baseUrl}/healthz`);
    assert.equal(after2.status, 200, 'the server is still up');
  });

  it('every launch and identity scope asked for is listed in plain words', async () => {
    const { html } = await consentFor(alice, 'launch/patient launch/encounter openid fhirUser patient/Patient.rs');
    const text = textOf(html);
    for (const s of ['Know whose record you chose to share', 'Know which visit you are looking at',
      'Confirm that it is you who signed in', 'Know who you are in the health record']) {
      assert.ok(text.includes(s), `${s}: ${text}`);
    }
  });
});
