--- cnnlab.doc — the help of the public API: a signature and a one-line summary for every
-- public function, class and method, behind the REPL's help(x) and the generated reference of
-- docs/api.md (tools/gen_api_doc.lua). One source:
--   * functions written in C (lab.zeros, tensor methods, generator methods) are described in
--     cnnlab.doc_core, the only place that describes them;
--   * functions written in Lua are described by the `---` comment above their definition:
--     the summary is the comment's first sentence, the signature the definition's line (or a
--     comment line that starts with the call, as "--- Linear(in, out[, {...}])" does).
-- Names that start with "_" are internals and are never listed.
--
--   doc.help(x)            prints what x is, its signature and summary, and its members'
--   doc.describe(x)        {name =, signature =, summary =} of a function, class or module
--   doc.walk()             every public entry: {{name =, value =, kind =}, ...}, sorted
--   doc.markdown()         the generated reference section of docs/api.md
local doc = {}

-- name | signature | summary — the C functions (cnnlab.core) and C methods.
local C = require "cnnlab.doc_core"

doc.C = {}
for line in C:gmatch("[^\n]+") do
  local name, sig, summary = line:match("^(%S+) | (.-) | (.+)$")
  if name then doc.C[name] = {signature = sig, summary = summary} end
end

-- Lua submodules documented by their own comments, as lab.NAME.
doc.MODULES = {"nn", "optim", "data", "train", "models", "metrics", "svg", "util", "hooks",
  "gradcam", "attack", "attacks", "attributions", "ablation", "debias", "gradcheck", "report",
  "mpi", "study", "defaults", "show", "doc", "robustness", "benchmarks"}

local function public(name) return type(name) == "string" and not name:find("^_") end

local function sorted_keys(t)
  local keys = {}
  for k in pairs(t) do if public(k) then keys[#keys + 1] = k end end
  table.sort(keys)
  return keys
end

local file_cache = {}
local function lines_of(path)
  if file_cache[path] == nil then
    local f = io.open(path, "rb")
    local lines = false
    if f then
      lines = {}
      for l in f:lines() do lines[#lines + 1] = l end
      f:close()
    end
    file_cache[path] = lines
  end
  return file_cache[path] or nil
end

local function first_sentence(text)
  text = text:gsub("%s+", " "):gsub("^ ", "")
  local s = text:match("^(.-%.)%s") or text:match("^(.-%.)$") or text
  return s
end

-- The comment block right above line n of a file, as a list of lines without "--".
local function comment_above(lines, n)
  local block = {}
  local i = n - 1
  while i >= 1 and lines[i]:match("^%s*%-%-") do
    table.insert(block, 1, (lines[i]:gsub("^%s*%-%-%-?%s?", "")))
    i = i - 1
  end
  return block
end

-- {signature, summary} from a module file's header comment, which many modules open with a
-- list of calls ("--   data.mnist([dir], {fetch = bool}) → {...}" then the summary on the same
-- line after two spaces, or on the lines below).
local function from_header(lines, qualified)
  local short = qualified:match("([^.:]+)$")
  local mod = qualified:match("([%w_]+)[.:][^.:]+$")
  if not short or not mod then return nil end
  local n = 1
  while lines[n] and lines[n]:match("^%-%-") do n = n + 1 end
  for i = 1, n - 1 do
    local text = lines[i]:gsub("^%-%-%-?%s*", "")
    local call = text:match("^([%w_]*[.:]?" .. short .. "%b().*)$")
      or text:match("^([%w_]*[.:]?" .. short .. "%b{}.*)$")
    local owner = text:match("^([%w_]+)[.:]" .. short .. "[({]")
    if call and (owner == nil or owner == mod or owner == "lab" or #owner <= 3) then
      local sig, rest = call:match("^(.-)%s%s+(%S.*)$")
      sig = sig or call
      local summary = rest
      if not summary then -- the summary on the indented lines below
        local parts = {}
        for j = i + 1, n - 1 do
          local l = lines[j]:gsub("^%-%-", "")
          if not l:match("^%s%s%s%s") or l:match("^%s*$") then break end
          parts[#parts + 1] = l
        end
        summary = #parts > 0 and table.concat(parts, " ") or nil
      end
      if summary then
        return {signature = sig:gsub("%s+$", ""), summary = first_sentence(summary)}
      end
    end
  end
end

-- {signature, summary} of a Lua function from its source, or nil.
local function from_source(fn, qualified)
  local info = debug.getinfo(fn, "S")
  if not info or info.what ~= "Lua" or info.source:sub(1, 1) ~= "@" then return nil end
  local lines = lines_of(info.source:sub(2))
  if not lines or not lines[info.linedefined] then return nil end
  local def = lines[info.linedefined]
  local block = comment_above(lines, info.linedefined)
  if #block == 0 then return from_header(lines, qualified) end
  local params = def:match("function[^(]*(%b())") or "()"
  local short = qualified:match("([^.:]+)$")
  local signature
  -- a comment that starts with the call is the signature ("Linear(in, out[, {...}])")
  local first = block[1]
  if first:match("^[%w_.:]*" .. short .. "%(") then
    -- "m:train([on]) → m: what it does" — the signature runs to the first ": "
    local sig, rest = first:match("^(.-%b()[^:]*):%s+(.*)$")
    signature = sig or first:match("^(.-%b())") or first
    table.remove(block, 1)
    if rest then table.insert(block, 1, rest) end
  end
  if not signature then
    local sep = qualified:find(":", 1, true) and ":" or "."
    local prefix = qualified:match("^(.*)[.:][^.:]+$") or ""
    -- methods defined with "function X:name(...)" show as obj:name(...)
    signature = (prefix ~= "" and (prefix .. sep) or "") .. short .. params
  end
  local summary = first_sentence(table.concat(block, " "))
  if summary == "" then return nil end
  return {signature = signature, summary = summary}
end

-- The method tables of the classes help knows: Tensor, Generator, Module, Optimizer.
local function classes()
  local lab = require "cnnlab"
  local list = {{"Tensor", lab.Tensor}}
  local g = getmetatable(lab.Generator(0))
  list[#list + 1] = {"Generator", g and (type(g.__index) == "table" and g.__index or g) or {}}
  list[#list + 1] = {"Module", lab.nn.Module}
  local p = lab.zeros({1}, {requires_grad = true})
  local opt = lab.optim.SGD({p}, {lr = 0.1})
  local mt = getmetatable(opt)
  local methods = {}
  local t = mt and mt.__index
  while type(t) == "table" do
    for k, v in pairs(t) do if methods[k] == nil then methods[k] = v end end
    local m2 = getmetatable(t)
    t = m2 and m2.__index
  end
  for k, v in pairs(opt) do if type(v) == "function" then methods[k] = v end end
  list[#list + 1] = {"Optimizer", methods}
  return list
end

--- Every public entry of the API, sorted: {{name =, value =, kind = "function"|"class"|
-- "module"|"value"|"method"}, ...} over lab.*, lab.<module>.* and the methods of tensors,
-- generators, modules and optimizers.
function doc.walk()
  local lab = require "cnnlab"
  local out = {}
  local function add(name, value, kind) out[#out + 1] = {name = name, value = value, kind = kind} end
  for _, k in ipairs(sorted_keys(lab.core)) do
    add("lab." .. k, lab[k], type(lab[k]) == "function" and "function" or "value")
  end
  for _, k in ipairs({"relu", "sigmoid", "tanh", "softmax", "log_softmax", "sum", "mean",
    "accuracy", "version"}) do
    if lab.core[k] == nil then add("lab." .. k, lab[k], type(lab[k]) == "function" and "function" or "value") end
  end
  for _, mod in ipairs(doc.MODULES) do
    local ok, m = pcall(function() return lab[mod] end)
    if ok and type(m) == "function" then
      add("lab." .. mod, m, "function")
    elseif ok and type(m) == "table" then
      add("lab." .. mod, m, "module")
      for _, k in ipairs(sorted_keys(m)) do
        local v = m[k]
        local kind = type(v) == "function" and "function"
          or (type(v) == "table" and getmetatable(v) and getmetatable(v).__call and "class")
          or "value"
        add("lab." .. mod .. "." .. k, v, kind)
      end
    end
  end
  for _, c in ipairs(classes()) do
    for _, k in ipairs(sorted_keys(c[2])) do
      if type(c[2][k]) == "function" then add(c[1] .. ":" .. k, c[2][k], "method") end
    end
  end
  table.sort(out, function(a, b) return a.name < b.name end)
  return out
end

local by_value
local function name_of(x)
  if by_value == nil then
    by_value = {}
    for _, e in ipairs(doc.walk()) do
      local t = type(e.value)
      if (t == "function" or t == "table") and by_value[e.value] == nil then
        by_value[e.value] = e.name
      end
    end
  end
  return by_value[x]
end

local function module_summary(name)
  -- the first sentence of a module file's header comment ("--- cnnlab.nn — layers ...")
  local mod = name:match("^lab%.([%w_]+)$")
  local file = mod and package.searchpath("cnnlab." .. mod, package.path)
  do
    do
      if file then
        local lines = lines_of(file)
        if lines and lines[1] and lines[1]:match("^%-%-%-") then
          local parts = {}
          for i = 1, #lines do
            if not lines[i]:match("^%-%-") or lines[i]:match("^%-%-%s*$") then break end
            parts[#parts + 1] = lines[i]:gsub("^%-%-%-?%s*", "")
          end
          local head = table.concat(parts, " ")
          local body = head:match("^cnnlab%.[%w_]+%s*—%s*(.*)$") or head
          return first_sentence(body)
        end
      end
    end
  end
end

--- {name, signature, summary} of a public entry (by qualified name, "lab.zeros",
-- "Tensor:sum", "lab.nn.Linear", or by value); nil when it has no help.
function doc.describe(x, name)
  name = name or (type(x) == "string" and x) or name_of(x)
  if not name then return nil end
  local value = x
  if type(x) == "string" then
    for _, e in ipairs(doc.walk()) do if e.name == x then value = e.value end end
  end
  local entry = doc.C[name] or doc.C[name:gsub("^lab%.core%.", "lab.")]
  if entry then return {name = name, signature = entry.signature, summary = entry.summary} end
  if type(value) == "function" then
    local e = from_source(value, name)
    if e then return {name = name, signature = e.signature, summary = e.summary} end
  elseif type(value) == "table" then
    local init = rawget(value, "init")
    if type(init) == "function" then -- a class: its init's comment
      local e = from_source(init, name:gsub("[.:]init$", ""))
      if e then
        local sig = e.signature:gsub("[.:]init%(", "(")
        return {name = name, signature = sig, summary = e.summary}
      end
    end
    local s = module_summary(name)
    if s then return {name = name, signature = name, summary = s} end
  end
  if value ~= nil and type(value) ~= "function" and not (type(value) == "table"
    and (rawget(value, "init") or getmetatable(value) and getmetatable(value).__call)) then
    -- a constant (a number, a string, a table of settings): what it holds
    local what = type(value) == "table" and (#value > 0 and ("a list of %d entries"):format(#value)
      or "a table of " .. #sorted_keys(value) .. " entries")
      or (type(value) .. " " .. tostring(value))
    return {name = name, signature = name, summary = "A constant: " .. what .. ".", constant = true}
  end
  return nil
end

local function members_of(prefix, t, sep)
  local out = {}
  for _, k in ipairs(sorted_keys(t)) do
    local d = doc.describe(t[k], prefix .. sep .. k)
    out[#out + 1] = {k, d and d.summary or "(no help)", type(t[k]) == "function"}
  end
  return out
end

local function print_members(list)
  if #list == 0 then return end
  local w = 0
  for _, m in ipairs(list) do w = math.max(w, #m[1] + (m[3] and 2 or 0)) end
  w = math.min(w, 24)
  for _, m in ipairs(list) do
    local label = m[1] .. (m[3] and "()" or "")
    print(("  %-" .. w .. "s  %s"):format(label, m[2]))
  end
end

--- Prints help for x: the signature and summary of a function, class or method; a module's
-- or a class's members with their summaries; a tensor's or a layer's methods. fallback(x)
-- (the REPL's member listing) serves what the API does not describe.
function doc.help(x, fallback)
  local lab = require "cnnlab"
  local t = type(x)
  if t == "userdata" and lab.is_tensor(x) then
    print(("Tensor (%s, shape %s) — methods:"):format(x.dtype or x:type(),
      table.concat(x.shape, "×")))
    print_members(members_of("Tensor", lab.Tensor, ":"))
    return
  end
  if t == "table" and getmetatable(x) and rawget(x, "_children") ~= nil then -- a layer
    local cls = getmetatable(x)
    local cname = "lab.nn." .. tostring(cls.__name)
    local d = doc.describe(cname)
    print(("%s — %s"):format(tostring(x):match("^[^\n]*"), d and d.summary or cname))
    print("methods:")
    print_members(members_of("Module", lab.nn.Module, ":"))
    return
  end
  local name = x == lab and "lab" or name_of(x)
  if name == nil then
    if fallback then return fallback(x) end
    print(("%s: not part of cnnlab's API (help() lists where to start)"):format(tostring(x)))
    return
  end
  if name == "lab" then
    print("lab — cnnlab: tensors, autograd, layers and hooks in C, experiments in Lua.")
    local list = members_of("lab", lab.core, ".")
    for _, mod in ipairs(doc.MODULES) do
      local d = doc.describe("lab." .. mod)
      list[#list + 1] = {mod, d and d.summary or "(no help)", false}
    end
    for _, k in ipairs({"relu", "sigmoid", "tanh", "softmax", "log_softmax", "sum", "mean", "accuracy"}) do
      local d = doc.describe("lab." .. k)
      list[#list + 1] = {k, d and d.summary or "(no help)", true}
    end
    table.sort(list, function(a, b) return a[1] < b[1] end)
    print_members(list)
    return
  end
  local d = doc.describe(x, name)
  if d then
    if d.signature ~= name then print(d.signature) else print(name) end
    print("  " .. d.summary)
  else
    print(name .. ": (no help)")
  end
  if t == "table" then
    local methods = x
    local kind = "members:"
    if rawget(x, "init") then kind = "methods:" end
    local list = members_of(name, methods, kind == "methods:" and ":" or ".")
    if #list > 0 then
      print(kind)
      print_members(list)
    end
  end
end

--- The generated reference of docs/api.md (between its BEGIN/END markers): one table row
-- per public entry with its signature and summary.
function doc.markdown()
  local out = {"## Reference", "",
    "Generated by `tools/gen_api_doc.lua` from the help that `help(x)` prints (lua/cnnlab/doc.lua "
    .. "and the `---` comments of the Lua modules); do not edit by hand.", ""}
  local section
  local function group_of(name)
    return name:match("^(lab%.[%w_]+)%.") or name:match("^(%u%w*):") or "lab"
  end
  local entries = doc.walk()
  table.sort(entries, function(a, b)
    local ga, gb = group_of(a.name), group_of(b.name)
    if ga ~= gb then return ga < gb end
    return a.name < b.name
  end)
  for _, e in ipairs(entries) do
    if e.name:match("^lab%.doc%.%u") then goto continue end
    local group = group_of(e.name)
    if group ~= section then
      section = group
      out[#out + 1] = ""
      out[#out + 1] = "### " .. (group:find(":") and group or ("`" .. group .. "`"))
      out[#out + 1] = ""
      out[#out + 1] = "| entry | summary |"
      out[#out + 1] = "| --- | --- |"
    end
    local d = doc.describe(e.value, e.name)
    local sig = d and d.signature or e.name
    out[#out + 1] = ("| `%s` | %s |"):format(sig:gsub("|", "\\|"),
      ((d and d.summary or "(no help)"):gsub("|", "\\|")))
    ::continue::
  end
  return table.concat(out, "\n") .. "\n"
end

doc.BEGIN = "<!-- BEGIN reference: generated by tools/gen_api_doc.lua -->"
doc.END = "<!-- END reference -->"

return doc
