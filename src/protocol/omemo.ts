// Legacy OMEMO (XEP-0384 v0.3, namespace eu.siacs.conversations.axolotl) over the Signal Protocol
// implementation in @privacyresearch/libsignal-protocol-typescript.
import { createCipheriv, createDecipheriv, generateKeyPairSync, randomBytes, randomInt } from "node:crypto";
import libsignalModule, { SessionBuilder, SessionCipher, SignalProtocolAddress } from "@privacyresearch/libsignal-protocol-typescript";
import type { Curve, DeviceType, Direction, KeyPairType, StorageType } from "@privacyresearch/libsignal-protocol-typescript";
import { ENCRYPTED_NOTICE, NS, bareJid, xml } from "./xml.ts";
import type { Element } from "./xml.ts";

/** Key ids (device, prekey, signed prekey) are unsigned 31-bit integers greater than zero. */
export const MAX_KEY_ID = 2 ** 31 - 1;

export interface OmemoBundle {
  /** 33 bytes: 0x05 type prefix + Curve25519 public key. */
  identityKey: Uint8Array;
  signedPreKey: { id: number; publicKey: Uint8Array; signature: Uint8Array /* 64 bytes */ };
  preKeys: { id: number; publicKey: Uint8Array }[];
}

export interface IdentityChange {
  jid: string;
  deviceId: number;
  /** base64 of the identity key known before */
  previous: string;
  /** base64 of the identity key now in use */
  current: string;
}

export type OmemoDecryptFailure =
  | "no-key-for-device" | "no-session" | "replay" | "bad-mac" | "too-far-future" | "malformed" | "payload-auth-failed";

/** A message this device could not decrypt; `reason` is stable, the message is for humans. */
export class OmemoDecryptError extends Error {
  readonly reason: OmemoDecryptFailure;
  constructor(reason: OmemoDecryptFailure, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = "OmemoDecryptError";
    this.reason = reason;
  }
}

export interface OmemoDecryption {
  senderDeviceId: number;
  /** null for an empty key-transport message */
  payload: Uint8Array | null;
  /** the key was a PreKeyWhisperMessage */
  preKey: boolean;
  /** decrypting this message replaced the identity key known for the sender device (see identityChanges()) */
  identityChanged: boolean;
  /**
   * The Signal message counter (position in the sender's sending chain) of the WhisperMessage; for a
   * PreKeyWhisperMessage, that of the WhisperMessage inside it. Counters only compare within a chain.
   */
  counter: number;
  /** base64 of the sender's ratchet public key: the chain `counter` counts in (a new one per ratchet step). */
  ratchetKey: string;
}

// ---------------------------------------------------------------- byte helpers

function toArrayBuffer(bytes: Uint8Array): ArrayBuffer {
  // Node Buffers are views into a shared pool: copy out exactly the viewed bytes.
  return bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.byteLength) as ArrayBuffer;
}

function b64(bytes: Uint8Array | ArrayBuffer): string {
  return Buffer.from(bytes instanceof ArrayBuffer ? new Uint8Array(bytes) : bytes).toString("base64");
}

const BASE64 = /^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$/;

/** Strict base64 (standard alphabet, padded); whitespace is ignored because XML may wrap it. */
export function decodeBase64(text: string): Buffer | undefined {
  const compact = text.replace(/\s+/g, "");
  return BASE64.test(compact) ? Buffer.from(compact, "base64") : undefined;
}

function parseKeyId(value: unknown): number | undefined {
  if (typeof value !== "string" || !/^[0-9]{1,10}$/.test(value)) return undefined;
  const id = Number(value);
  return id >= 1 && id <= MAX_KEY_ID ? id : undefined;
}

function describeId(value: unknown): string {
  return value === undefined ? "missing" : `'${String(value)}'`;
}

// ---------------------------------------------------------------- Signal wire format

/** Protobuf fields (tag → last value) of one message; varints as numbers, length-delimited as bytes. */
function readProtobuf(bytes: Uint8Array): Map<number, number | Uint8Array> {
  const fields = new Map<number, number | Uint8Array>();
  let pos = 0;
  const varint = (): number => {
    let result = 0;
    for (let shift = 0; shift < 64; shift += 7) {
      if (pos >= bytes.length) throw new Error("truncated varint");
      const b = bytes[pos++]!;
      result += (b & 0x7f) * 2 ** shift;
      if (!(b & 0x80)) return result;
    }
    throw new Error("varint longer than 10 bytes");
  };
  const skip = (n: number) => {
    if (pos + n > bytes.length) throw new Error("truncated field");
    pos += n;
  };
  while (pos < bytes.length) {
    const tag = varint();
    const field = Math.floor(tag / 8);
    switch (tag & 7) {
      case 0:
        fields.set(field, varint());
        break;
      case 1:
        skip(8);
        break;
      case 2: {
        const len = varint();
        const start = pos;
        skip(len);
        fields.set(field, bytes.subarray(start, start + len));
        break;
      }
      case 5:
        skip(4);
        break;
      default:
        throw new Error(`unsupported protobuf wire type ${tag & 7}`);
    }
  }
  return fields;
}

/**
 * Counter and ratchet key of a serialized Signal message (the bytes inside <key/>). A WhisperMessage
 * is version byte ‖ protobuf {1 ratchetKey, 2 counter, 3 previousCounter, 4 ciphertext} ‖ 8-byte
 * MAC; a PreKeyWhisperMessage is version byte ‖ protobuf {…, 4 message: a WhisperMessage}.
 */
export function signalMessageCounter(signalMessage: Uint8Array, preKey: boolean): { counter: number; ratchetKey: string } {
  let whisper = signalMessage;
  if (preKey) {
    const inner = readProtobuf(signalMessage.subarray(1)).get(4);
    if (!(inner instanceof Uint8Array)) throw new Error("the PreKeyWhisperMessage carries no WhisperMessage");
    whisper = inner;
  }
  if (whisper.length < 9) throw new Error("the WhisperMessage is too short");
  const fields = readProtobuf(whisper.subarray(1, whisper.length - 8));
  const ratchetKey = fields.get(1);
  const counter = fields.get(2) ?? 0;
  if (!(ratchetKey instanceof Uint8Array) || typeof counter !== "number") throw new Error("the WhisperMessage has no ratchet key or counter");
  return { counter, ratchetKey: b64(ratchetKey) };
}

// ---------------------------------------------------------------- key material

/**
 * A Curve25519 key pair in libsignal's layout (33-byte public key with 0x05 prefix, 32-byte private
 * scalar). Generated with node:crypto's X25519 (about 0.08 ms) instead of libsignal's asm.js curve
 * (about 3 ms), so a device with 100 one-time prekeys costs milliseconds and every actor still gets
 * its own fresh keys. The scalar is clamped as RFC 7748 and libsignal's own keyPair() do, because
 * libsignal's signing code uses the stored scalar as is.
 */
function generateCurveKeyPair(): KeyPairType {
  // DER straight from the generator: exporting a KeyObject as JWK can deadlock Node when a GC
  // runs during the export (seen as rare hung runs). PKCS#8 and SPKI end with the 32 raw bytes.
  const { privateKey, publicKey: spki } = generateKeyPairSync("x25519", {
    privateKeyEncoding: { format: "der", type: "pkcs8" },
    publicKeyEncoding: { format: "der", type: "spki" },
  });
  const scalar = Buffer.from(privateKey.subarray(privateKey.length - 32));
  scalar[0]! &= 248;
  scalar[31]! &= 127;
  scalar[31]! |= 64;
  const publicKey = Buffer.concat([Buffer.from([0x05]), spki.subarray(spki.length - 32)]);
  return { pubKey: toArrayBuffer(publicKey), privKey: toArrayBuffer(scalar) };
}

let curvePromise: Promise<Curve> | undefined;

type CurveFactory = () => Promise<{ Curve: Curve }>;

/** libsignal's synchronous curve (XEdDSA-style curve25519_sign/verify of the old libsignal). */
function signalCurve(): Promise<Curve> {
  // Native ESM hands over module.exports (the factory is its .default); loaders that transpile to
  // CommonJS (tsx under mocha) hand over exports.default itself.
  const imported: unknown = libsignalModule;
  const factory = typeof imported === "function" ? (imported as CurveFactory) : (imported as { default: CurveFactory }).default;
  curvePromise ??= factory().then((lib) => lib.Curve);
  return curvePromise;
}

/**
 * Check the signed prekey signature of a bundle: curve25519 signature by the identity key over the
 * 33-byte serialized signed prekey. The Edwards sign bit in bit 7 of byte 63 is passed through
 * untouched; the verifier needs it to rebuild the Edwards form of the identity key.
 */
export async function verifySignedPreKeySignature(bundle: OmemoBundle): Promise<boolean> {
  const curve = await signalCurve();
  const isPublicKey = (k: Uint8Array) => k.length === 33 && k[0] === 0x05;
  // Checked here because libsignal logs a console warning before it throws on a bad format.
  if (!isPublicKey(bundle.identityKey) || !isPublicKey(bundle.signedPreKey.publicKey) || bundle.signedPreKey.signature.length !== 64) return false;
  try {
    // The wrapped curve25519_verify returns true when the signature is INVALID.
    const invalid = curve.verifySignature(
      toArrayBuffer(bundle.identityKey), toArrayBuffer(bundle.signedPreKey.publicKey), toArrayBuffer(bundle.signedPreKey.signature),
    );
    return invalid === false;
  } catch {
    return false; // wrong key or signature format
  }
}

// ---------------------------------------------------------------- XML: bundle and device list

export function bundleToElement(bundle: OmemoBundle): Element {
  return xml("bundle", { xmlns: NS.omemo },
    xml("signedPreKeyPublic", { signedPreKeyId: String(bundle.signedPreKey.id) }, b64(bundle.signedPreKey.publicKey)),
    xml("signedPreKeySignature", {}, b64(bundle.signedPreKey.signature)),
    xml("identityKey", {}, b64(bundle.identityKey)),
    xml("prekeys", {}, ...bundle.preKeys.map((k) => xml("preKeyPublic", { preKeyId: String(k.id) }, b64(k.publicKey)))),
  );
}

/**
 * A serialized Curve25519 public key: 33 bytes starting with 0x05. A bare 32-byte key is reported
 * and then prefixed, since it is still usable.
 */
function readPublicKey(text: string, what: string, problems: string[]): Uint8Array | undefined {
  const bytes = decodeBase64(text);
  if (!bytes) {
    problems.push(`${what} is not valid base64`);
    return undefined;
  }
  if (bytes.length === 32) {
    problems.push(`${what} is 32 bytes without the 0x05 type prefix (expected 33 bytes)`);
    return new Uint8Array(Buffer.concat([Buffer.from([0x05]), bytes]));
  }
  if (bytes.length !== 33) {
    problems.push(`${what} is ${bytes.length} bytes (expected 33: 0x05 + 32-byte Curve25519 key)`);
    return undefined;
  }
  if (bytes[0] !== 0x05) {
    problems.push(`${what} starts with 0x${bytes[0]!.toString(16).padStart(2, "0")} (expected the 0x05 type prefix)`);
    return undefined;
  }
  return new Uint8Array(bytes);
}

/**
 * Read a legacy OMEMO <bundle/>. Every deviation is listed in `problems`; `bundle` is returned
 * whenever a session can still be built from it (identity key, signed prekey and signature usable;
 * unusable one-time prekeys are left out).
 */
export function parseBundleElement(el: Element): { bundle?: OmemoBundle; problems: string[] } {
  const problems: string[] = [];
  if (el.name !== "bundle") problems.push(`element is <${el.name}/>, expected <bundle/>`);
  if (el.attrs.xmlns !== NS.omemo) problems.push(`bundle namespace is '${String(el.attrs.xmlns ?? "")}', expected '${NS.omemo}'`);

  let identityKey: Uint8Array | undefined;
  const identityEl = el.getChild("identityKey");
  if (!identityEl) problems.push("missing <identityKey/>");
  else identityKey = readPublicKey(identityEl.getText(), "identityKey", problems);

  let signedPreKey: OmemoBundle["signedPreKey"] | undefined;
  const spkEl = el.getChild("signedPreKeyPublic");
  const sigEl = el.getChild("signedPreKeySignature");
  if (!spkEl) problems.push("missing <signedPreKeyPublic/>");
  if (!sigEl) problems.push("missing <signedPreKeySignature/>");
  if (spkEl) {
    const id = parseKeyId(spkEl.attrs.signedPreKeyId);
    if (id === undefined) problems.push(`signedPreKeyId ${describeId(spkEl.attrs.signedPreKeyId)} is not an integer in 1..${MAX_KEY_ID}`);
    const publicKey = readPublicKey(spkEl.getText(), "signedPreKeyPublic", problems);
    let signature: Uint8Array | undefined;
    if (sigEl) {
      const bytes = decodeBase64(sigEl.getText());
      if (!bytes) problems.push("signedPreKeySignature is not valid base64");
      else if (bytes.length !== 64) problems.push(`signedPreKeySignature is ${bytes.length} bytes (expected 64)`);
      else signature = new Uint8Array(bytes);
    }
    if (id !== undefined && publicKey && signature) signedPreKey = { id, publicKey, signature };
  }

  const preKeys: OmemoBundle["preKeys"] = [];
  const prekeysEl = el.getChild("prekeys");
  if (!prekeysEl) problems.push("missing <prekeys/>");
  else {
    const entries = prekeysEl.getChildren("preKeyPublic");
    if (entries.length === 0) problems.push("<prekeys/> holds no <preKeyPublic/>");
    const seen = new Set<number>();
    for (const [index, entry] of entries.entries()) {
      const id = parseKeyId(entry.attrs.preKeyId);
      const label = `preKeyPublic #${index + 1} (preKeyId ${describeId(entry.attrs.preKeyId)})`;
      if (id === undefined) {
        problems.push(`${label}: preKeyId is not an integer in 1..${MAX_KEY_ID}`);
        continue;
      }
      if (seen.has(id)) {
        problems.push(`${label}: duplicate preKeyId ${id}`);
        continue;
      }
      seen.add(id);
      const publicKey = readPublicKey(entry.getText(), label, problems);
      if (publicKey) preKeys.push({ id, publicKey });
    }
  }

  if (!identityKey || !signedPreKey) return { problems };
  return { bundle: { identityKey, signedPreKey, preKeys }, problems };
}

export function deviceListElement(ids: number[]): Element {
  return xml("list", { xmlns: NS.omemo }, ...ids.map((id) => xml("device", { id: String(id) })));
}

/** Read a legacy OMEMO device <list/>; invalid and duplicate ids are reported and left out. */
export function parseDeviceListElement(el: Element): { ids: number[]; problems: string[] } {
  const problems: string[] = [];
  if (el.name !== "list") problems.push(`element is <${el.name}/>, expected <list/>`);
  if (el.attrs.xmlns !== NS.omemo) problems.push(`device list namespace is '${String(el.attrs.xmlns ?? "")}', expected '${NS.omemo}'`);
  const ids: number[] = [];
  for (const device of el.getChildren("device")) {
    const id = parseKeyId(device.attrs.id);
    if (id === undefined) problems.push(`device id ${describeId(device.attrs.id)} is not an integer in 1..${MAX_KEY_ID}`);
    else if (ids.includes(id)) problems.push(`device id ${id} is listed twice`);
    else ids.push(id);
  }
  return { ids, problems };
}

// ---------------------------------------------------------------- message stanza

/** The <message/> that carries an <encrypted/> element, with the hints TPC/1 §4 requires. */
export function buildEncryptedMessage(options: {
  to: string; id: string; from?: string; encrypted: Element; type?: string; requestReceipt?: boolean;
}): Element {
  const { to, id, from, encrypted, type = "chat", requestReceipt = true } = options;
  const attrs: Record<string, string> = { type, id, to };
  if (from) attrs.from = from;
  return xml("message", attrs,
    encrypted,
    xml("encryption", { xmlns: NS.eme, namespace: NS.omemo }),
    xml("store", { xmlns: NS.hints }),
    ...(requestReceipt ? [xml("request", { xmlns: NS.receipts })] : []),
    xml("body", {}, ENCRYPTED_NOTICE),
  );
}

// ---------------------------------------------------------------- Signal store

interface StoreCheckpoint {
  address: string;
  identity: KnownIdentity | undefined;
  changeCount: number;
}

interface KnownIdentity {
  jid: string;
  deviceId: number;
  key: Buffer;
}

/** libsignal encodes an address as `${name}.${deviceId}`; JIDs contain dots, so split at the last one. */
function splitAddress(encoded: string): { jid: string; deviceId: number } {
  const dot = encoded.lastIndexOf(".");
  return { jid: encoded.slice(0, dot), deviceId: Number(encoded.slice(dot + 1)) };
}

/**
 * In-memory Signal store for one device. Trust is "accept and record": libsignal does not await its
 * receiver-side trust check, so identity changes are detected in saveIdentity (which it does await)
 * and recorded instead of being refused.
 */
class OmemoStore implements StorageType {
  identityKeyPair: KeyPairType;
  signedPreKey: { keyId: number; keyPair: KeyPairType; signature: ArrayBuffer };
  readonly preKeys = new Map<number, KeyPairType>();
  /** keepConsumedPreKeys only: consumed one-time prekeys, gone from the bundle but still usable (a fault) */
  readonly consumedPreKeys = new Map<number, KeyPairType>();
  keepConsumedPreKeys = false;
  nextPreKeyId = 1;
  readonly sessions = new Map<string, string>();
  readonly identities = new Map<string, KnownIdentity>();
  changes: IdentityChange[] = [];
  /** set when a one-time prekey was consumed; the device reports it through onBundleChanged */
  preKeyConsumed = false;
  /** one-time prekey ids a message asked for that the store no longer (or never) had */
  readonly missingPreKeyIds = new Set<number>();

  constructor(identityKeyPair: KeyPairType, signedPreKey: OmemoStore["signedPreKey"]) {
    this.identityKeyPair = identityKeyPair;
    this.signedPreKey = signedPreKey;
  }

  addPreKeys(count: number): void {
    for (let i = 0; i < count; i++) {
      if (this.nextPreKeyId > MAX_KEY_ID) this.nextPreKeyId = 1;
      while (this.preKeys.has(this.nextPreKeyId)) this.nextPreKeyId++;
      this.preKeys.set(this.nextPreKeyId++, generateCurveKeyPair());
    }
  }

  checkpoint(address: string): StoreCheckpoint {
    return { address, identity: this.identities.get(address), changeCount: this.changes.length };
  }

  /** Undo identity bookkeeping of a failed decryption: libsignal saves the identity before it checks the MAC. */
  rollback(cp: StoreCheckpoint): void {
    if (cp.identity) this.identities.set(cp.address, cp.identity);
    else this.identities.delete(cp.address);
    this.changes.length = Math.min(this.changes.length, cp.changeCount);
  }

  async getIdentityKeyPair(): Promise<KeyPairType> {
    return this.identityKeyPair;
  }

  async getLocalRegistrationId(): Promise<number> {
    return 0; // legacy OMEMO bundles carry no registration id
  }

  async isTrustedIdentity(_identifier: string, _identityKey: ArrayBuffer, _direction: Direction): Promise<boolean> {
    return true; // changes are recorded in saveIdentity, never silently dropped
  }

  async saveIdentity(encodedAddress: string, publicKey: ArrayBuffer): Promise<boolean> {
    const key = Buffer.from(new Uint8Array(publicKey));
    const known = this.identities.get(encodedAddress);
    if (known && known.key.equals(key)) return false;
    const { jid, deviceId } = splitAddress(encodedAddress);
    this.identities.set(encodedAddress, { jid, deviceId, key });
    if (known) this.changes.push({ jid, deviceId, previous: known.key.toString("base64"), current: key.toString("base64") });
    return Boolean(known);
  }

  async loadPreKey(keyId: string | number): Promise<KeyPairType | undefined> {
    const id = Number(keyId);
    const pair = this.preKeys.get(id) ?? (this.keepConsumedPreKeys ? this.consumedPreKeys.get(id) : undefined);
    if (!pair && id > 0) this.missingPreKeyIds.add(id);
    return pair;
  }

  async storePreKey(keyId: number | string, keyPair: KeyPairType): Promise<void> {
    this.preKeys.set(Number(keyId), keyPair);
  }

  async removePreKey(keyId: number | string): Promise<void> {
    const id = Number(keyId);
    const pair = this.preKeys.get(id);
    if (pair && this.keepConsumedPreKeys) this.consumedPreKeys.set(id, pair);
    if (this.preKeys.delete(id)) {
      this.addPreKeys(1); // a NEW id, so a peer holding an old bundle can never hit a reused id
      this.preKeyConsumed = true;
    }
  }

  async storeSession(encodedAddress: string, record: string): Promise<void> {
    this.sessions.set(encodedAddress, record);
  }

  async loadSession(encodedAddress: string): Promise<string | undefined> {
    return this.sessions.get(encodedAddress);
  }

  async loadSignedPreKey(keyId: number | string): Promise<KeyPairType | undefined> {
    return Number(keyId) === this.signedPreKey.keyId ? this.signedPreKey.keyPair : undefined;
  }

  async storeSignedPreKey(keyId: number | string, keyPair: KeyPairType): Promise<void> {
    this.signedPreKey = { ...this.signedPreKey, keyId: Number(keyId), keyPair };
  }

  async removeSignedPreKey(_keyId: number | string): Promise<void> {
    // The one signed prekey stays until rotateIdentity() replaces it.
  }
}

async function makeSignedPreKey(identity: KeyPairType, keyId: number): Promise<OmemoStore["signedPreKey"]> {
  const keyPair = generateCurveKeyPair();
  const curve = await signalCurve();
  const signature = curve.calculateSignature(identity.privKey, keyPair.pubKey);
  return { keyId, keyPair, signature };
}

function classifySignalError(err: unknown, missingPreKeyIds: Set<number>): OmemoDecryptError {
  const message = err instanceof Error ? err.message : String(err);
  const name = err instanceof Error ? err.name : "";
  if (name === "MessageCounterError") {
    return new OmemoDecryptError("replay", "message key already used: a replay or a duplicate (MessageCounterError)", { cause: err });
  }
  if (message === "Bad MAC") {
    const hint = missingPreKeyIds.size
      ? `; the message refers to one-time prekey ${[...missingPreKeyIds].join(", ")}, which this device no longer has (consumed or never published)`
      : "";
    return new OmemoDecryptError("bad-mac", `Signal message authentication failed (Bad MAC)${hint}`, { cause: err });
  }
  if (message.includes("Over 2000 messages into the future")) {
    return new OmemoDecryptError("too-far-future", "message counter is more than 2000 ahead of the chain (Over 2000 messages into the future!)", { cause: err });
  }
  if (/No record for|No session|Missing Signed PreKey|unable to find session/i.test(message)) {
    return new OmemoDecryptError("no-session", `no usable Signal session: ${message}`, { cause: err });
  }
  return new OmemoDecryptError("malformed", `the Signal message could not be processed: ${message}`, { cause: err });
}

// ---------------------------------------------------------------- device

export interface GenerateOptions {
  /** own bare JID */
  jid: string;
  /** 1..2^31-1; random when absent */
  deviceId?: number;
  /** one-time prekeys kept in the bundle (default 100) */
  preKeyCount?: number;
  /**
   * NOT COMPLIANT, for a known-bad partner only: consumed one-time prekeys still leave the bundle,
   * but their private keys stay, so a second key exchange with a consumed prekey still decrypts.
   */
  keepConsumedPreKeys?: boolean;
}

/** One legacy OMEMO device: its keys, its Signal store, and message encryption/decryption. */
export class OmemoDevice {
  readonly jid: string;
  readonly deviceId: number;
  readonly preKeyCount: number;
  /** Called after the published bundle changed (a one-time prekey was consumed, or the identity rotated): republish it. */
  onBundleChanged?: () => void;
  #store: OmemoStore;
  #queue: Promise<unknown> = Promise.resolve();

  private constructor(jid: string, deviceId: number, preKeyCount: number, store: OmemoStore) {
    this.jid = jid;
    this.deviceId = deviceId;
    this.preKeyCount = preKeyCount;
    this.#store = store;
  }

  /**
   * Fresh keys for a device. All key pairs come from node:crypto (see generateCurveKeyPair), so no
   * cache is needed: 100 prekeys take a few milliseconds and no two devices share key material.
   */
  static async generate(options: GenerateOptions): Promise<OmemoDevice> {
    const { jid, preKeyCount = 100 } = options;
    const deviceId = options.deviceId ?? randomInt(1, MAX_KEY_ID + 1);
    if (!Number.isInteger(deviceId) || deviceId < 1 || deviceId > MAX_KEY_ID) throw new RangeError(`device id ${deviceId} is not in 1..${MAX_KEY_ID}`);
    if (!Number.isInteger(preKeyCount) || preKeyCount < 1) throw new RangeError(`preKeyCount ${preKeyCount} must be a positive integer`);
    const store = await OmemoDevice.#freshStore(1, preKeyCount);
    store.keepConsumedPreKeys = options.keepConsumedPreKeys ?? false;
    return new OmemoDevice(bareJid(jid), deviceId, preKeyCount, store);
  }

  static async #freshStore(signedPreKeyId: number, preKeyCount: number, firstPreKeyId = 1): Promise<OmemoStore> {
    const identity = generateCurveKeyPair();
    const store = new OmemoStore(identity, await makeSignedPreKey(identity, signedPreKeyId));
    store.nextPreKeyId = firstPreKeyId;
    store.addPreKeys(preKeyCount);
    return store;
  }

  /** Own public identity key (33 bytes). */
  get identityKey(): Uint8Array {
    return new Uint8Array(this.#store.identityKeyPair.pubKey.slice(0));
  }

  /** The bundle to publish now: consumed one-time prekeys are gone, replaced under new ids. */
  bundle(): OmemoBundle {
    const s = this.#store;
    return {
      identityKey: new Uint8Array(s.identityKeyPair.pubKey.slice(0)),
      signedPreKey: { id: s.signedPreKey.keyId, publicKey: new Uint8Array(s.signedPreKey.keyPair.pubKey.slice(0)), signature: new Uint8Array(s.signedPreKey.signature.slice(0)) },
      preKeys: [...s.preKeys].map(([id, pair]) => ({ id, publicKey: new Uint8Array(pair.pubKey.slice(0)) })),
    };
  }

  /** Run store-mutating work one job at a time, so checkpoints and callbacks see a consistent store. */
  #exclusive<T>(task: () => Promise<T>): Promise<T> {
    const run = this.#queue.then(task, task);
    this.#queue = run.catch(() => undefined);
    return run;
  }

  #address(jid: string, deviceId: number): SignalProtocolAddress {
    return new SignalProtocolAddress(bareJid(jid), deviceId);
  }

  /**
   * Build a session from a peer device's bundle (X3DH as initiator). Always uses a one-time prekey:
   * `preKeyId` when given, otherwise a random one from the bundle.
   */
  startSession(peerJid: string, peerDeviceId: number, bundle: OmemoBundle, opts: { preKeyId?: number } = {}): Promise<{ preKeyId: number }> {
    return this.#exclusive(async () => {
      const who = `${bareJid(peerJid)} device ${peerDeviceId}`;
      if (!(await verifySignedPreKeySignature(bundle))) {
        throw new Error(`cannot start a session with ${who}: the bundle's signed prekey signature does not verify against its identity key`);
      }
      if (bundle.preKeys.length === 0) throw new Error(`cannot start a session with ${who}: the bundle has no one-time prekeys`);
      const preKey = opts.preKeyId === undefined
        ? bundle.preKeys[randomInt(bundle.preKeys.length)]!
        : bundle.preKeys.find((k) => k.id === opts.preKeyId);
      if (!preKey) throw new Error(`cannot start a session with ${who}: the bundle has no one-time prekey ${opts.preKeyId}`);
      const device: DeviceType = {
        identityKey: toArrayBuffer(bundle.identityKey),
        signedPreKey: { keyId: bundle.signedPreKey.id, publicKey: toArrayBuffer(bundle.signedPreKey.publicKey), signature: toArrayBuffer(bundle.signedPreKey.signature) },
        preKey: { keyId: preKey.id, publicKey: toArrayBuffer(preKey.publicKey) },
        registrationId: 0, // a number is required for libsignal to count the session as open
      };
      await new SessionBuilder(this.#store, this.#address(peerJid, peerDeviceId)).processPreKey(device);
      return { preKeyId: preKey.id };
    });
  }

  async hasSession(jid: string, deviceId: number): Promise<boolean> {
    return new SessionCipher(this.#store, this.#address(jid, deviceId)).hasOpenSession();
  }

  /** Devices of `jid` this device holds a session record with (open or not), ascending. */
  sessionDeviceIds(jid: string): number[] {
    const name = bareJid(jid);
    return [...this.#store.sessions.keys()]
      .map(splitAddress)
      .filter((a) => a.jid === name)
      .map((a) => a.deviceId)
      .sort((a, b) => a - b);
  }

  /**
   * The serialized libsignal session record with a peer device (all its ratchet state), or
   * undefined when there is none. restoreSession() puts it back, e.g. after encrypting messages
   * that are never sent, to rewind the sending chain.
   */
  snapshotSession(jid: string, deviceId: number): Promise<string | undefined> {
    return this.#exclusive(async () => this.#store.sessions.get(this.#address(jid, deviceId).toString()));
  }

  /** Replace the session record with a peer device by a snapshotSession() result. */
  restoreSession(jid: string, deviceId: number, snapshot: string): Promise<void> {
    return this.#exclusive(async () => {
      if (typeof snapshot !== "string" || snapshot.length === 0) throw new TypeError("restoreSession needs a snapshot from snapshotSession()");
      this.#store.sessions.set(this.#address(jid, deviceId).toString(), snapshot);
    });
  }

  /** Forget the session record with a peer device (the known identity key stays). */
  deleteSession(jid: string, deviceId: number): Promise<void> {
    return this.#exclusive(async () => {
      this.#store.sessions.delete(this.#address(jid, deviceId).toString());
    });
  }

  /**
   * Encrypt for the given devices (each needs a session). The payload is AES-128-GCM; every <key/>
   * carries key(16)‖tag(16) as its Signal plaintext. payload null builds an empty key-transport
   * message: no <payload/>, 32 random bytes as the Signal plaintext. This device itself is skipped.
   */
  encrypt(payload: Uint8Array | null, recipients: { jid: string; deviceId: number }[]): Promise<Element> {
    return this.#exclusive(async () => {
      const targets = new Map<string, SignalProtocolAddress>();
      for (const r of recipients) {
        if (bareJid(r.jid) === this.jid && r.deviceId === this.deviceId) continue;
        const address = this.#address(r.jid, r.deviceId);
        targets.set(address.toString(), address);
      }
      if (targets.size === 0) throw new Error("encrypt needs at least one recipient device other than this one");
      const missing: string[] = [];
      for (const address of targets.values()) {
        if (!(await new SessionCipher(this.#store, address).hasOpenSession())) missing.push(`${address.name} device ${address.deviceId}`);
      }
      if (missing.length) throw new Error(`no OMEMO session with ${missing.join(", ")}: call startSession() with their bundle first`);

      const iv = randomBytes(12);
      let keyMaterial: Buffer;
      let ciphertext: Buffer | undefined;
      if (payload) {
        const key = randomBytes(16);
        const cipher = createCipheriv("aes-128-gcm", key, iv);
        ciphertext = Buffer.concat([cipher.update(payload), cipher.final()]);
        keyMaterial = Buffer.concat([key, cipher.getAuthTag()]);
      } else {
        keyMaterial = randomBytes(32);
      }

      const keys: Element[] = [];
      for (const address of targets.values()) {
        const message = await new SessionCipher(this.#store, address).encrypt(toArrayBuffer(keyMaterial));
        if (message.body === undefined) throw new Error(`libsignal returned no message body for ${address.name} device ${address.deviceId}`);
        const attrs: Record<string, string> = { rid: String(address.deviceId) };
        if (message.type === 3) attrs.prekey = "true";
        keys.push(xml("key", attrs, Buffer.from(message.body, "latin1").toString("base64")));
      }
      return xml("encrypted", { xmlns: NS.omemo },
        xml("header", { sid: String(this.deviceId) }, ...keys, xml("iv", {}, iv.toString("base64"))),
        ...(ciphertext ? [xml("payload", {}, ciphertext.toString("base64"))] : []),
      );
    });
  }

  /** Decrypt an <encrypted/> element from senderJid. Throws OmemoDecryptError. */
  decrypt(senderJid: string, encrypted: Element): Promise<OmemoDecryption> {
    return this.#exclusive(async () => {
      const header = encrypted.getChild("header");
      if (encrypted.name !== "encrypted" || encrypted.attrs.xmlns !== NS.omemo) {
        throw new OmemoDecryptError("malformed", `expected <encrypted xmlns='${NS.omemo}'/>, got <${encrypted.name} xmlns='${String(encrypted.attrs.xmlns ?? "")}'/>`);
      }
      if (!header) throw new OmemoDecryptError("malformed", "<encrypted/> has no <header/>");
      const senderDeviceId = parseKeyId(header.attrs.sid);
      if (senderDeviceId === undefined) throw new OmemoDecryptError("malformed", `<header/> sid ${describeId(header.attrs.sid)} is not a device id`);
      const keyEl = header.getChildren("key").find((k) => parseKeyId(k.attrs.rid) === this.deviceId);
      if (!keyEl) throw new OmemoDecryptError("no-key-for-device", `the message has no <key/> for this device (rid ${this.deviceId})`);
      const signalMessage = decodeBase64(keyEl.getText());
      if (!signalMessage || signalMessage.length === 0) throw new OmemoDecryptError("malformed", "<key/> is not valid base64");
      const preKey = keyEl.attrs.prekey === "true" || keyEl.attrs.prekey === "1";
      const payloadEl = encrypted.getChild("payload");
      const ivEl = header.getChild("iv");
      const iv = ivEl ? decodeBase64(ivEl.getText()) : undefined;
      if (payloadEl && (!iv || iv.length === 0)) throw new OmemoDecryptError("malformed", ivEl ? "<iv/> is not valid base64" : "<header/> has no <iv/>");
      const ciphertext = payloadEl ? decodeBase64(payloadEl.getText()) : undefined;
      if (payloadEl && !ciphertext) throw new OmemoDecryptError("malformed", "<payload/> is not valid base64");

      const store = this.#store;
      const address = this.#address(senderJid, senderDeviceId);
      const checkpoint = store.checkpoint(address.toString());
      store.missingPreKeyIds.clear();
      store.preKeyConsumed = false;
      try {
        let keyMaterial: Buffer;
        try {
          const cipher = new SessionCipher(store, address);
          const plain = preKey
            ? await cipher.decryptPreKeyWhisperMessage(toArrayBuffer(signalMessage))
            : await cipher.decryptWhisperMessage(toArrayBuffer(signalMessage));
          keyMaterial = Buffer.from(new Uint8Array(plain));
        } catch (err) {
          store.rollback(checkpoint);
          throw classifySignalError(err, store.missingPreKeyIds);
        }
        const identityChanged = store.changes.length > checkpoint.changeCount;
        let position: { counter: number; ratchetKey: string };
        try {
          position = signalMessageCounter(signalMessage, preKey);
        } catch (err) {
          // Unreachable in practice: libsignal has just decoded the same bytes.
          throw new OmemoDecryptError("malformed", `the Signal message counter cannot be read: ${(err as Error).message}`, { cause: err });
        }
        const { counter, ratchetKey } = position;
        if (!payloadEl) return { senderDeviceId, payload: null, preKey, identityChanged, counter, ratchetKey };
        if (keyMaterial.length !== 32) {
          throw new OmemoDecryptError("malformed", `the Signal plaintext is ${keyMaterial.length} bytes; expected key(16)‖tag(16) = 32`);
        }
        try {
          const decipher = createDecipheriv("aes-128-gcm", keyMaterial.subarray(0, 16), iv!);
          decipher.setAuthTag(keyMaterial.subarray(16));
          const plain = Buffer.concat([decipher.update(ciphertext!), decipher.final()]);
          return { senderDeviceId, payload: new Uint8Array(plain), preKey, identityChanged, counter, ratchetKey };
        } catch (err) {
          throw new OmemoDecryptError("payload-auth-failed", `the AES-128-GCM payload does not authenticate with the transported key and tag: ${(err as Error).message}`, { cause: err });
        }
      } finally {
        store.missingPreKeyIds.clear();
        if (store.preKeyConsumed) {
          store.preKeyConsumed = false;
          this.#notifyBundleChanged();
        }
      }
    });
  }

  #notifyBundleChanged(): void {
    try {
      this.onBundleChanged?.();
    } catch {
      // The owner's republishing problem must not turn a good decryption into a failure.
    }
  }

  /** Identity keys of peer devices that changed since the last clearIdentityChanges(). */
  identityChanges(): IdentityChange[] {
    return this.#store.changes.map((c) => ({ ...c }));
  }

  clearIdentityChanges(): void {
    this.#store.changes = [];
  }

  /** The identity key last seen for a peer device, if any. */
  knownIdentity(jid: string, deviceId: number): Uint8Array | undefined {
    const known = this.#store.identities.get(this.#address(jid, deviceId).toString());
    return known ? new Uint8Array(known.key) : undefined;
  }

  /**
   * Replace the identity key pair, signed prekey (next id) and one-time prekeys (new ids) under the
   * same device id, and drop all sessions. Knowledge of peers' identities is kept. Calls
   * onBundleChanged, since the bundle must be republished before this device sends again.
   */
  rotateIdentity(): Promise<void> {
    return this.#exclusive(async () => {
      const old = this.#store;
      const signedPreKeyId = old.signedPreKey.keyId >= MAX_KEY_ID ? 1 : old.signedPreKey.keyId + 1;
      const fresh = await OmemoDevice.#freshStore(signedPreKeyId, this.preKeyCount, old.nextPreKeyId);
      for (const [address, identity] of old.identities) fresh.identities.set(address, identity);
      fresh.changes = old.changes;
      fresh.keepConsumedPreKeys = old.keepConsumedPreKeys;
      this.#store = fresh;
      this.#notifyBundleChanged();
    });
  }
}
