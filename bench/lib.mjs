// bench/lib.mjs - what the Node benchmarks share: child processes tracked and
// stopped by PID (also when the benchmark itself is interrupted), the
// temporary directory removed at the end, a free loopback port, the tail of a
// log file, a process's CPU time, and wrk's time units.
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';

export const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/*
 * The children of one benchmark run.  'log' reports a child that had to be
 * killed; 'tmpDir' returns the run's temporary directory (or null), which
 * cleanup() removes unless BENCH_KEEP_TMP is set.  SIGINT, SIGTERM and
 * SIGHUP stop every child, clean up and exit; 'interrupted' says so.
 */
export function processes({ log, tmpDir }) {
	const children = new Set();
	let cleaning = null;
	const p = { interrupted: false };

	p.track = (name, proc) => {
		const child = { name, proc, pid: proc.pid, exited: false, code: null, signal: null, expected: false };
		child.done = new Promise((resolve) => {
			proc.on('exit', (code, signal) => {
				Object.assign(child, { exited: true, code, signal });
				children.delete(child);
				resolve();
			});
			proc.on('error', (e) => {
				Object.assign(child, { exited: true, error: e });
				children.delete(child);
				resolve();
			});
		});
		children.add(child);
		return child;
	};

	/* A long-running process with its output in logFile. */
	p.start = (name, cmd, args, logFile, env = process.env) => {
		const fd = fs.openSync(logFile, 'a');
		const proc = spawn(cmd, args, { stdio: ['ignore', fd, fd], env });
		fs.closeSync(fd);
		return p.track(name, proc);
	};

	/* A process run to completion, its output captured. */
	p.runCapture = (name, cmd, args, env = process.env) => {
		const proc = spawn(cmd, args, { stdio: ['ignore', 'pipe', 'pipe'], env });
		const child = p.track(name, proc);
		let out = '', err = '';
		proc.stdout.on('data', (d) => { out += d; });
		proc.stderr.on('data', (d) => { err += d; });
		return child.done.then(() => ({ code: child.code, signal: child.signal, error: child.error, out, err }));
	};

	/* SIGTERM, then SIGKILL after graceMs; 'expected' marks the exit as ours. */
	p.stop = async (child, graceMs = 10000) => {
		if (!child || child.exited)
			return;
		child.expected = true;
		try {
			process.kill(child.pid, 'SIGTERM');
		} catch { /* already gone */ }
		if (!(await Promise.race([child.done.then(() => true), sleep(graceMs).then(() => false)]))) {
			log(`${child.name} (pid ${child.pid}) did not stop in ${graceMs} ms: SIGKILL`);
			try {
				process.kill(child.pid, 'SIGKILL');
			} catch { /* already gone */ }
			await child.done;
		}
	};

	p.cleanup = () => {
		cleaning ??= (async () => {
			for (const c of [...children].reverse())
				await p.stop(c, 5000);
			const tmp = tmpDir();
			if (tmp && !process.env.BENCH_KEEP_TMP)
				fs.rmSync(tmp, { recursive: true, force: true });
			else if (tmp)
				console.log(`temporary directory kept: ${tmp}`);
		})();
		return cleaning;
	};

	for (const sig of ['SIGINT', 'SIGTERM', 'SIGHUP']) {
		process.on(sig, () => {
			p.interrupted = true;
			console.error(`\nbench: ${sig}: stopping`);
			p.cleanup().finally(() => process.exit(128 + os.constants.signals[sig]));
		});
	}
	return p;
}

/* The last n lines of a file ('' when it cannot be read). */
export function tail(file, n = 20) {
	try {
		return fs.readFileSync(file, 'utf8').trimEnd().split('\n').slice(-n).join('\n');
	} catch {
		return '';
	}
}

export function freePort() {
	return new Promise((resolve, reject) => {
		const s = net.createServer();
		s.unref();
		s.on('error', reject);
		s.listen(0, '127.0.0.1', () => {
			const { port } = s.address();
			s.close(() => resolve(port));
		});
	});
}

/* CPU seconds (user + system) a process has used so far; null when it cannot be read. */
export function cpuSecs(pid) {
	try {
		const f = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
		const v = f.slice(f.lastIndexOf(')') + 2).split(' ');
		return (Number(v[11]) + Number(v[12])) / 100; /* utime, stime in clock ticks (USER_HZ = 100) */
	} catch {
		return null;
	}
}

/* A wrk duration ("812.34" "us") in milliseconds. */
export function toMs(v, unit) {
	const f = { us: 1e-3, ms: 1, s: 1e3, m: 6e4, h: 3.6e6 }[unit];
	return f === undefined ? NaN : Number(v) * f;
}

export function fmtMs(ms) {
	if (ms == null || Number.isNaN(ms))
		return '-';
	if (ms < 1)
		return `${ms.toFixed(3)} ms`;
	if (ms < 10)
		return `${ms.toFixed(2)} ms`;
	if (ms < 100)
		return `${ms.toFixed(1)} ms`;
	return `${ms.toFixed(0)} ms`;
}
