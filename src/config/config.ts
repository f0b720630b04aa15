// Endpoint configuration: parse → normalise → check, every problem reported at once as `path: message`.
import { readFileSync } from "node:fs";
import path from "node:path";
import { Ajv } from "ajv";
import type { ErrorObject } from "ajv";
import { parse as parseYaml } from "yaml";
import { DEFAULT_MAX_INBOUND_BYTES_PER_SECOND, DEFAULT_TIMEOUTS } from "../protocol/connection.ts";
import type { PhaseTimeouts, TlsOptions } from "../protocol/connection.ts";
import { DEFAULT_HTTP_TIMEOUT_MS } from "../protocol/upload.ts";
import { HOOKS } from "../cases/vocabulary.ts";
import type { HookName } from "../cases/vocabulary.ts";

export interface StaticAccount {
  username: string;
  password: string;
  phone: string;
}

/** Everything the runner needs to know about the endpoint under test. */
export interface EndpointConfig {
  service: string;
  domain: string;
  tls: TlsOptions;
  /** `ineligible`: gatekeeper accounts the partner provisioned with numbers outside the policy
   *  (registration refuses such numbers), for the cases of messages from and to them. */
  accounts: { mode: "register" | "static"; prefix: string; static: StaticAccount[]; ineligible: StaticAccount[] };
  reflector?: string;
  optout?: string;
  hooks: HookName[];
  policy: string;
  /**
   * Per-phase deadlines; `stanza` for each expected stanza, `http` for each media upload or download,
   * `grace` for running cases after Ctrl-C or SIGTERM.
   */
  timeouts: PhaseTimeouts & { stanza: number; http?: number; grace?: number };
  /** Largest stanza accepted from the endpoint; a bigger one ends the connection (policy-violation). */
  maxStanzaBytes: number;
  /** Largest rate of bytes accepted from the endpoint per connection; more ends the connection (policy-violation). */
  maxInboundBytesPerSecond?: number;
  /** The endpoint is a local test endpoint (the in-process reference partner, a loopback server). */
  localTestEndpoint: boolean;
}

export const configSchema = {
  $defs: {
    account: {
      type: "object",
      additionalProperties: false,
      required: ["username", "password", "phone"],
      properties: { username: { type: "string", minLength: 1 }, password: { type: "string", minLength: 1 }, phone: { type: "string" } },
    },
  },
  type: "object",
  additionalProperties: false,
  required: ["domain"],
  properties: {
    endpoint: { type: "string", pattern: "^xmpps?://[^\\s/]+(:\\d+)?/?$" },
    domain: { type: "string", pattern: "^[a-zA-Z0-9.-]+$" },
    tls: {
      type: "object",
      additionalProperties: false,
      properties: {
        ca: { type: "string", minLength: 1 },
        servername: { type: "string", minLength: 1 },
        insecure: { type: "boolean" },
      },
    },
    accounts: {
      type: "object",
      additionalProperties: false,
      properties: {
        mode: { enum: ["register", "static"] },
        prefix: { type: "string", pattern: "^[a-z0-9._-]+$" },
        static: { type: "array", items: { $ref: "#/$defs/account" } },
        ineligible: { type: "array", items: { $ref: "#/$defs/account" } },
      },
    },
    reflector: { type: "string", pattern: "^[^@/\\s]+@[^@/\\s]+$" },
    optout: { type: "string", pattern: "^[^@/\\s]+@[^@/\\s]+$" },
    hooks: { type: "array", uniqueItems: true, items: { enum: [...HOOKS] } },
    policy: { enum: ["eea", "whatsapp-european-region"] },
    timeouts: {
      type: "object",
      additionalProperties: false,
      properties: {
        ...Object.fromEntries(["connect", "stream", "tls", "sasl", "bind", "iq", "stanza"].map((k) => [k, { type: "integer", minimum: 50, maximum: 600000 }])),
        http: { type: "integer", minimum: 50, maximum: 600000 },
        grace: { type: "integer", minimum: 0, maximum: 600000 },
      },
    },
    maxStanzaBytes: { type: "integer", minimum: 1024 },
    maxInboundBytesPerSecond: { type: "integer", minimum: 1024 },
    localTestEndpoint: { type: "boolean" },
  },
} as const;

export class ConfigError extends Error {
  constructor(readonly problems: string[], source: string) {
    super(`${source}: ${problems.length} problem(s):\n${problems.map((p) => `  ${p}`).join("\n")}`);
    this.name = "ConfigError";
  }
}

const ajv = new Ajv({ allErrors: true, strict: false });
const validateConfig = ajv.compile(configSchema);

function describe(e: ErrorObject): string {
  const where = e.instancePath ? e.instancePath.slice(1).replace(/\//g, ".") : "(config)";
  if (e.keyword === "additionalProperties") return `${where}: unknown key "${(e.params as { additionalProperty: string }).additionalProperty}"`;
  if (e.keyword === "enum") return `${where}: must be one of ${(e.params as { allowedValues: unknown[] }).allowedValues.join(", ")}`;
  return `${where}: ${e.message}`;
}

export const DEFAULT_STANZA_TIMEOUT = 5000;
/** How long running cases may go on after Ctrl-C or SIGTERM before they are stopped. */
export const DEFAULT_GRACE_MS = 2000;
/** An XMPP stanza carries no media (that goes over HTTP upload): 1 MiB is far above any stanza of a case. */
export const DEFAULT_MAX_STANZA_BYTES = 1024 * 1024;

/** Command-line overrides of the config (CLI flags and config keys are one vocabulary). */
export interface ConfigOverrides {
  endpoint?: string;
  policy?: string;
  /** --ca FILE: replaces tls.ca; a relative path is relative to the working directory. */
  ca?: string;
  /** --insecure: sets tls.insecure. */
  insecure?: boolean;
}

/** Check a parsed config object and turn it into an EndpointConfig. `baseDir` resolves relative file paths. */
export function normaliseConfig(data: unknown, options: { source: string; baseDir: string } & ConfigOverrides): EndpointConfig {
  if (!validateConfig(data)) throw new ConfigError((validateConfig.errors ?? []).map(describe), options.source);
  const raw = data as {
    endpoint?: string; domain: string; tls?: { ca?: string; servername?: string; insecure?: boolean };
    accounts?: { mode?: "register" | "static"; prefix?: string; static?: StaticAccount[]; ineligible?: StaticAccount[] };
    reflector?: string; optout?: string; hooks?: HookName[]; policy?: string;
    timeouts?: Partial<PhaseTimeouts & { stanza: number; http: number; grace: number }>; maxStanzaBytes?: number; maxInboundBytesPerSecond?: number;
    localTestEndpoint?: boolean;
  };
  const problems: string[] = [];
  const service = options.endpoint ?? raw.endpoint;
  if (!service) problems.push("endpoint: no endpoint given (set endpoint: in the config or pass --endpoint xmpp://HOST:PORT)");
  else if (!/^xmpps?:\/\/[^\s/]+(:\d+)?\/?$/.test(service)) problems.push(`endpoint: "${service}" is not xmpp://host:port or xmpps://host:port`);
  let ca: string | undefined;
  const caSource = options.ca !== undefined ? { where: "--ca", file: path.resolve(options.ca) } : raw.tls?.ca ? { where: "tls.ca", file: path.resolve(options.baseDir, raw.tls.ca) } : undefined;
  if (caSource) {
    try {
      ca = readFileSync(caSource.file, "utf8");
      if (!ca.includes("BEGIN CERTIFICATE")) problems.push(`${caSource.where}: ${caSource.file} is not a PEM certificate`);
    } catch (err) {
      problems.push(`${caSource.where}: cannot read ${caSource.file}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
    }
  }
  const mode = raw.accounts?.mode ?? "register";
  const staticAccounts = raw.accounts?.static ?? [];
  if (mode === "static" && staticAccounts.length === 0) problems.push("accounts.static: static mode needs at least one account");
  const policy = options.policy ?? raw.policy ?? "eea";
  if (!["eea", "whatsapp-european-region"].includes(policy)) problems.push(`policy: "${policy}" must be one of eea, whatsapp-european-region`);
  for (const key of ["reflector", "optout"] as const) {
    const jid = raw[key];
    if (jid && jid.split("@")[1] !== raw.domain) problems.push(`${key}: ${jid} is not on the endpoint's domain ${raw.domain}`);
  }
  if (problems.length) throw new ConfigError(problems, options.source);
  return {
    service: service!,
    domain: raw.domain,
    tls: { ca, servername: raw.tls?.servername, insecure: options.insecure || (raw.tls?.insecure ?? false) },
    accounts: { mode, prefix: raw.accounts?.prefix ?? "tpc-test-", static: staticAccounts, ineligible: raw.accounts?.ineligible ?? [] },
    reflector: raw.reflector,
    optout: raw.optout,
    hooks: raw.hooks ?? [],
    policy,
    timeouts: { ...DEFAULT_TIMEOUTS, stanza: DEFAULT_STANZA_TIMEOUT, http: DEFAULT_HTTP_TIMEOUT_MS, grace: DEFAULT_GRACE_MS, ...raw.timeouts },
    maxStanzaBytes: raw.maxStanzaBytes ?? DEFAULT_MAX_STANZA_BYTES,
    maxInboundBytesPerSecond: raw.maxInboundBytesPerSecond ?? DEFAULT_MAX_INBOUND_BYTES_PER_SECOND,
    localTestEndpoint: raw.localTestEndpoint ?? false,
  };
}

export function loadConfigFile(file: string, overrides: ConfigOverrides = {}): EndpointConfig {
  let text: string;
  try {
    text = readFileSync(file, "utf8");
  } catch (err) {
    throw new ConfigError([`cannot read the config file: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`], file);
  }
  let data: unknown;
  try {
    data = parseYaml(text);
  } catch (err) {
    throw new ConfigError([`not valid YAML: ${(err as Error).message.split("\n")[0]}`], file);
  }
  return normaliseConfig(data ?? {}, { source: file, baseDir: path.dirname(path.resolve(file)), ...overrides });
}

/** Secrets that must never appear in any artifact of a run. */
export function configSecrets(config: EndpointConfig): string[] {
  return [...config.accounts.static, ...config.accounts.ineligible].map((a) => a.password);
}
