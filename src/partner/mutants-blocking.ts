// Known-bad partners for blocking, privacy, opt-in and unsupported features (issue 6).
import type { Mutant } from "./mutants.ts";

export const BLOCKING_MUTANTS: readonly Mutant[] = [];
