// `chatconform keygen [--out DIR]`: an Ed25519 key pair for `run --sign`. Prints where the keys are
// and the public key's id; never the private key. Exit 0, or 3 when a key file is already there.
import path from "node:path";
import { SigningKeyError, writeKeyPair } from "../report/signing.ts";

const EXIT_OK = 0;
const EXIT_BAD_INPUT = 3;

export interface KeygenFlags {
  out: string;
}

export interface KeygenOutput {
  out: (line?: string) => void;
  err: (line?: string) => void;
}

/** A path relative to the working directory when it is below it, absolute otherwise. */
function shown(file: string): string {
  const rel = path.relative(process.cwd(), file);
  return rel && !rel.startsWith("..") && !path.isAbsolute(rel) ? rel : file;
}

export function keygenCommand(flags: KeygenFlags, io: KeygenOutput): number {
  let written;
  try {
    written = writeKeyPair(path.resolve(flags.out));
  } catch (e) {
    if (e instanceof SigningKeyError) {
      io.err(`chatconform keygen: ${e.message}`);
      return EXIT_BAD_INPUT;
    }
    throw e;
  }
  io.out(`private key: ${written.privateKeyFile}  (mode 0600; keep it secret, never commit or share it)`);
  io.out(`public key:  ${written.publicKeyFile}  (give it to whoever verifies your bundles)`);
  io.out(`key id:      ${written.keyId}`);
  io.out("");
  io.out(`sign a run:  npx chatconform run --sign ${shown(written.privateKeyFile)}`);
  io.out(`verify it:   npx chatconform verify reports/latest --pubkey ${shown(written.publicKeyFile)}`);
  return EXIT_OK;
}
