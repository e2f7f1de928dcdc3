// OAuth helpers for the e2e suites: register apps with the CLI, walk the
// sign-in, patient-picker and consent pages over HTTP with a cookie jar
// (the way a browser without JavaScript would), PKCE pairs, token-endpoint
// requests and RFC 7523 client assertions.
//
//   const b = new Browser(srv.baseUrl);
//   const { code, location } = await authorize(b, srv, { clientId: 'app', redirectUri,
//     scope: 'openid fhirUser launch/patient patient/*.rs', user: 'alice' });
import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import fsp from 'node:fs/promises';
import path from 'node:path';
import { spawn } from 'node:child_process';
import * as jose from 'jose';
import { BIN, childEnv, requireBinary, runCli, sleep, throwOnSanitizerReport } from './server.mjs';

export const DEMO_PASSWORD = 'veranda-demo';
export const JWT_BEARER = 'urn:ietf:params:oauth:client-assertion-type:jwt-bearer';

/* ---- registration ---- */

/*
 * Register an app with `veranda client add`.  One of: public: true,
 * secret: S, jwks: a JWK Set object (written to a file in the data
 * directory) or a file path, jwksUrl: URL.  Throws on failure unless
 * 'expectFail', which resolves the CLI result instead.
 */
export async function registerClient(dataDir, {
  clientId, redirectUris = [], public: pub = false, secret, jwks, jwksUrl, scope, launchUrl,
  origins = [], name, expectFail = false,
} = {}) {
  const args = ['client', 'add', '--data', dataDir, '--client-id', clientId];
  for (const u of redirectUris) args.push('--redirect-uri', u);
  if (pub) args.push('--public');
  if (secret) args.push('--secret', secret);
  if (jwks) {
    let file = jwks;
    if (typeof jwks !== 'string') {
      file = path.join(dataDir, `jwks-${clientId}-${crypto.randomBytes(4).toString('hex')}.json`);
      await fsp.writeFile(file, JSON.stringify(jwks));
    }
    args.push('--jwks', file);
  }
  if (jwksUrl) args.push('--jwks-url', jwksUrl);
  if (scope) args.push('--scope', scope);
  if (launchUrl) args.push('--launch-url', launchUrl);
  for (const o of origins) args.push('--origin', o);
  if (name) args.push('--name', name);
  const r = await runCli(args);
  if (expectFail) return r;
  if (r.code !== 0) throw new Error(`client add ${clientId} failed (${r.code}): ${r.stderr}`);
  return r;
}

/* ---- keys and assertions ---- */

/* A signing key pair for 'alg' (RS384, ES384, RS256...): { alg, kid, privateKey, publicJwk }. */
export async function keyPair(alg = 'ES384', kid = `k-${crypto.randomBytes(6).toString('hex')}`) {
  const { publicKey, privateKey } = await jose.generateKeyPair(alg, { extractable: true });
  const publicJwk = { ...(await jose.exportJWK(publicKey)), kid, alg, use: 'sig' };
  return { alg, kid, privateKey, publicKey, publicJwk };
}

/*
 * A client assertion (RFC 7523, SMART asymmetric profile): iss = sub =
 * clientId, aud = tokenUrl, exp in 4 minutes, a fresh jti.  'claims'
 * overrides or adds claims (undefined deletes one); 'header' adds header
 * members; 'alg' signs with another algorithm than the key's.
 */
export async function assertion(tokenUrl, clientId, key, { claims = {}, header = {}, alg } = {}) {
  const now = Math.floor(Date.now() / 1000);
  const payload = { iss: clientId, sub: clientId, aud: tokenUrl, jti: crypto.randomUUID(), iat: now,
    exp: now + 240, ...claims };
  for (const [k, v] of Object.entries(payload)) if (v === undefined) delete payload[k];
  return new jose.SignJWT(payload)
    .setProtectedHeader({ alg: alg || key.alg, kid: key.kid, typ: 'JWT', ...header })
    .sign(key.privateKey);
}

/* ---- PKCE ---- */

export function pkcePair() {
  const verifier = crypto.randomBytes(32).toString('base64url');
  const challenge = crypto.createHash('sha256').update(verifier).digest('base64url');
  return { verifier, challenge };
}

/* ---- a browser without JavaScript ---- */

/*
 * Cookies by name (one host: the server), redirects not followed, every
 * response read to the end.  A response is { status, headers, text, url,
 * location } where location is absolute.
 */
export class Browser {
  constructor(base) {
    this.base = base;
    this.jar = new Map();
    this.history = [];
  }

  cookie(name) {
    return this.jar.get(name);
  }

  setCookie(name, value) {
    if (value === undefined || value === '') this.jar.delete(name);
    else this.jar.set(name, value);
  }

  cookieHeader() {
    return [...this.jar].map(([k, v]) => `${k}=${v}`).join('; ');
  }

  keep(res) {
    for (const c of res.headers.getSetCookie()) {
      const [kv, ...attrs] = c.split(';').map((s) => s.trim());
      const i = kv.indexOf('=');
      const name = kv.slice(0, i);
      const value = kv.slice(i + 1);
      const gone = attrs.some((a) => /^max-age=0$/i.test(a)) || value === '';
      if (gone) this.jar.delete(name);
      else this.jar.set(name, value);
    }
  }

  async request(url, { method = 'GET', form, headers = {}, cookies = true } = {}) {
    const abs = new URL(url, this.base).href;
    const h = { ...headers };
    if (cookies && this.jar.size) h.cookie = this.cookieHeader();
    let body;
    if (form !== undefined) {
      body = form instanceof URLSearchParams ? form : new URLSearchParams(form);
      h['content-type'] = 'application/x-www-form-urlencoded';
    }
    const res = await fetch(abs, { method, headers: h, body, redirect: 'manual' });
    this.keep(res);
    const text = await res.text();
    const loc = res.headers.get('location');
    const out = { status: res.status, headers: res.headers, text, url: abs,
      location: loc ? new URL(loc, abs).href : null };
    this.history.push({ method, url: abs, status: res.status, location: out.location });
    return out;
  }

  get(url, headers) {
    return this.request(url, { headers });
  }

  post(url, form, headers) {
    return this.request(url, { method: 'POST', form, headers });
  }
}

/* ---- pages ---- */

const attr = (tag, name) => {
  const m = new RegExp(`\\s${name}\\s*=\\s*"([^"]*)"`, 'i').exec(tag);
  return m ? decodeEntities(m[1]) : null;
};

export function decodeEntities(s) {
  return s.replace(/&(#x[0-9a-f]+|#\d+|amp|lt|gt|quot|apos|#39);/gi, (m, e) => {
    const l = e.toLowerCase();
    if (l === 'amp') return '&';
    if (l === 'lt') return '<';
    if (l === 'gt') return '>';
    if (l === 'quot') return '"';
    if (l === 'apos' || l === '#39') return "'";
    if (l.startsWith('#x')) return String.fromCodePoint(parseInt(l.slice(2), 16));
    return String.fromCodePoint(parseInt(l.slice(1), 10));
  });
}

/*
 * The forms of a page: [{ action, method, fields: [[name, value]...],
 * checkboxes: [{ name, value, checked }], radios, buttons, selects }].
 * 'fields' holds what a browser would submit without user input
 * (hidden and text inputs, checked boxes and radios, selected options).
 */
export function parseForms(html) {
  const forms = [];
  for (const m of html.matchAll(/<form\b([^>]*)>([\s\S]*?)<\/form>/gi)) {
    const f = { action: attr(m[1], 'action'), method: (attr(m[1], 'method') || 'get').toLowerCase(),
      fields: [], checkboxes: [], radios: [], buttons: [], selects: {} };
    for (const t of m[2].matchAll(/<select\b([^>]*)>([\s\S]*?)<\/select>|<(input|button)\b([^>]*)>/gi)) {
      if (t[1] !== undefined) {
        const name = attr(t[1], 'name');
        const opts = [...t[2].matchAll(/<option\b([^>]*)>/gi)].map((o) => ({
          value: attr(o[1], 'value'), selected: /\sselected\b/i.test(o[1]) }));
        f.selects[name] = opts;
        const sel = opts.find((o) => o.selected) || opts[0];
        if (name && sel) f.fields.push([name, sel.value]);
        continue;
      }
      const kind = t[3].toLowerCase();
      const tag = t[4];
      const name = attr(tag, 'name');
      if (kind === 'button') {
        f.buttons.push({ name, value: attr(tag, 'value') });
        continue;
      }
      const type = (attr(tag, 'type') || 'text').toLowerCase();
      const value = attr(tag, 'value') ?? '';
      const checked = /\schecked\b/i.test(tag);
      if (!name) continue;
      if (type === 'checkbox') {
        f.checkboxes.push({ name, value, checked });
        if (checked) f.fields.push([name, value]);
      } else if (type === 'radio') {
        f.radios.push({ name, value, checked });
        if (checked) f.fields.push([name, value]);
      } else if (type !== 'submit') {
        f.fields.push([name, value]);
      }
    }
    forms.push(f);
  }
  return forms;
}

export function formFor(html, action) {
  return parseForms(html).find((f) => f.action === action) || null;
}

/* What a page is: 'login', 'picker', 'consent', 'account' or 'other'. */
export function pageKind(html) {
  if (formFor(html, '/oauth/login')) return 'login';
  if (formFor(html, '/oauth/patient')) return 'picker';
  if (formFor(html, '/oauth/decide')) return 'consent';
  if (formFor(html, '/signout')) return 'account';
  return 'other';
}

export function field(form, name) {
  const f = form.fields.find(([n]) => n === name);
  return f ? f[1] : undefined;
}

/* ---- sign-in ---- */

/* Sign in from /signin; resolves the credentials POST's response (303 to /account on success). */
export async function signIn(browser, username, password = DEMO_PASSWORD) {
  const page = await browser.get('/signin');
  const form = formFor(page.text, '/oauth/login');
  if (!form) throw new Error(`/signin has no sign-in form (${page.status})`);
  const body = new URLSearchParams(form.fields);
  body.set('username', username);
  body.set('password', password);
  return browser.post('/oauth/login', body);
}

/* The CSRF token of the signed-in account page (for /signout, /oauth/launch, /account/revoke). */
export async function accountPage(browser) {
  const r = await browser.get('/account');
  const forms = parseForms(r.text);
  const so = forms.find((f) => f.action === '/signout');
  return { ...r, forms, csrf: so ? field(so, 'csrf') : undefined };
}

/* ---- the authorization walk ---- */

/*
 * Follow an authorization request through sign-in, picker and consent
 * until the server redirects away from itself (to the app) or shows a
 * page the walk does not know.  'start' is a URL (GET) or { url, form }
 * (POST).  Options:
 *   user, password          credentials for the sign-in page
 *   patient                 the picker's choice (default: the page's default)
 *   action                  'allow' (default) or 'deny'
 *   consent(form, params)   edit the consent form's URLSearchParams before posting
 *   stopAt                  'login' | 'picker' | 'consent': resolve with that page instead
 * Resolves { redirect (URL to the app or null), response (the last), pages
 * (kinds seen), form (the page form when stopped) }.
 */
export async function walk(browser, start, opts = {}) {
  const { user = 'alice', password = DEMO_PASSWORD, patient, action = 'allow', consent, stopAt } = opts;
  const base = new URL(browser.base).origin;
  let r = typeof start === 'string' ? await browser.get(start) : await browser.post(start.url, start.form, start.headers);
  const pages = [];
  for (let step = 0; step < 12; step++) {
    if (r.status >= 300 && r.status < 400 && r.location) {
      if (new URL(r.location).origin !== base) return { redirect: new URL(r.location), response: r, pages };
      r = await browser.get(r.location);
      continue;
    }
    const kind = pageKind(r.text);
    pages.push(kind);
    if (kind === stopAt) return { redirect: null, response: r, pages, form: formFor(r.text, `/oauth/${{ login: 'login', picker: 'patient', consent: 'decide' }[kind]}`) };
    if (kind === 'login' && r.status === 200) {
      const f = formFor(r.text, '/oauth/login');
      const body = new URLSearchParams(f.fields);
      body.set('username', user);
      body.set('password', password);
      r = await browser.post('/oauth/login', body);
    } else if (kind === 'picker' && r.status === 200) {
      const f = formFor(r.text, '/oauth/patient');
      const body = new URLSearchParams(f.fields);
      if (patient) {
        body.delete('patient');
        body.delete('patient_id');
        body.set(f.radios.some((x) => x.value === patient) ? 'patient' : 'patient_id', patient);
      }
      r = await browser.post('/oauth/patient', body);
    } else if (kind === 'consent' && r.status === 200) {
      const f = formFor(r.text, '/oauth/decide');
      const body = new URLSearchParams(f.fields);
      body.set('action', action);
      if (consent) consent(f, body);
      r = await browser.post('/oauth/decide', body);
    } else {
      return { redirect: null, response: r, pages };
    }
  }
  throw new Error(`authorization walk did not end: ${JSON.stringify(browser.history.slice(-12))}`);
}

/*
 * Build an authorization request for the server 'srv' ({ baseUrl, fhirBase }):
 * PKCE S256, state, aud = the FHIR base; 'extra' adds or overrides
 * parameters (undefined removes one).  Resolves { url, params, verifier }.
 */
export function authzRequest(srv, { clientId, redirectUri, scope, state = crypto.randomBytes(12).toString('base64url'),
  nonce, launch, extra = {} } = {}) {
  const { verifier, challenge } = pkcePair();
  const p = { response_type: 'code', client_id: clientId, redirect_uri: redirectUri, scope, state,
    aud: srv.fhirBase, code_challenge: challenge, code_challenge_method: 'S256' };
  if (nonce) p.nonce = nonce;
  if (launch) p.launch = launch;
  Object.assign(p, extra);
  const params = new URLSearchParams();
  for (const [k, v] of Object.entries(p)) if (v !== undefined) params.append(k, v);
  return { url: `${srv.baseUrl}/oauth/authorize?${params}`, params, verifier, state };
}

/*
 * The whole front channel: request, sign-in, consent.  'post' sends the
 * request as a form POST.  Resolves { code, state, iss, redirect, verifier,
 * walk } (code null when the app got an error or nothing).
 */
export async function authorize(browser, srv, opts = {}) {
  const req = authzRequest(srv, opts);
  const start = opts.post ? { url: `${srv.baseUrl}/oauth/authorize`, form: req.params } : req.url;
  const w = await walk(browser, start, opts);
  const q = w.redirect ? w.redirect.searchParams : new URLSearchParams();
  return { code: q.get('code'), error: q.get('error'), state: q.get('state'), iss: q.get('iss'),
    redirect: w.redirect, verifier: req.verifier, sentState: req.state, walk: w, request: req };
}

/* ---- the token endpoint ---- */

export function basic(id, secret) {
  const enc = (s) => encodeURIComponent(s).replace(/%20/g, '+');
  return `Basic ${Buffer.from(`${enc(id)}:${enc(secret)}`).toString('base64')}`;
}

/*
 * POST a form to an endpoint of the server; resolves { status, headers, text, json }.
 * 'auth' is a full Authorization header value.
 */
export async function postForm(url, params, { auth, headers = {} } = {}) {
  const h = { 'content-type': 'application/x-www-form-urlencoded', ...headers };
  if (auth) h.authorization = auth;
  const res = await fetch(url, { method: 'POST', headers: h, body: new URLSearchParams(params).toString() });
  const text = await res.text();
  let json;
  try {
    json = text ? JSON.parse(text) : undefined;
  } catch {
    json = undefined;
  }
  return { status: res.status, headers: res.headers, text, json };
}

/* Exchange a code at srv's token endpoint for a public client (client_id in the body). */
export function redeem(srv, { code, verifier, redirectUri, clientId, auth, extra = {} }) {
  const p = { grant_type: 'authorization_code', code, redirect_uri: redirectUri, code_verifier: verifier };
  if (!auth && clientId) p.client_id = clientId;
  return postForm(`${srv.baseUrl}/oauth/token`, { ...p, ...extra }, { auth });
}

/* A FHIR GET with a bearer token (an empty token sends no Authorization). */
export async function fhirGet(srv, pathAndQuery, token) {
  const headers = { accept: 'application/fhir+json', authorization: token ? `Bearer ${token}` : '' };
  return fetchJson(`${srv.fhirBase}/${pathAndQuery.replace(/^\//, '')}`, { headers });
}

/* fetch(); resolves { status, headers, text, json } (json undefined when the body is not JSON). */
export async function fetchJson(url, init) {
  const res = await fetch(url, init);
  const text = await res.text();
  let json;
  try {
    json = JSON.parse(text);
  } catch {
    json = undefined;
  }
  return { status: res.status, headers: res.headers, text, json };
}

/* ---- a server on a fixed port ---- */

/*
 * `veranda serve` on 127.0.0.1:'port' over 'dataDir' (not removed), for
 * tests that restart a server and need the same issuer afterwards (for
 * example with env VERANDA_CLOCK_OFFSET to move its clock).  Resolves
 * { baseUrl, fhirBase, port, logs, stop() }.
 */
export async function serveFixed({ dataDir, port, env = {}, args = [], startTimeout = 15000 }) {
  requireBinary();
  const baseUrl = `http://127.0.0.1:${port}`;
  const child = spawn(BIN, ['serve', '--data', dataDir, '--listen', `127.0.0.1:${port}`, '--base-url', baseUrl, ...args],
    { env: childEnv(env), stdio: ['ignore', 'ignore', 'pipe'] });
  const onExit = () => child.kill('SIGKILL');
  process.on('exit', onExit);
  const logs = [];
  child.stderr.setEncoding('utf8');
  child.stderr.on('data', (d) => logs.push(d));
  let exited = null;
  const done = new Promise((resolve) => child.on('close', (code, signal) => {
    process.off('exit', onExit);
    resolve((exited = { code, signal }));
  }));
  let checked = false;
  const stop = async () => {
    if (!exited) {
      child.kill('SIGTERM');
      const t = setTimeout(() => child.kill('SIGKILL'), 10000);
      await done;
      clearTimeout(t);
    }
    if (!checked) {
      checked = true;
      throwOnSanitizerReport(logs.join(''));
    }
  };
  const end = Date.now() + startTimeout;
  for (;;) {
    if (exited) throw new Error(`veranda serve exited early: ${logs.join('')}`);
    try {
      const r = await fetch(`${baseUrl}/healthz`);
      await r.arrayBuffer();
      if (r.status === 200) break;
    } catch {
      /* not yet */
    }
    if (Date.now() > end) {
      await stop();
      throw new Error(`veranda serve on ${port} did not start: ${logs.join('')}`);
    }
    await sleep(30);
  }
  return { baseUrl, fhirBase: `${baseUrl}/fhir`, port, logs, stop, pid: child.pid };
}

/*
 * An access token from the code flow through the real pages, with a plain
 * cookie jar: 'user' signs in (password veranda-demo), picks 'patient'
 * when the picker shows (required then), and allows on the consent screen
 * keeping 'keep' (default: every type offered), ticking the category boxes
 * 'cats' ("Type system|code") and, when the scope asks for offline_access,
 * the offline box.  'app' is { base, fhirBase, clientId, redirectUri } (a
 * public client).  Resolves the token response; asserts each step.
 */
export async function consentToken(app, user, scope, { patient, cats = [], keep } = {}) {
  const { base: B, fhirBase: F, clientId: APP, redirectUri: REDIRECT } = app;
  const jar = new Map();
  const go = async (url, init = {}) => {
    const cookie = [...jar].map(([k, v]) => `${k}=${v}`).join('; ');
    const r = await fetch(url, { redirect: 'manual', ...init, headers: { cookie, ...(init.headers || {}) } });
    for (const c of r.headers.getSetCookie()) {
      const kv = c.split(';')[0];
      const i = kv.indexOf('=');
      if (kv.slice(i + 1)) jar.set(kv.slice(0, i), kv.slice(i + 1));
      else jar.delete(kv.slice(0, i));
    }
    return r;
  };
  const valueOf = (html, n) => (html.match(new RegExp(`name="${n}" value="([^"]*)"`)) || [])[1];
  const verifier = crypto.randomBytes(32).toString('base64url');
  const q = new URLSearchParams({
    response_type: 'code', client_id: APP, redirect_uri: REDIRECT, scope, state: 'st', aud: F,
    code_challenge: crypto.createHash('sha256').update(verifier).digest('base64url'), code_challenge_method: 'S256',
  });
  let r = await go(`${B}/oauth/authorize?${q}`);
  let html = await r.text();
  assert.equal(r.status, 200, html.slice(0, 300));
  r = await go(`${B}/oauth/login`, { method: 'POST', body: new URLSearchParams({ csrf: valueOf(html, 'csrf'), req: valueOf(html, 'req'), username: user, password: DEMO_PASSWORD }) });
  assert.equal(r.status, 303, `sign-in of ${user}`);
  r = await go(new URL(r.headers.get('location'), B).href);
  html = await r.text();
  if (html.includes('name="patient"')) {
    assert.ok(patient, `${user} is asked to pick a patient`);
    r = await go(`${B}/oauth/patient`, { method: 'POST', body: new URLSearchParams({ csrf: valueOf(html, 'csrf'), req: valueOf(html, 'req'), patient }) });
    html = await r.text();
  } else if (html.includes('name="patient_id"')) {
    // staff: the picker asks for a patient id
    assert.ok(patient, `${user} is asked for a patient id`);
    r = await go(`${B}/oauth/patient`, { method: 'POST', body: new URLSearchParams({ csrf: valueOf(html, 'csrf'), req: valueOf(html, 'req'), patient_id: patient, action: 'continue' }) });
    html = await r.text();
  }
  const offered = [...html.matchAll(/name="type" value="([^"]*)"/g)].map((m) => m[1]);
  const form = new URLSearchParams({ csrf: valueOf(html, 'csrf'), req: valueOf(html, 'req'), action: 'allow' });
  if (scope.split(' ').includes('offline_access')) form.append('offline', '1');
  for (const t of keep || offered) form.append('type', t);
  for (const c of cats) form.append('cat', c);
  r = await go(`${B}/oauth/decide`, { method: 'POST', body: form });
  assert.equal(r.status, 303, `consent: ${r.status}`);
  const code = new URL(r.headers.get('location')).searchParams.get('code');
  assert.ok(code, `a code: ${r.headers.get('location')}`);
  r = await fetch(`${B}/oauth/token`, { method: 'POST', body: new URLSearchParams({ grant_type: 'authorization_code', code, redirect_uri: REDIRECT, code_verifier: verifier, client_id: APP }) });
  const tok = await r.json();
  assert.equal(r.status, 200, JSON.stringify(tok));
  return tok;
}
