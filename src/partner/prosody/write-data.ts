// Write mod_tpc's eligibility data file (tpc_eligibility_data.lua) for a partner's own Prosody:
//   npx tsx src/partner/prosody/write-data.ts [--policy eea|whatsapp-european-region] > tpc_eligibility_data.lua
// The data comes from territories.yaml and libphonenumber-js (eligibility-data.ts): regenerate it
// whenever either changes, as the launcher does at every start.
import { isPolicyName } from "../../eligibility/classify.ts";
import { eligibilityDataLua } from "./eligibility-data.ts";

const args = process.argv.slice(2);
const at = args.indexOf("--policy");
const policy = at >= 0 ? args[at + 1] : "eea";
if (!isPolicyName(policy) || args.some((a, i) => a.startsWith("--") && a !== "--policy" && i !== at + 1)) {
  process.stderr.write("usage: write-data.ts [--policy eea|whatsapp-european-region] > tpc_eligibility_data.lua\n");
  process.exitCode = 3;
} else {
  process.stdout.write(eligibilityDataLua(policy));
}
