// Guessing at the token endpoint (security test plan case 98): failed
// token, introspection and revocation requests are counted per client
// address, and the failures of an app with a secret per app; at the limit
// (--token-fail-limit, here 5 a minute; ten times as many for an app)
// further requests get 429 with Retry-After until the minute ends — a
// right secret and a good code included, so the answer tells a guesser
// nothing — while other addresses and apps go on.  One address alone
// cannot lock an app out.  A public client's id is not counted (anyone may send
// it).  The request that reaches a limit leaves one policy.denied record.
// The server trusts X-Forwarded-For here so that each test speaks from
// addresses of its own.
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { makeTempDir, removeDir, initDataDir, seedDataDir, startServer, runCli, requireBinary } from './lib/server.mjs';
import { Browser, signIn, authorize, postForm, registerClient, basic } from './lib/oauth.mjs';

const CB = 'http://127.0.0.1:9999/cb';
const SECRET = 'confidential-app-secret-0123456789';
const LIMIT = 5;
let dir, srv;

before(async () => {
  requireBinary();
  dir = await makeTempDir('veranda-token-limits-');
  await initDataDir(dir);
  await seedDataDir(dir, { patients: 0 });
  await registerClient(dir, { clientId: 'pub-app', public: true, redirectUris: [CB] });
  await registerClient(dir, { clientId: 'conf-app', secret: SECRET, redirectUris: [CB] });
  await registerClient(dir, { clientId: 'conf-two', secret: SECRET, redirectUris: [CB] });
  srv = await startServer({ dataDir: dir, init: false, args: ['--trust-proxy', 'true', '--token-fail-limit', String(LIMIT)] });
});

after(async () => {
  if (srv) await srv.stop();
  await removeDir(dir);
});

const from = (addr) => ({ 'x-forwarded-for': addr });
const token = (params, addr, auth) => postForm(`${srv.baseUrl}/oauth/token`, params, { auth, headers: from(addr) });
const badCode = (addr, clientId = 'pub-app') => token({ grant_type: 'authorization_code', code: 'not-a-code', redirect_uri: CB,
  code_verifier: 'v'.repeat(43), client_id: clientId }, addr);

function assert429(r, what) {
  assert.equal(r.status, 429, `${what}: ${r.status} ${r.text}`);
  assert.equal(r.json.error, 'temporarily_unavailable', what);
  const after = Number(r.headers.get('retry-after'));
  assert.ok(after >= 1 && after <= 60, `${what}: Retry-After ${r.headers.get('retry-after')}`);
  assert.equal(r.headers.get('cache-control'), 'no-store');
}

// The policy.denied records with 'code'.  They are queued, not waited for, and reach
// audit.db a few milliseconds after the answer (up to 20 ms more while the writer is
// busy): wait until there is one.
async function policyDenials(code) {
  let recs = [];
  for (let i = 0; i < 40 && !recs.length; i++) {
    if (i) await new Promise((res) => setTimeout(res, 50));
    const r = await runCli(['audit', 'query', '--data', dir, '--node', 'node-1', '--format', 'ndjson', '--type', 'policy.denied']);
    assert.equal(r.code, 0, r.stderr);
    recs = r.stdout.split('\n').filter(Boolean).map((l) => JSON.parse(l)).filter((e) => e.outcomeCode === code);
  }
  return recs;
}

/* A fresh code for the public app (alice signs in and allows). */
async function freshCode() {
  const b = new Browser(srv.baseUrl);
  assert.equal((await signIn(b, 'alice')).status, 303);
  return authorize(b, srv, { clientId: 'pub-app', redirectUri: CB, scope: 'openid patient/*.rs' });
}

describe('failed token requests per address', () => {
  it(`${LIMIT} wrong codes from one address: then 429 with Retry-After, even for a good code, which stays good`, async () => {
    const addr = '198.51.100.7';
    for (let i = 0; i < LIMIT; i++) {
      const r = await badCode(addr);
      assert.equal(r.status, 400, r.text);
      assert.equal(r.json.error, 'invalid_grant');
    }
    const good = await freshCode();
    assert.ok(good.code, 'a code');
    const refusedGood = await token({ grant_type: 'authorization_code', code: good.code, redirect_uri: CB,
      code_verifier: good.verifier, client_id: 'pub-app' }, addr);
    assert429(refusedGood, 'a good code from the refused address');
    // introspection and revocation from there are refused as well
    assert429(await postForm(`${srv.baseUrl}/oauth/introspect`, { token: 'x' }, { auth: basic('conf-app', SECRET), headers: from(addr) }), 'introspect');
    assert429(await postForm(`${srv.baseUrl}/oauth/revoke`, { token: 'x', client_id: 'pub-app' }, { headers: from(addr) }), 'revoke');
    // another address is not: the same good code (not spent by the refusals) is exchanged there
    const ok = await token({ grant_type: 'authorization_code', code: good.code, redirect_uri: CB,
      code_verifier: good.verifier, client_id: 'pub-app' }, '198.51.100.8');
    assert.equal(ok.status, 200, ok.text);
    assert.ok(ok.json.access_token);
    // one record for the limit reached, naming no client
    const recs = (await policyDenials('address-throttled')).filter((e) => e.source?.addr === addr);
    assert.equal(recs.length, 1, JSON.stringify(await policyDenials('address-throttled')));
    assert.equal(recs[0].outcome, 4);
  });
});

describe('wrong secrets per confidential client', () => {
  it('one address cannot lock an app out: it is refused itself, the app works elsewhere', async () => {
    for (let i = 0; i < LIMIT; i++) {
      const r = await token({ grant_type: 'client_credentials' }, '203.0.113.200', basic('conf-two', `wrong-${i}`));
      assert.equal(r.status, 401, r.text);
    }
    // refused now at that address, wrong secrets and right ones alike, without being counted
    for (let i = 0; i < LIMIT * 12; i++) {
      assert429(await postForm(`${srv.baseUrl}/oauth/introspect`, { token: 'x' },
        { auth: basic('conf-two', i % 2 ? SECRET : `wrong-again-${i}`), headers: from('203.0.113.200') }), 'refused address');
    }
    const elsewhere = await postForm(`${srv.baseUrl}/oauth/introspect`, { token: 'x' }, { auth: basic('conf-two', SECRET), headers: from('203.0.113.201') });
    assert.equal(elsewhere.status, 200, elsewhere.text);
    assert.deepEqual(elsewhere.json, { active: false });
  });

  it(`${LIMIT * 10} wrong secrets from several addresses: the app is refused everywhere, its right secret included; a public app is not`, async () => {
    // four from each address: no address reaches its own limit
    for (let i = 0; i < LIMIT * 10; i++) {
      const r = await token({ grant_type: 'client_credentials' }, `203.0.113.${10 + Math.floor(i / (LIMIT - 1))}`, basic('conf-app', `wrong-${i}`));
      assert.equal(r.status, 401, `${i}: ${r.text}`);
      assert.equal(r.json.error, 'invalid_client');
    }
    // a new address, the right secret: 429, as a wrong one gets
    const right = await postForm(`${srv.baseUrl}/oauth/introspect`, { token: 'x' }, { auth: basic('conf-app', SECRET), headers: from('203.0.113.99') });
    assert429(right, 'right secret of a refused client');
    const wrong = await postForm(`${srv.baseUrl}/oauth/introspect`, { token: 'x' }, { auth: basic('conf-app', 'wrong-again'), headers: from('203.0.113.98') });
    assert429(wrong, 'wrong secret of a refused client');
    assert.deepEqual(wrong.json, right.json);
    // the public client from a fresh address still gets real answers
    const pub = await badCode('203.0.113.97');
    assert.equal(pub.status, 400, pub.text);
    const recs = await policyDenials('client-throttled');
    assert.equal(recs.length, 1);
    assert.equal(recs[0].agent?.client, 'conf-app');
  });

  it('an IPv6 host is one address however many of its /64 it uses', async () => {
    for (let i = 0; i < LIMIT; i++) {
      const r = await badCode(`2001:db8:1:2::${(i + 1).toString(16)}`);
      assert.equal(r.status, 400, r.text);
    }
    assert429(await badCode('2001:db8:1:2:ffff::1'), 'another address of the same /64');
    assert.equal((await badCode('2001:db8:1:3::1')).status, 400, 'the next /64 is not refused');
  });

  it('secrets sent with a public client id count against the address only, never lock the public client', async () => {
    for (let i = 0; i < LIMIT * 3; i++) {
      const r = await token({ grant_type: 'authorization_code', code: 'c', redirect_uri: CB, code_verifier: 'v'.repeat(43),
        client_id: 'pub-app', client_secret: `guess-${i}` }, `192.0.2.${100 + i}`);
      assert.equal(r.status, 401, r.text);
    }
    const good = await freshCode();
    const ok = await token({ grant_type: 'authorization_code', code: good.code, redirect_uri: CB,
      code_verifier: good.verifier, client_id: 'pub-app' }, '192.0.2.250');
    assert.equal(ok.status, 200, ok.text);
  });
});
