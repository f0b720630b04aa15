// TPC/1 media blobs (§6): AES-256-GCM, the blob is ciphertext followed by the 16-byte tag; key and
// IV travel only inside the encrypted content document.
import { createCipheriv, createDecipheriv, createHash, randomBytes } from "node:crypto";

export const MEDIA_KEY_BYTES = 32;
export const MEDIA_IV_BYTES = 12;
export const MEDIA_TAG_BYTES = 16;

export type MediaIntegrityFailure = "bad-key" | "short-blob" | "auth-failed" | "size-mismatch" | "hash-mismatch";

/** A blob that cannot be the media the content document describes (TPC/1 `media-integrity`). */
export class MediaIntegrityError extends Error {
  readonly reason: MediaIntegrityFailure;
  constructor(reason: MediaIntegrityFailure, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = "MediaIntegrityError";
    this.reason = reason;
  }
}

export function sha256Hex(bytes: Uint8Array): string {
  return createHash("sha256").update(bytes).digest("hex");
}

export interface EncryptedMedia {
  /** ciphertext ‖ 16-byte GCM tag: what is uploaded */
  blob: Buffer;
  key: Buffer;
  iv: Buffer;
  /** lowercase hex SHA-256 of the plaintext */
  sha256: string;
}

export function encryptMedia(plain: Uint8Array): EncryptedMedia {
  const key = randomBytes(MEDIA_KEY_BYTES);
  const iv = randomBytes(MEDIA_IV_BYTES);
  const cipher = createCipheriv("aes-256-gcm", key, iv);
  const blob = Buffer.concat([cipher.update(plain), cipher.final(), cipher.getAuthTag()]);
  return { blob, key, iv, sha256: sha256Hex(plain) };
}

/**
 * Decrypt a downloaded blob. Throws MediaIntegrityError when the key or IV has the wrong length,
 * the blob is shorter than a tag, the tag does not verify, or (when `expect` is given) the
 * plaintext's size or SHA-256 differ from what the content document declared.
 */
export function decryptMedia(blob: Uint8Array, key: Uint8Array, iv: Uint8Array, expect?: { size?: number; sha256?: string }): Buffer {
  if (key.length !== MEDIA_KEY_BYTES) throw new MediaIntegrityError("bad-key", `media key is ${key.length} bytes, expected ${MEDIA_KEY_BYTES}`);
  if (iv.length !== MEDIA_IV_BYTES) throw new MediaIntegrityError("bad-key", `media IV is ${iv.length} bytes, expected ${MEDIA_IV_BYTES}`);
  if (blob.length < MEDIA_TAG_BYTES) {
    throw new MediaIntegrityError("short-blob", `blob is ${blob.length} bytes, shorter than the ${MEDIA_TAG_BYTES}-byte GCM tag`);
  }
  const split = blob.length - MEDIA_TAG_BYTES;
  let plain: Buffer;
  try {
    const decipher = createDecipheriv("aes-256-gcm", key, iv);
    decipher.setAuthTag(blob.subarray(split));
    plain = Buffer.concat([decipher.update(blob.subarray(0, split)), decipher.final()]);
  } catch (err) {
    throw new MediaIntegrityError("auth-failed", "blob does not authenticate with the declared key and IV (AES-256-GCM tag mismatch)", { cause: err });
  }
  if (expect?.size !== undefined && plain.length !== expect.size) {
    throw new MediaIntegrityError("size-mismatch", `decrypted media is ${plain.length} bytes, the document declares ${expect.size}`);
  }
  if (expect?.sha256 !== undefined) {
    const actual = sha256Hex(plain);
    if (actual !== expect.sha256.toLowerCase()) {
      throw new MediaIntegrityError("hash-mismatch", `decrypted media has SHA-256 ${actual}, the document declares ${expect.sha256}`);
    }
  }
  return plain;
}
