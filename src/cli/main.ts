// Entry point: run the program, then exit with its code once the reports are written, so no
// stray socket or timer of a broken endpoint can keep the process alive.
import { EXIT, main } from "./program.ts";

process.on("unhandledRejection", (reason) => {
  process.stderr.write(`chatconform: internal error (unhandled rejection): ${(reason as Error)?.stack ?? String(reason)}\n`);
  process.exit(EXIT.internal);
});

/** Resolves once everything written to the stream so far has been handed to the OS (a pipe may be slow). */
function flushed(stream: NodeJS.WriteStream): Promise<void> {
  return new Promise((resolve) => {
    if (stream.destroyed || !stream.writable) return resolve();
    stream.write("", () => resolve());
  });
}

const code = await main(process.argv.slice(2));
// process.exit drops what a pipe has not taken yet (e.g. `report render … | wc -c` got 128 KiB).
await Promise.all([flushed(process.stdout), flushed(process.stderr)]);
process.exit(code);
