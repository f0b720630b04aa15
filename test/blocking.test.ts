// Blocking (XEP-0191, TPC/1 §10) in the reference partner: the server's checks and block list, the
// reflector's block hooks and reconnect, each compliant and under its single fault. Driven over real
// sockets by the suite's own XmppConnection. No sleeps: "nothing arrived" is proven with a ping on
// the receiver's own stream after the sender's stanza was handled (the server answers a stream in
// order); waits have only a backstop.
import assert from "node:assert/strict";
import { startReferenceServer, SERVER_FAULTS } from "../src/partner/server/index.ts";
import type { ReferenceServer } from "../src/partner/server/index.ts";
import { startReflector, REFLECTOR_FAULTS } from "../src/partner/reflector.ts";
import type { Reflector } from "../src/partner/reflector.ts";
import { BLOCKING_MUTANTS } from "../src/partner/mutants-blocking.ts";
import { XmppConnection } from "../src/protocol/connection.ts";
import { StanzaError, parseStanzaError } from "../src/protocol/stanza-error.ts";
import { ENCRYPTED_NOTICE, NS, bareJid, xml } from "../src/protocol/xml.ts";
import type { Element } from "../src/protocol/xml.ts";

const BACKSTOP_MS = 4000;
const PASSWORD = "correct horse";

function classifyNumber(phone: string): { eligible: boolean; region: string; e164: string | null; reason: string } {
  return { eligible: true, region: "FR", e164: phone.replace(/\s/g, ""), reason: "test numbers are all eligible" };
}

const cleanups: (() => Promise<void>)[] = [];

async function startServer(faults: string[] = []): Promise<ReferenceServer> {
  const server = await startReferenceServer({
    classifyNumber,
    partnerUsers: ["partner", "reflector"].map((username) => ({ username, password: PASSWORD })),
    faults: new Set(faults),
  });
  cleanups.push(() => server.stop());
  return server;
}

let counter = 0;

/** One client stream with an inbox; IQ pushes (block list changes) are acknowledged. */
class Client {
  readonly inbox: Element[] = [];
  private readonly listeners = new Set<() => void>();

  private constructor(readonly conn: XmppConnection) {
    conn.on("stanza", (el) => {
      if (el.name === "iq" && (el.attrs.type === "get" || el.attrs.type === "set")) {
        conn.send(xml("iq", { type: "result", id: el.attrs.id, to: el.attrs.from }));
        return;
      }
      this.inbox.push(el);
      for (const listener of [...this.listeners]) listener();
    });
  }

  /** Log in (registering a gatekeeper account when `phone` is given) and become available. */
  static async login(server: ReferenceServer, username: string, opts: { phone?: string; resource?: string } = {}): Promise<Client> {
    const conn = await XmppConnection.connectAndLogin(
      { service: `xmpp://${server.host}:${server.port}`, domain: server.domain, tls: { ca: server.caCertPem } },
      { username, password: PASSWORD, resource: opts.resource, register: opts.phone ? { phone: opts.phone } : undefined },
    );
    cleanups.push(async () => conn.destroy());
    const client = new Client(conn);
    conn.send(xml("presence"));
    await client.ping();
    return client;
  }

  static gatekeeper(server: ReferenceServer): Promise<Client> {
    return Client.login(server, `tpc-test-g${++counter}`, { phone: `+3361234${String(counter).padStart(4, "0")}` });
  }

  get jid(): string {
    return this.conn.jid;
  }

  get bare(): string {
    return bareJid(this.conn.jid);
  }

  /** A round trip on this stream: everything the server routed here before has arrived. */
  async ping(): Promise<void> {
    await this.conn.iq(xml("iq", { type: "get", to: this.conn.domain }, xml("ping", { xmlns: "urn:xmpp:ping" })));
  }

  /** An IQ's answer, result or error. */
  async request(iq: Element): Promise<Element> {
    try {
      return await this.conn.iq(iq);
    } catch (err) {
      if (err instanceof StanzaError) return err.stanza;
      throw err;
    }
  }

  async blocklist(): Promise<string[]> {
    const result = await this.conn.iq(xml("iq", { type: "get" }, xml("blocklist", { xmlns: NS.blocking })));
    return result.getChild("blocklist", NS.blocking)!.getChildren("item").map((i) => String(i.attrs.jid));
  }

  async change(kind: "block" | "unblock", jid: string): Promise<void> {
    const result = await this.conn.iq(xml("iq", { type: "set" }, xml(kind, { xmlns: NS.blocking }, xml("item", { jid }))));
    assert.equal(result.attrs.type, "result");
  }

  take(match: (el: Element) => boolean, what: string): Promise<Element> {
    return new Promise((resolve, reject) => {
      const check = () => {
        const index = this.inbox.findIndex(match);
        if (index === -1) return;
        clearTimeout(timer);
        this.listeners.delete(check);
        resolve(this.inbox.splice(index, 1)[0]!);
      };
      const timer = setTimeout(() => {
        this.listeners.delete(check);
        reject(new Error(`${this.jid}: no ${what} within ${BACKSTOP_MS} ms`));
      }, BACKSTOP_MS);
      this.listeners.add(check);
      check();
    });
  }

  /** Stanzas received with this id (after a ping proved the server had routed them). */
  withId(id: string): Element[] {
    return this.inbox.filter((el) => el.attrs.id === id);
  }

  async close(): Promise<void> {
    await this.conn.close();
  }
}

let ids = 0;

/** An OMEMO-shaped message: the server never looks inside <encrypted/>. */
function content(to: string): Element {
  return xml("message", { type: "chat", to, id: `c${++ids}` },
    xml("encrypted", { xmlns: NS.omemo }, xml("header", { sid: "1" }, xml("key", { rid: "2" }, "AAAA"), xml("iv", {}, "AAAAAAAAAAAAAAAA")), xml("payload", {}, "AAAA")),
    xml("store", { xmlns: NS.hints }),
    xml("body", {}, ENCRYPTED_NOTICE));
}

/** A receipt: a message without content. */
function receipt(to: string): Element {
  return xml("message", { to, id: `r${++ids}` }, xml("received", { xmlns: NS.receipts, id: "whatever" }));
}

function assertBlockedError(stanza: Element): void {
  const parsed = parseStanzaError(stanza);
  assert.equal(stanza.attrs.type, "error", stanza.toString());
  assert.equal(parsed.condition, "not-acceptable", stanza.toString());
  assert.equal(parsed.app?.name, "blocked");
  assert.equal(parsed.app?.xmlns, NS.blockingErrors);
}

function assertUnavailable(stanza: Element): void {
  assert.equal(stanza.attrs.type, "error", stanza.toString());
  assert.equal(parseStanzaError(stanza).condition, "service-unavailable", stanza.toString());
}

/** Send `stanza` from `from`; returns its bounce, or null when `to` received it. */
async function exchange(from: Client, to: Client, stanza: Element): Promise<Element | null> {
  const id = String(stanza.attrs.id);
  from.conn.send(stanza);
  await from.ping();
  await to.ping();
  const bounce = from.withId(id).find((el) => el.attrs.type === "error") ?? null;
  const delivered = to.withId(id).filter((el) => el.attrs.type !== "error");
  assert.equal(delivered.length, bounce ? 0 : 1, `${id}: ${bounce ? "bounced and delivered" : "neither bounced nor delivered"}`);
  return bounce;
}

afterEach(async () => {
  while (cleanups.length) await cleanups.pop()!().catch(() => undefined);
});

describe("blocking in the reference server", () => {
  it("documents the blocking faults and registers their mutants", () => {
    for (const mutant of BLOCKING_MUTANTS) {
      const known = mutant.side === "server" ? SERVER_FAULTS.has(mutant.name) : REFLECTOR_FAULTS.has(mutant.name);
      assert.ok(known, `${mutant.name} is implemented on the ${mutant.side} side`);
    }
  });

  for (const fault of [undefined, "block-leaks-receipt"]) {
    it(`${fault ?? "compliant"}: a receipt to a blocked contact ${fault ? "gets through" : "fails with <blocked/>"}; content fails either way`, async () => {
      const server = await startServer(fault ? [fault] : []);
      const g = await Client.gatekeeper(server);
      const p = await Client.login(server, "partner");
      await p.change("block", g.bare);
      assertBlockedError((await exchange(p, g, content(g.bare)))!);
      const bounce = await exchange(p, g, receipt(g.jid));
      if (fault) assert.equal(bounce, null);
      else assertBlockedError(bounce!);
      // Inbound, the blocked user's receipts are refused like everything else.
      assertUnavailable((await exchange(g, p, receipt(p.bare)))!);
    });
  }

  for (const fault of [undefined, "block-lost-on-reconnect"]) {
    it(`${fault ?? "compliant"}: a block ${fault ? "lapses" : "stays"} when the session that set it ends`, async () => {
      const server = await startServer(fault ? [fault] : []);
      const g = await Client.gatekeeper(server);
      const first = await Client.login(server, "partner", { resource: "one" });
      await first.change("block", g.bare);
      assertUnavailable((await exchange(g, first, content(first.bare)))!);
      const second = await Client.login(server, "partner", { resource: "two" });
      // While the session that set it lives, the block holds even under the fault.
      assertUnavailable((await exchange(g, second, content(second.bare)))!);
      await first.close();
      if (fault) {
        assert.deepEqual(await second.blocklist(), []);
        assert.equal(await exchange(g, second, content(second.bare)), null);
        assert.equal(await exchange(second, g, content(g.bare)), null);
      } else {
        assert.deepEqual(await second.blocklist(), [g.bare]);
        assertUnavailable((await exchange(g, second, content(second.bare)))!);
        assertBlockedError((await exchange(second, g, content(g.bare)))!);
      }
    });
  }

  for (const fault of [undefined, "block-by-device-not-jid"]) {
    it(`${fault ?? "compliant"}: blocking a bare JID ${fault ? "blocks only the devices bound then" : "blocks every device, new ones too"}`, async () => {
      const server = await startServer(fault ? [fault] : []);
      const g = await Client.gatekeeper(server);
      const p = await Client.login(server, "partner");
      await p.change("block", g.bare);
      assert.deepEqual(await p.blocklist(), [fault ? g.jid : g.bare]);
      assertUnavailable((await exchange(g, p, content(p.bare)))!);
      const newDevice = await Client.login(server, g.bare.split("@")[0]!, { resource: "new-device" });
      const fromNew = await exchange(newDevice, p, content(p.bare));
      const toBare = xml("message", { type: "chat", to: g.bare, id: `c${++ids}` }, content(g.bare).getChild("encrypted", NS.omemo)!);
      p.conn.send(toBare);
      await p.ping();
      const bounce = p.withId(String(toBare.attrs.id)).find((el) => el.attrs.type === "error");
      if (fault) {
        assert.equal(fromNew, null);
        assert.equal(bounce, undefined);
        // Unblocking the user lifts the blocks of its devices too.
        await p.change("unblock", g.bare);
        assert.deepEqual(await p.blocklist(), []);
        assert.equal(await exchange(g, p, content(p.bare)), null);
      } else {
        assertUnavailable(fromNew!);
        assertBlockedError(bounce!);
      }
    });
  }

  for (const fault of [undefined, "gatekeeper-block-imported"]) {
    it(`${fault ?? "compliant"}: a gatekeeper user's block of a partner user ${fault ? "lands" : "never lands"} in the partner's list`, async () => {
      const server = await startServer(fault ? [fault] : []);
      const g = await Client.gatekeeper(server);
      const p = await Client.login(server, "partner");
      await g.change("block", p.bare);
      // The gatekeeper user's own block works: the partner's message is refused as if g did not exist.
      assertUnavailable((await exchange(p, g, content(g.bare)))!);
      await g.change("unblock", p.bare);
      assert.deepEqual(await g.blocklist(), []);
      if (fault) {
        assert.deepEqual(await p.blocklist(), [g.bare]);
        assertUnavailable((await exchange(g, p, content(p.bare)))!);
      } else {
        assert.deepEqual(await p.blocklist(), []);
        assert.equal(await exchange(g, p, content(p.bare)), null);
        assert.equal(await exchange(p, g, content(g.bare)), null);
      }
    });
  }
});

// ---------------------------------------------------------------- the reflector's hooks

async function startPartner(faults: string[] = []): Promise<{ server: ReferenceServer; reflector: Reflector }> {
  const server = await startServer(faults);
  const reflector = await startReflector({
    connection: { service: `xmpp://${server.host}:${server.port}`, domain: server.domain, tls: { ca: server.caCertPem } },
    username: "reflector",
    password: PASSWORD,
    testPrefix: "tpc-test-",
    faults: new Set(faults),
  });
  cleanups.push(() => reflector.stop());
  return { server, reflector };
}

/** Call a reflector hook; its JSON, or the error stanza. */
async function hook(client: Client, reflector: Reflector, name: string, args: Record<string, string> = {}): Promise<{ json?: Record<string, unknown>; error?: Element }> {
  const fields = Object.entries(args).map(([k, v]) => xml("field", { var: k }, xml("value", {}, v)));
  const answer = await client.request(xml("iq", { type: "set", to: reflector.jid },
    xml("command", { xmlns: NS.commands, node: `${NS.tpcTest}:${name}`, action: "execute" }, xml("x", { xmlns: NS.xdata, type: "submit" }, ...fields))));
  if (answer.attrs.type === "error") return { error: answer };
  const value = answer.getChild("command", NS.commands)!.getChild("x", NS.xdata)!.getChildren("field").find((f) => f.attrs.var === "json")!.getChildText("value")!;
  return { json: JSON.parse(value) as Record<string, unknown> };
}

describe("blocking in the reference reflector", function () {
  this.timeout(30_000);

  /** Send `stanza` from `g` to the reflector: its bounce, or null when none came (the server routed it). */
  async function toReflector(g: Client, stanza: Element): Promise<Element | null> {
    g.conn.send(stanza);
    await g.ping();
    return g.withId(String(stanza.attrs.id)).find((el) => el.attrs.type === "error") ?? null;
  }

  it("reports its server's list, reports sends to a blocked contact as bounced, and keeps the block over a reconnect without going offline", async () => {
    const { server, reflector } = await startPartner();
    const g = await Client.gatekeeper(server);
    const ops = await Client.gatekeeper(server);
    assert.deepEqual((await hook(ops, reflector, "block", { jid: g.jid })).json, { blocked: [g.bare] });
    const sent = (await hook(ops, reflector, "send", { to: g.bare, kind: "text", count: "2" })).json!;
    assert.equal((sent.sent as string[]).length, 2);
    assert.deepEqual(sent.errors, []);
    assert.deepEqual(sent.bounced, (sent.sent as string[]).map((id) => ({ id, to: g.bare, condition: "not-acceptable", app: "blocked" })));
    await g.ping();
    assert.deepEqual(g.inbox.filter((el) => el.name === "message"), []);

    assert.deepEqual((await hook(ops, reflector, "reconnect")).json, { reconnecting: true });
    // Make before break: hook calls made at once, during the reconnect, are all answered.
    const answers = await Promise.all(Array.from({ length: 10 }, () => hook(ops, reflector, "state")));
    for (const answer of answers) assert.equal(answer.error, undefined, answer.error?.toString());
    assert.deepEqual(answers.at(-1)!.json!.blocked, [g.bare]);
    assertUnavailable((await toReflector(g, content(reflector.jid)))!);
  });

  for (const fault of [undefined, "unblock-local-only"]) {
    it(`${fault ?? "compliant"}: unblock ${fault ? "leaves the server's list alone" : "lifts the block on the server"}`, async () => {
      const { server, reflector } = await startPartner(fault ? [fault] : []);
      const g = await Client.gatekeeper(server);
      const ops = await Client.gatekeeper(server);
      await hook(ops, reflector, "block", { jid: g.bare });
      assertUnavailable((await toReflector(g, content(reflector.jid)))!);
      const { json } = await hook(ops, reflector, "unblock", { jid: g.bare });
      assert.deepEqual(json, { blocked: fault ? [g.bare] : [] });
      const bounce = await toReflector(g, content(reflector.jid));
      if (fault) assertUnavailable(bounce!);
      else assert.equal(bounce, null);
    });
  }
});
