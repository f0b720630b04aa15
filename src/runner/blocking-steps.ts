// Steps of the blocking, privacy, opt-in and unsupported-feature catalogue (issue 6).
import type { StepHandler } from "./steps.ts";

export const BLOCKING_STEP_HANDLERS: Record<string, StepHandler> = {};
