// run.mjs - Veranda's benchmark harness (`make bench`, or bench/run after `make`).
//
// 1. Reference ceiling: nginx on loopback serving the same Observation bytes
//    as a static file, and `return 200`.
// 2. Veranda under wrk: GET /fhir/Observation/{id}, GET /healthz,
//    POST /fhir/Observation; requests/s, p50, p99 and the ratio to nginx.
// 3. Keep-alive check: N keep-alive connections must carry M requests
//    (idle and under load); exits non-zero when they do not.
// 4. Import throughput: `veranda import` of ~50,000 resources.
// 5. Search: bench/search.mjs (BENCH_SEARCH=0 skips it; --search-only runs it alone).
//
// Everything runs on 127.0.0.1, in a temporary directory that is removed at
// the end; every process started here is stopped by its PID.  Goals that are
// not met are reported as "below goal", not as failures: the exit status is
// non-zero only when keep-alive fails or something crashes.
//
// Environment: BENCH_DURATION (seconds of wrk per test point, default 10),
// BENCH_CONNECTIONS (default "32,64"), BENCH_THREADS (wrk threads, default 2),
// BENCH_ROUNDS (interleaved rounds per test point, default 3; the best is kept),
// BENCH_IMPORT (resources to import, default 50000), VERANDA_BIN (default
// build/veranda), BENCH_KEEP_TMP=1 keeps the temporary directory.
// Flag --nginx-only runs the nginx part alone (a self-test of the harness).
import { spawn, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

import { generate, observation, observationId, patientId, postBody } from './gen-ndjson.mjs';
import { describe, keepAliveCheck } from './keepalive.mjs';
import { fmtMs, freePort, processes, tail, toMs } from './lib.mjs';

const HERE = path.dirname(fileURLToPath(import.meta.url));
const ROOT = path.resolve(HERE, '..');
const VERANDA = path.resolve(process.env.VERANDA_BIN || path.join(ROOT, 'build/veranda'));
const DURATION = Number(process.env.BENCH_DURATION || 10);
const CONNS = (process.env.BENCH_CONNECTIONS || '32,64').split(',').map(Number).filter((n) => n > 0);
const THREADS = Number(process.env.BENCH_THREADS || 2);
const ROUNDS = Math.max(1, Number(process.env.BENCH_ROUNDS || 3));
const IMPORT_N = Number(process.env.BENCH_IMPORT || 50000);
const NGINX_ONLY = process.argv.includes('--nginx-only');
const SEARCH_ONLY = process.argv.includes('--search-only');
const GOAL_READ = 0.5, GOAL_HEALTHZ = 0.8, GOAL_IMPORT = 5000;
const KA_SOCKETS = 8, KA_REQUESTS = 400;

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const T0 = Date.now();
const elapsed = () => `${((Date.now() - T0) / 1000).toFixed(0).padStart(3)} s`;
const log = (msg) => console.log(`[${elapsed()}] ${msg}`);

/* ---- processes: every child is tracked and stopped by PID ---- */

let tmp = null;
const procs = processes({ log, tmpDir: () => tmp });
const { track, start, runCapture, stop, cleanup } = procs;


/* ---- helpers ---- */

function request(port, method, p, body = null, headers = {}) {
	return new Promise((resolve, reject) => {
		const h = { Accept: 'application/fhir+json', ...headers };
		if (body != null)
			h['Content-Length'] = Buffer.byteLength(body);
		const req = http.request({ host: '127.0.0.1', port, method, path: p, headers: h, agent: false }, (res) => {
			const chunks = [];
			res.on('data', (d) => chunks.push(d));
			res.on('end', () => resolve({ status: res.statusCode, headers: res.headers, body: Buffer.concat(chunks) }));
			res.on('error', reject);
		});
		req.setTimeout(5000, () => req.destroy(new Error('timeout')));
		req.on('error', reject);
		req.end(body ?? undefined);
	});
}

async function waitReady(child, port, p, timeoutMs = 15000) {
	const deadline = Date.now() + timeoutMs;
	let last = '';
	while (Date.now() < deadline) {
		if (child.exited)
			throw new Error(`${child.name} exited (code ${child.code}, signal ${child.signal}) before it was ready:\n` +
				tail(child.logFile));
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

/* TIME-WAIT sockets on a port: connections closed recently (null when ss is unavailable). */
function timeWait(port) {
	const r = spawnSync('ss', ['-Htan', 'state', 'time-wait', `( sport = :${port} or dport = :${port} )`],
		{ encoding: 'utf8' });
	if (r.status !== 0)
		return null;
	return r.stdout.split('\n').filter((l) => l.trim()).length;
}

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
	return {
		rps: num(/Requests\/sec:\s+([\d.]+)/),
		requests: num(/(\d+) requests in/),
		p50: pct(50),
		p99: pct(99),
		non2xx: num(/Non-2xx or 3xx responses: (\d+)/) || 0,
		socketErrors: se ? se.slice(1).map(Number).reduce((a, b) => a + b, 0) : 0,
		socketDetail: se ? se[0] : '',
	};
}

/* One wrk run; throws when wrk fails or the server under test died. */
async function wrk({ label, server, port, path: p, conns, duration = DURATION, script = null, env = {} }) {
	const args = ['-t', String(Math.min(THREADS, conns)), '-c', String(conns), '-d', `${duration}s`,
		'--latency', '--timeout', '5s', '-H', 'Accept: application/fhir+json'];
	if (script)
		args.push('-s', script);
	args.push(`http://127.0.0.1:${port}${p}`);
	const tw0 = timeWait(port);
	const r = await runCapture(`wrk ${label}`, 'wrk', args, { ...process.env, ...env });
	const tw1 = timeWait(port);
	if (server && server.exited)
		throw new Error(`${server.name} died during "${label}" (code ${server.code}, signal ${server.signal}):\n` +
			tail(server.logFile));
	if (r.code !== 0 || r.error)
		throw new Error(`wrk failed for "${label}" (exit ${r.code}${r.error ? `, ${r.error.message}` : ''}):\n${r.out}${r.err}`);
	const w = parseWrk(r.out);
	if (!w.rps || w.p50 == null || w.p99 == null)
		throw new Error(`could not read wrk's output for "${label}":\n${r.out}${r.err}`);
	w.closes = tw0 == null || tw1 == null ? null : Math.max(0, tw1 - tw0);
	w.label = label;
	w.conns = conns;
	w.raw = r.out;
	return w;
}

const fmtInt = (n) => Math.round(n).toLocaleString('en-US');
const fmtRatio = (r) => `${r.toFixed(r < 0.1 ? 3 : 2)}×`;

function machine() {
	let model = 'unknown';
	try {
		const m = fs.readFileSync('/proc/cpuinfo', 'utf8').match(/^model name\s*:\s*(.+)$/m);
		if (m)
			model = m[1].trim();
	} catch { /* not Linux */ }
	const v = (cmd, args, re) => {
		const r = spawnSync(cmd, args, { encoding: 'utf8' });
		const s = `${r.stdout || ''}${r.stderr || ''}`;
		const m = s.match(re);
		return m ? m[1] : '?';
	};
	return {
		cores: os.availableParallelism ? os.availableParallelism() : os.cpus().length,
		model,
		kernel: os.release(),
		memGiB: (os.totalmem() / 2 ** 30).toFixed(0),
		wrk: v('wrk', ['-v'], /wrk (\S+)/),
		nginx: v('nginx', ['-v'], /nginx\/(\S+)/),
		node: process.versions.node,
	};
}

/* ---- nginx ---- */

async function startNginx(dir, www) {
	const port = await freePort();
	const cores = os.availableParallelism ? os.availableParallelism() : os.cpus().length;
	for (const d of ['client_body', 'proxy', 'fastcgi', 'uwsgi', 'scgi'])
		fs.mkdirSync(path.join(dir, d), { recursive: true });
	const conf = `# generated by bench/run.mjs
${process.getuid && process.getuid() === 0 ? 'user root;\n' : ''}worker_processes ${cores};
daemon off;
pid ${dir}/nginx.pid;
error_log ${dir}/error.log warn;
events { worker_connections 4096; }
http {
	access_log off;
	# the strongest plain setting for one small file: no open()/fstat() per
	# request, and read() beats sendfile() at this size
	sendfile off;
	open_file_cache max=1000 inactive=60s;
	open_file_cache_valid 60s;
	keepalive_requests 10000000;
	keepalive_timeout 75s;
	client_body_temp_path ${dir}/client_body;
	proxy_temp_path ${dir}/proxy;
	fastcgi_temp_path ${dir}/fastcgi;
	uwsgi_temp_path ${dir}/uwsgi;
	scgi_temp_path ${dir}/scgi;
	types { }
	default_type "application/fhir+json; charset=utf-8";
	server {
		listen 127.0.0.1:${port};
		root ${www};
		location = /ok { return 200; }
	}
}
`;
	const confFile = path.join(dir, 'nginx.conf');
	fs.writeFileSync(confFile, conf);
	const child = start('nginx', 'nginx', ['-p', dir, '-c', confFile, '-e', path.join(dir, 'error.log')],
		path.join(dir, 'nginx.out'));
	child.logFile = path.join(dir, 'error.log');
	child.port = port;
	await waitReady(child, port, '/ok');
	return child;
}

/* ---- veranda ---- */

async function veranda(args, what) {
	const r = await runCapture(`veranda ${args[0]}`, VERANDA, args);
	if (r.code !== 0 || r.error)
		throw new Error(`${what}: veranda ${args.join(' ')} exited ${r.code ?? r.signal}${r.error ? ` (${r.error.message})` : ''}:\n${r.out}${r.err}`);
	return r;
}

async function startVeranda(data, extra = []) {
	const port = await freePort();
	const logFile = path.join(tmp, `veranda-${port}.log`);
	/* the read and search figures are without authorization (see the auth benchmark for its cost) */
	const child = start('veranda serve', VERANDA, ['serve', '--data', data, '--listen', `127.0.0.1:${port}`,
		'--log-level', 'warn', '--fhir-auth=false', ...extra], logFile);
	child.logFile = logFile;
	child.port = port;
	await waitReady(child, port, '/healthz');
	return child;
}

/* Row counts of the search index and compartment tables (null when sqlite3 is unavailable). */
function indexRows(db) {
	const q = (sql) => spawnSync('sqlite3', ['-readonly', '-batch', '-noheader', db, sql], { encoding: 'utf8' });
	const t = q("SELECT name FROM sqlite_master WHERE type = 'table' AND (name LIKE 'ix\\_%' ESCAPE '\\' OR name LIKE '%compartment%' OR name = 'resource') ORDER BY name");
	if (t.status !== 0 || !t.stdout.trim())
		return null;
	const names = t.stdout.trim().split('\n');
	const c = q(names.map((n) => `SELECT '${n}', count(*) FROM "${n}"`).join(' UNION ALL ') + ';');
	if (c.status !== 0)
		return null;
	return c.stdout.trim().split('\n').map((l) => l.split('|')).map(([n, k]) => [n, Number(k)]);
}

/* ---- the benchmark ---- */

async function main() {
	const m = machine();
	const load0 = os.loadavg();
	tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'veranda-bench-'));
	if (SEARCH_ONLY)
		return searchPart();
	log(`Veranda benchmark: ${m.cores} cores (${m.model}), wrk ${m.wrk}, nginx ${m.nginx}, node ${m.node}`);
	log(`wrk: ${THREADS} threads, ${CONNS.join(' and ')} connections, ${DURATION} s per test in ${ROUNDS} interleaved rounds; load average ${load0.map((x) => x.toFixed(2)).join(' ')}`);
	for (const tool of ['wrk', 'nginx'])
		if (spawnSync(tool, ['-v']).error)
			throw new Error(`${tool} is not installed: run scripts/install-deps`);

	const results = { machine: m, started: new Date().toISOString(), duration: DURATION, threads: THREADS,
		rounds: ROUNDS, roundSecs: Math.max(2, Math.round(DURATION / ROUNDS)),
		runs: [], keepalive: [], import: null, notes: [] };
	let ver = null, verSync = null, obsId = null, obsBytes;
	const obsPath = () => `/fhir/Observation/${obsId}`;

	/* Veranda: a data directory with a few hundred resources. */
	if (!NGINX_ONLY) {
		if (!fs.existsSync(VERANDA))
			throw new Error(`${VERANDA} does not exist: run 'make' first`);
		const data = path.join(tmp, 'data');
		await veranda(['init', '--data', data, '--log-level', 'warn'], 'init');
		const seedFile = path.join(tmp, 'seed.ndjson');
		const g = generate(seedFile, 400, 20, 'b', 7);
		await veranda(['import', '--data', data, '--log-level', 'warn', seedFile], 'loading the benchmark data');
		log(`data: ${g.patients} Patients and ${g.observations} Observations imported`);
		/*
		 * The figures of the HTTP and storage path are taken with the audit
		 * log off; the same read on a second server with the default audit
		 * mode (sync) shows what auditing costs (bench/audit-read.mjs
		 * measures that against its own goal).
		 */
		ver = await startVeranda(data, ['--audit', 'off']);
		verSync = await startVeranda(data, ['--node-id', 'bench-run-sync']);
		obsId = observationId('b', 190);
		const r = await request(ver.port, 'GET', obsPath());
		if (r.status !== 200)
			throw new Error(`GET ${obsPath()} answered ${r.status}: ${r.body.toString().slice(0, 300)}`);
		obsBytes = r.body;
		log(`veranda serve pid ${ver.pid} on 127.0.0.1:${ver.port}; Observation/${obsId} is ${obsBytes.length} bytes`);
	} else {
		obsId = 'x';
		obsBytes = Buffer.from(JSON.stringify(observation('b', 1, patientId('b', 1), () => 0.42)));
	}

	/* nginx serving the same bytes. */
	const nginxDir = path.join(tmp, 'nginx');
	const www = path.join(nginxDir, 'www');
	fs.mkdirSync(path.join(www, 'fhir', 'Observation'), { recursive: true });
	fs.writeFileSync(path.join(www, 'fhir', 'Observation', obsId), obsBytes);
	const ngx = await startNginx(nginxDir, www);
	{
		const r = await request(ngx.port, 'GET', obsPath());
		if (r.status !== 200 || !r.body.equals(obsBytes))
			throw new Error(`nginx does not serve the Observation bytes (status ${r.status})`);
	}
	log(`nginx pid ${ngx.pid} on 127.0.0.1:${ngx.port} (${m.cores} workers)`);

	const postFile = path.join(tmp, 'post.json');
	fs.writeFileSync(postFile, postBody(patientId('b', 3)));
	const postScript = path.join(HERE, 'post.lua');
	const postEnv = { VERANDA_BENCH_BODY: postFile };
	let keepAliveFailed = false;

	/* Keep-alive, idle and under load (the load run doubles as warm-up). */
	const kaCases = ver ? [
		{ name: `GET ${'/fhir/Observation/{id}'}`, path: obsPath(), assert: true },
		{ name: 'GET /healthz', path: '/healthz', assert: true },
		{ name: 'POST /fhir/Observation', path: '/fhir/Observation', method: 'POST',
			body: fs.readFileSync(postFile, 'utf8'), headers: { 'Content-Type': 'application/fhir+json' }, assert: true },
		{ name: 'GET (404) /fhir/Observation/{missing}', path: '/fhir/Observation/does-not-exist', assert: false },
	] : [{ name: 'GET nginx /ok', path: '/ok', assert: true }];
	const kaPort = ver ? ver.port : ngx.port;
	const runKa = async (when, cases) => {
		for (const k of cases) {
			const r = await keepAliveCheck({ url: `http://127.0.0.1:${kaPort}${k.path}`, method: k.method || 'GET',
				body: k.body ?? null, headers: k.headers || {}, sockets: KA_SOCKETS, requests: KA_REQUESTS });
			const verdict = r.ok ? 'OK' : k.assert ? 'FAIL' : 'WARN';
			if (!r.ok && k.assert)
				keepAliveFailed = true;
			const text = `keep-alive ${when}, ${k.name}: ${describe(r).replace(/^(OK|FAIL)/, verdict)}`;
			results.keepalive.push({ when, name: k.name, verdict, ...r, text });
			log(text);
		}
	};
	await runKa('idle', kaCases);
	{
		const loadConns = Math.max(...CONNS);
		const loadSecs = Math.max(3, Math.min(6, DURATION));
		const load = wrk({ label: 'warm-up load', server: ver || ngx, port: kaPort, path: ver ? obsPath() : '/ok',
			conns: loadConns, duration: loadSecs });
		await sleep(1000);
		await runKa(`under load (${loadConns} wrk connections)`, kaCases.filter((k) => k.assert));
		const w = await load;
		log(`warm-up: ${fmtInt(w.rps)} req/s`);
	}

	/*
	 * wrk runs.  Each test point gets DURATION seconds, split into ROUNDS
	 * rounds; the rounds are interleaved (nginx, veranda, nginx, ...) so that
	 * drift in the machine's load hits both sides alike, and the best round
	 * of each test is the one reported (the least disturbed by neighbours).
	 */
	const roundSecs = Math.max(2, Math.round(DURATION / ROUNDS));
	for (const c of CONNS) {
		const plan = [
			{ key: 'nginx-file', label: 'nginx static file', server: ngx, port: ngx.port, path: obsPath() },
			{ key: 'read', label: 'veranda GET /fhir/Observation/{id}', server: ver, path: obsPath(), ref: 'nginx-file', goal: GOAL_READ },
			{ key: 'read-sync', label: 'the same GET, audit sync (default)', server: verSync, path: obsPath(), ref: 'nginx-file' },
			{ key: 'nginx-ok', label: 'nginx return 200', server: ngx, port: ngx.port, path: '/ok' },
			{ key: 'healthz', label: 'veranda GET /healthz', server: ver, path: '/healthz', ref: 'nginx-ok', goal: GOAL_HEALTHZ },
			{ key: 'post', label: 'veranda POST /fhir/Observation', server: ver, path: '/fhir/Observation', ref: 'nginx-file',
				script: postScript, env: postEnv },
		].filter((s) => s.server);
		const rounds = {};
		for (let k = 1; k <= ROUNDS; k++) {
			for (const s of plan) {
				const w = await wrk({ label: s.label, server: s.server, port: s.port ?? s.server.port, path: s.path, conns: c,
					duration: roundSecs, script: s.script, env: s.env });
				(rounds[s.key] ??= []).push(w);
				const extra = [];
				if (w.non2xx)
					extra.push(`${w.non2xx} non-2xx`);
				if (w.socketErrors)
					extra.push(w.socketDetail);
				if (w.closes != null && w.closes > 4 * c)
					extra.push(`${w.closes} connections closed during the run: keep-alive broken under load?`);
				log(`${s.label.padEnd(36)} c=${String(c).padStart(3)} round ${k}/${ROUNDS}  ${fmtInt(w.rps).padStart(8)} req/s` +
					`  p50 ${fmtMs(w.p50)}  p99 ${fmtMs(w.p99)}${extra.length ? `  [${extra.join('; ')}]` : ''}`);
			}
		}
		const best = {};
		for (const s of plan) {
			const all = rounds[s.key];
			const w = { ...all.reduce((a, b) => (b.rps > a.rps ? b : a)) };
			w.key = s.key;
			w.rounds = all.map((r) => r.rps);
			w.non2xx = all.reduce((n, r) => n + r.non2xx, 0);
			w.socketErrors = all.reduce((n, r) => n + r.socketErrors, 0);
			w.closes = all.some((r) => r.closes == null) ? null : Math.max(...all.map((r) => r.closes));
			w.goal = s.goal ?? null;
			if (s.ref && best[s.ref]) {
				w.ratio = w.rps / best[s.ref].rps;
				w.ref = s.ref;
			}
			best[s.key] = w;
			results.runs.push(w);
			if (w.ratio != null)
				log(`${s.label.padEnd(36)} c=${String(c).padStart(3)} best ${fmtInt(w.rps)} req/s = ${fmtRatio(w.ratio)} ` +
					`${s.ref === 'nginx-ok' ? 'nginx return 200' : 'nginx static file'}`);
		}
	}

	if (ver) {
		const r = await request(ver.port, 'GET', '/healthz');
		if (r.status !== 200)
			throw new Error(`veranda /healthz answered ${r.status} after the runs`);
	}
	await stop(ngx);
	if (verSync) {
		await stop(verSync);
		const errs = tail(verSync.logFile, 5);
		if (errs)
			results.notes.push(`veranda serve (audit sync) log (last lines):\n${errs}`);
	}
	if (ver) {
		await stop(ver);
		if (ver.code !== 0 && ver.signal !== 'SIGTERM')
			results.notes.push(`veranda serve exited with ${ver.code ?? ver.signal} on SIGTERM`);
		const errs = tail(ver.logFile, 5);
		if (errs)
			results.notes.push(`veranda serve log (last lines):\n${errs}`);
	}

	/* Import throughput. */
	if (!NGINX_ONLY && IMPORT_N > 0) {
		const file = path.join(tmp, 'import.ndjson');
		const patients = Math.max(1, Math.round(IMPORT_N / 50));
		const g = generate(file, IMPORT_N, patients, 'i', 20240601);
		const data = path.join(tmp, 'import-data');
		await veranda(['init', '--data', data, '--log-level', 'warn'], 'init for import');
		log(`import: ${g.patients} Patients + ${g.observations} Observations, ${(g.bytes / 2 ** 20).toFixed(1)} MiB NDJSON`);
		const t0 = process.hrtime.bigint();
		const r = await runCapture('veranda import', VERANDA, ['import', '--data', data, '--log-level', 'warn', file]);
		const secs = Number(process.hrtime.bigint() - t0) / 1e9;
		if (r.error || (r.code !== 0 && r.code !== 3))
			throw new Error(`veranda import exited ${r.code ?? r.signal}${r.error ? ` (${r.error.message})` : ''}:\n${r.out}\n${r.err.slice(0, 4000)}`);
		const mm = r.out.match(/imported (\d+) of (\d+) resources .* in ([\d.]+) s \((\d+) resources\/s\); (\d+) rejected/);
		const imported = mm ? Number(mm[1]) : IMPORT_N;
		const imp = { total: IMPORT_N, imported, rejected: mm ? Number(mm[5]) : null, wallSecs: secs,
			rate: imported / secs, ownSecs: mm ? Number(mm[3]) : null, ownRate: mm ? Number(mm[4]) : null,
			goal: GOAL_IMPORT, bytes: g.bytes };
		imp.index = indexRows(path.join(data, 'veranda.db'));
		results.import = imp;
		log(`import: ${fmtInt(imported)} of ${fmtInt(IMPORT_N)} resources in ${secs.toFixed(2)} s wall = ${fmtInt(imp.rate)} resources/s` +
			`${imp.ownRate != null ? ` (veranda's own figure: ${fmtInt(imp.ownRate)}/s over ${imp.ownSecs} s)` : ''}`);
		if (imp.rejected)
			results.notes.push(`import rejected ${imp.rejected} resources; first reasons:\n` +
				r.err.split('\n').filter((l) => l.startsWith('rejected')).slice(0, 5).join('\n'));
		if (imp.index)
			log(`import: rows written: ${imp.index.map(([n, k]) => `${n} ${fmtInt(k)}`).join(', ')}`);
	}

	results.loadavg = [load0, os.loadavg()];
	results.seconds = (Date.now() - T0) / 1000;
	const text = summary(results, keepAliveFailed);
	console.log(`\n${text}`);
	fs.mkdirSync(path.join(HERE, 'results'), { recursive: true });
	fs.writeFileSync(path.join(HERE, 'results', 'latest.txt'), text + '\n');
	fs.writeFileSync(path.join(HERE, 'results', 'latest.json'),
		JSON.stringify(results, (k, v) => (k === 'raw' ? undefined : v), 2) + '\n');
	const searchStatus = await searchPart();
	return keepAliveFailed ? 1 : searchStatus;
}

/* The search benchmark (bench/search.mjs), with this file's helpers; BENCH_SEARCH=0 skips it. */
async function searchPart() {
	if (NGINX_ONLY || process.env.BENCH_SEARCH === '0')
		return 0;
	const { searchBench } = await import('./search.mjs');
	return searchBench({ VERANDA, tmp, log, runCapture, request, stop, wrk, startNginx, startVeranda, veranda,
		machine, fmtMs, fmtInt, fmtRatio });
}

function summary(res, kaFailed) {
	const m = res.machine;
	const L = [];
	L.push(`Veranda benchmark, ${res.started}`);
	L.push(`machine: ${m.cores} cores, ${m.model}, ${m.memGiB} GiB, Linux ${m.kernel}; wrk ${m.wrk}, nginx ${m.nginx}, node ${m.node}`);
	L.push(`wrk: ${res.threads} threads, ${res.rounds} interleaved rounds of ${res.roundSecs} s per test point (best round shown), on the same machine as the server (loopback)`);
	L.push(`load average: before ${res.loadavg[0].map((x) => x.toFixed(2)).join(' ')}, after ${res.loadavg[1].map((x) => x.toFixed(2)).join(' ')}`);
	if (res.runs.some((w) => w.key === 'read-sync'))
		L.push('veranda: serve --fhir-auth=false --audit off, except "audit sync (default)": a second server on the same data with the default audit mode, ' +
			'where every read waits until its audit record is on disk (its goal: node bench/audit-read.mjs)');
	L.push('');
	const head = ['test', 'conns', 'req/s', 'p50', 'p99', 'ratio', 'goal', 'verdict', 'errors', 'req/s by round'];
	const rows = res.runs.map((w) => {
		const refName = w.ref === 'nginx-ok' ? 'return 200' : w.ref ? 'nginx file' : '';
		let verdict = '';
		if (w.goal != null && w.ratio != null)
			verdict = w.ratio >= w.goal ? 'meets goal' : 'below goal';
		const errs = [];
		if (w.non2xx)
			errs.push(`${w.non2xx} non-2xx`);
		if (w.socketErrors)
			errs.push(`${w.socketErrors} socket`);
		if (w.closes != null && w.closes > 4 * w.conns)
			errs.push(`${w.closes} closes`);
		return [w.label, String(w.conns), fmtInt(w.rps), fmtMs(w.p50), fmtMs(w.p99),
			w.ratio != null ? `${fmtRatio(w.ratio)} ${refName}` : '', w.goal != null ? `≥ ${w.goal}×` : '',
			verdict, errs.join(', ') || '0', (w.rounds || []).map(fmtInt).join(' ')];
	});
	if (res.import) {
		const i = res.import;
		rows.push([`veranda import (${fmtInt(i.total)} resources)`, '-', `${fmtInt(i.rate)}/s`, '-', '-', '',
			`≥ ${fmtInt(i.goal)}/s`, i.rate >= i.goal ? 'meets goal' : 'below goal',
			i.rejected ? `${i.rejected} rejected` : '0', '']);
	}
	const w = head.map((h, k) => Math.max(h.length, ...rows.map((r) => [...r[k]].length)));
	const line = (r) => r.map((c, k) => (k >= 1 && k <= 4 ? c.padStart(w[k]) : c.padEnd(w[k]))).join('  ').trimEnd();
	L.push(line(head));
	L.push(line(w.map((n) => '-'.repeat(n))));
	for (const r of rows)
		L.push(line(r));
	L.push('');
	for (const k of res.keepalive)
		L.push(k.text);
	L.push(`keep-alive: ${kaFailed ? 'FAIL' : 'OK'} (${KA_SOCKETS} sockets for ${KA_REQUESTS} requests per check)`);
	if (res.import) {
		const i = res.import;
		L.push(`import: ${fmtInt(i.imported)} resources in ${i.wallSecs.toFixed(2)} s wall clock (process start to exit)` +
			`${i.ownRate != null ? `; veranda reports ${fmtInt(i.ownRate)}/s over ${i.ownSecs} s` : ''}`);
		if (i.index)
			L.push(`import rows: ${i.index.map(([n, k]) => `${n} ${fmtInt(k)}`).join(', ')}`);
	}
	for (const n of res.notes)
		L.push(`note: ${n}`);
	L.push(`wrk shares the machine's ${m.cores} cores with the server under test (and with whatever else runs there): read the ratios, not the absolute figures.`);
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
