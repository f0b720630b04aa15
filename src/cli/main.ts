// Entry point: run the program, then exit with its code once the reports are written, so no
// stray socket or timer of a broken endpoint can keep the process alive.
import { EXIT, main } from "./program.ts";

process.on("unhandledRejection", (reason) => {
  process.stderr.write(`chatconform: internal error (unhandled rejection): ${(reason as Error)?.stack ?? String(reason)}\n`);
  process.exit(EXIT.internal);
});

const code = await main(process.argv.slice(2));
process.exit(code);
