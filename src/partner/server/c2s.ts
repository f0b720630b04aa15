// One client-to-server stream of the reference partner: stream headers and errors, STARTTLS
// (required), SASL (SCRAM-SHA-1 and PLAIN, only over TLS), in-band registration (only over TLS,
// before authentication), resource binding, then routing. Each connection's elements are handled
// strictly one after the other, in arrival order, even when handling is asynchronous.
// Transport faults (faults.ts) switched here: no-starttls, plain-before-tls, out-of-order-delivery.
import { createHmac, randomBytes, timingSafeEqual } from "node:crypto";
import type net from "node:net";
import tls from "node:tls";
import { ScramServer, deriveCredentials } from "../../protocol/scram.ts";
import type { ScramCredentials } from "../../protocol/scram.ts";
import { StreamParser } from "../../protocol/stream-parser.ts";
import { NS, xml } from "../../protocol/xml.ts";
import type { Element } from "../../protocol/xml.ts";
import type { Account } from "./accounts.ts";
import { iqResult, serverError } from "./context.ts";
import type { ServerContext } from "./context.ts";
import { hasFault } from "./faults.ts";
import { handleRegistration } from "./register.ts";
import { presenceGone, routeStanza } from "./router.ts";
import type { RoutableSession } from "./router.ts";

export interface C2sSessionOptions {
  ctx: ServerContext;
  socket: net.Socket;
  secureContext: tls.SecureContext;
  /** Secret for the stable fake SCRAM salts of unknown users (no account enumeration). */
  fakeSaltKey: Buffer;
  label: string;
  maxStanzaBytes?: number;
  /** How long a closing socket may take to finish before it is destroyed. */
  lingerMs?: number;
}

type SaslState =
  | { step: "idle" }
  | { step: "scram-first" }
  | { step: "scram-final"; scram: ScramServer; account: Account | undefined; credentials: ScramCredentials };

export type StreamErrorCondition =
  | "bad-format" | "conflict" | "host-unknown" | "internal-server-error" | "invalid-namespace" | "not-authorized"
  | "not-well-formed" | "policy-violation" | "restricted-xml" | "system-shutdown" | "unsupported-stanza-type" | "unsupported-version";

const STANZAS = new Set(["iq", "message", "presence"]);
const SECRET_SASL = new Set(["auth", "response", "challenge", "success"]);

export class C2sSession implements RoutableSession {
  jid = "";
  bare = "";
  resource = "";
  available = false;
  /** Resolves when the socket has closed and the session has left the registry. */
  readonly closed: Promise<void>;
  private readonly ctx: ServerContext;
  private readonly options: C2sSessionOptions;
  private socket: net.Socket;
  private readonly parser: StreamParser;
  private secure = false;
  private authenticated: Account | null = null;
  private bound = false;
  private headerSent = false;
  private sasl: SaslState = { step: "idle" };
  private queue: Promise<void> = Promise.resolve();
  /** Fault out-of-order-delivery: messages of the current input chunk, held until its end. */
  private readonly held: Element[] = [];
  private readonly reorder: boolean;
  private closing = false;
  private lingerTimer: NodeJS.Timeout | null = null;
  private resolveClosed!: () => void;

  constructor(options: C2sSessionOptions) {
    this.options = options;
    this.ctx = options.ctx;
    this.socket = options.socket;
    this.closed = new Promise((resolve) => (this.resolveClosed = resolve));
    this.reorder = hasFault(this.ctx, "out-of-order-delivery");
    this.parser = new StreamParser({ maxStanzaBytes: options.maxStanzaBytes });
    this.parser.on("open", (header) => this.enqueue(() => this.onStreamOpen(header)));
    this.parser.on("stanza", (element) => this.enqueue(() => this.onElement(element)));
    this.parser.on("close", () => this.enqueue(() => this.onStreamClose()));
    this.parser.on("error", (err) => this.enqueue(() => this.streamError(err.condition, err.message)));
    this.attach(this.socket);
  }

  get account(): Account {
    if (!this.authenticated) throw new Error("session is not authenticated");
    return this.authenticated;
  }

  setAvailable(available: boolean): void {
    this.available = available;
  }

  /** Write one element to the client. Ignored once the stream is closing. */
  send(element: Element): void {
    if (this.closing) return;
    this.logElement("out", element);
    this.write(element.toString());
  }

  /** End the stream with a stream error (server shutdown, replaced session) and wait for the socket to close. */
  end(condition: StreamErrorCondition, text?: string): Promise<void> {
    this.streamError(condition, text);
    return this.closed;
  }

  // ---- transport ----

  private readonly onData = (chunk: Buffer) => {
    if (this.closing) return;
    // The parser emits this chunk's elements synchronously, each queued as a task.
    this.parser.write(chunk);
    // Fault out-of-order-delivery: after the chunk's tasks and before the next chunk's, route the
    // messages the chunk carried, last first. No timer, and nothing waits on later input.
    if (this.reorder) this.enqueue(() => this.flushHeld());
  };
  private readonly onSocketError = (err: Error) => {
    this.ctx.log(`[${this.label}] socket error: ${err.message}`);
    this.socket.destroy();
  };
  private readonly onSocketClose = () => {
    if (this.lingerTimer) clearTimeout(this.lingerTimer);
    this.lingerTimer = null;
    this.closing = true;
    this.parser.stop();
    this.leave();
    this.ctx.log(`[${this.label}] closed`);
    this.resolveClosed();
  };

  private attach(socket: net.Socket): void {
    socket.on("data", this.onData);
    socket.on("error", this.onSocketError);
    socket.on("close", this.onSocketClose);
  }

  private write(text: string): void {
    if (!this.socket.destroyed && this.socket.writable) this.socket.write(text);
  }

  private get label(): string {
    return this.jid || this.options.label;
  }

  private logElement(direction: "in" | "out", element: Element): void {
    this.ctx.log(`[${this.label}] ${direction === "in" ? "<-" : "->"} ${redact(element)}`);
  }

  /** Run handlers one at a time in arrival order; a handler that throws ends the stream. */
  private enqueue(task: () => void | Promise<void>): void {
    this.queue = this.queue
      .then(() => (this.closing ? undefined : task()))
      .catch((err: Error) => {
        this.ctx.log(`[${this.label}] internal error: ${err.stack ?? err.message}`);
        this.streamError("internal-server-error");
      });
  }

  /** Close the stream (if open) and the socket; destroy it when the peer does not finish in time. */
  private closeTransport(): void {
    this.closing = true;
    this.parser.stop();
    this.leave();
    const socket = this.socket;
    socket.end();
    if (!socket.destroyed && !this.lingerTimer) {
      this.lingerTimer = setTimeout(() => socket.destroy(), this.options.lingerMs ?? 200);
    }
  }

  /** Leave the registry (no more routing to this session) and tell the user's other resources. */
  private leave(): void {
    if (!this.bound) return;
    this.bound = false;
    this.ctx.sessions.remove(this);
    presenceGone(this.ctx, this);
  }

  // ---- stream level ----

  private sendHeader(): void {
    const header = xml("stream:stream", {
      xmlns: NS.client,
      "xmlns:stream": NS.stream,
      from: this.ctx.domain,
      id: randomBytes(8).toString("hex"),
      version: "1.0",
      "xml:lang": "en",
    });
    // An opening tag only: the stream stays open.
    const open = header.toString().replace(/\/>$/, ">");
    this.ctx.log(`[${this.label}] -> ${open}`);
    this.write(`<?xml version='1.0'?>${open}`);
    this.headerSent = true;
  }

  private restartStream(): void {
    this.parser.restart();
    this.headerSent = false;
  }

  /** Fault out-of-order-delivery: route the held messages in reverse arrival order. */
  private flushHeld(): void {
    if (this.held.length === 0) return;
    const messages = this.held.splice(0).reverse();
    if (messages.length > 1) this.ctx.log(`[${this.label}] route ${messages.length} messages of one chunk in reverse order (fault out-of-order-delivery)`);
    // Messages are routed synchronously (routeStanza returns a promise only for component IQs).
    for (const message of messages) void routeStanza(this.ctx, this, message);
  }

  /** RFC 6120 §4.9: <stream:error/>, close the stream and the connection. */
  private streamError(condition: StreamErrorCondition, text?: string): void {
    if (this.closing) return;
    // Messages already read are routed before the stream ends, as without the fault.
    this.flushHeld();
    if (!this.headerSent) this.sendHeader();
    const error = xml(
      "stream:error",
      {},
      xml(condition, { xmlns: NS.streams }),
      ...(text ? [xml("text", { xmlns: NS.streams, "xml:lang": "en" }, text)] : []),
    );
    this.logElement("out", error);
    this.write(`${error.toString()}</stream:stream>`);
    this.closeTransport();
  }

  private onStreamOpen(header: Element): void {
    this.ctx.log(`[${this.label}] <- ${header.toString().replace(/\/>$/, ">")}`);
    if (header.name !== "stream:stream" || header.attrs["xmlns:stream"] !== NS.stream) {
      return this.streamError("invalid-namespace", "the stream element is not <stream:stream xmlns:stream='http://etherx.jabber.org/streams'>");
    }
    if (header.attrs.xmlns !== NS.client) return this.streamError("invalid-namespace", "the content namespace is not jabber:client");
    const to = header.attrs.to === undefined ? undefined : String(header.attrs.to).toLowerCase();
    if (to !== undefined && to !== this.ctx.domain) return this.streamError("host-unknown", `this server serves ${this.ctx.domain}`);
    if (!/^1\.\d+$/.test(String(header.attrs.version ?? ""))) return this.streamError("unsupported-version", "XMPP 1.0 streams only");
    this.sendHeader();
    this.send(this.features());
  }

  private features(): Element {
    if (this.authenticated) {
      return xml("stream:features", {}, xml("bind", { xmlns: NS.bind }), xml("session", { xmlns: NS.session }, xml("optional")));
    }
    const mechanisms = (...names: string[]) => xml("mechanisms", { xmlns: NS.sasl }, ...names.map((name) => xml("mechanism", {}, name)));
    if (!this.secure) {
      if (hasFault(this.ctx, "no-starttls")) {
        // TLS is optional: authentication and registration are offered in the clear (PLAIN is not).
        return xml("stream:features", {}, xml("starttls", { xmlns: NS.tls }), mechanisms("SCRAM-SHA-1"), xml("register", { xmlns: NS.registerFeature }));
      }
      const starttls = xml("starttls", { xmlns: NS.tls }, xml("required"));
      // PLAIN offered in the clear (and refused when used).
      if (hasFault(this.ctx, "plain-before-tls")) return xml("stream:features", {}, starttls, mechanisms("SCRAM-SHA-1", "PLAIN"));
      return xml("stream:features", {}, starttls);
    }
    return xml("stream:features", {}, mechanisms("SCRAM-SHA-1", "PLAIN"), xml("register", { xmlns: NS.registerFeature }));
  }

  /** TLS is negotiated, or optional under the fault no-starttls. */
  private get tlsSatisfied(): boolean {
    return this.secure || hasFault(this.ctx, "no-starttls");
  }

  private onStreamClose(): void {
    this.ctx.log(`[${this.label}] <- </stream:stream>`);
    this.flushHeld();
    this.write("</stream:stream>");
    this.closeTransport();
  }

  private onElement(element: Element): void | Promise<void> {
    this.logElement("in", element);
    const xmlns = element.attrs.xmlns as string | undefined;
    if (xmlns === NS.tls) return this.onTls(element);
    if (xmlns === NS.sasl) return this.onSasl(element);
    if (STANZAS.has(element.name) && (xmlns === undefined || xmlns === NS.client)) return this.onStanza(element);
    this.streamError("unsupported-stanza-type", `<${element.name}/> is not expected here`);
  }

  // ---- STARTTLS ----

  private onTls(element: Element): void {
    if (element.name !== "starttls" || this.secure || this.authenticated) {
      this.send(xml("failure", { xmlns: NS.tls }));
      this.write("</stream:stream>");
      this.closeTransport();
      return;
    }
    const raw = this.socket;
    // Nothing may reach the old parser: the next bytes are the TLS handshake.
    raw.removeListener("data", this.onData);
    raw.pause();
    this.restartStream();
    const proceed = xml("proceed", { xmlns: NS.tls });
    this.logElement("out", proceed);
    // Wrap only once <proceed/> has left through the plain socket.
    raw.write(proceed.toString(), () => {
      if (this.closing || raw.destroyed) return;
      raw.removeListener("error", this.onSocketError);
      raw.removeListener("close", this.onSocketClose);
      raw.on("error", () => undefined); // errors surface on the TLS socket
      const secured = new tls.TLSSocket(raw, { isServer: true, secureContext: this.options.secureContext });
      this.socket = secured;
      this.secure = true;
      this.attach(secured);
    });
  }

  // ---- SASL ----

  private saslFailure(condition: string, text?: string): void {
    this.sasl = { step: "idle" };
    this.send(xml("failure", { xmlns: NS.sasl }, xml(condition), ...(text ? [xml("text", { "xml:lang": "en" }, text)] : [])));
  }

  private onSasl(element: Element): void {
    if (this.authenticated) return this.streamError("policy-violation", "already authenticated");
    if (!this.tlsSatisfied) return this.saslFailure("encryption-required", "negotiate TLS (STARTTLS) before authenticating");
    const data = decodeBase64(element.getText());
    switch (element.name) {
      case "auth": {
        if (data === null) return this.saslFailure("incorrect-encoding");
        const mechanism = element.attrs.mechanism;
        if (mechanism === "PLAIN") return this.plain(data);
        if (mechanism === "SCRAM-SHA-1") {
          if (data !== "") return this.scramFirst(data);
          this.sasl = { step: "scram-first" };
          this.send(xml("challenge", { xmlns: NS.sasl }));
          return;
        }
        return this.saslFailure("invalid-mechanism");
      }
      case "response": {
        if (data === null) return this.saslFailure("incorrect-encoding");
        if (this.sasl.step === "scram-first") return this.scramFirst(data);
        if (this.sasl.step === "scram-final") return this.scramFinal(this.sasl, data);
        return this.saslFailure("malformed-request", "no authentication exchange is in progress");
      }
      case "abort":
        return this.saslFailure("aborted");
      default:
        return this.streamError("unsupported-stanza-type", `<${element.name}/> is not a SASL element a client sends`);
    }
  }

  private credentialsFor(username: string): { account: Account | undefined; credentials: ScramCredentials } {
    const account = this.ctx.accounts.get(username);
    if (account) return { account, credentials: account.credentials };
    // Unknown user: a stable fake salt, and a proof that never verifies (RFC 5802 §5.1, no enumeration).
    const salt = createHmac("sha256", this.options.fakeSaltKey).update(username.toLowerCase()).digest().subarray(0, 16);
    return { account: undefined, credentials: { salt, iterations: this.ctx.scramIterations, storedKey: randomBytes(20), serverKey: randomBytes(20) } };
  }

  private scramFirst(clientFirst: string): void {
    const scram = new ScramServer();
    let username: string;
    try {
      username = scram.start(clientFirst);
    } catch (err) {
      return this.saslFailure("malformed-request", (err as Error).message);
    }
    const { account, credentials } = this.credentialsFor(username);
    this.sasl = { step: "scram-final", scram, account, credentials };
    this.send(xml("challenge", { xmlns: NS.sasl }, Buffer.from(scram.challenge(credentials)).toString("base64")));
  }

  private scramFinal(state: Extract<SaslState, { step: "scram-final" }>, clientFinal: string): void {
    const serverFinal = state.scram.finish(clientFinal, state.credentials);
    if (!serverFinal || !state.account) return this.saslFailure("not-authorized");
    this.authenticationSucceeded(state.account, serverFinal);
  }

  private plain(message: string): void {
    const parts = message.split("\0");
    if (parts.length !== 3) return this.saslFailure("malformed-request", "PLAIN wants authzid NUL authcid NUL password");
    const [authzid, authcid, password] = parts as [string, string, string];
    const { account, credentials } = this.credentialsFor(authcid);
    const derived = deriveCredentials(password, credentials.iterations, credentials.salt);
    if (!account || !timingSafeEqual(derived.storedKey, credentials.storedKey)) return this.saslFailure("not-authorized");
    if (authzid && authzid.toLowerCase() !== `${account.username}@${this.ctx.domain}`) return this.saslFailure("invalid-authzid");
    this.authenticationSucceeded(account, null);
  }

  private authenticationSucceeded(account: Account, additionalData: string | null): void {
    this.sasl = { step: "idle" };
    this.authenticated = account;
    // The client's next bytes are a new stream header: restart before it can send them.
    this.restartStream();
    this.send(xml("success", { xmlns: NS.sasl }, ...(additionalData ? [Buffer.from(additionalData).toString("base64")] : [])));
  }

  // ---- stanzas ----

  private onStanza(stanza: Element): void | Promise<void> {
    if (!this.tlsSatisfied) return this.streamError("not-authorized", "negotiate TLS and authenticate first");
    if (!this.authenticated) {
      const query = stanza.name === "iq" ? stanza.getChild("query", NS.register) : undefined;
      if (!query) return this.streamError("not-authorized", "authenticate first (only in-band registration is allowed before)");
      delete stanza.attrs.from;
      this.send(handleRegistration(this.ctx, stanza, query));
      return;
    }
    if (!this.bound) {
      delete stanza.attrs.from;
      const bind = stanza.name === "iq" && stanza.attrs.type === "set" ? stanza.getChild("bind", NS.bind) : undefined;
      if (bind) return this.bind(stanza, bind);
      if (stanza.name === "iq" && stanza.attrs.type === "set" && stanza.getChild("session", NS.session)) return this.send(iqResult(stanza));
      return this.streamError("not-authorized", "bind a resource first");
    }
    if (this.reorder && stanza.name === "message") {
      this.held.push(stanza);
      return;
    }
    return routeStanza(this.ctx, this, stanza);
  }

  private bind(iq: Element, bind: Element): void {
    const account = this.account;
    const requested = bind.getChildText("resource")?.trim() ?? "";
    if (Buffer.byteLength(requested) > 1023 || /[\u0000-\u001f\u007f]/.test(requested)) {
      return this.send(serverError(this.ctx, iq, { type: "modify", condition: "bad-request", text: "the resource is not a valid JID resourcepart" }));
    }
    const resource = requested || randomBytes(6).toString("hex");
    const bare = `${account.username}@${this.ctx.domain}`;
    const full = `${bare}/${resource}`;
    const previous = this.ctx.sessions.get(full);
    if (previous) {
      // RFC 6120 §7.7.2.2: the new session wins; the old one ends with <conflict/>.
      this.ctx.sessions.remove(previous);
      void (previous as C2sSession).end("conflict", "replaced by a new session with the same resource");
    }
    this.jid = full;
    this.bare = bare;
    this.resource = resource;
    this.bound = true;
    this.ctx.sessions.add(this);
    this.send(iqResult(iq, xml("bind", { xmlns: NS.bind }, xml("jid", {}, full))));
  }
}

/** SASL payload: "" for an empty response ("=" or nothing), null when not base64. */
function decodeBase64(text: string): string | null {
  const compact = text.replace(/\s+/g, "");
  if (compact === "" || compact === "=") return "";
  if (compact.length % 4 !== 0 || !/^[A-Za-z0-9+/]+={0,2}$/.test(compact)) return null;
  return Buffer.from(compact, "base64").toString("utf8");
}

/** The element for the log, with SASL payloads and registration passwords removed. */
function redact(element: Element): string {
  if (element.attrs.xmlns === NS.sasl && SECRET_SASL.has(element.name) && element.getText()) {
    return xml(element.name, { ...element.attrs }, "[redacted]").toString();
  }
  const password = element.getChild("query", NS.register)?.getChild("password");
  if (password && password.getText()) {
    const saved = password.children;
    password.children = ["[redacted]"];
    const text = element.toString();
    password.children = saved;
    return text;
  }
  return element.toString();
}
