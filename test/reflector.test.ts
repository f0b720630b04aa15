// The reference reflector, compliant and with single faults, driven by the suite's own client
// (XmppConnection + OmemoDevice) over the real in-process reference server. No sleeps: "nothing
// arrived" is proven with the `state` hook as a barrier (the reflector handles stanzas one at a
// time, in order, and the server keeps per-sender order, so whatever the reflector sends for a
// message reaches us before the answer to a hook called after it); waits have only a backstop.
import assert from "node:assert/strict";
import { startReferenceServer } from "../src/partner/server/index.ts";
import type { ReferenceServer } from "../src/partner/server/index.ts";
import { MUTANTS } from "../src/partner/mutants.ts";
import { startReflector, REFLECTOR_FAULTS } from "../src/partner/reflector.ts";
import type { Reflector } from "../src/partner/reflector.ts";
import { XmppConnection } from "../src/protocol/connection.ts";
import {
  OmemoDecryptError, OmemoDevice, buildEncryptedMessage, bundleToElement, deviceListElement, parseBundleElement,
  parseDeviceListElement, verifySignedPreKeySignature,
} from "../src/protocol/omemo.ts";
import type { OmemoBundle, OmemoDecryption } from "../src/protocol/omemo.ts";
import { makeContentDocument } from "../src/protocol/content.ts";
import { sha256Hex } from "../src/protocol/media-crypto.ts";
import { StanzaError } from "../src/protocol/stanza-error.ts";
import { ENCRYPTED_NOTICE, NS, parseXml, xml } from "../src/protocol/xml.ts";
import type { Element } from "../src/protocol/xml.ts";

const BACKSTOP_MS = 5000;
const PASSWORD = "correct horse";
const PREFIX = "tpc-test-";

function classifyNumber(phone: string): { eligible: boolean; region: string; e164: string | null; reason: string } {
  return { eligible: true, region: "DE", e164: phone, reason: "test numbers are all eligible" };
}

// ---------------------------------------------------------------- a small gatekeeper client

interface Inbound {
  stanza: Element;
  /** for encrypted messages: the decryption, or why it failed */
  decryption?: OmemoDecryption;
  decryptError?: OmemoDecryptError;
  doc?: Record<string, unknown>;
}

interface Partner {
  server: ReferenceServer;
  reflector: Reflector;
  stop(): Promise<void>;
}

const cleanups: (() => Promise<void>)[] = [];

async function startPartner(faults: string[] = []): Promise<Partner> {
  const server = await startReferenceServer({ classifyNumber, partnerUsers: [{ username: "reflector", password: PASSWORD }] });
  const reflector = await startReflector({
    connection: { service: `xmpp://${server.host}:${server.port}`, domain: server.domain, tls: { ca: server.caCertPem } },
    username: "reflector",
    password: PASSWORD,
    testPrefix: PREFIX,
    faults: new Set(faults),
  });
  const partner = {
    server, reflector,
    async stop() {
      await reflector.stop().catch(() => undefined);
      await server.stop();
    },
  };
  cleanups.push(() => partner.stop());
  return partner;
}

let userCounter = 0;

/** One device of a gatekeeper user: its own connection and OMEMO device. */
class GDevice {
  readonly inbox: Inbound[] = [];
  private listeners = new Set<() => void>();
  private decryptQueue: Promise<void> = Promise.resolve();

  private constructor(readonly user: GUser, readonly conn: XmppConnection, readonly omemo: OmemoDevice) {
    conn.on("stanza", (stanza) => {
      if (stanza.name === "iq" && (stanza.attrs.type === "get" || stanza.attrs.type === "set")) {
        conn.send(xml("iq", { type: "result", id: stanza.attrs.id, to: stanza.attrs.from }));
        return;
      }
      if (stanza.name !== "message") return; // presence (our own, echoed) is noise here
      this.decryptQueue = this.decryptQueue.then(async () => {
        const item: Inbound = { stanza };
        const encrypted = stanza.name === "message" && stanza.attrs.type !== "error" ? stanza.getChild("encrypted", NS.omemo) : undefined;
        if (encrypted) {
          try {
            item.decryption = await omemo.decrypt(String(stanza.attrs.from).split("/")[0]!, encrypted);
            if (item.decryption.payload) item.doc = JSON.parse(Buffer.from(item.decryption.payload).toString("utf8")) as Record<string, unknown>;
          } catch (err) {
            if (!(err instanceof OmemoDecryptError)) throw err;
            item.decryptError = err;
          }
        }
        this.inbox.push(item);
        for (const listener of this.listeners) listener();
      });
    });
  }

  static async connect(user: GUser, register: boolean): Promise<GDevice> {
    const { server } = user.partner;
    const conn = await XmppConnection.connectAndLogin(
      { service: `xmpp://${server.host}:${server.port}`, domain: server.domain, tls: { ca: server.caCertPem } },
      { username: user.username, password: PASSWORD, resource: `d${user.devices.length}`, register: register ? { phone: user.phone } : undefined },
    );
    cleanups.push(async () => conn.destroy());
    conn.send(xml("presence")); // available: messages to the bare JID reach every device at once
    const device = new GDevice(user, conn, await OmemoDevice.generate({ jid: user.jid, preKeyCount: 20 }));
    device.omemo.onBundleChanged = () => {
      void device.publishBundle().catch(() => undefined);
    };
    return device;
  }

  async publish(node: string, payload: Element): Promise<void> {
    await this.conn.iq(xml("iq", { type: "set" }, xml("pubsub", { xmlns: NS.pubsub },
      xml("publish", { node }, xml("item", { id: "current" }, payload)),
      xml("publish-options", {}, xml("x", { xmlns: NS.xdata, type: "submit" },
        xml("field", { var: "FORM_TYPE", type: "hidden" }, xml("value", {}, "http://jabber.org/protocol/pubsub#publish-options")),
        xml("field", { var: "pubsub#access_model" }, xml("value", {}, "open")))))));
  }

  publishBundle(): Promise<void> {
    return this.publish(`${NS.omemoBundles}:${this.omemo.deviceId}`, bundleToElement(this.omemo.bundle()));
  }

  async items(jid: string, node: string): Promise<Element[]> {
    const result = await this.conn.iq(xml("iq", { type: "get", to: jid }, xml("pubsub", { xmlns: NS.pubsub }, xml("items", { node }))));
    return result.getChild("pubsub", NS.pubsub)?.getChild("items")?.getChildren("item") ?? [];
  }

  async reflectorDevices(): Promise<number[]> {
    const list = (await this.items(this.user.partner.reflector.jid, NS.omemoDeviceList))[0]?.getChild("list", NS.omemo);
    return list ? parseDeviceListElement(list).ids : [];
  }

  async reflectorBundle(deviceId?: number): Promise<{ bundle?: OmemoBundle; problems: string[]; element?: Element }> {
    const id = deviceId ?? (await this.reflectorDevices())[0]!;
    const element = (await this.items(this.user.partner.reflector.jid, `${NS.omemoBundles}:${id}`))[0]?.getChild("bundle", NS.omemo);
    return element ? { ...parseBundleElement(element), element } : { problems: ["no bundle"] };
  }

  /** A session with the reflector's (single) device, from its current bundle or the one given. */
  async session(bundle?: OmemoBundle, preKeyId?: number): Promise<{ deviceId: number; bundle: OmemoBundle; preKeyId: number }> {
    const deviceId = (await this.reflectorDevices())[0]!;
    const used = bundle ?? (await this.reflectorBundle(deviceId)).bundle!;
    const started = await this.omemo.startSession(this.user.partner.reflector.jid, deviceId, used, { preKeyId });
    this.user.reflectorDevice = deviceId;
    return { deviceId, bundle: used, preKeyId: started.preKeyId };
  }

  /** Encrypt a text content document to the reflector (not sent): the stanza and its payload. */
  async prepare(text: string, opts: { doc?: Record<string, unknown>; keyTransport?: boolean } = {}): Promise<{ id: string; stanza: Element; payload: Buffer | null }> {
    const id = this.conn.nextId();
    const payload = opts.keyTransport ? null : Buffer.from(JSON.stringify(opts.doc ?? makeContentDocument({ id, kind: "text", text })));
    const encrypted = await this.omemo.encrypt(payload, [{ jid: this.user.partner.reflector.jid, deviceId: this.user.reflectorDevice! }]);
    return { id, stanza: buildEncryptedMessage({ to: this.user.partner.reflector.jid, id, encrypted }), payload };
  }

  async send(text: string, opts: { doc?: Record<string, unknown>; keyTransport?: boolean } = {}): Promise<{ id: string; stanza: Element; payload: Buffer | null }> {
    const prepared = await this.prepare(text, opts);
    this.conn.send(prepared.stanza);
    return prepared;
  }

  /** The first inbound item matching, taken out of the inbox; fails after the backstop. */
  take(match: (item: Inbound) => boolean, what: string): Promise<Inbound> {
    return new Promise((resolve, reject) => {
      const check = (): boolean => {
        const index = this.inbox.findIndex(match);
        if (index === -1) return false;
        clearTimeout(timer);
        this.listeners.delete(listener);
        resolve(this.inbox.splice(index, 1)[0]!);
        return true;
      };
      const listener = () => void check();
      const timer = setTimeout(() => {
        this.listeners.delete(listener);
        reject(new Error(`no ${what} within ${BACKSTOP_MS} ms; inbox: ${this.inbox.map((i) => i.stanza.toString().slice(0, 200)).join("\n")}`));
      }, BACKSTOP_MS);
      this.listeners.add(listener);
      check();
    });
  }

  receipt(id: string): Promise<Inbound> {
    return this.take((i) => i.stanza.getChild("received", NS.receipts)?.attrs.id === id, `receipt for ${id}`);
  }

  reflect(id: string): Promise<Inbound> {
    return this.take((i) => i.doc?.kind === "reflect" && i.doc.ref === id, `reflection of ${id}`);
  }

  /** Receipt and reflection of an accepted message; the reflection's hash is checked unless told not to. */
  async accepted(sent: { id: string; payload: Buffer | null }, checkHash = true): Promise<Inbound> {
    await this.receipt(sent.id);
    const reflected = await this.reflect(sent.id);
    if (checkHash) assert.equal(reflected.doc!.sha256, sha256Hex(sent.payload!));
    return reflected;
  }

  has(match: (item: Inbound) => boolean): boolean {
    return this.inbox.some(match);
  }

  hasReceipt(id: string): boolean {
    return this.has((i) => i.stanza.getChild("received", NS.receipts)?.attrs.id === id);
  }

  hasReflect(id: string): boolean {
    return this.has((i) => i.doc?.kind === "reflect" && i.doc.ref === id);
  }

  async hook(name: string, args: Record<string, string> = {}): Promise<Record<string, unknown>> {
    const form = xml("x", { xmlns: NS.xdata, type: "submit" }, ...Object.entries(args).map(([k, v]) => xml("field", { var: k }, xml("value", {}, v))));
    const result = await this.conn.iq(xml("iq", { type: "set", to: this.user.partner.reflector.jid },
      xml("command", { xmlns: NS.commands, node: `${NS.tpcTest}:${name}`, action: "execute" }, form)));
    const value = result.getChild("command", NS.commands)!.getChild("x", NS.xdata)!.getChildren("field").find((f) => f.attrs.var === "json")!.getChildText("value")!;
    const json = JSON.parse(value) as Record<string, unknown>;
    await this.decryptQueue; // everything that arrived before the answer is decrypted and in the inbox
    return json;
  }

  /** The reflector's state, which is also a barrier: all it sent for earlier messages is in the inbox. */
  state(): Promise<{ received: { id: string }[]; rejected: { id: string }[]; dropped: number; peers: { jid: string; identityChanged: boolean }[] }> {
    return this.hook("state") as never;
  }
}

class GUser {
  readonly username = `${PREFIX}${++userCounter}`;
  readonly phone = `+49151${String(1000000 + userCounter)}`;
  readonly devices: GDevice[] = [];
  reflectorDevice?: number;
  constructor(readonly partner: Partner) {}

  get jid(): string {
    return `${this.username}@${this.partner.server.domain}`;
  }

  /** Connect `count` devices and publish a device list naming all of them, and their bundles. */
  static async create(partner: Partner, count = 1): Promise<GUser> {
    const user = new GUser(partner);
    for (let i = 0; i < count; i++) user.devices.push(await GDevice.connect(user, i === 0));
    await user.publishList(user.devices);
    for (const d of user.devices) await d.publishBundle();
    return user;
  }

  publishList(devices: GDevice[]): Promise<void> {
    return this.devices[0]!.publish(NS.omemoDeviceList, deviceListElement(devices.map((d) => d.omemo.deviceId)));
  }

  get d0(): GDevice {
    return this.devices[0]!;
  }
}

/** A user with a session whose key exchange was answered: later messages are WhisperMessages. */
async function established(partner: Partner, devices = 1): Promise<GUser> {
  const user = await GUser.create(partner, devices);
  await user.d0.session();
  await user.d0.accepted(await user.d0.send("hello"), false);
  return user;
}

function rids(stanza: Element): number[] {
  return stanza.getChild("encrypted", NS.omemo)!.getChild("header")!.getChildren("key").map((k) => Number(k.attrs.rid)).sort((a, b) => a - b);
}

function flipKeyByte(stanza: Element): Element {
  const copy = parseXml(stanza.toString());
  for (const key of copy.getChild("encrypted", NS.omemo)!.getChild("header")!.getChildren("key")) {
    const bytes = Buffer.from(key.getText(), "base64");
    bytes[bytes.length - 12]! ^= 0x01; // inside the Signal ciphertext, before the 8-byte MAC
    key.children = [bytes.toString("base64")];
  }
  copy.attrs.id = `${String(copy.attrs.id)}-t`;
  return copy;
}

// ---------------------------------------------------------------- tests

describe("reference reflector and its faults", function () {
  this.timeout(60_000);

  afterEach(async () => {
    while (cleanups.length) await cleanups.pop()!().catch(() => undefined);
  });

  it("implements every registered reflector-side mutant", () => {
    assert.equal(REFLECTOR_FAULTS.size, 33);
    const missing = MUTANTS.filter((m) => m.side === "reflector" && !REFLECTOR_FAULTS.has(m.name)).map((m) => m.name);
    assert.deepEqual(missing, []);
  });

  for (const fault of [undefined, "out-of-order-drop"]) {
    it(`${fault ?? "compliant"}: messages delivered out of order (3, 1, 2) are ${fault ? "dropped when older than one accepted" : "all accepted"}`, async () => {
      const user = await established(await startPartner(fault ? [fault] : []));
      const d = user.d0;
      const [m1, m2, m3] = [await d.prepare("one"), await d.prepare("two"), await d.prepare("three")];
      for (const m of [m3, m1, m2]) d.conn.send(m.stanza);
      await d.accepted(m3);
      if (!fault) {
        await d.accepted(m1);
        await d.accepted(m2);
        assert.equal((await d.state()).dropped, 0);
        return;
      }
      const state = await d.state();
      assert.equal(state.dropped, 2);
      assert.deepEqual([d.hasReceipt(m1.id), d.hasReceipt(m2.id), d.hasReflect(m1.id)], [false, false, false]);
      assert.ok(!state.received.some((r) => r.id === m1.id || r.id === m2.id));
      await d.accepted(await d.send("in order again"));
    });
  }

  for (const fault of [undefined, "future-kills-session"]) {
    it(`${fault ?? "compliant"}: a counter jump over 2000 is dropped and the next in-order message ${fault ? "no longer decrypts" : "is accepted"}`, async function () {
      this.timeout(120_000);
      const user = await established(await startPartner(fault ? [fault] : []));
      const d = user.d0;
      const snapshot = (await d.omemo.snapshotSession(user.partner.reflector.jid, user.reflectorDevice!))!;
      for (let i = 0; i < 2001; i++) await d.prepare(`never sent ${i}`);
      const far = await d.send("2001 positions ahead");
      await d.omemo.restoreSession(user.partner.reflector.jid, user.reflectorDevice!, snapshot);
      const next = await d.send("next in order");
      if (!fault) {
        await d.accepted(next);
        assert.equal((await d.state()).dropped, 1);
        assert.equal(d.hasReceipt(far.id), false);
        return;
      }
      const state = await d.state();
      assert.equal(state.dropped, 2);
      assert.deepEqual([d.hasReceipt(far.id), d.hasReceipt(next.id)], [false, false]);
    });
  }

  for (const fault of [undefined, "prekey-reuse-accepted"]) {
    it(`${fault ?? "compliant"}: a second key exchange with a consumed one-time prekey is ${fault ? "accepted" : "dropped"}`, async () => {
      const partner = await startPartner(fault ? [fault] : []);
      const alice = await GUser.create(partner);
      const first = await alice.d0.session();
      await alice.d0.accepted(await alice.d0.send("first exchange"));
      const republished = (await alice.d0.reflectorBundle()).bundle!;
      assert.ok(!republished.preKeys.some((k) => k.id === first.preKeyId), "consumed prekey gone from the bundle either way");
      assert.equal(republished.preKeys.length, 100);

      const carol = await GUser.create(partner);
      await carol.d0.session(first.bundle, first.preKeyId);
      const reuse = await carol.d0.send("same prekey again");
      if (fault) {
        await carol.d0.accepted(reuse);
        return;
      }
      const state = await carol.d0.state();
      assert.equal(state.dropped, 1);
      assert.deepEqual([carol.d0.hasReceipt(reuse.id), carol.d0.inbox.length], [false, 0], "nothing at all comes back");
    });
  }

  for (const fault of [undefined, "replay-accepted"]) {
    it(`${fault ?? "compliant"}: an exact replay is ${fault ? "accepted again" : "dropped silently"}`, async () => {
      const user = await established(await startPartner(fault ? [fault] : []));
      const d = user.d0;
      for (const keyExchange of [false, true]) {
        // A replay of a WhisperMessage, and (for a second user) of the PreKeyWhisperMessage.
        const sender = keyExchange ? (await GUser.create(user.partner)).d0 : d;
        if (keyExchange) await sender.session();
        const m = await sender.send("only once");
        await sender.accepted(m);
        sender.conn.send(parseXml(m.stanza.toString()));
        if (fault) {
          await sender.accepted(m);
          assert.equal((await sender.state()).received.filter((r) => r.id === m.id).length, 2);
          continue;
        }
        const state = await sender.state();
        assert.equal(state.received.filter((r) => r.id === m.id).length, 1);
        assert.deepEqual([sender.hasReceipt(m.id), sender.inbox.length], [false, 0]);
      }
      // Tampered ciphertext is not a replay: dropped whatever the fault.
      const tampered = flipKeyByte((await d.prepare("tampered")).stanza);
      d.conn.send(tampered);
      await d.state();
      assert.equal(d.hasReceipt(String(tampered.attrs.id)), false);
    });
  }

  for (const fault of [undefined, "session-reset-on-error"]) {
    it(`${fault ?? "compliant"}: tampered ciphertext is dropped ${fault ? "and answered with a new session (key transport)" : "with no answer at all"}`, async () => {
      const user = await established(await startPartner(fault ? [fault] : []));
      const d = user.d0;
      const tampered = flipKeyByte((await d.prepare("tampered")).stanza);
      d.conn.send(tampered);
      const state = await d.state();
      assert.equal(state.dropped, 1);
      if (fault) {
        const kt = await d.take((i) => Boolean(i.stanza.getChild("encrypted", NS.omemo)), "a key-transport message");
        const key = kt.stanza.getChild("encrypted", NS.omemo)!.getChild("header")!.getChildren("key");
        assert.deepEqual(key.map((k) => [Number(k.attrs.rid), k.attrs.prekey]), [[d.omemo.deviceId, "true"]], "a fresh key exchange to the sender device only");
        assert.equal(kt.stanza.getChild("encrypted", NS.omemo)!.getChild("payload"), undefined);
        assert.equal(kt.decryption?.payload, null);
      } else {
        assert.equal(d.inbox.length, 0, "no receipt, no error, no key transport");
      }
      assert.equal(d.hasReceipt(String(tampered.attrs.id)), false);
      await d.accepted(await d.send("the next good message"));
    });
  }

  for (const fault of [undefined, "missing-device-key", "extra-device-key"]) {
    it(`${fault ?? "compliant"}: partner messages carry keys for ${fault === "missing-device-key" ? "the first listed device only" : fault ? "listed and formerly listed devices" : "exactly the listed devices"}`, async () => {
      const user = await established(await startPartner(fault ? [fault] : []), 2);
      const [d0, d1] = user.devices as [GDevice, GDevice];
      const both = [d0.omemo.deviceId, d1.omemo.deviceId].sort((a, b) => a - b);
      const sent = (await d0.hook("send", { to: user.jid, kind: "text", text: "to both" })).sent as string[];
      const onD0 = await d0.take((i) => i.stanza.attrs.id === sent[0], "the send hook message");
      assert.deepEqual(rids(onD0.stanza), fault === "missing-device-key" ? [user.devices.map((d) => d.omemo.deviceId)[0]!] : both);
      const onD1 = await d1.take((i) => i.stanza.attrs.id === sent[0], "the send hook message on the second device");
      if (fault === "missing-device-key") assert.equal(onD1.decryptError?.reason, "no-key-for-device");
      else assert.equal(onD1.doc?.text, "to both");

      // The second device leaves the list: it must get no key any more.
      await user.publishList([d0]);
      const after = (await d0.hook("send", { to: user.jid, kind: "text", text: "to the first only" })).sent as string[];
      const again = await d0.take((i) => i.stanza.attrs.id === after[0], "the second send hook message");
      assert.deepEqual(rids(again.stanza), fault === "extra-device-key" ? both : [d0.omemo.deviceId]);
    });
  }

  for (const fault of [undefined, "identity-change-silent"]) {
    it(`${fault ?? "compliant"}: a device that republished a new identity gets a new session; identityChanged is ${fault ? "never reported" : "reported"}`, async () => {
      const user = await established(await startPartner(fault ? [fault] : []));
      const d = user.d0;
      await d.omemo.rotateIdentity();
      await d.publishBundle();
      const sent = (await d.hook("send", { to: user.jid, kind: "text", text: "to the new identity" })).sent as string[];
      const got = await d.take((i) => i.stanza.attrs.id === sent[0], "the send hook message");
      assert.equal(got.decryption?.preKey, true, "a new key exchange, not the old session");
      assert.equal(got.doc?.text, "to the new identity");
      const peer = (await d.state()).peers.find((p) => p.jid === user.jid);
      assert.equal(peer?.identityChanged, !fault);
      await d.hook("reset");
      assert.equal((await d.state()).peers.find((p) => p.jid === user.jid)?.identityChanged ?? false, false);
    });
  }

  it("send hook: count messages in order; faults no-eme-hints, plaintext-fallback-send, content-invalid-send", async () => {
    const partner = await startPartner();
    const user = await GUser.create(partner);
    const d = user.d0;
    const { sent } = (await d.hook("send", { to: user.jid, kind: "text", text: "numbered", count: "5" })) as { sent: string[] };
    assert.equal(sent.length, 5);
    await d.state();
    const order = d.inbox.filter((i) => i.doc?.kind === "text").map((i) => i.stanza.attrs.id);
    assert.deepEqual(order, sent);
    for (const item of d.inbox) {
      assert.equal(item.stanza.getChild("encryption", NS.eme)?.attrs.namespace, NS.omemo);
      assert.ok(item.stanza.getChild("store", NS.hints));
      assert.equal(item.stanza.getChildText("body"), ENCRYPTED_NOTICE);
      assert.equal(item.doc?.id, item.stanza.attrs.id);
      assert.equal(typeof item.doc?.sentAt, "string");
    }
    await partner.stop();

    const noHints = await GUser.create(await startPartner(["no-eme-hints"]));
    await noHints.d0.hook("send", { to: noHints.jid, kind: "text", text: "x" });
    const bare = await noHints.d0.take((i) => i.doc?.kind === "text", "the message");
    assert.deepEqual([bare.stanza.getChild("encryption", NS.eme), bare.stanza.getChild("store", NS.hints)], [undefined, undefined]);

    const leaky = await GUser.create(await startPartner(["plaintext-fallback-send"]));
    const result = (await leaky.d0.hook("send", { to: leaky.jid, kind: "text", text: "the secret" })) as { sent: string[]; bounced: { id: string; condition: string; app: string }[] };
    // The reference server refuses a body other than the notice: the message bounces and never arrives.
    assert.deepEqual(result.bounced.map((b) => [b.id, b.condition, b.app]), [[result.sent[0], "not-acceptable", "encryption-required"]]);
    await leaky.d0.state();
    assert.equal(leaky.d0.inbox.length, 0);

    const invalid = await GUser.create(await startPartner(["content-invalid-send"]));
    await invalid.d0.hook("send", { to: invalid.jid, kind: "text", text: "x" });
    const doc = (await invalid.d0.take((i) => i.doc?.kind === "text", "the message"));
    assert.equal(doc.doc!.sentAt, undefined);
    assert.notEqual(doc.doc!.id, doc.stanza.attrs.id);
  });

  for (const fault of [undefined, "accepts-invalid-content", "key-transport-receipt", "reflect-wrong-hash"]) {
    it(`${fault ?? "compliant"}: invalid content, unsupported kinds, key transport and the reflected hash`, async () => {
      const user = await established(await startPartner(fault ? [fault] : []));
      const d = user.d0;
      const good = await d.send("hashed");
      await d.receipt(good.id);
      const reflected = await d.reflect(good.id);
      assert.equal(reflected.doc!.sha256 === sha256Hex(good.payload!), fault !== "reflect-wrong-hash");

      const noSentAt = await d.send("", { doc: { v: 1, id: "placeholder", kind: "text", text: "no sentAt, wrong id" } });
      const sticker = await d.send("", { doc: { v: 1, id: "x", sentAt: new Date().toISOString(), kind: "sticker" } });
      const keyTransport = await d.send("", { keyTransport: true });
      const state = await d.state();
      const error = (id: string) => d.inbox.find((i) => i.stanza.attrs.type === "error" && i.stanza.attrs.id === id);
      if (fault === "accepts-invalid-content") {
        assert.ok(d.hasReceipt(noSentAt.id) && d.hasReflect(noSentAt.id), "invalid content accepted");
      } else {
        assert.equal(d.hasReceipt(noSentAt.id), false);
        assert.ok(error(noSentAt.id)?.stanza.getChild("error")?.getChild("invalid-content", NS.tpcErrors));
        assert.ok(error(noSentAt.id)?.stanza.getChild("error")?.getChildText("text"));
      }
      assert.equal(error(sticker.id)?.stanza.getChild("error")?.getChild("unsupported", NS.tpcErrors)?.attrs.feature, "stickers", "unsupported kinds are refused whatever the fault");
      assert.equal(d.hasReceipt(keyTransport.id), fault === "key-transport-receipt");
      assert.equal(d.hasReflect(keyTransport.id), false);
      assert.ok(!state.received.some((r) => r.id === keyTransport.id));
    });
  }

  it("publishing faults: devicelist-private, bundle-few-prekeys, bundle-50-prekeys, bad-spk-signature, duplicate-prekey-id", async () => {
    const compliant = await GUser.create(await startPartner());
    const reference = await compliant.d0.reflectorBundle();
    assert.deepEqual(reference.problems, []);
    assert.equal(reference.bundle!.preKeys.length, 100);
    assert.equal(await verifySignedPreKeySignature(reference.bundle!), true);

    const privateList = await GUser.create(await startPartner(["devicelist-private"]));
    await assert.rejects(privateList.d0.reflectorDevices(), (err: unknown) => err instanceof StanzaError && err.condition === "not-authorized");

    for (const [fault, count] of [["bundle-few-prekeys", 10], ["bundle-50-prekeys", 50]] as const) {
      const user = await GUser.create(await startPartner([fault]));
      assert.equal((await user.d0.reflectorBundle()).bundle!.preKeys.length, count, fault);
    }

    const badSig = await GUser.create(await startPartner(["bad-spk-signature"]));
    const forged = (await badSig.d0.reflectorBundle()).bundle!;
    assert.equal(await verifySignedPreKeySignature(forged), false);
    await assert.rejects(badSig.d0.session(forged), /signature does not verify/);

    const dup = await GUser.create(await startPartner(["duplicate-prekey-id"]));
    const parsed = await dup.d0.reflectorBundle();
    assert.equal(parsed.element!.getChild("prekeys")!.getChildren("preKeyPublic").length, 101);
    assert.equal(parsed.problems.length, 1);
    assert.match(parsed.problems[0]!, /duplicate preKeyId/);
    // Verbatim copy: sessions still work, whichever entry a sender picks.
    const repeated = Number(parsed.element!.getChild("prekeys")!.getChildren("preKeyPublic").at(-1)!.attrs.preKeyId);
    await dup.d0.session(parsed.bundle!, repeated);
    await dup.d0.accepted(await dup.d0.send("via the repeated prekey"));
  });
});
