// The reflector's media handling: what a compliant TPC/1 client does with photos, videos, voice
// notes and files (TPC/1 §5, §6), with the faults of the media mutants as named switches.
import { createDecipheriv } from "node:crypto";
import type { XmppConnection } from "../protocol/connection.ts";
import type { MediaDescriptor } from "../protocol/content.ts";
import { decryptMedia, encryptMedia, MediaIntegrityError, sha256Hex } from "../protocol/media-crypto.ts";
import { loadFixture, mimeMatches, sniffMime } from "../protocol/media-info.ts";
import { discoverUploadService, httpGet, httpPut, requestSlot } from "../protocol/upload.ts";

export type { MediaDescriptor };

export type MediaVerdict =
  | { accept: true; mediaSha256: string; mediaMime: string }
  | { accept: false; condition: "not-acceptable"; app: "media-integrity" | "media-mismatch"; reason: string };

/** Kinds whose declared mime must match the bytes (TPC/1 §5); any file is acceptable as a file. */
const SNIFFED_KINDS = new Set(["image", "video", "voice"]);

/** The largest blob the reflector downloads, whatever size a content document declares. */
const MAX_MEDIA_BYTES = 64 * 1024 * 1024;

/** How the reflector reaches the upload service: its connection's TLS trust (`ca`, `insecure`), and the mutant's faults. */
export interface MediaOptions {
  ca?: string;
  /** Accept any certificate, as the connection's tls.insecure does. */
  insecure?: boolean;
  faults: ReadonlySet<string>;
}

/** Download, decrypt, verify and sniff the media of a received content document. */
export async function receiveMedia(kind: string, media: MediaDescriptor, options: MediaOptions): Promise<MediaVerdict> {
  const integrity = (reason: string): MediaVerdict => ({ accept: false, condition: "not-acceptable", app: "media-integrity", reason });
  let blob: Buffer;
  try {
    const response = await httpGet(media.url, { ca: options.ca, insecure: options.insecure, maxBytes: Math.min(media.size + 16 + 1024, MAX_MEDIA_BYTES) });
    if (response.status !== 200) return integrity(`download of the media failed with HTTP ${response.status}`);
    blob = response.body;
  } catch (err) {
    return integrity(`download of the media failed: ${(err as Error).message}`);
  }
  const key = Buffer.from(media.key, "base64");
  const iv = Buffer.from(media.iv, "base64");
  let plain: Buffer;
  try {
    plain = decryptMedia(blob, key, iv, { size: media.size, sha256: media.sha256 });
  } catch (err) {
    if (!(err instanceof MediaIntegrityError)) throw err;
    if (!options.faults.has("media-integrity-ignored")) return integrity(`the media does not verify: ${err.message}`);
    // fault media-integrity-ignored: use the bytes without their tag, size or hash verified
    const decipher = createDecipheriv("aes-256-gcm", key, iv);
    plain = decipher.update(blob.subarray(0, Math.max(0, blob.length - 16)));
  }
  const sniffed = (await sniffMime(plain)) ?? "application/octet-stream";
  if (SNIFFED_KINDS.has(kind) && !mimeMatches(media.mime, sniffed) && !options.faults.has("media-no-mismatch-check")) {
    return { accept: false, condition: "not-acceptable", app: "media-mismatch", reason: `declared ${media.mime} but the bytes are ${sniffed}` };
  }
  return { accept: true, mediaSha256: sha256Hex(plain), mediaMime: sniffed };
}

/** Encrypt a fixture, upload it through the partner's XEP-0363 service, and describe it for a content document. */
export async function uploadFixture(conn: XmppConnection, domain: string, fixture: string, options: MediaOptions): Promise<{ kind: string; media: MediaDescriptor }> {
  const { bytes, meta } = loadFixture(fixture);
  const service = await discoverUploadService(conn, domain);
  if (!service) throw new Error(`${domain} offers no HTTP upload service`);
  const encrypted = encryptMedia(bytes);
  // fault media-plaintext-upload: the server gets the plaintext (padded to the same length)
  const blob = options.faults.has("media-plaintext-upload") ? Buffer.concat([bytes, Buffer.alloc(16)]) : encrypted.blob;
  const slot = await requestSlot(conn, service.jid, { filename: meta.file, size: blob.length, contentType: "application/octet-stream" });
  const put = await httpPut(slot.putUrl, blob, { ca: options.ca, insecure: options.insecure, headers: slot.headers });
  if (put.status < 200 || put.status >= 300) throw new Error(`upload of ${meta.file} failed with HTTP ${put.status}`);
  const media: MediaDescriptor = {
    url: slot.getUrl,
    mime: meta.mime,
    size: bytes.length,
    sha256: options.faults.has("media-wrong-hash") ? sha256Hex(Buffer.concat([bytes, Buffer.from([0])])) : encrypted.sha256,
    key: encrypted.key.toString("base64"),
    iv: encrypted.iv.toString("base64"),
  };
  if (options.faults.has("media-mime-lies") && meta.kind !== "file") media.mime = meta.mime === "image/png" ? "image/jpeg" : meta.mime === "image/jpeg" ? "image/png" : meta.mime === "audio/ogg" ? "audio/mp4" : meta.mime === "audio/mp4" ? "audio/ogg" : "image/jpeg";
  if (meta.kind === "file") media.name = meta.file;
  if ((meta.kind === "voice" || meta.kind === "video") && meta.durationMs !== undefined && !options.faults.has("media-no-duration")) media.durationMs = meta.durationMs;
  if ((meta.kind === "image" || meta.kind === "video") && meta.width !== undefined) {
    media.width = meta.width;
    media.height = meta.height;
  }
  return { kind: meta.kind, media };
}
