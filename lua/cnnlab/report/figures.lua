--- cnnlab.report.figures — the figures of a run folder in story order, each with its caption
-- sentence from lab.report.CAPTIONS, as HTML, and the folder's file list.
local H = require "cnnlab.report.html"
local esc, files_of, picture_size = H.esc, H.files_of, H.picture_size

local F = {}

-- lab.report.CAPTIONS, looked up at each call, so that a caption set on it is the one used.
local function captions() return require("cnnlab.report").CAPTIONS end

-- The caption entry of a file: caption (string, or false) and whether an entry named it, and
-- the entry's position (for the order).
local function caption_of(task, name, m, names)
  local list = captions()[task] or {}
  for i, e in ipairs(list) do
    local key, cap = e[1], e[2]
    local capture
    if key:sub(1, 1) == "^" then capture = name:match(key) elseif key == name then capture = name end
    if capture then
      if type(cap) == "function" then
        local ok, s = pcall(cap, m or {}, name, capture)
        cap = ok and s or nil
      end
      return cap, i
    end
  end
  -- a PNG drawn into an SVG of the same name
  if name:match("%.png$") and names[(name:gsub("%.png$", ".svg"))] then return false, 0 end
  return nil, #list + 1
end

-- Every figure of a run folder once: {name, caption or nil, width, height}, in story order.
local function figures_of(task, dir, m)
  local files, names = files_of(dir), {}
  for _, n in ipairs(files) do names[n] = true end
  local list = {}
  for k, name in ipairs(files) do
    if name:match("%.png$") or name:match("%.svg$") then
      local cap, order = caption_of(task, name, m, names)
      if cap ~= false then
        local w, h = picture_size(dir .. "/" .. name)
        list[#list + 1] = {name = name, caption = cap, order = order, k = k, w = w, h = h}
      end
    end
  end
  table.sort(list, function(a, b)
    if a.order ~= b.order then return a.order < b.order end
    return a.k < b.k
  end)
  return list
end

-- The figures of a section as HTML. number: "1." gives Figure 1.1, 1.2, ...
local function figures_html(href_dir, figs, number)
  local out = {}
  for i, f in ipairs(figs) do
    local href = href_dir .. "/" .. f.name
    local w, h = f.w or 480, f.h or 360
    local caption = f.caption
    local missing = ""
    if not caption then
      caption = ("No caption yet: add one for %s to report.CAPTIONS."):format(f.name)
      missing = ' data-uncaptioned="1"'
    end
    out[#out + 1] = ('<figure class="fig%s" style="width:%dpx"%s><a href="%s" title="full size">'
      .. '<img src="%s" width="%d" height="%d" alt="%s"%s></a><figcaption><b>Figure %s%d.</b> '
      .. '%s <span class="file">%s</span></figcaption></figure>'):format(
      w > 560 and " wide" or "", math.max(w, 340), missing, esc(href), esc(href), w, h,
      esc(caption), f.name:match("%.png$") and ' class="px"' or "", number, i, esc(caption),
      esc(href))
  end
  if #out == 0 then return "" end
  return '<div class="figs">' .. table.concat(out, "\n") .. "</div>"
end

local function file_links(href_dir, dir)
  local out = {}
  for _, name in ipairs(files_of(dir)) do
    out[#out + 1] = ('<a href="%s/%s">%s</a>'):format(esc(href_dir), esc(name), esc(name))
  end
  if #out == 0 then return "" end
  return ('<details class="files"><summary>All %d files of %s/</summary>%s</details>'):format(#out,
    esc(href_dir), table.concat(out, " · "))
end

F.caption_of, F.figures_of, F.figures_html, F.file_links = caption_of, figures_of, figures_html,
  file_links

return F
