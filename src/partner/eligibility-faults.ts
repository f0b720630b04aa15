// Known-bad eligibility classifiers for the reference partner (mutants of ELG requirements).
// Each stands in for a mistake a partner could plausibly make with the same libphonenumber data;
// the compliant classifier is src/eligibility/classify.ts.
import metadata from "libphonenumber-js/metadata.max.json";
import { parsePhoneNumberWithError } from "libphonenumber-js/max";
import { classifyNumber, describePolicy } from "../eligibility/classify.ts";
import type { PolicyName } from "../eligibility/classify.ts";
import type { NumberClassification } from "./server/context.ts";

/** Classifier faults, each with one sentence on what the partner then does. */
export const ELIGIBILITY_FAULTS = {
  "eligibility-prefix-only": "the region is the main region of the number's country calling code (+47 is NO, +590 GP, +44 GB), without number ranges or override rules.",
  "eligibility-ignores-overrides": "the region is libphonenumber's and the decision is the policy's region list alone, without the territory override rules.",
  "eligibility-policy-ignored": "the eea policy is applied whatever policy the endpoint is configured with.",
  "eligibility-no-normalisation": "only + followed by digits, spaces and dashes is understood; a number written with 00 or brackets is refused as unparsable.",
} as const;

export type EligibilityFault = keyof typeof ELIGIBILITY_FAULTS;

const callingCodes = (metadata as { country_calling_codes: Record<string, string[]> }).country_calling_codes;

/** The regions a policy lists, with those of the policies it extends (no override rules). */
function listedRegions(policy: PolicyName): Set<string> {
  const regions = new Set<string>();
  for (let p: PolicyName | undefined = policy; p !== undefined; p = describePolicy(p).extends) {
    for (const region of describePolicy(p).regions) regions.add(region);
  }
  return regions;
}

/** Numbers are parsed and normalised as the real classifier does; only the region and decision are wrong. */
function byRegionList(phone: string, policy: PolicyName, regionOf: (e164: string) => string | undefined): NumberClassification {
  const real = classifyNumber(phone, policy);
  if (real.e164 === null) return real;
  const region = regionOf(real.e164) ?? "ZZ";
  const eligible = listedRegions(policy).has(region);
  return { eligible, region, e164: real.e164, reason: `region ${region} is ${eligible ? "" : "not "}in the ${policy} region list` };
}

/** The classifier the reference partner uses: the real one, or the one a fault breaks. */
export function partnerClassifier(policy: PolicyName, faults: ReadonlySet<string>): (phone: string) => NumberClassification {
  if (faults.has("eligibility-policy-ignored")) return (phone) => classifyNumber(phone, "eea");
  if (faults.has("eligibility-prefix-only")) {
    return (phone) => byRegionList(phone, policy, (e164) => callingCodes[parsePhoneNumberWithError(e164).countryCallingCode]?.[0]);
  }
  if (faults.has("eligibility-ignores-overrides")) return (phone) => byRegionList(phone, policy, (e164) => parsePhoneNumberWithError(e164).country);
  if (faults.has("eligibility-no-normalisation")) {
    // A naive clean-up: spaces and dashes go, but "00" and brackets are not understood.
    return (phone) => (/^\+[0-9 -]+$/.test(phone.trim())
      ? classifyNumber(phone, policy)
      : { eligible: false, region: "ZZ", e164: null, reason: "the number is not in international form (+ and digits)" });
  }
  return (phone) => classifyNumber(phone, policy);
}
