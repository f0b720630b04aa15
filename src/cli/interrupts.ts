// Ctrl-C and SIGTERM for the long commands (run, selftest): the first signal stops gracefully
// (what is running gets to write its report, marked incomplete); a second one exits at once, 130.

export interface InterruptHandling {
  /** What the process does on a signal; registered for SIGINT and SIGTERM, exposed for tests. */
  onSignal(signal: string): void;
  /** Unregister (the command is done). */
  remove(): void;
}

export function handleInterrupts(options: {
  controller: AbortController;
  /** What the first signal does, said on stderr (e.g. "no new cases start"). */
  firstMessage: string;
  err: (line: string) => void;
  exit: (code: number) => void;
  exitCode: number;
}): InterruptHandling {
  const { controller, err } = options;
  const onSignal = (signal: string) => {
    if (controller.signal.aborted) {
      err(`\n${signal} again: exiting without waiting.`);
      options.exit(options.exitCode);
      return;
    }
    err(`\n${signal}: ${options.firstMessage} (press Ctrl-C again to exit now).`);
    controller.abort(signal);
  };
  const sigint = () => onSignal("SIGINT");
  const sigterm = () => onSignal("SIGTERM");
  process.on("SIGINT", sigint);
  process.on("SIGTERM", sigterm);
  return {
    onSignal,
    remove() {
      process.off("SIGINT", sigint);
      process.off("SIGTERM", sigterm);
    },
  };
}
