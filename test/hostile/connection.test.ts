// XmppConnection and the stray-error routing, in process, against endpoints that are wrong in ways
// a user meets: the wrong port (HTTP, direct TLS where STARTTLS is expected and the other way
// round), a non-XMPP root element; deadlines that must not fire while the answer is already there.
import assert from "node:assert/strict";
import net from "node:net";
import tls from "node:tls";
import { ConnectionError, XmppConnection } from "../../src/protocol/connection.ts";
import { StanzaError } from "../../src/protocol/stanza-error.ts";
import { addRunSink, routeStrayError, runInScope } from "../../src/runner/stray.ts";
import { startHostileServer } from "./server.ts";
import { ACCOUNTS, DOMAIN, hostileCertificates } from "./harness.ts";
import { xml } from "../../src/protocol/xml.ts";

async function rawServer(onSocket: (socket: net.Socket) => void, secure?: { keyPem: string; certPem: string }): Promise<{ port: number; close: () => Promise<void> }> {
  const sockets = new Set<net.Socket>();
  const handler = (socket: net.Socket) => {
    sockets.add(socket);
    socket.on("error", () => socket.destroy());
    onSocket(socket);
  };
  const server = secure ? tls.createServer({ key: secure.keyPem, cert: secure.certPem }, handler) : net.createServer(handler);
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  return {
    port: (server.address() as net.AddressInfo).port,
    close: async () => {
      for (const s of sockets) s.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

const isConnectionError = (kind: string, message: RegExp, hint?: RegExp) => (err: unknown) => {
  assert.ok(err instanceof ConnectionError, String(err));
  assert.equal(err.kind, kind, err.message);
  assert.match(err.message, message);
  if (hint) assert.match(err.hint ?? "", hint);
  return true;
};

describe("XmppConnection against the wrong kind of endpoint", function () {
  this.timeout(20_000);
  const timeouts = { connect: 2000, stream: 2000, tls: 2000 };

  it("an HTTP server on the port: says it looks like HTTP and asks about the port", async () => {
    const http = await rawServer((s) => s.once("data", () => s.end("HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n")));
    try {
      await assert.rejects(XmppConnection.open({ service: `xmpp://127.0.0.1:${http.port}`, domain: DOMAIN, timeouts }),
        isConnectionError("not-well-formed", /it looks like HTTP \("HTTP\/1\.1 400 Bad Request"\)/, /XMPP client port/));
    } finally {
      await http.close();
    }
  });

  it("an XML root that is not an XMPP stream", async () => {
    const html = await rawServer((s) => s.once("data", () => s.write("<html><body>")));
    try {
      await assert.rejects(XmppConnection.open({ service: `xmpp://127.0.0.1:${html.port}`, domain: DOMAIN, timeouts }),
        isConnectionError("protocol", /did not open an XMPP stream: its first element is <html>/, /XMPP client port/));
    } finally {
      await html.close();
    }
  });

  it("xmpps:// to a port that speaks plain XMPP: not TLS, use xmpp://", async () => {
    const plain = await rawServer((s) => s.once("data", () => s.write(`<?xml version='1.0'?><stream:stream xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams' version='1.0'>`)));
    try {
      await assert.rejects(XmppConnection.open({ service: `xmpps://127.0.0.1:${plain.port}`, domain: DOMAIN, timeouts }),
        isConnectionError("tls", /did not answer the TLS handshake with TLS/, /use xmpp:\/\/HOST:PORT \(STARTTLS\)/));
    } finally {
      await plain.close();
    }
  });

  it("xmpp:// to a port that speaks direct TLS: said in plain words, no hang", async () => {
    const certs = await hostileCertificates();
    const direct = await rawServer(() => undefined, certs.good);
    try {
      await assert.rejects(XmppConnection.open({ service: `xmpp://127.0.0.1:${direct.port}`, domain: DOMAIN, timeouts }),
        (err: unknown) => err instanceof ConnectionError && /TLS|closed the connection before opening an XMPP stream/.test(err.message) && /xmpps:\/\/|XMPP client port/.test(err.hint ?? ""));
    } finally {
      await direct.close();
    }
  });

  it("a deadline does not fire while the answer is already waiting behind a busy event loop", async () => {
    const certs = await hostileCertificates();
    const server = await startHostileServer({ mode: "good", certificate: certs.good, accounts: ACCOUNTS });
    try {
      const conn = await XmppConnection.connectAndLogin({ service: `xmpp://127.0.0.1:${server.port}`, domain: DOMAIN, tls: { ca: certs.good.certPem } }, ACCOUNTS[0]!);
      // Once the server has written its answer, block the loop well past the deadline (as key
      // generation of another case would), before the client could read it. The answer must win
      // over the timer that expired meanwhile.
      server.events.once("answered", () => {
        const until = Date.now() + 300;
        while (Date.now() < until) { /* busy */ }
      });
      const answer = conn.iq(xml("iq", { type: "get", to: DOMAIN }, xml("query", { xmlns: "urn:x-chatconform:unknown:0" })), 50);
      await assert.rejects(answer, (err: unknown) => err instanceof StanzaError && /service-unavailable/.test(err.message));
      await conn.close();
    } finally {
      await server.stop();
    }
  });
});

describe("XmppConnection against a hostile server (in process)", function () {
  this.timeout(20_000);

  async function withServer(mode: "scram-bad-signature" | "stream-error" | "slowloris", body: (service: string, ca: string) => Promise<void>): Promise<void> {
    const certs = await hostileCertificates();
    const server = await startHostileServer({ mode, certificate: certs.good, accounts: ACCOUNTS });
    try {
      await body(`xmpp://127.0.0.1:${server.port}`, certs.good.certPem);
    } finally {
      await server.stop();
    }
  }

  it("a server that cannot prove it knows the password (SCRAM server signature) is an authentication failure", () =>
    withServer("scram-bad-signature", (service, ca) => assert.rejects(XmppConnection.connectAndLogin({ service, domain: DOMAIN, tls: { ca } }, ACCOUNTS[0]!),
      isConnectionError("auth", /authentication failed: SCRAM server signature does not verify: the server did not prove it knows the password/, /not the server that holds the account's password/))));

  it("a stream error as the first answer: the condition, its text and what to check", () =>
    withServer("stream-error", (service) => assert.rejects(XmppConnection.open({ service, domain: DOMAIN }),
      isConnectionError("stream-error", /ended the stream: host-unknown \("this server does not serve that domain"\)/, /check domain in the config/))));

  it("bytes trickling in (slowloris) do not extend a deadline", () =>
    withServer("slowloris", (service) => assert.rejects(XmppConnection.open({ service, domain: DOMAIN, timeouts: { stream: 400 } }),
      isConnectionError("timeout", /^stream features did not answer within 400 ms$/))));
});

describe("stray errors are routed to the case they belong to", () => {
  it("an error raised in a callback started inside a case scope reaches that scope; outside, the run's sink", async () => {
    const reported: unknown[] = [];
    const fromCallback = await new Promise<boolean>((resolve) => {
      runInScope({ report: (e) => reported.push(e) }, () => {
        setTimeout(() => resolve(routeStrayError(new Error("from a socket callback"))), 1);
      });
    });
    assert.equal(fromCallback, true);
    assert.match(String(reported[0]), /from a socket callback/);

    const runLevel: unknown[] = [];
    const remove = addRunSink((e) => runLevel.push(e));
    try {
      assert.equal(routeStrayError(new Error("outside any case")), true);
    } finally {
      remove();
    }
    assert.match(String(runLevel[0]), /outside any case/);
    assert.equal(routeStrayError(new Error("nobody claims this")), false);
  });
});
