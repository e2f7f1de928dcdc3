// Test harness: runs the real build/veranda binary in temporary data
// directories, starts `veranda serve` on a free loopback port, captures its
// JSON log lines and stops it with SIGTERM.
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import fsp from 'node:fs/promises';
import http from 'node:http';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { setTimeout as sleep } from 'node:timers/promises';
import * as jose from 'jose';

export const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..', '..');
// VERANDA_BIN runs the suite against another build (e.g. a sanitizer build).
export const BIN = process.env.VERANDA_BIN ? path.resolve(process.env.VERANDA_BIN) : path.join(ROOT, 'build', 'veranda');
export const TESTDATA = path.resolve(ROOT, '..', 'shared', 'testdata');

const live = new Set();
process.on('exit', () => {
  for (const child of live) {
    try {
      child.kill('SIGKILL');
    } catch {
      /* already gone */
    }
  }
});

export function requireBinary() {
  if (!fs.existsSync(BIN)) throw new Error(`${BIN} not found: run 'make' first`);
}

// The environment for a child: ours without any VERANDA_* variable, plus 'extra'.
export function childEnv(extra = {}) {
  const env = {};
  for (const [k, v] of Object.entries(process.env)) if (!k.startsWith('VERANDA_')) env[k] = v;
  return { ...env, ...extra };
}

/*
 * Throw when a server's stderr holds a sanitizer report (make e2e-san): a
 * leak is reported only as the process exits, where nothing else looks.
 */
export function throwOnSanitizerReport(text) {
  const report = text.match(/(==\d+==ERROR: \w+Sanitizer|runtime error:)[\s\S]{0,3000}/);
  if (report) throw new Error(`veranda serve reported a sanitizer error:\n${report[0]}`);
}

export async function makeTempDir(prefix = 'veranda-e2e-') {
  return fsp.mkdtemp(path.join(os.tmpdir(), prefix));
}

export async function removeDir(dir) {
  if (dir) await fsp.rm(dir, { recursive: true, force: true });
}

/*
 * Run the binary to completion.  Resolves { code, signal, stdout, stderr }.
 * A run that outlives 'timeout' ms is killed and reported with code null
 * and timedOut true.
 */
export function runCli(args, { env = {}, timeout = 60000, input, cwd = ROOT } = {}) {
  requireBinary();
  return new Promise((resolve, reject) => {
    const child = spawn(BIN, args, { env: childEnv(env), cwd, stdio: ['pipe', 'pipe', 'pipe'] });
    live.add(child);
    let stdout = '';
    let stderr = '';
    let timedOut = false;
    child.stdout.setEncoding('utf8');
    child.stderr.setEncoding('utf8');
    child.stdout.on('data', (d) => (stdout += d));
    child.stderr.on('data', (d) => (stderr += d));
    const timer = setTimeout(() => {
      timedOut = true;
      child.kill('SIGKILL');
    }, timeout);
    child.on('error', (e) => {
      clearTimeout(timer);
      live.delete(child);
      reject(e);
    });
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      live.delete(child);
      resolve({ code, signal, stdout, stderr, timedOut });
    });
    child.stdin.on('error', () => {});
    child.stdin.end(input ?? '');
  });
}

// A port that was free a moment ago: bind 127.0.0.1:0, read the port, close.
export function freePort() {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.unref();
    srv.on('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address();
      srv.close(() => resolve(port));
    });
  });
}

export async function initDataDir(dir) {
  const r = await runCli(['init', '--data', dir]);
  if (r.code !== 0) throw new Error(`veranda init failed (${r.code}): ${r.stderr}`);
  return r;
}

export async function seedDataDir(dir, { patients = 0, seed = 1 } = {}) {
  const r = await runCli(['seed', '--data', dir, '--patients', String(patients), '--seed', String(seed)], {
    timeout: 120000,
  });
  if (r.code !== 0) throw new Error(`veranda seed failed (${r.code}): ${r.stderr}`);
  return r;
}

/*
 * Fetch relative to the server root; resolves a plain object with status,
 * headers, the body text and, when it parses, its JSON.
 */
export async function fetchRaw(url, init = {}) {
  const res = await fetch(url, init);
  const buf = Buffer.from(await res.arrayBuffer());
  const text = buf.toString('utf8');
  let json;
  if (text) {
    try {
      json = JSON.parse(text);
    } catch {
      json = undefined;
    }
  }
  return { status: res.status, headers: res.headers, text, json, bytes: buf };
}

// Plain GET over node:http with a keep-alive agent: much cheaper per request
// than fetch, for tests that read thousands of resources.
const agent = new http.Agent({ keepAlive: true, maxSockets: 16 });
export function httpGet(url, headers = {}) {
  const a = authOf(url);
  return new Promise((resolve, reject) => {
    const req = http.get(url, { agent, headers: { accept: 'application/fhir+json', ...(a ? { authorization: a } : {}), ...headers } }, (res) => {
      const chunks = [];
      res.on('data', (d) => chunks.push(d));
      res.on('end', () => {
        const text = Buffer.concat(chunks).toString('utf8');
        let json;
        try {
          json = text ? JSON.parse(text) : undefined;
        } catch {
          json = undefined;
        }
        resolve({ status: res.statusCode, headers: res.headers, text, json });
      });
      res.on('error', reject);
    });
    req.on('error', reject);
  });
}

function parseJsonLine(line) {
  try {
    const v = JSON.parse(line);
    return v && typeof v === 'object' ? v : null;
  } catch {
    return null;
  }
}

/*
 * Start a server.
 *   dataDir   reuse this directory (not removed by stop() unless 'own' is true)
 *   init      run `veranda init` first (default: true for a new directory)
 *   seed      run `veranda seed` first: true or the seed number
 *   patients  generated patients for the seed (implies seeding)
 *   env       extra environment variables
 *   args      extra `serve` flags
 *   auth      'backend' (default): register a backend-service client and get
 *             a system/*.cruds access token (private_key_jwt, ES384), sent
 *             on every request to the FHIR base (fetch, httpGet and
 *             srv.authHeaders for clients); false: no token
 * Resolves an object: port, baseUrl, fhirBase, dataDir, logs (stderr lines),
 * jsonLogs(), fetch(path, init), fhirFetch(path, init), waitForLog(pred),
 * stop(), kill(), exited (a promise of { code, signal }).
 */
export async function startServer({ dataDir, init, seed, patients, env = {}, args = [], startTimeout = 15000, auth = 'backend' } = {}) {
  requireBinary();
  let own = false;
  if (!dataDir) {
    dataDir = await makeTempDir();
    own = true;
    if (init === undefined) init = true;
  }
  if (init) await initDataDir(dataDir);
  if (seed !== undefined || patients !== undefined) {
    await seedDataDir(dataDir, { patients: patients ?? 0, seed: typeof seed === 'number' ? seed : 1 });
  }
  let backend = null;
  if (auth === 'backend') backend = await registerBackend(dataDir);
  const port = await freePort();
  const baseUrl = `http://127.0.0.1:${port}`;
  const child = spawn(
    BIN,
    ['serve', '--data', dataDir, '--listen', `127.0.0.1:${port}`, '--base-url', baseUrl,
      ...(backend ? ['--backend-token-ttl', '3600'] : []), ...args],
    { env: childEnv(env), cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'] },
  );
  live.add(child);
  const logs = [];
  let stdout = '';
  let partial = '';
  child.stderr.setEncoding('utf8');
  child.stdout.setEncoding('utf8');
  child.stdout.on('data', (d) => (stdout += d));
  child.stderr.on('data', (d) => {
    partial += d;
    let i;
    while ((i = partial.indexOf('\n')) >= 0) {
      logs.push(partial.slice(0, i));
      partial = partial.slice(i + 1);
    }
  });
  const exited = new Promise((resolve) => {
    child.on('close', (code, signal) => {
      live.delete(child);
      if (partial) logs.push(partial), (partial = '');
      resolve({ code, signal });
    });
  });
  let exitInfo = null;
  exited.then((x) => (exitInfo = x));

  const srv = {
    port,
    baseUrl,
    fhirBase: `${baseUrl}/fhir`,
    dataDir,
    child,
    pid: child.pid,
    logs,
    exited,
    get stdout() {
      return stdout;
    },
    logText: () => logs.join('\n') + (partial ? '\n' + partial : ''),
    jsonLogs: () => logs.map(parseJsonLine).filter(Boolean),
    fetch: (p, init) => fetchRaw(baseUrl + p, init),
    get: (p, headers) => httpGet(baseUrl + p, headers),
    fhirFetch: (p, init) => fetchRaw(`${baseUrl}/fhir${p.startsWith('/') ? '' : '/'}${p}`, init),
    async waitForLog(pred, timeout = 5000) {
      const end = Date.now() + timeout;
      for (;;) {
        const hit = srv.jsonLogs().find(pred);
        if (hit) return hit;
        if (Date.now() > end) return undefined;
        await sleep(25);
      }
    },
    // SIGTERM, wait for exit (SIGKILL after 'timeout'), remove an own data dir.
    // Under the sanitizers (make e2e-san) a report at exit, such as a leak,
    // fails the caller: nothing else would notice it.
    async stop({ timeout = 15000, keepData = false } = {}) {
      if (!exitInfo) {
        child.kill('SIGTERM');
        const t = setTimeout(() => child.kill('SIGKILL'), timeout);
        await exited;
        clearTimeout(t);
      }
      if (own && !keepData) await removeDir(dataDir);
      if (!srv.sanitizerSeen) {
        srv.sanitizerSeen = true; // said once, by whichever stop() came first
        throwOnSanitizerReport(srv.logText());
      }
      return exitInfo;
    },
    async kill() {
      if (!exitInfo) {
        child.kill('SIGKILL');
        await exited;
      }
      return exitInfo;
    },
  };

  // Wait for /healthz.
  const end = Date.now() + startTimeout;
  for (;;) {
    if (exitInfo) {
      if (own) await removeDir(dataDir);
      throw new Error(`veranda serve exited early (${exitInfo.code ?? exitInfo.signal}): ${srv.logText()}`);
    }
    try {
      const r = await fetch(`${baseUrl}/healthz`);
      await r.arrayBuffer();
      if (r.status === 200) break;
    } catch {
      /* not listening yet */
    }
    if (Date.now() > end) {
      await srv.stop();
      throw new Error(`veranda serve did not answer /healthz within ${startTimeout} ms: ${srv.logText()}`);
    }
    await sleep(30);
  }
  srv.authHeaders = {};
  if (backend) {
    try {
      srv.token = await backendToken(baseUrl, backend);
    } catch (e) {
      await srv.stop();
      throw e;
    }
    srv.authHeaders = { authorization: `Bearer ${srv.token}` };
    authFor.set(`${baseUrl}/fhir`, srv.authHeaders.authorization);
    exited.then(() => authFor.delete(`${baseUrl}/fhir`));
  }
  return srv;
}

/*
 * Backend-service access for the suites that test the FHIR API itself:
 * one client per data directory, registered with the CLI, and a token per
 * server got with client_credentials and a signed client assertion.
 */
const BACKEND_ID = 'e2e-backend';
const backends = new Map();

async function registerBackend(dataDir) {
  if (backends.has(dataDir)) return backends.get(dataDir);
  const { publicKey, privateKey } = await jose.generateKeyPair('ES384', { extractable: true });
  const jwk = { ...(await jose.exportJWK(publicKey)), kid: 'e2e-1', alg: 'ES384', use: 'sig' };
  const file = path.join(dataDir, 'e2e-backend-jwks.json');
  await fsp.writeFile(file, JSON.stringify({ keys: [jwk] }));
  const r = await runCli(['client', 'add', '--data', dataDir, '--client-id', BACKEND_ID, '--jwks', file,
    '--scope', 'system/*.cruds']);
  if (r.code !== 0 && !/exists|taken/.test(r.stderr)) throw new Error(`client add failed (${r.code}): ${r.stderr}`);
  const b = { privateKey, kid: 'e2e-1' };
  backends.set(dataDir, b);
  return b;
}

/* A signed client assertion (RFC 7523) for the token endpoint of 'baseUrl'. */
export async function clientAssertion(baseUrl, clientId, privateKey, kid, alg = 'ES384') {
  return new jose.SignJWT({})
    .setProtectedHeader({ alg, kid, typ: 'JWT' })
    .setIssuer(clientId)
    .setSubject(clientId)
    .setAudience(`${baseUrl}/oauth/token`)
    .setJti(crypto.randomUUID())
    .setIssuedAt()
    .setExpirationTime('4m')
    .sign(privateKey);
}

async function backendToken(baseUrl, b, scope = 'system/*.cruds') {
  /* the assertion's audience is the advertised token URL (--base-url may differ from where we connect) */
  const conf = await (await origFetch(`${baseUrl}/.well-known/openid-configuration`)).json();
  const body = new URLSearchParams({
    grant_type: 'client_credentials',
    scope,
    client_assertion_type: 'urn:ietf:params:oauth:client-assertion-type:jwt-bearer',
    client_assertion: await clientAssertion(conf.issuer, BACKEND_ID, b.privateKey, b.kid),
  });
  const r = await origFetch(`${baseUrl}/oauth/token`, { method: 'POST', body });
  const j = await r.json();
  if (r.status !== 200) throw new Error(`backend token: ${r.status} ${JSON.stringify(j)}`);
  return j.access_token;
}

/*
 * Requests to a started server's FHIR base carry its backend token unless
 * they set Authorization themselves (an empty string sends none).
 */
const authFor = new Map();
const origFetch = globalThis.fetch;
function authOf(url) {
  const u = String(url instanceof Request ? url.url : url);
  for (const [base, h] of authFor) if (u.startsWith(base)) return h;
  return null;
}
globalThis.fetch = (input, init = {}) => {
  const h = authOf(input);
  if (!h) return origFetch(input, init);
  const headers = new Headers(init.headers || (input instanceof Request ? input.headers : undefined));
  if (!headers.has('authorization')) headers.set('authorization', h);
  else if (headers.get('authorization') === '') headers.delete('authorization');
  return origFetch(input, { ...init, headers });
};

// Collect every page of a history Bundle by following 'next' links.
export async function allPages(srv, firstPath, { between } = {}) {
  const pages = [];
  let url = srv.fhirBase + firstPath;
  for (let i = 0; url; i++) {
    const r = await fetchRaw(url, { headers: { accept: 'application/fhir+json' } });
    if (r.status !== 200) throw new Error(`GET ${url} -> ${r.status}: ${r.text}`);
    pages.push(r.json);
    const next = (r.json.link || []).find((l) => l.relation === 'next');
    url = next ? next.url : null;
    if (url && between) await between(i, r.json);
    if (i > 100000) throw new Error('history paging does not end');
  }
  return pages;
}

// "W/\"3\"" -> 3
export function etagVersion(etag) {
  const m = /^(?:W\/)?"(\d+)"$/.exec(etag || '');
  return m ? Number(m[1]) : NaN;
}

// Identify a history entry: "Type/id/_history/N".
export function entryKey(e) {
  const m = /\/([A-Za-z]+)\/([A-Za-z0-9\-.]+)$/.exec(e.fullUrl || '');
  const v = etagVersion(e.response && e.response.etag);
  return m ? `${m[1]}/${m[2]}/_history/${v}` : `?${e.fullUrl}/${v}`;
}

// A deep copy without meta.versionId / meta.lastUpdated (and without an empty meta).
export function withoutServerMeta(res) {
  const c = structuredClone(res);
  if (c && c.meta) {
    delete c.meta.versionId;
    delete c.meta.lastUpdated;
    if (Object.keys(c.meta).length === 0) delete c.meta;
  }
  return c;
}

// Run fn over items with at most 'n' in flight.
export async function pool(items, n, fn) {
  const out = new Array(items.length);
  let next = 0;
  async function worker() {
    while (next < items.length) {
      const i = next++;
      out[i] = await fn(items[i], i);
    }
  }
  await Promise.all(Array.from({ length: Math.min(n, items.length) }, worker));
  return out;
}

export { sleep };
