// make bench: the bare RS256 signature rate of Node.js's crypto (OpenSSL)
// with the peer's key, on the core the bench pins it to: the signing floor
// of node-oidc-provider, next to ring's for keygate.
//
//   node sign-rate.mjs <jwk.json> <signing-input-bytes> <seconds>
//
// Prints {"per_sec":…,"us":…,"n":…} like `bench sign`.

import { createPrivateKey, sign } from 'node:crypto';
import { readFileSync } from 'node:fs';

const [jwkPath, inputLen, secs] = process.argv.slice(2);
const key = createPrivateKey({ key: JSON.parse(readFileSync(jwkPath, 'utf8')), format: 'jwk' });
const message = Buffer.alloc(Number(inputLen), 'e');
const ns = (s) => BigInt(Math.round(s * 1e9));

const warm = process.hrtime.bigint();
while (process.hrtime.bigint() - warm < ns(0.3)) sign('sha256', message, key);

const start = process.hrtime.bigint();
let n = 0;
while (n < 1_000_000 && (n % 16 !== 0 || process.hrtime.bigint() - start < ns(Number(secs)))) {
  sign('sha256', message, key);
  n += 1;
}
const elapsed = Number(process.hrtime.bigint() - start) / 1e9;
console.log(JSON.stringify({ per_sec: n / elapsed, us: (elapsed * 1e6) / n, n }));
