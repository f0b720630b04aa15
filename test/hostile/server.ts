// A small hostile XMPP server on loopback, for proving that a run against a dead, broken or
// malicious endpoint never crashes or hangs and always writes its report. In mode `good` it is a
// minimal well-behaved server (STARTTLS required, SCRAM-SHA-1, bind, errors for what it does not
// serve), enough for the transport cases to pass; every other mode misbehaves in one way, from the
// `from`-th connection on (earlier connections behave, so the run's first connections can succeed
// and the misbehaviour hit the cases). Stalls never answer: the client's deadlines end them.
import { EventEmitter } from "node:events";
import net from "node:net";
import tls from "node:tls";
import { randomBytes } from "node:crypto";
import { ScramServer, deriveCredentials } from "../../src/protocol/scram.ts";
import type { ScramCredentials } from "../../src/protocol/scram.ts";
import { StreamParser } from "../../src/protocol/stream-parser.ts";
import { Element, NS, bareJid, xml } from "../../src/protocol/xml.ts";

export const HOSTILE_MODES = [
  "good",
  "silent", // accepts the connection, never writes a byte
  "non-xml", // answers the stream header with binary garbage
  "malformed-xml", // stream features that are not well-formed
  "dtd", // a DOCTYPE with nested entities (billion laughs) before the stream header
  "stream-error", // ends the stream at once with <host-unknown/>
  "stall-stream", // stream header, then no features
  "stall-starttls", // never answers <starttls/>
  "stall-tls", // says <proceed/>, then never does the TLS handshake
  "stall-sasl", // never answers <auth/>
  "stall-bind", // never answers the bind IQ
  "sasl-failure", // <failure><not-authorized/></failure> to every login
  "scram-bad-signature", // SCRAM success with a server signature that does not verify
  "disconnect", // after login, drops the TCP connection on the client's first presence
  "stream-error-mid", // after login, <system-shutdown/> on the client's first presence
  "iq-never", // after login, answers no IQ at all
  "oversized-stanza", // after login, one endless <message> (until the client hangs up)
  "flood", // after login, small messages as fast as the socket takes them
  "drip", // well-behaved, but every byte goes out on its own
  "slowloris", // one byte every 100 ms from the start
] as const;
export type HostileMode = (typeof HOSTILE_MODES)[number];

export interface HostileServerOptions {
  mode: HostileMode;
  /** 1-based index of the first connection that misbehaves; earlier ones behave. Default 1. */
  from?: number;
  certificate: { keyPem: string; certPem: string };
  domain?: string;
  accounts: { username: string; password: string }[];
}

export interface HostileEvents {
  /** A misbehaving connection reached its stall, or started its flood/oversized stanza. */
  misbehaving: [{ connection: number; what: string }];
  /** The client ended its stream with this stream error condition. */
  "client-stream-error": [string];
  /** The server wrote its answer to an IQ of the client (after binding). */
  answered: [string];
}

export interface HostileServer {
  host: string;
  port: number;
  domain: string;
  readonly events: EventEmitter<HostileEvents>;
  /** Connections accepted so far. */
  readonly connections: () => number;
  /** Stream error conditions the client sent (restricted-xml, not-well-formed, policy-violation, …). */
  readonly clientStreamErrors: string[];
  /** Bytes the server wrote in flood and oversized modes. */
  readonly floodBytes: () => number;
  stop(): Promise<void>;
}

const BILLION_LAUGHS = `<!DOCTYPE lolz [<!ENTITY lol "lol">${Array.from({ length: 9 }, (_, i) => `<!ENTITY lol${i + 1} "${`&lol${i || ""};`.repeat(10)}">`).join("")}]>`;

export async function startHostileServer(options: HostileServerOptions): Promise<HostileServer> {
  const domain = options.domain ?? "hostile.test";
  const from = options.from ?? 1;
  const credentials = new Map<string, ScramCredentials>(options.accounts.map((a) => [a.username, deriveCredentials(a.password, 64)]));
  const secureContext = tls.createSecureContext({ key: options.certificate.keyPem, cert: options.certificate.certPem });
  const events = new EventEmitter<HostileEvents>();
  const sockets = new Set<net.Socket>();
  const clientStreamErrors: string[] = [];
  const stops: (() => void)[] = [];
  let count = 0;
  let floodBytes = 0;

  const server = net.createServer((socket) => {
    count++;
    sockets.add(socket);
    socket.on("close", () => sockets.delete(socket));
    socket.on("error", () => socket.destroy());
    const session = new Session({
      socket, index: count, mode: count >= from ? options.mode : "good", domain, credentials, secureContext, events, clientStreamErrors,
      addFlood: (n) => (floodBytes += n),
      onStop: (fn) => stops.push(fn),
    });
    session.start();
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const port = (server.address() as net.AddressInfo).port;
  return {
    host: "127.0.0.1",
    port,
    domain,
    events,
    connections: () => count,
    clientStreamErrors,
    floodBytes: () => floodBytes,
    stop: async () => {
      for (const stop of stops) stop();
      for (const socket of sockets) socket.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

interface SessionOptions {
  socket: net.Socket;
  index: number;
  mode: HostileMode;
  domain: string;
  credentials: Map<string, ScramCredentials>;
  secureContext: tls.SecureContext;
  events: EventEmitter<HostileEvents>;
  clientStreamErrors: string[];
  addFlood: (bytes: number) => void;
  onStop: (fn: () => void) => void;
}

class Session {
  private socket: net.Socket;
  private readonly parser = new StreamParser();
  private readonly mode: HostileMode;
  private secure = false;
  private user = "";
  private closed = false;
  private scram: ScramServer | null = null;
  private triggered = false;
  /** drip and slowloris: bytes waiting to go out one at a time. */
  private pending: Buffer = Buffer.alloc(0);
  private pumping = false;
  private drained: (() => void)[] = [];

  constructor(private readonly o: SessionOptions) {
    this.socket = o.socket;
    this.mode = o.mode;
    this.parser.on("open", () => this.onStreamOpen());
    this.parser.on("stanza", (el) => this.onElement(el));
    this.parser.on("close", () => this.endStream());
    this.parser.on("error", () => this.destroy());
    o.onStop(() => this.destroy());
  }

  start(): void {
    this.socket.setNoDelay(true);
    this.socket.on("close", () => (this.closed = true));
    if (this.mode === "silent") {
      this.misbehave("silence");
      this.socket.resume(); // read and ignore, so the client's close is seen
      return;
    }
    this.socket.on("data", this.onData);
  }

  private readonly onData = (chunk: Buffer) => this.parser.write(chunk);

  private misbehave(what: string): void {
    this.o.events.emit("misbehaving", { connection: this.o.index, what });
  }

  private destroy(): void {
    this.closed = true;
    this.socket.destroy();
    this.o.socket.destroy();
  }

  // ---- output (drip and slowloris send one byte at a time) ----

  private write(text: string | Buffer): void {
    if (this.closed || this.socket.destroyed) return;
    if (this.mode !== "drip" && this.mode !== "slowloris") {
      this.socket.write(text);
      return;
    }
    this.pending = Buffer.concat([this.pending, Buffer.from(text)]);
    if (!this.pumping) this.pump();
  }

  private pump(): void {
    if (this.closed || this.pending.length === 0) {
      this.pumping = false;
      for (const resolve of this.drained.splice(0)) resolve();
      return;
    }
    this.pumping = true;
    const byte = this.pending.subarray(0, 1);
    this.pending = this.pending.subarray(1);
    this.socket.write(byte);
    if (this.mode === "slowloris") {
      const timer = setTimeout(() => this.pump(), 100);
      this.o.onStop(() => clearTimeout(timer));
    } else setImmediate(() => this.pump());
  }

  /** Resolves when every queued byte has been handed to the socket. */
  private flushed(): Promise<void> {
    if (!this.pumping) return Promise.resolve();
    return new Promise((resolve) => this.drained.push(resolve));
  }

  private send(element: Element): void {
    this.write(element.toString());
  }

  // ---- stream level ----

  private onStreamOpen(): void {
    const header = `<?xml version='1.0'?><stream:stream xmlns='jabber:client' xmlns:stream='${NS.stream}' from='${this.o.domain}' id='${randomBytes(6).toString("hex")}' version='1.0' xml:lang='en'>`;
    switch (this.mode) {
      case "non-xml":
        this.misbehave("garbage");
        this.socket.write(Buffer.from([0xff, 0xfe, 0x00, 0x01, 0xde, 0xad, 0xbe, 0xef, 0x80, 0x81]));
        return;
      case "dtd":
        this.misbehave("dtd");
        this.write(`<?xml version='1.0'?>${BILLION_LAUGHS}${header.slice("<?xml version='1.0'?>".length)}<stream:features>&lol9;</stream:features>`);
        return;
      case "malformed-xml":
        this.misbehave("malformed");
        this.write(`${header}<stream:features><starttls xmlns='${NS.tls}'><required/></stream:features>`);
        return;
      case "stream-error":
        this.misbehave("stream error");
        this.write(`${header}<stream:error><host-unknown xmlns='${NS.streams}'/><text xmlns='${NS.streams}'>this server does not serve that domain</text></stream:error></stream:stream>`);
        this.socket.end();
        return;
      case "stall-stream":
        this.misbehave("stream features");
        this.write(header);
        return;
    }
    this.write(header);
    this.send(this.features());
  }

  private features(): Element {
    if (!this.secure) return xml("stream:features", {}, xml("starttls", { xmlns: NS.tls }, xml("required")));
    if (!this.user) return xml("stream:features", {}, xml("mechanisms", { xmlns: NS.sasl }, xml("mechanism", {}, "SCRAM-SHA-1"), xml("mechanism", {}, "PLAIN")));
    return xml("stream:features", {}, xml("bind", { xmlns: NS.bind }));
  }

  private endStream(): void {
    this.write("</stream:stream>");
    void this.flushed().then(() => this.socket.end());
  }

  private onElement(el: Element): void {
    if (el.name === "stream:error") {
      const condition = el.children.find((c): c is Element => typeof c !== "string" && c.name !== "text")?.name ?? "unknown";
      this.o.clientStreamErrors.push(condition);
      this.o.events.emit("client-stream-error", condition);
      return;
    }
    if (el.name === "starttls") return this.onStartTls();
    if (el.attrs.xmlns === NS.sasl) return this.onSasl(el);
    if (!this.user) return;
    if (el.name === "iq") return this.onIq(el);
    if (el.name === "presence") return this.onPresence(el);
    if (el.name === "message") return this.onMessage(el);
  }

  private onStartTls(): void {
    if (this.mode === "stall-starttls") return this.misbehave("STARTTLS");
    this.send(xml("proceed", { xmlns: NS.tls }));
    if (this.mode === "stall-tls") {
      // The client's ClientHello is read and ignored: the handshake never starts.
      this.socket.off("data", this.onData);
      this.socket.resume();
      return this.misbehave("TLS handshake");
    }
    void this.flushed().then(() => {
      if (this.closed) return;
      const raw = this.socket;
      raw.off("data", this.onData);
      const secured = new tls.TLSSocket(raw, { isServer: true, secureContext: this.o.secureContext });
      secured.on("error", () => this.destroy());
      secured.once("secure", () => {
        this.socket = secured;
        this.secure = true;
        this.parser.restart();
        secured.on("data", this.onData);
      });
    });
  }

  private onSasl(el: Element): void {
    if (el.name === "auth") {
      if (this.mode === "stall-sasl") return this.misbehave("SASL");
      if (this.mode === "sasl-failure") {
        this.send(xml("failure", { xmlns: NS.sasl }, xml("not-authorized"), xml("text", {}, "no such user or wrong password")));
        return;
      }
      const payload = Buffer.from(el.getText(), "base64").toString();
      if (el.attrs.mechanism === "PLAIN") {
        const [, user, password] = payload.split("\0");
        const stored = this.o.credentials.get(user ?? "");
        const ok = stored && deriveCredentials(password ?? "", stored.iterations, stored.salt).storedKey.equals(stored.storedKey);
        if (!ok) return this.send(xml("failure", { xmlns: NS.sasl }, xml("not-authorized")));
        return this.succeed(user!, "");
      }
      this.scram = new ScramServer();
      const user = this.scram.start(payload);
      const stored = this.o.credentials.get(user);
      if (!stored) return this.send(xml("failure", { xmlns: NS.sasl }, xml("not-authorized")));
      this.send(xml("challenge", { xmlns: NS.sasl }, Buffer.from(this.scram.challenge(stored)).toString("base64")));
      return;
    }
    if (el.name === "response" && this.scram) {
      const stored = this.o.credentials.get(this.scram.username)!;
      const final = this.scram.finish(Buffer.from(el.getText(), "base64").toString(), stored);
      if (!final) return this.send(xml("failure", { xmlns: NS.sasl }, xml("not-authorized")));
      if (this.mode === "scram-bad-signature") {
        this.misbehave("bad server signature");
        return this.succeed(this.scram.username, `v=${randomBytes(20).toString("base64")}`);
      }
      this.succeed(this.scram.username, final);
    }
  }

  private succeed(user: string, additional: string): void {
    this.user = user;
    this.send(xml("success", { xmlns: NS.sasl }, additional ? Buffer.from(additional).toString("base64") : ""));
    this.parser.restart();
  }

  private onIq(el: Element): void {
    const type = el.attrs.type;
    if (type !== "get" && type !== "set") return;
    const bind = el.getChild("bind", NS.bind);
    if (bind) {
      if (this.mode === "stall-bind") return this.misbehave("bind");
      const resource = bind.getChildText("resource") || randomBytes(4).toString("hex");
      this.send(xml("iq", { type: "result", id: el.attrs.id }, xml("bind", { xmlns: NS.bind }, xml("jid", {}, `${this.user}@${this.o.domain}/${resource}`))));
      return;
    }
    if (this.mode === "iq-never") return this.misbehave(`IQ ${el.attrs.id}`);
    const me = `${this.user}@${this.o.domain}`;
    const to = el.attrs.to ? bareJid(el.attrs.to) : me;
    const pubsub = el.getChild("pubsub", NS.pubsub);
    if (to === me && pubsub?.getChild("publish") && type === "set") {
      this.send(xml("iq", { type: "result", id: el.attrs.id, to: el.attrs.from }));
      return;
    }
    const condition = to === me && pubsub ? "item-not-found" : "service-unavailable";
    this.send(xml("iq", { type: "error", id: el.attrs.id, from: el.attrs.to ?? this.o.domain },
      xml("error", { type: "cancel" }, xml(condition, { xmlns: NS.stanzas }), xml("text", { xmlns: NS.stanzas, "xml:lang": "de" }, "Dienst nicht verfügbar — ✓"))));
    this.o.events.emit("answered", String(el.attrs.id));
  }

  private onPresence(el: Element): void {
    if (el.attrs.to || this.triggered) return;
    this.triggered = true;
    switch (this.mode) {
      case "disconnect":
        this.misbehave("disconnect");
        this.destroy();
        return;
      case "stream-error-mid":
        this.misbehave("stream error");
        this.write(`<stream:error><system-shutdown xmlns='${NS.streams}'/><text xmlns='${NS.streams}'>going down for maintenance</text></stream:error></stream:stream>`);
        this.socket.end();
        return;
      case "oversized-stanza":
        this.misbehave("oversized stanza");
        this.stream(`<message from='big@${this.o.domain}' to='${this.user}@${this.o.domain}' type='chat' id='big'><body>`, () => "A".repeat(64 * 1024));
        return;
      case "flood": {
        this.misbehave("flood");
        let n = 0;
        const batch = () => {
          let out = "";
          while (out.length < 64 * 1024) out += `<message from='flood@${this.o.domain}' to='${this.user}@${this.o.domain}' type='chat' id='f${++n}'><body>flood ${n}</body></message>`;
          return out;
        };
        this.stream("", batch);
        return;
      }
    }
  }

  /** Write `head`, then `next()` for as long as the client reads, stopping when the socket closes. */
  private stream(head: string, next: () => string): void {
    const socket = this.socket;
    socket.write(head);
    // One chunk per turn of the event loop: the other connections this process serves (the tests
    // run several modes at once) keep getting their answers while the flood goes on.
    const pump = () => {
      if (this.closed || socket.destroyed) return;
      const chunk = next();
      this.o.addFlood(chunk.length);
      if (socket.write(chunk)) setImmediate(pump);
      else socket.once("drain", pump);
    };
    pump();
  }

  private onMessage(el: Element): void {
    const to = el.attrs.to ? bareJid(el.attrs.to) : "";
    const known = [...this.o.credentials.keys()].some((u) => to === `${u}@${this.o.domain}`) || to.startsWith("reflector@");
    if (known || el.attrs.type === "error") return;
    const bounce = xml("message", { type: "error", id: el.attrs.id, from: el.attrs.to, to: `${this.user}@${this.o.domain}` },
      xml("error", { type: "cancel" }, xml("service-unavailable", { xmlns: NS.stanzas })));
    this.send(bounce);
  }
}
