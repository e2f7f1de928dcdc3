// Audit record fields no other suite pins, each with its exact value
// (docs/audit.md, "Events" and "Records"): $everything's entity, token hash
// and reasons; another patient's reference hashed in a search, one's own
// left readable; an inactive introspection; a backend service's token; a
// refresh's new token and grant; the /oauth/revoke outcome codes; a session
// ended by a disabled account; and `veranda user enable` in the cli stream.
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import os from 'node:os';
import * as jose from 'jose';
import {
  makeTempDir, removeDir, initDataDir, seedDataDir, startServer, runCli, requireBinary,
} from './lib/server.mjs';
import {
  Browser, authorize, redeem, postForm, registerClient, fetchJson, signIn, basic, keyPair, assertion, JWT_BEARER,
} from './lib/oauth.mjs';
import { fhirAs as fhir, hashId, queryLog } from './lib/audit.mjs';

const CB = 'http://127.0.0.1:9999/cb';
const RS_SECRET = 'af-rs-secret-0123456789-abcdefghij';

describe('audit record fields, exactly', () => {
  let dir, srv, tokenUrl;
  const rid = (r) => r.headers.get('x-request-id');

  /*
   * The records of request ids 'rids' (an object of names to ids), polled
   * for up to ~2 s: the records of answers that disclose nothing are
   * written just after the answer.  Resolves { one(name, type), all(name), log }.
   */
  async function recordsOf(rids) {
    let log;
    const byReq = (id) => log.records.filter((r) => r.correlation?.request === id);
    for (let i = 0; i < 40; i++) {
      if (i) await new Promise((res) => setTimeout(res, 50));
      log = await queryLog(dir);
      if (Object.values(rids).every((id) => byReq(id).length)) break;
    }
    return {
      log,
      all: (name) => byReq(rids[name]),
      one(name, type) {
        const hits = byReq(rids[name]).filter((r) => r.type === type);
        assert.equal(hits.length, 1, `one ${type} record for ${name} (${rids[name]}): ${JSON.stringify(byReq(rids[name]))}`);
        return hits[0];
      },
    };
  }

  /* A user's token for the public app af-app (a fresh browser): { token, jti, refresh, rid, json } */
  async function userToken(user, scope, opts = {}) {
    const b = new Browser(srv.baseUrl);
    const a = await authorize(b, srv, { clientId: 'af-app', redirectUri: CB, scope, user, ...opts });
    assert.ok(a.code, `a code for ${user}: ${a.walk.pages.join(' → ')}`);
    const t = await redeem(srv, { code: a.code, verifier: a.verifier, redirectUri: CB, clientId: 'af-app' });
    assert.equal(t.status, 200, t.text);
    return { token: t.json.access_token, jti: jose.decodeJwt(t.json.access_token).jti, refresh: t.json.refresh_token,
      rid: rid(t), json: t.json };
  }

  let backendKey;
  before(async () => {
    requireBinary();
    dir = await makeTempDir('veranda-audit-fields-');
    await initDataDir(dir);
    await seedDataDir(dir, { patients: 0 });
    backendKey = await keyPair('ES384');
    await registerClient(dir, { clientId: 'af-app', public: true, redirectUris: [CB] });
    await registerClient(dir, { clientId: 'af-rs', secret: RS_SECRET, redirectUris: [CB] });
    await registerClient(dir, { clientId: 'af-backend', jwks: { keys: [backendKey.publicJwk] }, scope: 'system/Observation.rs' });
    srv = await startServer({ dataDir: dir, init: false, auth: false });
    tokenUrl = `${srv.baseUrl}/oauth/token`;
  });

  after(async () => {
    await srv?.stop();
    await removeDir(dir);
  });

  it('$everything: fhir.everything names Patient/alice with its query, the token as its hash and the patient-compartment reason', async () => {
    const alice = await userToken('alice', 'launch/patient openid fhirUser patient/*.rs');
    const ev = await fhir(srv, 'GET', 'Patient/alice/$everything?_type=Observation,Condition', alice.token);
    assert.equal(ev.status, 200, ev.text.slice(0, 300));
    const all = await fhir(srv, 'GET', 'Patient/alice/$everything', alice.token);
    assert.equal(all.status, 200, all.text.slice(0, 300));
    const { one, all: allOf } = await recordsOf({ typed: ev.rid, plain: all.rid });
    for (const name of ['typed', 'plain']) {
      assert.deepEqual(allOf(name).map((r) => r.type), ['fhir.everything'], `${name}: one record, of $everything`);
      const r = one(name, 'fhir.everything');
      assert.deepEqual([r.action, r.outcome, r.outcomeCode, r.patient], ['E', 0, undefined, 'alice']);
      assert.deepEqual(r.agent, { username: 'alice', role: 'patient', fhirUser: 'Patient/alice', client: 'af-app' });
      assert.equal(r.source?.token, hashId(alice.jti), 'the token by its id, hashed');
      assert.deepEqual(r.authority?.reasons, ['scope:patient', 'patient-compartment']);
      assert.equal(r.authority?.scopes, alice.json.scope);
    }
    // The query is that of the search $everything ran (no type: it starts at '?'): the _type the
    // token's scopes allow, narrowed to the client's own _type and listed in the server's order.
    assert.deepEqual(one('typed', 'fhir.everything').entity, [{ type: 'Patient', id: 'alice', query: '?_type=Condition,Observation' }]);
    // Without _type: every type a patient's record can hold that patient/*.rs allows (the
    // compartment types of src/fhir/rest.c everything_types(), in the server's type order).
    const types = ['AllergyIntolerance', 'Appointment', 'AuditEvent', 'CarePlan', 'CareTeam', 'Communication', 'Condition',
      'Consent', 'Device', 'DiagnosticReport', 'DocumentReference', 'Encounter', 'Goal', 'Immunization', 'MedicationRequest',
      'Observation', 'Patient', 'Procedure', 'Provenance', 'QuestionnaireResponse', 'RelatedPerson', 'ServiceRequest', 'Task'];
    assert.deepEqual(one('plain', 'fhir.everything').entity, [{ type: 'Patient', id: 'alice', query: `?_type=${types.join(',')}` }]);
    // what it returned is what the record's query says it searched
    const returned = new Set(all.json.entry.map((e) => e.resource.resourceType));
    for (const t of returned) assert.ok(types.includes(t), `${t} returned, not in the recorded query`);
  });

  it('a search naming other patients hashes them; a patient\'s own reference stays readable', async () => {
    const dr = await userToken('drsmith', 'openid fhirUser user/*.rs');
    const alice = await userToken('alice', 'launch/patient patient/*.rs');
    const both = await fhir(srv, 'GET', 'Observation?patient=alice,bob-self', dr.token);
    assert.equal(both.status, 200, both.text.slice(0, 300));
    assert.ok(both.json.entry?.length > 0, 'it finds observations');
    const again = await fhir(srv, 'GET', 'Observation?patient=alice,bob-self&_count=3', dr.token);
    assert.equal(again.status, 200);
    const bob = await fhir(srv, 'GET', 'Observation?patient=bob-self', dr.token);
    assert.equal(bob.status, 200);
    const own = await fhir(srv, 'GET', 'Observation?patient=alice', alice.token);
    assert.equal(own.status, 200, own.text.slice(0, 300));
    const { one } = await recordsOf({ both: both.rid, again: again.rid, bob: bob.rid, own: own.rid });

    const b = one('both', 'fhir.search');
    assert.match(b.entity?.[0]?.query ?? '', /^Observation\?patient=~[A-Za-z0-9_-]{22}$/, JSON.stringify(b.entity));
    assert.deepEqual(b.entity, [{ type: 'Observation', query: b.entity[0].query }], 'one entity: the type and the query');
    assert.equal(b.patient, undefined, 'two patients: neither is the record\'s patient');
    assert.deepEqual([b.agent.username, b.agent.role], ['drsmith', 'clinician']);
    assert.deepEqual(b.authority?.reasons, ['scope:user']);
    const text = JSON.stringify(b);
    for (const name of ['alice', 'bob-self', 'bob']) assert.ok(!text.includes(name), `'${name}' in ${text}`);
    // equal values, equal hashes: an investigator sees the same search twice
    const a2 = one('again', 'fhir.search').entity[0].query;
    assert.equal(a2, `Observation?_count=3&${b.entity[0].query.slice('Observation?'.length)}`);
    // a search of one patient's record is about that patient: the reference is the record's own, readable
    const bb = one('bob', 'fhir.search');
    assert.deepEqual([bb.patient, bb.entity], ['bob-self', [{ type: 'Observation', query: 'Observation?patient=bob-self' }]]);
    // alice's own token, her own record
    const o = one('own', 'fhir.search');
    assert.deepEqual([o.patient, o.entity], ['alice', [{ type: 'Observation', query: 'Observation?patient=alice' }]]);
    assert.deepEqual(o.authority?.reasons, ['scope:patient', 'patient-compartment']);
  });

  it('a resource server introspecting a revoked or unknown token: oauth.token-introspected, inactive, no token hash', async () => {
    const alice = await userToken('alice', 'launch/patient patient/*.rs');
    const rv = await postForm(`${srv.baseUrl}/oauth/revoke`, { token: alice.token, client_id: 'af-app' });
    assert.equal(rv.status, 200, rv.text);
    const rs = basic('af-rs', RS_SECRET);
    const revoked = await postForm(`${srv.baseUrl}/oauth/introspect`, { token: alice.token }, { auth: rs });
    const garbage = await postForm(`${srv.baseUrl}/oauth/introspect`, { token: 'not-a-token-at-all' }, { auth: rs });
    for (const r of [revoked, garbage]) {
      assert.equal(r.status, 200, r.text);
      assert.deepEqual(r.json, { active: false });
    }
    // the contrast: a live token introspected carries its hash
    const live = await userToken('alice', 'launch/patient patient/*.rs');
    const active = await postForm(`${srv.baseUrl}/oauth/introspect`, { token: live.token }, { auth: rs });
    assert.equal(active.json?.active, true);
    const { one } = await recordsOf({ revoked: rid(revoked), garbage: rid(garbage), active: rid(active) });
    for (const name of ['revoked', 'garbage']) {
      const r = one(name, 'oauth.token-introspected');
      assert.deepEqual([r.action, r.outcome, r.outcomeCode], ['R', 0, 'inactive'], name);
      assert.deepEqual(r.agent, { client: 'af-rs' }, `${name}: the resource server is the agent, and no one else`);
      assert.equal(r.source?.token, undefined, `${name}: no token hash`);
      assert.equal(r.patient, undefined, `${name}: no patient`);
    }
    const a = one('active', 'oauth.token-introspected');
    assert.deepEqual([a.outcomeCode, a.source?.token, a.patient], [undefined, hashId(live.jti), 'alice']);
  });

  it('a backend service\'s client_credentials token: oauth.token-issued by the service (role system), its token by its id hashed', async () => {
    const t = await postForm(tokenUrl, { grant_type: 'client_credentials', scope: 'system/Observation.rs',
      client_assertion_type: JWT_BEARER, client_assertion: await assertion(tokenUrl, 'af-backend', backendKey) });
    assert.equal(t.status, 200, t.text);
    const jti = jose.decodeJwt(t.json.access_token).jti;
    const use = await fhir(srv, 'GET', 'Observation?_count=1', t.json.access_token);
    assert.equal(use.status, 200, use.text.slice(0, 300));
    const { one } = await recordsOf({ issued: rid(t), use: use.rid });
    const r = one('issued', 'oauth.token-issued');
    assert.deepEqual([r.action, r.outcome, r.outcomeCode], ['C', 0, undefined]);
    // a backend grant has no user, patient or code; the service is role system, as on its FHIR records
    assert.deepEqual(r.agent, { role: 'system', client: 'af-backend' }, 'a backend service, as its FHIR records name it');
    assert.equal(r.patient, undefined);
    assert.equal(r.source?.token, hashId(jti));
    assert.equal(r.authority?.scopes, 'system/Observation.rs');
    // the value the FHIR API's records of that token carry (docs/audit.md), there with role 'system'
    const u = one('use', 'fhir.search');
    assert.equal(u.source?.token, r.source.token);
    assert.deepEqual(u.agent, { role: 'system', client: 'af-backend' });
    assert.deepEqual(u.authority?.reasons, ['scope:system']);
  });

  it('a refresh: oauth.token-refreshed carries the new access token\'s hash and the grant the token was issued under', async () => {
    const alice = await userToken('alice', 'launch/patient openid fhirUser offline_access patient/*.rs');
    assert.ok(alice.refresh, 'a refresh token');
    const rf = await postForm(tokenUrl, { grant_type: 'refresh_token', refresh_token: alice.refresh, client_id: 'af-app' });
    assert.equal(rf.status, 200, rf.text);
    const newJti = jose.decodeJwt(rf.json.access_token).jti;
    assert.notEqual(newJti, alice.jti);
    const { one } = await recordsOf({ issued: alice.rid, refreshed: rid(rf) });
    const issued = one('issued', 'oauth.token-issued');
    const r = one('refreshed', 'oauth.token-refreshed');
    assert.match(issued.authority?.grant ?? '', /^[A-Za-z0-9_-]{22}$/, 'the issue names its grant');
    assert.deepEqual([r.action, r.outcome, r.outcomeCode], ['C', 0, undefined]);
    assert.equal(r.source?.token, hashId(newJti), 'the new access token, hashed');
    assert.notEqual(r.source.token, issued.source.token);
    assert.equal(r.authority?.grant, issued.authority.grant, 'the same grant');
    assert.equal(r.authority?.scopes, rf.json.scope);
    assert.deepEqual(r.agent, { username: 'alice', role: 'patient', fhirUser: 'Patient/alice', client: 'af-app' });
    assert.equal(r.patient, 'alice');
  });

  it('/oauth/revoke: an access token is access-token, a refresh token grant, an unknown token unknown-token (200)', async () => {
    const alice = await userToken('alice', 'launch/patient offline_access patient/*.rs');
    const revoke = (token) => postForm(`${srv.baseUrl}/oauth/revoke`, { token, client_id: 'af-app' });
    const at = await revoke(alice.token);
    const rt = await revoke(alice.refresh);
    const unknown = await revoke(crypto.randomBytes(32).toString('base64url'));
    for (const r of [at, rt, unknown]) {
      assert.equal(r.status, 200, r.text);
      assert.deepEqual(r.json, {});
    }
    const { one, log } = await recordsOf({ issued: alice.rid, at: rid(at), rt: rid(rt), unknown: rid(unknown) });
    const grant = one('issued', 'oauth.token-issued').authority.grant;
    const whose = { username: 'alice', role: 'patient', fhirUser: 'Patient/alice', client: 'af-app' };
    const a = one('at', 'oauth.token-revoked');
    assert.deepEqual([a.action, a.outcome, a.outcomeCode, a.patient, a.authority?.grant], ['D', 0, 'access-token', 'alice', grant]);
    assert.deepEqual(a.agent, whose);
    const g = one('rt', 'oauth.token-revoked');
    assert.deepEqual([g.action, g.outcome, g.outcomeCode, g.patient, g.authority?.grant], ['D', 0, 'grant', 'alice', grant]);
    assert.deepEqual(g.agent, whose);
    const u = one('unknown', 'oauth.token-revoked');
    assert.deepEqual([u.action, u.outcome, u.outcomeCode, u.patient, u.authority], ['D', 0, 'unknown-token', undefined, undefined]);
    assert.deepEqual(u.agent, { client: 'af-app' }, 'the app, and no one whose token it was');
    assert.ok(!log.text.includes(alice.refresh) && !log.text.includes(alice.token), 'no token in the log');
  });

  describe('an account disabled and enabled again with the CLI (erin)', () => {
    const b = {};
    let cookieName, cookie, accountRid, signinHash;

    before(async () => {
      b.browser = new Browser(srv.baseUrl);
      const si = await signIn(b.browser, 'erin');
      assert.equal(si.status, 303, 'erin signs in');
      assert.equal((await b.browser.get('/account')).status, 200, 'signed in');
      [[cookieName, cookie]] = [...b.browser.jar];
      const signin = (await recordsOf({ si: rid(si) })).one('si', 'session.signin');
      signinHash = signin.source.session;
      assert.equal(signinHash, hashId(cookie), `the sign-in names the ${cookieName} cookie's hash`);
      const d = await runCli(['user', 'disable', '--data', dir, '--username', 'erin']);
      assert.equal(d.code, 0, d.stderr);
      const acc = await b.browser.get('/account');
      assert.equal(acc.status, 303, 'signed out');
      assert.match(new URL(acc.location).pathname, /^\/signin/, acc.location);
      accountRid = rid(acc);
    });

    after(async () => {
      // whatever happened above, erin is enabled again
      await runCli(['user', 'enable', '--data', dir, '--username', 'erin']);
    });

    it('the session presented again after `user disable`: no session.expired of its own, the disable\'s admin.user record stands for it', async () => {
      // docs/auth.md: sessions a command-line disable ends are not recorded one by one
      const disable = (await queryLog(dir, '--node', 'cli', '--type', 'admin.user')).records.at(-1);
      assert.deepEqual([disable.action, disable.entity, disable.agent.role], ['U', [{ type: 'User', id: 'erin' }], 'operator']);
      const log = await queryLog(dir);
      assert.ok(log.records.filter((r) => r.correlation?.request === accountRid).every((r) => r.type !== 'session.expired'),
        'presenting the ended session records no session.expired');
      assert.deepEqual(log.records.filter((r) => r.type === 'session.expired' && r.agent?.username === 'erin'), [],
        'no session.expired for erin');
      assert.equal(signinHash, hashId(cookie), 'the sign-in named the session that ended');
    });

    it('`veranda user enable` is an admin.user U of User/erin in the cli stream, by the operator', async () => {
      const before = (await queryLog(dir, '--node', 'cli', '--type', 'admin.user')).records;
      const disabled = before.at(-1);
      assert.deepEqual([disabled.action, disabled.entity], ['U', [{ type: 'User', id: 'erin' }]], 'the disable, last so far');
      const en = await runCli(['user', 'enable', '--data', dir, '--username', 'erin']);
      assert.equal(en.code, 0, en.stderr);
      const after = (await queryLog(dir, '--node', 'cli', '--type', 'admin.user')).records;
      assert.equal(after.length, before.length + 1, 'one record for the enable');
      const r = after.at(-1);
      assert.deepEqual([r.node, r.type, r.action, r.outcome, r.outcomeCode, r.patient], ['cli', 'admin.user', 'U', 0, undefined, undefined]);
      assert.deepEqual(r.entity, [{ type: 'User', id: 'erin' }]);
      assert.deepEqual(r.agent, { user: `os:${os.userInfo().username}`, role: 'operator' });
      assert.ok(r.seq > disabled.seq);
      // and it did enable her
      assert.equal((await signIn(new Browser(srv.baseUrl), 'erin')).status, 303, 'erin signs in again');
    });
  });
});
