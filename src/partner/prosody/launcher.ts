// Prosody as a child process: start it in the foreground on a written config, wait until it says it
// listens where we asked and mod_tpc has provisioned its accounts (events on its log, no sleeps),
// and stop it by pid: SIGTERM, then SIGKILL if it does not exit in time. Its stdin stays an open
// pipe; mod_tpc shuts Prosody down when it closes, so even a killed parent leaves nothing behind.
import { spawn } from "node:child_process";
import type { ChildProcess } from "node:child_process";
import { readFileSync } from "node:fs";
import { findProsody } from "./availability.ts";

export interface ProsodyProcessOptions {
  configFile: string;
  cwd: string;
  /** The ports it must report as activated before it counts as ready. */
  c2s: { host: string; port: number };
  https: { host: string; port: number };
  /** How long startup may take before it is given up (default 30 s). */
  startTimeoutMs?: number;
  /** Every line Prosody logs. */
  log?: (line: string) => void;
}

export interface ProsodyProcess {
  readonly pid: number;
  /** Resolves when the process has exited. */
  readonly exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  /** SIGTERM, then SIGKILL after `graceMs` (default 5 s); resolves once it has exited. */
  stop(graceMs?: number): Promise<void>;
  /** The last lines it logged (for error messages). */
  tail(): string;
}

/** Prosody exited or failed before it was ready; the message carries its last log lines. */
export class ProsodyStartError extends Error {
  constructor(message: string, readonly portInUse = false) {
    super(message);
    this.name = "ProsodyStartError";
  }
}

/** CPU time (user + system) a process has used so far, from /proc (Linux), for the log. */
function cpuMs(pid: number | undefined): number | undefined {
  if (pid === undefined) return undefined;
  try {
    const fields = readFileSync(`/proc/${pid}/stat`, "utf8").split(") ")[1]!.split(" ");
    return (Number(fields[11]) + Number(fields[12])) * 10;
  } catch {
    return undefined;
  }
}

const live = new Set<ChildProcess>();
let exitHookInstalled = false;

/** On any exit of this process, kill what is still running (synchronously: "exit" allows nothing else). */
function installExitHook(): void {
  if (exitHookInstalled) return;
  exitHookInstalled = true;
  process.on("exit", () => {
    for (const child of live) {
      try {
        child.kill("SIGKILL");
      } catch {
        // already gone
      }
    }
  });
}

export async function startProsodyProcess(options: ProsodyProcessOptions): Promise<ProsodyProcess> {
  const { prosody } = findProsody();
  installExitHook();
  const child = spawn(prosody, ["-F", "--config", options.configFile], {
    cwd: options.cwd,
    stdio: ["pipe", "pipe", "pipe"],
    env: { ...process.env, LANG: "C.UTF-8" },
  });
  live.add(child);
  const lines: string[] = [];
  const log = options.log ?? (() => undefined);
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => {
    child.once("exit", (code, signal) => {
      live.delete(child);
      resolve({ code, signal });
    });
  });
  child.stdin!.on("error", () => undefined); // EPIPE when it is gone first

  const wanted = {
    c2s: `Activated service 'c2s' on [${options.c2s.host}]:${options.c2s.port}`,
    https: `Activated service 'https' on [${options.https.host}]:${options.https.port}`,
    ready: "chatconform-ready",
  };
  const seen = new Set<keyof typeof wanted>();
  let resolveReady!: () => void;
  let rejectReady!: (err: Error) => void;
  const ready = new Promise<void>((resolve, reject) => {
    resolveReady = resolve;
    rejectReady = reject;
  });
  const tail = () => lines.slice(-25).join("\n");

  const onLine = (line: string) => {
    lines.push(line);
    if (lines.length > 200) lines.shift();
    log(line);
    for (const key of Object.keys(wanted) as (keyof typeof wanted)[]) {
      if (line.includes(wanted[key])) seen.add(key);
    }
    if (/Failed to open server port|Address already in use/i.test(line)) {
      failure ??= { what: "Prosody could not listen where it was asked", portInUse: true };
    } else if (/Error (initializing|loading) module/.test(line)) {
      failure ??= { what: "Prosody could not load a module", portInUse: false };
    } else if (seen.size === Object.keys(wanted).length) {
      resolveReady();
    }
  };
  // A failure is reported once the chunk that carried it is read: its traceback comes with it.
  let failure: { what: string; portInUse: boolean } | undefined;
  const afterChunk = () => {
    if (failure) rejectReady(new ProsodyStartError(`${failure.what}:\n${tail()}`, failure.portInUse));
  };
  for (const stream of [child.stdout!, child.stderr!]) {
    let buffer = "";
    stream.setEncoding("utf8");
    stream.on("data", (chunk: string) => {
      buffer += chunk;
      let nl: number;
      while ((nl = buffer.indexOf("\n")) >= 0) {
        onLine(buffer.slice(0, nl).trimEnd());
        buffer = buffer.slice(nl + 1);
      }
      afterChunk();
    });
  }
  child.once("error", (err) => rejectReady(new ProsodyStartError(`Prosody could not be started (${prosody}): ${err.message}`)));
  void exited.then(({ code, signal }) => rejectReady(new ProsodyStartError(`Prosody exited during startup (${signal ?? `code ${code}`}):\n${tail()}`)));

  const handle: ProsodyProcess = {
    pid: child.pid ?? -1,
    exited,
    tail,
    async stop(graceMs = 5000) {
      if (child.exitCode !== null || child.signalCode !== null) return;
      const cpu = cpuMs(child.pid);
      if (cpu !== undefined) log(`chatconform: prosody used ${cpu} ms of CPU`);
      child.kill("SIGTERM");
      let timer: NodeJS.Timeout | undefined;
      const killed = new Promise<void>((resolve) => {
        timer = setTimeout(() => {
          child.kill("SIGKILL");
          resolve();
        }, graceMs);
      });
      await Promise.race([exited, killed]);
      clearTimeout(timer);
      await exited;
    },
  };

  // A deadline only as a backstop: readiness itself is the log lines above.
  const timeoutMs = options.startTimeoutMs ?? 30_000;
  let deadline: NodeJS.Timeout | undefined;
  const timedOut = new Promise<never>((_, reject) => {
    deadline = setTimeout(() => reject(new ProsodyStartError(`Prosody was not ready after ${timeoutMs} ms:\n${tail()}`)), timeoutMs);
  });
  try {
    await Promise.race([ready, timedOut]);
  } catch (err) {
    await handle.stop(1000);
    throw err;
  } finally {
    clearTimeout(deadline);
  }
  return handle;
}
