// What a power cut would have left of a data directory: undo every write
// that tests/e2e/powercut/powercut.c logged and no later sync of its file
// covered, newest first (see that file for the log's format and what it
// does not model).
import fs from 'node:fs';
import path from 'node:path';
import { ROOT } from './server.mjs';

export const POWERCUT_SO = path.join(ROOT, 'build', 'tests', 'powercut.so');
const MAGIC = 0x50435554;
const HEAD = 56;

function parse(buf) {
  const recs = [];
  for (let at = 0; at < buf.length;) {
    if (buf.length - at < HEAD || buf.readUInt32LE(at) !== MAGIC) throw new Error(`powercut log: bad record at byte ${at}`);
    const r = {
      kind: String.fromCharCode(buf.readUInt32LE(at + 4)),
      file: `${buf.readBigUInt64LE(at + 8)}:${buf.readBigUInt64LE(at + 16)}`,
      ino: buf.readBigUInt64LE(at + 16),
      off: Number(buf.readBigInt64LE(at + 24)),
      oldSize: Number(buf.readBigInt64LE(at + 32)),
    };
    const nOld = Number(buf.readBigUInt64LE(at + 40));
    const plen = buf.readUInt32LE(at + 48);
    r.path = buf.toString('utf8', at + HEAD, at + HEAD + plen);
    r.old = buf.subarray(at + HEAD + plen, at + HEAD + plen + nOld);
    at += HEAD + plen + nOld;
    recs.push(r);
  }
  return recs;
}

/*
 * Undo the unsynced writes logged in 'logFile'.  Returns counts: records,
 * syncs, writes and truncations undone, bytes put back, and records of
 * files that no longer exist under their name (skipped).
 */
export function undoUnsynced(logFile) {
  const recs = parse(fs.readFileSync(logFile));
  const covered = new Map(); /* file -> records below this index are durable */
  recs.forEach((r) => {
    if (r.kind === 'S') covered.set(r.file, Math.max(covered.get(r.file) ?? 0, r.off));
  });
  const out = { records: recs.length, syncs: 0, undone: 0, bytes: 0, skipped: 0 };
  for (let i = recs.length - 1; i >= 0; i--) {
    const r = recs[i];
    if (r.kind === 'S') {
      out.syncs++;
      continue;
    }
    if (i < (covered.get(r.file) ?? 0)) continue;
    let fd;
    try {
      fd = fs.openSync(r.path, 'r+');
    } catch {
      out.skipped++;
      continue;
    }
    try {
      if (fs.fstatSync(fd, { bigint: true }).ino !== r.ino) {
        out.skipped++;
        continue;
      }
      if (r.kind === 'W') {
        if (r.old.length) fs.writeSync(fd, r.old, 0, r.old.length, r.off);
        fs.ftruncateSync(fd, r.oldSize);
      } else {
        fs.ftruncateSync(fd, r.oldSize);
        if (r.old.length) fs.writeSync(fd, r.old, 0, r.old.length, r.off);
      }
      out.undone++;
      out.bytes += r.old.length;
    } finally {
      fs.closeSync(fd);
    }
  }
  return out;
}
