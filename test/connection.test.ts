import assert from "node:assert/strict";
import net from "node:net";
import { ConnectionError, XmppConnection } from "../src/protocol/connection.ts";
import { startReferenceServer } from "../src/partner/server/index.ts";
import type { ReferenceServer } from "../src/partner/server/index.ts";
import { xml } from "../src/protocol/xml.ts";

const classifyNumber = (phone: string) => phone.startsWith("+41")
  ? { eligible: false, region: "CH", e164: phone, reason: "Switzerland is not in the EEA" }
  : { eligible: true, region: "FR", e164: phone, reason: "EEA" };

describe("XmppConnection against the reference server", () => {
  let server: ReferenceServer;
  before(async () => {
    server = await startReferenceServer({ classifyNumber, partnerUsers: [{ username: "reflector", password: "reflector-secret" }] });
  });
  after(() => server.stop());

  const options = () => ({ service: `xmpp://${server.host}:${server.port}`, domain: server.domain, tls: { ca: server.caCertPem } });

  it("registers, authenticates with SCRAM (server signature verified), binds and exchanges an IQ", async () => {
    const traffic: string[] = [];
    const conn = await XmppConnection.connectAndLogin({ ...options(), onTraffic: (_d, text) => traffic.push(text) }, {
      username: "tpc-test-conn-1", password: "s3cret-password", register: { phone: "+33612345678" },
    });
    assert.match(conn.jid, /^tpc-test-conn-1@partner\.test\//);
    assert.equal(conn.secure, true);
    const pong = await conn.iq(xml("iq", { type: "get", to: server.domain }, xml("ping", { xmlns: "urn:xmpp:ping" })));
    assert.equal(pong.attrs.type, "result");
    const transcript = traffic.join("\n");
    assert.doesNotMatch(transcript, /s3cret-password/, "the password must not reach the transcript");
    assert.match(transcript, /<password>\[redacted\]<\/password>/);
    await conn.close();
    assert.equal(conn.closed, true);
  });

  it("reports a wrong password as an authentication failure", async () => {
    await assert.rejects(
      XmppConnection.connectAndLogin(options(), { username: "reflector", password: "wrong" }),
      (err: unknown) => err instanceof ConnectionError && err.kind === "auth" && /not-authorized/.test(err.message),
    );
  });

  it("names an untrusted certificate and the option that fixes it", async () => {
    await assert.rejects(
      XmppConnection.connectAndLogin({ ...options(), tls: {} }, { username: "reflector", password: "reflector-secret" }),
      (err: unknown) => err instanceof ConnectionError && err.kind === "tls" && /not trusted/.test(err.message) && /--ca/.test(err.hint ?? ""),
    );
  });

  it("names a certificate for another host name", async () => {
    await assert.rejects(
      XmppConnection.connectAndLogin({ ...options(), tls: { ca: server.caCertPem, servername: "other.example" } }, { username: "reflector", password: "reflector-secret" }),
      (err: unknown) => err instanceof ConnectionError && err.kind === "tls" && /does not match the host name other\.example/.test(err.message),
    );
  });

  it("refuses registration of an ineligible number with the server's stanza error", async () => {
    await assert.rejects(
      XmppConnection.connectAndLogin(options(), { username: "tpc-test-conn-ch", password: "pw-pw-pw", register: { phone: "+41441234567" } }),
      (err: unknown) => err instanceof Error && /not-allowed/.test(err.message) && /ineligible-region/.test(err.message),
    );
  });
});

describe("XmppConnection against dead or silent endpoints", () => {
  it("says the connection was refused", async () => {
    const probe = net.createServer();
    await new Promise<void>((resolve) => probe.listen(0, "127.0.0.1", resolve));
    const { port } = probe.address() as net.AddressInfo;
    await new Promise<void>((resolve) => probe.close(() => resolve()));
    await assert.rejects(
      XmppConnection.open({ service: `xmpp://127.0.0.1:${port}`, domain: "partner.test" }),
      (err: unknown) => err instanceof ConnectionError && err.kind === "refused" && /refused/.test(err.message),
    );
  });

  it("gives up on a silent server at the stream deadline and leaves no socket open", async () => {
    const sockets: net.Socket[] = [];
    const silent = net.createServer((s) => {
      sockets.push(s);
      s.resume(); // read and ignore, so the close is seen
    });
    await new Promise<void>((resolve) => silent.listen(0, "127.0.0.1", resolve));
    const { port } = silent.address() as net.AddressInfo;
    try {
      await assert.rejects(
        XmppConnection.open({ service: `xmpp://127.0.0.1:${port}`, domain: "partner.test", timeouts: { stream: 200 } }),
        (err: unknown) => err instanceof ConnectionError && err.kind === "timeout" && err.message === "stream features did not answer within 200 ms",
      );
      // The client destroyed its end: the server side sees the close.
      await new Promise<void>((resolve) => (sockets[0]!.destroyed ? resolve() : sockets[0]!.once("close", () => resolve())));
    } finally {
      for (const s of sockets) s.destroy();
      await new Promise<void>((resolve) => silent.close(() => resolve()));
    }
  });

  it("refuses a stream that carries a DTD", async () => {
    const hostile = net.createServer((s) => {
      s.once("data", () => s.write("<?xml version='1.0'?><!DOCTYPE lol [<!ENTITY lol 'lol'>]><stream:stream xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams' version='1.0'>"));
    });
    await new Promise<void>((resolve) => hostile.listen(0, "127.0.0.1", resolve));
    const { port } = hostile.address() as net.AddressInfo;
    try {
      await assert.rejects(
        XmppConnection.open({ service: `xmpp://127.0.0.1:${port}`, domain: "partner.test", timeouts: { stream: 2000 } }),
        (err: unknown) => err instanceof ConnectionError && /DTD or an entity declaration/.test(err.message),
      );
    } finally {
      await new Promise<void>((resolve) => hostile.close(() => resolve()));
    }
  });
});

