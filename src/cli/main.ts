// Entry point: run the program, then exit with its code once the reports are written, so no
// stray socket or timer of a broken endpoint can keep the process alive.
import { EXIT, main } from "./program.ts";
import { ownProcessErrorHandlers, routeStrayError } from "../runner/stray.ts";

// An error nobody awaited (a socket callback that threw, a rejection nobody handled) belongs to the
// case it came from, which ends as `error` (src/runner/stray.ts); the run and its report go on. Only
// an error outside any run is the suite's own: exit 4. These are the process's only such handlers
// (a library's own, which would abort the process, are removed).
const onStray = (what: string) => (error: unknown) => {
  if (routeStrayError(error)) return;
  process.stderr.write(`chatconform: internal error (${what}): ${(error as Error)?.stack ?? String(error)}\n`);
  process.exit(EXIT.internal);
};
ownProcessErrorHandlers({ unhandledRejection: onStray("unhandled rejection"), uncaughtException: onStray("uncaught exception") });

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
