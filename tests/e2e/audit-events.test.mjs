// The audit log's event catalogue, path by path, through the real server:
// the less common FHIR interactions (vread, HEAD, 304, type- and
// system-level history, failed writes, refused history, $everything,
// searches and Bundle entries), introspection by a resource server, the
// token and authorization records' hashed ids, the compliance search at
// /fhir/AuditEvent (its filters, and its own record), a session that
// expires (presented again or not), and that no record holds a token,
// password or secret.
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import * as jose from 'jose';
import {
  makeTempDir, removeDir, initDataDir, seedDataDir, startServer, runCli, requireBinary, freePort,
} from './lib/server.mjs';
import {
  Browser, authorize, redeem, postForm, registerClient, serveFixed, fetchJson, accountPage, signIn, basic,
  DEMO_PASSWORD, formFor,
} from './lib/oauth.mjs';
import { fhirAs as fhir, hashId, queryLog } from './lib/audit.mjs';

const CB = 'http://127.0.0.1:9999/cb';
const RS_SECRET = 'rs-secret-0123456789-abcdefghij';

describe('the audit event catalogue, path by path', () => {
  let dir, srv, log;
  const seen = {};
  const secrets = [RS_SECRET, DEMO_PASSWORD];

  /* A user's token for the public app (a fresh browser each time): { token, jti, browser, code, verifier } */
  async function userToken(user, scope) {
    const b = new Browser(srv.baseUrl);
    const a = await authorize(b, srv, { clientId: 'ev-app', redirectUri: CB, scope, user });
    assert.ok(a.code, `a code for ${user}: ${a.walk.pages.join(' → ')}`);
    const t = await redeem(srv, { code: a.code, verifier: a.verifier, redirectUri: CB, clientId: 'ev-app' });
    assert.equal(t.status, 200, t.text);
    secrets.push(a.code, a.verifier, t.json.access_token, t.json.refresh_token, t.json.id_token);
    for (const [, v] of b.jar) secrets.push(v);
    return { token: t.json.access_token, jti: jose.decodeJwt(t.json.access_token).jti, browser: b,
      tokenRid: t.headers.get('x-request-id') };
  }

  const byReq = (rid, type) => log.records.filter((r) => r.correlation?.request === rid && (!type || r.type === type));
  // Read the log into 'log' once each request id has a record there (up to 2 s: records not
  // waited for reach audit.db a moment after the answer).
  const logWith = async (...rids) => {
    for (let i = 0; i < 40; i++) {
      log = await queryLog(dir);
      if (rids.every((rid) => byReq(rid).length)) return;
      await new Promise((r) => setTimeout(r, 50));
    }
  };
  const one = (rid, type) => {
    const hits = byReq(rid, type);
    assert.equal(hits.length, 1, `one ${type} record for request ${rid}: ${JSON.stringify(byReq(rid))}`);
    return hits[0];
  };

  before(async () => {
    requireBinary();
    dir = await makeTempDir('veranda-audit-events-');
    await initDataDir(dir);
    await seedDataDir(dir, { patients: 0 });
    await registerClient(dir, { clientId: 'ev-app', public: true, redirectUris: [CB] });
    await registerClient(dir, { clientId: 'ev-rs', secret: RS_SECRET, redirectUris: [CB] });
    await registerClient(dir, { clientId: 'ev-launch', public: true, redirectUris: [CB], launchUrl: 'http://127.0.0.1:9/launch' });
    srv = await startServer({ dataDir: dir, init: false });
    secrets.push(srv.token);
  });

  after(async () => {
    await srv?.stop();
    await removeDir(dir);
  });

  it('drives reads, history, writes, refusals, Bundles, introspection and the compliance search', async () => {
    const alice = await userToken('alice', 'launch/patient openid fhirUser offline_access patient/*.cruds');
    seen.alice = alice;
    const obs = (await fhir(srv, 'GET', 'Observation?_count=1', alice.token)).json.entry[0].resource;
    seen.obs = obs;

    // HEAD, a 304 and a vread: each a record of its own kind
    const head = await fetch(`${srv.fhirBase}/Patient/alice`, { method: 'HEAD', headers: { authorization: `Bearer ${alice.token}` } });
    assert.equal(head.status, 200);
    seen.head = head.headers.get('x-request-id');
    const rd = await fhir(srv, 'GET', 'Patient/alice', alice.token);
    const nm = await fhir(srv, 'GET', 'Patient/alice', alice.token, { headers: { 'if-none-match': rd.headers.get('etag') } });
    assert.equal(nm.status, 304);
    seen.notModified = nm.rid;
    const vr = await fhir(srv, 'GET', `Observation/${obs.id}/_history/${obs.meta.versionId}`, alice.token);
    assert.equal(vr.status, 200);
    seen.vread = vr.rid;

    // history across records is refused to a patient's token; another patient's history is hidden
    const ht = await fhir(srv, 'GET', 'Observation/_history', alice.token);
    const hs = await fhir(srv, 'GET', '_history', alice.token);
    const hh = await fhir(srv, 'GET', 'Patient/bob-self/_history', alice.token);
    assert.deepEqual([ht.status, hs.status, hh.status], [403, 403, 404]);
    seen.histRefused = { type: ht.rid, system: hs.rid, hidden: hh.rid };

    // $everything of another patient, and a Bundle reaching into another record
    const ev = await fhir(srv, 'GET', 'Patient/bob-self/$everything', alice.token);
    assert.equal(ev.status, 403, ev.text);
    seen.everythingOther = ev.rid;
    const bobObs = (await srv.fhirFetch('/Observation?patient=bob-self&_count=1')).json.entry[0].resource;
    const bb = await fhir(srv, 'POST', '', alice.token, { body: { resourceType: 'Bundle', type: 'batch', entry: [
      { request: { method: 'GET', url: 'Patient/alice' } },
      { request: { method: 'GET', url: `Observation/${bobObs.id}` } },
    ] } });
    assert.equal(bb.status, 403, bb.text);
    seen.bundleRefused = { rid: bb.rid, id: bobObs.id };

    // a write refused by If-Match (412): on record as a failed update of alice's Observation
    const pre = await fhir(srv, 'PUT', `Observation/${obs.id}`, alice.token, { body: obs, headers: { 'if-match': 'W/"999"' } });
    assert.equal(pre.status, 412, pre.text);
    seen.precondition = pre.rid;

    // the backend service: type- and system-level history, and a system-level search by POST
    const bt = await srv.fhirFetch('/Observation/_history?_count=2');
    const bs = await srv.fhirFetch('/_history?_count=2');
    assert.deepEqual([bt.status, bs.status], [200, 200]);
    seen.histType = bt.headers.get('x-request-id');
    seen.histSystem = bs.headers.get('x-request-id');

    // a resource server introspects alice's token
    const intro = await postForm(`${srv.baseUrl}/oauth/introspect`, { token: alice.token }, { auth: basic('ev-rs', RS_SECRET) });
    assert.equal(intro.status, 200, intro.text);
    assert.equal(intro.json.active, true);
    seen.introspect = intro.headers.get('x-request-id');

    // the compliance officer searches the log; alice may not
    const carol = await userToken('carol', 'openid fhirUser user/AuditEvent.rs');
    seen.carol = carol;
    const ae = async (q, token = carol.token) => fhir(srv, 'GET', `AuditEvent?${q}`, token);
    const denied = await ae('patient=alice', alice.token);
    assert.equal(denied.status, 403);
    seen.aeDenied = denied.rid;
    seen.aeSearch = (await ae('patient=alice&agent=alice&_count=5')).rid;

    // alice signs out
    const acc = await accountPage(alice.browser);
    assert.equal((await alice.browser.post('/signout', { csrf: acc.csrf })).status, 200);
  });

  it('an app denied at the consent page, and an EHR launch used by another user, are oauth.authorize-denied records', async () => {
    const b = new Browser(srv.baseUrl);
    const denied = await authorize(b, srv, { clientId: 'ev-app', redirectUri: CB, scope: 'launch/patient patient/*.rs', user: 'alice', action: 'deny' });
    assert.equal(denied.error, 'access_denied');
    // drsmith opens ev-launch for alice; alice's browser tries to use that launch
    const dr = new Browser(srv.baseUrl);
    assert.equal((await signIn(dr, 'drsmith')).status, 303);
    const acc = await accountPage(dr);
    const l = await dr.post('/oauth/launch', { client_id: 'ev-launch', patient: 'alice', csrf: acc.csrf });
    assert.equal(l.status, 303);
    const lid = new URL(l.location).searchParams.get('launch');
    const other = await authorize(b, srv, { clientId: 'ev-launch', redirectUri: CB, scope: 'launch patient/*.rs', launch: lid, user: 'alice' });
    assert.equal(other.code, null);
    assert.equal(other.error, 'invalid_request');
    let recs = [];
    for (let i = 0; i < 40 && recs.length < 2; i++) {
      if (i) await new Promise((r) => setTimeout(r, 50));
      recs = (await queryLog(dir, '--type', 'oauth.authorize-denied', '--agent', 'alice')).records;
    }
    const codes = recs.map((r) => [r.outcome, r.outcomeCode, r.agent?.client]).sort();
    assert.deepEqual(codes, [[4, 'access_denied', 'ev-app'], [4, 'launch-other-user', 'ev-launch']], JSON.stringify(recs));
    for (const r of recs) assert.ok(r.source?.session, 'the session as a hash');
  });

  it('GET /fhir/AuditEvent filters by patient, agent, date, type, outcome and entity', async () => {
    const carol = seen.carol.token;
    const search = async (q) => {
      const r = await fhir(srv, 'GET', `AuditEvent?${q}`, carol);
      assert.equal(r.status, 200, r.text);
      return (r.json.entry || []).map((e) => e.resource);
    };
    const subtype = (e) => e.subtype.find((s) => s.system === 'urn:veranda:audit-event-type')?.code;
    const byPatient = await search('patient=bob-self&_count=50');
    assert.ok(byPatient.length > 0);
    assert.ok(byPatient.every((e) => e.entity.some((x) => /\/Patient\/bob-self$/.test(x.what?.reference ?? ''))));
    const byAgent = await search('agent=carol&_count=50');
    assert.ok(byAgent.length > 0 && byAgent.every((e) => e.agent.some((a) => a.altId === 'carol')));
    const byType = await search('type=fhir.vread');
    assert.deepEqual(byType.map(subtype), ['fhir.vread']);
    assert.ok(byType[0].subtype.some((s) => s.code === 'vread'), 'BALP restful-interaction vread');
    const refused = await search('outcome=4&_count=100');
    assert.ok(refused.length > 0 && refused.every((e) => e.outcome === '4'));
    const byEntity = await search(`entity=Observation/${seen.obs.id}&_count=100`);
    assert.ok(byEntity.some((e) => subtype(e) === 'fhir.vread'));
    assert.ok(byEntity.every((e) => e.entity.some((x) => (x.what?.reference ?? '').includes(`/Observation/${seen.obs.id}`))));
    const today = new Date().toISOString().slice(0, 10);
    assert.ok((await search(`date=${today}&type=fhir.vread`)).length === 1);
    assert.equal((await search('date=lt2000-01-01')).length, 0);
  });

  it('a silent authorization (prompt=none) is on record: granted without a page, or refused with its reason', async () => {
    const b = new Browser(srv.baseUrl);
    const scope = 'launch/patient patient/Observation.rs';
    const first = await authorize(b, srv, { clientId: 'ev-app', redirectUri: CB, scope, user: 'alice' });
    assert.ok(first.code, first.walk.pages.join(' → '));
    const silent = await authorize(b, srv, { clientId: 'ev-app', redirectUri: CB, scope, extra: { prompt: 'none' } });
    assert.ok(silent.code, 'a code without any page');
    assert.deepEqual(silent.walk.pages, []);
    const grantRid = silent.walk.response.headers.get('x-request-id');
    // an app alice never allowed: consent_required, on record as a refusal
    const never = await authorize(b, srv, { clientId: 'ev-launch', redirectUri: CB, scope, extra: { prompt: 'none' } });
    assert.equal(never.error, 'consent_required');
    const refuseRid = never.walk.response.headers.get('x-request-id');
    await logWith(grantRid, refuseRid);
    const g = one(grantRid, 'oauth.authorize-granted');
    assert.equal(g.outcome, 0);
    assert.equal(g.patient, 'alice');
    assert.equal(g.agent.username, 'alice');
    assert.equal(g.agent.client, 'ev-app');
    assert.match(g.authority.scopes, /patient\/Observation\.rs/);
    assert.ok(g.source?.session, 'the session as a hash');
    const d = one(refuseRid, 'oauth.authorize-denied');
    assert.deepEqual([d.outcome, d.outcomeCode, d.agent.client, d.agent.username], [4, 'consent_required', 'ev-launch', 'alice']);
    assert.ok(d.source?.session, 'the session as a hash');
  });

  it('a search whose query is too long to record is still on record, its query marked so', async () => {
    const long = 'x'.repeat(1500); // each value within the search's limit, the two past the record's
    const r = await fhir(srv, 'GET', `Observation?patient=alice&_tag=${long}&_tag=y${long}`, seen.alice.token);
    assert.equal(r.status, 200, r.text.slice(0, 200));
    await logWith(r.rid);
    const rec = one(r.rid, 'fhir.search');
    assert.equal(rec.patient, 'alice');
    assert.deepEqual(rec.entity, [{ type: 'Observation', query: 'Observation?_query=too-long' }]);
    assert.ok(!log.text.includes(long), 'the value is not in the log');
  });

  it('refused bearer requests are policy.denied records with their reason; a staff refusal is in the patient\'s record', async () => {
    const sam = await userToken('sam', 'openid fhirUser user/*.rs');
    const staff = await fhir(srv, 'GET', 'Patient/alice', sam.token);
    assert.equal(staff.status, 403, staff.text);
    const inUrl = await fetch(`${srv.fhirBase}/Patient/alice?access_token=${encodeURIComponent(seen.alice.token)}`,
      { headers: { accept: 'application/fhir+json' } });
    assert.equal(inUrl.status, 400);
    const forged = await fhir(srv, 'GET', 'Patient/alice', `${seen.alice.token.slice(0, -4)}AAAA`);
    assert.equal(forged.status, 401);
    // through alice's compartment: the patient is the route's id, not an Observation's
    const comp = await fhir(srv, 'GET', 'Patient/alice/Observation', sam.token);
    const all = await fhir(srv, 'GET', 'Patient/alice/$everything', sam.token);
    assert.deepEqual([comp.status, all.status], [403, 403]);
    const rids = { staff: staff.rid, inUrl: inUrl.headers.get('x-request-id'), forged: forged.rid, comp: comp.rid, all: all.rid };
    await logWith(...Object.values(rids));
    const s = one(rids.staff, 'policy.denied');
    assert.deepEqual([s.outcome, s.outcomeCode, s.agent.username, s.agent.role, s.patient], [4, 'staff-role-needs-elevation', 'sam', 'support', 'alice']);
    assert.deepEqual(s.entity, [{ type: 'Patient', id: 'alice' }]);
    assert.equal(s.source?.token, hashId(sam.jti));
    const c = one(rids.comp, 'policy.denied');
    assert.deepEqual([c.outcomeCode, c.entity], ['staff-role-needs-elevation', [{ type: 'Observation' }]], 'no Observation/alice');
    const e = one(rids.all, 'policy.denied');
    assert.deepEqual([e.outcomeCode, e.patient, e.entity], ['staff-role-needs-elevation', 'alice', [{ type: 'Patient', id: 'alice' }]]);
    const u = one(rids.inUrl, 'policy.denied');
    assert.deepEqual([u.outcomeCode, u.agent?.username, u.patient], ['token-in-url', undefined, undefined], 'nothing taken from a token sent the wrong way');
    const f = one(rids.forged, 'policy.denied');
    assert.deepEqual([f.outcomeCode, f.agent?.username, f.patient], ['invalid-token', undefined, undefined]);
    assert.ok(!log.text.includes(seen.alice.token.slice(-40)), 'no part of the token in the log');
  });

  it('a caregiver\'s read names whom they act for, a patient\'s own does not; the trace id and the address are on every kind of record', async () => {
    const trace = crypto.randomBytes(16).toString('hex');
    const traceparent = `00-${trace}-${crypto.randomBytes(8).toString('hex')}-01`;
    // bob (a caregiver) with his mother's record in context
    const b = new Browser(srv.baseUrl);
    const a = await authorize(b, srv, { clientId: 'ev-app', redirectUri: CB, scope: 'launch/patient openid fhirUser patient/*.rs', user: 'bob', patient: 'bob-mother' });
    assert.ok(a.code, a.walk.pages.join(' → '));
    const tok = await postForm(`${srv.baseUrl}/oauth/token`, { grant_type: 'authorization_code', code: a.code, code_verifier: a.verifier,
      redirect_uri: CB, client_id: 'ev-app' }, { headers: { traceparent } });
    assert.equal(tok.status, 200, tok.text);
    secrets.push(a.code, a.verifier, tok.json.access_token, tok.json.id_token);
    const bobRead = await fhir(srv, 'GET', 'Patient/bob-mother', tok.json.access_token, { headers: { traceparent } });
    assert.equal(bobRead.status, 200);
    const own = await fhir(srv, 'GET', 'Patient/alice', seen.alice.token, { headers: { traceparent } });
    assert.equal(own.status, 200);
    const sb = new Browser(srv.baseUrl);
    const page = await sb.get('/signin');
    const body = new URLSearchParams(formFor(page.text, '/oauth/login').fields);
    body.set('username', 'erin');
    body.set('password', DEMO_PASSWORD);
    const si = await sb.post('/oauth/login', body, { traceparent });
    assert.equal(si.status, 303);
    const rids = { token: tok.headers.get('x-request-id'), bob: bobRead.rid, own: own.rid, signin: si.headers.get('x-request-id') };
    await logWith(...Object.values(rids));
    const r = one(rids.bob, 'fhir.read');
    assert.deepEqual([r.agent.username, r.agent.role, r.agent.fhirUser, r.agent.onBehalfOf, r.patient],
      ['bob', 'caregiver', 'Patient/bob-self', 'bob-mother', 'bob-mother']);
    assert.equal(one(rids.own, 'fhir.read').agent.onBehalfOf, undefined, 'alice reads her own record');
    for (const [what, rid, type] of [['token', rids.token, 'oauth.token-issued'], ['read', rids.bob, 'fhir.read'],
      ['own read', rids.own, 'fhir.read'], ['sign-in', rids.signin, 'session.signin']]) {
      const rec = one(rid, type);
      assert.equal(rec.correlation.trace, trace, `${what}: the caller's trace id`);
      assert.equal(rec.source?.addr, '127.0.0.1', `${what}: the client's address`);
    }
  });

  it('a read of an id that does not exist, or no longer does, is on record: probing for ids shows', async () => {
    const dr = await userToken('drsmith', 'openid fhirUser user/*.cruds');
    const missing = await fhir(srv, 'GET', 'Observation/no-such-observation', dr.token);
    assert.equal(missing.status, 404);
    const made = await fhir(srv, 'POST', 'Observation', dr.token, { body: { resourceType: 'Observation', status: 'final',
      code: { text: 'probe' }, subject: { reference: 'Patient/alice' } } });
    assert.equal(made.status, 201, made.text);
    assert.equal((await fhir(srv, 'DELETE', `Observation/${made.json.id}`, dr.token)).status, 204);
    const gone = await fhir(srv, 'GET', `Observation/${made.json.id}`, dr.token);
    assert.equal(gone.status, 410);
    await logWith(missing.rid, gone.rid);
    const m = one(missing.rid, 'fhir.read');
    assert.deepEqual([m.outcome, m.outcomeCode, m.agent.username, m.patient], [4, 'not-found', 'drsmith', undefined]);
    assert.deepEqual(m.entity, [{ type: 'Observation', id: 'no-such-observation' }]);
    const g = one(gone.rid, 'fhir.read');
    assert.deepEqual([g.outcome, g.outcomeCode, g.agent.username], [4, 'gone', 'drsmith']);
    assert.deepEqual(g.entity, [{ type: 'Observation', id: made.json.id }]);
  });

  it('a failed sign-in names the account; a name that is no account\'s (a password in the wrong field) only as a keyed hash', async () => {
    const tryOnce = async (username, password) => {
      const b = new Browser(srv.baseUrl);
      const page = await b.get('/signin');
      const body = new URLSearchParams(formFor(page.text, '/oauth/login').fields);
      body.set('username', username);
      body.set('password', password);
      const r = await b.post('/oauth/login', body);
      assert.equal(r.status, 401, 'the sign-in page again, refused');
      return r.headers.get('x-request-id');
    };
    const wrong = await tryOnce('Alice', 'not-her-password');
    const typo1 = await tryOnce(DEMO_PASSWORD, 'x');
    const typo2 = await tryOnce(DEMO_PASSWORD.toUpperCase(), 'x');
    await logWith(wrong, typo1, typo2);
    const w = one(wrong, 'session.signin-failed');
    assert.deepEqual([w.outcome, w.outcomeCode, w.agent.username], [4, 'wrong-credentials', 'alice']);
    const t1 = one(typo1, 'session.signin-failed'), t2 = one(typo2, 'session.signin-failed');
    assert.match(t1.agent.username, /^~[A-Za-z0-9_-]{22}$/, 'a keyed hash, not the name typed');
    assert.equal(t2.agent.username, t1.agent.username, 'the same name typed again: the same hash');
    assert.equal(t1.outcomeCode, 'wrong-credentials');
    assert.ok(!log.text.toLowerCase().includes(DEMO_PASSWORD.toLowerCase()), 'the password typed as a name is not in the log');
  });

  it('refusals outside the FHIR API are policy.denied records: a launch by a patient, a record picked that is not the user\'s, userinfo without openid', async () => {
    // alice (a patient) tries to open an app for bob's child
    const ab = new Browser(srv.baseUrl);
    assert.equal((await signIn(ab, 'alice')).status, 303);
    const launch = await ab.post('/oauth/launch', { client_id: 'ev-launch', patient: 'bob-child', csrf: (await accountPage(ab)).csrf });
    assert.equal(launch.status, 403);
    // bob (a caregiver) picks alice's record on the patient picker: asked again
    const bb = new Browser(srv.baseUrl);
    const pick = await authorize(bb, srv, { clientId: 'ev-app', redirectUri: CB, scope: 'launch/patient patient/*.rs', user: 'bob', stopAt: 'picker' });
    const form = new URLSearchParams(pick.walk.form.fields);
    form.set('patient_id', 'alice');
    const picked = await bb.post('/oauth/patient', form);
    assert.equal(picked.status, 200);
    assert.match(picked.text, /action="\/oauth\/patient"/, 'the picker again');
    // a token without openid asks for userinfo
    const t = await userToken('alice', 'launch/patient patient/Patient.rs');
    const ui = await fetch(`${srv.baseUrl}/oauth/userinfo`, { headers: { authorization: `Bearer ${t.token}` } });
    assert.equal(ui.status, 403);
    const fakeApp = await ab.post('/oauth/launch', { client_id: `Click here: evil.example ${'x'.repeat(40)}`, patient: 'bob-child', csrf: (await accountPage(ab)).csrf });
    assert.equal(fakeApp.status, 403);
    const rids = [launch, picked, ui, fakeApp].map((r) => r.headers.get('x-request-id'));
    await logWith(...rids);
    const l = one(rids[0], 'policy.denied');
    assert.deepEqual([l.outcome, l.outcomeCode, l.agent.username, l.agent.client, l.patient], [4, 'launch-needs-clinician', 'alice', 'ev-launch', undefined]);
    assert.deepEqual(l.entity, [{ type: 'Patient', id: 'bob-child' }], 'the record asked for, not in its history');
    assert.ok(l.source?.session, 'the session as a hash');
    const fake = one(rids[3], 'policy.denied');
    assert.deepEqual([fake.outcomeCode, fake.agent.client], ['launch-needs-clinician', undefined], 'an app id that is no app is not kept');
    const p = one(rids[1], 'policy.denied');
    assert.deepEqual([p.outcome, p.outcomeCode, p.agent.username, p.agent.role, p.patient], [4, 'not-linked', 'bob', 'caregiver', 'alice']);
    const u = one(rids[2], 'policy.denied');
    assert.deepEqual([u.outcome, u.outcomeCode, u.agent.username, u.agent.client, u.patient], [4, 'insufficient-scope', 'alice', 'ev-app', undefined]);
    assert.equal(u.source?.token, hashId(t.jti), 'the token as a hash');
  });

  it('each leaves the record it should, with the fields it should', async () => {
    await srv.stop({ keepData: true });
    log = await queryLog(dir);
    const aliceAgent = { username: 'alice', role: 'patient', fhirUser: 'Patient/alice', client: 'ev-app' };
    const tokenHash = hashId(seen.alice.jti);

    // HEAD and 304 are reads; a vread names the version
    for (const rid of [seen.head, seen.notModified]) {
      const r = one(rid, 'fhir.read');
      assert.deepEqual(r.entity, [{ type: 'Patient', id: 'alice', version: '1' }]);
      assert.equal(r.patient, 'alice');
      assert.deepEqual(r.agent, aliceAgent);
      assert.equal(r.source?.token, tokenHash);
    }
    assert.deepEqual(one(seen.vread, 'fhir.vread').entity, [{ type: 'Observation', id: seen.obs.id, version: seen.obs.meta.versionId }]);

    // refused history: policy denials, the hidden one in bob's record
    for (const rid of [seen.histRefused.type, seen.histRefused.system]) {
      const r = one(rid, 'policy.denied');
      assert.equal(r.outcome, 4);
      assert.equal(r.outcomeCode, 'insufficient-scope');
      assert.equal(r.patient, 'alice');
      assert.equal(r.source?.token, tokenHash);
    }
    assert.equal(one(seen.histRefused.type, 'policy.denied').entity?.[0]?.type, 'Observation');
    const hidden = one(seen.histRefused.hidden, 'policy.denied');
    assert.equal(hidden.outcomeCode, 'not-visible');
    assert.equal(hidden.patient, 'bob-self', 'a refused look at bob\'s record is in bob\'s history');
    assert.equal(byReq(seen.histRefused.hidden, 'fhir.history').length, 0);

    // $everything of another patient and the Bundle: refusals naming bob's record
    const ev = one(seen.everythingOther, 'policy.denied');
    assert.equal(ev.outcomeCode, 'outside-record');
    assert.equal(ev.patient, 'bob-self');
    assert.deepEqual(ev.entity, [{ type: 'Patient', id: 'bob-self' }]);
    const bd = one(seen.bundleRefused.rid, 'policy.denied');
    assert.equal(bd.outcomeCode, 'not-visible');
    assert.equal(bd.patient, 'bob-self');
    assert.deepEqual(bd.entity, [{ type: 'Observation', id: seen.bundleRefused.id }]);
    assert.deepEqual(byReq(seen.bundleRefused.rid).map((r) => r.type), ['policy.denied'], 'nothing of the Bundle ran');

    // the failed update: on record, with why and whose
    const pre = one(seen.precondition, 'fhir.update');
    assert.equal(pre.outcome, 4);
    assert.equal(pre.outcomeCode, 'precondition-failed');
    assert.equal(pre.patient, 'alice');
    assert.deepEqual(pre.entity, [{ type: 'Observation', id: seen.obs.id }]);

    // type- and system-level history by the backend service
    const ht = one(seen.histType, 'fhir.history');
    assert.deepEqual(ht.entity, [{ type: 'Observation' }]);
    assert.equal(ht.agent?.client, 'e2e-backend');
    assert.deepEqual(ht.authority?.reasons, ['scope:system']);
    const hs = one(seen.histSystem, 'fhir.history');
    assert.equal(hs.entity, undefined, 'system-level history names no type');

    // token issued and introspected: the token's id as its hash, and whose record it opens
    const issued = one(seen.alice.tokenRid, 'oauth.token-issued');
    assert.equal(issued.source?.token, tokenHash, 'the issued token, hashed');
    assert.equal(issued.patient, 'alice');
    assert.ok(issued.authority?.grant);
    const intro = one(seen.introspect, 'oauth.token-introspected');
    assert.equal(intro.agent?.client, 'ev-rs');
    assert.equal(intro.outcome, 0);
    assert.equal(intro.source?.token, tokenHash, 'the introspected token, hashed');
    assert.equal(intro.patient, 'alice');

    // sign-in, authorization and sign-out of one session carry its hash
    const signin = log.records.find((r) => r.type === 'session.signin' && r.agent?.username === 'alice');
    const granted = log.records.find((r) => r.type === 'oauth.authorize-granted' && r.agent?.username === 'alice');
    const signout = log.records.find((r) => r.type === 'session.signout' && r.agent?.username === 'alice');
    assert.match(signin.source?.session ?? '', /^sha256:[A-Za-z0-9_-]{43}$/);
    assert.equal(granted.source?.session, signin.source.session, 'the authorization names its session');
    assert.equal(signout.source?.session, signin.source.session);
    assert.equal(granted.patient, 'alice');

    // the compliance search: refused to alice, and carol's own search on record with its query
    const aeDenied = one(seen.aeDenied, 'policy.denied');
    assert.equal(aeDenied.outcomeCode, 'not-compliance');
    assert.equal(aeDenied.agent?.username, 'alice');
    const aeSearch = one(seen.aeSearch, 'fhir.search');
    assert.equal(aeSearch.agent?.username, 'carol');
    assert.equal(aeSearch.agent?.role, 'compliance');
    assert.equal(aeSearch.patient, 'alice');
    assert.match(aeSearch.entity?.[0]?.query ?? '', /^AuditEvent\?_count=5&agent=~[A-Za-z0-9_-]{22}&patient=alice$/,
      `the normalized query, the agent searched for hashed: ${JSON.stringify(aeSearch.entity)}`);

    // start and stop; nothing secret anywhere
    assert.equal(log.records[0].type, 'system.start');
    assert.equal(log.records.at(-1).type, 'system.stop');
    assert.ok(secrets.filter(Boolean).length >= 12);
    for (const v of secrets.filter(Boolean)) {
      const line = log.text.split('\n').find((l) => l.includes(v));
      assert.equal(line, undefined, `a secret (${v.slice(0, 10)}...) is in the audit log: ${line}`);
    }
    assert.ok(!log.text.includes('eyJ'), 'no JWT in the log');
    assert.ok(!log.text.includes(seen.alice.jti), 'token ids only hashed');
    const v = await runCli(['audit', 'verify', '--data', dir]);
    assert.equal(v.code, 0, v.stdout + v.stderr);
  });

});

/*
 * fn(dir, serve) on a fresh seeded data directory; serve(offsetSeconds)
 * starts a server on it (one port for all, so cookies carry over), with
 * the clock moved forward.  Every server started is stopped and the
 * directory removed, whatever happens.
 */
async function withRestarts(prefix, fn) {
  requireBinary();
  const dir = await makeTempDir(prefix);
  const port = await freePort();
  const servers = [];
  try {
    await initDataDir(dir);
    await seedDataDir(dir, { patients: 0 });
    await fn(dir, async (offset = 0) => {
      const s = await serveFixed({ dataDir: dir, port, env: offset ? { VERANDA_CLOCK_OFFSET: String(offset) } : {} });
      servers.push(s);
      return s;
    });
  } finally {
    for (const s of servers) await s.stop();
    await removeDir(dir);
  }
}

describe('a session that expires', () => {
  it('is recorded as session.expired when next presented, with the user and the session hash', async () => {
    await withRestarts('veranda-audit-expiry-', async (dir, serve) => {
      let s = await serve();
      const b = new Browser(s.baseUrl);
      assert.equal((await signIn(b, 'alice')).status, 303);
      await s.stop();
      // an hour later: past the idle timeout (15 minutes)
      s = await serve(3600);
      const r = await b.get('/account');
      assert.equal(r.status, 303, 'signed out');
      await s.stop();
      const { records } = await queryLog(dir);
      const signin = records.find((x) => x.type === 'session.signin');
      const expired = records.filter((x) => x.type === 'session.expired');
      assert.equal(expired.length, 1, JSON.stringify(expired));
      assert.equal(expired[0].outcomeCode, 'idle-timeout');
      assert.equal(expired[0].agent?.username, 'alice');
      assert.equal(expired[0].agent?.fhirUser, 'Patient/alice');
      assert.equal(expired[0].source?.session, signin.source.session);
    });
  });

  it('is recorded even if never presented again: the server ends lapsed sessions on record', async () => {
    await withRestarts('veranda-audit-sweep-', async (dir, serve) => {
      let s = await serve();
      const idle = new Browser(s.baseUrl), old = new Browser(s.baseUrl);
      assert.equal((await signIn(idle, 'alice')).status, 303);
      assert.equal((await signIn(old, 'carol')).status, 303);
      await s.stop();
      // an hour later alice's session is past the idle limit (15 minutes)...
      s = await serve(3600);
      const other = new Browser(s.baseUrl);
      assert.equal((await signIn(other, 'bob')).status, 303, 'someone else signs in: the server looks for lapsed sessions');
      await s.stop();
      let { records } = await queryLog(dir, '--type', 'session.expired');
      assert.deepEqual(records.map((x) => [x.agent?.username, x.outcomeCode]).sort(),
        [['alice', 'idle-timeout'], ['carol', 'idle-timeout']]);
      const signins = (await queryLog(dir, '--type', 'session.signin')).records;
      const alice = records.find((x) => x.agent?.username === 'alice');
      assert.equal(alice.source?.session, signins.find((x) => x.agent?.username === 'alice').source.session,
        'the same session hash its sign-in carries');
      assert.equal(alice.agent?.fhirUser, 'Patient/alice');
      // ... and thirteen hours later bob's is past the absolute limit (12 hours), used or not
      s = await serve(13 * 3600);
      assert.equal((await idle.get('/account')).status, 303, 'alice is signed out');
      assert.equal((await signIn(new Browser(s.baseUrl), 'erin')).status, 303);
      await s.stop();
      ({ records } = await queryLog(dir, '--type', 'session.expired'));
      assert.equal(records.length, 3, `one record per session, none again when presented: ${JSON.stringify(records)}`);
      const bob = records.find((x) => x.agent?.username === 'bob');
      assert.equal(bob?.outcomeCode, 'absolute-timeout');
    });
  });
});

describe('one record per request under load (security plan 71)', () => {
  it('300 mixed FHIR requests, 32 at a time: each request id has exactly one record, of its kind', async () => {
    requireBinary();
    const dir = await makeTempDir('veranda-audit-load-');
    let srv;
    try {
      await initDataDir(dir);
      await seedDataDir(dir, { patients: 2 });
      await registerClient(dir, { clientId: 'ld-app', public: true, redirectUris: [CB] });
      srv = await startServer({ dataDir: dir, init: false });
      const b = new Browser(srv.baseUrl);
      const a = await authorize(b, srv, { clientId: 'ld-app', redirectUri: CB, scope: 'launch/patient patient/*.cruds', user: 'alice' });
      const t = await redeem(srv, { code: a.code, verifier: a.verifier, redirectUri: CB, clientId: 'ld-app' });
      assert.equal(t.status, 200, t.text);
      const tok = t.json.access_token;
      const obs = (await fhir(srv, 'GET', 'Observation?_count=1', tok)).json.entry[0].resource;
      const newObs = (i) => ({ resourceType: 'Observation', status: 'final', code: { text: `load ${i}` },
        subject: { reference: 'Patient/alice' }, valueQuantity: { value: i, unit: 'mg' } });
      // each kind: the request, its expected status, and the record types that may stand for it
      const kinds = [
        [() => fhir(srv, 'GET', 'Patient/alice', tok), 200, ['fhir.read']],
        [() => fhir(srv, 'GET', 'Observation?patient=alice&_count=5', tok), 200, ['fhir.search']],
        [() => fhir(srv, 'GET', `Observation/${obs.id}/_history/${obs.meta.versionId}`, tok), 200, ['fhir.vread']],
        [() => fhir(srv, 'GET', 'Patient/alice/_history', tok), 200, ['fhir.history']],
        [() => fhir(srv, 'GET', 'Patient/bob-child', tok), 404, ['policy.denied']],
        [(i) => fhir(srv, 'POST', 'Observation', tok, { body: newObs(i) }), 201, ['fhir.create']],
        [(i) => fhir(srv, 'POST', 'Observation', tok, { body: { ...newObs(i), status: 'done' } }), 422, ['fhir.create']],
      ];
      const sent = [];
      let next = 0;
      const worker = async () => {
        for (let i = next++; i < 300; i = next++) {
          const [go, status, types] = kinds[i % kinds.length];
          const r = await go(i);
          assert.equal(r.status, status, `request ${i}: ${r.text.slice(0, 200)}`);
          assert.ok(r.rid, 'a request id');
          sent.push({ rid: r.rid, types, i });
        }
      };
      await Promise.all(Array.from({ length: 32 }, worker));
      assert.equal(sent.length, 300);
      const { records } = await queryLog(dir);
      const byRid = new Map();
      for (const r of records) {
        const rid = r.correlation?.request;
        if (rid) byRid.set(rid, [...(byRid.get(rid) || []), r]);
      }
      for (const s of sent) {
        const hits = byRid.get(s.rid) || [];
        assert.equal(hits.length, 1, `request ${s.i} (${s.rid}): ${hits.length} records ${JSON.stringify(hits.map((h) => h.type))}`);
        assert.ok(s.types.includes(hits[0].type), `request ${s.i}: ${hits[0].type}, expected ${s.types}`);
        assert.equal(hits[0].agent?.username, 'alice', `request ${s.i}: the agent`);
      }
      assert.equal(new Set(sent.map((s) => s.rid)).size, 300, 'request ids are unique');
    } finally {
      await srv?.stop();
      await removeDir(dir);
    }
  });
});
