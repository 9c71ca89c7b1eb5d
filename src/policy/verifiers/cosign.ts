/**
 * cosign's own command line (2.x and 3.x): the trust material and the exact `cosign verify`
 * commands, as files in one directory:
 *
 *   trusted_root.json   sigstore TrustedRoot (protobuf-specs sigstore_trustroot.proto, JSON form,
 *                       media type ...trustedroot+json;version=0.1, the one sigstore-go accepts):
 *                       the Rekor logs of the rules whose key is known, the RFC 3161 timestamp
 *                       authorities of the rules that stamp, and the CA chains of keys with a
 *                       certificate (bring-your-own PKI). No CT logs (signet's certificates have no SCT).
 *   <key>.pub           each key the rules use (SPKI PEM, what `signet keys export` prints)
 *   <key>.chain.pem     a key's certificate chain (bring-your-own PKI), for cosign 2.x SIGSTORE_ROOT_FILE
 *   rekor.pub           the Rekor public key (rekor-<n>.pub when the rules use several logs)
 *   tsa.chain.pem       a timestamp authority's chain (tsa-<n>.chain.pem with several), for cosign's
 *                       --timestamp-certificate-chain (legacy `.sig`)
 *   README.md           per rule and key, the `cosign verify` command for cosign 3.x and 2.x
 *
 * The document is shaped like `cosign trusted-root create` (cosign 3.1, sigstore-go
 * pkg/root/trusted_root_create.go) writes it: tlog `baseUrl`, `hashAlgorithm` SHA2_256,
 * `publicKey` {rawBytes DER SPKI, keyDetails, validFor.start}, `logId.keyId` = sha256 of the DER
 * SPKI; a CA's `subject` is its root's O and CN, `certChain` the issuers then the root (DER),
 * `validFor.start` the root's notBefore; empty lists are left out.
 */
import { X509Certificate } from 'node:crypto';
import { parseTimestampChain, trustedRootTimestampAuthority } from '../../transparency/timestamp.js';
import {
  chainRoot,
  isPublicRekor,
  keyChains,
  knownRekorLogs,
  knownTimestampAuthorities,
  normalizePem,
  rekorKey,
  rekorLogId,
  rekorNotes,
  rekorUrl,
  ruleLabel,
  ruleLog,
  writesLegacy,
  writesSigstore,
  type ExportResult,
  type PolicyDocument,
  type PolicyInput,
  type PolicyKey,
  type PolicyRule,
  type PolicyTimestamp,
  type RekorLog,
  type VerifierExporter,
} from '../model.js';

export const TRUSTED_ROOT_MEDIA_TYPE = 'application/vnd.dev.sigstore.trustedroot+json;version=0.1';
/** signet does not know when a log's key came into use: the whole past, as `cosign trusted-root create` does without a start time. */
export const LOG_VALID_FROM = '1970-01-01T00:00:00Z';
const COSIGN_SIGN_PREDICATE = 'https://sigstore.dev/cosign/sign/v1';

export type TrustedLog = RekorLog;

/** RFC 3339 the way protojson writes a Timestamp: no fractional seconds when there are none. */
const rfc3339 = (d: Date) => d.toISOString().replace(/\.000Z$/, 'Z');

function tlog(log: TrustedLog): Record<string, unknown> {
  const { der, keyDetails } = rekorKey(log);
  return {
    baseUrl: log.url,
    hashAlgorithm: 'SHA2_256',
    publicKey: { rawBytes: der.toString('base64'), keyDetails, validFor: { start: LOG_VALID_FROM } },
    logId: { keyId: rekorLogId(log).toString('base64') },
  };
}

/** One CertificateAuthority from a key's chain (issuers, parent first, root last). */
function certificateAuthority(chain: readonly string[]): Record<string, unknown> {
  const certs = chain.map((pem) => new X509Certificate(pem));
  const { root, organization, commonName } = chainRoot(chain);
  const subject = { ...(organization ? { organization } : {}), ...(commonName ? { commonName } : {}) };
  return {
    subject,
    certChain: { certificates: certs.map((c) => ({ rawBytes: c.raw.toString('base64') })) },
    validFor: { start: rfc3339(new Date(root.validFrom)) },
  };
}

/** The TrustedRoot JSON document for these logs, CA chains and timestamp authorities. */
export function trustedRoot(
  logs: readonly TrustedLog[],
  chains: readonly (readonly string[])[],
  tsas: readonly PolicyTimestamp[] = [],
): Record<string, unknown> {
  const doc: Record<string, unknown> = { mediaType: TRUSTED_ROOT_MEDIA_TYPE };
  if (logs.length) doc['tlogs'] = logs.map(tlog);
  if (chains.length) doc['certificateAuthorities'] = chains.map(certificateAuthority);
  if (tsas.length) doc['timestampAuthorities'] = tsas.map((t) => trustedRootTimestampAuthority(parseTimestampChain(t.chainPem), t.url));
  return doc;
}

/** A file name from a key name: letters, digits, `.`, `_`, `-`. */
const safeName = (s: string) => s.replace(/[^A-Za-z0-9._-]+/g, '-').replace(/^[.-]+/, '') || 'key';

/** `s` as one POSIX shell word. */
const shellWord = (s: string) => (/^[A-Za-z0-9@%+=:,./_-]+$/.test(s) ? s : `'${s.replace(/'/g, `'\\''`)}'`);

interface RuleLog {
  /** the log's public key file, when the key is known */
  file?: string;
  url: string;
}

/** The README lines for one rule and key (`files`: the key's .pub and, with a chain, its .chain.pem). */
function commands(rule: PolicyRule, key: PolicyKey, files: { pub: string; chain?: string }, log: RuleLog | undefined, tsaChain: string | undefined): string[] {
  const trusted = '--trusted-root trusted_root.json';
  const noTlog = '--insecure-ignore-tlog=true';
  // a timestamp gives cosign a verified time: the bundle's through the trusted root, the .sig's through the TSA chain file
  const stamps = tsaChain ? ' --use-signed-timestamps' : '';
  const sigStamps = tsaChain ? ` --use-signed-timestamps --timestamp-certificate-chain ${tsaChain}` : '';
  if (log && !log.file && !isPublicRekor(log.url)) {
    return [
      `Rekor ${log.url} is on for this rule but its public key is not configured, so trusted_root.json cannot name the log.`,
      `Set \`rekor.publicKey\` on the rule (\`curl ${log.url.replace(/\/$/, '')}/api/v1/log/publicKey\`) and export again.`,
      '',
    ];
  }
  // The public Rekor: cosign's own trusted root (TUF) already names it.
  const publicLog = log !== undefined && !log.file;
  const tlog = log ? '' : ` ${noTlog}`;
  const hasCertificate = Boolean(key.chain && key.identity && files.chain);
  const identity = hasCertificate ? `--certificate-identity ${shellWord(key.identity!)} --certificate-oidc-issuer-regexp '.*' --insecure-ignore-sct=true` : '';
  // A bundle made with a certificate is checked against the CA in trusted_root.json and the
  // certificate's identity: cosign 3 `--key` refuses it ("expected key signature, not certificate").
  // So is a `.sig` with a Rekor entry (the entry names the certificate; cosign 3 would also take
  // `--key` for it, but then nothing checks the CA).
  const byCertificate = hasCertificate && (rule.formats?.includes('bundle') || log || tsaChain) && !publicLog;
  // cosign 3 reads the bundle when the image has one, else the .sig (with the .sig's own flags)
  const bundleRead = rule.formats?.includes('bundle') ?? false;
  // cosign 2.x compares a `.sig`'s Rekor entry with `--key` when given one and with the
  // certificate otherwise (pkg/cosign/verify.go keyBytes in v2.5.0): with a log, the certificate.
  // With a timestamp (a verified time), the certificate is checked against the chain too.
  const legacyByCertificate = hasCertificate && (log !== undefined || tsaChain !== undefined);
  const lines = ['```sh', '# cosign 3.x'];
  if (byCertificate) lines.push(`cosign verify ${trusted} ${identity}${tlog}${bundleRead ? stamps : sigStamps} "$IMAGE"`);
  // Without a log or a TSA cosign 3.x needs no trusted root (checked: it then makes no TUF request).
  else if (tsaChain && bundleRead) lines.push(`cosign verify --key ${files.pub} ${trusted}${tlog}${stamps} "$IMAGE"`);
  else lines.push(`cosign verify --key ${files.pub}${publicLog ? '' : ` ${log ? trusted : noTlog}`}${bundleRead ? '' : sigStamps} "$IMAGE"`);
  lines.push('# cosign 2.x');
  const env = log?.file ? `SIGSTORE_REKOR_PUBLIC_KEY=${log.file} ` : '';
  const rekorUrl = log && !publicLog ? ` --rekor-url ${log.url}` : '';
  if (writesLegacy(rule)) {
    const by = legacyByCertificate ? `--certificate-chain ${files.chain} ${identity}` : `--key ${files.pub}`;
    lines.push(`${env}cosign verify ${by}${rekorUrl}${tlog}${sigStamps} "$IMAGE"`);
  } else if (byCertificate) {
    // cosign 2.x loads its CA roots (SIGSTORE_ROOT_FILE, else TUF) before it reads the trusted root.
    lines.push(
      `SIGSTORE_ROOT_FILE=${files.chain} cosign verify-attestation --new-bundle-format ${trusted} ${identity}${tlog}${stamps} --type ${COSIGN_SIGN_PREDICATE} "$IMAGE"`,
    );
  } else {
    // cosign 2.x `verify` reads only the .sig tag; bundles go through verify-attestation.
    lines.push(
      `cosign verify-attestation --new-bundle-format ${publicLog ? '' : `${trusted} `}--key ${files.pub}${tlog}${stamps} --type ${COSIGN_SIGN_PREDICATE} "$IMAGE"`,
    );
  }
  lines.push('```', '');
  return lines;
}

export const cosignExporter: VerifierExporter = {
  id: 'cosign',
  title: 'cosign 2.x/3.x: trusted_root.json, public keys and the cosign verify commands (README.md)',
  export(input: PolicyInput): ExportResult {
    const notes: string[] = [];
    const documents: PolicyDocument[] = [];
    if (input.rules.length === 0) return { documents, notes: ['cosign: the config has no rules: nothing to verify'] };

    // Files for the keys (one per distinct key name) and the logs (one per distinct log key).
    const keyFiles = new Map<string, { pub: string; chain?: string }>();
    const used = new Set<string>();
    const logs = knownRekorLogs(input.rules).map((l, i, all) => ({ ...l, file: all.length === 1 ? 'rekor.pub' : `rekor-${i + 1}.pub` }));
    for (const rule of input.rules) {
      for (const k of rule.keys) {
        if (!keyFiles.has(k.name)) {
          let base = safeName(k.name);
          for (let i = 2; used.has(base); i++) base = `${safeName(k.name)}-${i}`;
          used.add(base);
          const files = { pub: `${base}.pub`, ...(k.chain?.length ? { chain: `${base}.chain.pem` } : {}) };
          keyFiles.set(k.name, files);
          documents.push({ file: files.pub, content: {}, text: normalizePem(k.pem) });
          if (files.chain) documents.push({ file: files.chain, content: {}, text: k.chain!.map((c) => (c.endsWith('\n') ? c : `${c}\n`)).join('') });
        }
      }
    }
    for (const l of logs) documents.push({ file: l.file, content: {}, text: l.publicKeyPem });
    const tsas = knownTimestampAuthorities(input.rules).map((t, i, all) => ({ ...t, file: all.length === 1 ? 'tsa.chain.pem' : `tsa-${i + 1}.chain.pem` }));
    for (const t of tsas) documents.push({ file: t.file, content: {}, text: t.chainPem });

    const readme: string[] = [
      '# Verifying signet signatures with cosign',
      '',
      'Generated by `signet policy export --for cosign`. Run the commands in this directory, with',
      "`IMAGE` set to an image the rule signs (by digest: `host/repo@sha256:...`). Add cosign's",
      'registry flags as needed (`--allow-http-registry`, `--registry-cacert`, ...).',
      '',
      '* `trusted_root.json`: the Rekor logs the rules write to, the timestamp authorities they',
      '  stamp with and the CAs of keys with a certificate chain, for `cosign verify --trusted-root`',
      '  (cosign 3.x; cosign 2.x reads it for sigstore bundles). `tsa*.chain.pem`: a timestamp',
      "  authority's chain, for `.sig` signatures (`--timestamp-certificate-chain`).",
      '* `<key>.pub`: the public keys; `rekor*.pub`: the Rekor public keys (cosign 2.x reads the',
      '  log key from `SIGSTORE_REKOR_PUBLIC_KEY`).',
      '* Without Rekor the commands skip the log (`--insecure-ignore-tlog=true`): signet wrote no',
      '  entry. A rule with several keys needs one passing command per key.',
      '',
    ];
    for (const rule of input.rules) {
      notes.push(...rekorNotes(rule, 'cosign'));
      const known = ruleLog(rule, logs);
      const log: RuleLog | undefined = rule.rekor && { url: rekorUrl(rule)!, ...(known ? { file: known.file } : {}) };
      if (log && !log.file) {
        notes.push(
          isPublicRekor(log.url)
            ? `cosign: ${ruleLabel(rule)} logs to the public Rekor: cosign's own trusted root (TUF) names it, the commands use that`
            : `cosign: ${ruleLabel(rule)}: Rekor ${log.url} has no publicKey in the config, so trusted_root.json cannot name it and cosign cannot check its entries`,
        );
      }
      readme.push(`## ${ruleLabel(rule)}`, '');
      if (!writesSigstore(rule)) {
        readme.push('This rule writes only Notary Project signatures: verify them with `notation` (`signet policy export --for notation`).', '');
        notes.push(`cosign: ${ruleLabel(rule)} writes only Notary Project signatures, which cosign does not read: no command`);
        continue;
      }
      const tsa = rule.timestamp && tsas.find((t) => t.chainPem === rule.timestamp!.chainPem);
      readme.push(`Formats: ${(rule.formats ?? ['legacy']).join(', ')}; Rekor: ${log ? log.url : 'none'}; timestamps: ${tsa ? tsa.url : 'none'}.`, '');
      for (const k of rule.keys) {
        readme.push(`### key ${k.name}`, '', ...commands(rule, k, keyFiles.get(k.name)!, log, tsa ? tsa.file : undefined));
        if (k.chain?.length) {
          readme.push(
            `Key ${k.name} has a certificate${k.identity ? ` (${k.identity})` : ''}: its CA chain is in trusted_root.json and ${keyFiles.get(k.name)!.chain}.` +
              (log && writesLegacy(rule)
                ? ' The Rekor entries of its `.sig` signatures name the certificate, as cosign 3.0.3 and later require; cosign 2.x compares the entry with `--key` when given one, so its command checks the certificate instead.'
                : ' `--key` checks a `.sig` signature with the key alone.'),
            '',
          );
          if (!k.identity) {
            notes.push(
              `cosign: key ${k.name}: its certificate has no email or URI subject alternative name, so there is no --certificate-identity to check` +
                (log && writesLegacy(rule)
                  ? `; cosign 2.x --key refuses its .sig signatures under ${ruleLabel(rule)} (the Rekor entry names the certificate)`
                  : ''),
            );
          }
        }
      }
    }
    notes.push("cosign: trusted_root.json names no CT log (signet's certificates carry no SCT: the commands pass --insecure-ignore-sct)");
    if (logs.length)
      notes.push(
        `cosign: the Rekor keys in trusted_root.json are valid from ${LOG_VALID_FROM} (signet does not know when a log key came into use); after a log key rotation set the old key's end by hand`,
      );

    documents.unshift({ file: 'trusted_root.json', format: 'json', content: trustedRoot(logs, keyChains(input.rules), tsas) });
    documents.push({ file: 'README.md', content: {}, text: `${readme.join('\n').trimEnd()}\n` });
    return { documents, notes: [...new Set(notes)] };
  },
};
