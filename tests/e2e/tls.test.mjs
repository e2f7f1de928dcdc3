// Built-in TLS (serve --tls-cert/--tls-key): TLS 1.2 and 1.3 are served,
// TLS 1.0 and 1.1 refused (SMART checklist 106); over https the cookies
// are Secure with the __Host- prefix and responses carry HSTS.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import https from 'node:https';
import path from 'node:path';
import tls from 'node:tls';
import { setTimeout as sleep } from 'node:timers/promises';
import { BIN, childEnv, freePort, initDataDir, makeTempDir, removeDir, seedDataDir } from './lib/server.mjs';

let dir, child, port, cert;

function get(p, headers = {}) {
  return new Promise((resolve, reject) => {
    const req = https.get({ host: '127.0.0.1', port, path: p, ca: cert, servername: 'localhost', headers }, (res) => {
      let body = '';
      res.on('data', (d) => (body += d));
      res.on('end', () => resolve({ status: res.statusCode, headers: res.headers, body }));
    });
    req.on('error', reject);
  });
}

function post(p, form, headers = {}) {
  const body = new URLSearchParams(form).toString();
  return new Promise((resolve, reject) => {
    const req = https.request({ host: '127.0.0.1', port, path: p, method: 'POST', ca: cert, servername: 'localhost',
      headers: { 'content-type': 'application/x-www-form-urlencoded', 'content-length': Buffer.byteLength(body), ...headers } }, (res) => {
      let b = '';
      res.on('data', (d) => (b += d));
      res.on('end', () => resolve({ status: res.statusCode, headers: res.headers, body: b }));
    });
    req.on('error', reject);
    req.end(body);
  });
}

function handshake(version) {
  return new Promise((resolve) => {
    const s = tls.connect({ host: '127.0.0.1', port, ca: cert, servername: 'localhost',
      minVersion: version, maxVersion: version }, () => {
      const v = s.getProtocol();
      s.end();
      resolve({ ok: true, version: v });
    });
    s.on('error', (e) => resolve({ ok: false, error: e.code || e.message }));
  });
}

describe('built-in TLS', () => {
  before(async () => {
    dir = await makeTempDir();
    const data = path.join(dir, 'data');
    await initDataDir(data);
    await seedDataDir(data, { patients: 0 });
    const key = path.join(dir, 'key.pem'), crt = path.join(dir, 'cert.pem');
    const r = spawnSync('openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256',
      '-nodes', '-keyout', key, '-out', crt, '-days', '2', '-subj', '/CN=localhost',
      '-addext', 'subjectAltName=DNS:localhost,IP:127.0.0.1'], { encoding: 'utf8' });
    assert.equal(r.status, 0, r.stderr);
    cert = (await import('node:fs')).readFileSync(crt);
    port = await freePort();
    child = spawn(BIN, ['serve', '--data', data, '--listen', `127.0.0.1:${port}`, '--tls-cert', crt,
      '--tls-key', key, '--base-url', `https://localhost:${port}`], { env: childEnv(), stdio: ['ignore', 'ignore', 'pipe'] });
    for (let i = 0; i < 100; i++) {
      try {
        if ((await get('/healthz')).status === 200) return;
      } catch { /* not yet */ }
      await sleep(50);
    }
    throw new Error('the TLS server did not start');
  });

  after(async () => {
    if (child) {
      child.kill('SIGTERM');
      await new Promise((r) => child.on('close', r));
    }
    await removeDir(dir);
  });

  it('serves TLS 1.3 and TLS 1.2', async () => {
    const t13 = await handshake('TLSv1.3');
    assert.ok(t13.ok, `TLS 1.3: ${t13.error}`);
    assert.equal(t13.version, 'TLSv1.3');
    const t12 = await handshake('TLSv1.2');
    assert.ok(t12.ok, `TLS 1.2: ${t12.error}`);
    assert.equal(t12.version, 'TLSv1.2');
  });

  it('refuses TLS 1.1 and TLS 1.0 (with a client proven able to speak them)', async () => {
    // openssl s_client at security level 0 can still offer TLS 1.0/1.1: prove it against an
    // openssl s_server that allows them, then offer them to Veranda
    const crt = path.join(dir, 'cert.pem'), key = path.join(dir, 'key.pem');
    const cport = await freePort();
    const ctl = spawn('openssl', ['s_server', '-accept', `127.0.0.1:${cport}`, '-cert', crt, '-key', key,
      '-tls1_1', '-cipher', 'DEFAULT@SECLEVEL=0', '-quiet'], { stdio: ['pipe', 'ignore', 'ignore'] });
    await sleep(400);
    const client = (p, flag) => spawnSync('openssl', ['s_client', '-connect', `127.0.0.1:${p}`, flag,
      '-cipher', 'DEFAULT@SECLEVEL=0'], { input: '', encoding: 'utf8', timeout: 10000 });
    const control = client(cport, '-tls1_1');
    ctl.kill();
    // a completed handshake prints the negotiated cipher; a refused one "Cipher is (NONE)"
    assert.match(control.stdout, /Cipher is (?!\(NONE\))\S+/, 'the test client cannot speak TLS 1.1 here');
    assert.match(control.stdout, /Protocol\s*:\s*TLSv1\.1/);
    for (const flag of ['-tls1_1', '-tls1']) {
      const r = client(port, flag);
      assert.match(r.stdout, /Cipher is \(NONE\)/, `${flag} was accepted:\n${r.stdout}`);
    }
    // and the same client completes TLS 1.2 with Veranda
    const ok = client(port, '-tls1_2');
    assert.match(ok.stdout, /Cipher is (?!\(NONE\))\S+/);
  });

  it('discovery over https names the https issuer; responses carry HSTS', async () => {
    const r = await get('/.well-known/openid-configuration');
    assert.equal(r.status, 200);
    assert.equal(JSON.parse(r.body).issuer, `https://localhost:${port}`);
    assert.match(r.headers['strict-transport-security'] || '', /max-age=\d+/);
  });

  it('the sign-in page sets a Secure, HttpOnly, SameSite=Lax __Host- cookie', async () => {
    const r = await get('/signin');
    assert.equal(r.status, 200);
    const c = (r.headers['set-cookie'] || []).find((x) => x.startsWith('__Host-veranda-csrf='));
    assert.ok(c, `cookies: ${r.headers['set-cookie']}`);
    assert.match(c, /; Secure/);
    assert.match(c, /; HttpOnly/);
    assert.match(c, /SameSite=Lax/);
    assert.match(c, /Path=\//);
    assert.doesNotMatch(c, /Domain=/);
  });

  it('signing in sets a __Host- session cookie: Secure, HttpOnly, SameSite=Lax, Path=/, no Domain (security plan 32)', async () => {
    const page = await get('/signin');
    const csrfCookie = (page.headers['set-cookie'] || []).find((x) => x.startsWith('__Host-veranda-csrf=')).split(';')[0];
    const field = (page.body.match(/name="csrf" value="([^"]+)"/) || [])[1];
    assert.ok(field, 'the sign-in form carries its CSRF field');
    const r = await post('/oauth/login', { csrf: field, username: 'alice', password: 'veranda-demo' }, { cookie: csrfCookie });
    assert.equal(r.status, 303, r.body.slice(0, 200));
    const sid = (r.headers['set-cookie'] || []).find((x) => /^__Host-veranda=/.test(x));
    assert.ok(sid, `cookies: ${r.headers['set-cookie']}`);
    for (const attr of [/; Secure/, /; HttpOnly/, /SameSite=Lax/, /; Path=\/(;|$)/]) assert.match(sid, attr);
    assert.doesNotMatch(sid, /Domain=/i);
    assert.ok(sid.length < 4096);
    assert.match(sid.split(';')[0], /^__Host-veranda=[A-Za-z0-9_-]{43}$/, 'a 256-bit random id, base64url');
    const acc = await get('/account', { cookie: sid.split(';')[0] });
    assert.equal(acc.status, 200, 'the cookie signs the browser in');
    const hsts = acc.headers['strict-transport-security'] || '';
    assert.ok(Number((hsts.match(/max-age=(\d+)/) || [])[1]) >= 31536000, `HSTS of a year at least: ${hsts}`);
    assert.match(hsts, /includeSubDomains/);
  });

  it('the FHIR API over https still needs a token', async () => {
    const r = await get('/fhir/Patient/alice');
    assert.equal(r.status, 401);
    assert.match(r.headers['www-authenticate'] || '', /^Bearer/);
  });
});
