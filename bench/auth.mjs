// auth.mjs - the authorization benchmark (`node bench/auth.mjs`, after `make`).
//
// 1. Token endpoint, authorization_code: a public client with PKCE S256
//    exchanges pre-minted codes (each good once) under wrk at C connections.
//    Veranda's codes come from its own authorization flow: one sign-in,
//    then GET /oauth/authorize and POST /oauth/decide per code, each with
//    its own verifier.  oidc-provider's codes are minted in its process
//    through its own Grant and AuthorizationCode models (bench/auth-oidc.mjs).
// 2. Token endpoint, refresh_token: C independent chains, one per
//    connection; every refresh rotates the token, so each chain's next
//    request carries the token the previous answer returned.
// 3. The same two against panva's oidc-provider (npm) on this machine, set
//    up with the same grant, the same keys (ES256 JWT access tokens for the
//    FHIR base, RS256 id tokens) and an in-memory store: ratios
//    Veranda / oidc-provider (goal ≥ 4×).
// 4. FHIR read with a bearer token (a patient/*.rs token of alice's reading
//    one of alice's Observations by id) against the same read on another
//    Veranda serving the same data directory with --fhir-auth=false: ratio
//    (goal ≥ 0.9×, authorization costing under 10%).  Both read servers run
//    with --audit off, so that the authorization is all that differs.
//    The read with the token once more while the token endpoint refreshes
//    other chains (a second wrk at the same time), reported against the
//    read alone: its CPU per read says what token traffic costs the
//    verified-token cache.
// 5. Password sign-ins (POST /oauth/login with the double-submit CSRF
//    cookie and field) at the configured Argon2id cost, at concurrency =
//    cores and 2 × cores: sign-ins/s, per core (goal ≥ 15) and latency.
//
// Each measurement runs in ROUNDS interleaved rounds (Veranda then the
// reference in odd rounds, the other way round in even ones); the best
// round is reported with every round's figure, the median of the per-round
// ratios, and each server's CPU time per request (from /proc), which says
// more than the rates when other jobs share the machine.
// wrk drives every test through bench/auth.lua, which counts only answers
// that carry what the client needs (an access token, a new refresh token, a
// 303 after sign-in) and times them itself, since a thread stops early when
// its share of codes is used up.  Everything runs on 127.0.0.1 in a
// temporary directory that is removed at the end; every process started
// here is stopped by its PID.  Goals not met are printed as "below goal";
// the exit status is non-zero only when something fails.
//
// bench/run.mjs runs its benchmark when imported, so the few helpers shared
// with it (process tracking, wrk, formatting) are repeated here in short.
//
// Environment: BENCH_AUTH_SECS (seconds per wrk run, default 5),
// BENCH_AUTH_ROUNDS (default 3), BENCH_AUTH_CONNECTIONS (token endpoint and
// read connections, default 16), BENCH_THREADS (wrk threads, default 2),
// BENCH_AUTH_PATIENTS (generated patients besides the demo people, 20),
// BENCH_AUTH_TMPDIR (where the temporary directory and so Veranda's data
// directory go; default the system's, e.g. /dev/shm to take the disk's
// flushes out of the token figures, as oidc-provider's in-memory store
// has none), BENCH_AUTH_WORKERS (veranda serve --workers; default its own),
// VERANDA_BIN (default build/veranda), BENCH_KEEP_TMP=1 keeps the temporary
// directory, BENCH_AUTH_OPENID=0 leaves openid and fhirUser out of the
// grant (no id token, so no RSA signature, on both servers).  Output also
// goes to bench/results/auth.txt and auth.json (auth-no-openid.* without
// openid).
import { fork, spawn, spawnSync } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

import { cpuSecs, fmtMs, freePort, processes, tail, toMs } from './lib.mjs';

const HERE = path.dirname(fileURLToPath(import.meta.url));
const ROOT = path.resolve(HERE, '..');
const VERANDA = path.resolve(process.env.VERANDA_BIN || path.join(ROOT, 'build/veranda'));
const SECS = Math.max(1, Number(process.env.BENCH_AUTH_SECS || 5));
const ROUNDS = Math.max(1, Number(process.env.BENCH_AUTH_ROUNDS || 3));
const CONNS = Math.max(1, Number(process.env.BENCH_AUTH_CONNECTIONS || 16));
const THREADS = Math.max(1, Number(process.env.BENCH_THREADS || 2));
const PATIENTS = Number(process.env.BENCH_AUTH_PATIENTS || 20);
const TMPDIR = process.env.BENCH_AUTH_TMPDIR || os.tmpdir();
const WORKERS = process.env.BENCH_AUTH_WORKERS ? ['--workers', process.env.BENCH_AUTH_WORKERS] : [];
const CORES = os.availableParallelism ? os.availableParallelism() : os.cpus().length;
const GOAL_TOKEN = 4, GOAL_READ = 0.9, GOAL_SIGNIN_PER_CORE = 15;
const CLIENT_ID = 'bench';
const REDIRECT = 'http://127.0.0.1:9999/cb';
/* BENCH_AUTH_OPENID=0: the same grant without openid and fhirUser, so no id token (no RSA signature) */
const OPENID = process.env.BENCH_AUTH_OPENID !== '0';
const SCOPE = OPENID ? 'launch/patient openid fhirUser offline_access patient/*.rs' : 'launch/patient offline_access patient/*.rs';
const PASSWORD = 'veranda-demo';
const MINT_PARALLEL = 4;
const LUA = path.join(HERE, 'auth.lua');

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const T0 = Date.now();
const log = (msg) => console.log(`[${`${((Date.now() - T0) / 1000).toFixed(0)} s`.padStart(5)}] ${msg}`);

/* ---- processes: every child is tracked and stopped by PID ---- */

let tmp = null;
const procs = processes({ log, tmpDir: () => tmp });
const { track, runCapture, stop, cleanup } = procs;


/* user + system CPU seconds of a process so far (null when /proc is unavailable) */
/* The file system type of a directory ("ext4", "tmpfs"; "?" when df cannot tell). */
function fsType(dir) {
	const r = spawnSync('df', ['--output=fstype', dir], { encoding: 'utf8' });
	return (r.stdout || '').trim().split('\n').pop() || '?';
}

function uptime() {
	const r = spawnSync('uptime', [], { encoding: 'utf8' });
	return (r.stdout || '').trim() || `load average: ${os.loadavg().map((x) => x.toFixed(2)).join(', ')}`;
}

/* ---- HTTP with a keep-alive agent and a cookie jar ---- */

const agent = new http.Agent({ keepAlive: true, maxSockets: 16 });

function request(port, method, p, { body = null, headers = {}, jar = null } = {}) {
	return new Promise((resolve, reject) => {
		const h = { ...headers };
		if (body != null) {
			h['Content-Length'] = Buffer.byteLength(body);
			h['Content-Type'] ??= 'application/x-www-form-urlencoded';
		}
		if (jar && jar.size)
			h.Cookie = [...jar].map(([k, v]) => `${k}=${v}`).join('; ');
		const req = http.request({ host: '127.0.0.1', port, method, path: p, headers: h, agent }, (res) => {
			const chunks = [];
			res.on('data', (d) => chunks.push(d));
			res.on('end', () => {
				if (jar)
					for (const c of res.headers['set-cookie'] || []) {
						const kv = c.split(';')[0], i = kv.indexOf('=');
						if (kv.slice(i + 1))
							jar.set(kv.slice(0, i), kv.slice(i + 1));
						else
							jar.delete(kv.slice(0, i));
					}
				resolve({ status: res.statusCode, headers: res.headers, body: Buffer.concat(chunks) });
			});
			res.on('error', reject);
		});
		req.setTimeout(15000, () => req.destroy(new Error(`${method} ${p}: timeout`)));
		req.on('error', reject);
		req.end(body ?? undefined);
	});
}

async function waitReady(child, port, p, timeoutMs = 15000) {
	const deadline = Date.now() + timeoutMs;
	let last = '';
	while (Date.now() < deadline) {
		if (child.exited)
			throw new Error(`${child.name} exited (code ${child.code}, signal ${child.signal}) before it was ready:\n${tail(child.logFile)}`);
		try {
			const r = await request(port, 'GET', p);
			if (r.status === 200)
				return;
			last = `status ${r.status}`;
		} catch (e) {
			last = e.message;
		}
		await sleep(100);
	}
	throw new Error(`${child.name} not ready on port ${port} after ${timeoutMs} ms (${last})`);
}

/* ---- wrk ---- */

function parseWrk(out) {
	const num = (re) => {
		const m = out.match(re);
		return m ? Number(m[1]) : null;
	};
	const pct = (p) => {
		const m = out.match(new RegExp(`^\\s*${p}%\\s+([\\d.]+)(us|ms|s|m|h)\\s*$`, 'm'));
		return m ? toMs(m[1], m[2]) : null;
	};
	const se = out.match(/Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)/);
	const a = out.match(/^auth-bench ok=(\d+) bad=(\d+) secs=([\d.]+) err=(.*)$/m);
	return {
		rps: num(/Requests\/sec:\s+([\d.]+)/),
		requests: num(/(\d+) requests in/),
		p50: pct(50),
		p99: pct(99),
		non2xx: num(/Non-2xx or 3xx responses: (\d+)/) || 0,
		socketErrors: se ? se.slice(1).map(Number).reduce((x, y) => x + y, 0) : 0,
		socketDetail: se ? se[0] : '',
		ok: a ? Number(a[1]) : null,
		bad: a ? Number(a[2]) : null,
		luaSecs: a ? Number(a[3]) : null,
		err: a ? a[4] : '',
	};
}

/*
 * One wrk run against 'server' (which has .pid and .port).  With a Lua
 * environment the rate is auth.lua's own (successes over its own clock);
 * otherwise wrk's.  cpuMs: the server's CPU per successful request.
 */
async function wrk({ label, server, path: p, conns, secs = SECS, lua = null, headers = [] }) {
	const threads = Math.min(THREADS, conns);
	const args = ['-t', String(threads), '-c', String(conns), '-d', `${secs}s`, '--latency', '--timeout', '10s'];
	for (const h of headers)
		args.push('-H', h);
	if (lua)
		args.push('-s', LUA);
	args.push(`http://127.0.0.1:${server.port}${p}`);
	const env = lua ? { ...process.env, AUTH_THREADS: String(threads), ...lua } : process.env;
	const cpu0 = cpuSecs(server.pid);
	const r = await runCapture(`wrk ${label}`, 'wrk', args, env);
	const cpu1 = cpuSecs(server.pid);
	if (server.exited)
		throw new Error(`${server.name} died during "${label}" (code ${server.code}, signal ${server.signal}):\n${tail(server.logFile)}`);
	if (r.code !== 0 || r.error)
		throw new Error(`wrk failed for "${label}" (exit ${r.code}${r.error ? `, ${r.error.message}` : ''}):\n${r.out}${r.err}`);
	const w = parseWrk(r.out);
	if (lua) {
		if (w.ok == null)
			throw new Error(`no auth-bench line in wrk's output for "${label}":\n${r.out}${r.err}`);
		w.rps = w.luaSecs > 0 ? w.ok / w.luaSecs : 0;
		w.good = w.ok;
	} else {
		w.good = (w.requests || 0) - w.non2xx;
	}
	if (!w.rps || w.p50 == null)
		throw new Error(`"${label}": no successful requests:\n${r.out}${r.err}`);
	w.cpuMs = cpu0 == null || cpu1 == null || !w.good ? null : ((cpu1 - cpu0) * 1000) / w.good;
	Object.assign(w, { label, conns, secs });
	const extra = [];
	if (w.cpuMs != null)
		extra.push(`server CPU ${w.cpuMs.toFixed(2)} ms/req`);
	if (lua && w.luaSecs < 0.8 * secs)
		extra.push(`ran out after ${w.luaSecs.toFixed(1)} s`);
	if (w.bad)
		extra.push(`${w.bad} failed: ${w.err.slice(0, 160)}`);
	if (!lua && w.non2xx)
		extra.push(`${w.non2xx} non-2xx`);
	if (w.socketErrors)
		extra.push(w.socketDetail);
	log(`${label.padEnd(44)} c=${String(conns).padStart(3)}  ${fmtInt(w.rps).padStart(7)}/s  p50 ${fmtMs(w.p50)}  p99 ${fmtMs(w.p99)}` +
		`${extra.length ? `  [${extra.join('; ')}]` : ''}`);
	return w;
}

/* ---- formatting ---- */

const fmtInt = (n) => Math.round(n).toLocaleString('en-US');
function median(a) {
	const v = [...a].sort((x, y) => x - y);
	return v.length ? (v.length % 2 ? v[(v.length - 1) / 2] : (v[v.length / 2 - 1] + v[v.length / 2]) / 2) : NaN;
}
const fmtRatio = (r) => `${r.toFixed(2)}×`;

function machine() {
	let model = 'unknown';
	try {
		const m = fs.readFileSync('/proc/cpuinfo', 'utf8').match(/^model name\s*:\s*(.+)$/m);
		if (m)
			model = m[1].trim();
	} catch { /* not Linux */ }
	const wrkV = spawnSync('wrk', ['-v'], { encoding: 'utf8' });
	let oidcV = '?';
	try {
		oidcV = JSON.parse(fs.readFileSync(path.join(ROOT, 'node_modules/oidc-provider/package.json'), 'utf8')).version;
	} catch { /* reported as ? */ }
	return { cores: CORES, model, kernel: os.release(), memGiB: (os.totalmem() / 2 ** 30).toFixed(0),
		wrk: (`${wrkV.stdout}${wrkV.stderr}`.match(/wrk (\S+)/) || [])[1] || '?', node: process.versions.node,
		oidcProvider: oidcV };
}

/* ---- Veranda ---- */

async function veranda(args, what) {
	const r = await runCapture(`veranda ${args[0]}`, VERANDA, args);
	if (r.code !== 0 || r.error)
		throw new Error(`${what}: veranda ${args.join(' ')} exited ${r.code ?? r.signal}${r.error ? ` (${r.error.message})` : ''}:\n${r.out}${r.err}`);
	return r;
}

async function startVeranda(name, data, extra) {
	const port = await freePort();
	const logFile = path.join(tmp, `${name}.log`);
	const fd = fs.openSync(logFile, 'a');
	const proc = spawn(VERANDA, ['serve', '--data', data, '--listen', `127.0.0.1:${port}`, '--log-level', 'warn', ...extra],
		{ stdio: ['ignore', fd, fd] });
	fs.closeSync(fd);
	const child = track(name, proc);
	Object.assign(child, { logFile, port });
	await waitReady(child, port, '/healthz');
	return child;
}

const field = (html, name) => (html.match(new RegExp(`name="${name}" value="([^"]*)"`)) || [])[1];

/* Sign in through the sign-in page; returns the cookie jar of the session. */
async function signIn(port, username) {
	const jar = new Map();
	let r = await request(port, 'GET', '/signin', { jar });
	const csrf = field(r.body.toString(), 'csrf');
	if (r.status !== 200 || !csrf)
		throw new Error(`GET /signin answered ${r.status} without a csrf field`);
	r = await request(port, 'POST', '/oauth/login', { jar,
		body: new URLSearchParams({ username, password: PASSWORD, csrf }).toString() });
	if (r.status !== 303 || !jar.get('veranda'))
		throw new Error(`sign-in of ${username} answered ${r.status}: ${r.body.toString().slice(0, 300)}`);
	return jar;
}

/* One code through Veranda's authorization endpoint and consent form. */
async function mintOne(port, jar) {
	const verifier = crypto.randomBytes(32).toString('base64url');
	const q = new URLSearchParams({ response_type: 'code', client_id: CLIENT_ID, redirect_uri: REDIRECT, scope: SCOPE,
		state: crypto.randomBytes(8).toString('base64url'), aud: `http://127.0.0.1:${port}/fhir`,
		code_challenge: crypto.createHash('sha256').update(verifier).digest('base64url'), code_challenge_method: 'S256',
		nonce: crypto.randomBytes(8).toString('base64url') });
	let r = await request(port, 'GET', `/oauth/authorize?${q}`, { jar });
	const html = r.body.toString();
	const csrf = field(html, 'csrf'), req = field(html, 'req');
	if (r.status !== 200 || !csrf || !req)
		throw new Error(`GET /oauth/authorize answered ${r.status} without the consent form: ${html.slice(0, 300)}`);
	const form = new URLSearchParams({ csrf, req, action: 'allow', offline: '1', duration: '2592000' });
	for (const m of html.matchAll(/name="type" value="([^"]*)"/g))
		form.append('type', m[1]);
	r = await request(port, 'POST', '/oauth/decide', { jar, body: form.toString() });
	const loc = r.headers.location ? new URL(r.headers.location) : null;
	const code = loc && loc.searchParams.get('code');
	if (r.status !== 303 || !code)
		throw new Error(`POST /oauth/decide answered ${r.status} ${r.headers.location || ''}: ${r.body.toString().slice(0, 300)}`);
	return new URLSearchParams({ grant_type: 'authorization_code', code, redirect_uri: REDIRECT, code_verifier: verifier,
		client_id: CLIENT_ID }).toString();
}

/* n token-request bodies with fresh codes into file; returns codes/s. */
async function mintVeranda(ver, jar, n, file) {
	const lines = [];
	const t0 = process.hrtime.bigint();
	let next = 0;
	await Promise.all(Array.from({ length: MINT_PARALLEL }, async () => {
		while (next < n) {
			next++;
			lines.push(await mintOne(ver.port, jar));
		}
	}));
	fs.writeFileSync(file, lines.join('\n') + '\n');
	return n / (Number(process.hrtime.bigint() - t0) / 1e9);
}

/* ---- oidc-provider ---- */

async function startOidc(keysDir) {
	const port = await freePort();
	const logFile = path.join(tmp, 'oidc-provider.log');
	const fd = fs.openSync(logFile, 'a');
	const proc = fork(path.join(HERE, 'auth-oidc.mjs'), [String(port), keysDir], { stdio: ['ignore', fd, fd, 'ipc'] });
	fs.closeSync(fd);
	const child = track('oidc-provider', proc);
	Object.assign(child, { logFile, port });
	const replies = [];
	let wake = null;
	proc.on('message', (m) => {
		replies.push(m);
		if (wake)
			wake();
	});
	child.next = async (timeoutMs = 120000) => {
		const deadline = Date.now() + timeoutMs;
		while (!replies.length) {
			if (child.exited)
				throw new Error(`oidc-provider exited (code ${child.code}, signal ${child.signal}):\n${tail(logFile)}`);
			if (Date.now() > deadline)
				throw new Error('oidc-provider did not answer in time');
			await Promise.race([new Promise((r) => { wake = r; }), sleep(200)]);
		}
		return replies.shift();
	};
	const m = await child.next(30000);
	if (!m.ready)
		throw new Error(`oidc-provider: unexpected first message ${JSON.stringify(m)}`);
	await waitReady(child, port, '/.well-known/openid-configuration');
	return child;
}

async function mintOidc(oidc, n, file) {
	const t0 = process.hrtime.bigint();
	oidc.proc.send({ cmd: 'mint', n, file });
	const m = await oidc.next();
	if (!m.ok)
		throw new Error(`oidc-provider could not mint codes: ${m.error}`);
	return n / (Number(process.hrtime.bigint() - t0) / 1e9);
}

/* ---- shared steps ---- */

async function exchange(port, tokenPath, body) {
	const r = await request(port, 'POST', tokenPath, { body });
	let j = null;
	try {
		j = JSON.parse(r.body.toString());
	} catch { /* reported below */ }
	if (r.status !== 200 || !j || !j.access_token)
		throw new Error(`POST ${tokenPath} answered ${r.status}: ${r.body.toString().slice(0, 300)}`);
	return j;
}

/* n refresh tokens, each the head of its own chain, into file. */
async function chains(n, mint, port, tokenPath, file) {
	const codes = path.join(tmp, `chain-codes-${port}.txt`);
	await mint(n, codes);
	const bodies = fs.readFileSync(codes, 'utf8').trim().split('\n');
	const toks = [];
	for (const b of bodies) {
		const j = await exchange(port, tokenPath, b);
		if (!j.refresh_token)
			throw new Error(`POST ${tokenPath}: no refresh_token for an offline_access grant`);
		toks.push(j.refresh_token);
	}
	fs.writeFileSync(file, toks.join('\n') + '\n');
}

function claims(jwt) {
	return JSON.parse(Buffer.from(jwt.split('.')[1], 'base64url').toString());
}
function header(jwt) {
	return JSON.parse(Buffer.from(jwt.split('.')[0], 'base64url').toString());
}

/* ---- the benchmark ---- */

async function main() {
	const m = machine();
	const up0 = uptime();
	for (const tool of ['wrk'])
		if (spawnSync(tool, ['-v']).error)
			throw new Error(`${tool} is not installed: run scripts/install-deps`);
	if (!fs.existsSync(VERANDA))
		throw new Error(`${VERANDA} does not exist: run 'make' first`);
	if (m.oidcProvider === '?')
		throw new Error('oidc-provider is not installed: run npm ci');
	tmp = fs.mkdtempSync(path.join(TMPDIR, 'veranda-auth-bench-'));
	log(`authorization benchmark: ${m.cores} cores (${m.model}), wrk ${m.wrk}, node ${m.node}, oidc-provider ${m.oidcProvider}`);
	log(`${ROUNDS} interleaved rounds of ${SECS} s per test; ${CONNS} connections for the token endpoint and the read; ${THREADS} wrk threads`);
	log(`uptime before: ${up0}`);
	log(`data directory under ${tmp} (${fsType(tmp)})${WORKERS.length ? `; veranda serve ${WORKERS.join(' ')}` : ''}`);

	/* Data: the demo people plus a few generated patients, one public app. */
	const data = path.join(tmp, 'data');
	await veranda(['init', '--data', data, '--log-level', 'warn'], 'init');
	await veranda(['seed', '--data', data, '--patients', String(PATIENTS), '--log-level', 'warn'], 'seed');
	await veranda(['client', 'add', '--data', data, '--client-id', CLIENT_ID, '--redirect-uri', REDIRECT, '--public',
		'--name', 'Benchmark', '--log-level', 'warn'], 'client add');
	/* codes must wait for their turn (the longest the server allows); tokens outlive the run */
	/*
	 * Three servers on one data directory: 'ver' as configured by default
	 * (audit included) for the token endpoint and sign-in; 'auth' and
	 * 'open' for the read, both with --audit off so that only the
	 * authorization differs between them (bench/audit-read.mjs measures the
	 * audit's cost).
	 */
	const ver = await startVeranda('veranda', data, ['--code-ttl', '600', '--access-token-ttl', '3600', ...WORKERS]);
	/* the read servers answer for the same base URL, which the token's aud names */
	const base = ['--base-url', `http://127.0.0.1:${ver.port}`];
	const auth = await startVeranda('veranda-read', data, ['--audit', 'off', ...base, ...WORKERS]);
	const open = await startVeranda('veranda-no-auth', data, ['--audit', 'off', '--fhir-auth=false', ...base, ...WORKERS]);
	const oidc = await startOidc(path.join(data, 'keys'));
	log(`veranda pid ${ver.pid} on 127.0.0.1:${ver.port}; for the read, --audit off: veranda pid ${auth.pid} on :${auth.port}, ` +
		`veranda --fhir-auth=false pid ${open.pid} on :${open.port}; oidc-provider pid ${oidc.pid} on :${oidc.port}`);

	const jar = await signIn(ver.port, 'alice');
	const vMint = (n, file) => mintVeranda(ver, jar, n, file);
	const oMint = (n, file) => mintOidc(oidc, n, file);

	/* Check both token endpoints answer alike: same grant, same formats. */
	const check = {};
	for (const [name, port, tokenPath, mint] of [['veranda', ver.port, '/oauth/token', vMint], ['oidc-provider', oidc.port, '/token', oMint]]) {
		const f = path.join(tmp, `check-${name}.txt`);
		await mint(1, f);
		const t = await exchange(port, tokenPath, fs.readFileSync(f, 'utf8').trim());
		const at = header(t.access_token), idt = header(t.id_token || 'e30.e30.');
		const c = claims(t.access_token);
		if (at.alg !== 'ES256' || (OPENID ? idt.alg !== 'RS256' : !!t.id_token) || !t.refresh_token || t.patient !== 'alice' || c.patient !== 'alice')
			throw new Error(`${name}: unexpected token response: access token ${JSON.stringify(at)} ${JSON.stringify(c)}, ` +
				`id token ${JSON.stringify(idt)}, refresh token ${t.refresh_token ? 'yes' : 'no'}, patient ${t.patient}`);
		const r = await exchange(port, tokenPath, new URLSearchParams({ grant_type: 'refresh_token', refresh_token: t.refresh_token,
			client_id: CLIENT_ID }).toString());
		if (!r.refresh_token || r.refresh_token === t.refresh_token)
			throw new Error(`${name}: the refresh did not rotate the refresh token`);
		/* Veranda leaves the id token out of refresh responses (OIDC Core 12.2); oidc-provider signs one */
		log(`${name}: refresh response ${r.id_token ? 'with' : 'without'} an id token`);
		check[name] = { token: t, at, c, bytes: JSON.stringify(t).length };
		log(`${name}: access token ${at.alg} ${at.typ || ''} (${t.access_token.length} bytes; claims ${Object.keys(c).join(' ')}), ` +
			`id token ${idt.alg}, response ${check[name].bytes} bytes, refresh rotates`);
	}

	/* The FHIR read: one of alice's Observations, with her patient/*.rs token and without any. */
	const bearer = check.veranda.token.access_token;
	let r = await request(ver.port, 'GET', '/fhir/Observation?patient=alice&_count=1',
		{ headers: { Authorization: `Bearer ${bearer}`, Accept: 'application/fhir+json' } });
	const obs = r.status === 200 ? JSON.parse(r.body.toString()).entry?.[0]?.resource : null;
	if (!obs)
		throw new Error(`no Observation of alice's found (${r.status}): ${r.body.toString().slice(0, 300)}`);
	const readPath = `/fhir/Observation/${obs.id}`;
	const withTok = await request(auth.port, 'GET', readPath, { headers: { Authorization: `Bearer ${bearer}`, Accept: 'application/fhir+json' } });
	const without = await request(open.port, 'GET', readPath, { headers: { Accept: 'application/fhir+json' } });
	const refused = await request(auth.port, 'GET', readPath, { headers: { Accept: 'application/fhir+json' } });
	if (withTok.status !== 200 || without.status !== 200 || !withTok.body.equals(without.body))
		throw new Error(`the read answers differ: ${withTok.status} with the token, ${without.status} without authorization`);
	if (refused.status !== 401)
		throw new Error(`the read without a token answered ${refused.status} on the server that requires one`);
	log(`read: GET ${readPath} (${withTok.body.length} bytes), scope "${check.veranda.c.scope}"; 401 without the token`);

	/*
	 * Sign-in: the double-submit CSRF pair, the same for every request, and
	 * the demo accounts in turn. One account checks one password at a time
	 * (the sign-in gate, docs/security.md), as many people signing in do not.
	 */
	const csrf = crypto.randomBytes(24).toString('base64url');
	const signinFile = path.join(tmp, 'signin.txt');
	const signinUsers = ['alice', 'bob', 'erin', 'frank', 'drsmith', 'sam', 'carol', 'admin'];
	fs.writeFileSync(signinFile, signinUsers.map((u) => `${new URLSearchParams({ username: u, password: PASSWORD, csrf })}\n`).join(''));
	for (const line of fs.readFileSync(signinFile, 'utf8').trim().split('\n')) {
		r = await request(ver.port, 'POST', '/oauth/login', { body: line, headers: { Cookie: `veranda-csrf=${csrf}` } });
		if (r.status !== 303 || !/\bveranda=/.test(String(r.headers['set-cookie'])))
			throw new Error(`sign-in with the CSRF pair answered ${r.status}: ${r.body.toString().slice(0, 300)}`);
	}

	const tokenLua = (file, tokenPath, mode) => ({ AUTH_MODE: mode, AUTH_FILE: file, AUTH_PATH: tokenPath, AUTH_EXPECT: '200',
		AUTH_CLIENT: CLIENT_ID });
	const sides = [
		{ key: 'veranda', name: 'veranda', server: ver, tokenPath: '/oauth/token', mint: vMint, best: 0, mintRates: [] },
		{ key: 'oidc', name: 'oidc-provider', server: oidc, tokenPath: '/token', mint: oMint, best: 0, mintRates: [] },
	];

	/* Warm-up, and a first rate for sizing the batches of codes. */
	for (const s of sides) {
		const f = path.join(tmp, `warm-${s.key}.txt`);
		const n = s.key === 'veranda' ? 600 : 300;
		s.mintRates.push(await s.mint(n, f));
		const w = await wrk({ label: `warm-up: ${s.name} code exchange`, server: s.server, path: s.tokenPath, conns: CONNS, secs: 2,
			lua: tokenLua(f, s.tokenPath, 'once') });
		s.best = w.rps;
	}
	await wrk({ label: 'warm-up: veranda read with token', server: auth, path: readPath, conns: CONNS, secs: 1,
		headers: [`Authorization: Bearer ${bearer}`, 'Accept: application/fhir+json'] });
	await wrk({ label: 'warm-up: veranda read, no authorization', server: open, path: readPath, conns: CONNS, secs: 1,
		headers: ['Accept: application/fhir+json'] });

	const runs = { vCode: [], oCode: [], vRefresh: [], oRefresh: [], readAuth: [], readOpen: [], readMixed: [], signin1: [], signin2: [] };
	for (let k = 1; k <= ROUNDS; k++) {
		log(`round ${k}/${ROUNDS}`);
		/* codes for this round: the best rate so far for SECS seconds, and a third more (twice as
		   many in the first round, whose estimate comes from a 2-second warm-up) */
		for (const s of sides) {
			s.codeFile = path.join(tmp, `codes-${s.key}-${k}.txt`);
			const n = Math.max(200, Math.ceil(s.best * SECS * (k === 1 ? 2 : 1.33)));
			const rate = await s.mint(n, s.codeFile);
			s.mintRates.push(rate);
			log(`${s.name}: ${fmtInt(n)} codes minted (${fmtInt(rate)}/s)`);
		}
		/* odd rounds Veranda first, even rounds the reference first, so neither always follows the other */
		const order = k % 2 ? sides : [...sides].reverse();
		for (const s of order) {
			const w = await wrk({ label: `${s.name} code exchange`, server: s.server, path: s.tokenPath, conns: CONNS,
				lua: tokenLua(s.codeFile, s.tokenPath, 'once') });
			s.best = Math.max(s.best, w.rps);
			runs[s.key === 'veranda' ? 'vCode' : 'oCode'].push(w);
			fs.rmSync(s.codeFile, { force: true });
		}
		for (const s of order) {
			const f = path.join(tmp, `chains-${s.key}-${k}.txt`);
			await chains(CONNS, s.mint, s.server.port, s.tokenPath, f);
			runs[s.key === 'veranda' ? 'vRefresh' : 'oRefresh'].push(await wrk({ label: `${s.name} refresh (${CONNS} chains)`,
				server: s.server, path: s.tokenPath, conns: CONNS, lua: tokenLua(f, s.tokenPath, 'refresh') }));
		}
		const reads = [
			() => wrk({ label: 'veranda read, bearer token', server: auth, path: readPath, conns: CONNS,
				headers: [`Authorization: Bearer ${bearer}`, 'Accept: application/fhir+json'] }).then((w) => runs.readAuth.push(w)),
			() => wrk({ label: 'veranda read, --fhir-auth=false', server: open, path: readPath, conns: CONNS,
				headers: ['Accept: application/fhir+json'] }).then((w) => runs.readOpen.push(w)),
		];
		for (const f of k % 2 ? reads : [...reads].reverse())
			await f();
		{
			/*
			 * The read with a token again, while the token endpoint refreshes
			 * tokens of other chains: what the verified-token cache costs when
			 * token traffic runs beside the reads (compare its CPU per read
			 * with the read alone).
			 */
			const f = path.join(tmp, `chains-mixed-${k}.txt`);
			await chains(CONNS, vMint, ver.port, '/oauth/token', f);
			const [rd] = await Promise.all([
				wrk({ label: 'veranda read with token, during refreshes', server: auth, path: readPath, conns: CONNS,
					headers: [`Authorization: Bearer ${bearer}`, 'Accept: application/fhir+json'] }),
				wrk({ label: 'veranda refresh, beside the reads', server: ver, path: '/oauth/token', conns: CONNS,
					lua: tokenLua(f, '/oauth/token', 'refresh') }),
			]);
			runs.readMixed.push(rd);
		}
		for (const [key, c] of [['signin1', CORES], ['signin2', 2 * CORES]])
			runs[key].push(await wrk({ label: `veranda password sign-in`, server: ver, path: '/oauth/login', conns: c,
				lua: { AUTH_MODE: 'repeat', AUTH_FILE: signinFile, AUTH_PATH: '/oauth/login', AUTH_EXPECT: '303',
					AUTH_COOKIE: `veranda-csrf=${csrf}` } }));
	}

	/* Still healthy, and sign-in still answers (no throttling of successful sign-ins). */
	r = await request(ver.port, 'GET', '/healthz');
	if (r.status !== 200)
		throw new Error(`veranda /healthz answered ${r.status} after the runs`);
	const up1 = uptime();
	log(`uptime after: ${up1}`);
	await stop(oidc);
	await stop(open);
	await stop(auth);
	await stop(ver);

	const best = (a) => a.reduce((x, y) => (y.rps > x.rps ? y : x));
	const medianCpu = (a) => median(a.map((w) => w.cpuMs).filter((x) => x != null));
	const row = (key, label, ref = null, goal = null, goalKind = 'ratio') => {
		const b = best(runs[key]);
		const out = { key, label, rps: b.rps, p50: b.p50, p99: b.p99, cpuMs: b.cpuMs, conns: b.conns,
			rounds: runs[key].map((w) => w.rps), failed: runs[key].reduce((n, w) => n + (w.bad || 0) + w.socketErrors, 0),
			short: runs[key].filter((w) => w.luaSecs != null && w.luaSecs < 0.8 * w.secs).length };
		if (ref) {
			out.ratio = b.rps / best(runs[ref]).rps;
			out.ref = ref;
			out.ratioRounds = runs[key].map((w, i) => w.rps / runs[ref][i].rps);
			out.cpuRatio = medianCpu(runs[key]) / medianCpu(runs[ref]);
		}
		if (goal != null)
			out.verdict = (goalKind === 'ratio' ? out.ratio : out.rps / CORES) >= goal ? 'meets goal' : 'below goal';
		out.goal = goal;
		return out;
	};
	const res = {
		started: new Date(T0).toISOString(), machine: m, secs: SECS, rounds: ROUNDS, conns: CONNS, threads: THREADS,
		uptime: [up0, up1], dataFs: fsType(tmp), workers: WORKERS.join(' '), readPath, readBytes: withTok.body.length, scope: check.veranda.c.scope,
		responseBytes: { veranda: check.veranda.bytes, oidc: check['oidc-provider'].bytes },
		mintRates: { veranda: sides[0].mintRates, oidc: sides[1].mintRates },
		rows: [
			row('oCode', 'oidc-provider: authorization_code'),
			row('vCode', 'Veranda: authorization_code', 'oCode', GOAL_TOKEN),
			row('oRefresh', 'oidc-provider: refresh_token'),
			row('vRefresh', 'Veranda: refresh_token', 'oRefresh', GOAL_TOKEN),
			row('readOpen', 'Veranda read, --fhir-auth=false'),
			row('readAuth', 'Veranda read, bearer token', 'readOpen', GOAL_READ),
			row('readMixed', 'Veranda read, token, while refreshing', 'readAuth'),
			row('signin1', `Veranda sign-in, ${CORES} concurrent`, null, GOAL_SIGNIN_PER_CORE, 'core'),
			row('signin2', `Veranda sign-in, ${2 * CORES} concurrent`, null, GOAL_SIGNIN_PER_CORE, 'core'),
		],
		seconds: (Date.now() - T0) / 1000,
	};
	const text = summary(res);
	console.log(`\n${text}`);
	fs.mkdirSync(path.join(HERE, 'results'), { recursive: true });
	const out = OPENID ? 'auth' : 'auth-no-openid';
	fs.writeFileSync(path.join(HERE, 'results', `${out}.txt`), text + '\n');
	fs.writeFileSync(path.join(HERE, 'results', `${out}.json`), JSON.stringify({ ...res, runs }, (k, v) => (k === 'raw' ? undefined : v), 2) + '\n');
	return 0;
}

function summary(res) {
	const m = res.machine;
	const L = [];
	L.push(`Veranda authorization benchmark, ${res.started}`);
	L.push(`machine: ${m.cores} cores, ${m.model}, ${m.memGiB} GiB, Linux ${m.kernel}; wrk ${m.wrk}, node ${m.node}, oidc-provider ${m.oidcProvider}`);
	L.push(`wrk: ${res.threads} threads, ${res.rounds} interleaved rounds of ${res.secs} s per test (best round shown, then every round); ` +
		`token endpoint and read at ${res.conns} connections; loopback, wrk on the same cores`);
	L.push(`grant: public client, PKCE S256, scope "${SCOPE}"; access tokens ES256 JWTs, id tokens RS256, refresh tokens rotated on every use`);
	L.push(`veranda: data directory on ${res.dataFs}${res.workers ? `, serve ${res.workers}` : ', serve with its default workers'}; ` +
		'token endpoint and sign-in with the default audit (sync), the two read servers with --audit off; ' +
		'oidc-provider: one Node process, in-memory store');
	L.push(`uptime before: ${res.uptime[0]}`);
	L.push(`uptime after:  ${res.uptime[1]}`);
	L.push('');
	const head = ['test', 'conns', 'per s', 'p50', 'p99', 'CPU/req', 'per CPU-s', 'ratio', 'goal', 'verdict', 'failed', 'per s by round'];
	const rows = res.rows.map((r) => {
		let goal = '';
		if (r.goal != null)
			goal = r.key.startsWith('signin') ? `≥ ${r.goal}/s a core` : `≥ ${r.goal}×`;
		let ratio = r.ratio != null ? fmtRatio(r.ratio) : '';
		if (r.key.startsWith('signin'))
			ratio = `${(r.rps / m.cores).toFixed(1)}/s a core`;
		return [r.label, String(r.conns), fmtInt(r.rps), fmtMs(r.p50), fmtMs(r.p99), r.cpuMs == null ? '-' : fmtMs(r.cpuMs),
			r.cpuMs ? fmtInt(1000 / r.cpuMs) : '-', ratio, goal, r.verdict || '', String(r.failed) + (r.short ? ` (${r.short} short)` : ''),
			r.rounds.map(fmtInt).join(' · ')];
	});
	const w = head.map((h, k) => Math.max(h.length, ...rows.map((r) => [...r[k]].length)));
	const line = (r) => r.map((c, k) => (k >= 1 && k <= 6 ? c.padStart(w[k]) : c.padEnd(w[k]))).join('  ').trimEnd();
	L.push(line(head));
	L.push(line(w.map((n) => '-'.repeat(n))));
	for (const r of rows)
		L.push(line(r));
	L.push('');
	for (const r of res.rows.filter((x) => x.ratioRounds))
		L.push(`${r.label} / ${res.rows.find((x) => x.key === r.ref).label}: by round ${r.ratioRounds.map(fmtRatio).join(' · ')}` +
			` (median ${fmtRatio(median(r.ratioRounds))}; CPU per request ${fmtRatio(r.cpuRatio)} of the reference's)`);
	L.push('oidc-provider is one Node process, so it uses at most one core; Veranda uses every core (here shared with wrk)');
	const mr = (a) => a.map(fmtInt).join(' · ');
	L.push(`codes minted per second: Veranda ${mr(res.mintRates.veranda)} (GET /oauth/authorize + POST /oauth/decide, ` +
		`${MINT_PARALLEL} at a time, signed in); oidc-provider ${mr(res.mintRates.oidc)} (in-process models)`);
	L.push(`token responses: Veranda ${res.responseBytes.veranda} bytes, oidc-provider ${res.responseBytes.oidc} bytes; ` +
		`read: GET ${res.readPath}, ${res.readBytes} bytes, token scope "${res.scope}"`);
	L.push('CPU/req: the server\'s user + system CPU over the run (/proc) divided by its successful requests; per CPU-s: ' +
		'requests per second of server CPU (1000 / CPU/req), what one core would carry with nothing else on it; ' +
		'"short": runs whose codes ran out before the end (the rate is over the time they lasted)');
	L.push(`total time ${res.seconds.toFixed(0)} s`);
	return L.join('\n');
}

let status = 1;
try {
	status = await main();
} catch (e) {
	if (procs.interrupted)
		await new Promise(() => {}); /* the signal handler exits */
	console.error(`\nbench: FAILED: ${e.stack || e.message}`);
	status = 1;
} finally {
	await cleanup();
}
process.exit(status);
