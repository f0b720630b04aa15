// The reference partner's XEP-0363 HTTP File Upload service (TPC/1 §6): a server component at
// upload.<domain> that hands out slots, and a loopback HTTPS server (node:https, the partner's own
// certificate) that takes exactly one PUT per slot and serves the stored bytes back by GET.
//
// What a compliant service does, and the named faults that break it:
// - disco#info: identity store/file, feature urn:xmpp:http:upload:0, the XEP-0363 §3 form with
//   max-file-size (default 16 MiB + 64 KiB, so that a 16 MiB plaintext plus its 16-byte GCM tag fits);
// - a slot request over the limit: modify/not-acceptable + <file-too-large><max-file-size/>;
//   a missing or malformed size or filename: modify/bad-request;
// - PUT: Content-Length must equal the slot's size (shorter: 400, longer: 413, absent: 411), one
//   upload per slot (a second PUT, or one while the first is in flight: 409), 201 when stored; a
//   refused or broken PUT stores nothing and leaves the slot open;
// - GET: 200 with exactly the stored bytes as application/octet-stream, 404 when unknown or not yet
//   uploaded; any other method 405.
import { randomBytes } from "node:crypto";
import https from "node:https";
import type { IncomingMessage, ServerResponse } from "node:http";
import type net from "node:net";
import type { BoundSession, ServerComponent } from "./server/context.ts";
import { errorReply } from "../protocol/stanza-error.ts";
import { uriHost } from "../protocol/connection.ts";
import type { StanzaErrorInfo } from "../protocol/stanza-error.ts";
import { NS, xml } from "../protocol/xml.ts";
import type { Element } from "../protocol/xml.ts";

/** Upload-service faults (known-bad partners), each with one sentence on what the service then does. */
export const UPLOAD_FAULTS = {
  "media-tiny-limit":
    "the upload service advertises max-file-size 1 MiB (1048576) instead of at least 16 MiB, and refuses larger slots with file-too-large.",
  "upload-length-unchecked":
    "a PUT whose Content-Length differs from the slot's size (up to the service's max-file-size) is accepted with 201 and what came is stored and served.",
} as const;

export type UploadFault = keyof typeof UPLOAD_FAULTS;

/** Default limit: 16 MiB of plaintext plus room for the GCM tag (TPC/1 §10a: at least 16 777 216). */
export const DEFAULT_MAX_FILE_SIZE = 16 * 1024 * 1024 + 64 * 1024;
const TINY_LIMIT = 1024 * 1024;
/** Longest filename accepted in a slot request, in UTF-8 bytes. */
const MAX_FILENAME_BYTES = 255;
/** Longest content-type attribute accepted. */
const MAX_CONTENT_TYPE_LENGTH = 255;
/** A request whose body has not arrived within this time is dropped (and its slot reopened). */
const REQUEST_TIMEOUT_MS = 60_000;

export interface UploadServiceOptions {
  /** The XMPP domain: the component's JID is upload.<domain>. */
  domain: string;
  /** Address the HTTPS server listens on and puts in slot URLs; default 127.0.0.1. */
  host?: string;
  /** HTTPS port; 0 (default) picks a free one. */
  port?: number;
  /** Advertised and enforced limit in bytes; default DEFAULT_MAX_FILE_SIZE (≥ 16 MiB). */
  maxFileSize?: number;
  /** The partner's certificate (the same generateCertificate(domain) result as the XMPP server). */
  tls: { keyPem: string; certPem: string };
  /** Mutants by name; the service acts on those in UPLOAD_FAULTS and ignores others. */
  faults?: ReadonlySet<string>;
  log?: (line: string) => void;
}

export interface UploadService {
  /** Pass to the reference server's `components`. */
  readonly component: ServerComponent;
  readonly jid: string;
  readonly port: number;
  /** The max-file-size advertised and enforced (after faults). */
  readonly maxFileSize: number;
  /** Close the HTTPS listener and every connection; resolves when closed. */
  stop(): Promise<void>;
  /** For tests: the stored blobs by GET URL (a live view; do not mutate). */
  blobs(): Map<string, Buffer>;
}

interface Slot {
  token: string;
  /** The filename as it appears (percent-encoded) in the URL path. */
  pathName: string;
  size: number;
  contentType?: string;
  url: string;
  state: "open" | "uploading" | "stored";
}

type FilenameCheck = { ok: true } | { ok: false; reason: string };

function checkFilename(filename: string | undefined): FilenameCheck {
  if (filename === undefined || filename === "") return { ok: false, reason: "the request has no filename" };
  if (Buffer.byteLength(filename) > MAX_FILENAME_BYTES) return { ok: false, reason: `the filename is longer than ${MAX_FILENAME_BYTES} bytes` };
  if (filename === "." || filename === "..") return { ok: false, reason: "the filename is not a file name" };
  if (/[\u0000-\u001f\u007f/\\]/.test(filename)) return { ok: false, reason: "the filename contains a slash, a backslash or a control character" };
  return { ok: true };
}

export async function startUploadService(options: UploadServiceOptions): Promise<UploadService> {
  const domain = options.domain.toLowerCase();
  const jid = `upload.${domain}`;
  const host = options.host ?? "127.0.0.1";
  const faults: ReadonlySet<string> = new Set(options.faults ?? []);
  const has = (fault: UploadFault) => faults.has(fault);
  const log = options.log ?? (() => undefined);
  const maxFileSize = has("media-tiny-limit") ? TINY_LIMIT : (options.maxFileSize ?? DEFAULT_MAX_FILE_SIZE);
  if (!Number.isSafeInteger(maxFileSize) || maxFileSize < 0) throw new RangeError(`maxFileSize ${maxFileSize} is not a byte count`);

  const slots = new Map<string, Slot>();
  const stored = new Map<string, Buffer>();
  const sockets = new Set<net.Socket>();
  let stopping: Promise<void> | null = null;
  let origin = ""; // https://host:port, known once listening

  // ---- XMPP side ----

  const error = (iq: Element, info: StanzaErrorInfo, app?: Element): Element => {
    const reply = errorReply(iq, info, jid);
    if (app) reply.getChild("error")!.append(app);
    return reply;
  };

  const discoInfo = (): Element =>
    xml(
      "query",
      { xmlns: NS.discoInfo },
      xml("identity", { category: "store", type: "file", name: "HTTP File Upload" }),
      xml("feature", { var: NS.discoInfo }),
      xml("feature", { var: NS.upload }),
      xml(
        "x",
        { xmlns: NS.xdata, type: "result" },
        xml("field", { var: "FORM_TYPE", type: "hidden" }, xml("value", {}, NS.upload)),
        xml("field", { var: "max-file-size" }, xml("value", {}, String(maxFileSize))),
      ),
    );

  const result = (iq: Element, ...children: Element[]): Element => {
    const attrs: Record<string, string> = { type: "result", id: String(iq.attrs.id ?? ""), from: jid };
    if (iq.attrs.from) attrs.to = iq.attrs.from;
    return xml("iq", attrs, ...children);
  };

  const requestSlot = (iq: Element, request: Element, from: BoundSession): Element => {
    const filename = request.attrs.filename as string | undefined;
    const sizeText = request.attrs.size as string | undefined;
    const contentType = request.attrs["content-type"] as string | undefined;
    const name = checkFilename(filename);
    if (!name.ok) return error(iq, { type: "modify", condition: "bad-request", text: name.reason });
    if (sizeText === undefined || !/^\d{1,16}$/.test(sizeText) || !Number.isSafeInteger(Number(sizeText))) {
      return error(iq, { type: "modify", condition: "bad-request", text: sizeText === undefined ? "the request has no size" : "the size is not a byte count" });
    }
      if (contentType !== undefined && (contentType.length > MAX_CONTENT_TYPE_LENGTH || /[\u0000-\u001f\u007f]/.test(contentType))) {
      return error(iq, { type: "modify", condition: "bad-request", text: "the content-type is not a media type" });
    }
    const size = Number(sizeText);
    if (size > maxFileSize) {
      return error(
        iq,
        { type: "modify", condition: "not-acceptable", text: `file too large: the maximum is ${maxFileSize} bytes` },
        xml("file-too-large", { xmlns: NS.upload }, xml("max-file-size", {}, String(maxFileSize))),
      );
    }
    const token = randomBytes(18).toString("base64url");
    const pathName = encodeURIComponent(filename!);
    const url = `${origin}/upload/${token}/${pathName}`;
    slots.set(token, { token, pathName, size, contentType, url, state: "open" });
    log(`[upload] slot ${token} for ${from.jid}: ${JSON.stringify(filename)}, ${size} bytes`);
    return result(iq, xml("slot", { xmlns: NS.upload }, xml("put", { url }), xml("get", { url })));
  };

  const component: ServerComponent = {
    jid,
    name: "HTTP File Upload",
    handleIq(iq: Element, from: BoundSession): Element {
      const children = iq.getChildElements();
      const payload = children.length === 1 ? children[0]! : null;
      const type = iq.attrs.type;
      if (payload && type === "get") {
        const ns = payload.attrs.xmlns;
        if (payload.name === "query" && ns === NS.discoInfo && !payload.attrs.node) return result(iq, discoInfo());
        if (payload.name === "query" && ns === NS.discoItems && !payload.attrs.node) return result(iq, xml("query", { xmlns: NS.discoItems }));
        if (payload.name === "request" && ns === NS.upload) return requestSlot(iq, payload, from);
      }
      if (payload?.name === "request" && payload.attrs.xmlns === NS.upload) {
        return error(iq, { type: "modify", condition: "bad-request", text: "a slot request is an IQ get" });
      }
      return error(iq, { type: "cancel", condition: "service-unavailable" });
    },
  };

  // ---- HTTP side ----

  const send = (res: ServerResponse, status: number, text: string, close = false): void => {
    if (res.headersSent) return;
    const body = Buffer.from(`${text}\n`);
    res.writeHead(status, { "Content-Type": "text/plain; charset=utf-8", "Content-Length": body.length, ...(close ? { Connection: "close" } : {}) });
    res.end(body);
  };

  const findSlot = (url: string | undefined): Slot | undefined => {
    const match = /^\/upload\/([A-Za-z0-9_-]{24})\/([^/?#]+)$/.exec(url ?? "");
    if (!match) return undefined;
    const slot = slots.get(match[1]!);
    return slot && slot.pathName === match[2] ? slot : undefined;
  };

  const handlePut = (req: IncomingMessage, res: ServerResponse, slot: Slot | undefined): void => {
    // A refused PUT is answered at once, from its headers. A body the service could still read
    // (≤ max-file-size) is drained by node (so that the client reads the answer and the connection
    // stays usable); a longer one gets the answer and the connection closed.
    const declared = req.headers["content-length"];
    const length = declared !== undefined && /^\d{1,16}$/.test(declared) ? Number(declared) : undefined;
    const refuse = (status: number, text: string) => {
      log(`[upload] PUT ${req.url} refused ${status}: ${text}`);
      send(res, status, text, length === undefined || length > maxFileSize);
    };
    if (!slot) return refuse(404, "no such slot");
    if (slot.state !== "open") return refuse(409, "this slot has already been uploaded to");
    if (length === undefined) return refuse(req.headers["transfer-encoding"] ? 411 : 400, "a PUT needs a Content-Length equal to the slot's size");
    let limit = slot.size;
    if (length !== slot.size) {
      if (!has("upload-length-unchecked")) {
        return refuse(length > slot.size ? 413 : 400, `Content-Length ${length} differs from the slot's size ${slot.size}`);
      }
      if (length > maxFileSize) return refuse(413, `Content-Length ${length} is over the maximum ${maxFileSize}`);
      limit = length;
    }
    slot.state = "uploading";
    const chunks: Buffer[] = [];
    let received = 0;
    let done = false;
    const fail = (why: string) => {
      if (done) return;
      done = true;
      slot.state = "open";
      log(`[upload] PUT ${req.url} failed: ${why}`);
    };
    req.on("data", (chunk: Buffer) => {
      if (done) return;
      received += chunk.length;
      // node frames the body by Content-Length, so this is a backstop.
      if (received > limit) {
        fail(`more than ${limit} bytes`);
        send(res, 413, "body longer than the slot", true);
        req.destroy();
        return;
      }
      chunks.push(chunk);
    });
    req.on("end", () => {
      if (done) return;
      done = true;
      const body = Buffer.concat(chunks, received);
      if (received !== length) {
        slot.state = "open";
        return send(res, 400, `received ${received} of ${length} bytes`, true);
      }
      slot.state = "stored";
      stored.set(slot.url, body);
      log(`[upload] PUT ${req.url} stored ${received} bytes`);
      res.writeHead(201, { "Content-Length": 0 });
      res.end();
    });
    req.on("error", (err) => fail(err.message));
    req.on("close", () => {
      if (!req.complete) fail("the request was not complete when its connection closed");
    });
  };

  const handleGet = (req: IncomingMessage, res: ServerResponse, slot: Slot | undefined): void => {
    const blob = slot?.state === "stored" ? stored.get(slot.url) : undefined;
    if (!blob) return send(res, 404, "not found");
    log(`[upload] GET ${req.url}: ${blob.length} bytes`);
    res.writeHead(200, { "Content-Type": "application/octet-stream", "Content-Length": blob.length });
    res.end(blob);
  };

  const server = https.createServer(
    { key: options.tls.keyPem, cert: options.tls.certPem, minVersion: "TLSv1.2", requestTimeout: REQUEST_TIMEOUT_MS },
    (req, res) => {
      if (stopping) {
        send(res, 503, "shutting down", true);
        return;
      }
      const slot = findSlot(req.url);
      if (req.method === "PUT") return handlePut(req, res, slot);
      if (req.method === "GET") return handleGet(req, res, slot);
      res.setHeader("Allow", "GET, PUT");
      send(res, 405, `method ${req.method} not allowed`);
    },
  );
  server.on("connection", (socket: net.Socket) => {
    sockets.add(socket);
    socket.once("close", () => sockets.delete(socket));
  });
  server.on("tlsClientError", (err) => log(`[upload] TLS: ${err.message}`));

  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(options.port ?? 0, host, () => {
      server.removeListener("error", reject);
      resolve();
    });
  });
  server.on("error", (err) => log(`[upload] server error: ${err.message}`));
  const port = (server.address() as net.AddressInfo).port;
  // Slot URLs name the listening address (an unspecified one, 0.0.0.0 or ::, as 127.0.0.1); the
  // certificate names 127.0.0.1 only, so other addresses need the client to override the name.
  const urlHost = host === "0.0.0.0" || host === "::" ? "127.0.0.1" : host;
  origin = `https://${uriHost(urlHost)}:${port}`;
  log(`[upload] ${jid} serving ${origin} (max-file-size ${maxFileSize})${faults.size ? ` with faults ${[...faults].filter((f) => f in UPLOAD_FAULTS).join(", ") || "none of its own"}` : ""}`);

  return {
    component,
    jid,
    port,
    maxFileSize,
    blobs: () => stored,
    stop() {
      stopping ??= (async () => {
        const closed = new Promise<void>((resolve) => server.close(() => resolve()));
        server.closeAllConnections();
        for (const socket of sockets) socket.destroy();
        await closed;
        log(`[upload] ${jid} stopped`);
      })();
      return stopping;
    },
  };
}
