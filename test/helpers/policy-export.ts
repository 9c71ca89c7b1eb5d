/**
 * The setup the `signet policy export` end-to-end tests share: file keys (one of them may carry a
 * certificate chain) in a temp directory, the Rekor stand-in, a real docker-registry and signet
 * (in-process, real Redis) on a config naming them; running the export into a folder of that
 * directory; pushing and signing an image.
 */
import { generateKeyPairSync, type KeyObject } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import path from 'node:path';
import { main } from '../../src/cli.js';
import { tempDir } from './cosign.js';
import { pushImage } from './images.js';
import { issueSignerChain } from './pki.js';
import { startRekor, type RekorStandIn } from './rekor.js';
import { startRegistry, type RunningRegistry } from './registry.js';
import { startSignet, type RunningSignet } from './signet.js';

/** Writes a fresh P-256 private key to `<dir>/<name>.pem` (PKCS#8); returns the public half. */
export function writeFileKey(dir: string, name: string): KeyObject {
  const { privateKey, publicKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
  writeFileSync(path.join(dir, `${name}.pem`), privateKey.export({ type: 'pkcs8', format: 'pem' }));
  return publicKey;
}

export interface ExportStack {
  tmp: { dir: string; remove: () => void };
  /** A path in `tmp.dir`. */
  file: (...p: string[]) => string;
  rekor: RekorStandIn;
  registry: RunningRegistry;
  signet: RunningSignet;
  /** SPKI PEM of each key, by name. */
  pub: Record<string, string>;
  /** Stops signet, the registry and Rekor, and removes the temp directory. */
  stop(): Promise<void>;
}

/**
 * In a fresh temp directory: a P-256 file key per name in `keys` (in that order); the key named
 * `certKey` also gets `<certKey>.crt` issued under a fresh root and intermediate, whose chain is
 * `chain.pem`. Then starts the Rekor stand-in, a registry, and signet on `signet.yaml`: the
 * registry (insecure), the keys, and `rules(host, rekorBlock)` (one flow mapping per rule;
 * `rekorBlock` names the stand-in and its log key). On a failure, whatever was started is stopped.
 */
export async function startExportStack(o: { keys: string[]; certKey?: string; rules: (host: string, rekorBlock: string) => string[] }): Promise<ExportStack> {
  const tmp = tempDir();
  const file = (...p: string[]) => path.join(tmp.dir, ...p);
  const pub: Record<string, string> = {};
  const started: { rekor?: RekorStandIn; registry?: RunningRegistry; signet?: RunningSignet } = {};
  const stop = async () => {
    await started.signet?.stop();
    await started.registry?.stop();
    await started.rekor?.stop();
    tmp.remove();
  };
  try {
    for (const name of o.keys) {
      const publicKey = writeFileKey(tmp.dir, name);
      pub[name] = publicKey.export({ type: 'spki', format: 'pem' }).toString();
      if (name === o.certKey) {
        const { certificate, chain } = issueSignerChain(publicKey);
        writeFileSync(file(`${name}.crt`), certificate);
        writeFileSync(file('chain.pem'), chain);
      }
    }
    const rekor = (started.rekor = await startRekor());
    const registry = (started.registry = await startRegistry());
    const H = registry.host;
    const rekorBlock = `{ url: "${rekor.url}", publicKey: ${JSON.stringify(rekor.publicKeyPem)} }`;
    const keyLine = (name: string) =>
      name === o.certKey
        ? `{ name: ${name}, provider: file, path: ${name}.pem, certificate: ${name}.crt, chain: chain.pem }`
        : `{ name: ${name}, provider: file, path: ${name}.pem }`;
    const yaml = `
registries:
  - { host: "${H}", insecure: true }
keys:
${o.keys.map((k) => `  - ${keyLine(k)}\n`).join('')}rules:
${o
  .rules(H, rekorBlock)
  .map((r) => `  - ${r}\n`)
  .join('')}`;
    writeFileSync(file('signet.yaml'), yaml);
    const signet = (started.signet = await startSignet(yaml, { baseDir: tmp.dir }));
    return { tmp, file, rekor, registry, signet, pub, stop };
  } catch (err) {
    await stop();
    throw err;
  }
}

/**
 * Runs `signet --config <dir>/signet.yaml policy export --for <target> --out <dir>/<folder>`
 * in-process; throws with stderr if it fails. Returns the folder and the stderr lines (the notes).
 */
export async function exportPolicy(stack: ExportStack, target: string, folder: string): Promise<{ out: string; err: string[] }> {
  const out = stack.file(folder);
  const err: string[] = [];
  const code = await main(
    ['--config', stack.file('signet.yaml'), 'policy', 'export', '--for', target, '--out', out],
    () => {},
    (l) => err.push(l),
  );
  if (code !== 0) throw new Error(`policy export failed: ${err.join('\n')}`);
  return { out, err };
}

/** Pushes `<repository>:v1` and has signet sign it (throws unless signed); the digest reference. */
export async function signedImage(stack: ExportStack, repository: string): Promise<string> {
  const img = await pushImage(stack.registry, repository, 'v1');
  const report = await stack.signet.runtime.pipeline.sign({ host: stack.registry.host, repository, tag: 'v1' });
  if (report.status !== 'signed') throw new Error(`not signed: ${JSON.stringify(report)}`);
  return `${stack.registry.host}/${repository}@${img.digest}`;
}
