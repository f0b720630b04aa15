// Steps for media (TPC/1 §5, §6): the upload service, media sent by a gatekeeper user, and the
// checks on media the partner user sends.
import { createCipheriv, createHash, randomBytes } from "node:crypto";
import { decryptMedia, encryptMedia, MediaIntegrityError, sha256Hex } from "../protocol/media-crypto.ts";
import { loadFixture, mimeMatches, probeMedia, sniffMime } from "../protocol/media-info.ts";
import { describeStanzaError, StanzaError } from "../protocol/stanza-error.ts";
import { discoverUploadService, httpGet, httpGetDigest, httpPut, requestSlot } from "../protocol/upload.ts";
import type { StreamedBody } from "../protocol/upload.ts";
import type { CaseContext } from "./context.ts";
import { NotTested } from "./context.ts";
import { sendContent } from "./steps.ts";
import type { StepHandler } from "./steps.ts";

type Params = Record<string, unknown>;

const MIN_MAX_FILE_SIZE = 16 * 1024 * 1024;
const TAG_BYTES = 16;

/**
 * The most bytes the suite moves each way for one media file or probe. The limit probe uploads
 * min(max-file-size, this): the profile's minimum (16 MiB) is always proven, a larger advertised limit
 * is proven up to here and the check says so. Streamed, so it costs time, not memory.
 */
export const MAX_PROBE_BYTES = 64 * 1024 * 1024;
const PROBE_CHUNK_BYTES = 64 * 1024;

/**
 * `size` bytes of AES-256-CTR keystream under a fresh key: every block differs, so a service that
 * loses, reorders or truncates any part is caught. `chunks` makes them one chunk at a time as the PUT
 * takes them (iterate once; memory: one chunk), hashing as it goes; `sha256()` makes whatever was not
 * taken (a server that answered early) and returns the hash of all `size` bytes.
 */
export function probeBody(size: number): StreamedBody & { sha256(): string } {
  const cipher = createCipheriv("aes-256-ctr", randomBytes(32), randomBytes(16));
  const zeros = Buffer.alloc(Math.min(size, PROBE_CHUNK_BYTES));
  const hash = createHash("sha256");
  let made = 0;
  const next = (): Buffer => {
    const chunk = cipher.update(zeros.subarray(0, Math.min(zeros.length, size - made)));
    made += chunk.length;
    hash.update(chunk);
    return chunk;
  };
  return {
    length: size,
    chunks: {
      *[Symbol.iterator]() {
        while (made < size) yield next();
      },
    },
    sha256() {
      while (made < size) next();
      return hash.copy().digest("hex");
    },
  };
}

/** The TLS options of HTTP transfers: the endpoint's, as for the XMPP stream (tls.ca, tls.insecure). */
function httpTls(ctx: CaseContext): { ca?: string; insecure?: boolean } {
  return { ca: ctx.config.tls.ca, insecure: ctx.config.tls.insecure };
}

async function uploadService(ctx: CaseContext, actorName: string) {
  const device = ctx.actor(actorName).connected(0);
  const service = await discoverUploadService(device.conn, ctx.config.domain);
  if (!service) throw new NotTested(`precondition not met: ${ctx.config.domain} lists no HTTP upload service in disco#items`);
  return { device, service };
}

const uploadServiceStep: StepHandler = async (ctx, p) => {
  const device = ctx.actor(p.actor as string).connected(0);
  const requirement = p.requirement as string;
  const service = await discoverUploadService(device.conn, ctx.config.domain);
  ctx.check(requirement, Boolean(service), `an XEP-0363 upload service among ${ctx.config.domain}'s disco#items`, service ? service.jid : "none");
  const max = service!.maxFileSize;
  ctx.check(requirement, max !== undefined && max >= MIN_MAX_FILE_SIZE, `max-file-size of at least ${MIN_MAX_FILE_SIZE} bytes`, max === undefined ? "no max-file-size advertised" : `max-file-size ${max}`);
};

const uploadProbe: StepHandler = async (ctx, p) => {
  const { device, service } = await uploadService(ctx, p.actor as string);
  const requirement = p.requirement as string;
  const tls = httpTls(ctx);
  const timeoutMs = ctx.config.timeouts.http;
  const check = p.check as string;
  if (check === "oversize") {
    const size = (service.maxFileSize ?? MIN_MAX_FILE_SIZE) + 1;
    try {
      await requestSlot(device.conn, service.jid, { filename: "too-large.bin", size, contentType: "application/octet-stream" });
      ctx.check(requirement, false, `a slot of ${size} bytes (one over the limit) refused with not-acceptable + file-too-large`, "a slot was granted");
    } catch (err) {
      if (!(err instanceof StanzaError)) throw err;
      const tooLarge = err.stanza.getChild("error")?.getChild("file-too-large", "urn:xmpp:http:upload:0");
      ctx.check(requirement, err.condition === "not-acceptable" && Boolean(tooLarge), `a slot of ${size} bytes refused with not-acceptable + file-too-large`, describeStanzaError(err.error) + (tooLarge ? " + <file-too-large/>" : ""), [ctx.entryOf(err.stanza)?.seq ?? 0]);
    }
    return;
  }
  // The limit probe: exactly max-file-size, or MAX_PROBE_BYTES when more is advertised (never more:
  // a hostile max-file-size of 16 digits must not cost the run its memory or its deadline).
  const advertised = service.maxFileSize ?? MIN_MAX_FILE_SIZE;
  const size = check === "limit" ? Math.min(advertised, MAX_PROBE_BYTES) : 4096;
  const capped = check === "limit" && advertised > size;
  const slot = await requestSlot(device.conn, service.jid, { filename: "probe.bin", size, contentType: "application/octet-stream" });
  if (check === "https") {
    const secure = slot.putUrl.startsWith("https://") && slot.getUrl.startsWith("https://");
    ctx.check(requirement, secure, "HTTPS put and get URLs", `${slot.putUrl} / ${slot.getUrl}`);
    return;
  }
  if (check === "length-mismatch") {
    const put = await httpPut(slot.putUrl, randomBytes(size - 1), { ...tls, headers: slot.headers, contentLength: size - 1, timeoutMs });
    ctx.check(requirement, put.status >= 400, `a PUT whose Content-Length (${size - 1}) differs from the slot (${size}) refused`, `HTTP ${put.status}`);
    const get = await httpGet(slot.getUrl, { ...tls, maxBytes: size + 1024, timeoutMs });
    ctx.check(requirement, get.status !== 200, "nothing stored for the refused upload", get.status === 200 ? `GET returned ${get.body.length} bytes` : `GET HTTP ${get.status}`);
    return;
  }
  const body = probeBody(size);
  const scope = capped ? ` (the probe's cap; max-file-size ${advertised} is advertised, uploads above ${size} bytes were not tried)` : "";
  const started = Date.now();
  const put = await httpPut(slot.putUrl, body, { ...tls, headers: slot.headers, timeoutMs });
  ctx.check(requirement, put.status >= 200 && put.status < 300, `PUT of ${size} bytes accepted${scope}`, `HTTP ${put.status}`);
  const get = await httpGetDigest(slot.getUrl, { ...tls, maxBytes: size + 1024, timeoutMs });
  const same = get.status === 200 && get.bytes === size && get.sha256 === body.sha256();
  const limitNote = capped ? `; ${size} of the advertised ${advertised} bytes probed` : "";
  ctx.check(requirement, same, `GET returns exactly the ${size} bytes uploaded`, get.status === 200 ? `${get.bytes} bytes, ${same ? "identical" : `different (sha256 ${get.sha256}, uploaded ${body.sha256()})`} (${Date.now() - started} ms for both)${limitNote}` : `HTTP ${get.status}`);
};

/** A gatekeeper user sends a fixture as media: encrypt, upload, and a content document that describes it. */
const sendMedia: StepHandler = async (ctx, p) => {
  const { device, service } = await uploadService(ctx, p.actor as string);
  const { bytes, meta } = loadFixture(p.fixture as string);
  const encrypted = encryptMedia(bytes);
  const blob = Buffer.from(encrypted.blob);
  if (p.tamper === "blob") blob[blob.length - 1] = blob[blob.length - 1]! ^ 0x01; // inside the GCM tag
  const slot = await requestSlot(device.conn, service.jid, { filename: meta.file, size: blob.length, contentType: "application/octet-stream" });
  const put = await httpPut(slot.putUrl, blob, { ...httpTls(ctx), headers: slot.headers, timeoutMs: ctx.config.timeouts.http });
  if (put.status < 200 || put.status >= 300) throw new NotTested(`precondition not met: the upload of ${meta.file} failed with HTTP ${put.status}`);
  const media: Record<string, unknown> = {
    url: slot.getUrl, mime: (p.mime as string | undefined) ?? meta.mime, size: bytes.length, sha256: encrypted.sha256,
    key: encrypted.key.toString("base64"), iv: encrypted.iv.toString("base64"),
  };
  if (meta.kind === "file") media.name = meta.file;
  if (meta.durationMs !== undefined) media.durationMs = meta.durationMs;
  if (meta.width !== undefined) Object.assign(media, { width: meta.width, height: meta.height });
  for (const [key, value] of Object.entries((p.mediaFields as Params | undefined) ?? {})) {
    if (value === null) delete media[key];
    else media[key] = value;
  }
  const trueMime = (await sniffMime(bytes)) ?? "application/octet-stream";
  // `tamper: blob` was applied to the upload above; the message itself travels intact.
  const { tamper: _blobTamper, ...message } = p;
  await sendContent(ctx, { ...message, kind: (p.kind as string | undefined) ?? meta.kind, fields: { ...((p.fields as Params) ?? {}), media } }, { sha256: sha256Hex(bytes), mime: trueMime });
};

/** Checks on media the partner user sent (a `receive` label). */
const checkMedia: StepHandler = async (ctx, p) => {
  const record = ctx.received(p.ref as string);
  const requirement = p.requirement as string;
  const evidence = [record.seq];
  const doc = record.decryption?.doc as (Record<string, unknown> & { kind?: string; media?: Record<string, unknown> }) | undefined;
  if (!doc) throw new Error(`${p.ref} carries no content document`);
  const media = doc.media as { url?: string; mime?: string; size?: number; sha256?: string; key?: string; iv?: string; name?: string; durationMs?: number; width?: number; height?: number } | undefined;
  if (p.check === "metadata") {
    if (!media) {
      ctx.check(requirement, false, "a media descriptor", "none", evidence);
      return;
    }
    const fixtureName = p.fixture as string;
    const { bytes, meta } = loadFixture(fixtureName);
    const probed = await probeMedia(bytes, meta.mime);
    if (meta.kind === "file") ctx.check(requirement, typeof media.name === "string" && media.name.length > 0, "media.name for a file", media.name === undefined ? "no name" : `name ${media.name}`, evidence);
    if (meta.kind === "voice" || meta.kind === "video") {
      const real = probed.durationMs ?? meta.durationMs ?? 0;
      const ok = typeof media.durationMs === "number" && Math.abs(media.durationMs - real) <= real * 0.1;
      ctx.check(requirement, ok, `media.durationMs within 10% of the real ${real} ms`, media.durationMs === undefined ? "no durationMs" : `durationMs ${media.durationMs}`, evidence);
    }
    if (meta.kind === "image" || meta.kind === "video") {
      const w = probed.width ?? meta.width;
      const h = probed.height ?? meta.height;
      ctx.check(requirement, media.width === w && media.height === h, `media.width × height = ${w} × ${h}`, `${String(media.width)} × ${String(media.height)}`, evidence);
    }
    return;
  }
  // Schema-required metadata is the metadata check's business (MED-09); here the file itself.
  if (!media?.url || !media.key || !media.iv || typeof media.size !== "number" || !Number.isSafeInteger(media.size) || media.size < 0) {
    ctx.check(requirement, false, "a media descriptor with url, key, iv and size", JSON.stringify(media ?? null), evidence);
    return;
  }
  // The declared size bounds the download. A file over what the suite downloads is the suite's
  // limit, not the partner's fault: not tested, saying so (the catalogue's fixtures are far smaller).
  if (media.size + TAG_BYTES > MAX_PROBE_BYTES) {
    throw new NotTested(`the media document declares ${media.size} bytes, more than the suite downloads (${MAX_PROBE_BYTES} bytes with the tag): not checked`);
  }
  const get = await httpGet(media.url, { ...httpTls(ctx), maxBytes: media.size + TAG_BYTES + 1024, timeoutMs: ctx.config.timeouts.http });
  ctx.check(requirement, get.status === 200, `the blob downloads from ${media.url}`, `HTTP ${get.status}`, evidence);
  const blob = get.body;
  const blobRequirement = (p.blobRequirement as string | undefined) ?? requirement;
  let plain: Buffer | undefined;
  try {
    plain = decryptMedia(blob, Buffer.from(media.key, "base64"), Buffer.from(media.iv, "base64"));
  } catch (err) {
    if (!(err instanceof MediaIntegrityError)) throw err;
  }
  ctx.check(blobRequirement, blob.length === media.size + TAG_BYTES && plain !== undefined, `an AES-256-GCM blob of ${media.size} + 16 bytes that decrypts with the document's key and iv`, plain ? `${blob.length} bytes, decrypts` : `${blob.length} bytes that do not decrypt (plaintext on the server?)`, evidence);
  ctx.check(requirement, sha256Hex(plain!) === media.sha256 && plain!.length === media.size, `plaintext sha256 ${media.sha256} and size ${media.size}`, `sha256 ${sha256Hex(plain!)}, size ${plain!.length}`, evidence);
  const sniffed = (await sniffMime(plain!)) ?? "application/octet-stream";
  const kind = String(doc.kind);
  if (kind !== "file") ctx.check(requirement, mimeMatches(String(media.mime), sniffed), `declared mime ${media.mime} matching the bytes`, `the bytes are ${sniffed}`, evidence);
};

export const MEDIA_STEP_HANDLERS: Record<string, StepHandler> = {
  "upload-service": uploadServiceStep,
  "upload-probe": uploadProbe,
  "send-media": sendMedia,
  "check-media": checkMedia,
};
