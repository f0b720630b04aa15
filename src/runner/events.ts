// Events the runner emits; reporters subscribe and never reach into the runner.
import type { CaseResult, Requirement } from "../checks/model.ts";

export interface RunInfo {
  suite: { name: string; version: string };
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
