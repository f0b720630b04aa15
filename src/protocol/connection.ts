// The suite's own XMPP client connection. It talks to servers the suite does not trust, so it owns
// the whole lifecycle: no auto-reconnect, a deadline on every phase (TCP connect, stream, STARTTLS,
// TLS handshake, each SASL step, bind, each IQ), its own STARTTLS step (so a CA and servername can be
// passed), SCRAM with server-signature verification, a stanza size limit and an inbound rate limit
// (a stream the suite refuses gets its stream error: restricted-xml, not-well-formed,
// policy-violation), and sockets destroyed on teardown. Every failure is a typed error in plain
// words with a hint where one helps (docs/troubleshooting.md); nothing is thrown from a socket handler.
import { EventEmitter } from "node:events";
import net from "node:net";
import tls from "node:tls";
import { X509Certificate, createHash, randomBytes } from "node:crypto";
import { StreamParser } from "./stream-parser.ts";
import { ScramClient } from "./scram.ts";
import { StanzaError } from "./stanza-error.ts";
import { Element, NS, parseXml, xml } from "./xml.ts";

export interface PhaseTimeouts {
  connect: number;
  stream: number;
  tls: number;
  sasl: number;
  bind: number;
  iq: number;
}

export const DEFAULT_TIMEOUTS: PhaseTimeouts = { connect: 5000, stream: 5000, tls: 5000, sasl: 5000, bind: 5000, iq: 5000 };

/** Inbound bytes per second a connection accepts (a burst of one second's worth included). */
export const DEFAULT_MAX_INBOUND_BYTES_PER_SECOND = 1024 * 1024;
/**
 * What each received stanza costs in the inbound budget besides its bytes: the suite keeps every
 * stanza (element, transcript entry, inbox), at a few KiB each, so a flood of tiny stanzas must end
 * as early as a flood of big ones. A legitimate burst (100 messages reflected, with receipts) stays
 * well inside the default budget.
 */
const STANZA_COST_BYTES = 256;

/** How long a stream refused by the suite may take to flush its stream error before the socket is destroyed. */
const LINGER_MS = 200;

export interface TlsOptions {
  /** PEM of the CA (or self-signed certificate) to trust in addition to none: replaces the system store. */
  ca?: string;
  /** Name to verify the certificate against; defaults to the XMPP domain. */
  servername?: string;
  /** Accept any certificate. Only with an explicit user choice; reported as such. */
  insecure?: boolean;
}

export interface ConnectionOptions {
  /** xmpp://host:port (STARTTLS) or xmpps://host:port (direct TLS). */
  service: string;
  domain: string;
  tls?: TlsOptions;
  timeouts?: Partial<PhaseTimeouts>;
  maxStanzaBytes?: number;
  /**
   * Largest rate of inbound bytes (a token bucket holding one second's worth; each stanza also counts
   * 256 bytes). An endpoint that sends more gets a policy-violation stream error and the connection
   * ends: memory stays bounded.
   */
  maxInboundBytesPerSecond?: number;
  /** Called for every element in and out, with secrets already redacted. */
  onTraffic?: (direction: "in" | "out", xmlText: string, element: Element) => void;
}

export interface LoginOptions {
  username: string;
  password: string;
  resource?: string;
  mechanism?: "SCRAM-SHA-1" | "PLAIN";
  /** Register the account in band (XEP-0077) before authenticating. */
  register?: { phone?: string };
}

export type ConnectionFailureKind =
  | "refused" | "timeout" | "tls" | "stream-error" | "auth" | "closed" | "protocol"
  | "not-well-formed" | "restricted-xml" | "policy-violation" | "internal";

export class ConnectionError extends Error {
  constructor(readonly kind: ConnectionFailureKind, message: string, readonly hint?: string) {
    super(message);
    this.name = "ConnectionError";
  }
}

export class TimeoutError extends ConnectionError {
  constructor(readonly phase: string, readonly ms: number, hint?: string) {
    super("timeout", `${phase} did not answer within ${formatMs(ms)}`, hint);
    this.name = "TimeoutError";
  }
}

export function formatMs(ms: number): string {
  return ms >= 1000 && ms % 1000 === 0 ? `${ms / 1000} s` : `${ms} ms`;
}

/**
 * A deadline that lets pending input be read before it expires: when the event loop was busy (key
 * generation of another case, a loaded machine) past the deadline, an answer that already arrived
 * still wins. The timer fires, then the expiry waits one turn of the loop (setImmediate runs after
 * the poll phase that delivers socket data).
 */
export class Deadline {
  private timer: NodeJS.Timeout | null;
  private immediate: NodeJS.Immediate | null = null;

  constructor(ms: number, onExpire: () => void) {
    this.timer = setTimeout(() => {
      this.timer = null;
      this.immediate = setImmediate(() => {
        this.immediate = null;
        onExpire();
      });
    }, ms);
  }

  cancel(): void {
    if (this.timer) clearTimeout(this.timer);
    if (this.immediate) clearImmediate(this.immediate);
    this.timer = null;
    this.immediate = null;
  }
}

/** A host as it goes into a URI: an IPv6 literal (::1) in brackets, anything else as it is. */
export function uriHost(host: string): string {
  return host.includes(":") ? `[${host}]` : host;
}

export function parseService(service: string): { secure: boolean; host: string; port: number } {
  const match = /^(xmpps?):\/\/(\[[^\]]+\]|[^:/]+)(?::(\d+))?\/?$/.exec(service);
  if (!match) throw new ConnectionError("protocol", `endpoint ${JSON.stringify(service)} is not xmpp://host:port or xmpps://host:port`);
  const secure = match[1] === "xmpps";
  const host = match[2]!.replace(/^\[|\]$/g, "");
  return { secure, host, port: match[3] ? Number(match[3]) : secure ? 5223 : 5222 };
}

const SECRET_ELEMENTS = new Set(["auth", "response", "challenge", "success"]);

/** Serialize for the transcript, with SASL payloads and registration passwords removed. */
export function redactForTranscript(element: Element): string {
  if (element.attrs.xmlns === NS.sasl && SECRET_ELEMENTS.has(element.name)) {
    const copy = xml(element.name, { ...element.attrs });
    if (element.getText()) copy.t("[redacted]");
    return copy.toString();
  }
  const query = element.getChild("query", NS.register);
  if (query?.getChild("password")) {
    const copy = parseXml(element.toString());
    const password = copy.getChild("query", NS.register)!.getChild("password")!;
    password.children = ["[redacted]"];
    return copy.toString();
  }
  return element.toString();
}

const TLS_TRUST_HINT = "pass the endpoint's certificate or the CA that signed it with --ca FILE (or tls.ca in the config); --insecure skips verification, and the report says so";

/** A TLS failure in plain words: what is wrong with the certificate or the handshake, and what to try. */
export function tlsFailure(err: NodeJS.ErrnoException & { reason?: string }, servername: string, socket?: tls.TLSSocket, direct = false): ConnectionError {
  const code = err.code ?? "";
  const peer = (() => {
    try {
      return socket?.getPeerCertificate();
    } catch {
      return undefined;
    }
  })();
  switch (code) {
    case "DEPTH_ZERO_SELF_SIGNED_CERT":
      return new ConnectionError("tls", `the endpoint's TLS certificate is self-signed and not trusted (${code})`, TLS_TRUST_HINT);
    case "SELF_SIGNED_CERT_IN_CHAIN":
      return new ConnectionError("tls", `the endpoint's TLS certificate chain ends in a self-signed CA that is not trusted (${code})`, TLS_TRUST_HINT);
    case "UNABLE_TO_VERIFY_LEAF_SIGNATURE":
    case "UNABLE_TO_GET_ISSUER_CERT":
    case "UNABLE_TO_GET_ISSUER_CERT_LOCALLY":
      return new ConnectionError("tls", `the endpoint's TLS certificate is not trusted: it was issued by a CA the suite does not know (${code})`, `${TLS_TRUST_HINT}; or the endpoint should also send its intermediate certificates`);
    case "ERR_TLS_CERT_ALTNAME_INVALID":
      return new ConnectionError("tls", `the endpoint's TLS certificate does not match the host name ${servername}${err.reason ? ` (${err.reason})` : ""}`,
        "set domain to the name the certificate is for, or tls.servername in the config to a name it lists; --insecure skips verification, and the report says so");
    case "CERT_HAS_EXPIRED":
      return new ConnectionError("tls", `the endpoint's TLS certificate has expired${peer?.valid_to ? ` (valid until ${peer.valid_to})` : ""}`,
        "renew the endpoint's certificate; --insecure skips verification, and the report says so");
    case "CERT_NOT_YET_VALID":
      return new ConnectionError("tls", `the endpoint's TLS certificate is not valid yet${peer?.valid_from ? ` (valid from ${peer.valid_from})` : ""}`, "check the clocks of the endpoint and of this machine");
    case "ERR_SSL_WRONG_VERSION_NUMBER":
    case "ERR_SSL_PACKET_LENGTH_TOO_LONG":
    case "ERR_SSL_HTTP_REQUEST":
      return new ConnectionError("tls", `the endpoint did not answer the TLS handshake with TLS (${code})`,
        direct ? "the port may speak plain XMPP: use xmpp://HOST:PORT (STARTTLS) instead of xmpps://" : "the endpoint's STARTTLS is broken: it said <proceed/> but does not speak TLS");
    case "ECONNRESET":
      return new ConnectionError("tls", "the endpoint closed the connection during the TLS handshake",
        "the endpoint may refuse the TLS versions or ciphers the suite offers (TLS 1.2 or later)" + (direct ? ", or the port may speak plain XMPP: try xmpp://" : ""));
    default:
      if (/alert/i.test(err.message)) {
        return new ConnectionError("tls", `the endpoint refused the TLS handshake: ${err.message}`, "the endpoint must accept TLS 1.2 or later with current ciphers");
      }
      return new ConnectionError("tls", `TLS handshake failed: ${err.message}${code ? ` (${code})` : ""}`);
  }
}

/** A TCP-level failure in plain words. */
function socketFailure(err: NodeJS.ErrnoException, host: string, port: number): ConnectionError {
  switch (err.code) {
    case "ECONNREFUSED":
      return new ConnectionError("refused", `connection to ${host}:${port} refused`, "is the endpoint running, and is the port right? (XMPP client ports are usually 5222 for xmpp://, 5223 for xmpps://)");
    case "ENOTFOUND":
    case "EAI_AGAIN":
    case "EAI_NONAME":
      return new ConnectionError("refused", `the host name ${host} does not resolve (${err.code})`, "check the host in endpoint (or --endpoint) and this machine's DNS");
    case "EHOSTUNREACH":
    case "ENETUNREACH":
      return new ConnectionError("refused", `${host}:${port} is unreachable (${err.code})`, "check the address and the network route (VPN, firewall)");
    case "ECONNRESET":
      return new ConnectionError("refused", `the connection to ${host}:${port} was reset`, "a firewall or the endpoint refuses the suite's address");
    default:
      return new ConnectionError("refused", `cannot connect to ${host}:${port}: ${err.message}`);
  }
}

function connectTcp(host: string, port: number, ms: number): Promise<net.Socket> {
  return new Promise<net.Socket>((resolve, reject) => {
    const sock = net.connect({ host, port });
    const fail = (error: ConnectionError) => {
      deadline.cancel();
      sock.removeAllListeners("connect");
      sock.destroy();
      reject(error);
    };
    const deadline = new Deadline(ms, () => fail(new TimeoutError(`TCP connect to ${host}:${port}`, ms, "is the host reachable and the port open? A firewall that drops packets looks like this")));
    sock.once("connect", () => {
      deadline.cancel();
      sock.removeAllListeners("error");
      // Stanzas are small back-to-back writes: Nagle would stall each by ~40 ms.
      sock.setNoDelay(true);
      resolve(sock);
    });
    sock.once("error", (err: NodeJS.ErrnoException) => fail(socketFailure(err, host, port)));
  });
}

/** TLS on an open TCP socket (direct TLS right after connect, or after <proceed/>), with its own deadline. */
function upgradeTls(raw: net.Socket, tlsOptions: TlsOptions | undefined, servername: string, ms: number, direct: boolean): Promise<tls.TLSSocket> {
  // The raw socket's own errors surface on the TLS socket; a listener keeps them from being unhandled.
  raw.on("error", () => undefined);
  return new Promise<tls.TLSSocket>((resolve, reject) => {
    const sock = tls.connect({ socket: raw, servername, ca: tlsOptions?.ca, rejectUnauthorized: !tlsOptions?.insecure, minVersion: "TLSv1.2" });
    const deadline = new Deadline(ms, () => {
      sock.removeAllListeners("secureConnect");
      sock.destroy();
      raw.destroy();
      reject(new TimeoutError("TLS handshake", ms, direct ? "the port may speak plain XMPP: try xmpp://HOST:PORT (STARTTLS)" : undefined));
    });
    sock.once("secureConnect", () => {
      deadline.cancel();
      sock.removeAllListeners("error");
      resolve(sock);
    });
    sock.once("error", (err: NodeJS.ErrnoException) => {
      deadline.cancel();
      const failure = tlsFailure(err, servername, sock, direct);
      sock.destroy();
      raw.destroy();
      reject(failure);
    });
  });
}

const STREAM_ERROR_HINTS: Record<string, string> = {
  "host-unknown": "the endpoint does not serve this domain: check domain in the config",
  "host-gone": "the endpoint no longer serves this domain: check domain in the config",
  "see-other-host": "the endpoint redirects clients to another host: point endpoint at it",
  "policy-violation": "the endpoint limits what the suite sends (rate or size): check its limits for test accounts",
  "resource-constraint": "the endpoint is out of resources: try again later, or with fewer --jobs",
  "system-shutdown": "the endpoint is shutting down: try again later",
  "conflict": "another session replaced this one: is the same account used by two runs at once?",
  "not-authorized": "the endpoint refuses the suite's credentials or address",
};

/** The certificate a TLS peer presented, as recorded in a run's evidence. */
export interface PeerCertificateInfo {
  /** SHA-256 of the leaf certificate's DER bytes, lowercase hex (openssl's -fingerprint -sha256 without colons). */
  sha256: string;
  subject: string;
  issuer: string;
  /** ISO 8601. */
  validFrom: string;
  validTo: string;
  /** Negotiated protocol, e.g. TLSv1.3. */
  protocol: string | null;
  /** The certificate verified against the trust the connection was given. */
  authorized: boolean;
}

/** Read the peer's leaf certificate of an established TLS socket; null when it presented none. */
export function describePeerCertificate(socket: tls.TLSSocket): PeerCertificateInfo | null {
  const peer = socket.getPeerCertificate();
  if (!peer || !peer.raw || peer.raw.length === 0) return null;
  const cert = new X509Certificate(peer.raw);
  const iso = (date: string) => {
    const parsed = new Date(date);
    return Number.isNaN(parsed.getTime()) ? date : parsed.toISOString();
  };
  return {
    sha256: createHash("sha256").update(peer.raw).digest("hex"),
    subject: cert.subject.split("\n").join(", "),
    issuer: cert.issuer.split("\n").join(", "),
    validFrom: iso(cert.validFrom),
    validTo: iso(cert.validTo),
    protocol: socket.getProtocol(),
    authorized: socket.authorized,
  };
}

interface Waiter {
  match: (el: Element) => boolean;
  resolve: (el: Element) => void;
  reject: (err: Error) => void;
  deadline: Deadline;
}

export interface ConnectionEvents {
  stanza: [Element];
  close: [ConnectionError | null];
}

const CLIENT_PORT_HINT = "is this the endpoint's XMPP client port? (usually 5222 with xmpp://, or 5223 with xmpps://)";

/**
 * One XMPP c2s stream. Use `XmppConnection.open()` then the negotiation steps, or `connectAndLogin()`
 * for the whole sequence. Stanzas that are not answers to `iq()` are emitted as "stanza".
 */
export class XmppConnection extends EventEmitter<ConnectionEvents> {
  readonly domain: string;
  readonly timeouts: PhaseTimeouts;
  jid = "";
  features: Element | null = null;
  secure = false;
  /** The endpoint's certificate, captured when TLS is established (direct TLS or STARTTLS). */
  peerCertificate: PeerCertificateInfo | null = null;
  authenticated = false;
  closed = false;
  private socket: net.Socket;
  /** The TCP socket under a STARTTLS upgrade: destroyed with the TLS socket, whatever happens. */
  private readonly rawSocket: net.Socket;
  private parser: StreamParser;
  private waiters = new Set<Waiter>();
  private pendingIq = new Map<string, { resolve: (el: Element) => void; reject: (err: Error) => void; deadline: Deadline }>();
  private closeReason: ConnectionError | null = null;
  private idCounter = 0;
  private readonly idPrefix = randomBytes(4).toString("hex");
  /** Whether the endpoint has opened its first stream: errors before that suggest the wrong port. */
  private streamOpened = false;
  private readonly maxInboundRate: number;
  private inboundBudget: number;
  private inboundAt = performance.now();

  private constructor(private readonly options: ConnectionOptions, socket: net.Socket, raw: net.Socket, secure: boolean) {
    super();
    this.domain = options.domain;
    this.timeouts = { ...DEFAULT_TIMEOUTS, ...options.timeouts };
    this.maxInboundRate = options.maxInboundBytesPerSecond ?? DEFAULT_MAX_INBOUND_BYTES_PER_SECOND;
    this.inboundBudget = this.maxInboundRate;
    this.parser = this.createParser();
    this.socket = socket;
    this.rawSocket = raw;
    this.secure = secure;
    this.attach(socket);
  }

  /** Open TCP (then TLS for xmpps://), send the stream header and wait for the stream features. */
  static async open(options: ConnectionOptions): Promise<XmppConnection> {
    const { secure, host, port } = parseService(options.service);
    const timeouts = { ...DEFAULT_TIMEOUTS, ...options.timeouts };
    const servername = options.tls?.servername ?? options.domain;
    const raw = await connectTcp(host, port, timeouts.connect);
    let socket: net.Socket = raw;
    if (secure) {
      const secured = await upgradeTls(raw, options.tls, servername, timeouts.tls, true);
      secured.setNoDelay(true);
      socket = secured;
    }
    const connection = new XmppConnection(options, socket, raw, secure);
    if (secure) connection.peerCertificate = describePeerCertificate(socket as tls.TLSSocket);
    try {
      await connection.openStream();
    } catch (err) {
      connection.destroy();
      throw err;
    }
    return connection;
  }

  private createParser(): StreamParser {
    const parser = new StreamParser({ maxStanzaBytes: this.options.maxStanzaBytes });
    parser.on("open", (header) => {
      if (header.name !== "stream:stream") {
        this.refuse("invalid-namespace", new ConnectionError("protocol", `the endpoint did not open an XMPP stream: its first element is <${header.name}>`, CLIENT_PORT_HINT));
        return;
      }
      this.streamOpened = true;
    });
    parser.on("stanza", (el) => this.receive(el));
    parser.on("close", () => this.shutdown(new ConnectionError("closed", "the endpoint closed the stream")));
    parser.on("error", (err) => {
      const kind = err.condition === "bad-format" ? "not-well-formed" : err.condition;
      const what = err.condition === "policy-violation" ? "the endpoint's stream exceeded a limit" : `the endpoint's stream was refused as ${err.condition}`;
      const hint = err.condition === "policy-violation" ? "raise maxStanzaBytes in the config if the endpoint's stanzas are legitimately this large"
        : err.condition === "restricted-xml" ? "the endpoint (or a proxy in front of it) must not send DTDs, comments, processing instructions or entity references; this is its defect"
        : this.streamOpened ? undefined : CLIENT_PORT_HINT;
      this.refuse(err.condition, new ConnectionError(kind, `${what}: ${err.message}`, hint));
    });
    return parser;
  }

  private readonly onData = (chunk: Buffer) => {
    if (this.closed) return;
    if (!this.chargeInbound(chunk.length)) return;
    try {
      this.parser.write(chunk);
    } catch (err) {
      // A listener of the suite failed on this input: the suite's own error, not the endpoint's.
      this.shutdown(new ConnectionError("internal", `the suite failed while handling the endpoint's data: ${(err as Error).message || String(err)}`));
    }
  };
  private readonly onError = (err: Error) => this.shutdown(new ConnectionError("closed", `connection error: ${err.message}`));
  private readonly onClose = () => this.shutdown(new ConnectionError("closed", this.streamOpened ? "the endpoint closed the connection" : "the endpoint closed the connection before opening an XMPP stream", this.streamOpened ? undefined : CLIENT_PORT_HINT));

  /** Token bucket of inbound bytes; false (and the connection ends) when the endpoint sends too fast. */
  private chargeInbound(bytes: number): boolean {
    const now = performance.now();
    this.inboundBudget = Math.min(this.maxInboundRate, this.inboundBudget + ((now - this.inboundAt) * this.maxInboundRate) / 1000);
    this.inboundAt = now;
    this.inboundBudget -= bytes;
    if (this.inboundBudget >= 0) return true;
    this.refuse("policy-violation", new ConnectionError("policy-violation",
      `the endpoint sent data faster than the limit of ${this.maxInboundRate} bytes per second`,
      "raise maxInboundBytesPerSecond in the config if this rate is legitimate"));
    return false;
  }

  private attach(socket: net.Socket): void {
    socket.on("data", this.onData);
    socket.on("error", this.onError);
    socket.on("close", this.onClose);
  }

  private detach(socket: net.Socket): void {
    socket.off("data", this.onData);
    socket.off("error", this.onError);
    socket.off("close", this.onClose);
  }

  /** Send the stream header and wait for the features (used at start and after each restart). */
  async openStream(): Promise<Element> {
    this.parser.restart();
    this.writeRaw(`<?xml version='1.0'?><stream:stream to='${this.domain}' version='1.0' xml:lang='en' xmlns='jabber:client' xmlns:stream='${NS.stream}'>`);
    this.features = await this.nextElement((el) => el.name === "stream:features", this.timeouts.stream, "stream features");
    return this.features;
  }

  hasFeature(name: string, xmlns: string): boolean {
    return Boolean(this.features?.getChild(name, xmlns));
  }

  mechanisms(): string[] {
    return this.features?.getChild("mechanisms", NS.sasl)?.getChildren("mechanism").map((m) => m.getText()) ?? [];
  }

  async startTls(): Promise<void> {
    this.send(xml("starttls", { xmlns: NS.tls }));
    const answer = await this.nextElement((el) => el.attrs.xmlns === NS.tls, this.timeouts.tls, "STARTTLS");
    if (answer.name !== "proceed") {
      const error = new ConnectionError("tls", `the endpoint answered STARTTLS with <${answer.name}/>`, "the endpoint cannot start TLS: check its TLS configuration (certificate and key)");
      this.shutdown(error);
      throw error;
    }
    const raw = this.socket;
    this.detach(raw);
    const servername = this.options.tls?.servername ?? this.domain;
    let secured: tls.TLSSocket;
    try {
      secured = await upgradeTls(raw, this.options.tls, servername, this.timeouts.tls, false);
    } catch (err) {
      this.shutdown(err as ConnectionError);
      throw err;
    }
    if (this.closed) {
      secured.destroy();
      throw this.closeReason;
    }
    secured.setNoDelay(true);
    this.socket = secured;
    this.secure = true;
    this.peerCertificate = describePeerCertificate(secured);
    this.attach(secured);
    await this.openStream();
  }

  /** XEP-0077 in-band registration; rejects with StanzaError when the server refuses. */
  async register(username: string, password: string, phone?: string): Promise<void> {
    const fields = [xml("username", {}, username), xml("password", {}, password)];
    if (phone !== undefined) fields.push(xml("phone", {}, phone));
    await this.iq(xml("iq", { type: "set", to: this.domain }, xml("query", { xmlns: NS.register }, ...fields)));
  }

  async authenticate(username: string, password: string, mechanism: "SCRAM-SHA-1" | "PLAIN" = "SCRAM-SHA-1"): Promise<void> {
    const saslAnswer = () => this.nextElement((el) => el.attrs.xmlns === NS.sasl, this.timeouts.sasl, "SASL");
    const failureOf = (el: Element) => {
      if (el.name !== "failure") return new ConnectionError("auth", `authentication failed: the endpoint answered with <${el.name}/> out of turn`);
      const condition = el.children.find((c): c is Element => typeof c !== "string")?.name ?? "unknown";
      const text = el.getChildText("text");
      return new ConnectionError("auth", `authentication failed: ${condition}${text ? ` (${JSON.stringify(text)})` : ""}`,
        condition === "not-authorized" ? "check the actor's username and password" : condition === "invalid-mechanism" ? `the endpoint does not accept ${mechanism}` : undefined);
    };
    const refuse = (error: ConnectionError): never => {
      this.shutdown(error);
      throw error;
    };
    if (mechanism === "PLAIN") {
      this.send(xml("auth", { xmlns: NS.sasl, mechanism }, Buffer.from(`\0${username}\0${password}`).toString("base64")));
      const answer = await saslAnswer();
      if (answer.name !== "success") throw failureOf(answer);
    } else {
      const scram = new ScramClient(username, password);
      this.send(xml("auth", { xmlns: NS.sasl, mechanism }, Buffer.from(scram.first()).toString("base64")));
      const challenge = await saslAnswer();
      if (challenge.name === "success") {
        refuse(new ConnectionError("auth", "authentication failed: the endpoint claimed SCRAM success before the client proved anything, so it cannot prove it knows the password", "the endpoint's SCRAM-SHA-1 is broken"));
      }
      if (challenge.name !== "challenge") throw failureOf(challenge);
      let response: string;
      try {
        response = scram.final(Buffer.from(challenge.getText(), "base64").toString());
      } catch (err) {
        return refuse(new ConnectionError("auth", `authentication failed: ${(err as Error).message}`));
      }
      this.send(xml("response", { xmlns: NS.sasl }, Buffer.from(response).toString("base64")));
      const outcome = await saslAnswer();
      if (outcome.name !== "success") throw failureOf(outcome);
      try {
        scram.verifyServerFinal(Buffer.from(outcome.getText(), "base64").toString());
      } catch (err) {
        refuse(new ConnectionError("auth", `authentication failed: ${(err as Error).message}`, "the endpoint is not the server that holds the account's password (or its SCRAM is broken)"));
      }
    }
    this.authenticated = true;
    await this.openStream();
  }

  async bind(resource?: string): Promise<string> {
    const bind = xml("bind", { xmlns: NS.bind }, ...(resource ? [xml("resource", {}, resource)] : []));
    const result = await this.iq(xml("iq", { type: "set" }, bind), this.timeouts.bind, "resource binding");
    const jid = result.getChild("bind", NS.bind)?.getChildText("jid");
    if (!jid) throw new ConnectionError("protocol", "the resource binding result carries no <jid/>");
    this.jid = jid;
    return jid;
  }

  /** The usual sequence: STARTTLS, optional registration, SASL, bind. */
  static async connectAndLogin(options: ConnectionOptions, login: LoginOptions): Promise<XmppConnection> {
    const connection = await XmppConnection.open(options);
    try {
      if (!connection.secure) {
        if (!connection.hasFeature("starttls", NS.tls)) {
          throw new ConnectionError("tls", "the endpoint does not offer STARTTLS", "TPC/1 requires TLS; check the endpoint's TLS configuration, or use xmpps:// if the port speaks direct TLS");
        }
        await connection.startTls();
      }
      if (login.register) await connection.register(login.username, login.password, login.register.phone);
      await connection.authenticate(login.username, login.password, login.mechanism);
      await connection.bind(login.resource);
      return connection;
    } catch (err) {
      connection.destroy();
      throw err;
    }
  }

  nextId(): string {
    return `${this.idPrefix}-${++this.idCounter}`;
  }

  send(element: Element): void {
    if (this.closed) throw this.closeReason ?? new ConnectionError("closed", "the connection is closed");
    this.options.onTraffic?.("out", redactForTranscript(element), element);
    this.writeRaw(element.toString());
  }

  /** Several stanzas in one socket write, so that they reach the peer together. */
  sendMany(elements: Element[]): void {
    if (this.closed) throw this.closeReason ?? new ConnectionError("closed", "the connection is closed");
    for (const element of elements) this.options.onTraffic?.("out", redactForTranscript(element), element);
    this.writeRaw(elements.map((e) => e.toString()).join(""));
  }

  /** Bytes as they are: for malformed-input cases. */
  sendRaw(text: string): void {
    if (this.closed) throw this.closeReason ?? new ConnectionError("closed", "the connection is closed");
    this.writeRaw(text);
  }

  private writeRaw(text: string): void {
    if (!this.socket.destroyed && this.socket.writable) this.socket.write(text);
  }

  /** Send an IQ and resolve with the result, or reject with StanzaError / TimeoutError. */
  iq(element: Element, timeout = this.timeouts.iq, phase?: string): Promise<Element> {
    element.attrs.id ??= this.nextId();
    const id = element.attrs.id as string;
    return new Promise<Element>((resolve, reject) => {
      const deadline = new Deadline(timeout, () => {
        if (this.pendingIq.get(id)?.deadline !== deadline) return;
        this.pendingIq.delete(id);
        reject(new TimeoutError(phase ?? `IQ ${describeIq(element)}`, timeout));
      });
      this.pendingIq.set(id, { resolve, reject, deadline });
      try {
        this.send(element);
      } catch (err) {
        deadline.cancel();
        this.pendingIq.delete(id);
        reject(err);
      }
    });
  }

  /** Wait for the next element that matches, ahead of normal dispatch (negotiation and probes). */
  nextElement(match: (el: Element) => boolean, timeout: number, phase: string): Promise<Element> {
    if (this.closed) return Promise.reject(this.closeReason);
    return new Promise<Element>((resolve, reject) => {
      const waiter: Waiter = {
        match,
        resolve,
        reject,
        deadline: new Deadline(timeout, () => {
          if (!this.waiters.delete(waiter)) return;
          reject(new TimeoutError(phase, timeout));
        }),
      };
      this.waiters.add(waiter);
    });
  }

  private receive(element: Element): void {
    if (this.closed) return;
    if (!this.chargeInbound(STANZA_COST_BYTES)) return;
    try {
      this.dispatch(element);
    } catch (err) {
      // The suite's own handler failed on this stanza: an internal error of the case, not the endpoint's.
      this.shutdown(new ConnectionError("internal", `the suite failed while handling <${element.name}> from the endpoint: ${(err as Error).message || String(err)}`));
    }
  }

  private dispatch(element: Element): void {
    this.options.onTraffic?.("in", redactForTranscript(element), element);
    if (element.name === "stream:error") {
      const condition = element.children.find((c): c is Element => typeof c !== "string" && c.attrs.xmlns === NS.streams && c.name !== "text")?.name ?? "undefined-condition";
      const text = element.getChildText("text", NS.streams);
      const redirect = condition === "see-other-host" ? element.getChildText("see-other-host", NS.streams) : null;
      this.shutdown(new ConnectionError("stream-error", `the server ended the stream: ${condition}${text ? ` (${JSON.stringify(text)})` : ""}${redirect ? ` to ${redirect}` : ""}`, STREAM_ERROR_HINTS[condition]));
      return;
    }
    for (const waiter of this.waiters) {
      if (waiter.match(element)) {
        waiter.deadline.cancel();
        this.waiters.delete(waiter);
        waiter.resolve(element);
        return;
      }
    }
    if (element.name === "iq" && (element.attrs.type === "result" || element.attrs.type === "error")) {
      const pending = this.pendingIq.get(element.attrs.id);
      if (pending) {
        pending.deadline.cancel();
        this.pendingIq.delete(element.attrs.id);
        if (element.attrs.type === "result") pending.resolve(element);
        else pending.reject(StanzaError.fromElement(element));
        return;
      }
    }
    this.emit("stanza", element);
  }

  /** End a stream the suite refuses: a stream error to the endpoint, then the connection ends. */
  private refuse(condition: string, reason: ConnectionError): void {
    if (this.closed) return;
    this.writeRaw(`<stream:error><${condition} xmlns='${NS.streams}'/></stream:error></stream:stream>`);
    this.shutdown(reason, true);
  }

  /**
   * Fail every waiter and pending IQ with `reason` and end the connection. The socket is destroyed
   * at once, or (linger) after the stream error had a moment to leave, reading nothing meanwhile.
   */
  private shutdown(reason: ConnectionError, linger = false): void {
    if (this.closed) return;
    this.closed = true;
    this.closeReason = reason;
    this.parser.stop();
    for (const waiter of this.waiters) {
      waiter.deadline.cancel();
      waiter.reject(reason);
    }
    this.waiters.clear();
    for (const pending of this.pendingIq.values()) {
      pending.deadline.cancel();
      pending.reject(reason);
    }
    this.pendingIq.clear();
    const socket = this.socket;
    if (linger && !socket.destroyed) {
      socket.pause();
      socket.end();
      const timer = setTimeout(() => this.destroySockets(), LINGER_MS);
      socket.once("close", () => {
        clearTimeout(timer);
        this.destroySockets();
      });
    } else {
      this.destroySockets();
    }
    try {
      this.emit("close", reason);
    } catch (err) {
      // A close listener of the suite failed: surface it as the uncaught error it is (the runner
      // gives it to the case it belongs to), not from inside the socket handler that got here.
      queueMicrotask(() => {
        throw err;
      });
    }
  }

  private destroySockets(): void {
    this.socket.destroy();
    this.rawSocket.destroy();
  }

  /** Close the stream politely; the socket is destroyed whatever the server does. */
  async close(): Promise<void> {
    if (this.closed) return;
    const closedBySelf = new ConnectionError("closed", "closed by the suite");
    const socket = this.socket;
    if (!socket.destroyed) await new Promise<void>((resolve) => {
      // Bounded, and not unref'd: a wait that nothing else keeps alive must still end.
      const timer = setTimeout(resolve, 1000);
      socket.once("close", () => {
        clearTimeout(timer);
        resolve();
      });
      this.writeRaw("</stream:stream>");
      socket.end();
    });
    this.shutdown(closedBySelf);
  }

  /** Drop the connection at once (teardown after an error). */
  destroy(): void {
    this.shutdown(new ConnectionError("closed", "closed by the suite"));
  }
}

function describeIq(element: Element): string {
  const child = element.children.find((c): c is Element => typeof c !== "string");
  return child ? `${element.attrs.type} ${child.name} (${child.attrs.xmlns ?? "?"})` : String(element.attrs.type);
}
