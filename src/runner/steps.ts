// The step interpreter: one function per step keyword of the case format (docs/cases.md).
// Steps do protocol work and make checks; they never print.
import { createHash, randomBytes } from "node:crypto";
import { XmppConnection, ConnectionError } from "../protocol/connection.ts";
import type { ConnectionOptions } from "../protocol/connection.ts";
import {
  OmemoDevice, OmemoDecryptError, bundleToElement, buildEncryptedMessage, deviceListElement,
  parseBundleElement, parseDeviceListElement, verifySignedPreKeySignature,
} from "../protocol/omemo.ts";
import type { OmemoBundle } from "../protocol/omemo.ts";
import { makeContentDocument, validateContentDocument, validateReflectDocument } from "../protocol/content.ts";
import { StanzaError, describeStanzaError, parseStanzaError } from "../protocol/stanza-error.ts";
import { ENCRYPTED_NOTICE, Element, NS, bareJid, parseXml, xml } from "../protocol/xml.ts";
import { Actor, CaseContext, NotTested } from "./context.ts";
import type { ActorDevice, Decryption, InboxItem } from "./context.ts";
import type { SeededRandom } from "./seed.ts";

type Params = Record<string, unknown>;
export type StepHandler = (ctx: CaseContext, params: Params) => Promise<void>;

const sha256 = (bytes: Uint8Array) => createHash("sha256").update(bytes).digest("hex");
const truncate = (text: string, max = 300) => (text.length > max ? `${text.slice(0, max)}…` : text);

export function connectionOptions(ctx: CaseContext, label: string): ConnectionOptions {
  const { config } = ctx;
  return {
    service: config.service,
    domain: config.domain,
    tls: config.tls,
    timeouts: config.timeouts,
    maxStanzaBytes: config.maxStanzaBytes,
    maxInboundBytesPerSecond: config.maxInboundBytesPerSecond,
    onTraffic: (direction, text, element) => {
      const entry = ctx.record(label, direction, text, element);
      if (direction === "in") ctx.observeInbound(element, entry);
    },
  };
}

// ---------------------------------------------------------------- waiting on inboxes

function describeMatcher(params: Params): string {
  const parts = [String(params.stanza)];
  if (params.from) parts.push(`from ${params.from}`);
  if (params.ref) parts.push(`for ${params.ref}`);
  if (params.condition) parts.push(`condition ${params.condition}`);
  if (params.app) parts.push(`+ <${params.app}${params.appAttrs ? " " + Object.entries(params.appAttrs as Record<string, string>).map(([k, v]) => `${k}='${v}'`).join(" ") : ""}/>`);
  return parts.join(" ");
}

/** Does an inbox item match a case's stanza matcher? */
function matches(ctx: CaseContext, item: InboxItem, params: Params): boolean {
  const { stanza } = item;
  if (!ctx.isFrom(stanza, params.from as string | undefined)) return false;
  const refId = params.ref ? ctx.idOf(params.ref as string) : undefined;
  switch (params.stanza) {
    case "receipt": {
      const received = stanza.name === "message" ? stanza.getChild("received", NS.receipts) : undefined;
      return Boolean(received) && (!refId || received!.attrs.id === refId);
    }
    case "reflect":
      return stanza.name === "message" && item.decryption?.doc?.kind === "reflect" && (!refId || item.decryption.doc.ref === refId);
    case "encrypted":
      return stanza.name === "message" && stanza.attrs.type !== "error" && Boolean(stanza.getChild("encrypted", NS.omemo));
    case "error": {
      if (stanza.attrs.type !== "error") return false;
      if (refId && stanza.attrs.id !== refId) return false;
      return true;
    }
    case "message":
      return stanza.name === "message" && stanza.attrs.type !== "error";
    case "presence":
      return stanza.name === "presence";
    case "iq":
      return stanza.name === "iq";
    default:
      return true;
  }
}

/** Take the first matching stanza already in the inbox, or wait for one until the deadline. */
function take(ctx: CaseContext, device: ActorDevice, predicate: (item: InboxItem) => boolean, timeoutMs: number): Promise<InboxItem | null> {
  const found = device.inbox.findIndex(predicate);
  if (found !== -1) return Promise.resolve(device.inbox.splice(found, 1)[0]!);
  const started = Date.now();
  return new Promise((resolve) => {
    let unsubscribeClose: (() => void) | undefined;
    const finish = (item: InboxItem | null) => {
      clearTimeout(timer);
      unsubscribe();
      unsubscribeClose?.();
      resolve(item);
    };
    const timer = setTimeout(() => {
      ctx.timeoutWaitMs += Date.now() - started;
      finish(null);
    }, timeoutMs);
    const unsubscribe = device.onDeliver(() => {
      const index = device.inbox.findIndex(predicate);
      if (index !== -1) finish(device.inbox.splice(index, 1)[0]!);
    });
    if (device.conn) {
      const onClose = () => finish(null);
      device.conn.once("close", onClose);
      unsubscribeClose = () => device.conn?.off("close", onClose);
    }
  });
}

// ---------------------------------------------------------------- OMEMO helpers

async function fetchPep(ctx: CaseContext, device: ActorDevice & { conn: XmppConnection }, jid: string, node: string): Promise<{ items: Element[]; stanza: Element }> {
  const result = await device.conn.iq(xml("iq", { type: "get", to: jid }, xml("pubsub", { xmlns: NS.pubsub }, xml("items", { node }))));
  const items = result.getChild("pubsub", NS.pubsub)?.getChild("items")?.getChildren("item") ?? [];
  return { items, stanza: result };
}

async function fetchDeviceIds(ctx: CaseContext, device: ActorDevice & { conn: XmppConnection }, jid: string): Promise<number[]> {
  const { items } = await fetchPep(ctx, device, jid, NS.omemoDeviceList);
  const list = items[0]?.getChild("list", NS.omemo);
  const ids = list ? parseDeviceListElement(list).ids : [];
  device.actor.peerDevices.set(jid, ids);
  return ids;
}

async function fetchBundle(ctx: CaseContext, device: ActorDevice & { conn: XmppConnection }, jid: string, deviceId: number): Promise<{ bundle?: OmemoBundle; problems: string[]; seq?: number }> {
  const { items, stanza } = await fetchPep(ctx, device, jid, `${NS.omemoBundles}:${deviceId}`);
  const bundleEl = items[0]?.getChild("bundle", NS.omemo);
  if (!bundleEl) return { problems: [`no bundle item at ${NS.omemoBundles}:${deviceId}`], seq: ctx.entryOf(stanza)?.seq };
  return { ...parseBundleElement(bundleEl), seq: ctx.entryOf(stanza)?.seq };
}

function publishOptions(): Element {
  return xml("publish-options", {}, xml("x", { xmlns: NS.xdata, type: "submit" },
    xml("field", { var: "FORM_TYPE", type: "hidden" }, xml("value", {}, "http://jabber.org/protocol/pubsub#publish-options")),
    xml("field", { var: "pubsub#access_model" }, xml("value", {}, "open")),
  ));
}

async function publish(device: ActorDevice & { conn: XmppConnection }, node: string, itemId: string, payload: Element): Promise<void> {
  await device.conn.iq(xml("iq", { type: "set" }, xml("pubsub", { xmlns: NS.pubsub },
    xml("publish", { node }, xml("item", { id: itemId }, payload)),
    publishOptions(),
  )));
}

async function publishOmemo(actor: Actor, device: ActorDevice & { conn: XmppConnection; omemo: OmemoDevice }): Promise<void> {
  const ids = actor.devices.filter((d) => d.omemo && d.listed).map((d) => d.omemo!.deviceId);
  await publish(device, NS.omemoDeviceList, "current", deviceListElement(ids));
  await publish(device, `${NS.omemoBundles}:${device.omemo.deviceId}`, "current", bundleToElement(device.omemo.bundle()));
}

/** Decrypt an incoming encrypted message for this device and note the payload beside its ciphertext. */
async function decryptFor(ctx: CaseContext, device: ActorDevice & { omemo: OmemoDevice }, stanza: Element): Promise<Decryption> {
  const encrypted = stanza.getChild("encrypted", NS.omemo)!;
  const entry = ctx.entryOf(stanza);
  try {
    const result = await device.omemo.decrypt(bareJid(String(stanza.attrs.from ?? "")), encrypted);
    const decryption: Decryption = { ok: true, payload: result.payload ? Buffer.from(result.payload) : null, senderDeviceId: result.senderDeviceId };
    if (result.payload) {
      const text = Buffer.from(result.payload).toString("utf8");
      if (entry) entry.decrypted = text;
      try {
        decryption.doc = JSON.parse(text);
      } catch (err) {
        decryption.parseError = (err as Error).message;
      }
    } else if (entry) entry.note = "empty OMEMO key-transport message";
    return decryption;
  } catch (err) {
    const reason = err instanceof OmemoDecryptError ? `${err.reason}: ${err.message}` : (err as Error).message;
    if (entry) entry.note = `could not decrypt: ${reason}`;
    return { ok: false, error: reason };
  }
}

// ---------------------------------------------------------------- steps

async function connectDevice(ctx: CaseContext, actor: Actor, index: number, publishKeys: boolean | "bundle-only"): Promise<void> {
  const device = actor.device(index);
  const { config } = ctx;
  const register = !actor.registered && config.accounts.mode === "register" ? { phone: actor.phone } : undefined;
  const conn = await XmppConnection.connectAndLogin(connectionOptions(ctx, device.label), {
    username: actor.username,
    password: actor.password,
    resource: `dev${index}-${randomBytes(3).toString("hex")}`,
    register,
  });
  actor.registered = true;
  device.conn = conn;
  conn.on("stanza", (stanza) => {
    const seq = ctx.entryOf(stanza)?.seq ?? 0;
    if (stanza.name === "iq" && (stanza.attrs.type === "get" || stanza.attrs.type === "set")) {
      // Pushes the suite does not handle still get an answer, so the server sees a well-behaved client.
      const isBlockPush = Boolean(stanza.getChild("block", NS.blocking) || stanza.getChild("unblock", NS.blocking));
      const reply = isBlockPush
        ? xml("iq", { type: "result", id: stanza.attrs.id, to: stanza.attrs.from })
        : xml("iq", { type: "error", id: stanza.attrs.id, to: stanza.attrs.from }, xml("error", { type: "cancel" }, xml("service-unavailable", { xmlns: NS.stanzas })));
      if (!conn.closed) conn.send(reply);
    }
    const hasEncrypted = stanza.name === "message" && stanza.attrs.type !== "error" && stanza.getChild("encrypted", NS.omemo);
    if (!hasEncrypted || !device.omemo) {
      device.deliver({ stanza, seq });
      return;
    }
    const omemoDevice = device as ActorDevice & { omemo: OmemoDevice };
    device.decryptQueue = device.decryptQueue.then(async () => {
      const decryption = await decryptFor(ctx, omemoDevice, stanza);
      if (decryption.doc) ctx.observeContent(stanza, decryption.doc, seq);
      device.deliver({ stanza, seq, decryption });
    });
  });
  conn.send(xml("presence"));
  // A device that reconnects keeps its OMEMO identity and sessions, as a real client does.
  device.omemo ??= await OmemoDevice.generate({ jid: actor.jid });
  if (publishKeys === "bundle-only") device.listed = false;
  device.omemo.onBundleChanged = () => {
    if (!conn.closed) publishOmemo(actor, device as ActorDevice & { conn: XmppConnection; omemo: OmemoDevice }).catch(() => undefined);
  };
  if (publishKeys) await publishOmemo(actor, device as ActorDevice & { conn: XmppConnection; omemo: OmemoDevice });
}

/** A partner-side problem that makes a later step impossible: the case cannot establish its requirement. */
function precondition(message: string): NotTested {
  return new NotTested(`precondition not met: ${message}`);
}

const connect: StepHandler = async (ctx, p) => {
  const actor = ctx.actor(p.actor as string);
  const indexes = p.device !== undefined ? [p.device as number] : actor.devices.map((d) => d.index);
  for (const index of indexes) await connectDevice(ctx, actor, index, (p.publish as boolean | "bundle-only" | undefined) ?? true);
  // Every device republishes once all are up, so the device list names all of them.
  if (p.publish !== false && indexes.length > 1) await publishOmemo(actor, actor.connected(indexes[0]));
};

const disconnect: StepHandler = async (ctx, p) => {
  const actor = ctx.actor(p.actor as string);
  for (const device of actor.devices) await device.conn?.close();
};

const session: StepHandler = async (ctx, p) => {
  const actor = ctx.actor(p.actor as string);
  const device = actor.connected((p.device as number | undefined) ?? 0);
  const jid = ctx.resolve(p.with as string);
  const ids = await fetchDeviceIds(ctx, device, jid).catch((err: Error) => {
    throw precondition(`cannot read ${p.with}'s device list: ${err.message}`);
  });
  if (ids.length === 0) throw precondition(`${p.with} publishes no OMEMO device list: cannot start a session`);
  for (const id of ids) {
    const key = `${jid}:${id}`;
    if (p.preKey === "reuse") {
      // A second key exchange with the one-time prekey already consumed, and a fresh ephemeral key.
      const bundle = actor.bundlesUsed.get(key);
      const preKeyId = actor.preKeysUsed.get(key);
      if (!bundle || preKeyId === undefined) throw new Error(`no earlier session with ${p.with} device ${id} whose prekey could be reused`);
      await device.omemo.startSession(jid, id, bundle, { preKeyId });
      continue;
    }
    const { bundle, problems } = await fetchBundle(ctx, device, jid, id).catch((err: Error) => ({ bundle: undefined, problems: [err.message] }));
    if (!bundle) throw precondition(`cannot start a session with ${p.with} device ${id}: ${problems.join("; ")}`);
    const claimed = ctx.claimPreKey(jid, id, bundle.preKeys.map((k) => k.id));
    if (claimed === undefined) throw precondition(`every one-time prekey of ${p.with} device ${id} was already used in this run`);
    try {
      const { preKeyId } = await device.omemo.startSession(jid, id, bundle, { preKeyId: claimed });
      actor.preKeysUsed.set(key, preKeyId);
      actor.bundlesUsed.set(key, bundle);
    } catch (err) {
      throw precondition(`the bundle of ${p.with} device ${id} cannot start a session: ${(err as Error).message}`);
    }
  }
  // The sender's own other devices get a key too (XEP-0384 §4.5).
  for (const other of actor.devices) {
    if (other === device || !other.omemo) continue;
    const { bundle } = await fetchBundle(ctx, device, actor.jid, other.omemo.deviceId);
    if (bundle) await device.omemo.startSession(actor.jid, other.omemo.deviceId, bundle);
  }
};

function contentPayload(ctx: CaseContext, p: Params, id: string): Buffer {
  if (typeof p.payload === "string") return Buffer.from(ctx.template(p.payload), "utf8");
  const doc = makeContentDocument({ id, kind: (p.kind as string) ?? "text", text: (p.text as string | undefined) ?? (p.kind === undefined || p.kind === "text" ? "Hello from chatconform" : undefined) }) as Record<string, unknown>;
  for (const [key, value] of Object.entries((p.fields as Record<string, unknown>) ?? {})) {
    if (value === null) delete doc[key];
    else doc[key] = value;
  }
  return Buffer.from(JSON.stringify(doc), "utf8");
}

function flipByte(b64: string, fromEnd: number): string {
  const bytes = Buffer.from(b64, "base64");
  const at = Math.max(0, bytes.length - fromEnd);
  bytes[at] = bytes[at]! ^ 0x01;
  return bytes.toString("base64");
}

function tamper(encrypted: Element, how: string): void {
  if (how === "payload") {
    const payload = encrypted.getChild("payload")!;
    payload.children = [flipByte(payload.getText(), 1)];
  } else if (how === "iv") {
    const iv = encrypted.getChild("header")!.getChild("iv")!;
    iv.children = [flipByte(iv.getText(), 1)];
  } else if (how === "mac") {
    // The last byte of each Signal message: its truncated HMAC.
    for (const key of encrypted.getChild("header")!.getChildren("key")) key.children = [flipByte(key.getText(), 1)];
  } else {
    // A byte inside the Signal message's ciphertext, before its 8-byte MAC.
    for (const key of encrypted.getChild("header")!.getChildren("key")) key.children = [flipByte(key.getText(), 12)];
  }
}

async function encryptTo(actor: Actor, device: ActorDevice & { omemo: OmemoDevice }, toJid: string, payload: Buffer | null): Promise<Element> {
  const ids = actor.peerDevices.get(toJid);
  if (!ids) throw new Error(`no session with ${toJid}: add a session step before sending`);
  const recipients = ids.map((deviceId) => ({ jid: toJid, deviceId }));
  for (const other of actor.devices) {
    if (other !== device && other.omemo) recipients.push({ jid: actor.jid, deviceId: other.omemo.deviceId });
  }
  return device.omemo.encrypt(payload, recipients);
}

const send: StepHandler = (ctx, p) => sendContent(ctx, p);

/** Encrypt and send a content message (the `send` step; `send-media` adds the media it describes). */
export async function sendContent(ctx: CaseContext, p: Params, media?: { sha256: string; mime: string }): Promise<void> {
  const actor = ctx.actor(p.actor as string);
  const deviceIndex = (p.device as number | undefined) ?? 0;
  const device = actor.connected(deviceIndex);
  const to = ctx.resolve(p.to as string);
  const id = device.conn.nextId();
  const payload = p.keyTransport ? null : contentPayload(ctx, p, id);
  const skipAhead = p.skipAhead as number | undefined;
  const snapshots = skipAhead ? await snapshotSessions(actor, device, to) : undefined;
  if (skipAhead) {
    // Messages the receiver never sees: the one sent is skipAhead positions into the future.
    for (let i = 0; i < skipAhead; i++) await encryptTo(actor, device, to, Buffer.from("{}"));
  }
  const encrypted = await encryptTo(actor, device, to, payload);
  if (snapshots) await restoreSessions(device, snapshots);
  if (p.tamper) tamper(encrypted, p.tamper as string);
  const stanza = buildEncryptedMessage({ to, id, encrypted });
  if (typeof p.body === "string") stanza.getChild("body")!.children = [p.body];
  const record = { type: "sent" as const, id, to, payload: payload ?? undefined, xml: stanza.toString(), actor: actor.name, device: deviceIndex, media };
  ctx.labels.set(p.as as string, p.hold ? { ...record, held: stanza } : record);
  if (p.hold) return;
  sendAnnotated(ctx, device, stanza, payload, p);
}

function sendAnnotated(ctx: CaseContext, device: ActorDevice & { conn: XmppConnection }, stanza: Element, payload: Buffer | null | undefined, p: Params): void {
  device.conn.send(stanza);
  const entry = ctx.entryOf(stanza);
  if (entry) {
    if (payload) entry.decrypted = payload.toString("utf8");
    const notes = [p.tamper ? `tampered: ${p.tamper}` : "", p.skipAhead ? `encrypted ${p.skipAhead} positions ahead of the chain` : "", p.keyTransport ? "empty key-transport message" : ""].filter(Boolean);
    if (notes.length) entry.note = notes.join("; ");
  }
}

interface SessionSnapshot { jid: string; deviceId: number; snapshot: string }

async function snapshotSessions(actor: Actor, device: ActorDevice & { omemo: OmemoDevice }, to: string): Promise<SessionSnapshot[]> {
  const snapshots: SessionSnapshot[] = [];
  for (const deviceId of actor.peerDevices.get(to) ?? []) {
    const snapshot = await device.omemo.snapshotSession(to, deviceId);
    if (snapshot) snapshots.push({ jid: to, deviceId, snapshot });
  }
  return snapshots;
}

/** Go back to the chain state before the skipped messages, so later sends continue in order. */
async function restoreSessions(device: ActorDevice & { omemo: OmemoDevice }, snapshots: SessionSnapshot[]): Promise<void> {
  for (const { jid, deviceId, snapshot } of snapshots) await device.omemo.restoreSession(jid, deviceId, snapshot);
}

const sendRaw: StepHandler = async (ctx, p) => {
  const actor = ctx.actor(p.actor as string);
  const deviceIndex = (p.device as number | undefined) ?? 0;
  const device = actor.connected(deviceIndex);
  const stanza = parseXml(ctx.template(p.xml as string));
  if (p.as) stanza.attrs.id = device.conn.nextId();
  device.conn.send(stanza);
  if (p.as) {
    const to = String(stanza.attrs.to ?? "");
    ctx.labels.set(p.as as string, { type: "sent", id: stanza.attrs.id as string, to, xml: stanza.toString(), actor: actor.name, device: deviceIndex });
  }
};

const replay: StepHandler = async (ctx, p) => {
  const record = ctx.sent(p.ref as string);
  const device = ctx.actor(p.actor as string).connected(record.device);
  const stanza = parseXml(record.xml);
  device.conn.send(stanza);
  const entry = ctx.entryOf(stanza);
  if (entry) entry.note = `exact replay of ${p.ref}`;
};

/**
 * An IQ answer resolves at once, while encrypted messages that arrived before it may still be
 * decrypting: wait for them, so that the inbox holds everything received before the answer.
 */
async function decrypted(actor: Actor): Promise<void> {
  for (const device of actor.devices) await device.decryptQueue;
}

async function runBarrier(ctx: CaseContext, actor: Actor, via: string, to = "reflector"): Promise<number> {
  const device = actor.connected(0);
  if (via === "hook") {
    // The hook IQ travels the same stream and the reflector answers stanzas in order.
    const outcome = await callHook(ctx, actor, "state");
    if (outcome.error) throw new Error(`barrier hook state failed: ${outcome.error.message}`);
    await decrypted(actor);
    return outcome.seq ?? 0;
  }
  if (via === "ping") {
    const result = await device.conn.iq(xml("iq", { type: "get", to: ctx.config.domain }, xml("ping", { xmlns: "urn:xmpp:ping" })));
    await decrypted(actor);
    return ctx.entryOf(result)?.seq ?? 0;
  }
  const label = `barrier-${randomBytes(3).toString("hex")}`;
  await send(ctx, { actor: actor.name, to, kind: "text", text: "barrier", as: label });
  const id = ctx.idOf(label);
  const receipt = await take(ctx, device, (item) => Boolean(item.stanza.getChild("received", NS.receipts)?.attrs.id === id), ctx.config.timeouts.stanza);
  if (!receipt) throw new Error(`barrier message ${id} got no receipt within ${ctx.config.timeouts.stanza} ms: the barrier cannot prove anything`);
  const reflect = await take(ctx, device, (item) => item.decryption?.doc?.kind === "reflect" && item.decryption.doc.ref === id, ctx.config.timeouts.stanza);
  if (!reflect) throw new Error(`barrier message ${id} got no reflection within ${ctx.config.timeouts.stanza} ms`);
  return reflect.seq;
}

const barrier: StepHandler = async (ctx, p) => {
  await runBarrier(ctx, ctx.actor(p.actor as string), p.via as string, (p.to as string | undefined) ?? "reflector");
};

function describeItem(item: InboxItem): string {
  const { stanza } = item;
  if (stanza.attrs.type === "error") return `${stanza.name} error ${describeStanzaError(parseStanzaError(stanza))}`;
  if (stanza.getChild("received", NS.receipts)) return `receipt for ${stanza.getChild("received", NS.receipts)!.attrs.id}`;
  if (item.decryption?.doc) return `encrypted ${stanza.name} (${String(item.decryption.doc.kind)})`;
  return truncate(stanza.toString(), 200);
}

function checkErrorDetails(ctx: CaseContext, requirement: string, item: InboxItem, params: Params): void {
  // Attribute values may be templates, e.g. region: "{{region:stuck}}".
  const appAttrs = Object.fromEntries(Object.entries((params.appAttrs as Record<string, string>) ?? {}).map(([k, v]) => [k, ctx.template(v)]));
  const p: Params = { ...params, appAttrs };
  const parsed = parseStanzaError(item.stanza);
  const evidence = [item.seq];
  const expectedDescription = describeMatcher(p);
  const actualDescription = describeStanzaError(parsed) + (parsed.text ? ` ("${parsed.text}")` : "");
  if (p.condition) ctx.check(requirement, parsed.condition === p.condition, expectedDescription, actualDescription, evidence);
  if (p.app) {
    const app = parsed.app;
    let ok = app?.name === p.app && app.xmlns === (p.app === "blocked" ? NS.blockingErrors : NS.tpcErrors);
    for (const [k, v] of Object.entries((p.appAttrs as Record<string, string>) ?? {})) if (app?.attrs[k] !== v) ok = false;
    ctx.check(requirement, ok, expectedDescription, actualDescription, evidence);
  }
}

const expect: StepHandler = async (ctx, p) => {
  const actor = ctx.actor(p.actor as string);
  const device = actor.device((p.device as number | undefined) ?? 0);
  const requirement = p.requirement as string;
  const wait = p.wait === false ? 0 : ctx.config.timeouts.stanza;
  const item = wait === 0
    ? (() => { const i = device.inbox.findIndex((it) => matches(ctx, it, p)); return i === -1 ? null : device.inbox.splice(i, 1)[0]!; })()
    : await take(ctx, device, (it) => matches(ctx, it, p), wait);
  const expected = describeMatcher(p);
  if (!item) {
    // Presence is noise here unless presence is what the step waits for.
    const others = device.inbox.filter((it) => ctx.isFrom(it.stanza, p.from as string | undefined) && (p.stanza === "presence" || it.stanza.name !== "presence"));
    const actual = others.length
      ? `no match ${wait ? `within ${wait} ms` : "after the barrier"}; received instead: ${others.slice(0, 3).map(describeItem).join("; ")}`
      : `nothing ${wait ? `within ${wait} ms` : "before the barrier"}`;
    // Without a wrong stanza to show, the last stanza received is the proof of what did come.
    const lastIn = [...ctx.transcript].reverse().find((e) => e.actor === device.label && e.direction === "in");
    const evidence = others.length ? others.slice(0, 3).map((o) => o.seq) : lastIn ? [lastIn.seq] : [];
    ctx.check(requirement, false, expected, actual, evidence);
    return;
  }
  ctx.check(requirement, true, expected, describeItem(item), [item.seq]);
  if (p.stanza === "error") checkErrorDetails(ctx, requirement, item, p);
  if (p.stanza === "reflect") {
    const doc = item.decryption!.doc!;
    const problems = validateReflectDocument(doc);
    ctx.check(requirement, problems.ok, "a reflect document valid against TPC/1 §8", problems.ok ? "valid" : problems.errors.join("; "), [item.seq]);
    if (p.ref) {
      const sent = ctx.sent(p.ref as string);
      const expectedHash = sent.payload ? sha256(sent.payload) : "(no payload)";
      // hash: false leaves the payload hash to the cases of ENC-06; the media hash is always checked.
      if (p.hash !== false) ctx.check(requirement, doc.sha256 === expectedHash, `reflected sha256 ${expectedHash} (the payload sent as ${p.ref})`, `sha256 ${String(doc.sha256)}`, [item.seq]);
      if (sent.media) {
        ctx.check(requirement, doc.mediaSha256 === sent.media.sha256, `reflected mediaSha256 ${sent.media.sha256} (the file sent)`, `mediaSha256 ${String(doc.mediaSha256)}`, [item.seq]);
        ctx.check(requirement, doc.mediaMime === sent.media.mime, `reflected mediaMime ${sent.media.mime} (sniffed from the file)`, `mediaMime ${String(doc.mediaMime)}`, [item.seq]);
      }
    }
  }
  if (p.as) ctx.labels.set(p.as as string, { type: "received", stanza: item.stanza, seq: item.seq, decryption: item.decryption });
};

const expectNo: StepHandler = async (ctx, p) => {
  const actor = ctx.actor(p.actor as string);
  const device = actor.device((p.device as number | undefined) ?? 0);
  const via = (p.barrier as string | undefined) ?? "message";
  let barrierSeq = via === "none" ? undefined : await runBarrier(ctx, actor, via);
  const index = (p.device as number | undefined) ?? 0;
  if (barrierSeq !== undefined && index !== 0) {
    // The barrier ran on device 0's stream, and order holds per stream only: a ping on this device's
    // own stream, once the barrier is answered, proves what the server had routed to it arrived.
    const result = await actor.connected(index).conn.iq(xml("iq", { type: "get", to: ctx.config.domain }, xml("ping", { xmlns: "urn:xmpp:ping" })));
    await decrypted(actor);
    barrierSeq = ctx.entryOf(result)?.seq ?? barrierSeq;
  }
  const found = device.inbox.find((it) => matches(ctx, it, p));
  const proof = barrierSeq ? `, proven by the barrier answered at #${barrierSeq}` : "";
  ctx.check(
    p.requirement as string,
    !found,
    `no ${describeMatcher(p)}`,
    found ? describeItem(found) : `none${proof}`,
    found ? [found.seq] : barrierSeq ? [barrierSeq] : [],
  );
};

function hookForm(ctx: CaseContext, args: Params): Element {
  const fields = Object.entries(args).map(([name, value]) => {
    const text = (name === "to" || name === "jid") ? ctx.resolve(String(value)) : String(value);
    return xml("field", { var: name }, xml("value", {}, text));
  });
  return xml("x", { xmlns: NS.xdata, type: "submit" }, ...fields);
}

/** Call a reflector hook (XEP-0050); returns its JSON result. */
export async function callHook(ctx: CaseContext, actor: Actor, name: string, args: Params = {}): Promise<{ json?: unknown; error?: StanzaError; seq?: number }> {
  if (!ctx.config.hooks.includes(name as never)) throw new NotTested(`the endpoint exposes no "${name}" hook`);
  const device = actor.connected(0);
  const command = xml("command", { xmlns: NS.commands, node: `${NS.tpcTest}:${name}`, action: "execute" }, hookForm(ctx, args));
  try {
    const result = await device.conn.iq(xml("iq", { type: "set", to: ctx.resolve("reflector") }, command));
    const seq = ctx.entryOf(result)?.seq;
    const value = result.getChild("command", NS.commands)?.getChild("x", NS.xdata)?.getChildren("field").find((f) => f.attrs.var === "json")?.getChildText("value");
    if (!value) throw new Error(`hook ${name} answered without a json field`);
    return { json: JSON.parse(value), seq };
  } catch (err) {
    if (err instanceof StanzaError) return { error: err, seq: ctx.entryOf(err.stanza)?.seq };
    throw err;
  }
}

const hook: StepHandler = async (ctx, p) => {
  const actor = ctx.actor(p.actor as string);
  const outcome = await callHook(ctx, actor, p.name as string, (p.args as Params) ?? {});
  const expectation = (p.expect as string | undefined) ?? "completed";
  const requirement = p.requirement as string | undefined;
  if (expectation === "forbidden") {
    const actual = outcome.error ? describeStanzaError(outcome.error.error) : "the hook ran (completed)";
    if (!requirement) throw new Error("a hook step that expects forbidden needs a requirement");
    ctx.check(requirement, outcome.error?.condition === "forbidden", `hook ${p.name} refused with forbidden`, actual, outcome.seq ? [outcome.seq] : []);
    return;
  }
  if (outcome.error) {
    if (requirement) ctx.check(requirement, false, `hook ${p.name} completes`, outcome.error.message, outcome.seq ? [outcome.seq] : []);
    throw new Error(`hook ${p.name} failed: ${outcome.error.message}`);
  }
  if (p.bounce) {
    // The partner's own send came back with this error: the server refused it (send hook result).
    const want = p.bounce as { condition?: string; app?: string };
    const to = ctx.resolve(String((p.args as Params | undefined)?.to ?? ""));
    const result = outcome.json as { sent?: string[]; errors?: string[]; bounced?: { id: string; to: string; condition?: string; app?: string }[] };
    const bounces = (result.bounced ?? []).filter((b) => bareJid(b.to) === to);
    const ok = (result.sent?.length ?? 0) > 0 && bounces.length === (result.sent?.length ?? 0) &&
      bounces.every((b) => (!want.condition || b.condition === want.condition) && (!want.app || b.app === want.app));
    if (!requirement) throw new Error("a hook step with bounce needs a requirement");
    ctx.check(
      requirement, ok,
      `every message the reflector sent to ${to} bounced with ${want.condition ?? "an error"}${want.app ? ` + <${want.app}/>` : ""}`,
      `sent ${JSON.stringify(result.sent ?? [])}, bounced ${JSON.stringify(bounces)}${result.errors?.length ? `, errors ${JSON.stringify(result.errors)}` : ""}`,
      outcome.seq ? [outcome.seq] : [],
    );
  }
  if (p.lacks) {
    // The partner's own record must not mention the stanza at all: it never reached the user.
    const id = ctx.idOf(p.lacks as string);
    const text = JSON.stringify(outcome.json);
    if (!requirement) throw new Error("a hook step with lacks needs a requirement");
    ctx.check(requirement, !text.includes(id), `the reflector's ${p.name} does not mention ${p.lacks} (${id})`, text.includes(id) ? `it does: ${truncate(text)}` : "not mentioned", outcome.seq ? [outcome.seq] : []);
  }
  if (p.lacksText) {
    // Nothing the actor told about itself (a name in its vCard or nick) reached the partner's record.
    const text = JSON.stringify(outcome.json);
    if (!requirement) throw new Error("a hook step with lacksText needs a requirement");
    const found = text.includes(String(p.lacksText));
    ctx.check(requirement, !found, `the reflector's ${p.name} never mentions "${String(p.lacksText)}"`, found ? `it does: ${truncate(text)}` : "not mentioned", outcome.seq ? [outcome.seq] : []);
  }
  if (p.as) ctx.labels.set(p.as as string, { type: "hook", json: outcome.json });
};

const iq: StepHandler = async (ctx, p) => {
  const actor = ctx.actor(p.actor as string);
  const device = actor.connected(0);
  const child = parseXml(ctx.template(p.xml as string));
  const request = xml("iq", { type: p.type as string, to: ctx.resolve(p.to as string) }, child);
  const requirement = p.requirement as string;
  const expectedDescription = p.expect === "result" ? "an IQ result" : `an IQ error ${describeMatcher({ ...p, stanza: "" })}`.replace("  ", " ");
  try {
    const result = await device.conn.iq(request, ctx.config.timeouts.stanza);
    ctx.check(requirement, p.expect === "result", expectedDescription, `an IQ result: ${truncate(result.toString(), 200)}`, [ctx.entryOf(result)?.seq ?? 0]);
  } catch (err) {
    if (!(err instanceof StanzaError)) {
      if (err instanceof ConnectionError && err.kind === "timeout") {
        ctx.timeoutWaitMs += ctx.config.timeouts.stanza;
        ctx.check(requirement, false, expectedDescription, err.message);
      }
      throw err;
    }
    const seq = ctx.entryOf(err.stanza)?.seq ?? 0;
    if (p.as) ctx.labels.set(p.as as string, { type: "received", stanza: err.stanza, seq });
    ctx.check(requirement, p.expect === "error", expectedDescription, `an IQ error ${describeStanzaError(err.error)}`, [seq]);
    checkErrorDetails(ctx, requirement, { stanza: err.stanza, seq }, p);
  }
};

const devicelist: StepHandler = async (ctx, p) => {
  const device = ctx.actor(p.actor as string).connected(0);
  const jid = ctx.resolve(p.of as string);
  const requirement = p.requirement as string;
  try {
    const { items, stanza } = await fetchPep(ctx, device, jid, NS.omemoDeviceList);
    const seq = ctx.entryOf(stanza)?.seq ?? 0;
    const list = items[0]?.getChild("list", NS.omemo);
    ctx.check(requirement, Boolean(list), `a <list xmlns='${NS.omemo}'/> item at ${NS.omemoDeviceList}`, list ? "present" : `no list in ${truncate(stanza.toString())}`, [seq]);
    const parsed = parseDeviceListElement(list!);
    ctx.check(requirement, parsed.problems.length === 0 && parsed.ids.length > 0, "a well-formed device list naming at least one device", parsed.problems.length ? parsed.problems.join("; ") : `devices ${parsed.ids.join(", ") || "(none)"}`, [seq]);
    device.actor.peerDevices.set(jid, parsed.ids);
  } catch (err) {
    if (!(err instanceof StanzaError)) throw err;
    ctx.check(requirement, false, "the device list, readable by anyone (access_model open)", `error ${describeStanzaError(err.error)}`, [ctx.entryOf(err.stanza)?.seq ?? 0]);
  }
};

const bundles: StepHandler = async (ctx, p) => {
  const device = ctx.actor(p.actor as string).connected(0);
  const jid = ctx.resolve(p.of as string);
  const requirement = p.requirement as string;
  const ids = await fetchDeviceIds(ctx, device, jid).catch((err: Error) => {
    throw precondition(`cannot read ${p.of}'s device list: ${err.message}`);
  });
  if (ids.length === 0) throw precondition(`${p.of} publishes no device list; the bundle check cannot run`);
  for (const id of ids) {
    let fetched: Awaited<ReturnType<typeof fetchBundle>>;
    try {
      fetched = await fetchBundle(ctx, device, jid, id);
    } catch (err) {
      if (!(err instanceof StanzaError)) throw err;
      ctx.check(requirement, false, `the bundle of device ${id}, readable by anyone`, `error ${describeStanzaError(err.error)}`, [ctx.entryOf(err.stanza)?.seq ?? 0]);
      return;
    }
    const evidence = fetched.seq ? [fetched.seq] : [];
    const bundle = fetched.bundle;
    if (!bundle) {
      ctx.check(requirement, false, `a usable bundle for device ${id}`, fetched.problems.join("; "), evidence);
      return;
    }
    if (p.check === "prekey-count") {
      const min = (p.min as number | undefined) ?? 20;
      ctx.check(requirement, bundle.preKeys.length >= min, `device ${id}: at least ${min} one-time prekeys`, `${bundle.preKeys.length} prekeys`, evidence);
    } else if (p.check === "signature") {
      const valid = await verifySignedPreKeySignature(bundle);
      ctx.check(requirement, valid, `device ${id}: signed prekey ${bundle.signedPreKey.id} signature verifies under the identity key`, valid ? "valid signature" : "the signature does not verify", evidence);
    } else {
      const ids = [bundle.signedPreKey.id, ...bundle.preKeys.map((k) => k.id)];
      const outOfRange = bundle.preKeys.map((k) => k.id).filter((k) => !Number.isInteger(k) || k < 1 || k > 2 ** 31 - 1);
      const seen = new Set<number>();
      const duplicates = bundle.preKeys.map((k) => k.id).filter((k) => (seen.has(k) ? true : (seen.add(k), false)));
      const problems = [...fetched.problems];
      if (outOfRange.length) problems.push(`ids out of 1..2^31-1: ${outOfRange.slice(0, 5).join(", ")}`);
      if (duplicates.length) problems.push(`duplicate prekey ids: ${[...new Set(duplicates)].slice(0, 5).join(", ")}`);
      ctx.check(requirement, problems.length === 0, `device ${id}: prekey ids in 1..2^31-1 and unique`, problems.length ? problems.join("; ") : `${ids.length} ids, all in range and unique`, evidence);
    }
  }
};

const prekeyConsumed: StepHandler = async (ctx, p) => {
  const actor = ctx.actor(p.actor as string);
  const device = actor.connected(0);
  const jid = ctx.resolve(p.of as string);
  const requirement = p.requirement as string;
  const within = (p.withinMs as number | undefined) ?? 5000;
  const used = [...actor.preKeysUsed.entries()].filter(([key]) => key.startsWith(`${jid}:`));
  if (used.length === 0) throw new Error(`no session with ${p.of} was started in this case: nothing to check`);
  for (const [key, preKeyId] of used) {
    const deviceId = Number(key.slice(jid.length + 1));
    const started = Date.now();
    let delay = 25;
    // The bundle is republished asynchronously and PEP notifications need a presence subscription
    // G does not have, so poll with backoff until the deadline.
    for (;;) {
      const { bundle, seq } = await fetchBundle(ctx, device, jid, deviceId);
      const stillThere = bundle?.preKeys.some((k) => k.id === preKeyId) ?? true;
      const elapsed = Date.now() - started;
      if (!stillThere) {
        ctx.check(requirement, true, `prekey ${preKeyId} gone from device ${deviceId}'s bundle within ${within} ms`, `gone after ${elapsed} ms`, seq ? [seq] : []);
        break;
      }
      if (elapsed >= within) {
        ctx.timeoutWaitMs += elapsed;
        ctx.check(requirement, false, `prekey ${preKeyId} gone from device ${deviceId}'s bundle within ${within} ms`, `still published after ${elapsed} ms`, seq ? [seq] : []);
      }
      await new Promise((resolve) => setTimeout(resolve, Math.min(delay, within - elapsed)));
      delay = Math.min(delay * 2, 500);
    }
  }
};

const receive: StepHandler = async (ctx, p) => {
  const actor = ctx.actor(p.actor as string);
  const device = actor.device((p.device as number | undefined) ?? 0);
  const requirement = p.requirement as string;
  const item = await take(ctx, device, (it) => ctx.isFrom(it.stanza, p.from as string) && it.stanza.name === "message" && it.stanza.attrs.type !== "error" && it.decryption?.doc?.kind !== "reflect" && !it.stanza.getChild("received", NS.receipts), ctx.config.timeouts.stanza);
  if (!item) {
    ctx.check(requirement, false, `a message from ${p.from}`, `nothing within ${ctx.config.timeouts.stanza} ms`);
    return;
  }
  ctx.labels.set(p.as as string, { type: "received", stanza: item.stanza, seq: item.seq, decryption: item.decryption });
  const decryption = item.decryption;
  ctx.check(requirement, Boolean(decryption?.ok && decryption.payload), `an OMEMO message from ${p.from} that this device can decrypt`, decryption ? (decryption.ok ? (decryption.payload ? "decrypted" : "an empty key-transport message") : `not decryptable: ${decryption.error}`) : "not encrypted", [item.seq]);
};

const checkMessage: StepHandler = async (ctx, p) => {
  const record = ctx.received(p.ref as string);
  const { stanza } = record;
  const requirement = p.requirement as string;
  const evidence = [record.seq];
  if (p.check === "hints") {
    const eme = stanza.getChild("encryption", NS.eme);
    ctx.check(requirement, eme?.attrs.namespace === NS.omemo, `<encryption xmlns='${NS.eme}' namespace='${NS.omemo}'/>`, eme ? truncate(eme.toString()) : "no EME element", evidence);
    ctx.check(requirement, Boolean(stanza.getChild("store", NS.hints)), `<store xmlns='${NS.hints}'/>`, stanza.getChild("store", NS.hints) ? "present" : "absent", evidence);
    const body = stanza.getChildText("body");
    ctx.check(requirement, body === null || body === ENCRYPTED_NOTICE, `no plaintext body beyond "${ENCRYPTED_NOTICE}"`, body === null ? "no body" : `body "${truncate(body, 120)}"`, evidence);
    const plaintextChildren = stanza.children.filter((c): c is Element => typeof c !== "string" && ["subject", "html"].includes(c.name));
    ctx.check(requirement, plaintextChildren.length === 0, "no other plaintext content (subject, XHTML-IM)", plaintextChildren.length ? plaintextChildren.map((c) => c.name).join(", ") : "none", evidence);
  } else if (p.check === "schema") {
    const doc = record.decryption?.doc;
    const verdict = doc ? validateContentDocument(doc) : { ok: false as const, errors: [record.decryption?.parseError ? `not JSON: ${record.decryption.parseError}` : "no payload"] };
    ctx.check(requirement, verdict.ok, "a content document valid against the TPC/1 schema", verdict.ok ? "valid" : verdict.errors.join("; "), evidence);
    ctx.check(requirement, doc?.id === stanza.attrs.id, `document id equal to the stanza id ${stanza.attrs.id}`, `id ${String(doc?.id)}`, evidence);
  } else {
    const actor = ctx.actor(p.actor as string);
    const header = stanza.getChild("encrypted", NS.omemo)?.getChild("header");
    const rids = (header?.getChildren("key") ?? []).map((k) => Number(k.attrs.rid));
    const sid = Number(header?.attrs.sid);
    const ownIds = await fetchDeviceIds(ctx, actor.connected(0), actor.jid);
    const senderIds = await fetchDeviceIds(ctx, actor.connected(0), bareJid(String(stanza.attrs.from))).catch(() => [] as number[]);
    const allowed = new Set([...ownIds, ...senderIds.filter((id) => id !== sid)]);
    const missing = ownIds.filter((id) => !rids.includes(id));
    const extra = rids.filter((id) => !allowed.has(id));
    ctx.check(requirement, missing.length === 0, `a key for each of ${actor.name}'s listed devices (${ownIds.join(", ")})`, missing.length ? `no key for ${missing.join(", ")}` : `keys for ${rids.join(", ")}`, evidence);
    ctx.check(requirement, extra.length === 0, "no key for a device outside the device lists", extra.length ? `keys for unlisted devices ${extra.join(", ")}` : "none", evidence);
  }
};

/** Send messages built earlier with `hold`, in the order given, in one write (so they travel together). */
const release: StepHandler = async (ctx, p) => {
  const actor = ctx.actor(p.actor as string);
  const records = (p.refs as string[]).map((ref) => {
    const record = ctx.sent(ref);
    if (!record.held) throw new Error(`${ref} was not held (send it with hold: true)`);
    return record;
  });
  const device = actor.connected(records[0]!.device);
  device.conn.sendMany(records.map((r) => r.held!));
  for (const record of records) {
    const entry = ctx.entryOf(record.held!);
    if (entry && record.payload) entry.decrypted = record.payload.toString("utf8");
    record.held = undefined;
  }
};

/** Fisher–Yates with the case's seeded "burst" stream, so a run with the same --seed sends the same order. */
export function shuffled<T>(items: T[], random: SeededRandom): T[] {
  const out = [...items];
  for (let i = out.length - 1; i > 0; i--) {
    const j = random.int(i + 1);
    [out[i], out[j]] = [out[j]!, out[i]!];
  }
  return out;
}

/** `count` text messages labelled `<as>-1` … `<as>-N`, encrypted in order, sent in the chosen order in one write. */
const burst: StepHandler = async (ctx, p) => {
  const count = p.count as number;
  const labels = Array.from({ length: count }, (_, i) => `${p.as as string}-${i + 1}`);
  for (const [i, label] of labels.entries()) {
    await send(ctx, { actor: p.actor, to: p.to, kind: "text", text: `message ${i + 1} of ${count}`, as: label, hold: true });
  }
  const order = p.order === "shuffled" ? shuffled(labels, ctx.random("burst")) : p.order === "reversed" ? [...labels].reverse() : labels;
  await release(ctx, { actor: p.actor, refs: order });
  ctx.labels.set(`${p.as as string}-order`, { type: "hook", json: order });
};

/** Every message of a burst got its receipt (and, with ordered, in the order the burst was sent). */
const expectAll: StepHandler = async (ctx, p) => {
  const actor = ctx.actor(p.actor as string);
  const device = actor.device(0);
  const requirement = p.requirement as string;
  const sentOrder = (ctx.labels.get(`${p.ref as string}-order`) as { json: string[] } | undefined)?.json;
  if (!sentOrder) throw new Error(`${p.ref} is not a burst`);
  const ids = sentOrder.map((label) => ctx.idOf(label));
  const arrived: InboxItem[] = [];
  for (const id of ids) {
    const item = await take(ctx, device, (it) => (p.stanza === "reflect"
      ? it.decryption?.doc?.kind === "reflect" && it.decryption.doc.ref === id
      : it.stanza.getChild("received", NS.receipts)?.attrs.id === id), ctx.config.timeouts.stanza);
    if (!item) {
      ctx.check(requirement, false, `a ${p.stanza} for each of the ${ids.length} messages of ${p.ref}`, `${arrived.length} arrived; none for message ${ids.indexOf(id) + 1} (${id}) within ${ctx.config.timeouts.stanza} ms`, arrived.slice(-3).map((a) => a.seq));
    }
    arrived.push(item!);
  }
  ctx.check(requirement, true, `a ${p.stanza} for each of the ${ids.length} messages of ${p.ref}`, `all ${ids.length} arrived`, [arrived[0]!.seq, arrived.at(-1)!.seq]);
  if (p.ordered) {
    const bySeq = [...arrived].sort((a, b) => a.seq - b.seq);
    const idOf = (it: InboxItem) => (p.stanza === "reflect" ? String(it.decryption?.doc?.ref) : String(it.stanza.getChild("received", NS.receipts)?.attrs.id));
    const firstWrong = bySeq.findIndex((it, i) => idOf(it) !== ids[i]);
    ctx.check(requirement, firstWrong === -1, `${p.stanza}s in the order the messages were sent`, firstWrong === -1 ? "in order" : `position ${firstWrong + 1} is message ${ids.indexOf(idOf(bySeq[firstWrong]!)) + 1}`, firstWrong === -1 ? [] : [bySeq[firstWrong]!.seq]);
  }
};

/** The device gets a new identity key under the same device id and republishes its bundle first. */
const rotateIdentity: StepHandler = async (ctx, p) => {
  const actor = ctx.actor(p.actor as string);
  const device = actor.connected((p.device as number | undefined) ?? 0);
  await device.omemo.rotateIdentity();
  await publishOmemo(actor, device);
};

/** Republish the actor's device list naming only the given devices (the others keep their bundles). */
const publishDevicelist: StepHandler = async (ctx, p) => {
  const actor = ctx.actor(p.actor as string);
  const keep = new Set(p.devices as number[]);
  for (const device of actor.devices) device.listed = keep.has(device.index);
  const first = actor.connected([...keep][0] ?? 0);
  const ids = actor.devices.filter((d) => d.omemo && d.listed).map((d) => d.omemo!.deviceId);
  await publish(first, NS.omemoDeviceList, "current", deviceListElement(ids));
};

interface StatePeer { jid: string; identityChanged?: boolean }

/** Named checks on the JSON a `state` hook returned. */
const checkState: StepHandler = async (ctx, p) => {
  const record = ctx.labels.get(p.ref as string);
  if (!record || record.type !== "hook") throw new Error(`${p.ref} is not a hook result`);
  const state = record.json as { peers?: StatePeer[]; received?: { id: string; from: string }[] };
  const jid = ctx.resolve(p.of as string);
  if (p.check === "received") {
    // The partner still holds what it received from `of` as `lists` (e.g. after a number change).
    const id = ctx.idOf(p.lists as string);
    const entry = state.received?.find((x) => x.id === id && bareJid(x.from) === jid);
    ctx.check(p.requirement as string, Boolean(entry), `state.received lists ${p.lists} (${id}) from ${p.of}`, entry ? "listed" : `not listed; received: ${truncate(JSON.stringify(state.received ?? []))}`);
    return;
  }
  const peer = state.peers?.find((x) => bareJid(x.jid) === jid);
  ctx.check(p.requirement as string, peer?.identityChanged === true, `state.peers[${p.of}].identityChanged = true`, peer ? `identityChanged = ${String(peer.identityChanged)}` : `no peer entry for ${jid}`);
};

/** Negotiation probes on a fresh connection of their own (transport requirements). */
const probe: StepHandler = async (ctx, p) => {
  const requirement = p.requirement as string;
  const conn = await XmppConnection.open(connectionOptions(ctx, "probe"));
  try {
    const evidence = () => [ctx.transcript.at(-1)?.seq ?? 0];
    if (conn.secure) {
      ctx.check(requirement, true, "TLS before authentication", "direct TLS (xmpps): every byte is encrypted", evidence());
      // With direct TLS there is no "before TLS"; what is offered on the encrypted stream still counts.
      if (p.check !== "starttls-required") {
        const offered = conn.mechanisms();
        ctx.check(requirement, offered.includes("SCRAM-SHA-1"), "SCRAM-SHA-1 offered after TLS", `mechanisms after TLS: ${offered.join(", ") || "none"}`, evidence());
      }
      return;
    }
    const starttls = conn.features?.getChild("starttls", NS.tls);
    if (p.check === "starttls-required") {
      ctx.check(requirement, Boolean(starttls), "<starttls/> offered in the first stream features", starttls ? "offered" : `features: ${truncate(conn.features?.toString() ?? "none")}`, evidence());
      ctx.check(requirement, Boolean(starttls?.getChild("required")), "<starttls><required/></starttls>", starttls?.getChild("required") ? "required" : "offered as optional", evidence());
      const actor = ctx.actor(p.actor as string);
      // Real credentials, so a success would really be an authentication without TLS. SCRAM when the
      // server offers it before TLS (it then claims to accept it), PLAIN otherwise.
      const mechanism = conn.mechanisms().includes("SCRAM-SHA-1") ? "SCRAM-SHA-1" : "PLAIN";
      let actual: string;
      let refused: boolean;
      try {
        await conn.authenticate(actor.username, actor.password, mechanism);
        refused = false;
        actual = `${mechanism} authentication succeeded on a connection without TLS`;
      } catch (err) {
        const error = err as ConnectionError;
        refused = error.kind !== "timeout";
        actual = `refused: ${error.message}`;
      }
      ctx.check(requirement, refused, "authentication before STARTTLS refused (SASL failure or stream error)", actual, evidence());
    } else {
      const before = conn.mechanisms();
      ctx.check(requirement, !before.includes("PLAIN"), "PLAIN not offered before TLS", before.length ? `mechanisms before TLS: ${before.join(", ")}` : "no mechanisms before TLS", evidence());
      if (!starttls) throw new Error("the endpoint offers no STARTTLS; the mechanisms after TLS cannot be read");
      await conn.startTls();
      const after = conn.mechanisms();
      ctx.check(requirement, after.includes("SCRAM-SHA-1"), "SCRAM-SHA-1 offered after TLS", `mechanisms after TLS: ${after.join(", ") || "none"}`, evidence());
    }
  } finally {
    conn.destroy();
  }
};

export const STEP_HANDLERS: Record<string, StepHandler> = {
  connect, disconnect, session, send, "send-raw": sendRaw, replay, expect, "expect-no": expectNo, barrier,
  hook, iq, devicelist, bundles, "prekey-consumed": prekeyConsumed, probe, receive, "check-message": checkMessage,
  release, burst, "expect-all": expectAll, "rotate-identity": rotateIdentity, "publish-devicelist": publishDevicelist,
  "check-state": checkState,
};

export { decryptFor };
