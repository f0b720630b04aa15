// The reflector: a partner-side test user running as a real XMPP client of the partner server.
// It behaves like a compliant TPC/1 client (decrypt, validate, receipt, reject) plus the test
// behaviour of TPC/1 §8: a `reflect` document for every accepted message, and XEP-0050 hooks.
import { randomUUID } from "node:crypto";
import { XmppConnection } from "../protocol/connection.ts";
import type { ConnectionOptions } from "../protocol/connection.ts";
import {
  OmemoDevice, bundleToElement, buildEncryptedMessage, deviceListElement, parseBundleElement, parseDeviceListElement,
} from "../protocol/omemo.ts";
import { judgeContent, makeContentDocument, makeReflectDocument } from "../protocol/content.ts";
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

export async function startReflector(options: ReflectorOptions): Promise<Reflector> {
  const faults = options.faults ?? new Set<string>();
  const jid = `${options.username}@${options.connection.domain}`;
  const omemo = await OmemoDevice.generate({ jid, preKeyCount: options.preKeyCount ?? 100 });
  const state = {
    received: [] as ReceivedEntry[],
    rejected: [] as RejectedEntry[],
    dropped: 0,
    blocked: new Set<string>(),
    bounced: [] as Bounce[],
  };
  let conn: XmppConnection;
  let stopped = false;
  let queue: Promise<void> = Promise.resolve();
  const log = options.log ?? (() => undefined);

  async function publish(node: string, payload: Element): Promise<void> {
    await conn.iq(xml("iq", { type: "set" }, xml("pubsub", { xmlns: NS.pubsub },
      xml("publish", { node }, xml("item", { id: "current" }, payload)),
      xml("publish-options", {}, xml("x", { xmlns: NS.xdata, type: "submit" },
        xml("field", { var: "FORM_TYPE", type: "hidden" }, xml("value", {}, "http://jabber.org/protocol/pubsub#publish-options")),
        xml("field", { var: "pubsub#access_model" }, xml("value", {}, "open")),
      )),
    )));
  }

  async function publishKeys(): Promise<void> {
    await publish(NS.omemoDeviceList, deviceListElement([omemo.deviceId]));
    await publish(`${NS.omemoBundles}:${omemo.deviceId}`, bundleToElement(omemo.bundle()));
  }

  // A consumed prekey is republished away before the message that consumed it is acknowledged.
  let bundleChanged = false;
  omemo.onBundleChanged = () => {
    bundleChanged = true;
  };
  async function republishIfChanged(): Promise<void> {
    if (!bundleChanged || faults.has("prekey-not-removed")) return;
    bundleChanged = false;
    await publish(`${NS.omemoBundles}:${omemo.deviceId}`, bundleToElement(omemo.bundle()));
  }

  async function connect(): Promise<void> {
    conn = await XmppConnection.connectAndLogin({ ...options.connection, onTraffic: (dir, text) => log(`${dir} ${text}`) }, {
      username: options.username, password: options.password, resource: "reflector",
    });
    conn.on("stanza", (stanza) => {
      queue = queue.then(() => handle(stanza)).catch((err) => log(`reflector error: ${(err as Error).stack ?? err}`));
    });
    conn.on("close", (reason) => {
      if (!stopped && !reconnecting) log(`reflector connection closed: ${reason?.message}`);
    });
    await publishKeys();
    conn.send(xml("presence"));
  }

  /** Sessions with every device on the peer's list; returns the recipients to encrypt for. */
  async function recipientsFor(peer: string): Promise<{ jid: string; deviceId: number }[]> {
    const result = await conn.iq(xml("iq", { type: "get", to: peer }, xml("pubsub", { xmlns: NS.pubsub }, xml("items", { node: NS.omemoDeviceList }))));
    const list = result.getChild("pubsub", NS.pubsub)?.getChild("items")?.getChild("item")?.getChild("list", NS.omemo);
    const ids = list ? parseDeviceListElement(list).ids : [];
    const recipients: { jid: string; deviceId: number }[] = [];
    for (const deviceId of ids) {
      if (!(await omemo.hasSession(peer, deviceId))) {
        try {
          const bundleResult = await conn.iq(xml("iq", { type: "get", to: peer }, xml("pubsub", { xmlns: NS.pubsub }, xml("items", { node: `${NS.omemoBundles}:${deviceId}` }))));
          const bundleEl = bundleResult.getChild("pubsub", NS.pubsub)?.getChild("items")?.getChild("item")?.getChild("bundle", NS.omemo);
          const bundle = bundleEl ? parseBundleElement(bundleEl).bundle : undefined;
          if (!bundle) continue;
          await omemo.startSession(peer, deviceId, bundle);
        } catch (err) {
          log(`no session with ${peer}:${deviceId}: ${(err as Error).message}`);
          continue;
        }
      }
      recipients.push({ jid: peer, deviceId });
    }
    return recipients;
  }

  async function sendEncrypted(to: string, doc: Record<string, unknown>, id: string): Promise<void> {
    const recipients = await recipientsFor(bareJid(to));
    if (recipients.length === 0) throw new Error(`${bareJid(to)} has no device with a usable bundle`);
    const encrypted = await omemo.encrypt(Buffer.from(JSON.stringify(doc)), recipients);
    conn.send(buildEncryptedMessage({ to: bareJid(to), id, encrypted }));
  }

  function reject(stanza: Element, condition: string, app: { name: string; attrs: Record<string, string> }, reason: string): void {
    const from = String(stanza.attrs.from);
    state.rejected.push({ id: String(stanza.attrs.id ?? ""), from: bareJid(from), condition, feature: app.attrs.feature, reason });
    conn.send(xml("message", { type: "error", id: stanza.attrs.id, to: from },
      errorElement({ type: "cancel", condition: condition as never, app: tpcCondition(app.name, app.attrs), text: reason })));
  }

  async function handleMessage(stanza: Element): Promise<void> {
    const from = String(stanza.attrs.from ?? "");
    const id = String(stanza.attrs.id ?? "");
    if (stanza.attrs.type === "error") {
      const parsed = parseStanzaError(stanza);
      state.bounced.push({ id, to: bareJid(from), condition: parsed.condition, app: parsed.app?.name });
      return;
    }
    const encrypted = stanza.getChild("encrypted", NS.omemo);
    if (!encrypted) {
      if (stanza.getChild("body") !== undefined && stanza.getChild("body") !== null) {
        // Plaintext should never arrive (the server refuses it); record it, answer nothing.
        state.rejected.push({ id, from: bareJid(from), condition: "not-acceptable", reason: "plaintext body without OMEMO" });
      }
      return;
    }
    let decrypted: { senderDeviceId: number; payload: Uint8Array | null };
    try {
      decrypted = await omemo.decrypt(bareJid(from), encrypted);
    } catch (err) {
      state.dropped++;
      log(`dropped ${id} from ${from}: ${(err as Error).message}`);
      if (faults.has("no-receipt-check")) conn.send(xml("message", { to: from, id: randomUUID() }, xml("received", { xmlns: NS.receipts, id })));
      return;
    }
    await republishIfChanged();
    if (decrypted.payload === null) return; // key transport: accepted silently
    const payload = Buffer.from(decrypted.payload);
    const verdict = judgeContent(payload, id);
    if (!verdict.accept) {
      reject(stanza, verdict.condition, verdict.app, verdict.reason);
      return;
    }
    const sha256 = makeReflectDocument({ id: "x", ref: id, payload }).sha256 as string;
    state.received.push({ id, from: bareJid(from), deviceId: decrypted.senderDeviceId, kind: verdict.doc.kind, sha256 });
    if (stanza.getChild("request", NS.receipts)) {
      conn.send(xml("message", { to: from, id: randomUUID() }, xml("received", { xmlns: NS.receipts, id })));
    }
    const reflectId = randomUUID();
    await sendEncrypted(from, makeReflectDocument({ id: reflectId, ref: id, payload }) as Record<string, unknown>, reflectId);
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
      if (!peers.has(change.jid)) peers.set(change.jid, { jid: change.jid, identityChanged: true, devices: [] });
      peers.get(change.jid)!.identityChanged = true;
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
        await conn.iq(xml("iq", { type: "set" }, xml(name, { xmlns: NS.blocking }, xml("item", { jid: bareJid(args.jid) }))));
        if (name === "block") state.blocked.add(bareJid(args.jid));
        else state.blocked.delete(bareJid(args.jid));
        return { blocked: [...state.blocked] };
      }
      case "send": {
        if (!args.to) throw new StanzaErrorReply("modify", "bad-request", "send needs a to field");
        const count = Math.max(1, Math.min(1000, Number(args.count ?? 1) || 1));
        const kind = args.kind || "text";
        if (kind !== "text") throw new StanzaErrorReply("cancel", "feature-not-implemented", `the reference reflector cannot send kind ${kind} yet`);
        const sent: string[] = [];
        const errors: string[] = [];
        const bouncedBefore = state.bounced.length;
        for (let i = 0; i < count; i++) {
          const id = randomUUID();
          try {
            await sendEncrypted(args.to, makeContentDocument({ id, kind: "text", text: args.text || `message ${i + 1} from the reflector` }) as Record<string, unknown>, id);
            sent.push(id);
          } catch (err) {
            errors.push((err as Error).message);
          }
        }
        // A ping to the server is a barrier: bounces of the messages above arrive before its answer.
        await conn.iq(xml("iq", { type: "get", to: options.connection.domain }, xml("ping", { xmlns: "urn:xmpp:ping" })));
        await new Promise<void>((resolve) => setImmediate(resolve));
        return { sent, errors, bounced: state.bounced.slice(bouncedBefore) };
      }
      case "state":
        return stateJson();
      default:
        throw new StanzaErrorReply("cancel", "item-not-found", `unknown hook ${name}`);
    }
  }

  let reconnecting = false;

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
        reconnecting = true;
        await conn.close();
        await connect();
        reconnecting = false;
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
    conn.send(iqError(stanza, "service-unavailable"));
  }

  async function handle(stanza: Element): Promise<void> {
    if (stanza.name === "message") await handleMessage(stanza);
    else if (stanza.name === "iq") await handleIq(stanza);
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
