// The suite's own XMPP client connection. It talks to servers the suite does not trust, so it owns
// the whole lifecycle: no auto-reconnect, a deadline on every phase, its own STARTTLS step (so a CA
// and servername can be passed), SCRAM with server-signature verification, a stanza size limit,
// and sockets destroyed on teardown. Every failure is a typed error; nothing is thrown from a
// socket handler.
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
  | "refused" | "timeout" | "tls" | "stream-error" | "auth" | "closed" | "protocol" | "not-well-formed";

export class ConnectionError extends Error {
  constructor(readonly kind: ConnectionFailureKind, message: string, readonly hint?: string) {
    super(message);
    this.name = "ConnectionError";
  }
}

export class TimeoutError extends ConnectionError {
  constructor(readonly phase: string, readonly ms: number) {
    super("timeout", `${phase} did not answer within ${formatMs(ms)}`);
    this.name = "TimeoutError";
  }
}

function formatMs(ms: number): string {
  return ms >= 1000 && ms % 1000 === 0 ? `${ms / 1000} s` : `${ms} ms`;
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

function tlsFailure(err: NodeJS.ErrnoException, servername: string): ConnectionError {
  const code = err.code ?? "";
  if (code === "DEPTH_ZERO_SELF_SIGNED_CERT" || code === "SELF_SIGNED_CERT_IN_CHAIN" || code === "UNABLE_TO_VERIFY_LEAF_SIGNATURE" || code === "UNABLE_TO_GET_ISSUER_CERT_LOCALLY") {
    return new ConnectionError("tls", `TLS certificate is not trusted (${code})`, "pass the endpoint's CA certificate with --ca FILE (or tls.ca in the config)");
  }
  if (code === "ERR_TLS_CERT_ALTNAME_INVALID") {
    return new ConnectionError("tls", `TLS certificate does not match the host name ${servername}`, "set the right domain, or tls.servername in the config");
  }
  if (code === "CERT_HAS_EXPIRED") return new ConnectionError("tls", "TLS certificate has expired", "renew the endpoint's certificate");
  return new ConnectionError("tls", `TLS handshake failed: ${err.message}`);
}

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
  timer: NodeJS.Timeout;
}

export interface ConnectionEvents {
  stanza: [Element];
  close: [ConnectionError | null];
}

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
  private parser: StreamParser;
  private waiters = new Set<Waiter>();
  private pendingIq = new Map<string, { resolve: (el: Element) => void; reject: (err: Error) => void; timer: NodeJS.Timeout }>();
  private closeReason: ConnectionError | null = null;
  private idCounter = 0;
  private readonly idPrefix = randomBytes(4).toString("hex");

  private constructor(private readonly options: ConnectionOptions, socket: net.Socket, secure: boolean) {
    super();
    this.domain = options.domain;
    this.timeouts = { ...DEFAULT_TIMEOUTS, ...options.timeouts };
    this.parser = this.createParser();
    this.socket = socket;
    this.secure = secure;
    this.attach(socket);
  }

  /** Open TCP (or direct TLS), send the stream header and wait for the stream features. */
  static async open(options: ConnectionOptions): Promise<XmppConnection> {
    const { secure, host, port } = parseService(options.service);
    const timeouts = { ...DEFAULT_TIMEOUTS, ...options.timeouts };
    const servername = options.tls?.servername ?? options.domain;
    const socket = await new Promise<net.Socket>((resolve, reject) => {
      const sock = secure
        ? tls.connect({ host, port, servername, ca: options.tls?.ca, rejectUnauthorized: !options.tls?.insecure, minVersion: "TLSv1.2" })
        : net.connect({ host, port });
      const timer = setTimeout(() => {
        sock.destroy();
        reject(new TimeoutError(`TCP connect to ${host}:${port}`, timeouts.connect));
      }, timeouts.connect);
      sock.once(secure ? "secureConnect" : "connect", () => {
        clearTimeout(timer);
        // Stanzas are small back-to-back writes: Nagle would stall each by ~40 ms.
        sock.setNoDelay(true);
        sock.removeAllListeners("error");
        resolve(sock);
      });
      sock.once("error", (err: NodeJS.ErrnoException) => {
        clearTimeout(timer);
        sock.destroy();
        if (err.code === "ECONNREFUSED") reject(new ConnectionError("refused", `connection to ${host}:${port} refused`, "is the endpoint running, and is the port right?"));
        else if (secure) reject(tlsFailure(err, servername));
        else reject(new ConnectionError("refused", `cannot connect to ${host}:${port}: ${err.message}`));
      });
    });
    const connection = new XmppConnection(options, socket, secure);
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
    parser.on("stanza", (el) => this.receive(el));
    parser.on("close", () => this.shutdown(new ConnectionError("closed", "the server closed the stream")));
    parser.on("error", (err) => {
      this.shutdown(new ConnectionError(err.condition === "not-well-formed" ? "not-well-formed" : "protocol", `the server's stream is unacceptable: ${err.message}`));
    });
    return parser;
  }

  private attach(socket: net.Socket): void {
    socket.on("data", (chunk: Buffer) => this.parser.write(chunk));
    socket.on("error", (err) => this.shutdown(new ConnectionError("closed", `connection error: ${err.message}`)));
    socket.on("close", () => this.shutdown(new ConnectionError("closed", "the connection was closed")));
  }

  private detach(socket: net.Socket): void {
    socket.removeAllListeners("data");
    socket.removeAllListeners("error");
    socket.removeAllListeners("close");
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
    if (answer.name !== "proceed") throw new ConnectionError("tls", `server answered STARTTLS with <${answer.name}/>`);
    const raw = this.socket;
    this.detach(raw);
    const servername = this.options.tls?.servername ?? this.domain;
    const secured = await new Promise<tls.TLSSocket>((resolve, reject) => {
      const sock = tls.connect({ socket: raw, servername, ca: this.options.tls?.ca, rejectUnauthorized: !this.options.tls?.insecure, minVersion: "TLSv1.2" });
      const timer = setTimeout(() => {
        sock.destroy();
        reject(new TimeoutError("TLS handshake", this.timeouts.tls));
      }, this.timeouts.tls);
      sock.once("secureConnect", () => {
        clearTimeout(timer);
        sock.removeAllListeners("error");
        resolve(sock);
      });
      sock.once("error", (err: NodeJS.ErrnoException) => {
        clearTimeout(timer);
        sock.destroy();
        reject(tlsFailure(err, servername));
      });
    }).catch((err: ConnectionError) => {
      this.shutdown(err);
      throw err;
    });
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
      const condition = el.children.find((c): c is Element => typeof c !== "string")?.name ?? "unknown";
      return new ConnectionError("auth", `authentication failed: ${condition}`, condition === "not-authorized" ? "check the actor's username and password" : undefined);
    };
    if (mechanism === "PLAIN") {
      this.send(xml("auth", { xmlns: NS.sasl, mechanism }, Buffer.from(`\0${username}\0${password}`).toString("base64")));
      const answer = await saslAnswer();
      if (answer.name !== "success") throw failureOf(answer);
    } else {
      const scram = new ScramClient(username, password);
      this.send(xml("auth", { xmlns: NS.sasl, mechanism }, Buffer.from(scram.first()).toString("base64")));
      const challenge = await saslAnswer();
      if (challenge.name !== "challenge") throw failureOf(challenge);
      let response: string;
      try {
        response = scram.final(Buffer.from(challenge.getText(), "base64").toString());
      } catch (err) {
        throw new ConnectionError("auth", (err as Error).message);
      }
      this.send(xml("response", { xmlns: NS.sasl }, Buffer.from(response).toString("base64")));
      const outcome = await saslAnswer();
      if (outcome.name !== "success") throw failureOf(outcome);
      try {
        scram.verifyServerFinal(Buffer.from(outcome.getText(), "base64").toString());
      } catch (err) {
        const error = new ConnectionError("auth", (err as Error).message);
        this.shutdown(error);
        throw error;
      }
    }
    this.authenticated = true;
    await this.openStream();
  }

  async bind(resource?: string): Promise<string> {
    const bind = xml("bind", { xmlns: NS.bind }, ...(resource ? [xml("resource", {}, resource)] : []));
    const result = await this.iq(xml("iq", { type: "set" }, bind), this.timeouts.bind);
    const jid = result.getChild("bind", NS.bind)?.getChildText("jid");
    if (!jid) throw new ConnectionError("protocol", "bind result carries no <jid/>");
    this.jid = jid;
    return jid;
  }

  /** The usual sequence: STARTTLS, optional registration, SASL, bind. */
  static async connectAndLogin(options: ConnectionOptions, login: LoginOptions): Promise<XmppConnection> {
    const connection = await XmppConnection.open(options);
    try {
      if (!connection.secure) {
        if (!connection.hasFeature("starttls", NS.tls)) {
          throw new ConnectionError("tls", "the endpoint does not offer STARTTLS", "TPC/1 requires TLS; check the endpoint's TLS configuration");
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
    if (!this.socket.destroyed) this.socket.write(text);
  }

  /** Send an IQ and resolve with the result, or reject with StanzaError / TimeoutError. */
  iq(element: Element, timeout = this.timeouts.iq): Promise<Element> {
    element.attrs.id ??= this.nextId();
    const id = element.attrs.id as string;
    return new Promise<Element>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.pendingIq.delete(id);
        reject(new TimeoutError(`IQ ${describeIq(element)}`, timeout));
      }, timeout);
      this.pendingIq.set(id, { resolve, reject, timer });
      try {
        this.send(element);
      } catch (err) {
        clearTimeout(timer);
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
        timer: setTimeout(() => {
          this.waiters.delete(waiter);
          reject(new TimeoutError(phase, timeout));
        }, timeout),
      };
      this.waiters.add(waiter);
    });
  }

  private receive(element: Element): void {
    this.options.onTraffic?.("in", redactForTranscript(element), element);
    if (element.name === "stream:error") {
      const condition = element.children.find((c): c is Element => typeof c !== "string" && c.attrs.xmlns === NS.streams)?.name ?? "undefined-condition";
      this.shutdown(new ConnectionError("stream-error", `the server ended the stream: ${condition}`));
      return;
    }
    for (const waiter of this.waiters) {
      if (waiter.match(element)) {
        clearTimeout(waiter.timer);
        this.waiters.delete(waiter);
        waiter.resolve(element);
        return;
      }
    }
    if (element.name === "iq" && (element.attrs.type === "result" || element.attrs.type === "error")) {
      const pending = this.pendingIq.get(element.attrs.id);
      if (pending) {
        clearTimeout(pending.timer);
        this.pendingIq.delete(element.attrs.id);
        if (element.attrs.type === "result") pending.resolve(element);
        else pending.reject(StanzaError.fromElement(element));
        return;
      }
    }
    this.emit("stanza", element);
  }

  private shutdown(reason: ConnectionError): void {
    if (this.closed) return;
    this.closed = true;
    this.closeReason = reason;
    this.parser.stop();
    for (const waiter of this.waiters) {
      clearTimeout(waiter.timer);
      waiter.reject(reason);
    }
    this.waiters.clear();
    for (const pending of this.pendingIq.values()) {
      clearTimeout(pending.timer);
      pending.reject(reason);
    }
    this.pendingIq.clear();
    this.socket.destroy();
    this.emit("close", reason);
  }

  /** Close the stream politely; the socket is destroyed whatever the server does. */
  async close(): Promise<void> {
    if (this.closed) return;
    const closedBySelf = new ConnectionError("closed", "closed by the suite");
    const socket = this.socket;
    await new Promise<void>((resolve) => {
      const timer = setTimeout(resolve, 1000);
      timer.unref();
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
