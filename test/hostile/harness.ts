// Driving the real CLI against the hostile server: certificates, an endpoint config with short
// deadlines, a child process with its exit code and output, and the report it wrote.
import { spawn } from "node:child_process";
import type { ChildProcess } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { generate } from "selfsigned";
import { stringify as toYaml } from "yaml";
import { generateCertificate } from "../../src/partner/tls.ts";
import type { GeneratedCertificate } from "../../src/partner/tls.ts";

export const ROOT = fileURLToPath(new URL("../..", import.meta.url));
export const BIN = path.join(ROOT, "bin", "chatconform.js");
export const DOMAIN = "hostile.test";
export const ACCOUNTS = [1, 2, 3].map((i) => ({ username: `tpc-test-hostile-${i}`, password: `hostile-password-${i}`, phone: `+3361234567${i}` }));

/** Per-phase deadlines of the hostile runs: short, so that every stall ends fast. */
export const PHASE_MS = 800;

export interface Certificates {
  /** For hostile.test, self-signed: trusted only when passed as the CA. */
  good: GeneratedCertificate;
  /** For other.example: the wrong host name for hostile.test. */
  wrongHost: GeneratedCertificate;
  /** For hostile.test, expired a year ago. */
  expired: GeneratedCertificate;
}

let certificates: Promise<Certificates> | undefined;

export function hostileCertificates(): Promise<Certificates> {
  certificates ??= (async () => {
    const good = await generateCertificate(DOMAIN);
    const wrongHost = await generateCertificate("other.example");
    const day = 24 * 3600 * 1000;
    const pems = await generate([{ name: "commonName", value: DOMAIN }], {
      keyType: "ec",
      curve: "P-256",
      algorithm: "sha256",
      notBeforeDate: new Date(Date.now() - 730 * day),
      notAfterDate: new Date(Date.now() - 365 * day),
      extensions: [
        { name: "basicConstraints", cA: true },
        { name: "keyUsage", digitalSignature: true, keyCertSign: true },
        { name: "extKeyUsage", serverAuth: true },
        { name: "subjectAltName", altNames: [{ type: 2, value: DOMAIN }] },
      ],
    });
    return { good, wrongHost, expired: { keyPem: pems.private, certPem: pems.cert } };
  })();
  return certificates;
}

export interface EndpointOptions {
  port: number;
  /** PEM written next to the config as tls.ca; none: the system store (nothing trusts the test CA). */
  caPem?: string;
  timeouts?: Record<string, number>;
  maxStanzaBytes?: number;
  maxInboundBytesPerSecond?: number;
}

/** A fresh directory with endpoint.yaml (and ca.pem) for one run; returns the config path and the reports directory. */
export function writeEndpoint(options: EndpointOptions): { dir: string; config: string; out: string } {
  const dir = mkdtempSync(path.join(os.tmpdir(), "chatconform-hostile-"));
  const config: Record<string, unknown> = {
    endpoint: `xmpp://127.0.0.1:${options.port}`,
    domain: DOMAIN,
    accounts: { mode: "static", static: ACCOUNTS },
    reflector: `reflector@${DOMAIN}`,
    timeouts: { connect: PHASE_MS, stream: PHASE_MS, tls: PHASE_MS, sasl: PHASE_MS, bind: PHASE_MS, iq: PHASE_MS, stanza: PHASE_MS, grace: 300, ...options.timeouts },
    maxStanzaBytes: options.maxStanzaBytes ?? 64 * 1024,
    maxInboundBytesPerSecond: options.maxInboundBytesPerSecond ?? 512 * 1024,
    localTestEndpoint: true,
  };
  if (options.caPem) {
    writeFileSync(path.join(dir, "ca.pem"), options.caPem);
    config.tls = { ca: "ca.pem" };
  }
  const file = path.join(dir, "endpoint.yaml");
  writeFileSync(file, toYaml(config));
  return { dir, config: file, out: path.join(dir, "reports") };
}

export interface CliRun {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
  /** Wall time from spawn to exit. */
  ms: number;
  /** The test's backstop had to kill the child: it hung. */
  killed: boolean;
}

/**
 * Run `chatconform ARGS` as a user does. `onSpawn` sees the child (to signal it); the backstop only
 * guards the test run against a hung child, it is never how a run is meant to end.
 */
export function runCli(args: string[], options: { backstopMs?: number; onSpawn?: (child: ChildProcess) => void; env?: NodeJS.ProcessEnv } = {}): Promise<CliRun> {
  const started = performance.now();
  const child = spawn(process.execPath, [BIN, ...args], { cwd: ROOT, env: { ...process.env, NO_COLOR: "1", ...options.env }, stdio: ["ignore", "pipe", "pipe"] });
  let stdout = "";
  let stderr = "";
  child.stdout!.setEncoding("utf8").on("data", (d: string) => (stdout += d));
  child.stderr!.setEncoding("utf8").on("data", (d: string) => (stderr += d));
  let killed = false;
  const backstop = setTimeout(() => {
    killed = true;
    child.kill("SIGKILL");
  }, options.backstopMs ?? 45_000);
  options.onSpawn?.(child);
  return new Promise((resolve) => {
    child.on("close", (code, signal) => {
      clearTimeout(backstop);
      resolve({ code, signal, stdout, stderr, ms: performance.now() - started, killed });
    });
  });
}

export interface CaseRow {
  id: string;
  status: string;
  reason?: string;
  failures: { requirement: string; actual: string }[];
}

export interface HostileReport {
  verdict: string;
  incomplete: boolean;
  incompleteReason?: string;
  startedAt: string;
  finishedAt: string;
  run: { config?: { tls: { insecure: boolean } }; tls?: { verified: boolean; error?: string } };
  cases: CaseRow[];
}

/** reports/latest/report.json of a run, parsed (undefined when none was written). */
export function readReport(out: string): { doc: HostileReport; raw: unknown } | undefined {
  const file = path.join(out, "latest", "report.json");
  if (!existsSync(file)) return undefined;
  const raw = JSON.parse(readFileSync(file, "utf8")) as unknown;
  return { doc: raw as HostileReport, raw };
}

/** Status of each case, by id. */
export function statuses(report: HostileReport): Record<string, string> {
  return Object.fromEntries(report.cases.filter((c) => c.status !== "skip" || c.reason?.startsWith("not run")).map((c) => [c.id, c.status]));
}
