/**
 * Certificates for Notation tests the way a PKI team would make them: an openssl root CA issuing
 * signet's own certificate request (src/kms/csr.ts) with `openssl x509 -req -copy_extensions copy`.
 * Returns the PolicyKey the exporters see plus the private key (for `notation sign` in tests).
 */
import { generateKeyPairSync, sign, type KeyObject } from 'node:crypto';
import { readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { createCsr } from '../../src/kms/csr.js';
import { SigningKey } from '../../src/kms/signing-key.js';
import type { PolicyKey } from '../../src/policy/index.js';
import { runProcess } from './proc.js';

async function openssl(...args: string[]): Promise<string> {
  const r = await runProcess('openssl', args, { timeoutMs: 60_000 });
  if (r.code !== 0) throw new Error(`openssl ${args.join(' ')}: ${r.stderr}`);
  return r.stdout;
}

export interface TestCa {
  dir: string;
  name: string;
  rootPem: string;
}

/** A self-signed P-256 root CA made by openssl (`subject` in openssl's /C=../O=.. form), files NAME.crt and NAME.key in `dir`. */
export async function opensslRoot(dir: string, name: string, subject: string): Promise<TestCa> {
  await openssl(
    'req',
    '-x509',
    '-newkey',
    'ec',
    '-pkeyopt',
    'ec_paramgen_curve:P-256',
    '-nodes',
    '-keyout',
    path.join(dir, `${name}.key`),
    '-subj',
    subject,
    '-days',
    '3',
    '-addext',
    'basicConstraints=critical,CA:TRUE',
    '-addext',
    'keyUsage=critical,keyCertSign,cRLSign',
    '-out',
    path.join(dir, `${name}.crt`),
  );
  return { dir, name, rootPem: readFileSync(path.join(dir, `${name}.crt`), 'utf8') };
}

export type IssuedKey = PolicyKey & { privateKey: KeyObject; certificate: string; chain: string[]; certFile: string; keyFile: string };

let serial = 0;
/** A fresh key whose code-signing certificate `ca` issues from signet's CSR for `subject` (RFC 4514, most specific first). */
export async function issuedKey(name: string, ca: TestCa, subject: string, kind: 'ec' | 'rsa' = 'ec'): Promise<IssuedKey> {
  const pair = kind === 'rsa' ? generateKeyPairSync('rsa', { modulusLength: 2048 }) : generateKeyPairSync('ec', { namedCurve: 'P-256' });
  const pem = pair.publicKey.export({ type: 'spki', format: 'pem' }).toString();
  const key = new SigningKey({ name, publicKeyPem: async () => pem, sign: async (_d, payload) => sign('sha256', payload!, pair.privateKey) }, pem);
  const csr = await createCsr(key, { subject });
  const base = path.join(ca.dir, `${name}-${++serial}`);
  writeFileSync(`${base}.csr`, csr);
  await openssl(
    'x509',
    '-req',
    '-in',
    `${base}.csr`,
    '-CA',
    path.join(ca.dir, `${ca.name}.crt`),
    '-CAkey',
    path.join(ca.dir, `${ca.name}.key`),
    '-set_serial',
    String(1000 + serial),
    '-days',
    '2',
    '-sha256',
    '-copy_extensions',
    'copy',
    '-out',
    `${base}.crt`,
  );
  writeFileSync(`${base}.key`, pair.privateKey.export({ type: 'pkcs8', format: 'pem' }), { mode: 0o600 });
  const certificate = readFileSync(`${base}.crt`, 'utf8');
  // leaf + root, as `notation sign` wants the chain in certPath
  writeFileSync(`${base}.chain.crt`, certificate + ca.rootPem);
  return { name, pem, certificate, chain: [ca.rootPem], privateKey: pair.privateKey, certFile: `${base}.chain.crt`, keyFile: `${base}.key` };
}
