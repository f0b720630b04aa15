// Errors nobody awaited: an exception thrown from a socket or timer callback, a rejected promise
// nobody handles. The runner runs each case inside a scope (AsyncLocalStorage follows the case into
// every callback and promise it starts); the process-level handlers of the CLI entry (main.ts) give
// such an error to the case it belongs to, which ends as `error` with the reason, instead of letting
// it kill the process and the report with it. Errors outside any case go to the running run.
import { AsyncLocalStorage } from "node:async_hooks";

export interface StrayScope {
  /** Called with an error that escaped from code started inside the scope. */
  report(error: unknown): void;
}

const scopes = new AsyncLocalStorage<StrayScope>();
const runSinks: ((error: unknown) => void)[] = [];

/** Run `fn` so that errors escaping from anything it starts are reported to `scope`. */
export function runInScope<T>(scope: StrayScope, fn: () => T): T {
  return scopes.run(scope, fn);
}

/** While a run is going on, errors outside any case scope go to `sink`; returns the unregister function. */
export function addRunSink(sink: (error: unknown) => void): () => void {
  runSinks.push(sink);
  return () => {
    const index = runSinks.indexOf(sink);
    if (index !== -1) runSinks.splice(index, 1);
  };
}

/**
 * For process.on("uncaughtException" | "unhandledRejection"): hand the error to the case scope it
 * was raised in, else to the latest running run. False when nothing claims it (the caller decides).
 */
export function routeStrayError(error: unknown): boolean {
  const scope = scopes.getStore();
  if (scope) {
    scope.report(error);
    return true;
  }
  const sink = runSinks.at(-1);
  if (sink) {
    sink(error);
    return true;
  }
  return false;
}

export function describeError(error: unknown): string {
  if (error instanceof Error) return error.message || error.name || String(error);
  return String(error);
}

type ProcessErrorEvent = "uncaughtException" | "unhandledRejection";

/**
 * Make `handlers` the process's only handlers of uncaught exceptions and unhandled rejections (for
 * the CLI entry). Libraries must not decide what happens to the process: the emscripten build of
 * curve25519 under libsignal registers, when imported, handlers that abort on any unhandled
 * rejection and rethrow any uncaught exception, which would kill the run and its report for an error
 * that belongs to one case. Handlers registered before are removed; one registered later is removed
 * right after (a microtask, before it can see an error).
 */
export function ownProcessErrorHandlers(handlers: Record<ProcessErrorEvent, (error: unknown) => void>): void {
  for (const event of ["uncaughtException", "unhandledRejection"] as const) {
    process.removeAllListeners(event);
    process.on(event, handlers[event]);
  }
  process.on("newListener", (event: string | symbol, listener: (...args: unknown[]) => void) => {
    if (event !== "uncaughtException" && event !== "unhandledRejection") return;
    if (listener === handlers[event]) return;
    queueMicrotask(() => process.off(event, listener));
  });
}
