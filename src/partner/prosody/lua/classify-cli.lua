-- Test driver: classify one number per line of stdin with tpc_eligibility.lua and a generated data
-- file; prints one tab-separated line per number: region, eligible, e164, rule, kind, reason.
-- Usage: lua5.4 classify-cli.lua DATA.lua < numbers.txt   (used by test/prosody-eligibility.test.ts)
local here = arg[0]:match("^(.*)/[^/]*$") or "."
local classifier = dofile(here .. "/tpc_eligibility.lua")(dofile(arg[1]))
for line in io.lines() do
	local input = line:gsub("\\n", "\n"):gsub("\\t", "\t")
	local r = classifier.classify(input)
	io.write(table.concat({ r.region, tostring(r.eligible), r.e164 or "", r.rule or "", r.kind or "", ((r.reason or ""):gsub("[\t\n]", " ")) }, "\t"), "\n")
end
