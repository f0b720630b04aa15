// The reference server's privacy and unsupported-feature behaviour, driven by the suite's own
// connection layer: a partner user with a vCard, a gatekeeper user asking for it, and the faults
// that make the server leak it (each must change exactly what its mutant claims).
import assert from "node:assert/strict";
import { classifyNumber } from "../src/eligibility/classify.ts";
import { startReferenceServer } from "../src/partner/server/index.ts";
import type { ReferenceServer } from "../src/partner/server/index.ts";
import { XmppConnection } from "../src/protocol/connection.ts";
import { StanzaError } from "../src/protocol/stanza-error.ts";
import { NS, xml } from "../src/protocol/xml.ts";
import type { Element } from "../src/protocol/xml.ts";

const PASSWORD = "correct horse battery staple";

async function withServer(faults: string[], run: (server: ReferenceServer) => Promise<void>): Promise<void> {
  const server = await startReferenceServer({
    classifyNumber: (phone) => classifyNumber(phone, "eea"),
    partnerUsers: [{ username: "partner", password: PASSWORD }],
    faults: new Set(faults),
  });
  try {
    await run(server);
  } finally {
    await server.stop();
  }
}

let counter = 0;

async function login(server: ReferenceServer, username: string, register?: string): Promise<XmppConnection> {
  const conn = await XmppConnection.connectAndLogin(
    { service: `xmpp://${server.host}:${server.port}`, domain: server.domain, tls: { ca: server.caCertPem } },
    { username, password: PASSWORD, register: register ? { phone: register } : undefined },
  );
  conn.send(xml("presence"));
  return conn;
}

/** The result payload, or the error condition, of an IQ. */
async function ask(conn: XmppConnection, to: string, type: "get" | "set", payload: Element): Promise<{ result?: Element; condition?: string }> {
  try {
    const result = await conn.iq(xml("iq", { type, to }, payload));
    return { result };
  } catch (err) {
    if (err instanceof StanzaError) return { condition: err.condition };
    throw err;
  }
}

describe("reference server: privacy and unsupported features", function () {
  this.timeout(20_000);

  async function scenario(faults: string[], check: (g: XmppConnection, partnerJid: string, domain: string) => Promise<void>): Promise<void> {
    await withServer(faults, async (server) => {
      const partner = await login(server, "partner");
      const g = await login(server, `tpc-test-p${++counter}`, "+33 6 12 34 56 78");
      try {
        const set = await ask(partner, `partner@${server.domain}`, "set", xml("vCard", { xmlns: "vcard-temp" }, xml("FN", {}, "Pat Partner")));
        assert.ok(set.result, "a user sets its own vCard");
        const own = await ask(partner, `partner@${server.domain}`, "get", xml("vCard", { xmlns: "vcard-temp" }));
        assert.equal(own.result?.getChild("vCard", "vcard-temp")?.getChildText("FN"), "Pat Partner", "and reads it back");
        await check(g, `partner@${server.domain}`, server.domain);
      } finally {
        await g.close();
        await partner.close();
      }
    });
  }

  it("keeps a partner user's vCard and last activity from a gatekeeper user", async () => {
    await scenario([], async (g, partnerJid) => {
      assert.deepEqual(await ask(g, partnerJid, "get", xml("vCard", { xmlns: "vcard-temp" })), { condition: "service-unavailable" });
      assert.deepEqual(await ask(g, partnerJid, "get", xml("query", { xmlns: "jabber:iq:last" })), { condition: "service-unavailable" });
    });
  });

  it("vcard-served hands the vCard over; under activity-served the server answers last activity as XEP-0012 has it", async () => {
    await scenario(["vcard-served"], async (g, partnerJid) => {
      const answer = await ask(g, partnerJid, "get", xml("vCard", { xmlns: "vcard-temp" }));
      assert.equal(answer.result?.getChild("vCard", "vcard-temp")?.getChildText("FN"), "Pat Partner");
    });
    await scenario(["activity-served"], async (g, partnerJid) => {
      // XEP-0012 §4: forbidden to whoever is not subscribed to the user's presence; not TPC/1's
      // service-unavailable, which reveals nothing.
      assert.deepEqual(await ask(g, partnerJid, "get", xml("query", { xmlns: "jabber:iq:last" })), { condition: "forbidden" });
    });
  });

  it("refuses a MUC join presence with a presence error naming groups", async () => {
    await scenario([], async (g, partnerJid) => {
      const error = new Promise<Element>((resolve) => g.on("stanza", (s) => { if (s.name === "presence" && s.attrs.type === "error") resolve(s); }));
      g.send(xml("presence", { to: `${partnerJid}/room`, id: "join-1" }, xml("x", { xmlns: NS.muc })));
      const stanza = await error;
      assert.equal(stanza.attrs.id, "join-1");
      const app = stanza.getChild("error")?.getChild("unsupported", NS.tpcErrors);
      assert.equal(app?.attrs.feature, "groups");
    });
  });

  it("disco-advertises-muc adds MUC to a user's disco#info; the compliant server never does", async () => {
    const features = async (faults: string[]) => {
      let vars: string[] = [];
      await scenario(faults, async (g, partnerJid) => {
        const answer = await ask(g, partnerJid, "get", xml("query", { xmlns: NS.discoInfo }));
        vars = answer.result?.getChild("query", NS.discoInfo)?.getChildren("feature").map((f) => String(f.attrs.var)) ?? [];
      });
      return vars;
    };
    assert.ok(!(await features([])).includes(NS.muc));
    assert.ok((await features(["disco-advertises-muc"])).includes(NS.muc));
  });
});
