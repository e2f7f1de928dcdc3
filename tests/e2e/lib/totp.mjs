// TOTP (RFC 6238: SHA-1, 30-second steps, six digits) as an authenticator
// app computes it, for the two-step verification tests.
import crypto from 'node:crypto';

// The key of a base32 secret (RFC 4648, padding optional); throws on a character outside the alphabet.
export function base32(s) {
  const abc = 'ABCDEFGHIJKLMNOPQRSTUVWXYZ234567';
  let bits = '';
  for (const ch of s.replace(/=+$/, '').toUpperCase()) {
    const v = abc.indexOf(ch);
    if (v < 0) throw new Error(`base32 character '${ch}'`);
    bits += v.toString(2).padStart(5, '0');
  }
  const out = [];
  for (let i = 0; i + 8 <= bits.length; i += 8) out.push(parseInt(bits.slice(i, i + 8), 2));
  return Buffer.from(out);
}

// The time step now.
export const nowStep = () => Math.floor(Date.now() / 30000);

// The code of 'key' for time step 'step' (default: now).
export function totp(key, step = nowStep()) {
  const msg = Buffer.alloc(8);
  msg.writeBigUInt64BE(BigInt(step));
  const h = crypto.createHmac('sha1', key).update(msg).digest();
  const o = h[h.length - 1] & 15;
  return String((h.readUInt32BE(o) & 0x7fffffff) % 1e6).padStart(6, '0');
}
