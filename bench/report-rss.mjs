// Preloaded into the CLI by the bench (node --import): writes the process's peak RSS (KiB) to the
// file named by CHATCONFORM_BENCH_RSS_FILE when it exits, however it exits (process.exit included).
import { writeFileSync } from "node:fs";

const file = process.env.CHATCONFORM_BENCH_RSS_FILE;
if (file) process.on("exit", () => writeFileSync(file, String(process.resourceUsage().maxRSS)));
