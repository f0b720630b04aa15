// Events the runner emits; reporters subscribe and never reach into the runner.
import type { CaseResult, Requirement } from "../checks/model.ts";

/** The endpoint's TLS certificate as the suite saw it when the run started (src/runner/evidence.ts). */
export interface EndpointTlsInfo {
  /** SHA-256 of the leaf certificate's DER bytes, lowercase hex; absent when no TLS session was made. */
  certificateSha256?: string;
  subject?: string;
  issuer?: string;
  validFrom?: string;
  validTo?: string;
  /** Negotiated protocol, e.g. TLSv1.3. */
  protocol?: string;
  /** The certificate verified against the configured trust (tls.ca, or the system store). */
  verified: boolean;
  /** Why no certificate could be read (endpoint down, no STARTTLS, TLS failure). */
  error?: string;
}

export interface RunInfo {
  /** `commit`: the suite's git commit, or "unknown" when it is not a git checkout. */
  suite: { name: string; version: string; commit?: string };
  profile: { id: string; version: string };
  endpoint: string;
  /** "reference partner (in-process)" or the config file path. */
  endpointDescription: string;
  mutant?: string;
  policy: string;
  startedAt: string;
  command: string;
  caseSetSha256: string;
  selection: { total: number; selected: number; filters: string[] };
  node: string;
  platform: string;
  /** Seed of the run's non-cryptographic choices (src/runner/seed.ts); `--seed` replays them. */
  seed?: number;
  /** The effective endpoint config, secrets redacted (src/runner/evidence.ts). */
  config?: RedactedConfig;
  tls?: EndpointTlsInfo;
}

/** EndpointConfig as recorded in a report: passwords replaced by "[redacted]", the CA by its hash. */
export interface RedactedConfig {
  service: string;
  domain: string;
  tls: { caSha256?: string; servername?: string; insecure: boolean };
  accounts: {
    mode: "register" | "static";
    prefix: string;
    static: { username: string; password: string; phone: string }[];
    ineligible: { username: string; password: string; phone: string }[];
  };
  reflector?: string;
  optout?: string;
  hooks: string[];
  policy: string;
  timeouts: Record<string, number>;
  maxStanzaBytes: number;
  maxInboundBytesPerSecond?: number;
  localTestEndpoint: boolean;
}

export interface CaseInfo {
  id: string;
  title: string;
  file: string;
  area: string;
  requirements: string[];
}

export interface StepInfo {
  caseId: string;
  index: number;
  description: string;
}

export interface RunEndInfo {
  finishedAt: string;
  /** True when the run was interrupted or stopped before every selected case ran. */
  incomplete: boolean;
  incompleteReason?: string;
}

export interface RunnerEvents {
  "run:start": [RunInfo, Requirement[]];
  "case:start": [CaseInfo];
  "step": [StepInfo];
  "case:end": [CaseResult];
  "run:end": [RunEndInfo];
}
