// The cost of auditing on the FHIR read path: GET /fhir/Observation/{id}
// served by one Veranda with audit "sync" (every read waits until its
// audit record is durable) and by another on the same data with audit
// "off", measured with wrk in interleaved rounds in this script, printed
// as a ratio (goal: at least 0.85).  All run with --fhir-auth=false so
// that only the audit differs (loopback only).  A third Veranda with audit
// "async" (records group-committed, nobody waits for the disk) shows how
// much of the cost is the wait and how much the recording itself; each
// server's CPU per read comes from /proc.
//
// Environment: BENCH_DURATION (seconds per round, default 5), BENCH_ROUNDS
// (default 3), BENCH_CONNECTIONS (default 32).
import { spawn, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { setTimeout as sleep } from 'node:timers/promises';
import { cpuSecs, freePort } from './lib.mjs';

const HERE = path.dirname(fileURLToPath(import.meta.url));
const VERANDA = path.resolve(HERE, '..', 'build', 'veranda');
const SECS = Number(process.env.BENCH_DURATION || 5);
const ROUNDS = Number(process.env.BENCH_ROUNDS || 3);
const CONNS = Number(process.env.BENCH_CONNECTIONS || 32);
const kids = [];
process.on('exit', () => kids.forEach((k) => k.exitCode === null && k.kill('SIGKILL')));

function run(args) {
	const r = spawnSync(VERANDA, args, { encoding: 'utf8' });
	if (r.status !== 0) throw new Error(`veranda ${args.join(' ')}: ${r.stderr}`);
	return r.stdout;
}

async function serve(data, audit) {
	const port = await freePort();
	const k = spawn(VERANDA, ['serve', '--data', data, '--listen', `127.0.0.1:${port}`, '--log-level', 'warn',
		'--fhir-auth=false', '--audit', audit, ...(process.env.BENCH_WORKERS ? ['--workers', process.env.BENCH_WORKERS] : []), '--node-id', `bench-${audit}`], { stdio: ['ignore', 'ignore', 'inherit'] });
	kids.push(k);
	for (let i = 0; i < 200; i++) {
		try {
			if ((await fetch(`http://127.0.0.1:${port}/healthz`)).status === 200) return { k, port };
		} catch { /* not yet */ }
		await sleep(50);
	}
	throw new Error('veranda did not start');
}

function wrk(srv, p) {
	const port = srv.port, cpu0 = cpuSecs(srv.k.pid);
	const r = spawnSync('wrk', ['-t', '2', '-c', String(CONNS), '-d', `${SECS}s`, '--latency',
		'-H', 'Accept: application/fhir+json', `http://127.0.0.1:${port}${p}`], { encoding: 'utf8' });
	if (r.status !== 0) throw new Error(`wrk: ${r.stderr}`);
	const rps = Number((r.stdout.match(/Requests\/sec:\s+([\d.]+)/) || [])[1]);
	const non2xx = Number((r.stdout.match(/Non-2xx or 3xx responses: (\d+)/) || [0, 0])[1]);
	const p99 = (r.stdout.match(/99%\s+([\d.]+\w+)/) || [])[1];
	const total = Number((r.stdout.match(/(\d+) requests in/) || [])[1]);
	return { rps, non2xx, p99, cpuUs: total ? ((cpuSecs(srv.k.pid) - cpu0) * 1e6) / total : NaN };
}

async function main() {
	if (spawnSync('wrk', ['-v']).error) throw new Error('wrk is not installed: run scripts/install-deps');
	const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'veranda-audit-read-'));
	const data = path.join(tmp, 'data');
	const load0 = os.loadavg();
	run(['init', '--data', data, '--log-level', 'warn']);
	run(['seed', '--data', data, '--patients', '20', '--log-level', 'warn']);
	const on = await serve(data, 'sync');
	const off = await serve(data, 'off');
	const asy = await serve(data, 'async');
	const b = await (await fetch(`http://127.0.0.1:${off.port}/fhir/Observation?patient=alice&_count=1`)).json();
	const p = `/fhir/Observation/${b.entry[0].resource.id}`;
	console.log(`audit on the read path: ${os.cpus().length} cores, wrk ${CONNS} connections, ${ROUNDS} interleaved rounds of ${SECS} s; GET ${p}; load average ${load0.map((x) => x.toFixed(2)).join(' ')}`);
	wrk(on, p); wrk(off, p); wrk(asy, p); /* warm-up */
	const res = { sync: [], off: [], async: [] };
	for (let i = 0; i < ROUNDS; i++) {
		res.sync.push(wrk(on, p));
		res.off.push(wrk(off, p));
		res.async.push(wrk(asy, p));
	}
	const best = (a) => a.reduce((x, y) => (y.rps > x.rps ? y : x));
	const s = best(res.sync), o = best(res.off), as = best(res.async);
	for (const [name, r] of [['audit sync', res.sync], ['audit off', res.off], ['audit async', res.async]])
		console.log(`${name.padEnd(11)} ${r.map((x) => x.rps.toFixed(0).padStart(7)).join(' ')} req/s by round; best ${best(r).rps.toFixed(0)} (p99 ${best(r).p99}, non-2xx ${best(r).non2xx}); server CPU a read ${r.map((x) => x.cpuUs.toFixed(0)).join(' ')} us by round`);
	const ratio = s.rps / o.rps;
	console.log(`ratio sync/off: ${ratio.toFixed(2)} (goal >= 0.85: ${ratio >= 0.85 ? 'met' : 'not met'}); async/off: ${(as.rps / o.rps).toFixed(2)} (no goal: the recording without the wait for the disk); load average after ${os.loadavg().map((x) => x.toFixed(2)).join(' ')}`);
	for (const x of [on, off, asy]) x.k.kill('SIGTERM');
	await sleep(500);
	const v = spawnSync(VERANDA, ['audit', 'verify', '--data', data], { encoding: 'utf8' });
	console.log(`audit log after the run: ${v.stdout.trim()}`);
	fs.rmSync(tmp, { recursive: true, force: true });
	return s.non2xx || o.non2xx || as.non2xx ? 1 : 0;
}

main().then((c) => process.exit(c), (e) => { console.error(e.message); process.exit(1); });
