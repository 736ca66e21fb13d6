--- tools/gen_api_doc.lua — writes the reference section of docs/api.md from the help that
-- help(x) prints (lua/cnnlab/doc.lua), so the two cannot drift apart:
--   ./cnnlab tools/gen_api_doc.lua            rewrites the section between the markers
--   ./cnnlab tools/gen_api_doc.lua --check    exits 1 when docs/api.md is stale
local doc = require "cnnlab.doc"
local util = require "cnnlab.util"

local path = "docs/api.md"
local text = util.read_file(path)
local section = doc.BEGIN .. "\n" .. doc.markdown() .. doc.END
local a, b = text:find(doc.BEGIN, 1, true)
local c, d = text:find(doc.END, 1, true)
local new
if a and c then
  new = text:sub(1, a - 1) .. section .. text:sub(d + 1)
else
  new = text:gsub("\n*$", "\n\n") .. section .. "\n"
end
if arg[1] == "--check" then
  if new ~= text then
    io.stderr:write(path .. " is stale: run ./cnnlab tools/gen_api_doc.lua\n")
    os.exit(1)
  end
  print(path .. " is up to date")
else
  util.write_file(path, new)
  print("wrote the reference section of " .. path)
end
