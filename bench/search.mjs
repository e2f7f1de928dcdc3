// search.mjs - the search part of Veranda's benchmark harness.
//
// Run by bench/run.mjs after its other parts (BENCH_SEARCH=0 skips it), or
// alone with `bench/run --search-only` (= `node bench/search.mjs`).  It uses
// run.mjs's helpers (process tracking, nginx, wrk), passed to searchBench().
//
// 1. Data: `veranda seed --patients BENCH_PATIENTS` (default 10000), cached in
//    bench/results/seed-<N>/ (git-ignored) so that reruns skip the seeding;
//    seed time, resources/s, database size (veranda.db + WAL), resources.
// 2. Four searches, with a patient drawn at random per request by
//    bench/search.lua: Observation labs (_sort=-date, _count=20), Patient by
//    a 3-letter name prefix, upcoming Appointments, Patient/X/$everything.
//    A sample of each is checked first (200, a searchset with entries).
// 3. Per search: latency at one client (wrk -t1 -c1), and throughput at 32
//    connections against nginx serving a response of the median size as a
//    static file, in interleaved rounds (best round kept).
//
// Environment: BENCH_PATIENTS (default 10000), BENCH_SEED (generator seed,
// default 1), BENCH_RESEED=1 (seed again even when cached),
// BENCH_SEARCH_AUDIT (the server's --audit: off by default, so that the
// figures are the search's own; bench/audit-read.mjs measures the audit),
// BENCH_SEARCH_DURATION (seconds per wrk run, default 5), BENCH_SEARCH_ROUNDS
// (default 3), BENCH_SEARCH_CONNECTIONS (default 32), BENCH_SEARCH_SAMPLE
// (requests checked per search, default 40).
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { cpuSecs } from './lib.mjs';

const HERE = path.dirname(fileURLToPath(import.meta.url));

const N = Number(process.env.BENCH_PATIENTS || 10000);
const SEED = Number(process.env.BENCH_SEED || 1);
const RESEED = process.env.BENCH_RESEED === '1';
const SECS = Math.max(1, Number(process.env.BENCH_SEARCH_DURATION || 5));
const ROUNDS = Math.max(1, Number(process.env.BENCH_SEARCH_ROUNDS || 3));
const CONNS = Math.max(2, Number(process.env.BENCH_SEARCH_CONNECTIONS || 32));
const SAMPLE = Math.max(5, Number(process.env.BENCH_SEARCH_SAMPLE || 40));
const AUDIT = process.env.BENCH_SEARCH_AUDIT || 'off';
const GOAL_P99_MS = 10, GOAL_RATIO = 0.3;
const MARK = '==== Veranda search benchmark';
const META = 'bench-seed.json';

/* The four searches; {id} is a generated patient, {prefix} a family-name prefix. */
function queries(today) {
	return [
		{ key: 'obs', label: 'Observation?patient=X&category=laboratory&_sort=-date&_count=20',
			path: '/fhir/Observation?patient={id}&category=laboratory&_sort=-date&_count=20', scoped: true },
		{ key: 'name', label: 'Patient?name=<3-letter prefix>',
			path: '/fhir/Patient?name={prefix}', scoped: false },
		{ key: 'appt', label: `Appointment?patient=X&date=ge${today}`,
			path: `/fhir/Appointment?patient={id}&date=ge${today}`, scoped: true },
		{ key: 'everything', label: 'Patient/X/$everything (first page)',
			path: '/fhir/Patient/{id}/$everything', scoped: true },
	];
}

/* Veranda's rate over nginx's in each round (the two ran back to back, under the same load). */
const roundRatios = (r) => r.rounds.rps.map((v, i) => v / r.rounds.nginx[i]);
const mib = (b) => `${(b / 2 ** 20).toFixed(0)} MiB`;
const fileSize = (f) => {
	try {
		return fs.statSync(f).size;
	} catch {
		return 0;
	}
};
const dbSize = (dir) => ({ db: fileSize(path.join(dir, 'veranda.db')), wal: fileSize(path.join(dir, 'veranda.db-wal')) });
const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor((xs.length - 1) / 2)];

function schemaOf(veranda) {
	const r = spawnSync(veranda, ['version'], { encoding: 'utf8' });
	const m = (r.stdout || '').match(/schema (\d+)/);
	return m ? Number(m[1]) : null;
}

/* Resources per type in a data directory (null without sqlite3). */
function countTypes(dir) {
	const r = spawnSync('sqlite3', ['-readonly', '-batch', '-noheader', path.join(dir, 'veranda.db'),
		'SELECT type, count(*) FROM resource WHERE deleted = 0 GROUP BY type ORDER BY 2 DESC'], { encoding: 'utf8' });
	if (r.status !== 0 || r.error)
		return null;
	return r.stdout.trim().split('\n').filter(Boolean).map((l) => l.split('|')).map(([t, n]) => [t, Number(n)]);
}

/* The seeded data directory: from the cache, or seeded now (and cached). */
async function seedData(h) {
	const dir = path.join(HERE, 'results', `seed-${N}`);
	const schema = schemaOf(h.VERANDA);
	let meta = null;
	try {
		meta = JSON.parse(fs.readFileSync(path.join(dir, META), 'utf8'));
	} catch { /* none, or unreadable: seed again */ }
	const why = !meta ? (fs.existsSync(dir) ? 'incomplete cache' : 'no cache')
		: RESEED ? 'BENCH_RESEED=1'
			: meta.patients !== N || meta.seed !== SEED ? 'different settings'
				: meta.schema !== schema ? `schema ${meta.schema} → ${schema}` : null;
	if (!why) {
		h.log(`search: cached seed ${path.relative(process.cwd(), dir)} (${meta.patients} patients, seed ${meta.seed}, ` +
			`generated ${meta.day}): seeding skipped (BENCH_RESEED=1 seeds again)`);
		return { dir, meta, cached: true };
	}
	fs.rmSync(dir, { recursive: true, force: true });
	fs.mkdirSync(path.dirname(dir), { recursive: true });
	await h.veranda(['init', '--data', dir, '--log-level', 'warn'], 'init for the search benchmark');
	h.log(`search: seeding ${N} patients into ${path.relative(process.cwd(), dir)} (${why}); ` +
		'about 75 resources a patient, this takes a while');
	const t0 = process.hrtime.bigint();
	const tick = setInterval(() => {
		const s = dbSize(dir);
		h.log(`search: seeding… ${((Number(process.hrtime.bigint() - t0) / 1e9)).toFixed(0)} s, database ${mib(s.db + s.wal)}`);
	}, 60000);
	let r;
	try {
		r = await h.runCapture('veranda seed', h.VERANDA, ['seed', '--data', dir, '--log-level', 'warn',
			'--patients', String(N), '--seed', String(SEED)]);
	} finally {
		clearInterval(tick);
	}
	const wall = Number(process.hrtime.bigint() - t0) / 1e9;
	if (r.code !== 0 || r.error)
		throw new Error(`veranda seed exited ${r.code ?? r.signal}${r.error ? ` (${r.error.message})` : ''}:\n${r.out}${r.err}`);
	const m = r.out.match(/seeded (\d+) resources .* in ([\d.]+) s \((\d+) resources\/s\)/);
	const size = dbSize(dir);
	meta = {
		patients: N, seed: SEED, schema, day: new Date().toISOString().slice(0, 10), at: new Date().toISOString(),
		resources: m ? Number(m[1]) : null, ownSecs: m ? Number(m[2]) : null, ownRate: m ? Number(m[3]) : null,
		wallSecs: wall, dbBytes: size.db, walBytes: size.wal, types: countTypes(dir),
	};
	meta.rate = meta.resources != null ? meta.resources / wall : null;
	fs.writeFileSync(path.join(dir, META), JSON.stringify(meta, null, 2) + '\n');
	h.log(`search: seeded ${meta.resources} resources in ${wall.toFixed(1)} s wall = ${h.fmtInt(meta.rate)} resources/s ` +
		`(veranda's own figure: ${meta.ownRate}/s); veranda.db ${mib(size.db)} + WAL ${mib(size.wal)}`);
	return { dir, meta, cached: false };
}

async function getJson(h, port, p) {
	const r = await h.request(port, 'GET', p);
	let body = null;
	try {
		body = JSON.parse(r.body.toString('utf8'));
	} catch { /* reported below */ }
	return { status: r.status, bytes: r.body.length, raw: r.body, body };
}

/* Generated patients (p-NNNNNN) and their family names, through the API. */
async function patients(h, port) {
	const out = [];
	let p = '/fhir/Patient?_count=1000&_elements=name&_total=none';
	for (let pages = 0; p && pages < 10000; pages++) {
		const r = await getJson(h, port, p);
		if (r.status !== 200 || !r.body)
			throw new Error(`GET ${p} answered ${r.status}: ${r.raw.toString().slice(0, 300)}`);
		for (const e of r.body.entry || []) {
			const res = e.resource;
			const family = res?.name?.[0]?.family;
			if (res?.id?.startsWith('p-') && family)
				out.push({ id: res.id, family });
		}
		const next = (r.body.link || []).find((l) => l.relation === 'next');
		p = next ? new URL(next.url).pathname + new URL(next.url).search : null;
	}
	return out;
}

/* Check a sample of requests; keep the median-size response for nginx. */
async function checkSample(h, port, q, ids, prefixes) {
	const pick = (a) => a[Math.floor(Math.random() * a.length)];
	const sizes = [], bodies = [];
	let withEntries = 0, entries = 0, totals = 0;
	for (let k = 0; k < SAMPLE; k++) {
		const p = q.path.replace('{id}', () => pick(ids)).replace('{prefix}', () => pick(prefixes));
		const r = await getJson(h, port, p);
		if (r.status !== 200 || r.body?.resourceType !== 'Bundle' || r.body.type !== 'searchset')
			throw new Error(`search benchmark: GET ${p} answered ${r.status}, not a searchset Bundle: ` +
				r.raw.toString().slice(0, 400));
		const n = (r.body.entry || []).filter((e) => (e.search?.mode ?? 'match') !== 'outcome').length;
		if (n > 0)
			withEntries++;
		entries += n;
		totals += r.body.total ?? 0;
		sizes.push(r.bytes);
		bodies.push(r.raw);
	}
	if (withEntries < SAMPLE / 2)
		throw new Error(`search benchmark: only ${withEntries} of ${SAMPLE} sampled "${q.label}" requests found anything`);
	const med = median(sizes);
	return { sampled: SAMPLE, withEntries, meanEntries: entries / SAMPLE, meanTotal: totals / SAMPLE,
		medianBytes: med, minBytes: Math.min(...sizes), maxBytes: Math.max(...sizes),
		body: bodies[sizes.indexOf(med)] };
}

export async function searchBench(h) {
	const T0 = Date.now();
	if (!fs.existsSync(h.VERANDA))
		throw new Error(`${h.VERANDA} does not exist: run 'make' first`);
	for (const tool of ['wrk', 'nginx'])
		if (spawnSync(tool, ['-v']).error)
			throw new Error(`${tool} is not installed: run scripts/install-deps`);
	const load0 = os.loadavg();
	const work = fs.mkdtempSync(path.join(h.tmp, 'search-'));
	h.log(`search benchmark: ${N} patients (seed ${SEED}); wrk ${ROUNDS} interleaved rounds of ${SECS} s at one client ` +
		`and at ${CONNS} connections; load average ${load0.map((x) => x.toFixed(2)).join(' ')}`);
	const { dir, meta, cached } = await seedData(h);
	const size = dbSize(dir);
	const today = meta.day;
	const realToday = new Date().toISOString().slice(0, 10);

	const ver = await h.startVeranda(dir, ['--audit', AUDIT]);
	h.log(`search: veranda serve pid ${ver.pid} on 127.0.0.1:${ver.port}, data ${path.relative(process.cwd(), dir)}, ` +
		`--audit ${AUDIT}`);
	const people = await patients(h, ver.port);
	if (people.length === 0)
		throw new Error('search benchmark: no generated patients (p-…) in the seeded data');
	const idsFile = path.join(work, 'ids.txt'), prefixFile = path.join(work, 'prefixes.txt');
	const ids = people.map((x) => x.id);
	const prefixes = people.map((x) => encodeURIComponent([...x.family].slice(0, 3).join('')));
	fs.writeFileSync(idsFile, ids.join('\n') + '\n');
	fs.writeFileSync(prefixFile, prefixes.join('\n') + '\n');
	h.log(`search: ${ids.length} generated patients, ${new Set(prefixes).size} distinct family-name prefixes; ` +
		`"today" = ${today}${today !== realToday ? ` (the day the cached seed was generated; its dates are relative to it)` : ''}`);

	/* Validate every search and write its median-size response for nginx. */
	const www = path.join(work, 'www');
	fs.mkdirSync(path.join(www, 'search'), { recursive: true });
	const qs = queries(today);
	for (const q of qs) {
		const s = await checkSample(h, ver.port, q, ids, prefixes);
		q.sample = s;
		q.static = `/search/${q.key}.json`;
		fs.writeFileSync(path.join(www, q.static), s.body);
		delete s.body;
		h.log(`search: ${q.label}: ${s.withEntries}/${s.sampled} sampled requests found entries ` +
			`(mean ${s.meanEntries.toFixed(1)} entries, total ${s.meanTotal.toFixed(1)}); response ${h.fmtInt(s.minBytes)}–` +
			`${h.fmtInt(s.maxBytes)} bytes, median ${h.fmtInt(s.medianBytes)}`);
	}
	const ngx = await h.startNginx(path.join(work, 'nginx'), www);
	for (const q of qs) {
		const r = await h.request(ngx.port, 'GET', q.static);
		if (r.status !== 200 || r.body.length !== q.sample.medianBytes)
			throw new Error(`nginx does not serve ${q.static} (status ${r.status})`);
	}
	h.log(`search: nginx pid ${ngx.pid} on 127.0.0.1:${ngx.port} serves each search's median-size response`);

	const script = path.join(HERE, 'search.lua');
	const envOf = (q) => ({ VERANDA_SEARCH_PATH: q.path, VERANDA_SEARCH_IDS: idsFile, VERANDA_SEARCH_PREFIXES: prefixFile });
	const run = async (label, server, port, p, conns, secs, env = null) => {
		const cpu0 = server === ver ? cpuSecs(ver.pid) : null;
		const w = await h.wrk({ label, server, port, path: p, conns, duration: secs, script: env ? script : null, env: env || {} });
		const cpu1 = cpu0 == null ? null : cpuSecs(ver.pid);
		/* the server's CPU per request, over wrk's run (wrk counts completed requests) */
		w.cpuMs = cpu1 == null ? null : ((cpu1 - cpu0) * 1000) / w.requests;
		const extra = [];
		if (w.cpuMs != null)
			extra.push(`veranda CPU ${w.cpuMs.toFixed(2)} ms/request`);
		if (w.non2xx)
			extra.push(`${w.non2xx} non-2xx`);
		if (w.socketErrors)
			extra.push(w.socketDetail);
		h.log(`${label.padEnd(44)} c=${String(conns).padStart(3)}  ${h.fmtInt(w.rps).padStart(7)} req/s  p50 ${h.fmtMs(w.p50)}` +
			`  p99 ${h.fmtMs(w.p99)}${extra.length ? `  [${extra.join('; ')}]` : ''}`);
		return w;
	};

	/* Warm-up (page cache, statement cache), not measured. */
	for (const q of qs)
		await h.wrk({ label: `warm-up ${q.key}`, server: ver, port: ver.port, path: '/', conns: CONNS, duration: 2,
			script, env: envOf(q) });
	h.log(`search: warm-up done; ${ROUNDS} interleaved rounds of ${SECS} s per test`);

	for (const q of qs)
		q.runs = { c1: [], ngx: [], ver: [] };
	for (let k = 1; k <= ROUNDS; k++) {
		h.log(`search: round ${k}/${ROUNDS}`);
		for (const q of qs) {
			q.runs.c1.push(await run(`${q.key}: veranda, one client`, ver, ver.port, '/', 1, SECS, envOf(q)));
			q.runs.ngx.push(await run(`${q.key}: nginx ${h.fmtInt(q.sample.medianBytes)}-byte file`, ngx, ngx.port, q.static, CONNS, SECS));
			q.runs.ver.push(await run(`${q.key}: veranda`, ver, ver.port, '/', CONNS, SECS, envOf(q)));
		}
	}

	const r = await h.request(ver.port, 'GET', '/healthz');
	if (r.status !== 200)
		throw new Error(`veranda /healthz answered ${r.status} after the search runs`);
	await h.stop(ngx);
	await h.stop(ver);

	/* Best round of each test: lowest p99 at one client, highest req/s at 32. */
	const rows = qs.map((q) => {
		const c1 = q.runs.c1.reduce((a, b) => (b.p99 < a.p99 ? b : a));
		const ng = q.runs.ngx.reduce((a, b) => (b.rps > a.rps ? b : a));
		const vr = q.runs.ver.reduce((a, b) => (b.rps > a.rps ? b : a));
		const ratio = vr.rps / ng.rps;
		const below = [];
		if (q.scoped && c1.p99 >= GOAL_P99_MS)
			below.push(`p99 ≥ ${GOAL_P99_MS} ms`);
		if (ratio < GOAL_RATIO)
			below.push(`ratio < ${GOAL_RATIO}×`);
		const errors = [...q.runs.c1, ...q.runs.ver].reduce((n, w) => n + w.non2xx + w.socketErrors, 0);
		return { key: q.key, label: q.label, scoped: q.scoped, sample: q.sample,
			p50: c1.p50, p99: c1.p99, c1rps: c1.rps, rps: vr.rps, cpuMs: vr.cpuMs, cpuMs1: c1.cpuMs, p99at32: vr.p99, nginxRps: ng.rps, ratio, errors,
			verdict: below.length ? `below goal (${below.join(', ')})` : 'meets goal',
			rounds: { p99c1: q.runs.c1.map((w) => w.p99), rps: q.runs.ver.map((w) => w.rps), nginx: q.runs.ngx.map((w) => w.rps) } };
	});
	const res = { started: new Date(T0).toISOString(), machine: h.machine(), patients: N, seed: SEED, cached, meta,
		size, today, secs: SECS, rounds: ROUNDS, conns: CONNS, audit: AUDIT, rows, loadavg: [load0, os.loadavg()],
		seconds: (Date.now() - T0) / 1000 };
	const text = summary(h, res);
	console.log(`\n${text}`);
	const latest = path.join(HERE, 'results', 'latest.txt');
	let prev = '';
	try {
		prev = fs.readFileSync(latest, 'utf8');
	} catch { /* first run */ }
	const cut = prev.indexOf(MARK);
	if (cut >= 0)
		prev = prev.slice(0, cut);
	fs.writeFileSync(latest, `${prev}${prev && !prev.endsWith('\n\n') ? '\n' : ''}${text}\n`);
	fs.writeFileSync(path.join(HERE, 'results', 'search.json'), JSON.stringify(res, null, 2) + '\n');
	return 0;
}

function summary(h, res) {
	const m = res.machine, meta = res.meta;
	const L = [];
	L.push(`${MARK}, ${res.started} ====`);
	L.push(`machine: ${m.cores} cores, ${m.model}, ${m.memGiB} GiB, Linux ${m.kernel}; wrk ${m.wrk}, nginx ${m.nginx}`);
	L.push(`data: ${fmt(meta.resources)} resources (${res.patients} generated patients plus the demo people, seed ${res.seed}), ` +
		`generated ${meta.day}${res.cached ? ', cached: seeding skipped in this run' : ''}`);
	L.push(`seed: ${meta.wallSecs.toFixed(1)} s wall = ${fmt(meta.rate)} resources/s (veranda's own figure ${fmt(meta.ownRate)}/s)` +
		`${res.cached ? `, seeded ${meta.at}` : ''}`);
	L.push(`database: veranda.db ${mib(res.size.db)} + WAL ${mib(res.size.wal)} now` +
		`${res.cached ? `; ${mib(meta.dbBytes)} + ${mib(meta.walBytes)} right after seeding` : ''}` +
		` = ${fmt((res.size.db + res.size.wal) / (meta.resources || 1))} bytes a resource`);
	if (meta.types)
		L.push(`resources: ${meta.types.map(([t, n]) => `${t} ${fmt(n)}`).join(', ')}`);
	L.push(`server: veranda serve --fhir-auth=false --audit ${res.audit} (BENCH_SEARCH_AUDIT)`);
	L.push(`wrk: one client = -t1 -c1; ${res.conns} connections = -t2 -c${res.conns}; ${res.rounds} interleaved rounds of ` +
		`${res.secs} s (best round: lowest p99 at one client, highest req/s at ${res.conns}); patient or prefix drawn at random per request`);
	L.push(`goals: p99 < ${GOAL_P99_MS} ms at one client for the patient-scoped searches; req/s ≥ ${GOAL_RATIO}× nginx serving the median-size response as a static file`);
	L.push(`load average: before ${res.loadavg[0].map((x) => x.toFixed(2)).join(' ')}, after ${res.loadavg[1].map((x) => x.toFixed(2)).join(' ')}`);
	L.push('');
	const head = ['query', 'p50 c=1', 'p99 c=1', `req/s c=${res.conns}`, 'nginx req/s', 'ratio', 'bytes', 'CPU/req',
		'errors', 'verdict'];
	const rows = res.rows.map((r) => [r.label, h.fmtMs(r.p50), h.fmtMs(r.p99), h.fmtInt(r.rps), h.fmtInt(r.nginxRps),
		h.fmtRatio(r.ratio), h.fmtInt(r.sample.medianBytes), r.cpuMs == null ? '-' : `${r.cpuMs.toFixed(2)} ms`,
		String(r.errors), r.verdict]);
	const w = head.map((x, k) => Math.max(x.length, ...rows.map((r) => [...r[k]].length)));
	const line = (r) => r.map((c, k) => (k >= 1 && k <= 8 ? c.padStart(w[k]) : c.padEnd(w[k]))).join('  ').trimEnd();
	L.push(line(head));
	L.push(line(w.map((n) => '-'.repeat(n))));
	for (const r of rows)
		L.push(line(r));
	L.push('');
	for (const r of res.rows) {
		const s = r.sample;
		L.push(`${r.key}: ${s.withEntries}/${s.sampled} sampled requests had entries, mean ${s.meanEntries.toFixed(1)} entries ` +
			`(total ${s.meanTotal.toFixed(1)}), ${fmt(s.minBytes)}–${fmt(s.maxBytes)} bytes; by round: p99 c=1 ` +
			`${r.rounds.p99c1.map(h.fmtMs).join(' · ')}, req/s ${r.rounds.rps.map(fmt).join(' · ')}, nginx ${r.rounds.nginx.map(fmt).join(' · ')}; ` +
			`p99 at ${res.conns} ${h.fmtMs(r.p99at32)}; ratio by round ${roundRatios(r).map((x) => x.toFixed(2)).join(' · ')} ` +
			`(median ${median(roundRatios(r)).toFixed(2)}; the verdict uses best round against best round)`);
	}
	L.push(`CPU/req: veranda serve's CPU time (user + system, /proc) over the run at ${res.conns} connections divided by the requests wrk completed`);
	L.push(`search part: ${res.seconds.toFixed(0)} s${res.cached ? '' : `, of which seeding ${meta.wallSecs.toFixed(0)} s`}`);
	return L.join('\n');

	function fmt(n) {
		return n == null ? '?' : h.fmtInt(n);
	}
}

/* `node bench/search.mjs` = `node bench/run.mjs --search-only`. */
if (process.argv[1] && import.meta.url === pathToFileURL(path.resolve(process.argv[1])).href) {
	const r = spawnSync(process.execPath, [path.join(HERE, 'run.mjs'), '--search-only', ...process.argv.slice(2)],
		{ stdio: 'inherit' });
	process.exit(r.status ?? 1);
}
