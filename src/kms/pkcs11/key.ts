/**
 * One PKCS#11 key once its module and token are found: log in (once per token), find the private
 * key, read its public half and what the token lets it do, self-test one signature, and sign
 * (one C_SignInit + C_SignAsync per signature on a pooled session). See ../pkcs11.ts for the
 * whole picture.
 */
import { constants, createHash, createPublicKey, timingSafeEqual, verify, X509Certificate, type KeyObject } from 'node:crypto';
import type * as Pkcs11Types from 'pkcs11js';
import { SignetError } from '../../errors.js';
import { assertSha256Digest } from '../digest-arg.js';
import { rawEcdsaToDer } from '../ecdsa.js';
import { PSS_SALT_LENGTH } from '../pss.js';
import { BOTH_PADDINGS, type KeyAlgorithm, type RsaPadding, type SignOptions } from '../types.js';
import type { Pkcs11KeyConfig, Pkcs11KeyProvider } from '../pkcs11.js';
import {
  CKF_LOGIN_REQUIRED,
  CKF_USER_PIN_FINAL_TRY,
  CKF_USER_PIN_LOCKED,
  CKK_EC_EDWARDS,
  CKK_EC_MONTGOMERY,
  ckr,
  ulong,
  type Handle,
  type Pkcs11Binding,
} from './binding.js';
import { classify, UNAVAILABLE } from './errors.js';
import { attr, b64u, describeCurve, ecPointToSpki, findObjects, P256_PARAMS } from './objects.js';
import { releaseModule, slotNumber, type ModuleEntry, type TokenPool } from './tokens.js';

const SHA256_DIGEST_INFO = Buffer.from('3031300d060960864801650304020105000420', 'hex');

export async function setUpKey(cfg: Pkcs11KeyConfig, p: Pkcs11Binding, mod: ModuleEntry, pool: TokenPool, pin: string | undefined): Promise<Pkcs11KeyProvider> {
  const lib = mod.lib;
  const keyDesc = [cfg.label !== undefined ? `label "${cfg.label}"` : '', cfg.id !== undefined ? `id ${cfg.id}` : ''].filter(Boolean).join(', ');
  const where = `${pool.describe} of ${mod.path}`;
  const pinDigest = pin === undefined ? undefined : createHash('sha256').update(pin).digest();

  /** C_Login once per token; a second key on the token must bring the same PIN. */
  function login(session: Handle): void {
    if (pool.loggedIn) {
      if (pinDigest && pool.pinDigest && !timingSafeEqual(pinDigest, pool.pinDigest)) {
        throw new SignetError(
          'KEY_DENIED',
          `key "${cfg.name}": PKCS#11 C_Login failed: CKR_PIN_INCORRECT: wrong PIN (another key logged in to ${pool.describe} with a different PIN)`,
        );
      }
      if (!pinDigest && pool.flags & CKF_LOGIN_REQUIRED) {
        throw new SignetError('KEY_DENIED', `key "${cfg.name}": ${where} requires a PIN and none is configured (set pin or COSIGN_PKCS11_PIN)`);
      }
      return;
    }
    if (pin === undefined) {
      if (pool.flags & CKF_LOGIN_REQUIRED) {
        throw new SignetError('KEY_DENIED', `key "${cfg.name}": ${where} requires a PIN and none is configured (set pin or COSIGN_PKCS11_PIN)`);
      }
      return;
    }
    let flags = pool.flags;
    try {
      flags = lib.C_GetTokenInfo(pool.slot).flags;
    } catch {
      // use what we saw when the token was found
    }
    if (flags & CKF_USER_PIN_LOCKED) throw new SignetError('KEY_DENIED', `key "${cfg.name}": the user PIN of ${where} is locked`);
    if (flags & CKF_USER_PIN_FINAL_TRY) {
      // a wrong PIN now would lock the token (e.g. in a restart loop): leave the last try to a human
      throw new SignetError(
        'KEY_DENIED',
        `key "${cfg.name}": ${where} allows one more PIN attempt only; not logging in (check the PIN, then log in once by hand)`,
      );
    }
    try {
      lib.C_Login(session, p.CKU_USER, pin);
    } catch (err) {
      if (ckr(err) !== 'CKR_USER_ALREADY_LOGGED_IN') throw classify(err, cfg.name, `C_Login to ${pool.describe}`);
    }
    pool.loggedIn = true;
    pool.pinDigest = pinDigest;
  }

  function findPrivate(session: Handle): Handle {
    const template: Pkcs11Types.Template = [{ type: p.CKA_CLASS, value: p.CKO_PRIVATE_KEY }];
    if (cfg.id !== undefined) template.push({ type: p.CKA_ID, value: Buffer.from(cfg.id, 'hex') });
    if (cfg.label !== undefined) template.push({ type: p.CKA_LABEL, value: cfg.label });
    let found: Handle[];
    try {
      found = findObjects(lib, session, template);
    } catch (err) {
      throw classify(err, cfg.name, `C_FindObjects on ${pool.describe}`);
    }
    if (found.length === 0) {
      throw new SignetError('KEY_NOT_FOUND', `key "${cfg.name}": no private key with ${keyDesc} on ${where}`);
    }
    if (found.length > 1) {
      throw new SignetError('KEY_INVALID', `key "${cfg.name}": ${found.length} private keys match ${keyDesc} on ${where}; add id or label to pick one`);
    }
    return found[0]!;
  }

  // --- inspect the key (one session, synchronous calls)
  const session = await pool.acquire(cfg.name);
  let broken = false;
  let keyHandle: Handle | undefined;
  let algorithm: KeyAlgorithm;
  let keyBits: number;
  let publicKey: KeyObject;
  let sigLen: number;
  const mechs = new Set<number>();
  /** What the token offers for this key (its CKA_ALLOWED_MECHANISMS included). */
  let pkcs1Raw = false;
  let pkcs1Hash = false;
  let pssRaw = false;
  let pssHash = false;
  try {
    login(session);
    keyHandle = findPrivate(session);
    const keyType = ulong(attr(lib, session, keyHandle, p.CKA_KEY_TYPE));
    const idBytes = attr(lib, session, keyHandle, p.CKA_ID);
    const labelBytes = attr(lib, session, keyHandle, p.CKA_LABEL);
    const refuse = (what: string, why: string): never => {
      throw new SignetError('KEY_UNSUPPORTED', `key "${cfg.name}" is ${what} (${keyDesc} on ${pool.describe}): ${why}`);
    };
    try {
      for (const m of lib.C_GetMechanismList(pool.slot)) mechs.add(m);
    } catch (err) {
      throw classify(err, cfg.name, `C_GetMechanismList on ${pool.describe}`);
    }
    const allowedRaw = attr(lib, session, keyHandle, p.CKA_ALLOWED_MECHANISMS);
    const allowed = new Set<number>();
    if (allowedRaw && allowedRaw.length > 0) {
      const w = allowedRaw.length % 8 === 0 ? 8 : 4;
      for (let i = 0; i + w <= allowedRaw.length; i += w) allowed.add(ulong(allowedRaw.subarray(i, i + w))!);
    }
    const usable = (m: number) => mechs.has(m) && (allowed.size === 0 || allowed.has(m));

    /** The public half: the public key object, else attributes of the private key, else a certificate. */
    const companion = (cls: number): Handle | undefined => {
      const t: Pkcs11Types.Template = [{ type: p.CKA_CLASS, value: cls }];
      if (idBytes && idBytes.length > 0) t.push({ type: p.CKA_ID, value: idBytes });
      else if (labelBytes && labelBytes.length > 0) t.push({ type: p.CKA_LABEL, value: labelBytes });
      else return undefined;
      const found = findObjects(lib, session, t, 2);
      return found.length === 1 ? found[0] : undefined;
    };
    const fromCertificate = (): KeyObject | undefined => {
      const cert = companion(p.CKO_CERTIFICATE);
      const der = cert && attr(lib, session, cert, p.CKA_VALUE);
      if (!der) return undefined;
      try {
        return new X509Certificate(der).publicKey;
      } catch {
        return undefined;
      }
    };

    if (keyType === p.CKK_RSA) {
      const pubObj = companion(p.CKO_PUBLIC_KEY);
      const modulus = (pubObj && attr(lib, session, pubObj, p.CKA_MODULUS)) ?? attr(lib, session, keyHandle, p.CKA_MODULUS);
      const exponent = (pubObj && attr(lib, session, pubObj, p.CKA_PUBLIC_EXPONENT)) ?? attr(lib, session, keyHandle, p.CKA_PUBLIC_EXPONENT);
      let pub: KeyObject | undefined;
      if (modulus && exponent) pub = createPublicKey({ key: { kty: 'RSA', n: b64u(modulus), e: b64u(exponent) }, format: 'jwk' });
      pub ??= fromCertificate();
      if (!pub)
        throw new SignetError('KEY_INVALID', `key "${cfg.name}": no unique public key object (nor certificate) for the RSA key with ${keyDesc} on ${where}`);
      const privModulus = attr(lib, session, keyHandle, p.CKA_MODULUS);
      const pubJwk = pub.export({ format: 'jwk' });
      if (privModulus && pubJwk.n !== b64u(privModulus)) {
        throw new SignetError('KEY_INVALID', `key "${cfg.name}": the public key found for ${keyDesc} on ${where} does not belong to the private key`);
      }
      keyBits = pub.asymmetricKeyDetails?.modulusLength ?? 0;
      if (pub.asymmetricKeyType !== 'rsa') refuse(`${pub.asymmetricKeyType}`, 'not an RSA public key');
      if (keyBits < 2048 || keyBits > 4096) refuse(`RSA-${keyBits}`, 'RSA keys need 2048 to 4096 bits');
      pkcs1Raw = usable(p.CKM_RSA_PKCS);
      pkcs1Hash = usable(p.CKM_SHA256_RSA_PKCS);
      pssRaw = usable(p.CKM_RSA_PKCS_PSS);
      pssHash = usable(p.CKM_SHA256_RSA_PKCS_PSS);
      if (!pkcs1Raw && !pkcs1Hash && !pssRaw && !pssHash) {
        refuse(
          `RSA-${keyBits}`,
          allowed.size > 0
            ? 'its allowed mechanisms exclude both PKCS#1 v1.5 and RSASSA-PSS with SHA-256'
            : 'the token offers none of CKM_RSA_PKCS, CKM_SHA256_RSA_PKCS, CKM_RSA_PKCS_PSS, CKM_SHA256_RSA_PKCS_PSS',
        );
      }
      algorithm = 'rsa-2048';
      publicKey = pub;
      sigLen = Math.ceil(keyBits / 8);
    } else if (keyType === p.CKK_EC) {
      const params = attr(lib, session, keyHandle, p.CKA_EC_PARAMS);
      if (!params || !params.equals(P256_PARAMS)) refuse(describeCurve(params), 'only the P-256 curve is supported');
      const pubObj = companion(p.CKO_PUBLIC_KEY);
      const point = pubObj && attr(lib, session, pubObj, p.CKA_EC_POINT);
      const pub = (point && ecPointToSpki(point)) ?? fromCertificate();
      if (!pub)
        throw new SignetError('KEY_INVALID', `key "${cfg.name}": no unique public key object (nor certificate) for the EC key with ${keyDesc} on ${where}`);
      if (pub.asymmetricKeyType !== 'ec' || pub.asymmetricKeyDetails?.namedCurve !== 'prime256v1') {
        throw new SignetError('KEY_INVALID', `key "${cfg.name}": the public key found for ${keyDesc} on ${where} is not P-256`);
      }
      if (!usable(p.CKM_ECDSA) && !usable(p.CKM_ECDSA_SHA256)) refuse('EC P-256', 'the token does not offer CKM_ECDSA for it');
      algorithm = 'ecdsa-p256';
      keyBits = 256;
      publicKey = pub;
      sigLen = 64;
    } else {
      const what =
        keyType === CKK_EC_EDWARDS
          ? 'an EdDSA key'
          : keyType === CKK_EC_MONTGOMERY
            ? 'a Montgomery-curve key'
            : keyType === p.CKK_DSA
              ? 'a DSA key'
              : `key type 0x${(keyType ?? 0).toString(16)}`;
      return refuse(what, 'only ECDSA P-256 and RSA (2048 to 4096 bits) keys are supported');
    }
    const canSign = attr(lib, session, keyHandle, p.CKA_SIGN);
    if (canSign && canSign.length > 0 && canSign[0] === 0) refuse(algorithm === 'rsa-2048' ? `RSA-${keyBits}` : 'EC P-256', 'CKA_SIGN is false');
    const always = attr(lib, session, keyHandle, p.CKA_ALWAYS_AUTHENTICATE);
    if (always && always.length > 0 && always[0] !== 0) {
      refuse(algorithm === 'rsa-2048' ? `RSA-${keyBits}` : 'EC P-256', 'CKA_ALWAYS_AUTHENTICATE keys need a PIN entry per signature');
    }
  } catch (err) {
    broken = !(err instanceof SignetError) || err.retryable;
    throw classify(err, cfg.name, `key lookup on ${pool.describe}`);
  } finally {
    pool.release(session, broken);
  }

  const spkiPem = publicKey.export({ type: 'spki', format: 'pem' }) as string;
  const useRsaRaw = mechs.has(p.CKM_RSA_PKCS);
  const useRsaHash = mechs.has(p.CKM_SHA256_RSA_PKCS);
  const useEcdsa = mechs.has(p.CKM_ECDSA);
  const canPkcs1 = pkcs1Raw || pkcs1Hash;
  const canPss = pssRaw || pssHash;
  const paddings: readonly RsaPadding[] =
    algorithm === 'ecdsa-p256' ? BOTH_PADDINGS : [...(canPkcs1 ? ['pkcs1v15' as const] : []), ...(canPss ? ['pss' as const] : [])];
  /** CK_RSA_PKCS_PSS_PARAMS: SHA-256, MGF1-SHA-256, a 32-byte salt (notary.x509). */
  const pssParams: Pkcs11Types.RsaPSS = { type: p.CK_PARAMS_RSA_PSS, hashAlg: p.CKM_SHA256, mgf: p.CKG_MGF1_SHA256, saltLen: PSS_SALT_LENGTH };

  let inflight = 0;
  let drained: (() => void) | undefined;
  let closed = false;

  async function signOnce(digest: Buffer, payload: Buffer | undefined, pss = false): Promise<Buffer> {
    const withPayload = payload !== undefined && createHash('sha256').update(payload).digest().equals(digest);
    let mechanism: number;
    let parameter: Pkcs11Types.RsaPSS | undefined;
    let data: Buffer;
    if (algorithm === 'rsa-2048' && pss) {
      parameter = pssParams;
      if (pssRaw) {
        mechanism = p.CKM_RSA_PKCS_PSS;
        data = digest;
      } else if (pssHash && withPayload) {
        mechanism = p.CKM_SHA256_RSA_PKCS_PSS;
        data = payload!;
      } else {
        throw new SignetError(
          'KEY_SIGN_FAILED',
          `key "${cfg.name}": ${pssHash ? `${pool.describe} only offers CKM_SHA256_RSA_PKCS_PSS for it, which needs the payload` : `cannot sign RSASSA-PSS (${keyDesc} on ${pool.describe} allows neither CKM_RSA_PKCS_PSS nor CKM_SHA256_RSA_PKCS_PSS)`}`,
        );
      }
    } else if (algorithm === 'rsa-2048') {
      if (!canPkcs1) {
        throw new SignetError(
          'KEY_SIGN_FAILED',
          `key "${cfg.name}": cannot sign PKCS#1 v1.5 (${keyDesc} on ${pool.describe} is restricted to RSASSA-PSS); cosign formats need a PKCS#1 v1.5 key`,
        );
      }
      if (withPayload && useRsaHash) {
        mechanism = p.CKM_SHA256_RSA_PKCS;
        data = payload!;
      } else if (useRsaRaw) {
        mechanism = p.CKM_RSA_PKCS;
        data = Buffer.concat([SHA256_DIGEST_INFO, digest]);
      } else {
        throw new SignetError('KEY_SIGN_FAILED', `key "${cfg.name}": ${pool.describe} only offers CKM_SHA256_RSA_PKCS, which needs the payload`);
      }
    } else if (useEcdsa || !withPayload) {
      mechanism = p.CKM_ECDSA;
      data = digest;
    } else {
      mechanism = p.CKM_ECDSA_SHA256;
      data = payload!;
    }
    const session = await pool.acquire(cfg.name);
    let broken = false;
    let started = false;
    try {
      login(session);
      keyHandle ??= findPrivate(session);
      started = true;
      lib.C_SignInit(session, parameter ? { mechanism, parameter } : { mechanism }, keyHandle);
      const out = await lib.C_SignAsync(session, data, Buffer.alloc(sigLen));
      if (algorithm === 'ecdsa-p256') {
        if (out.length !== 64) throw new SignetError('KEY_SIGN_FAILED', `key "${cfg.name}": CKM_ECDSA returned ${out.length} bytes, expected 64`);
        return rawEcdsaToDer(out);
      }
      if (out.length !== sigLen) throw new SignetError('KEY_SIGN_FAILED', `key "${cfg.name}": RSA signature of ${out.length} bytes, expected ${sigLen}`);
      return out;
    } catch (err) {
      const code = ckr(err);
      // a failed C_SignInit/C_Sign may leave the operation active, and session or device errors
      // leave the session unusable: drop it. (Not for our own checks, e.g. a key that is gone.)
      broken = started || (code !== undefined && UNAVAILABLE.has(code));
      if (code === 'CKR_KEY_HANDLE_INVALID' || code === 'CKR_OBJECT_HANDLE_INVALID') keyHandle = undefined;
      if (code === 'CKR_USER_NOT_LOGGED_IN') {
        pool.loggedIn = false;
        throw new SignetError(
          'KEY_UNAVAILABLE',
          `key "${cfg.name}": PKCS#11 session on ${pool.describe} lost its login; logging in again on the next attempt`,
          { cause: err },
        );
      }
      throw classify(err, cfg.name, `C_SignInit/C_Sign on ${pool.describe}`);
    } finally {
      pool.release(session, broken);
    }
  }

  // Self-test: a signature over sha256(x) must verify with the public key we export (a PSS-only
  // key is tested with PSS).
  const probe = Buffer.from(`signet self-test for key ${cfg.name}`);
  const probePss = algorithm === 'rsa-2048' && !canPkcs1;
  const probeSig = await signOnce(createHash('sha256').update(probe).digest(), probe, probePss);
  const probeOk = probePss
    ? verify('sha256', probe, { key: publicKey, padding: constants.RSA_PKCS1_PSS_PADDING, saltLength: PSS_SALT_LENGTH }, probeSig)
    : verify('sha256', probe, publicKey, probeSig);
  if (!probeOk) {
    throw new SignetError('KEY_INVALID', `key "${cfg.name}": self-test signature by ${keyDesc} on ${where} does not verify with its public key`);
  }

  return {
    name: cfg.name,
    algorithm,
    keyBits,
    async publicKeyPem() {
      return spkiPem;
    },
    async paddings() {
      return paddings;
    },
    async sign(digest: Buffer, payload?: Buffer, opts?: SignOptions) {
      assertSha256Digest(cfg.name, digest);
      if (closed) throw new SignetError('KEY_UNAVAILABLE', `key "${cfg.name}": the PKCS#11 key was closed`);
      inflight++;
      try {
        return await signOnce(digest, payload, opts?.rsaPadding === 'pss');
      } finally {
        if (--inflight === 0) drained?.();
      }
    },
    async close() {
      if (closed) return;
      closed = true;
      if (inflight > 0) await new Promise<void>((resolve) => (drained = resolve));
      if (--pool.refs === 0) {
        pool.closeAll();
        mod.tokens.delete(slotNumber(pool.slot).toString());
      }
      releaseModule(mod);
    },
  };
}
