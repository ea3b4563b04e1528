// make bench: the bare RS256 signature rate of Node.js's crypto (OpenSSL)
// with the peer's key, on the core the bench pins it to: the signing floor
// of node-oidc-provider, next to AWS-LC's and ring's for keygate.
//
//   node sign-rate.mjs <key.pem> <signing-input-bytes> <seconds>
//
// Prints {"backend":"node","per_sec":…,"us":…,"n":…} like `bench sign`.

import { createPrivateKey, sign } from 'node:crypto';
import { readFileSync } from 'node:fs';

const [keyPath, inputLen, secs] = process.argv.slice(2);
const key = createPrivateKey(readFileSync(keyPath));
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
console.log(JSON.stringify({ backend: 'node', per_sec: n / elapsed, us: (elapsed * 1e6) / n, n }));
