// The in-process reference TPC/1 partner server, driven over real sockets by a tiny test-only client
// (net/tls + StreamParser + ScramClient). No sleeps: every wait is for a stanza or a socket event,
// with a timeout only as a backstop; "nothing arrived" is proven with a round trip after it.
import assert from "node:assert/strict";
import net from "node:net";
import tls from "node:tls";
import { SERVER_FAULTS, TRANSPORT_FAULTS, startReferenceServer } from "../src/partner/server/index.ts";
import type { ReferenceServer, ReferenceServerOptions } from "../src/partner/server/index.ts";
import { generateCertificate } from "../src/partner/tls.ts";
import { ScramClient } from "../src/protocol/scram.ts";
import { parseStanzaError } from "../src/protocol/stanza-error.ts";
import { StreamParser } from "../src/protocol/stream-parser.ts";
import { ENCRYPTED_NOTICE, Element, NS, bareJid, xml } from "../src/protocol/xml.ts";

const BACKSTOP_MS = 4000;

// ---- a tiny client for tests ----

interface Waiter {
  match: (el: Element) => boolean;
  resolve: (el: Element) => void;
  reject: (err: Error) => void;
  timer: NodeJS.Timeout;
}

const openClients = new Set<TestClient>();

class TestClient {
  /** Every element received, in order (stream features, stanzas, stream errors). */
  readonly received: Element[] = [];
  features: Element = xml("stream:features");
  jid = "";
  readonly closed: Promise<void>;
  private socket: net.Socket;
  private readonly parser = new StreamParser();
  private readonly inbox: Element[] = [];
  private readonly waiters = new Set<Waiter>();
  private isClosed = false;
  private ids = 0;
  private markClosed!: () => void;

  private constructor(readonly server: ReferenceServer, socket: net.Socket) {
    this.socket = socket;
    this.closed = new Promise((resolve) => (this.markClosed = resolve));
    this.parser.on("stanza", (el) => this.receive(el));
    this.parser.on("error", (err) => this.fail(new Error(`client parser: ${err.message}`)));
    this.attach(socket);
    openClients.add(this);
  }

  static async connect(server: ReferenceServer, to = server.domain): Promise<TestClient> {
    const socket = await new Promise<net.Socket>((resolve, reject) => {
      const s = net.connect({ host: server.host, port: server.port });
      s.once("connect", () => resolve(s));
      s.once("error", reject);
    });
    const client = new TestClient(server, socket);
    await client.openStream(to);
    return client;
  }

  private readonly onData = (chunk: Buffer) => this.parser.write(chunk);
  private readonly onClose = () => this.fail(new Error("connection closed"));

  private attach(socket: net.Socket): void {
    socket.on("data", this.onData);
    socket.on("close", this.onClose);
    socket.on("error", () => socket.destroy());
  }

  private receive(el: Element): void {
    this.received.push(el);
    for (const waiter of this.waiters) {
      if (waiter.match(el)) {
        this.waiters.delete(waiter);
        clearTimeout(waiter.timer);
        waiter.resolve(el);
        return;
      }
    }
    this.inbox.push(el);
  }

  private fail(err: Error): void {
    if (!this.isClosed) {
      this.isClosed = true;
      this.socket.destroy();
      this.markClosed();
      openClients.delete(this);
    }
    for (const waiter of this.waiters) {
      clearTimeout(waiter.timer);
      waiter.reject(err);
    }
    this.waiters.clear();
  }

  /** The next element (already received or still to come) that matches. */
  next(match: (el: Element) => boolean, what = "a matching element"): Promise<Element> {
    const index = this.inbox.findIndex(match);
    if (index !== -1) return Promise.resolve(this.inbox.splice(index, 1)[0]!);
    if (this.isClosed) return Promise.reject(new Error(`connection closed while waiting for ${what}`));
    return new Promise((resolve, reject) => {
      const waiter: Waiter = {
        match,
        resolve,
        reject,
        timer: setTimeout(() => {
          this.waiters.delete(waiter);
          reject(new Error(`${this.jid || "client"}: no ${what} within ${BACKSTOP_MS} ms`));
        }, BACKSTOP_MS),
      };
      this.waiters.add(waiter);
    });
  }

  async openStream(to = this.server.domain): Promise<Element> {
    this.parser.restart();
    this.sendRaw(`<?xml version='1.0'?><stream:stream to='${to}' version='1.0' xml:lang='en' xmlns='jabber:client' xmlns:stream='${NS.stream}'>`);
    this.features = await this.next((el) => el.name === "stream:features" || el.name === "stream:error", "stream features");
    return this.features;
  }

  async startTls(): Promise<void> {
    this.send(xml("starttls", { xmlns: NS.tls }));
    const answer = await this.next((el) => el.attrs.xmlns === NS.tls, "STARTTLS answer");
    assert.equal(answer.name, "proceed");
    const raw = this.socket;
    raw.removeListener("data", this.onData);
    raw.removeListener("close", this.onClose);
    this.socket = await new Promise<tls.TLSSocket>((resolve, reject) => {
      const secured = tls.connect({ socket: raw, servername: this.server.domain, ca: this.server.caCertPem });
      secured.once("secureConnect", () => resolve(secured));
      secured.once("error", reject);
    });
    this.attach(this.socket);
    await this.openStream();
  }

  send(el: Element): void {
    this.sendRaw(el.toString());
  }

  sendRaw(text: string): void {
    if (!this.socket.destroyed) this.socket.write(text);
  }

  /** Send an IQ and wait for its result or error. */
  request(iq: Element): Promise<Element> {
    iq.attrs.id ??= `q${++this.ids}`;
    const id = iq.attrs.id as string;
    this.send(iq);
    return this.next((el) => el.name === "iq" && el.attrs.id === id && (el.attrs.type === "result" || el.attrs.type === "error"), `answer to IQ ${id}`);
  }

  register(username: string, password: string, phone?: string): Promise<Element> {
    const fields = [xml("username", {}, username), xml("password", {}, password)];
    if (phone !== undefined) fields.push(xml("phone", {}, phone));
    return this.request(xml("iq", { type: "set", to: this.server.domain }, xml("query", { xmlns: NS.register }, ...fields)));
  }

  /** SCRAM-SHA-1; returns <success/> (after verifying the server signature and restarting) or <failure/>. */
  async authScram(username: string, password: string): Promise<Element> {
    const scram = new ScramClient(username, password);
    const sasl = () => this.next((el) => el.attrs.xmlns === NS.sasl, "SASL answer");
    this.send(xml("auth", { xmlns: NS.sasl, mechanism: "SCRAM-SHA-1" }, Buffer.from(scram.first()).toString("base64")));
    const challenge = await sasl();
    if (challenge.name !== "challenge") return challenge;
    const final = scram.final(Buffer.from(challenge.getText(), "base64").toString());
    this.send(xml("response", { xmlns: NS.sasl }, Buffer.from(final).toString("base64")));
    const outcome = await sasl();
    if (outcome.name === "success") {
      scram.verifyServerFinal(Buffer.from(outcome.getText(), "base64").toString());
      await this.openStream();
    }
    return outcome;
  }

  async authPlain(username: string, password: string): Promise<Element> {
    this.send(xml("auth", { xmlns: NS.sasl, mechanism: "PLAIN" }, Buffer.from(`\0${username}\0${password}`).toString("base64")));
    const outcome = await this.next((el) => el.attrs.xmlns === NS.sasl, "SASL answer");
    if (outcome.name === "success") await this.openStream();
    return outcome;
  }

  async bind(resource?: string): Promise<string> {
    const answer = await this.request(xml("iq", { type: "set" }, xml("bind", { xmlns: NS.bind }, ...(resource ? [xml("resource", {}, resource)] : []))));
    assert.equal(answer.attrs.type, "result", answer.toString());
    this.jid = answer.getChild("bind", NS.bind)!.getChildText("jid")!;
    return this.jid;
  }

  /** Initial presence; resolves when the server echoes it back. */
  async goAvailable(): Promise<void> {
    this.send(xml("presence"));
    await this.next((el) => el.name === "presence" && el.attrs.from === this.jid && el.attrs.type === undefined, "own presence echo");
  }

  /** A round trip to the server: everything sent to this client before it has arrived once it returns. */
  async barrier(): Promise<void> {
    const answer = await this.request(xml("iq", { type: "get", to: this.server.domain }, xml("ping", { xmlns: "urn:xmpp:ping" })));
    assert.equal(answer.attrs.type, "result");
  }

  /** Stanzas that came from `jid`'s account (bounces of our own stanzas, type='error', excluded). */
  receivedFrom(jid: string, name?: string): Element[] {
    return this.received.filter(
      (el) => typeof el.attrs.from === "string" && bareJid(el.attrs.from) === bareJid(jid) && el.attrs.type !== "error" && (!name || el.name === name),
    );
  }

  async close(): Promise<void> {
    if (this.isClosed) return;
    this.sendRaw("</stream:stream>");
    this.socket.end();
    await this.closed;
  }

  destroy(): void {
    this.fail(new Error("destroyed by the test"));
  }
}

// ---- fixtures ----

/** A fake eligibility policy: +41 is CH (ineligible), anything not +digits is unparsable (ZZ). */
function classifyNumber(phone: string): { eligible: boolean; region: string; e164: string | null; reason: string } {
  const compact = phone.replace(/[\s-]/g, "");
  if (!/^\+\d{6,15}$/.test(compact)) return { eligible: false, region: "ZZ", e164: null, reason: "the number does not parse" };
  if (compact.startsWith("+41")) return { eligible: false, region: "CH", e164: compact, reason: "Switzerland is outside the EEA" };
  return { eligible: true, region: compact.startsWith("+49") ? "DE" : "FR", e164: compact, reason: "in the EEA" };
}

const PASSWORD = "correct horse";
const ELIGIBLE = "+4915123456789";
const INELIGIBLE = "+41791234567";

function serverOptions(extra: Partial<ReferenceServerOptions> = {}): ReferenceServerOptions {
  return {
    classifyNumber,
    partnerUsers: [
      ...["reflector", "alice", "bob", "carol", "blocker", "pep", "changer"].map((username) => ({ username, password: PASSWORD })),
      { username: "optout", password: PASSWORD, optedOut: true },
    ],
    gatekeeperUsers: [{ username: "static-ch", password: PASSWORD, phone: INELIGIBLE }],
    ...extra,
  };
}

let gCounter = 0;

/** Register a fresh gatekeeper actor and log it in (bound, available). */
async function newGatekeeper(server: ReferenceServer, phone = ELIGIBLE, options: { available?: boolean } = {}): Promise<TestClient> {
  const username = `tpc-test-${++gCounter}`;
  const client = await TestClient.connect(server);
  await client.startTls();
  const registered = await client.register(username, PASSWORD, phone);
  assert.equal(registered.attrs.type, "result", registered.toString());
  assert.equal((await client.authScram(username, PASSWORD)).name, "success");
  await client.bind("phone");
  if (options.available ?? true) await client.goAvailable();
  return client;
}

async function login(server: ReferenceServer, username: string, options: { resource?: string; available?: boolean } = {}): Promise<TestClient> {
  const client = await TestClient.connect(server);
  await client.startTls();
  assert.equal((await client.authScram(username, PASSWORD)).name, "success");
  await client.bind(options.resource);
  if (options.available ?? true) await client.goAvailable();
  return client;
}

let messageIds = 0;
const newId = () => `m${++messageIds}`;

/** An OMEMO-shaped message: the server never looks inside <encrypted/>. */
function omemoMessage(to: string, id = newId()): Element {
  return xml(
    "message",
    { type: "chat", to, id },
    xml("encrypted", { xmlns: NS.omemo }, xml("header", { sid: "1001" }, xml("key", { rid: "2002" }, "AAAA"), xml("iv", {}, "AAAAAAAAAAAAAAAA")), xml("payload", {}, "AAAA")),
    xml("encryption", { xmlns: NS.eme, namespace: NS.omemo }),
    xml("store", { xmlns: NS.hints }),
    xml("body", {}, ENCRYPTED_NOTICE),
  );
}

const byId = (name: string, id: string) => (el: Element) => el.name === name && el.attrs.id === id;

/** Assert a well-formed stanza error (RFC 6120 §8.3) with the expected type, condition and app condition. */
function assertError(stanza: Element, type: string, condition: string, app?: { name: string; xmlns?: string; attrs?: Record<string, string> }): void {
  assert.equal(stanza.attrs.type, "error", stanza.toString());
  const parsed = parseStanzaError(stanza);
  assert.deepEqual(parsed.problems, [], stanza.toString());
  assert.equal(parsed.type, type, stanza.toString());
  assert.equal(parsed.condition, condition, stanza.toString());
  if (!app) {
    assert.equal(parsed.app, undefined, stanza.toString());
    return;
  }
  assert.equal(parsed.app?.name, app.name, stanza.toString());
  assert.equal(parsed.app?.xmlns, app.xmlns ?? NS.tpcErrors);
  if (app.attrs) assert.deepEqual(parsed.app?.attrs, app.attrs);
  if (parsed.app?.xmlns === NS.tpcErrors) assert.ok(parsed.text, `a TPC/1 application error carries <text>: ${stanza}`);
}

function discoInfo(to: string): Element {
  return xml("iq", { type: "get", to }, xml("query", { xmlns: NS.discoInfo }));
}

function pepItems(to: string, node: string): Element {
  return xml("iq", { type: "get", to }, xml("pubsub", { xmlns: NS.pubsub }, xml("items", { node })));
}

function pepPublish(node: string, id: string, payload: Element, accessModel?: string): Element {
  const options = accessModel
    ? [
        xml(
          "publish-options",
          {},
          xml(
            "x",
            { xmlns: NS.xdata, type: "submit" },
            xml("field", { var: "FORM_TYPE", type: "hidden" }, xml("value", {}, "http://jabber.org/protocol/pubsub#publish-options")),
            xml("field", { var: "pubsub#access_model" }, xml("value", {}, accessModel)),
          ),
        ),
      ]
    : [];
  return xml("iq", { type: "set" }, xml("pubsub", { xmlns: NS.pubsub }, xml("publish", { node }, xml("item", { id }, payload)), ...options));
}

/** The answer without the attributes that name the addressed JID or the request. */
function shape(stanza: Element): string {
  const { from: _from, id: _id, ...attrs } = stanza.attrs as Record<string, string>;
  void _from;
  void _id;
  const copy = xml(stanza.name, attrs, ...stanza.children);
  return copy.toString();
}

// ---- tests ----

describe("reference partner server", function () {
  let server: ReferenceServer;
  const logLines: string[] = [];

  before(async () => {
    server = await startReferenceServer({ ...serverOptions(), log: (line) => logLines.push(line) });
  });

  after(async () => {
    await server?.stop();
  });

  afterEach(() => {
    for (const client of [...openClients]) client.destroy();
  });

  describe("stream negotiation", () => {
    it("offers only STARTTLS (required) before TLS, so PLAIN is not offered in the clear", async () => {
      const client = await TestClient.connect(server);
      const children = client.features.getChildElements();
      assert.deepEqual(children.map((c) => `${c.name} ${c.attrs.xmlns}`), [`starttls ${NS.tls}`]);
      assert.ok(children[0]!.getChild("required"));
      assert.equal(client.features.getChild("mechanisms", NS.sasl), undefined);
    });

    it("refuses SASL before TLS with encryption-required", async () => {
      const client = await TestClient.connect(server);
      client.send(xml("auth", { xmlns: NS.sasl, mechanism: "PLAIN" }, Buffer.from(`\0alice\0${PASSWORD}`).toString("base64")));
      const failure = await client.next((el) => el.attrs.xmlns === NS.sasl);
      assert.equal(failure.name, "failure");
      assert.ok(failure.getChild("encryption-required"), failure.toString());
    });

    it("ends the stream with not-authorized for a stanza before authentication (even registration before TLS)", async () => {
      const client = await TestClient.connect(server);
      client.send(xml("iq", { type: "get", id: "r1" }, xml("query", { xmlns: NS.register })));
      const error = await client.next((el) => el.name === "stream:error");
      assert.ok(error.getChild("not-authorized", NS.streams), error.toString());
      await client.closed;
    });

    it("ends the stream with not-authorized for a non-registration stanza after TLS but before auth", async () => {
      const client = await TestClient.connect(server);
      await client.startTls();
      client.send(xml("message", { to: `alice@${server.domain}` }, xml("body", {}, "hi")));
      const error = await client.next((el) => el.name === "stream:error");
      assert.ok(error.getChild("not-authorized", NS.streams), error.toString());
    });

    it("offers SCRAM-SHA-1, PLAIN and registration after TLS", async () => {
      const client = await TestClient.connect(server);
      await client.startTls();
      const mechanisms = client.features.getChild("mechanisms", NS.sasl)!.getChildren("mechanism").map((m) => m.getText());
      assert.deepEqual(mechanisms, ["SCRAM-SHA-1", "PLAIN"]);
      assert.ok(client.features.getChild("register", NS.registerFeature));
      assert.equal(client.features.getChild("starttls", NS.tls), undefined);
    });

    it("answers a wrong 'to' with host-unknown", async () => {
      const client = await TestClient.connect(server, "elsewhere.test");
      assert.equal(client.features.name, "stream:error");
      assert.ok(client.features.getChild("host-unknown", NS.streams));
      await client.closed;
    });

    it("refuses a DTD with restricted-xml", async () => {
      const client = await TestClient.connect(server);
      client.sendRaw("<!DOCTYPE foo [<!ENTITY x 'y'>]>");
      const error = await client.next((el) => el.name === "stream:error");
      assert.ok(error.getChild("restricted-xml", NS.streams), error.toString());
    });

    it("authenticates with SCRAM-SHA-1 (server signature verified) and binds", async () => {
      const client = await TestClient.connect(server);
      await client.startTls();
      const success = await client.authScram("alice", PASSWORD);
      assert.equal(success.name, "success");
      assert.ok(client.features.getChild("bind", NS.bind));
      assert.equal(client.features.getChild("mechanisms", NS.sasl), undefined);
      assert.equal(await client.bind("desk"), `alice@${server.domain}/desk`);
      const random = await login(server, "alice", { available: false });
      assert.match(random.jid, new RegExp(`^alice@${server.domain.replace(".", "\\.")}/.+`));
    });

    it("refuses a wrong password and an unknown user alike with not-authorized", async () => {
      for (const [user, password] of [["alice", "wrong"], ["nobody", PASSWORD]] as const) {
        const client = await TestClient.connect(server);
        await client.startTls();
        const failure = await client.authScram(user, password);
        assert.equal(failure.name, "failure");
        assert.ok(failure.getChild("not-authorized"), failure.toString());
      }
    });

    it("accepts PLAIN over TLS and refuses a wrong PLAIN password", async () => {
      const client = await TestClient.connect(server);
      await client.startTls();
      assert.ok((await client.authPlain("alice", "nope")).getChild("not-authorized"));
      assert.equal((await client.authPlain("alice", PASSWORD)).name, "success");
      await client.bind();
    });

    it("replaces a session bound to the same resource (conflict)", async () => {
      const first = await login(server, "carol", { resource: "same", available: false });
      const second = await login(server, "carol", { resource: "same", available: false });
      const error = await first.next((el) => el.name === "stream:error");
      assert.ok(error.getChild("conflict", NS.streams));
      await first.closed;
      await second.barrier();
    });
  });

  describe("in-band registration", () => {
    it("offers the form with username, password and phone", async () => {
      const client = await TestClient.connect(server);
      await client.startTls();
      const form = await client.request(xml("iq", { type: "get", to: server.domain }, xml("query", { xmlns: NS.register })));
      const query = form.getChild("query", NS.register)!;
      for (const field of ["instructions", "username", "password", "phone"]) assert.ok(query.getChild(field), `${field} in ${form}`);
    });

    it("registers an eligible gatekeeper actor with its E.164 number and region", async () => {
      const client = await TestClient.connect(server);
      await client.startTls();
      const answer = await client.register("tpc-test-reg-ok", PASSWORD, "+49 151 2345-6789");
      assert.equal(answer.attrs.type, "result");
      const account = server.accounts().find((a) => a.username === "tpc-test-reg-ok");
      assert.deepEqual(account && { phone: account.phone, region: account.region, readOnly: account.readOnly, kind: account.kind }, {
        phone: "+4915123456789",
        region: "DE",
        readOnly: false,
        kind: "gatekeeper",
      });
      assert.equal((await client.authScram("tpc-test-reg-ok", PASSWORD)).name, "success");
    });

    it("refuses an ineligible number with the same error whether or not the username exists", async () => {
      const client = await TestClient.connect(server);
      await client.startTls();
      assert.equal((await client.register("tpc-test-reg-taken", PASSWORD, ELIGIBLE)).attrs.type, "result");
      const fresh = await client.register("tpc-test-reg-new", PASSWORD, INELIGIBLE);
      const existing = await client.register("tpc-test-reg-taken", PASSWORD, INELIGIBLE);
      assertError(fresh, "cancel", "not-allowed", { name: "ineligible-region", attrs: { region: "CH" } });
      assert.equal(shape(existing), shape(fresh));
      assert.equal(server.accounts().some((a) => a.username === "tpc-test-reg-new"), false);
      const unparsable = await client.register("tpc-test-reg-bad", PASSWORD, "bad");
      assertError(unparsable, "cancel", "not-allowed", { name: "ineligible-region", attrs: { region: "ZZ" } });
    });

    it("requires a phone and refuses a taken username with conflict", async () => {
      const client = await TestClient.connect(server);
      await client.startTls();
      assertError(await client.register("tpc-test-reg-nophone", PASSWORD), "modify", "not-acceptable");
      assert.equal((await client.register("tpc-test-reg-dup", PASSWORD, ELIGIBLE)).attrs.type, "result");
      assertError(await client.register("tpc-test-reg-dup", PASSWORD, ELIGIBLE), "cancel", "conflict");
      assertError(await client.register("reflector", PASSWORD, ELIGIBLE), "cancel", "conflict");
    });
  });

  describe("routing", () => {
    it("delivers to all available resources of a bare JID, and to one full JID; stamps from", async () => {
      const g = await newGatekeeper(server);
      const a1 = await login(server, "alice", { resource: "one" });
      const a2 = await login(server, "alice", { resource: "two" });
      const toBare = omemoMessage(`alice@${server.domain}`);
      toBare.attrs.from = "spoofed@elsewhere.test/x";
      g.send(toBare);
      for (const client of [a1, a2]) {
        const got = await client.next(byId("message", toBare.attrs.id));
        assert.equal(got.attrs.from, g.jid);
      }
      const toFull = omemoMessage(a1.jid);
      const after = omemoMessage(`alice@${server.domain}`);
      g.send(toFull);
      g.send(after);
      await a1.next(byId("message", toFull.attrs.id));
      // a2 gets the bare message next, never the full-JID one.
      const next = await a2.next((el) => el.name === "message" && (el.attrs.id === toFull.attrs.id || el.attrs.id === after.attrs.id));
      assert.equal(next.attrs.id, after.attrs.id);
      // A full JID that is not connected is treated as the bare JID.
      const gone = omemoMessage(`alice@${server.domain}/gone`);
      g.send(gone);
      await a1.next(byId("message", gone.attrs.id));
      await a2.next(byId("message", gone.attrs.id));
    });

    it("keeps messages for an account without available resource and delivers them in order on initial presence", async () => {
      const g = await newGatekeeper(server);
      const bob = await login(server, "bob", { available: false });
      const ids = [newId(), newId(), newId()];
      for (const id of ids) g.send(omemoMessage(`bob@${server.domain}`, id));
      await g.barrier();
      await bob.barrier();
      assert.equal(bob.receivedFrom(g.jid, "message").length, 0, "nothing before initial presence");
      bob.send(xml("presence"));
      const got: string[] = [];
      for (let i = 0; i < ids.length; i++) {
        const message = await bob.next((el) => el.name === "message" && ids.includes(el.attrs.id));
        assert.ok(message.getChild("delay", "urn:xmpp:delay"));
        got.push(message.attrs.id);
      }
      assert.deepEqual(got, ids);
      // Offline messages also survive a reconnect of the recipient.
      await bob.close();
      const later = newId();
      g.send(omemoMessage(`bob@${server.domain}`, later));
      await g.barrier();
      const bobAgain = await login(server, "bob");
      await bobAgain.next(byId("message", later));
    });

    it("preserves the order of 20 messages from one sender", async () => {
      const g = await newGatekeeper(server);
      const p = await login(server, "reflector");
      const ids = Array.from({ length: 20 }, () => newId());
      for (const id of ids) g.send(omemoMessage(`reflector@${server.domain}`, id));
      const got: string[] = [];
      for (let i = 0; i < ids.length; i++) got.push((await p.next((el) => el.name === "message" && ids.includes(el.attrs.id))).attrs.id);
      assert.deepEqual(got, ids);
    });

    it("answers unknown IQs with service-unavailable and ping with a result", async () => {
      const g = await newGatekeeper(server);
      const unknown = xml("query", { xmlns: "urn:example:unknown" });
      assertError(await g.request(xml("iq", { type: "get", to: server.domain }, unknown)), "cancel", "service-unavailable");
      assertError(await g.request(xml("iq", { type: "get" }, xml("query", { xmlns: "urn:example:unknown" }))), "cancel", "service-unavailable");
      assertError(await g.request(xml("iq", { type: "set", to: `reflector@${server.domain}` }, xml("query", { xmlns: "urn:example:unknown" }))), "cancel", "service-unavailable");
      assertError(await g.request(xml("iq", { type: "get", to: `reflector@${server.domain}/nope` }, xml("ping", { xmlns: "urn:xmpp:ping" }))), "cancel", "service-unavailable");
      await g.barrier();
    });

    it("forwards test hooks on a bare JID to the user's available resource", async () => {
      const g = await newGatekeeper(server);
      const p = await login(server, "reflector", { resource: "hooks" });
      const hook = xml("iq", { type: "set", to: `reflector@${server.domain}` }, xml("command", { xmlns: NS.commands, node: `${NS.tpcTest}:state`, action: "execute" }));
      const answer = g.request(hook);
      const forwarded = await p.next((el) => el.name === "iq" && el.getChild("command", NS.commands) !== undefined);
      assert.equal(forwarded.attrs.from, g.jid);
      p.send(xml("iq", { type: "result", id: forwarded.attrs.id, to: forwarded.attrs.from }, xml("command", { xmlns: NS.commands, node: `${NS.tpcTest}:state`, status: "completed" })));
      const result = await answer;
      assert.equal(result.attrs.type, "result");
      assert.equal(result.attrs.from, p.jid);
      await p.close();
      assertError(await g.request(xml("iq", { type: "set", to: `reflector@${server.domain}` }, xml("command", { xmlns: NS.commands, node: `${NS.tpcTest}:state` }))), "cancel", "service-unavailable");
    });
  });

  describe("TPC/1 policy between G and P", () => {
    it("refuses a plaintext body with encryption-required, both ways", async () => {
      const g = await newGatekeeper(server);
      const p = await login(server, "reflector");
      const plain = xml("message", { type: "chat", to: `reflector@${server.domain}`, id: newId() }, xml("body", {}, "hello in the clear"));
      g.send(plain);
      const bounce = await g.next(byId("message", plain.attrs.id));
      assertError(bounce, "cancel", "not-acceptable", { name: "encryption-required" });
      assert.equal(bounce.attrs.from, `reflector@${server.domain}`);
      assert.equal(bounce.getChild("body"), undefined, "the payload is not echoed");
      const back = xml("message", { type: "chat", to: g.jid, id: newId() }, xml("body", {}, "hi back"));
      p.send(back);
      assertError(await p.next(byId("message", back.attrs.id)), "cancel", "not-acceptable", { name: "encryption-required" });
      await p.barrier();
      assert.equal(p.receivedFrom(g.jid, "message").length, 0);
    });

    it("refuses a plaintext body beside an OMEMO payload unless it is exactly the fixed notice, both ways", async () => {
      const g = await newGatekeeper(server);
      const p = await login(server, "reflector");
      const withText = (to: string, body: string) => {
        const message = omemoMessage(to);
        message.getChild("body")!.children = [body];
        return message;
      };
      for (const [from, to] of [[g, `reflector@${server.domain}`], [p, g.jid]] as const) {
        for (const body of ["hello in the clear", `${ENCRYPTED_NOTICE} PS: hello`, ""]) {
          const message = withText(to, body);
          from.send(message);
          const bounce = await from.next(byId("message", message.attrs.id));
          assertError(bounce, "cancel", "not-acceptable", { name: "encryption-required" });
          assert.match(parseStanzaError(bounce).text ?? "", /plaintext <body> beside/);
          assert.equal(bounce.getChild("body"), undefined, "the payload is not echoed");
        }
        // A second <body> (another xml:lang) must be the notice too.
        const twoBodies = omemoMessage(to);
        twoBodies.append(xml("body", { "xml:lang": "de" }, "Hallo"));
        from.send(twoBodies);
        assertError(await from.next(byId("message", twoBodies.attrs.id)), "cancel", "not-acceptable", { name: "encryption-required" });
      }
      // The notice itself passes, and nothing refused was delivered.
      const notice = omemoMessage(`reflector@${server.domain}`);
      g.send(notice);
      await p.next(byId("message", notice.attrs.id));
      await g.barrier();
      assert.deepEqual(p.receivedFrom(g.jid, "message").map((m) => m.attrs.id), [notice.attrs.id]);
      assert.deepEqual(g.receivedFrom(p.jid, "message"), []);
    });

    it("refuses groupchat, MUC invites and MIX with unsupported groups; calls with unsupported calls", async () => {
      const g = await newGatekeeper(server);
      const p = `reflector@${server.domain}`;
      const groups = { name: "unsupported", attrs: { feature: "groups" } };
      const calls = { name: "unsupported", attrs: { feature: "calls" } };
      const groupchat = omemoMessage(p);
      groupchat.attrs.type = "groupchat";
      const direct = xml("message", { to: p, id: newId() }, xml("x", { xmlns: NS.conference, jid: "room@muc.elsewhere.test" }));
      const mediated = xml("message", { to: p, id: newId() }, xml("x", { xmlns: NS.mucUser }, xml("invite", { to: p })));
      const propose = xml("message", { to: p, id: newId() }, xml("propose", { xmlns: NS.jingleMessage, id: "call1" }, xml("description", { xmlns: "urn:xmpp:jingle:apps:rtp:1", media: "audio" })));
      for (const [message, app] of [[groupchat, groups], [direct, groups], [mediated, groups], [propose, calls]] as const) {
        g.send(message);
        assertError(await g.next(byId("message", message.attrs.id)), "cancel", "feature-not-implemented", app);
      }
      const jingle = xml("iq", { type: "set", to: `${p}/any` }, xml("jingle", { xmlns: NS.jingle, action: "session-initiate", sid: "s1" }));
      assertError(await g.request(jingle), "cancel", "feature-not-implemented", calls);
      const mix = xml("iq", { type: "set", to: p }, xml("join", { xmlns: NS.mix }, xml("subscribe", { node: "urn:xmpp:mix:nodes:messages" })));
      assertError(await g.request(mix), "cancel", "feature-not-implemented", groups);
    });

    it("refuses privacy queries about a partner user with service-unavailable", async () => {
      const g = await newGatekeeper(server);
      const owner = await login(server, "pep");
      assert.equal((await owner.request(pepPublish("urn:xmpp:avatar:metadata", "a1", xml("metadata", { xmlns: "urn:xmpp:avatar:metadata" }), "open"))).attrs.type, "result");
      const p = `pep@${server.domain}`;
      const queries = [
        xml("vCard", { xmlns: "vcard-temp" }),
        xml("vcard", { xmlns: "urn:ietf:params:xml:ns:vcard-4.0" }),
        xml("query", { xmlns: "jabber:iq:last" }),
        xml("query", { xmlns: "jabber:iq:version" }),
        xml("time", { xmlns: "urn:xmpp:time" }),
        xml("pubsub", { xmlns: NS.pubsub }, xml("items", { node: "urn:xmpp:avatar:metadata" })),
      ];
      for (const query of queries) assertError(await g.request(xml("iq", { type: "get", to: p }, query)), "cancel", "service-unavailable");
      // The owner still reads its own node.
      assert.equal((await owner.request(pepItems(p, "urn:xmpp:avatar:metadata"))).attrs.type, "result");
    });

    it("drops presence between G and P both ways, and refuses a MUC join with unsupported groups", async () => {
      const g = await newGatekeeper(server);
      const p = await login(server, "alice", { resource: "presence" });
      g.send(xml("presence", { to: `alice@${server.domain}` }));
      g.send(xml("presence", { to: p.jid, type: "subscribe" }));
      p.send(xml("presence", { to: bareJid(g.jid) }));
      p.send(xml("presence", { to: g.jid, type: "probe" }));
      // Barrier: a message sent after the presence arrives after it would have.
      const fromG = omemoMessage(p.jid);
      const fromP = omemoMessage(g.jid);
      g.send(fromG);
      p.send(fromP);
      await p.next(byId("message", fromG.attrs.id));
      await g.next(byId("message", fromP.attrs.id));
      assert.deepEqual(p.receivedFrom(g.jid, "presence"), []);
      assert.deepEqual(g.receivedFrom(p.jid, "presence"), []);
      const join = xml("presence", { to: `alice@${server.domain}/nick`, id: newId() }, xml("x", { xmlns: NS.muc }));
      g.send(join);
      assertError(await g.next(byId("presence", join.attrs.id)), "cancel", "feature-not-implemented", { name: "unsupported", attrs: { feature: "groups" } });
    });

    it("answers disco#info on a partner user's bare JID with the TPC/1 features only", async () => {
      const g = await newGatekeeper(server);
      const answer = await g.request(discoInfo(`reflector@${server.domain}`));
      assert.equal(answer.attrs.type, "result");
      const query = answer.getChild("query", NS.discoInfo)!;
      assert.ok(query.getChildren("identity").some((i) => i.attrs.category === "account" && i.attrs.type === "registered"));
      const features = query.getChildren("feature").map((f) => f.attrs.var as string);
      for (const required of [NS.discoInfo, NS.tpc, NS.receipts, `${NS.omemoDeviceList}+notify`]) assert.ok(features.includes(required), required);
      for (const forbidden of [NS.muc, NS.mix, NS.jingle, NS.jingleMessage, NS.stickers, NS.ephemeral, NS.blocking]) {
        assert.ok(!features.some((f) => f.startsWith(forbidden)), forbidden);
      }
      const serverFeatures = (await g.request(discoInfo(server.domain))).getChild("query", NS.discoInfo)!.getChildren("feature").map((f) => f.attrs.var);
      for (const f of [NS.blocking, NS.register, NS.tpc, NS.tpcAccount, "msgoffline", "urn:xmpp:ping"]) assert.ok(serverFeatures.includes(f), f);
      const items = await g.request(xml("iq", { type: "get", to: server.domain }, xml("query", { xmlns: NS.discoItems })));
      assert.deepEqual(items.getChild("query", NS.discoItems)!.getChildElements(), []);
    });

    it("makes an opted-out user indistinguishable from a non-existent one", async () => {
      const optout = await login(server, "optout");
      await optout.request(pepPublish(NS.omemoDeviceList, "current", xml("list", { xmlns: NS.omemo }, xml("device", { id: "1" })), "open"));
      const g = await newGatekeeper(server);
      const answers = async (user: string): Promise<string[]> => {
        const to = `${user}@${server.domain}`;
        const id = `same-${user}`;
        g.send(omemoMessage(to, id));
        const message = await g.next(byId("message", id));
        assertError(message, "cancel", "service-unavailable");
        const out = [shape(message)];
        for (const iq of [discoInfo(to), pepItems(to, NS.omemoDeviceList), xml("iq", { type: "get", to: `${to}/r` }, xml("ping", { xmlns: "urn:xmpp:ping" }))]) {
          const answer = await g.request(iq);
          assertError(answer, "cancel", "service-unavailable");
          out.push(shape(answer));
        }
        return out;
      };
      assert.deepEqual(await answers("optout"), await answers("nobody"));
      await optout.barrier();
      assert.deepEqual(optout.receivedFrom(g.jid), []);
      // Opted-out users still talk to other partner users.
      const alice = await login(server, "alice");
      const m = omemoMessage(`optout@${server.domain}`);
      alice.send(m);
      await optout.next(byId("message", m.attrs.id));
    });

    it("refuses messages from and to a statically ineligible G with ineligible-region", async () => {
      const g = await login(server, "static-ch");
      const p = await login(server, "reflector");
      const out = omemoMessage(`reflector@${server.domain}`);
      g.send(out);
      assertError(await g.next(byId("message", out.attrs.id)), "cancel", "not-allowed", { name: "ineligible-region", attrs: { region: "CH" } });
      const back = omemoMessage(g.jid);
      p.send(back);
      assertError(await p.next(byId("message", back.attrs.id)), "cancel", "not-allowed", { name: "ineligible-region", attrs: { region: "CH" } });
    });
  });

  describe("PEP", () => {
    it("serves open nodes to anyone and presence nodes only to the owner", async () => {
      const owner = await login(server, "pep", { resource: "pep" });
      const g = await newGatekeeper(server);
      const p = `pep@${server.domain}`;
      const devices = (id: string) => xml("list", { xmlns: NS.omemo }, xml("device", { id }));
      assert.equal((await owner.request(pepPublish(NS.omemoDeviceList, "current", devices("1"), "open"))).attrs.type, "result");
      assert.equal((await owner.request(pepPublish(NS.omemoDeviceList, "current", devices("2"), "open"))).attrs.type, "result");
      assert.equal((await owner.request(pepPublish("urn:example:private", "x", xml("secret", { xmlns: "urn:example:private" })))).attrs.type, "result");
      const open = await g.request(pepItems(p, NS.omemoDeviceList));
      assert.equal(open.attrs.type, "result");
      const items = open.getChild("pubsub", NS.pubsub)!.getChild("items")!.getChildren("item");
      assert.equal(items.length, 1, "same id replaces");
      assert.equal(items[0]!.getChild("list", NS.omemo)!.getChild("device")!.attrs.id, "2");
      const closed = await g.request(pepItems(p, "urn:example:private"));
      assertError(closed, "auth", "not-authorized", { name: "presence-subscription-required", xmlns: NS.pubsubErrors });
      assert.equal((await owner.request(pepItems(p, "urn:example:private"))).attrs.type, "result");
      assertError(await g.request(pepItems(p, "urn:example:none")), "cancel", "item-not-found");
    });
  });

  describe("blocking (XEP-0191)", () => {
    it("bounces both ways, survives a reconnect and is undone by unblock", async () => {
      const g = await newGatekeeper(server);
      const gBare = bareJid(g.jid);
      let blocker = await login(server, "blocker", { resource: "a" });
      const block = await blocker.request(xml("iq", { type: "set" }, xml("block", { xmlns: NS.blocking }, xml("item", { jid: gBare }))));
      assert.equal(block.attrs.type, "result");
      const push = await blocker.next((el) => el.name === "iq" && el.attrs.type === "set" && el.getChild("block", NS.blocking) !== undefined);
      assert.equal(push.attrs.from, `blocker@${server.domain}`);
      blocker.send(xml("iq", { type: "result", id: push.attrs.id, to: push.attrs.from }));

      const checkBlocked = async (client: TestClient) => {
        const inbound = omemoMessage(`blocker@${server.domain}`);
        g.send(inbound);
        assertError(await g.next(byId("message", inbound.attrs.id)), "cancel", "service-unavailable");
        assertError(await g.request(discoInfo(`blocker@${server.domain}`)), "cancel", "service-unavailable");
        g.send(xml("presence", { to: client.jid }));
        const outbound = omemoMessage(g.jid);
        client.send(outbound);
        assertError(await client.next(byId("message", outbound.attrs.id)), "cancel", "not-acceptable", { name: "blocked", xmlns: NS.blockingErrors });
        assertError(await client.request(discoInfo(gBare)), "cancel", "not-acceptable", { name: "blocked", xmlns: NS.blockingErrors });
        await client.barrier();
        await g.barrier();
        assert.deepEqual(client.receivedFrom(gBare), []);
        assert.deepEqual(g.receivedFrom(`blocker@${server.domain}`), []);
      };
      await checkBlocked(blocker);

      await blocker.close();
      blocker = await login(server, "blocker", { resource: "b" });
      const list = await blocker.request(xml("iq", { type: "get" }, xml("blocklist", { xmlns: NS.blocking })));
      assert.deepEqual(list.getChild("blocklist", NS.blocking)!.getChildren("item").map((i) => i.attrs.jid), [gBare]);
      await checkBlocked(blocker);

      assert.equal((await blocker.request(xml("iq", { type: "set" }, xml("unblock", { xmlns: NS.blocking })))).attrs.type, "result");
      await blocker.next((el) => el.name === "iq" && el.getChild("unblock", NS.blocking) !== undefined);
      const delivered = omemoMessage(`blocker@${server.domain}`);
      g.send(delivered);
      assert.equal((await blocker.next(byId("message", delivered.attrs.id))).attrs.from, g.jid);
      const back = omemoMessage(g.jid);
      blocker.send(back);
      await g.next(byId("message", back.attrs.id));
    });
  });

  describe("number change", () => {
    it("turns the chat read-only both ways on an ineligible number, and writable again on an eligible one", async () => {
      const g = await newGatekeeper(server);
      const p = await login(server, "changer");
      const change = (number: string) => g.request(xml("iq", { type: "set", to: server.domain }, xml("number-change", { xmlns: NS.tpcAccount, number })));
      const readOnly = await change(INELIGIBLE);
      assert.equal(readOnly.attrs.type, "result");
      assert.deepEqual({ ...readOnly.getChild("number-change", NS.tpcAccount)!.attrs }, { xmlns: NS.tpcAccount, number: INELIGIBLE, region: "CH", status: "read-only" });
      assert.equal(server.accounts().find((a) => a.username === bareJid(g.jid).split("@")[0])?.readOnly, true);

      const out = omemoMessage(`changer@${server.domain}`);
      g.send(out);
      assertError(await g.next(byId("message", out.attrs.id)), "cancel", "not-allowed", { name: "read-only" });
      const back = omemoMessage(g.jid);
      p.send(back);
      assertError(await p.next(byId("message", back.attrs.id)), "cancel", "not-allowed", { name: "read-only" });

      assertError(await change("bad"), "modify", "bad-request");
      const eligible = await change(ELIGIBLE);
      assert.equal(eligible.getChild("number-change", NS.tpcAccount)!.attrs.status, "eligible");
      const again = omemoMessage(`changer@${server.domain}`);
      g.send(again);
      await p.next(byId("message", again.attrs.id));
    });
  });
});

describe("reference partner server faults and lifecycle", () => {
  afterEach(() => {
    for (const client of [...openClients]) client.destroy();
  });

  it("delivers a plaintext body under the fault plaintext-accepted", async () => {
    const server = await startReferenceServer(serverOptions({ faults: new Set(["plaintext-accepted", "no-receipt-check"]) }));
    try {
      const g = await newGatekeeper(server);
      const p = await login(server, "reflector");
      const plain = xml("message", { type: "chat", to: `reflector@${server.domain}`, id: newId() }, xml("body", {}, "hello in the clear"));
      g.send(plain);
      assert.equal((await p.next(byId("message", plain.attrs.id))).getChildText("body"), "hello in the clear");
      // Other checks stay on.
      // The whole plaintext check is off: a text body beside an OMEMO payload is delivered too.
      const beside = omemoMessage(`reflector@${server.domain}`);
      beside.getChild("body")!.children = ["hello beside the payload"];
      g.send(beside);
      assert.equal((await p.next(byId("message", beside.attrs.id))).getChildText("body"), "hello beside the payload");
      const groupchat = omemoMessage(`reflector@${server.domain}`);
      groupchat.attrs.type = "groupchat";
      g.send(groupchat);
      assertError(await g.next(byId("message", groupchat.attrs.id)), "cancel", "feature-not-implemented", { name: "unsupported", attrs: { feature: "groups" } });
    } finally {
      await server.stop();
    }
  });

  describe("transport faults (each against the compliant server)", () => {
    let reference: ReferenceServer;
    before(async () => {
      reference = await startReferenceServer(serverOptions());
    });
    after(async () => {
      await reference?.stop();
    });

    /** A server with one fault, stopped after `run`. */
    async function withFault(fault: string, run: (server: ReferenceServer) => Promise<void>): Promise<void> {
      const server = await startReferenceServer(serverOptions({ faults: new Set([fault]) }));
      try {
        assert.ok(SERVER_FAULTS.has(fault), `${fault} is a documented server fault`);
        await run(server);
      } finally {
        await server.stop();
      }
    }

    const mechanismsOf = (features: Element) => features.getChild("mechanisms", NS.sasl)?.getChildren("mechanism").map((m) => m.getText()) ?? [];

    it("documents every transport fault in SERVER_FAULTS with one sentence", () => {
      for (const [name, sentence] of Object.entries(TRANSPORT_FAULTS)) {
        assert.equal(SERVER_FAULTS.get(name), sentence);
        assert.match(sentence, /^[^.]+\.$/, `${name}: one sentence`);
      }
    });

    it("no-starttls: STARTTLS optional, SCRAM (not PLAIN) offered and accepted in the clear; as usual after TLS", async () => {
      // Compliant: only a required STARTTLS before TLS, and SASL refused.
      const strict = await TestClient.connect(reference);
      assert.ok(strict.features.getChild("starttls", NS.tls)?.getChild("required"));
      assert.deepEqual(mechanismsOf(strict.features), []);
      assert.equal((await strict.authScram("alice", PASSWORD)).name, "failure");

      await withFault("no-starttls", async (server) => {
        const clear = await TestClient.connect(server);
        const starttls = clear.features.getChild("starttls", NS.tls);
        assert.ok(starttls, clear.features.toString());
        assert.equal(starttls.getChild("required"), undefined, "STARTTLS is optional");
        assert.deepEqual(mechanismsOf(clear.features), ["SCRAM-SHA-1"], "PLAIN is still not offered in the clear");
        assert.equal((await clear.authScram("alice", PASSWORD)).name, "success");
        await clear.bind("clear");
        await clear.goAvailable();
        // Registration and PLAIN (not offered) work in the clear too.
        const other = await TestClient.connect(server);
        assert.equal((await other.register("tpc-test-clear", PASSWORD, ELIGIBLE)).attrs.type, "result");
        assert.equal((await other.authPlain("tpc-test-clear", PASSWORD)).name, "success");
        await other.bind();
        const m = omemoMessage(clear.jid);
        other.send(m);
        await clear.next(byId("message", m.attrs.id));
        // After TLS everything is as usual.
        const secure = await TestClient.connect(server);
        await secure.startTls();
        assert.deepEqual(mechanismsOf(secure.features), ["SCRAM-SHA-1", "PLAIN"]);
        assert.equal(secure.features.getChild("starttls", NS.tls), undefined);
        assert.equal((await secure.authScram("alice", PASSWORD)).name, "success");
      });
    });

    it("plain-before-tls: PLAIN offered beside the required STARTTLS, yet SASL before TLS is refused", async () => {
      const strict = await TestClient.connect(reference);
      assert.equal(strict.features.getChild("mechanisms", NS.sasl), undefined);

      await withFault("plain-before-tls", async (server) => {
        const client = await TestClient.connect(server);
        assert.ok(client.features.getChild("starttls", NS.tls)?.getChild("required"), "STARTTLS still required");
        assert.deepEqual(mechanismsOf(client.features), ["SCRAM-SHA-1", "PLAIN"]);
        const plain = await client.authPlain("alice", PASSWORD);
        assert.equal(plain.name, "failure");
        assert.ok(plain.getChild("encryption-required"), plain.toString());
        const scram = await client.authScram("alice", PASSWORD);
        assert.equal(scram.name, "failure");
        assert.ok(scram.getChild("encryption-required"), scram.toString());
        await client.startTls();
        assert.deepEqual(mechanismsOf(client.features), ["SCRAM-SHA-1", "PLAIN"]);
        assert.equal((await client.authScram("alice", PASSWORD)).name, "success");
      });
    });

    it("unknown-iq-ignored: no answer to an IQ the server does not understand; known IQs still answered", async () => {
      const unknownIqs = (domain: string) => [
        xml("iq", { type: "get", to: domain, id: "u-server" }, xml("query", { xmlns: "urn:example:unknown" })),
        xml("iq", { type: "get", id: "u-self" }, xml("query", { xmlns: "urn:example:unknown" })),
        xml("iq", { type: "set", to: `reflector@${domain}`, id: "u-reflector" }, xml("frobnicate", { xmlns: "urn:example:unknown" })),
      ];
      const g = await newGatekeeper(reference);
      for (const iq of unknownIqs(reference.domain)) assertError(await g.request(iq), "cancel", "service-unavailable");

      await withFault("unknown-iq-ignored", async (server) => {
        const faulty = await newGatekeeper(server);
        const ids = unknownIqs(server.domain).map((iq) => {
          faulty.send(iq);
          return iq.attrs.id as string;
        });
        // Round trip: every answer to the IQs above would have arrived before the ping's result.
        await faulty.barrier();
        assert.deepEqual(faulty.received.filter((el) => el.name === "iq" && ids.includes(el.attrs.id)), []);
        // Known payloads and other errors are unchanged.
        assert.equal((await faulty.request(discoInfo(server.domain))).attrs.type, "result");
        assert.equal((await faulty.request(discoInfo(`reflector@${server.domain}`))).attrs.type, "result");
        assertError(await faulty.request(discoInfo(`nobody@${server.domain}`)), "cancel", "service-unavailable");
      });
    });

    it("malformed-error: server errors carry a second defined condition after the real one", async () => {
      const triggers = async (client: TestClient, domain: string): Promise<Element[]> => {
        const lost = omemoMessage(`nobody@${domain}`);
        client.send(lost);
        const plaintext = xml("message", { type: "chat", to: `reflector@${domain}`, id: newId() }, xml("body", {}, "in the clear"));
        client.send(plaintext);
        return [
          await client.request(xml("iq", { type: "get", to: domain }, xml("query", { xmlns: "urn:example:unknown" }))),
          await client.next(byId("message", lost.attrs.id)),
          await client.next(byId("message", plaintext.attrs.id)),
          await client.request(xml("iq", { type: "set" }, xml("bind", { xmlns: NS.bind }))),
        ];
      };
      const expected: [string, string, string | undefined][] = [
        ["cancel", "service-unavailable", undefined],
        ["cancel", "service-unavailable", undefined],
        ["cancel", "not-acceptable", "encryption-required"],
        ["cancel", "not-allowed", undefined],
      ];
      const compliant = await triggers(await newGatekeeper(reference), reference.domain);
      compliant.forEach((stanza, i) => {
        const [type, condition, app] = expected[i]!;
        assertError(stanza, type, condition, app ? { name: app } : undefined);
      });

      await withFault("malformed-error", async (server) => {
        const faulty = await triggers(await newGatekeeper(server), server.domain);
        faulty.forEach((stanza, i) => {
          const [type, condition, app] = expected[i]!;
          const parsed = parseStanzaError(stanza);
          assert.deepEqual(parsed.problems, ["<error/> has 2 defined conditions; RFC 6120 allows exactly one"], stanza.toString());
          assert.equal(parsed.type, type);
          assert.equal(parsed.condition, condition, "a reader that takes the first condition sees the real one");
          assert.equal(parsed.app?.name, app);
          const defined = stanza.getChild("error")!.getChildElements().filter((c) => c.attrs.xmlns === NS.stanzas && c.name !== "text");
          assert.deepEqual(defined.map((c) => c.name), [condition, "undefined-condition"]);
        });
      });
    });

    it("offline-dropped: messages to an account without available resource are lost", async () => {
      const offline = async (server: ReferenceServer): Promise<string[]> => {
        const g = await newGatekeeper(server);
        const bob = await login(server, "bob", { available: false });
        const ids = [newId(), newId()];
        for (const id of ids) g.send(omemoMessage(`bob@${server.domain}`, id));
        await g.barrier();
        await bob.goAvailable();
        // Offline messages follow the presence echo at once; the round trip proves none came after.
        await bob.barrier();
        const got = bob.receivedFrom(g.jid, "message").map((m) => m.attrs.id as string);
        await bob.close();
        return got;
      };
      const stored = await offline(reference);
      assert.equal(stored.length, 2, "the compliant server stores and delivers them");
      await withFault("offline-dropped", async (server) => {
        assert.deepEqual(await offline(server), []);
        // Online delivery is unchanged.
        const g = await newGatekeeper(server);
        const bob = await login(server, "bob");
        const m = omemoMessage(`bob@${server.domain}`);
        g.send(m);
        await bob.next(byId("message", m.attrs.id));
      });
    });

    it("out-of-order-delivery: the messages of one socket write are routed last first; a lone message is unchanged", async () => {
      /** Messages from `g` in one raw write (one TLS record, so one chunk on the server). */
      const burst = (g: TestClient, to: string, count: number, tail = ""): string[] => {
        const ids = Array.from({ length: count }, () => newId());
        g.sendRaw(ids.map((id) => omemoMessage(to, id).toString()).join("") + tail);
        return ids;
      };
      const arrival = async (client: TestClient, ids: string[]): Promise<string[]> => {
        const got: string[] = [];
        for (let i = 0; i < ids.length; i++) got.push((await client.next((el) => el.name === "message" && ids.includes(el.attrs.id))).attrs.id);
        return got;
      };

      const gRef = await newGatekeeper(reference);
      const pRef = await login(reference, "reflector", { resource: "order" });
      const inOrder = burst(gRef, pRef.jid, 5);
      assert.deepEqual(await arrival(pRef, inOrder), inOrder, "the compliant server keeps the order");

      await withFault("out-of-order-delivery", async (server) => {
        const g = await newGatekeeper(server);
        const p = await login(server, "reflector", { resource: "order" });
        const alice = await login(server, "alice", { resource: "order" });

        const five = burst(g, p.jid, 5);
        assert.deepEqual(await arrival(p, five), [...five].reverse());

        const lone = burst(g, p.jid, 1);
        assert.deepEqual(await arrival(p, lone), lone);

        // Two recipients interleaved, with an IQ between: each recipient's messages reversed, the IQ
        // answered, and all of the chunk's messages routed before the next chunk is handled.
        const ids = [newId(), newId(), newId(), newId()];
        const to = [p.jid, alice.jid, p.jid, alice.jid];
        const ping = xml("iq", { type: "get", id: "ping-in-chunk", to: server.domain }, xml("ping", { xmlns: "urn:xmpp:ping" }));
        g.sendRaw(
          [omemoMessage(to[0]!, ids[0]), omemoMessage(to[1]!, ids[1]), ping, omemoMessage(to[2]!, ids[2]), omemoMessage(to[3]!, ids[3])].join(""),
        );
        const after = burst(g, p.jid, 1);
        assert.deepEqual(await arrival(p, [ids[0]!, ids[2]!, ...after]), [ids[2], ids[0], ...after]);
        assert.deepEqual(await arrival(alice, [ids[1]!, ids[3]!]), [ids[3], ids[1]]);
        assert.equal((await g.next(byId("iq", "ping-in-chunk"))).attrs.type, "result");

        // Messages in the chunk that closes the stream are still routed.
        const closing = burst(g, p.jid, 3, "</stream:stream>");
        assert.deepEqual(await arrival(p, closing), [...closing].reverse());
        await g.closed;
      });
    });
  });

  it("stops quickly, ending open streams with system-shutdown", async () => {
    const server = await startReferenceServer(serverOptions());
    const client = await login(server, "alice");
    const plain = await TestClient.connect(server);
    const started = performance.now();
    await server.stop();
    const ms = performance.now() - started;
    const error = await client.next((el) => el.name === "stream:error");
    assert.ok(error.getChild("system-shutdown", NS.streams));
    await client.closed;
    await plain.closed;
    assert.ok(ms < 1000, `stop took ${ms} ms`);
    await assert.rejects(TestClient.connect(server));
  });

  it("lists components in disco#items on the domain and hands them their IQs", async () => {
    const server = await startReferenceServer(
      serverOptions({
        components: [
          {
            jid: "upload.partner.test",
            name: "upload",
            handleIq: async (iq) => xml("iq", { type: "result", id: iq.attrs.id, from: iq.attrs.to, to: iq.attrs.from }, xml("pong", { xmlns: "urn:example:component" })),
          },
        ],
      }),
    );
    try {
      const g = await newGatekeeper(server);
      const items = await g.request(xml("iq", { type: "get", to: server.domain }, xml("query", { xmlns: NS.discoItems })));
      assert.deepEqual(items.getChild("query", NS.discoItems)!.getChildren("item").map((i) => ({ ...i.attrs })), [{ jid: "upload.partner.test", name: "upload" }]);
      const answer = await g.request(xml("iq", { type: "get", to: "upload.partner.test" }, xml("ping", { xmlns: "urn:example:component" })));
      assert.ok(answer.getChild("pong", "urn:example:component"));
      assertError(await g.request(xml("iq", { type: "get", to: "elsewhere.test" }, xml("ping", { xmlns: "urn:xmpp:ping" }))), "cancel", "remote-server-not-found");
    } finally {
      await server.stop();
    }
  });

  it("ends a stream that is not well-formed with not-well-formed", async () => {
    const server = await startReferenceServer(serverOptions());
    try {
      const client = await TestClient.connect(server);
      client.sendRaw("<message><body></message>");
      const error = await client.next((el) => el.name === "stream:error");
      assert.ok(error.getChild("not-well-formed", NS.streams), error.toString());
      await client.closed;
    } finally {
      await server.stop();
    }
  });

  it("caches the certificate per domain", async () => {
    const first = await generateCertificate("cache.test");
    const started = performance.now();
    const second = await generateCertificate("cache.test");
    assert.equal(second, first);
    assert.ok(performance.now() - started < 5);
    assert.match(first.certPem, /BEGIN CERTIFICATE/);
  });
});
