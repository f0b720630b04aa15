// `chatconform verify BUNDLE [--pubkey FILE | --trust-embedded-key]`: check a signed run bundle
// (src/report/bundle.ts) and print every check, file by file. Exit 0 valid, 1 tampered or invalid,
// 2 intact but the signer not authenticated (no --pubkey: the signature was checked with the key
// the bundle carries, which anyone re-signing a changed bundle would replace), 3 misused (no bundle
// there, an unusable public key). --trust-embedded-key accepts the bundle's own key explicitly
// (exit 0, still reported as integrity only).
import { BundleUsageError, verifyBundle } from "../report/bundle.ts";
import type { VerifyResult } from "../report/bundle.ts";
import { SigningKeyError, loadPublicKey } from "../report/signing.ts";
import type { PublicKeyInfo } from "../report/signing.ts";

/** Exit codes, as EXIT in program.ts. */
const EXIT_VALID = 0;
const EXIT_INVALID = 1;
/** Intact, but checked only with the bundle's own key: nothing says who signed it. */
export const EXIT_SIGNER_NOT_AUTHENTICATED = 2;
const EXIT_BAD_INPUT = 3;

export interface VerifyFlags {
  pubkey?: string;
  /** Accept the key the bundle carries (no --pubkey) as the signer's: exit 0 instead of 2. */
  trustEmbeddedKey?: boolean;
}

export interface VerifyOutput {
  out: (line?: string) => void;
  err: (line?: string) => void;
}

export function verifyCommand(target: string, flags: VerifyFlags, io: VerifyOutput): number {
  let publicKey: PublicKeyInfo | undefined;
  let result: VerifyResult;
  try {
    if (flags.pubkey) publicKey = loadPublicKey(flags.pubkey);
    result = verifyBundle(target, { publicKey });
  } catch (e) {
    if (e instanceof SigningKeyError || e instanceof BundleUsageError) {
      io.err(`chatconform verify: ${e.message}`);
      return EXIT_BAD_INPUT;
    }
    throw e;
  }
  const { out, err } = io;
  out(`Bundle ${result.dir}`);
  if (result.run) {
    const recomputed = result.run.recomputedVerdict && result.run.recomputedVerdict !== result.run.verdict ? ` (recomputed: ${result.run.recomputedVerdict})` : "";
    out(`Run: ${result.run.suite} · endpoint ${result.run.endpoint} · started ${result.run.startedAt} · verdict ${result.run.verdict}${recomputed}`);
  }
  const keyId = result.keyId ?? "unknown";
  if (result.keySource === "given") out(`Key: ${keyId} (from --pubkey ${flags.pubkey})`);
  else if (result.keySource === "manifest") {
    out(`Key: ${keyId} (the bundle's own: proves integrity, not origin)`);
    err("WARNING: no --pubkey given. The signature was checked with the public key the bundle itself carries.");
    err("WARNING: that proves the files are unchanged since the holder of that key signed them; it does NOT prove who signed them:");
    err("WARNING: anyone can re-sign a changed bundle with a key of their own. Get the signer's public key by another channel");
    err(`WARNING: and run: chatconform verify ${target} --pubkey FILE, or compare key id ${keyId} with the signer's out of band.`);
  } else out("Key: none usable");
  for (const check of result.checks) out(`${check.ok ? "✔" : "✖"} ${check.subject}  ${check.detail}`);
  const problems = result.checks.filter((c) => !c.ok);
  if (result.valid && result.keySource === "given") {
    out(`VALID: the signature, ${result.filesOk} file hash(es), the file list and the recomputed verdict check out`);
    return EXIT_VALID;
  }
  if (result.valid) {
    // Checked with the key the bundle carries: whoever changed the bundle could have re-signed it.
    const what = `the signature by the bundle's own key, ${result.filesOk} file hash(es), the file list and the recomputed verdict check out`;
    const fingerprint = `key id ${keyId} (sha256 of the key's SPKI DER: compare it with the id keygen printed to the signer, or with \`openssl pkey -pubin -in KEY.pub -outform DER | sha256sum\`)`;
    if (flags.trustEmbeddedKey) {
      out(`INTACT, SIGNER NOT AUTHENTICATED (accepted with --trust-embedded-key): ${what}; signed with ${fingerprint}`);
      return EXIT_VALID;
    }
    out(`INTACT, SIGNER NOT AUTHENTICATED: ${what}, but nothing says who signed: signed with ${fingerprint}`);
    out(`Give the signer's public key with --pubkey FILE to verify its origin (exit 0), or accept the bundle's own key with --trust-embedded-key; exit ${EXIT_SIGNER_NOT_AUTHENTICATED} until then.`);
    return EXIT_SIGNER_NOT_AUTHENTICATED;
  }
  const named = [...new Set(problems.flatMap((p) => p.subject.split(", ")))];
  const shown = named.length > 6 ? `${named.slice(0, 6).join(", ")} and ${named.length - 6} more file(s)` : named.join(", ");
  out(`INVALID: ${problems.length || 1} problem(s)${named.length ? ` in ${shown}` : ""}`);
  return EXIT_INVALID;
}
