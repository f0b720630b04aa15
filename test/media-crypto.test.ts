import assert from "node:assert/strict";
import { createDecipheriv, randomBytes } from "node:crypto";
import { MediaIntegrityError, decryptMedia, encryptMedia, sha256Hex } from "../src/protocol/media-crypto.ts";

function integrityFailure(fn: () => unknown, reason: string): void {
  assert.throws(fn, (err: unknown) => err instanceof MediaIntegrityError && err.reason === reason);
}

describe("media crypto (AES-256-GCM blob)", () => {
  it("encrypts to ciphertext ‖ 16-byte tag with a 32-byte key and 12-byte IV, and decrypts back", () => {
    const plain = randomBytes(1000);
    const { blob, key, iv, sha256 } = encryptMedia(plain);
    assert.equal(key.length, 32);
    assert.equal(iv.length, 12);
    assert.equal(blob.length, plain.length + 16);
    assert.equal(sha256, sha256Hex(plain));
    assert.notDeepEqual(blob.subarray(0, plain.length), plain, "the blob is ciphertext");
    assert.deepEqual(decryptMedia(blob, key, iv), plain);

    // The layout is exactly what an independent AES-256-GCM implementation expects.
    const decipher = createDecipheriv("aes-256-gcm", key, iv);
    decipher.setAuthTag(blob.subarray(blob.length - 16));
    assert.deepEqual(Buffer.concat([decipher.update(blob.subarray(0, blob.length - 16)), decipher.final()]), plain);
  });

  it("uses a fresh key and IV for every file", () => {
    const a = encryptMedia(Buffer.from("same"));
    const b = encryptMedia(Buffer.from("same"));
    assert.notDeepEqual(a.key, b.key);
    assert.notDeepEqual(a.iv, b.iv);
    assert.notDeepEqual(a.blob, b.blob);
  });

  it("handles an empty file (blob is just the tag)", () => {
    const { blob, key, iv } = encryptMedia(new Uint8Array(0));
    assert.equal(blob.length, 16);
    assert.equal(decryptMedia(blob, key, iv).length, 0);
  });

  it("hashes as lowercase hex SHA-256", () => {
    assert.equal(sha256Hex(Buffer.from("abc")), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
    assert.equal(sha256Hex(new Uint8Array(0)), "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
  });

  it("throws MediaIntegrityError for a tampered byte, a wrong key, a wrong IV and a short blob", () => {
    const { blob, key, iv } = encryptMedia(Buffer.from("a voice note"));
    const flipped = Buffer.from(blob);
    flipped[3]! ^= 0x01;
    integrityFailure(() => decryptMedia(flipped, key, iv), "auth-failed");
    const badTag = Buffer.from(blob);
    badTag[badTag.length - 1]! ^= 0x01;
    integrityFailure(() => decryptMedia(badTag, key, iv), "auth-failed");
    integrityFailure(() => decryptMedia(blob, randomBytes(32), iv), "auth-failed");
    integrityFailure(() => decryptMedia(blob, key, randomBytes(12)), "auth-failed");
    integrityFailure(() => decryptMedia(blob.subarray(0, 15), key, iv), "short-blob");
    integrityFailure(() => decryptMedia(blob.subarray(0, blob.length - 1), key, iv), "auth-failed");
    integrityFailure(() => decryptMedia(blob, key.subarray(0, 16), iv), "bad-key");
    integrityFailure(() => decryptMedia(blob, key, randomBytes(16)), "bad-key");
  });

  it("checks the declared size and hash when asked", () => {
    const plain = Buffer.from("declared");
    const { blob, key, iv, sha256 } = encryptMedia(plain);
    assert.deepEqual(decryptMedia(blob, key, iv, { size: plain.length, sha256 }), plain);
    integrityFailure(() => decryptMedia(blob, key, iv, { size: plain.length + 1 }), "size-mismatch");
    integrityFailure(() => decryptMedia(blob, key, iv, { sha256: sha256Hex(Buffer.from("other")) }), "hash-mismatch");
  });
});
