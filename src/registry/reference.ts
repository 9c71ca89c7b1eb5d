/**
 * Image references and the name grammar of the distribution spec. Validating repository names
 * here (not just URL-encoding them) is what keeps "../" and friends out of registry URLs.
 */
import { SignetError } from '../errors.js';

/** distribution/reference: path components joined by "/". */
const component = '[a-z0-9]+(?:(?:[._]|__|[-]+)[a-z0-9]+)*';
const repositoryRe = new RegExp(`^${component}(?:/${component})*$`);
const tagRe = /^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$/;
const digestRe = /^sha256:[a-f0-9]{64}$/;
const hostRe = /^(?:[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?)*|\[[0-9a-fA-F:]+\])(?::[0-9]{1,5})?$/;

export interface ImageReference {
  host: string;
  repository: string;
  tag?: string;
  digest?: string;
}

export function isValidRepository(name: string): boolean {
  return name.length <= 255 && repositoryRe.test(name);
}
export function isValidTag(tag: string): boolean {
  return tagRe.test(tag);
}
export function isValidDigest(d: string): boolean {
  return digestRe.test(d);
}
export function isValidHost(h: string): boolean {
  return hostRe.test(h);
}

/**
 * Parses "host/repo[:tag][@sha256:...]". A first component without "." or ":" (and not
 * "localhost") means Docker Hub, as docker does: "nginx" -> docker.io/library/nginx.
 */
export function parseReference(ref: string): ImageReference {
  const bad = (why: string): never => {
    throw new SignetError('INVALID_REFERENCE', `invalid image reference "${ref.slice(0, 300)}": ${why}`);
  };
  if (!ref || ref.length > 1024) bad('empty or too long');
  let rest = ref;
  let digest: string | undefined;
  const at = rest.indexOf('@');
  if (at >= 0) {
    digest = rest.slice(at + 1);
    rest = rest.slice(0, at);
    if (!isValidDigest(digest)) bad('digest must be sha256:<64 lowercase hex>');
  }
  let host: string;
  const slash = rest.indexOf('/');
  const first = slash >= 0 ? rest.slice(0, slash) : '';
  if (slash >= 0 && (first.includes('.') || first.includes(':') || first === 'localhost' || first.startsWith('['))) {
    host = first;
    rest = rest.slice(slash + 1);
  } else {
    host = 'docker.io';
    if (!rest.includes('/')) rest = `library/${rest}`;
  }
  let tag: string | undefined;
  const colon = rest.lastIndexOf(':');
  if (colon >= 0) {
    tag = rest.slice(colon + 1);
    rest = rest.slice(0, colon);
    if (!isValidTag(tag)) bad('invalid tag');
  }
  if (!isValidHost(host)) bad('invalid registry host');
  if (!isValidRepository(rest)) bad('invalid repository name (lowercase letters, digits, separators . _ - /)');
  return { host, repository: rest, ...(tag ? { tag } : {}), ...(digest ? { digest } : {}) };
}

export function formatReference(r: ImageReference): string {
  return `${r.host}/${r.repository}${r.tag ? `:${r.tag}` : ''}${r.digest ? `@${r.digest}` : ''}`;
}

/** cosign's legacy signature tag for a digest: sha256:<hex> -> sha256-<hex>.sig */
export function signatureTag(digest: string): string {
  return `${digest.replace(':', '-')}.sig`;
}

/** Tags cosign-style tools write for attachments (and the OCI referrers fallback tag). */
export function isAttachmentTag(tag: string): boolean {
  return /^sha256-[a-f0-9]{64}(?:\.(?:sig|att|sbom|[a-z0-9]+))?$/.test(tag);
}
