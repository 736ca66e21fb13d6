--- cnnlab.report.html — the small pieces the report's page is made of: escaping, number
-- formatting, the two kinds of tables, a run folder's metrics and files, a picture's size, an
-- SVG's title and the layers a task's metrics name. Internal to cnnlab.report (lua/cnnlab/report.lua assembles the parts).
local util = require "cnnlab.util"
local core = require "cnnlab.core"

local H = {}

local function esc(s)
  return (tostring(s):gsub("[<>&\"]", {["<"] = "&lt;", [">"] = "&gt;", ["&"] = "&amp;",
    ['"'] = "&quot;"}))
end

local function read_metrics(dir)
  local path = dir .. "/metrics.json"
  if not util.exists(path) then return nil end
  local ok, m = pcall(util.json_decode, util.read_file(path))
  return ok and type(m) == "table" and m or nil
end

local function fmt(v, unit)
  if v == nil then return "—" end
  if type(v) ~= "number" then return esc(v) end
  if v ~= v then return "—" end
  if unit == "%" then return ("%.2f%%"):format(v) end
  if unit == "s" then return ("%.0f s"):format(v) end
  if v == math.floor(v) and math.abs(v) < 1e15 then
    -- whole numbers (JSON gives them as floats) with thousands separators: 48,000
    local digits = ("%d"):format(math.tointeger(v))
    return (digits:reverse():gsub("(%d%d%d)", "%1,"):reverse():gsub("^(%-?),", "%1"))
  end
  return ("%.4g"):format(v)
end

-- Rows: {label, our value (number or string), unit, seed's figure (string or nil)}.
local function number_table(rows)
  local out = {'<table class="nums"><thead><tr><th scope="col">measure</th><th scope="col">cnnlab</th>'
    .. '<th scope="col">seed study</th></tr></thead><tbody>'}
  for _, r in ipairs(rows) do
    out[#out + 1] = ("<tr><td>%s</td><td>%s</td><td>%s</td></tr>"):format(esc(r[1]),
      fmt(r[2], r[3]), r[4] and esc(r[4]) or "")
  end
  out[#out + 1] = "</tbody></table>"
  return table.concat(out, "\n")
end

-- A table whose rows stack into label: value blocks on a narrow screen (each cell carries its
-- column's name). head: column names; rows: lists of cells, already HTML.
local function wide_table(head, rows)
  local out = {'<table class="nums wide"><thead><tr>'}
  for _, h in ipairs(head) do out[#out + 1] = ('<th scope="col">%s</th>'):format(h) end
  out[#out + 1] = "</tr></thead><tbody>"
  for _, r in ipairs(rows) do
    local cells = {}
    for i, c in ipairs(r) do
      cells[i] = ('<td data-label="%s">%s</td>'):format(esc((head[i] or ""):gsub("<[^>]*>", "")), c)
    end
    out[#out + 1] = "<tr>" .. table.concat(cells) .. "</tr>"
  end
  out[#out + 1] = "</tbody></table>"
  return table.concat(out, "\n")
end

local function is_dir(path) return core.listdir(path) ~= nil end

-- The files (not folders) of a run folder, in name order.
local function files_of(dir)
  local list = {}
  for _, name in ipairs(core.listdir(dir) or {}) do
    if not name:match("^%.") and not name:match("%.tmp") and not is_dir(dir .. "/" .. name) then
      list[#list + 1] = name
    end
  end
  return list
end

-- Natural size of a picture: an SVG's width/height attributes, a PNG's IHDR.
local function picture_size(path)
  local f = io.open(path, "rb")
  if not f then return nil end
  local head = f:read(800) or ""
  f:close()
  if path:match("%.png$") then
    if #head < 24 or head:sub(2, 4) ~= "PNG" then return nil end
    return string.unpack(">I4I4", head, 17)
  end
  local tag = head:match("<svg[^>]*>") or ""
  local w, h = tag:match('%swidth="([%d.]+)'), tag:match('%sheight="([%d.]+)')
  if not (w and h) then
    local vw, vh = tag:match('viewBox="[%d.%-]+[%s,]+[%d.%-]+[%s,]+([%d.]+)[%s,]+([%d.]+)"')
    w, h = vw, vh
  end
  return tonumber(w), tonumber(h)
end

-- The chart title of an SVG (its first bold text), for figures no caption names.
local function svg_title(path)
  local ok, text = pcall(util.read_file, path)
  if not ok then return nil end
  local t = text:match('<text[^>]-font%-weight="bold"[^>]*>([^<]+)</text>')
  return t and (t:gsub("&lt;", "<"):gsub("&gt;", ">"):gsub("&quot;", '"'):gsub("&apos;", "'")
    :gsub("&amp;", "&"))
end

-- The layers a task's metrics name: the comma list m[key] (written by Task 2, 3 and 6 from the
-- model's own layers), or, for metrics written before the key existed, the seed network's —
-- its feature layers relu1–relu3 (labels = false) or the convolutions they follow, conv1–conv3
-- (labels = true).
local function layers_of(m, key, labels)
  if m and type(m[key]) == "string" and m[key] ~= "" then
    local out = {}
    for item in m[key]:gmatch("[^,]+") do out[#out + 1] = item end
    return out
  end
  local seed = require("cnnlab.models").seed_feature_layers
  if not labels then return {table.unpack(seed)} end
  local conv, out = require("cnnlab.ablation").CONV, {}
  for i, l in ipairs(seed) do out[i] = conv[l] end
  return out
end

H.esc, H.read_metrics, H.fmt, H.layers_of = esc, read_metrics, fmt, layers_of
H.number_table, H.wide_table = number_table, wide_table
H.is_dir, H.files_of, H.picture_size, H.svg_title = is_dir, files_of, picture_size, svg_title

return H
