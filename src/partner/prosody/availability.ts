// Is Prosody (and its Lua) installed here? The one place that says what to install and how.
import { spawnSync } from "node:child_process";
import { accessSync, constants } from "node:fs";
import path from "node:path";

export const INSTALL_HINT =
  "install Prosody 0.12 or later (Debian/Ubuntu: `sudo apt-get update && sudo apt-get install -y prosody`; " +
  "other systems: https://prosody.im/download/start), or set CHATCONFORM_PROSODY to the prosody executable";

/** Prosody is missing or unusable; the message says what to install and how. */
export class ProsodyNotInstalledError extends Error {
  constructor(detail: string) {
    super(`Prosody is needed for the Prosody-backed partner but ${detail}: ${INSTALL_HINT}`);
    this.name = "ProsodyNotInstalledError";
  }
}

function onPath(name: string): string | undefined {
  if (name.includes("/")) {
    try {
      accessSync(name, constants.X_OK);
      return name;
    } catch {
      return undefined;
    }
  }
  for (const dir of (process.env.PATH ?? "").split(path.delimiter)) {
    if (!dir) continue;
    const candidate = path.join(dir, name);
    try {
      accessSync(candidate, constants.X_OK);
      return candidate;
    } catch {
      // not here
    }
  }
  return undefined;
}

export interface ProsodyInstallation {
  /** The prosody executable. */
  prosody: string;
  /** The Lua interpreter Prosody runs on (from the executable's #! line), for running Lua alone. */
  lua: string | undefined;
}

const found = new Map<string, ProsodyInstallation | ProsodyNotInstalledError>();

/** Find prosody (CHATCONFORM_PROSODY or PATH) and its Lua; throws ProsodyNotInstalledError. */
export function findProsody(): ProsodyInstallation {
  const wanted = process.env.CHATCONFORM_PROSODY || "prosody";
  let result = found.get(wanted);
  if (!result) found.set(wanted, (result = locate(wanted)));
  if (result instanceof Error) throw result;
  return result;
}

function locate(wanted: string): ProsodyInstallation | ProsodyNotInstalledError {
  const prosody = onPath(wanted);
  if (!prosody) return new ProsodyNotInstalledError(`no executable "${wanted}" was found on the PATH`);
  // /usr/bin/prosody starts with "#!/usr/bin/env lua5.4": the same interpreter runs the policy's Lua tests.
  let lua: string | undefined;
  const head = spawnSync("head", ["-n", "1", prosody], { encoding: "utf8" });
  const shebang = head.status === 0 ? /^#!\s*(?:\S*\/env\s+)?(\S+)/.exec(head.stdout) : null;
  if (shebang) lua = onPath(shebang[1]!);
  lua ??= onPath("lua5.4") ?? onPath("lua");
  return { prosody, lua };
}

/** Why Prosody-backed tests cannot run here, or undefined when they can. */
export function prosodySkipReason(): string | undefined {
  try {
    findProsody();
    return undefined;
  } catch (err) {
    return (err as Error).message;
  }
}
