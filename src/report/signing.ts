// Ed25519 keys for signing run bundles (docs/evidence.md). node:crypto does every cryptographic
// operation; this module only reads, writes and names keys. The private key is never printed,
// logged or put in an artifact: only its path and the public key's id leave this module.
import { createHash, createPrivateKey, createPublicKey, generateKeyPairSync, sign, verify } from "node:crypto";
import type { KeyObject } from "node:crypto";
import { chmodSync, closeSync, mkdirSync, openSync, readFileSync, statSync, writeSync } from "node:fs";
import path from "node:path";

/** The only signature algorithm of format-1 bundles. */
export const SIGNATURE_ALGORITHM = "Ed25519";
export const PRIVATE_KEY_FILE = "chatconform-signing.key";
export const PUBLIC_KEY_FILE = "chatconform-signing.pub";

/** A key file that cannot be used: missing, unreadable, of the wrong kind or algorithm. */
export class SigningKeyError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "SigningKeyError";
  }
}

export interface PublicKeyInfo {
  publicKey: KeyObject;
  /** sha256 of the public key's SubjectPublicKeyInfo DER, lowercase hex: names the key in manifests and output. */
  keyId: string;
  /** SPKI PEM. */
  publicKeyPem: string;
}

export interface SigningKey extends PublicKeyInfo {
  privateKey: KeyObject;
  file: string;
  /** Things worth telling the user, e.g. a private key file others can read. */
  warnings: string[];
}

/** sha256 over the SPKI DER of an Ed25519 public key (what `openssl pkey -pubin -outform DER | sha256sum` prints). */
export function keyIdOf(publicKey: KeyObject): string {
  return createHash("sha256").update(publicKey.export({ type: "spki", format: "der" })).digest("hex");
}

function publicInfo(publicKey: KeyObject): PublicKeyInfo {
  return { publicKey, keyId: keyIdOf(publicKey), publicKeyPem: publicKey.export({ type: "spki", format: "pem" }).toString() };
}

function readKeyFile(file: string, what: string): string {
  try {
    return readFileSync(file, "utf8");
  } catch (err) {
    throw new SigningKeyError(`${what} ${file}: cannot read it (${(err as NodeJS.ErrnoException).code ?? (err as Error).message})`);
  }
}

/** Load an Ed25519 private key (PKCS#8 PEM, as `chatconform keygen` writes) for `run --sign`. */
export function loadSigningKey(file: string): SigningKey {
  const text = readKeyFile(file, "signing key");
  if (/-----BEGIN ENCRYPTED PRIVATE KEY-----/.test(text)) throw new SigningKeyError(`signing key ${file}: passphrase-protected keys are not supported; keep the key unencrypted with mode 0600 (see docs/evidence.md)`);
  if (!/-----BEGIN (?:[A-Z0-9]+ )?PRIVATE KEY-----/.test(text)) {
    const hint = /-----BEGIN PUBLIC KEY-----/.test(text) ? "; it is a public key: --sign takes the private one (chatconform keygen writes both)" : "";
    throw new SigningKeyError(`signing key ${file}: not a PEM private key${hint}`);
  }
  let privateKey: KeyObject;
  try {
    privateKey = createPrivateKey({ key: text, format: "pem" });
  } catch (err) {
    throw new SigningKeyError(`signing key ${file}: cannot parse it: ${(err as Error).message}`);
  }
  if (privateKey.asymmetricKeyType !== "ed25519") throw new SigningKeyError(`signing key ${file}: an ${privateKey.asymmetricKeyType ?? "unknown"} key; bundles are signed with Ed25519 (chatconform keygen makes one)`);
  const warnings: string[] = [];
  if (process.platform !== "win32") {
    const mode = statSync(file).mode & 0o777;
    if (mode & 0o077) warnings.push(`signing key ${file} can be read by others (mode ${mode.toString(8).padStart(4, "0")}); chmod 600 it`);
  }
  return { ...publicInfo(createPublicKey(privateKey)), privateKey, file, warnings };
}

/** Load an Ed25519 public key (SPKI PEM) for `verify --pubkey`. */
export function loadPublicKey(file: string): PublicKeyInfo {
  const text = readKeyFile(file, "public key");
  if (/PRIVATE KEY-----/.test(text)) throw new SigningKeyError(`public key ${file}: this is a private key; pass the public one (${PUBLIC_KEY_FILE}), and keep the private key to the signer`);
  return parsePublicKey(text, `public key ${file}`);
}

/** Parse an Ed25519 SPKI PEM; `what` names it in errors. */
export function parsePublicKey(pem: string, what: string): PublicKeyInfo {
  let publicKey: KeyObject;
  try {
    publicKey = createPublicKey({ key: pem, format: "pem" });
  } catch (err) {
    throw new SigningKeyError(`${what}: not a PEM public key (${(err as Error).message})`);
  }
  if (publicKey.asymmetricKeyType !== "ed25519") throw new SigningKeyError(`${what}: an ${publicKey.asymmetricKeyType ?? "unknown"} key; bundles are signed with Ed25519`);
  return publicInfo(publicKey);
}

export interface GeneratedKeyFiles {
  privateKeyFile: string;
  publicKeyFile: string;
  keyId: string;
}

/**
 * Make an Ed25519 key pair and write it to `dir` (created if needed): the private key as PKCS#8 PEM
 * with mode 0600, the public key as SPKI PEM. Existing files are never overwritten.
 */
export function writeKeyPair(dir: string): GeneratedKeyFiles {
  const privateKeyFile = path.join(dir, PRIVATE_KEY_FILE);
  const publicKeyFile = path.join(dir, PUBLIC_KEY_FILE);
  for (const file of [privateKeyFile, publicKeyFile]) {
    let exists = false;
    try {
      statSync(file);
      exists = true;
    } catch {
      // absent: good
    }
    if (exists) throw new SigningKeyError(`${file} already exists; keygen never overwrites a key (move it away or pass another --out)`);
  }
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  const { privateKey, publicKey } = generateKeyPairSync("ed25519");
  const privatePem = privateKey.export({ type: "pkcs8", format: "pem" }).toString();
  writeExclusive(privateKeyFile, privatePem, 0o600);
  writeExclusive(publicKeyFile, publicKey.export({ type: "spki", format: "pem" }).toString(), 0o644);
  return { privateKeyFile, publicKeyFile, keyId: keyIdOf(publicKey) };
}

function writeExclusive(file: string, text: string, mode: number): void {
  // "wx": fail rather than follow or replace whatever appeared since the check.
  const fd = openSync(file, "wx", mode);
  try {
    writeSync(fd, text);
  } finally {
    closeSync(fd);
  }
  if (process.platform !== "win32") chmodSync(file, mode);
}

/** Ed25519 signature of `data`. */
export function signBytes(key: SigningKey, data: Uint8Array): Buffer {
  return sign(null, data, key.privateKey);
}

/** Whether `signature` is an Ed25519 signature of `data` by `publicKey`. */
export function verifyBytes(publicKey: KeyObject, data: Uint8Array, signature: Uint8Array): boolean {
  try {
    return verify(null, data, publicKey, signature);
  } catch {
    return false;
  }
}
