// `chatconform verify BUNDLE [--pubkey FILE]`: check a signed run bundle (src/report/bundle.ts) and
// print every check, file by file. Exit 0 valid, 1 tampered or invalid, 3 misused (no bundle there,
// an unusable public key).
import { BundleUsageError, verifyBundle } from "../report/bundle.ts";
import type { VerifyResult } from "../report/bundle.ts";
import { SigningKeyError, loadPublicKey } from "../report/signing.ts";
import type { PublicKeyInfo } from "../report/signing.ts";

/** Exit codes, as EXIT in program.ts. */
const EXIT_VALID = 0;
const EXIT_INVALID = 1;
const EXIT_BAD_INPUT = 3;

export interface VerifyFlags {
  pubkey?: string;
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
  if (result.keySource === "given") out(`Key: ${result.keyId} (from --pubkey ${flags.pubkey})`);
  else if (result.keySource === "manifest") {
    out(`Key: ${result.keyId} (the bundle's own: proves integrity, not origin)`);
    err("WARNING: no --pubkey given. The signature was checked with the public key the bundle itself carries.");
    err("WARNING: that proves the files are unchanged since the holder of that key signed them; it does NOT prove who signed them:");
    err("WARNING: anyone can re-sign a changed bundle with a key of their own. Get the signer's public key by another channel");
    err(`WARNING: and run: chatconform verify ${target} --pubkey FILE (key id ${result.keyId ?? "unknown"}).`);
  } else out("Key: none usable");
  for (const check of result.checks) out(`${check.ok ? "✔" : "✖"} ${check.subject}  ${check.detail}`);
  const problems = result.checks.filter((c) => !c.ok);
  if (result.valid) {
    out(`VALID: the signature, ${result.filesOk} file hash(es), the file list and the recomputed verdict check out${result.keySource === "manifest" ? " (integrity only: no --pubkey)" : ""}`);
    return EXIT_VALID;
  }
  const named = [...new Set(problems.flatMap((p) => p.subject.split(", ")))];
  const shown = named.length > 6 ? `${named.slice(0, 6).join(", ")} and ${named.length - 6} more file(s)` : named.join(", ");
  out(`INVALID: ${problems.length || 1} problem(s)${named.length ? ` in ${shown}` : ""}`);
  return EXIT_INVALID;
}
