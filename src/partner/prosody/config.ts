// The Prosody configuration of the Prosody-backed reference partner: one temp dir per launch, with
// loopback ports, data dir, pidfile, certificate, fast SCRAM, the modules TPC/1 needs, and mod_tpc
// (lua/mod_tpc.lua) with its generated eligibility data. A partner team can read the written
// prosody.cfg.lua as a starting point for its own server.
import { fileURLToPath } from "node:url";
import { ACCOUNT_FEATURES, POLICY_CHECKS } from "../server/index.ts";
import { DEFAULT_MAX_FILE_SIZE } from "../upload.ts";
import { toLua } from "./eligibility-data.ts";
import { REGISTRATION_INSTRUCTIONS } from "../server/register.ts";

/** Where mod_tpc.lua and tpc_eligibility.lua live (Prosody's plugin_paths). */
export const PLUGIN_DIR = fileURLToPath(new URL("./lua/", import.meta.url));

/** What a Prosody fault changes in the configuration (the rest of the faults are mod_tpc's). */
export interface ConfigFaults {
  /** c2s_require_encryption = false: STARTTLS becomes optional (fault no-starttls). */
  tlsOptional?: boolean;
  /** modules_disabled offline: messages to an offline user are not stored (fault offline-dropped). */
  noOffline?: boolean;
  /** The upload limit (fault media-tiny-limit: 1 MiB). */
  maxFileSize?: number;
  /** Extra modules (e.g. lastactivity for activity-served). */
  extraModules?: string[];
}

export interface ProsodyConfigOptions {
  dir: string;
  domain: string;
  host: string;
  c2sPort: number;
  httpsPort: number;
  certFile: string;
  keyFile: string;
  dataFile: string;
  /** mod_tpc's faults (names of checks it switches off, and the few other switches it knows). */
  tpcFaults: string[];
  partnerUsers: { username: string; password: string; optedOut?: boolean }[];
  gatekeeperUsers: { username: string; password: string; phone: string }[];
  scramIterations?: number;
  faults?: ConfigFaults;
}

/** The text of prosody.cfg.lua. */
export function prosodyConfig(o: ProsodyConfigOptions): string {
  const f = o.faults ?? {};
  const lua = (v: unknown) => toLua(v, "");
  const modules = [
    "roster", "saslauth", "tls", "disco", "pep", "blocklist", "register", "mam", "ping", "vcard", "posix", "tpc",
    ...(f.extraModules ?? []),
  ];
  const disabled = ["s2s", ...(f.noOffline ? ["offline"] : [])];
  const uploadHost = `upload.${o.domain}`;
  const lines = [
    "-- Written by chatconform (src/partner/prosody/config.ts) for one run of the Prosody-backed",
    "-- reference partner. Everything binds the loopback address; nothing is kept after the run.",
    "run_as_root = true",
    "daemonize = false",
    `pidfile = ${lua(`${o.dir}/prosody.pid`)}`,
    `data_path = ${lua(`${o.dir}/data`)}`,
    `certificates = ${lua(`${o.dir}/certs`)}`,
    `plugin_paths = { ${lua(PLUGIN_DIR)} }`,
    `log = { { levels = { min = ${lua(process.env.CHATCONFORM_PROSODY_LOG_LEVEL ?? "info")} }, to = "console" } }`,
    "",
    `interfaces = { ${lua(o.host)} }`,
    `c2s_interfaces = { ${lua(o.host)} }`,
    `c2s_ports = { ${o.c2sPort} }`,
    "c2s_direct_tls_ports = { }",
    "legacy_ssl_ports = { }",
    "s2s_ports = { }",
    "http_ports = { }",
    `https_interfaces = { ${lua(o.host)} }`,
    `https_ports = { ${o.httpsPort} }`,
    `https_ssl = { certificate = ${lua(o.certFile)}, key = ${lua(o.keyFile)} }`,
    // Upload URLs name the loopback address (the certificate names it too) and any Host header
    // reaches the upload component.
    `http_external_url = ${lua(`https://${o.host}:${o.httpsPort}/`)}`,
    `http_default_host = ${lua(uploadHost)}`,
    // server_epoll pauses at least min_wait (1 ms) between two reads of a TLS socket that still has
    // buffered data: with 8 KiB reads a 16 MiB upload took 4 s; bigger reads and a shorter pause: 0.6 s.
    // Nagle's algorithm against the client's delayed ACKs stalls every multi-segment reply (a
    // 100-prekey bundle) by 40 ms: one hundred reflected messages took 6 s instead of 1.5 s.
    "network_settings = { read_size = 262144, min_wait = 0.00001, nagle = false }",
    "",
    `modules_enabled = ${lua(modules)}`,
    `modules_disabled = ${lua(disabled)}`,
    `c2s_require_encryption = ${f.tlsOptional ? "false" : "true"}`,
    "allow_unencrypted_plain_auth = false",
    "allow_registration = true",
    // XEP-0077 with the phone field, required (TPC/1 §10a).
    'additional_registration_fields = { "phone+" }',
    `registration_instructions = ${lua(REGISTRATION_INSTRUCTIONS)}`,
    `default_iteration_count = ${o.scramIterations ?? 64}`,
    // Nothing outlives the run: every store in memory (uploaded files still go to data_path).
    'storage = "memory"',
    "",
    `tpc_eligibility_data = ${lua(o.dataFile)}`,
    `tpc_faults = ${lua(o.tpcFaults)}`,
    `tpc_policy_checks = ${lua(POLICY_CHECKS.map((c) => c.name))}`,
    `tpc_account_features = ${lua([...ACCOUNT_FEATURES])}`,
    `tpc_partner_users = ${lua(o.partnerUsers.map((u) => ({ username: u.username, password: u.password, opted_out: u.optedOut ?? false })))}`,
    `tpc_gatekeeper_users = ${lua(o.gatekeeperUsers)}`,
    "tpc_watch_stdin = true",
    `tpc_remove_when_orphaned = ${lua(o.dir)}`,
    "",
    `VirtualHost ${lua(o.domain)}`,
    `  ssl = { certificate = ${lua(o.certFile)}, key = ${lua(o.keyFile)} }`,
    "",
    // XEP-0363 upload service, found by disco#items on the domain.
    `Component ${lua(uploadHost)} "http_file_share"`,
    `  ssl = { certificate = ${lua(o.certFile)}, key = ${lua(o.keyFile)} }`,
    `  http_file_share_size_limit = ${f.maxFileSize ?? DEFAULT_MAX_FILE_SIZE}`,
    `  http_file_share_daily_quota = ${1024 * 1024 * 1024 * 1024}`,
    "",
  ];
  return lines.join("\n");
}
