// The reflector: a partner-side test user running as a real XMPP client of the partner server.
// It behaves like a compliant TPC/1 client (decrypt, validate, receipt, reject) plus the test
// behaviour of TPC/1 §8: a `reflect` document for every accepted message, and XEP-0050 hooks.
// Known-bad partners switch single faults on by name (options.faults); each is marked "fault:" below.
import { randomUUID } from "node:crypto";
import { XmppConnection } from "../protocol/connection.ts";
import type { ConnectionOptions } from "../protocol/connection.ts";
import {
  OmemoDecryptError, OmemoDevice, bundleToElement, buildEncryptedMessage, deviceListElement, parseBundleElement, parseDeviceListElement,
} from "../protocol/omemo.ts";
import type { OmemoBundle, OmemoDecryption } from "../protocol/omemo.ts";
import { SEND_FIXTURE_NAMES as FIXTURE_NAMES } from "../protocol/media-info.ts";
import { receiveMedia, uploadFixture } from "./reflector-media.ts";
import type { MediaDescriptor } from "./reflector-media.ts";
import { CONTENT_KINDS, judgeContent, makeContentDocument, makeReflectDocument } from "../protocol/content.ts";
import type { ContentDocument, ContentJudgement } from "../protocol/content.ts";
import { StanzaError, errorElement, parseStanzaError, tpcCondition } from "../protocol/stanza-error.ts";
import { Element, NS, bareJid, localPart, xml } from "../protocol/xml.ts";

export interface ReflectorOptions {
  connection: Omit<ConnectionOptions, "onTraffic">;
  username: string;
  password: string;
  /** Only users whose username starts with this prefix may call hooks. */
  testPrefix: string;
  faults?: ReadonlySet<string>;
  preKeyCount?: number;
  log?: (line: string) => void;
}

interface ReceivedEntry { id: string; from: string; deviceId: number; kind: string; sha256: string; mediaSha256?: string; mediaMime?: string }
interface RejectedEntry { id: string; from: string; condition: string; feature?: string; reason: string }
interface Bounce { id: string; to: string; condition?: string; app?: string }

export interface Reflector {
  jid: string;
  stop(): Promise<void>;
}

const HOOK_NAMES = ["reset", "block", "unblock", "send", "state", "reconnect"];

/** Faults this reflector implements (known-bad partners); unknown names in options.faults are ignored. */
export const REFLECTOR_FAULTS: ReadonlySet<string> = new Set([
  // media faults live in reflector-media.ts
  "media-plaintext-upload", "media-wrong-hash", "media-mime-lies", "media-no-mismatch-check", "media-integrity-ignored", "media-no-duration",
  "no-receipt-check", "prekey-not-removed", "devicelist-private", "bundle-few-prekeys", "bundle-50-prekeys",
  "bad-spk-signature", "duplicate-prekey-id", "reflect-wrong-hash", "missing-device-key", "extra-device-key",
  "prekey-reuse-accepted", "replay-accepted", "session-reset-on-error", "out-of-order-drop", "future-kills-session",
  "identity-change-silent", "no-eme-hints", "plaintext-fallback-send", "content-invalid-send", "accepts-invalid-content",
  "key-transport-receipt", "history-lost-on-number-change",
  "nick-leak", "sticker-silently-dropped", "ephemeral-ignored", "jingle-accepted",
  "unblock-local-only",
]);

/** The partner user's own profile: it exists (as on any real account) and must never reach a G. */
const PROFILE_NAME = "Reflector (partner test user)";
const AVATAR_PNG = "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9awAAAABJRU5ErkJggg==";

export async function startReflector(options: ReflectorOptions): Promise<Reflector> {
  const faults = options.faults ?? new Set<string>();
  const jid = `${options.username}@${options.connection.domain}`;
  const preKeyCount = faults.has("bundle-few-prekeys") ? 10 // fault: fewer one-time prekeys than the required 20
    : faults.has("bundle-50-prekeys") ? 50 // fault: fewer than the recommended 100 (still at least 20)
    : options.preKeyCount ?? 100;
  const omemo = await OmemoDevice.generate({
    jid, preKeyCount,
    keepConsumedPreKeys: faults.has("prekey-reuse-accepted"), // fault: a consumed prekey's private key is kept, so its reuse decrypts
  });
  const state = {
    received: [] as ReceivedEntry[],
    rejected: [] as RejectedEntry[],
    dropped: 0,
    blocked: new Set<string>(),
    bounced: [] as Bounce[],
  };
  /** replay-accepted only: payloads of accepted messages by `bare sender jid|stanza id`. */
  const acceptedPayloads = new Map<string, Buffer>();
  /** out-of-order-drop only: highest counter accepted per `bare jid|device|ratchet key` (one sending chain). */
  const chainHighs = new Map<string, number>();
  let conn: XmppConnection;
  let stopped = false;
  let queue: Promise<void> = Promise.resolve();
  const log = options.log ?? (() => undefined);

  async function publish(node: string, payload: Element, open = true): Promise<void> {
    const options = open
      ? [xml("publish-options", {}, xml("x", { xmlns: NS.xdata, type: "submit" },
        xml("field", { var: "FORM_TYPE", type: "hidden" }, xml("value", {}, "http://jabber.org/protocol/pubsub#publish-options")),
        xml("field", { var: "pubsub#access_model" }, xml("value", {}, "open")),
      ))]
      : [];
    await conn.iq(xml("iq", { type: "set" }, xml("pubsub", { xmlns: NS.pubsub },
      xml("publish", { node }, xml("item", { id: "current" }, payload)),
      ...options,
    )));
  }

  /** The bundle as published (OmemoDevice.bundle() hands out copies, so faults never touch the real keys). */
  function publishedBundle(): Element {
    const bundle = omemo.bundle();
    if (faults.has("bad-spk-signature")) bundle.signedPreKey.signature[0]! ^= 0x01; // fault: one signature byte flipped
    const el = bundleToElement(bundle);
    if (faults.has("duplicate-prekey-id")) { // fault: one prekey entry repeated verbatim (same id, same key)
      const prekeys = el.getChild("prekeys")!;
      const first = prekeys.getChildren("preKeyPublic")[0]!;
      prekeys.append(xml("preKeyPublic", { ...first.attrs }, first.getText()));
    }
    return el;
  }

  async function publishKeys(): Promise<void> {
    // fault devicelist-private: no publish-options, so the node gets the server's default access model (presence)
    await publish(NS.omemoDeviceList, deviceListElement([omemo.deviceId]), !faults.has("devicelist-private"));
    await publish(`${NS.omemoBundles}:${omemo.deviceId}`, publishedBundle());
  }

  // A consumed prekey is republished away before the message that consumed it is acknowledged.
  let bundleChanged = false;
  omemo.onBundleChanged = () => {
    bundleChanged = true;
  };
  async function republishIfChanged(): Promise<void> {
    if (!bundleChanged || faults.has("prekey-not-removed")) return;
    bundleChanged = false;
    await publish(`${NS.omemoBundles}:${omemo.deviceId}`, publishedBundle());
  }

  async function connect(resource = "reflector"): Promise<void> {
    conn = await XmppConnection.connectAndLogin({ ...options.connection, onTraffic: (dir, text) => log(`${dir} ${text}`) }, {
      username: options.username, password: options.password, resource,
    });
    conn.on("stanza", (stanza) => {
      if (secondCopy(stanza)) return;
      // Bounces are recorded at once, not queued: the send hook that caused them is still running
      // and reports them (its ping barrier proves they have arrived).
      if (stanza.name === "message" && stanza.attrs.type === "error") {
        recordBounce(stanza);
        return;
      }
      queue = queue.then(() => handle(stanza)).catch((err) => log(`reflector error: ${(err as Error).stack ?? err}`));
    });
    conn.on("close", (reason) => {
      if (!stopped && !reconnecting) log(`reflector connection closed: ${reason?.message}`);
    });
    await publishKeys();
    await publishProfile();
    // Reconnecting: from this presence on, both sessions are online until the old one is gone.
    if (reconnecting) overlapSeen = new Set();
    conn.send(xml("presence"));
  }

  /** A vCard, a vCard4, a nick and an avatar, as a real user has; the partner must keep them from G. */
  async function publishProfile(): Promise<void> {
    await conn.iq(xml("iq", { type: "set" }, xml("vCard", { xmlns: "vcard-temp" }, xml("FN", {}, PROFILE_NAME), xml("NICKNAME", {}, "reflector"))));
    await publish("urn:xmpp:vcard4", xml("vcard", { xmlns: "urn:ietf:params:xml:ns:vcard-4.0" }, xml("fn", {}, xml("text", {}, PROFILE_NAME))));
    await publish("http://jabber.org/protocol/nick", xml("nick", { xmlns: "http://jabber.org/protocol/nick" }, PROFILE_NAME));
    const avatarBytes = Buffer.from(AVATAR_PNG, "base64");
    await publish("urn:xmpp:avatar:data", xml("data", { xmlns: "urn:xmpp:avatar:data" }, AVATAR_PNG));
    await publish("urn:xmpp:avatar:metadata", xml("metadata", { xmlns: "urn:xmpp:avatar:metadata" },
      xml("info", { bytes: String(avatarBytes.length), id: "avatar-1", type: "image/png", width: "1", height: "1" })));
  }

  async function fetchBundle(peer: string, deviceId: number): Promise<OmemoBundle | undefined> {
    try {
      const result = await conn.iq(xml("iq", { type: "get", to: peer }, xml("pubsub", { xmlns: NS.pubsub }, xml("items", { node: `${NS.omemoBundles}:${deviceId}` }))));
      const bundleEl = result.getChild("pubsub", NS.pubsub)?.getChild("items")?.getChild("item")?.getChild("bundle", NS.omemo);
      return bundleEl ? parseBundleElement(bundleEl).bundle : undefined;
    } catch (err) {
      log(`no bundle for ${peer}:${deviceId}: ${(err as Error).message}`);
      return undefined;
    }
  }

  /**
   * The recipients to encrypt for: every device on the peer's current device list (read again for
   * every message). A device without a session gets one from its bundle; a device whose bundle
   * shows an identity key other than the one its session was built with gets a new session, and
   * is left out if none can be built: never encrypt to an identity the device no longer has.
   */
  async function recipientsFor(peer: string): Promise<{ jid: string; deviceId: number }[]> {
    const result = await conn.iq(xml("iq", { type: "get", to: peer }, xml("pubsub", { xmlns: NS.pubsub }, xml("items", { node: NS.omemoDeviceList }))));
    const list = result.getChild("pubsub", NS.pubsub)?.getChild("items")?.getChild("item")?.getChild("list", NS.omemo);
    let ids = list ? parseDeviceListElement(list).ids : [];
    if (faults.has("missing-device-key")) ids = ids.slice(0, 1); // fault: only the first listed device gets a key
    const recipients: { jid: string; deviceId: number }[] = [];
    for (const deviceId of ids) {
      const bundle = await fetchBundle(peer, deviceId);
      const hasSession = await omemo.hasSession(peer, deviceId);
      const known = omemo.knownIdentity(peer, deviceId);
      const identityChanged = Boolean(bundle && known && !Buffer.from(known).equals(Buffer.from(bundle.identityKey)));
      if (bundle && (!hasSession || identityChanged)) {
        try {
          await omemo.startSession(peer, deviceId, bundle);
        } catch (err) {
          log(`no session with ${peer}:${deviceId}: ${(err as Error).message}`);
          continue;
        }
      } else if (!hasSession) {
        continue;
      }
      recipients.push({ jid: peer, deviceId });
    }
    if (faults.has("extra-device-key")) { // fault: also every device it ever had a session with, listed or not
      for (const deviceId of omemo.sessionDeviceIds(peer)) {
        if (!recipients.some((r) => r.deviceId === deviceId) && (await omemo.hasSession(peer, deviceId))) recipients.push({ jid: peer, deviceId });
      }
    }
    return recipients;
  }

  /** The message stanza around an <encrypted/> element, with the hints of TPC/1 §4. */
  function messageStanza(to: string, id: string, encrypted: Element, keyTransport = false): Element {
    const stanza = buildEncryptedMessage({ to, id, encrypted, requestReceipt: !keyTransport });
    if (keyTransport) stanza.remove("body");
    if (faults.has("no-eme-hints")) { // fault: no EME <encryption/>, no <store/> hint
      stanza.remove("encryption", NS.eme);
      stanza.remove("store", NS.hints);
    }
    return stanza;
  }

  async function sendEncrypted(to: string, doc: Record<string, unknown>, id: string, plaintextBody?: string): Promise<void> {
    const recipients = await recipientsFor(bareJid(to));
    if (recipients.length === 0) throw new Error(`${bareJid(to)} has no device with a usable bundle`);
    const encrypted = await omemo.encrypt(Buffer.from(JSON.stringify(doc)), recipients);
    const stanza = messageStanza(bareJid(to), id, encrypted);
    if (plaintextBody !== undefined) stanza.getChild("body")!.children = [plaintextBody];
    if (faults.has("nick-leak")) stanza.append(xml("nick", { xmlns: "http://jabber.org/protocol/nick" }, PROFILE_NAME)); // fault: the user's nick on every message (XEP-0172)
    conn.send(stanza);
  }

  /** session-reset-on-error only: a fresh session with the sender device and an empty key-transport message to it. */
  async function resetSession(peer: string, deviceId: number): Promise<void> {
    const bundle = await fetchBundle(peer, deviceId);
    if (!bundle) return;
    try {
      await omemo.startSession(peer, deviceId, bundle);
      const encrypted = await omemo.encrypt(null, [{ jid: peer, deviceId }]);
      conn.send(messageStanza(peer, randomUUID(), encrypted, true));
    } catch (err) {
      log(`session reset with ${peer}:${deviceId} failed: ${(err as Error).message}`);
    }
  }

  /** judgeContent (TPC/1 §10a order), or with the accepts-invalid-content fault its lax variant. */
  function judge(payload: Buffer, stanzaId: string): ContentJudgement {
    const verdict = judgeContent(payload, stanzaId);
    if (!verdict.accept && verdict.app.attrs.feature === "disappearing" && faults.has("ephemeral-ignored")) {
      // fault: expiresAfterS is ignored: the rest of the document is judged and kept for ever
      const doc = JSON.parse(payload.toString("utf8")) as Record<string, unknown>;
      delete doc.expiresAfterS;
      return judgeContent(Buffer.from(JSON.stringify(doc)), stanzaId);
    }
    if (verdict.accept || verdict.app.name !== "invalid-content" || !faults.has("accepts-invalid-content")) return verdict;
    // fault: no JSON Schema and no id check. judgeContent refuses unsupported kinds and fields before
    // the schema, so a document that parses to an object with a known kind failed only those two.
    try {
      const doc = JSON.parse(new TextDecoder("utf-8", { fatal: true }).decode(payload)) as unknown;
      if (typeof doc === "object" && doc !== null && !Array.isArray(doc)) {
        const kind = (doc as Record<string, unknown>).kind;
        if (typeof kind === "string" && (CONTENT_KINDS as readonly string[]).includes(kind)) return { accept: true, doc: doc as ContentDocument };
      }
    } catch {
      // not UTF-8 JSON: refused as before
    }
    return verdict;
  }

  function sendReceipt(to: string, id: string): void {
    conn.send(xml("message", { to, id: randomUUID() }, xml("received", { xmlns: NS.receipts, id })));
  }

  function reject(stanza: Element, condition: string, app: { name: string; attrs: Record<string, string> }, reason: string): void {
    const from = String(stanza.attrs.from);
    state.rejected.push({ id: String(stanza.attrs.id ?? ""), from: bareJid(from), condition, feature: app.attrs.feature, reason });
    conn.send(xml("message", { type: "error", id: stanza.attrs.id, to: from },
      errorElement({ type: "cancel", condition: condition as never, app: tpcCondition(app.name, app.attrs), text: reason })));
  }

  function recordBounce(stanza: Element): void {
    const parsed = parseStanzaError(stanza);
    const to = bareJid(String(stanza.attrs.from ?? ""));
    state.bounced.push({ id: String(stanza.attrs.id ?? ""), to, condition: parsed.condition, app: parsed.app?.name });
    if (parsed.app?.name === "read-only" && faults.has("history-lost-on-number-change")) {
      // fault: a chat that became read-only is deleted with its history instead of kept for reading
      state.received = state.received.filter((entry) => entry.from !== to);
    }
  }

  async function handleMessage(stanza: Element): Promise<void> {
    const from = String(stanza.attrs.from ?? "");
    const id = String(stanza.attrs.id ?? "");
    const encrypted = stanza.getChild("encrypted", NS.omemo);
    const propose = stanza.getChild("propose", NS.jingleMessage);
    if (propose && faults.has("jingle-accepted")) { // fault: a call proposal is answered with proceed (XEP-0353)
      conn.send(xml("message", { to: from, id: randomUUID() }, xml("proceed", { xmlns: NS.jingleMessage, id: String(propose.attrs.id ?? "") })));
      return;
    }
    if (!encrypted) {
      if (stanza.getChild("body") !== undefined && stanza.getChild("body") !== null) {
        // Plaintext should never arrive (the server refuses it); record it, answer nothing.
        state.rejected.push({ id, from: bareJid(from), condition: "not-acceptable", reason: "plaintext body without OMEMO" });
      }
      return;
    }
    const peer = bareJid(from);
    const sid = Number(encrypted.getChild("header")?.attrs.sid);
    let decrypted: OmemoDecryption;
    try {
      decrypted = await omemo.decrypt(peer, encrypted);
    } catch (err) {
      const reason = err instanceof OmemoDecryptError ? err.reason : undefined;
      const remembered = acceptedPayloads.get(`${peer}|${id}`);
      if (reason === "replay" && remembered && faults.has("replay-accepted")) { // fault: a replay of a remembered message is accepted again
        await accept(stanza, remembered, sid);
        return;
      }
      state.dropped++;
      log(`dropped ${id} from ${from}: ${(err as Error).message}`);
      if (faults.has("no-receipt-check")) sendReceipt(from, id);
      if (reason === "too-far-future" && faults.has("future-kills-session")) await omemo.deleteSession(peer, sid); // fault: the session dies
      if (faults.has("session-reset-on-error") && Number.isInteger(sid) && sid > 0) await resetSession(peer, sid); // fault: a new session on any failure
      return;
    }
    await republishIfChanged();
    if (faults.has("out-of-order-drop")) { // fault: a message older than one already accepted on its chain is dropped
      const chain = `${peer}|${decrypted.senderDeviceId}|${decrypted.ratchetKey}`;
      const highest = chainHighs.get(chain);
      if (highest !== undefined && decrypted.counter < highest) {
        state.dropped++;
        log(`dropped ${id} from ${from}: counter ${decrypted.counter} below ${highest} (out of order)`);
        return;
      }
      chainHighs.set(chain, decrypted.counter);
    }
    if (decrypted.payload === null) { // key transport: accepted silently
      if (faults.has("key-transport-receipt")) sendReceipt(from, id); // fault: a receipt for a key-transport message
      return;
    }
    await accept(stanza, Buffer.from(decrypted.payload), decrypted.senderDeviceId);
  }

  /** Validate a decrypted payload; reject it, or record it, send the receipt and reflect it. */
  async function accept(stanza: Element, payload: Buffer, senderDeviceId: number): Promise<void> {
    const from = String(stanza.attrs.from ?? "");
    const id = String(stanza.attrs.id ?? "");
    const verdict = judge(payload, id);
    if (!verdict.accept) {
      if (verdict.app.attrs.feature === "stickers" && faults.has("sticker-silently-dropped")) { // fault: no error for a sticker
        log(`sticker ${id} from ${from} dropped`);
        return;
      }
      reject(stanza, verdict.condition, verdict.app, verdict.reason);
      return;
    }
    let mediaFields: { mediaSha256?: string; mediaMime?: string } = {};
    const media = (verdict.doc as { media?: MediaDescriptor }).media;
    if (media) {
      const mediaVerdict = await receiveMedia(verdict.doc.kind, media, { ca: options.connection.tls?.ca, faults });
      if (!mediaVerdict.accept) {
        reject(stanza, mediaVerdict.condition, { name: mediaVerdict.app, attrs: {} }, mediaVerdict.reason);
        return;
      }
      mediaFields = { mediaSha256: mediaVerdict.mediaSha256, mediaMime: mediaVerdict.mediaMime };
    }
    const sha256 = makeReflectDocument({ id: "x", ref: id, payload }).sha256;
    state.received.push({ id, from: bareJid(from), deviceId: senderDeviceId, kind: verdict.doc.kind, sha256, ...mediaFields });
    if (faults.has("replay-accepted")) acceptedPayloads.set(`${bareJid(from)}|${id}`, payload);
    if (stanza.getChild("request", NS.receipts)) sendReceipt(from, id);
    const reflectId = randomUUID();
    // fault reflect-wrong-hash: the hash covers the payload plus one extra byte
    const hashed = faults.has("reflect-wrong-hash") ? Buffer.concat([payload, Buffer.from([0x0a])]) : payload;
    await sendEncrypted(from, makeReflectDocument({ id: reflectId, ref: id, payload: hashed, ...mediaFields }) as Record<string, unknown>, reflectId);
  }

  function formFields(command: Element): Record<string, string> {
    const out: Record<string, string> = {};
    for (const field of command.getChild("x", NS.xdata)?.getChildren("field") ?? []) {
      out[String(field.attrs.var)] = field.getChildText("value") ?? "";
    }
    return out;
  }

  function completed(stanza: Element, node: string, json: unknown): Element {
    return xml("iq", { type: "result", id: stanza.attrs.id, to: stanza.attrs.from },
      xml("command", { xmlns: NS.commands, node, status: "completed", sessionid: randomUUID() },
        xml("x", { xmlns: NS.xdata, type: "result" }, xml("field", { var: "json" }, xml("value", {}, JSON.stringify(json))))));
  }

  function iqError(stanza: Element, condition: string, type = "cancel", text?: string): Element {
    return xml("iq", { type: "error", id: stanza.attrs.id, to: stanza.attrs.from }, errorElement({ type: type as never, condition: condition as never, text }));
  }

  function stateJson(): unknown {
    const peers = new Map<string, { jid: string; identityChanged: boolean; devices: { id: number; identityKey: string }[] }>();
    for (const entry of state.received) {
      if (!peers.has(entry.from)) peers.set(entry.from, { jid: entry.from, identityChanged: false, devices: [] });
      const peer = peers.get(entry.from)!;
      if (!peer.devices.some((d) => d.id === entry.deviceId)) {
        const key = omemo.knownIdentity(entry.from, entry.deviceId);
        peer.devices.push({ id: entry.deviceId, identityKey: key ? Buffer.from(key).toString("base64") : "" });
      }
    }
    for (const change of omemo.identityChanges()) {
      const silent = faults.has("identity-change-silent"); // fault: identity changes are never reported
      if (!peers.has(change.jid)) peers.set(change.jid, { jid: change.jid, identityChanged: !silent, devices: [] });
      peers.get(change.jid)!.identityChanged = !silent;
    }
    return { received: state.received, rejected: state.rejected, dropped: state.dropped, blocked: [...state.blocked], peers: [...peers.values()] };
  }

  async function runHook(name: string, args: Record<string, string>): Promise<unknown> {
    switch (name) {
      case "reset": {
        state.received = [];
        state.rejected = [];
        state.dropped = 0;
        state.bounced = [];
        omemo.clearIdentityChanges();
        await conn.iq(xml("iq", { type: "set" }, xml("unblock", { xmlns: NS.blocking })));
        state.blocked.clear();
        return { reset: true };
      }
      case "block":
      case "unblock": {
        if (!args.jid) throw new StanzaErrorReply("modify", "bad-request", `${name} needs a jid field`);
        // XEP-0191 §3.3: the bare JID, so that every device of the contact is blocked.
        const item = xml("item", { jid: bareJid(args.jid) });
        // fault unblock-local-only: the contact leaves the client's own list, but the server is never told
        if (name === "block" || !faults.has("unblock-local-only")) await conn.iq(xml("iq", { type: "set" }, xml(name, { xmlns: NS.blocking }, item)));
        if (name === "block") state.blocked.add(bareJid(args.jid));
        else state.blocked.delete(bareJid(args.jid));
        return { blocked: await serverBlocklist() };
      }
      case "send": {
        if (!args.to) throw new StanzaErrorReply("modify", "bad-request", "send needs a to field");
        const count = Math.max(1, Math.min(1000, Number(args.count ?? 1) || 1));
        const kind = args.kind || (args.fixture ? "" : "text");
        if (kind !== "text" && !args.fixture) throw new StanzaErrorReply("modify", "bad-request", `send of kind ${kind} needs a fixture (${FIXTURE_NAMES.join(" ")})`);
        if (args.fixture && !FIXTURE_NAMES.includes(args.fixture)) throw new StanzaErrorReply("modify", "bad-request", `unknown fixture ${args.fixture}; known: ${FIXTURE_NAMES.join(" ")}`);
        const sent: string[] = [];
        const errors: string[] = [];
        const bouncedBefore = state.bounced.length;
        for (let i = 0; i < count; i++) {
          const id = randomUUID();
          const text = args.text || `message ${i + 1} from the reflector`;
          let doc: Record<string, unknown>;
          if (args.fixture) {
            try {
              const uploaded = await uploadFixture(conn, options.connection.domain, args.fixture, { ca: options.connection.tls?.ca, faults });
              doc = makeContentDocument({ id, kind: kind || uploaded.kind, text: args.text || undefined, media: uploaded.media }) as Record<string, unknown>;
            } catch (err) {
              errors.push((err as Error).message);
              continue;
            }
          } else {
            doc = makeContentDocument({ id, kind: "text", text }) as Record<string, unknown>;
          }
          if (faults.has("content-invalid-send")) { // fault: no sentAt, and an id other than the stanza id
            delete doc.sentAt;
            doc.id = randomUUID();
          }
          try {
            // fault plaintext-fallback-send: the real text in the <body>
            await sendEncrypted(args.to, doc, id, faults.has("plaintext-fallback-send") && !args.fixture ? text : undefined);
            sent.push(id);
          } catch (err) {
            if (err instanceof StanzaError) {
              // The server refused a stanza of this send (e.g. the key fetch to a contact the user
              // blocks, XEP-0191 §3.6): the message bounced before it could leave.
              sent.push(id);
              state.bounced.push({ id, to: bareJid(args.to), condition: err.condition, app: err.error.app?.name });
            } else {
              errors.push((err as Error).message);
            }
          }
        }
        // A ping to the server is a barrier: bounces of the messages above arrive before its answer.
        await conn.iq(xml("iq", { type: "get", to: options.connection.domain }, xml("ping", { xmlns: "urn:xmpp:ping" })));
        await new Promise<void>((resolve) => setImmediate(resolve));
        return { sent, errors, bounced: state.bounced.slice(bouncedBefore) };
      }
      case "state":
        // `blocked` is the partner's block list as the server holds it, whatever the client believes.
        return { ...(stateJson() as Record<string, unknown>), blocked: await serverBlocklist() };
      default:
        throw new StanzaErrorReply("cancel", "item-not-found", `unknown hook ${name}`);
    }
  }

  let reconnecting = false;
  let generation = 0;
  /** While a reconnect overlaps two sessions: the messages seen, by sender and id. */
  let overlapSeen: Set<string> | null = null;

  /** A message the overlap of a reconnect delivered to both sessions, seen already on the other. */
  function secondCopy(stanza: Element): boolean {
    if (!overlapSeen || stanza.name !== "message" || stanza.attrs.id === undefined) return false;
    const key = `${String(stanza.attrs.from)}|${String(stanza.attrs.id)}`;
    if (overlapSeen.has(key)) return true;
    overlapSeen.add(key);
    return false;
  }

  /** The user's block list as its server holds it (XEP-0191 §3.2). */
  async function serverBlocklist(): Promise<string[]> {
    const result = await conn.iq(xml("iq", { type: "get" }, xml("blocklist", { xmlns: NS.blocking })));
    return (result.getChild("blocklist", NS.blocking)?.getChildren("item") ?? []).map((item) => String(item.attrs.jid));
  }

  async function handleIq(stanza: Element): Promise<void> {
    const type = stanza.attrs.type;
    if (type !== "get" && type !== "set") return;
    const command = stanza.getChild("command", NS.commands);
    if (command && type === "set") {
      const node = String(command.attrs.node ?? "");
      const name = node.startsWith(`${NS.tpcTest}:`) ? node.slice(NS.tpcTest.length + 1) : "";
      if (!HOOK_NAMES.includes(name)) {
        conn.send(iqError(stanza, "item-not-found", "cancel", `no command ${node}`));
        return;
      }
      if (!localPart(String(stanza.attrs.from ?? "")).startsWith(options.testPrefix)) {
        conn.send(iqError(stanza, "forbidden", "auth", "test hooks are only for the endpoint's test actors"));
        return;
      }
      if (name === "reconnect") {
        conn.send(completed(stanza, node, { reconnecting: true }));
        // Make before break: a new session (its own resource) is online before the old one ends, so
        // the partner user never looks offline to the other cases of a run. What the user keeps on
        // the server, such as its block list, must outlive the old session (BLK-05).
        reconnecting = true;
        const old = conn;
        try {
          await connect(`reflector-${++generation}`);
          const ping = () => conn.iq(xml("iq", { type: "get", to: options.connection.domain }, xml("ping", { xmlns: "urn:xmpp:ping" })));
          await ping(); // the server has the new session's presence
          await old.close();
          await ping(); // every copy the overlap delivered to the new session has been read
        } catch (err) {
          log(`reflector reconnect failed: ${(err as Error).message}`);
          if (conn !== old && !old.closed) { // keep the old session: the partner user stays online
            const broken = conn;
            conn = old;
            broken.destroy();
          }
        } finally {
          overlapSeen = null;
          reconnecting = false;
        }
        return;
      }
      try {
        conn.send(completed(stanza, node, await runHook(name, formFields(command))));
      } catch (err) {
        if (err instanceof StanzaErrorReply) conn.send(iqError(stanza, err.condition, err.type, err.message));
        else if (err instanceof StanzaError) conn.send(iqError(stanza, "internal-server-error", "wait", err.message));
        else conn.send(iqError(stanza, "internal-server-error", "wait", (err as Error).message));
      }
      return;
    }
    if (type === "get" && stanza.getChild("query", NS.discoInfo)) {
      conn.send(xml("iq", { type: "result", id: stanza.attrs.id, to: stanza.attrs.from }, xml("query", { xmlns: NS.discoInfo },
        xml("identity", { category: "client", type: "pc", name: "chatconform reflector" }),
        ...[NS.discoInfo, NS.tpc, NS.receipts, `${NS.omemoDeviceList}+notify`, NS.commands].map((v) => xml("feature", { var: v })))));
      return;
    }
    if (stanza.getChild("block", NS.blocking) || stanza.getChild("unblock", NS.blocking)) {
      conn.send(xml("iq", { type: "result", id: stanza.attrs.id, to: stanza.attrs.from }));
      return;
    }
    if (stanza.getChild("jingle", NS.jingle) && faults.has("jingle-accepted")) { // fault: a call is acknowledged like any Jingle client does
      conn.send(xml("iq", { type: "result", id: stanza.attrs.id, to: stanza.attrs.from }));
      return;
    }
    conn.send(iqError(stanza, "service-unavailable"));
  }

  async function handle(stanza: Element): Promise<void> {
    if (stanza.name === "message") await handleMessage(stanza);
    else if (stanza.name === "iq") await handleIq(stanza);
    else if (stanza.name === "presence" && stanza.attrs.type === "subscribe" && stanza.attrs.from) {
      // Like many clients with auto-approval on: the approval is presence, which the partner's
      // server must drop between G and P (TPC/1 §10a); it only crosses on a leaky server.
      conn.send(xml("presence", { type: "subscribed", to: bareJid(String(stanza.attrs.from)) }));
    }
  }

  await connect();
  return {
    jid,
    async stop() {
      stopped = true;
      await queue.catch(() => undefined);
      await conn.close();
    },
  };
}

class StanzaErrorReply extends Error {
  constructor(readonly type: string, readonly condition: string, message: string) {
    super(message);
  }
}
