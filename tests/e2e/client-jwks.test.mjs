// private_key_jwt against hostile JWKS URLs and assertions: a key host
// that hangs, drips, floods, redirects, answers non-JSON or serves keys
// that must not verify, and assertions that bend the lifetime, algorithm,
// kid and jti rules (docs/auth.md "Client assertions").  Every refusal is
// a bounded, RFC 6749 invalid_client answer that names nothing internal.
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import fs from 'node:fs';
import http from 'node:http';
import * as jose from 'jose';
import { makeTempDir, removeDir, initDataDir, startServer, requireBinary } from './lib/server.mjs';
import { keyPair, assertion, registerClient, postForm, JWT_BEARER } from './lib/oauth.mjs';

let dir, srv, tokenUrl, host, other, hostBase;
const hits = {};            // path -> requests seen by the key host
const sockets = new Set();  // open sockets of both key hosts, destroyed at the end
const keys = {};
let rotating;               // the set /rotate.json serves now

/* ---- hand-made JWS (for keys and algorithms the jose package refuses) ---- */

const b64u = (o) => Buffer.from(typeof o === 'string' ? o : JSON.stringify(o)).toString('base64url');

function claimsFor(clientId, extra = {}) {
  const now = Math.floor(Date.now() / 1000);
  const c = { iss: clientId, sub: clientId, aud: tokenUrl, jti: crypto.randomUUID(), iat: now, exp: now + 120, ...extra };
  for (const [k, v] of Object.entries(c)) if (v === undefined) delete c[k];
  return c;
}

// header.payload signed with a node KeyObject (RSA PKCS#1 v1.5 or ECDSA, SHA-384) or an HMAC secret
function rawJws(header, payload, { key, hmac }) {
  const input = `${b64u(header)}.${b64u(payload)}`;
  let sig;
  if (hmac) sig = crypto.createHmac('sha384', hmac).update(input).digest();
  else if (key.asymmetricKeyType === 'ec') sig = crypto.sign('sha384', Buffer.from(input), { key, dsaEncoding: 'ieee-p1363' });
  else sig = crypto.sign('sha384', Buffer.from(input), key);
  return `${input}.${sig.toString('base64url')}`;
}

function nodeKey(type, opts, kid, extra = {}) {
  const { publicKey, privateKey } = crypto.generateKeyPairSync(type, opts);
  return { kid, privateKey, publicJwk: { ...publicKey.export({ format: 'jwk' }), kid, use: 'sig', ...extra } };
}

async function cc(clientId, jwt) {
  return postForm(tokenUrl, { grant_type: 'client_credentials', scope: 'system/*.rs', client_assertion_type: JWT_BEARER,
    client_assertion: jwt });
}

async function ccKey(clientId, key, opts) {
  return cc(clientId, await assertion(tokenUrl, clientId, key, opts));
}

// 401 invalid_client as RFC 6749 JSON whose description names no URL, address or library
function assertRefused(r, what) {
  assert.equal(r.status, 401, `${what}: ${r.text}`);
  assert.match(r.headers.get('content-type') || '', /^application\/json/, what);
  assert.equal(r.json?.error, 'invalid_client', `${what}: ${r.text}`);
  assert.equal(typeof r.json.error_description, 'string', what);
  const d = r.json.error_description;
  assert.ok(!d.includes('127.0.0.1') && !d.includes(String(host.address().port)) && !/curl|\.json|http:\/\//i.test(d),
    `${what}: the description names internals: ${d}`);
}

/* ---- the key hosts ---- */

function keyHost(handler) {
  const s = http.createServer(handler);
  s.on('connection', (sock) => {
    sockets.add(sock);
    sock.on('close', () => sockets.delete(sock));
  });
  return s;
}

function json(res, body, cache = 'max-age=60') {
  res.writeHead(200, { 'content-type': 'application/json', 'cache-control': cache });
  res.end(JSON.stringify(body));
}

before(async () => {
  requireBinary();
  dir = await makeTempDir('veranda-cjwks-');
  await initDataDir(dir);
  keys.good = await keyPair('ES384');
  keys.redir = await keyPair('ES384');
  keys.many = await keyPair('ES384');
  keys.rotA = await keyPair('ES384');
  keys.rotB = await keyPair('ES384');
  keys.hang = await keyPair('ES384');
  keys.rs = await keyPair('RS384');
  keys.es = await keyPair('ES384');
  keys.rsa1024 = nodeKey('rsa', { modulusLength: 1024 }, 'small');
  keys.p256 = nodeKey('ec', { namedCurve: 'P-256' }, 'p256');
  keys.enc = await keyPair('ES384');
  keys.enc.publicJwk = { ...keys.enc.publicJwk, use: 'enc' };
  rotating = [keys.rotA.publicJwk];

  other = keyHost((req, res) => json(res, { keys: [keys.redir.publicJwk] }));
  await new Promise((r) => other.listen(0, '127.0.0.1', r));
  host = keyHost((req, res) => {
    hits[req.url] = (hits[req.url] || 0) + 1;
    switch (req.url) {
      case '/good.json': return json(res, { keys: [keys.good.publicJwk] });
      case '/hang.json': return undefined; // never answers
      case '/drip.json': {
        res.writeHead(200, { 'content-type': 'application/json' });
        const t = setInterval(() => res.write(' '), 1000);
        res.on('close', () => clearInterval(t));
        return res.write('{');
      }
      case '/huge.json': { // 100 MB, written as fast as the reader takes it
        res.writeHead(200, { 'content-type': 'application/json' }); // chunked: no length to refuse up front
        const chunk = Buffer.alloc(64 << 10, 0x20);
        let left = 100 << 20;
        const pump = () => {
          while (left > 0 && !res.destroyed) {
            left -= chunk.length;
            if (!res.write(chunk)) return res.once('drain', pump);
          }
          return res.end();
        };
        return pump();
      }
      case '/redirect.json':
        res.writeHead(302, { location: `http://127.0.0.1:${other.address().port}/keys.json` });
        return res.end();
      case '/loop.json':
        res.writeHead(301, { location: '/loop.json' });
        return res.end();
      case '/html.json':
        res.writeHead(200, { 'content-type': 'text/html' });
        return res.end('<html><body>keys moved</body></html>');
      case '/many.json': {
        const filler = Array.from({ length: 64 }, (_, i) => ({ ...keys.many.publicJwk, kid: `filler-${i}` }));
        return json(res, { keys: [...filler, keys.many.publicJwk] });
      }
      case '/rsa1024.json': return json(res, { keys: [keys.rsa1024.publicJwk] });
      case '/p256.json': return json(res, { keys: [keys.p256.publicJwk] });
      case '/enc.json': return json(res, { keys: [keys.enc.publicJwk] });
      case '/rotate.json': return json(res, { keys: rotating });
      default:
        res.writeHead(404);
        return res.end();
    }
  });
  await new Promise((r) => host.listen(0, '127.0.0.1', r));
  hostBase = `http://127.0.0.1:${host.address().port}`;
  for (const name of ['good', 'hang', 'drip', 'huge', 'redirect', 'loop', 'html', 'many', 'rsa1024', 'p256', 'enc', 'rotate']) {
    await registerClient(dir, { clientId: `u-${name}`, jwksUrl: `${hostBase}/${name}.json`, scope: 'system/*.rs' });
  }
  await registerClient(dir, { clientId: 'v-two', jwks: { keys: [keys.rs.publicJwk, keys.es.publicJwk] }, scope: 'system/*.rs' });
  srv = await startServer({ dataDir: dir, init: false, auth: false, args: ['--workers', '2'] });
  tokenUrl = `${srv.baseUrl}/oauth/token`;
});

after(async () => {
  if (srv) await srv.stop();
  for (const s of sockets) s.destroy();
  await Promise.all([host, other].filter(Boolean).map((s) => new Promise((r) => s.close(r))));
  await removeDir(dir);
});

/* ================================================================ */

describe('a JWKS URL that misbehaves', () => {
  it('the well-behaved URL works (the baseline the refusals below are measured against)', async () => {
    const r = await ccKey('u-good', keys.good);
    assert.equal(r.status, 200, r.text);
  });

  it('a host that never answers: refused within the 5 s fetch limit, then not asked again on every request', async () => {
    let t = Date.now();
    assertRefused(await ccKey('u-hang', keys.hang), 'hang');
    assert.ok(Date.now() - t < 7000, `the first refusal took ${Date.now() - t} ms`);
    assert.equal(hits['/hang.json'], 1);
    t = Date.now();
    for (let i = 0; i < 3; i++) assertRefused(await ccKey('u-hang', keys.hang), `hang again ${i}`);
    assert.ok(Date.now() - t < 3000, `three more requests took ${Date.now() - t} ms: each waited for the host again`);
    assert.equal(hits['/hang.json'], 1, 'a failed fetch is not repeated at once');
  });

  it('concurrent requests naming a hanging host fetch it once and leave the workers free', async () => {
    // two workers: if each request fetched, both would sit in the fetch for 5 s (a wait
    // of at most 1 s is the fix; the margin is for a loaded machine and the sanitizer build)
    const drip0 = hits['/drip.json'] || 0;
    const tries = Array.from({ length: 4 }, async () => ccKey('u-drip', keys.hang));
    await new Promise((r) => setTimeout(r, 300));
    const t = Date.now();
    const health = await fetch(`${srv.baseUrl}/healthz`);
    await health.arrayBuffer();
    const waited = Date.now() - t;
    for (const r of await Promise.all(tries)) assertRefused(r, 'drip');
    assert.equal(health.status, 200);
    assert.ok(waited < 3500, `/healthz waited ${waited} ms behind requests fetching a slow key host`);
    assert.equal(hits['/drip.json'] - drip0, 1, 'one fetch for concurrent requests');
  });

  it('a 100 MB body, a redirect (to another port, or in a loop) and non-JSON are refused quickly', async () => {
    const mem0 = Number(fs.readFileSync(`/proc/${srv.pid}/status`, 'utf8').match(/VmRSS:\s+(\d+)/)[1]);
    for (const [name, key] of [['huge', keys.good], ['redirect', keys.redir], ['loop', keys.good], ['html', keys.good]]) {
      const t = Date.now();
      assertRefused(await ccKey(`u-${name}`, key), name);
      assert.ok(Date.now() - t < 6000, `${name}: ${Date.now() - t} ms`);
    }
    assert.equal(hits['/loop.json'], 1, 'a redirect is not followed');
    const mem1 = Number(fs.readFileSync(`/proc/${srv.pid}/status`, 'utf8').match(/VmRSS:\s+(\d+)/)[1]);
    assert.ok(mem1 - mem0 < 32 * 1024, `the server grew by ${mem1 - mem0} KiB`);
  });

  it('keys that must not verify: too many, RSA 1024, P-256 for ES384, use "enc"', async () => {
    assertRefused(await ccKey('u-many', keys.many), 'more than 64 keys');
    const small = rawJws({ alg: 'RS384', kid: 'small', typ: 'JWT' }, claimsFor('u-rsa1024'), { key: keys.rsa1024.privateKey });
    assertRefused(await cc('u-rsa1024', small), 'RSA 1024');
    const p256 = rawJws({ alg: 'ES384', kid: 'p256', typ: 'JWT' }, claimsFor('u-p256'), { key: keys.p256.privateKey });
    assertRefused(await cc('u-p256', p256), 'P-256 key for ES384');
    assertRefused(await ccKey('u-enc', keys.enc), 'a key with use "enc"');
  });

  it('rotation: an unknown kid refetches at most once per 30 s, however often it is sent', async () => {
    assert.equal((await ccKey('u-rotate', keys.rotA)).status, 200);
    assert.equal(hits['/rotate.json'], 1);
    rotating = [keys.rotB.publicJwk];
    for (let i = 0; i < 5; i++) assertRefused(await ccKey('u-rotate', keys.rotA, { header: { kid: `nope-${i}` } }), 'unknown kid');
    assert.ok(hits['/rotate.json'] <= 2, `fetched ${hits['/rotate.json']} times`);
    // the old key, still cached, keeps working until the cache is refreshed
    assert.equal((await ccKey('u-rotate', keys.rotA)).status, 200);
  });
});

describe('assertions that bend the rules', () => {
  it('a lifetime over 5 minutes (exp - iat) is refused, also when exp itself is near', async () => {
    const now = Math.floor(Date.now() / 1000);
    for (const [what, claims] of [['exp 5.5 min after iat', { iat: now, exp: now + 330 }],
      ['made 10 min ago, 2 min left', { iat: now - 600, exp: now + 120 }]]) {
      assertRefused(await ccKey('v-two', keys.es, { claims }), what);
    }
    assert.equal((await ccKey('v-two', keys.es, { claims: { iat: now, exp: now + 300 } })).status, 200, 'exactly 5 min');
  });

  it('nbf in the future, HS384 keyed with the public key, and no kid with several keys are refused', async () => {
    const now = Math.floor(Date.now() / 1000);
    assertRefused(await ccKey('v-two', keys.es, { claims: { nbf: now + 180 } }), 'nbf');
    const pem = crypto.createPublicKey({ key: keys.rs.publicJwk, format: 'jwk' }).export({ type: 'spki', format: 'pem' });
    for (const secret of [pem, JSON.stringify(keys.rs.publicJwk), keys.rs.publicJwk.n]) {
      const hs = rawJws({ alg: 'HS384', kid: keys.rs.kid, typ: 'JWT' }, claimsFor('v-two'), { hmac: secret });
      assertRefused(await cc('v-two', hs), 'HS384');
    }
    const noKid = rawJws({ alg: 'ES384', typ: 'JWT' }, claimsFor('v-two'),
      { key: crypto.createPrivateKey({ key: await jose.exportJWK(keys.es.privateKey), format: 'jwk' }) });
    assertRefused(await cc('v-two', noKid), 'no kid');
  });

  it('jti: at most 255 bytes; a replay inside the clock-skew window after exp is still refused', async () => {
    assertRefused(await ccKey('v-two', keys.es, { claims: { jti: 'j'.repeat(256) } }), '256-byte jti');
    assert.equal((await ccKey('v-two', keys.es, { claims: { jti: `${'j'.repeat(219)}${crypto.randomUUID()}` } })).status, 200, '255 bytes');
    const now = Math.floor(Date.now() / 1000);
    const jwt = await assertion(tokenUrl, 'v-two', keys.es, { claims: { iat: now - 60, exp: now - 20 } });
    assert.equal((await cc('v-two', jwt)).status, 200, 'expired 20 s ago: inside the 60 s skew');
    assertRefused(await cc('v-two', jwt), 'the same assertion again');
  });
});
