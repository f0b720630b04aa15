// What a run records about itself beyond its results (docs/evidence.md): the suite's git commit,
// the endpoint's TLS certificate as the suite saw it, the effective config with its secrets
// redacted, and the exact command line. Small functions with their inputs passed in, no printing.
import { createHash } from "node:crypto";
import { readFileSync, statSync } from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";
import type { EndpointConfig } from "../config/config.ts";
import { XmppConnection } from "../protocol/connection.ts";
import type { ConnectionError, ConnectionOptions } from "../protocol/connection.ts";
import { NS } from "../protocol/xml.ts";
import type { EndpointTlsInfo, RedactedConfig } from "./events.ts";

/** The directory the suite runs from (the one holding package.json). */
export const SUITE_ROOT = fileURLToPath(new URL("../../", import.meta.url));

export const UNKNOWN_COMMIT = "unknown";

const COMMIT = /^(?:[0-9a-f]{40}|[0-9a-f]{64})$/;

function readText(file: string): string | undefined {
  try {
    return readFileSync(file, "utf8");
  } catch {
    return undefined;
  }
}

/**
 * The commit checked out in `root`, read from `root/.git` without running git (a linked worktree's
 * `.git` file and packed refs included). Only `root` itself is looked at, never its parents: a copy
 * installed by npm inside someone else's repository is not a checkout of the suite, and its commit
 * is "unknown".
 */
export function gitCommit(root: string = SUITE_ROOT): string {
  let gitDir = path.join(root, ".git");
  try {
    if (statSync(gitDir).isFile()) {
      const pointer = /^gitdir:\s*(.+?)\s*$/m.exec(readText(gitDir) ?? "");
      if (!pointer) return UNKNOWN_COMMIT;
      gitDir = path.resolve(root, pointer[1]!);
    }
  } catch {
    return UNKNOWN_COMMIT;
  }
  const head = readText(path.join(gitDir, "HEAD"))?.trim();
  if (!head) return UNKNOWN_COMMIT;
  if (COMMIT.test(head)) return head;
  const ref = /^ref:\s*(refs\/\S+)$/.exec(head)?.[1];
  if (!ref || ref.split("/").includes("..")) return UNKNOWN_COMMIT;
  // A linked worktree keeps HEAD in its own directory and the refs in the common one.
  const common = readText(path.join(gitDir, "commondir"))?.trim();
  const dirs = common ? [gitDir, path.resolve(gitDir, common)] : [gitDir];
  for (const dir of dirs) {
    const loose = readText(path.join(dir, ref))?.trim();
    if (loose && COMMIT.test(loose)) return loose;
  }
  for (const dir of dirs) {
    for (const line of (readText(path.join(dir, "packed-refs")) ?? "").split("\n")) {
      const [commit, name] = line.trim().split(/\s+/);
      if (name === ref && commit && COMMIT.test(commit)) return commit;
    }
  }
  return UNKNOWN_COMMIT;
}

/** What replaces a secret in the recorded config (the same marker the report uses). */
export const REDACTED_VALUE = "[redacted]";

/**
 * The effective config as a report records it. An allow-list: every field is copied by name, so a
 * secret added to the config later cannot slip into reports; passwords become "[redacted]" and the
 * CA PEM its sha256 (of the text as read, i.e. `sha256sum` of the file).
 */
export function redactConfig(config: EndpointConfig): RedactedConfig {
  const account = (a: { username: string; phone: string }) => ({ username: a.username, password: REDACTED_VALUE, phone: a.phone });
  return {
    service: config.service,
    domain: config.domain,
    tls: {
      ...(config.tls.ca !== undefined ? { caSha256: createHash("sha256").update(config.tls.ca).digest("hex") } : {}),
      ...(config.tls.servername !== undefined ? { servername: config.tls.servername } : {}),
      insecure: config.tls.insecure ?? false,
    },
    accounts: {
      mode: config.accounts.mode,
      prefix: config.accounts.prefix,
      static: config.accounts.static.map(account),
      ineligible: config.accounts.ineligible.map(account),
    },
    ...(config.reflector !== undefined ? { reflector: config.reflector } : {}),
    ...(config.optout !== undefined ? { optout: config.optout } : {}),
    hooks: [...config.hooks],
    policy: config.policy,
    timeouts: { ...config.timeouts },
    maxStanzaBytes: config.maxStanzaBytes,
    maxInboundBytesPerSecond: config.maxInboundBytesPerSecond,
    localTestEndpoint: config.localTestEndpoint,
  };
}

/**
 * Open one connection to the endpoint, establish TLS (direct or STARTTLS; nothing is
 * authenticated) and record the certificate. When the configured trust rejects the certificate, a
 * second connection that accepts any certificate reads it anyway, so the record names the
 * certificate that was refused (verified: false, with the reason). Never throws.
 */
export async function probeEndpointTls(config: EndpointConfig): Promise<EndpointTlsInfo> {
  const options: ConnectionOptions = { service: config.service, domain: config.domain, tls: config.tls, timeouts: config.timeouts, maxStanzaBytes: config.maxStanzaBytes };
  const first = await readCertificate(options);
  if (first.certificateSha256 !== undefined || first.kind !== "tls" || config.tls.insecure) return strip(first);
  const second = await readCertificate({ ...options, tls: { ...config.tls, insecure: true } });
  return second.certificateSha256 !== undefined ? { ...strip(second), verified: false, error: first.error } : strip(first);
}

type Probe = EndpointTlsInfo & { kind?: string };

const strip = ({ kind: _kind, ...info }: Probe): EndpointTlsInfo => info;

async function readCertificate(options: ConnectionOptions): Promise<Probe> {
  let conn: XmppConnection | undefined;
  try {
    conn = await XmppConnection.open(options);
    if (!conn.secure) {
      if (!conn.hasFeature("starttls", NS.tls)) return { verified: false, error: "the endpoint does not offer STARTTLS", kind: "protocol" };
      await conn.startTls();
    }
    const cert = conn.peerCertificate;
    if (!cert) return { verified: false, error: "the endpoint presented no certificate", kind: "tls" };
    return {
      certificateSha256: cert.sha256,
      subject: cert.subject,
      issuer: cert.issuer,
      validFrom: cert.validFrom,
      validTo: cert.validTo,
      ...(cert.protocol ? { protocol: cert.protocol } : {}),
      verified: cert.authorized,
    };
  } catch (err) {
    const error = err as ConnectionError;
    return { verified: false, error: error.message || String(err), kind: error.kind };
  } finally {
    await conn?.close().catch(() => undefined);
  }
}

const SAFE_ARG = /^[A-Za-z0-9_@%+=:,./-]+$/;

/** Arguments joined as a POSIX shell would need them typed: the exact command line, copy-pasteable. */
export function shellJoin(args: readonly string[]): string {
  return args.map((a) => (SAFE_ARG.test(a) ? a : `'${a.replace(/'/g, "'\\''")}'`)).join(" ");
}
