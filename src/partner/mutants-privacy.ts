// Known-bad partners for privacy, opt-in and unsupported features (issue 6).
import type { Mutant } from "./mutants.ts";

export const PRIVACY_MUTANTS: readonly Mutant[] = [];
