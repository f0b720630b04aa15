// XEP-0363 HTTP File Upload, client side (TPC/1 §6): find the service by disco, ask for a slot, and
// PUT/GET blobs over HTTPS. Used by the suite's steps and by the reflector, against servers the suite
// does not trust: TLS is verified (against `ca` when given, else the system store) unless the user
// turned verification off (`insecure`, the endpoint config's tls.insecure), every transfer has a
// deadline after which its socket is destroyed, and downloads have a size cap. Large bodies can be
// streamed both ways (a StreamedBody PUT, httpGetDigest), so memory stays at a chunk, not a blob.
import { createHash } from "node:crypto";
import http from "node:http";
import type { IncomingHttpHeaders } from "node:http";
import https from "node:https";
import { StanzaError } from "./stanza-error.ts";
import { NS, xml } from "./xml.ts";
import type { Element } from "./xml.ts";

/** What the helpers need of a connection: XmppConnection, or anything with the same `iq`. */
export interface IqSender {
  iq(element: Element, timeout?: number): Promise<Element>;
}

export interface UploadServiceInfo {
  /** The service's JID (from disco#items on the domain). */
  jid: string;
  /** max-file-size from the XEP-0363 §3 form; absent when the form or field is missing or not a byte count. */
  maxFileSize?: number;
  /** The max-file-size value as sent, when there is one (for reports when it is not a number). */
  maxFileSizeText?: string;
  /** The service's disco#info <query/>, for further checks (identity, other forms). */
  info: Element;
}

export interface SlotRequest {
  filename: string;
  /** Bytes that will be PUT (for TPC/1 media: the blob, i.e. plaintext size + 16). */
  size: number;
  contentType?: string;
}

export interface UploadSlot {
  putUrl: string;
  getUrl: string;
  /** Headers the service asks to be sent with the PUT (XEP-0363 §5: Authorization, Cookie, Expires only). */
  headers: Record<string, string>;
}

/** The service answered a slot request with something that is not a usable slot. */
export class UploadProtocolError extends Error {
  constructor(message: string, readonly stanza?: Element) {
    super(message);
    this.name = "UploadProtocolError";
  }
}

/** XEP-0363 §5: the only PUT headers a client passes on from a slot. */
const ALLOWED_PUT_HEADERS = new Map([
  ["authorization", "Authorization"],
  ["cookie", "Cookie"],
  ["expires", "Expires"],
]);

function children(el: Element, name: string, xmlns?: string): Element[] {
  return el.getChildElements().filter((c) => c.name === name && (xmlns === undefined || c.attrs.xmlns === xmlns));
}

/** The values of `field var=name` in an x-data form. */
function fieldValues(form: Element, name: string): string[] {
  const field = children(form, "field").find((f) => f.attrs.var === name);
  return field ? children(field, "value").map((v) => v.getText()) : [];
}

/** Read max-file-size from the upload form of a disco#info <query/>. */
export function readMaxFileSize(info: Element): { value?: number; text?: string } {
  const form = children(info, "x", NS.xdata).find((x) => fieldValues(x, "FORM_TYPE")[0] === NS.upload);
  const text = form ? fieldValues(form, "max-file-size")[0] : undefined;
  if (text === undefined) return {};
  const trimmed = text.trim();
  const value = /^\d{1,16}$/.test(trimmed) && Number.isSafeInteger(Number(trimmed)) ? Number(trimmed) : undefined;
  return { value, text };
}

/**
 * disco#items on `domain`, then disco#info on each item in order; the first that advertises
 * urn:xmpp:http:upload:0 is the service. Undefined when none does. An item whose disco#info fails
 * is skipped; a failing disco#items rejects (StanzaError / TimeoutError from the connection).
 */
export async function discoverUploadService(conn: IqSender, domain: string, timeout?: number): Promise<UploadServiceInfo | undefined> {
  const items = await conn.iq(xml("iq", { type: "get", to: domain }, xml("query", { xmlns: NS.discoItems })), timeout);
  const query = items.getChild("query", NS.discoItems);
  const jids = query ? children(query, "item").map((i) => i.attrs.jid as string | undefined).filter((j): j is string => !!j) : [];
  for (const jid of jids) {
    let reply: Element;
    try {
      reply = await conn.iq(xml("iq", { type: "get", to: jid }, xml("query", { xmlns: NS.discoInfo })), timeout);
    } catch (err) {
      if (err instanceof StanzaError) continue;
      throw err;
    }
    const info = reply.getChild("query", NS.discoInfo);
    if (!info || !children(info, "feature").some((f) => f.attrs.var === NS.upload)) continue;
    const max = readMaxFileSize(info);
    return { jid, info, ...(max.value !== undefined ? { maxFileSize: max.value } : {}), ...(max.text !== undefined ? { maxFileSizeText: max.text } : {}) };
  }
  return undefined;
}

/**
 * Ask `serviceJid` for a slot. Rejects with the connection's StanzaError when the service refuses
 * (see `fileTooLarge` for the over-limit case), and with UploadProtocolError when the result is not a
 * slot with an http(s) put and get URL.
 */
export async function requestSlot(conn: IqSender, serviceJid: string, request: SlotRequest, timeout?: number): Promise<UploadSlot> {
  const attrs: Record<string, string> = { xmlns: NS.upload, filename: request.filename, size: String(request.size) };
  if (request.contentType !== undefined) attrs["content-type"] = request.contentType;
  const reply = await conn.iq(xml("iq", { type: "get", to: serviceJid }, xml("request", attrs)), timeout);
  const slot = reply.getChild("slot", NS.upload);
  if (!slot) throw new UploadProtocolError("the slot request's result carries no <slot xmlns='urn:xmpp:http:upload:0'/>", reply);
  const put = slot.getChild("put");
  const get = slot.getChild("get");
  const putUrl = put?.attrs.url as string | undefined;
  const getUrl = get?.attrs.url as string | undefined;
  for (const [name, url] of [["put", putUrl], ["get", getUrl]] as const) {
    if (!url) throw new UploadProtocolError(`the slot has no <${name} url='…'/>`, reply);
    if (!isHttpUrl(url)) throw new UploadProtocolError(`the slot's ${name} URL ${JSON.stringify(url)} is not an http(s) URL`, reply);
  }
  const headers: Record<string, string> = {};
  for (const header of put ? children(put, "header") : []) {
    const name = ALLOWED_PUT_HEADERS.get(String(header.attrs.name ?? "").replace(/[\r\n]/g, "").toLowerCase());
    if (name) headers[name] = header.getText().replace(/[\r\n]/g, "");
  }
  return { putUrl: putUrl!, getUrl: getUrl!, headers };
}

/**
 * When `err` is a slot refusal with <file-too-large/> (XEP-0363 §4), what it says; undefined for any
 * other error. `maxFileSize` is absent when the element carries no usable <max-file-size/>.
 */
export function fileTooLarge(err: unknown): { maxFileSize?: number; condition?: string; type?: string } | undefined {
  if (!(err instanceof StanzaError)) return undefined;
  const element = err.stanza.getChild("error")?.getChild("file-too-large", NS.upload);
  if (!element) return undefined;
  const text = element.getChildText("max-file-size")?.trim();
  const max = text !== undefined && /^\d{1,16}$/.test(text) ? Number(text) : undefined;
  return { condition: err.error.condition, type: err.error.type, ...(max !== undefined ? { maxFileSize: max } : {}) };
}

// ---- HTTP ----

export type HttpFailureKind = "bad-url" | "timeout" | "tls" | "refused" | "too-large" | "network";

export class HttpTransferError extends Error {
  constructor(readonly kind: HttpFailureKind, message: string, readonly code?: string) {
    super(message);
    this.name = "HttpTransferError";
  }
}

export interface HttpPutOptions {
  /** PEM of the CA to trust for https: (replaces the system store). */
  ca?: string;
  /**
   * Accept any certificate (rejectUnauthorized false): the endpoint config's tls.insecure (CLI
   * --insecure), an explicit choice the report records. Off unless set.
   */
  insecure?: boolean;
  /** Extra request headers (e.g. a slot's `headers`, Content-Type). A Content-Length here is ignored. */
  headers?: Record<string, string>;
  /**
   * Send this Content-Length instead of body.length (the body bytes sent are still exactly `body`).
   * For the mismatch test, prefer a well-framed body of the wrong length (no override); with an
   * override above body.length a server that does not refuse on the headers waits for the missing
   * bytes, and the PUT ends in a timeout.
   */
  contentLength?: number;
  /** Deadline for the whole request and response; default 10 000 ms. */
  timeoutMs?: number;
}

export interface HttpPutResult {
  status: number;
  headers: IncomingHttpHeaders;
  /** The start (≤ 4 KiB) of the response body, as text, for reports. */
  text: string;
}

/**
 * A PUT body produced while it is sent: exactly `length` bytes, from `chunks` in order. Each chunk is
 * written when the socket takes it (backpressure), so memory holds about one chunk, not the body.
 */
export interface StreamedBody {
  length: number;
  chunks: Iterable<Uint8Array>;
}

export interface HttpGetOptions {
  ca?: string;
  /** As for httpPut: accept any certificate (tls.insecure). */
  insecure?: boolean;
  /** Largest body accepted; a longer one (by Content-Length or as it streams) rejects with `too-large`. */
  maxBytes: number;
  timeoutMs?: number;
}

export interface HttpGetResult {
  status: number;
  headers: IncomingHttpHeaders;
  body: Buffer;
}

export interface HttpGetDigestResult {
  status: number;
  headers: IncomingHttpHeaders;
  /** Bytes of the body received. */
  bytes: number;
  /** sha256 of the body, hex. */
  sha256: string;
}

/** Each HTTP exchange of a media upload or download (config `timeouts.http`); raise it for a slow link or a loaded machine. */
export const DEFAULT_HTTP_TIMEOUT_MS = 10_000;
const PUT_RESPONSE_TEXT_BYTES = 4096;

function isHttpUrl(text: string): boolean {
  try {
    const url = new URL(text);
    return url.protocol === "https:" || url.protocol === "http:";
  } catch {
    return false;
  }
}

function parseHttpUrl(text: string): URL {
  let url: URL;
  try {
    url = new URL(text);
  } catch {
    throw new HttpTransferError("bad-url", `${JSON.stringify(text)} is not a URL`);
  }
  if (url.protocol !== "https:" && url.protocol !== "http:") throw new HttpTransferError("bad-url", `${JSON.stringify(text)} is not an http(s) URL`);
  return url;
}

const TLS_TRUST_CODES = new Set(["DEPTH_ZERO_SELF_SIGNED_CERT", "SELF_SIGNED_CERT_IN_CHAIN", "UNABLE_TO_VERIFY_LEAF_SIGNATURE", "UNABLE_TO_GET_ISSUER_CERT_LOCALLY", "CERT_HAS_EXPIRED", "ERR_TLS_CERT_ALTNAME_INVALID", "CERT_NOT_YET_VALID"]);

function transferFailure(err: NodeJS.ErrnoException, url: URL): HttpTransferError {
  const code = err.code ?? "";
  const where = `${url.protocol}//${url.host}`;
  if (TLS_TRUST_CODES.has(code) || code.startsWith("ERR_SSL") || code.startsWith("ERR_TLS")) {
    return new HttpTransferError("tls", `TLS with ${where} failed: ${err.message} (${code})`, code);
  }
  if (code === "ECONNREFUSED") return new HttpTransferError("refused", `connection to ${where} refused`, code);
  return new HttpTransferError("network", `HTTP transfer with ${where} failed: ${err.message}${code ? ` (${code})` : ""}`, code || undefined);
}

interface Exchange<T> {
  url: URL;
  method: "PUT" | "GET";
  headers: Record<string, string>;
  ca?: string;
  insecure?: boolean;
  timeoutMs: number;
  body?: Buffer | StreamedBody;
  /** Read the response; call done/fail exactly once (later calls are ignored). */
  onResponse(res: http.IncomingMessage, done: (value: T) => void, fail: (err: HttpTransferError) => void): void;
  /** An error after the response started: what to settle with instead of rejecting, if anything. */
  lateError?(status: number): T | undefined;
}

/** One request on its own connection (no agent, no reuse): the socket is destroyed when it settles. */
function exchange<T>(x: Exchange<T>): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    const transport = x.url.protocol === "https:" ? https : http;
    let settled = false;
    let status: number | undefined;
    const settle = (fn: () => void) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      fn();
      req.destroy();
    };
    const done = (value: T) => settle(() => resolve(value));
    const fail = (err: HttpTransferError) => settle(() => reject(err));
    const req = transport.request(x.url, {
      method: x.method,
      headers: x.headers,
      agent: false,
      ...(x.url.protocol === "https:" ? { ca: x.ca, rejectUnauthorized: !x.insecure, minVersion: "TLSv1.2" as const } : {}),
    });
    const timer = setTimeout(() => {
      fail(new HttpTransferError("timeout", `${x.method} ${x.url.protocol}//${x.url.host}${x.url.pathname} did not complete within ${x.timeoutMs} ms${status !== undefined ? ` (status ${status} received)` : ""}`));
    }, x.timeoutMs);
    req.on("response", (res) => {
      status = res.statusCode ?? 0;
      res.on("error", (err: NodeJS.ErrnoException) => {
        const late = x.lateError?.(status!);
        if (late !== undefined) done(late);
        else fail(transferFailure(err, x.url));
      });
      x.onResponse(res, done, fail);
    });
    req.on("error", (err: NodeJS.ErrnoException) => {
      if (status !== undefined) {
        // The answer arrived and the connection broke after it (e.g. the server closed while the
        // rest of a refused body was being written): the answer stands when the caller says so.
        const late = x.lateError?.(status);
        if (late !== undefined) return done(late);
      }
      fail(transferFailure(err, x.url));
    });
    if (x.body === undefined || Buffer.isBuffer(x.body)) return void req.end(x.body);
    // A streamed body: write while the socket takes it, wait for 'drain' when it does not. Once the
    // exchange settles the request is destroyed and the loop stops (no more chunks are made).
    const chunks = x.body.chunks[Symbol.iterator]();
    const pump = () => {
      while (!settled && !req.destroyed) {
        const next = chunks.next();
        if (next.done) return void req.end();
        if (!req.write(next.value)) return void req.once("drain", pump);
      }
    };
    pump();
  });
}

/**
 * Read a response body into `sink` chunk by chunk, with the `maxBytes` cap (Content-Length first,
 * then bytes as they arrive); `finish` makes the result once the body is complete.
 */
function readBody<T>(path: string, maxBytes: number, sink: (chunk: Buffer) => void, finish: (res: http.IncomingMessage, received: number) => T) {
  return (res: http.IncomingMessage, done: (value: T) => void, fail: (err: HttpTransferError) => void): void => {
    const declared = res.headers["content-length"];
    if (declared !== undefined && Number(declared) > maxBytes) {
      return fail(new HttpTransferError("too-large", `GET ${path}: Content-Length ${declared} is over the limit of ${maxBytes} bytes`));
    }
    let received = 0;
    let over = false;
    res.on("data", (chunk: Buffer) => {
      if (over) return;
      received += chunk.length;
      if (received > maxBytes) {
        over = true;
        return fail(new HttpTransferError("too-large", `GET ${path}: body over the limit of ${maxBytes} bytes`));
      }
      sink(chunk);
    });
    res.on("end", () => {
      if (!res.complete) return fail(new HttpTransferError("network", `GET ${path}: the response ended early after ${received} bytes`));
      done(finish(res, received));
    });
    res.on("close", () => {
      if (!res.complete) fail(new HttpTransferError("network", `GET ${path}: the connection closed after ${received} bytes of the response`));
    });
  };
}

/**
 * PUT `body` to `url`: a buffer, or a StreamedBody made as it is sent. Resolves with the status once
 * the response has been read (also when the server answers before the whole body was sent and then
 * closes). Rejects with HttpTransferError (bad-url, tls, refused, network, timeout). TLS is verified
 * against `ca` (or the system store) unless `insecure`.
 */
export function httpPut(url: string, body: Uint8Array | StreamedBody, options: HttpPutOptions = {}): Promise<HttpPutResult> {
  let parsed: URL;
  try {
    parsed = parseHttpUrl(url);
  } catch (err) {
    return Promise.reject(err);
  }
  const data = body instanceof Uint8Array ? Buffer.from(body.buffer, body.byteOffset, body.byteLength) : body;
  if (!Number.isSafeInteger(data.length) || data.length < 0) return Promise.reject(new RangeError(`body length ${data.length} is not a byte count`));
  const headers: Record<string, string> = {};
  for (const [name, value] of Object.entries(options.headers ?? {})) {
    if (name.toLowerCase() !== "content-length" && name.toLowerCase() !== "transfer-encoding") headers[name] = value;
  }
  const length = options.contentLength ?? data.length;
  if (!Number.isSafeInteger(length) || length < 0) return Promise.reject(new RangeError(`contentLength ${length} is not a byte count`));
  headers["Content-Length"] = String(length);
  let text = "";
  let headersSeen: IncomingHttpHeaders = {};
  return exchange<HttpPutResult>({
    url: parsed,
    method: "PUT",
    headers,
    ca: options.ca,
    insecure: options.insecure,
    timeoutMs: options.timeoutMs ?? DEFAULT_HTTP_TIMEOUT_MS,
    body: data,
    onResponse(res, done) {
      headersSeen = res.headers;
      const chunks: Buffer[] = [];
      let kept = 0;
      res.on("data", (chunk: Buffer) => {
        if (kept < PUT_RESPONSE_TEXT_BYTES) {
          chunks.push(chunk.subarray(0, PUT_RESPONSE_TEXT_BYTES - kept));
          kept += Math.min(chunk.length, PUT_RESPONSE_TEXT_BYTES - kept);
        }
      });
      res.on("end", () => {
        text = Buffer.concat(chunks).toString("utf8");
        done({ status: res.statusCode ?? 0, headers: res.headers, text });
      });
    },
    lateError: (status) => ({ status, headers: headersSeen, text }),
  });
}

function getExchange<T>(url: string, options: HttpGetOptions, read: (parsed: URL) => Exchange<T>["onResponse"]): Promise<T> {
  let parsed: URL;
  try {
    parsed = parseHttpUrl(url);
  } catch (err) {
    return Promise.reject(err);
  }
  const { maxBytes } = options;
  if (!Number.isSafeInteger(maxBytes) || maxBytes < 0) return Promise.reject(new RangeError(`maxBytes ${maxBytes} is not a byte count`));
  return exchange<T>({
    url: parsed,
    method: "GET",
    headers: {},
    ca: options.ca,
    insecure: options.insecure,
    timeoutMs: options.timeoutMs ?? DEFAULT_HTTP_TIMEOUT_MS,
    onResponse: read(parsed),
  });
}

/**
 * GET `url` into memory. Resolves with status, headers and body (for any status) when the response is
 * complete. Rejects with HttpTransferError: `too-large` as soon as the body is known to exceed
 * `maxBytes` (its Content-Length, or bytes as they arrive), `network` when it ends early. TLS as for
 * httpPut.
 */
export function httpGet(url: string, options: HttpGetOptions): Promise<HttpGetResult> {
  return getExchange(url, options, (parsed) => {
    const chunks: Buffer[] = [];
    return readBody(parsed.pathname, options.maxBytes, (chunk) => chunks.push(chunk), (res, received) => ({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks, received) }));
  });
}

/**
 * GET `url` without keeping the body: its length and sha256, computed as it arrives (memory holds a
 * chunk, whatever `maxBytes` allows). Same deadline, cap, TLS and errors as httpGet.
 */
export function httpGetDigest(url: string, options: HttpGetOptions): Promise<HttpGetDigestResult> {
  return getExchange(url, options, (parsed) => {
    const hash = createHash("sha256");
    return readBody(parsed.pathname, options.maxBytes, (chunk) => hash.update(chunk), (res, received) => ({ status: res.statusCode ?? 0, headers: res.headers, bytes: received, sha256: hash.digest("hex") }));
  });
}
