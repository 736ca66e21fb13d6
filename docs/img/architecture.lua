-- Draws docs/img/architecture.svg, the layout of cnnlab, with the project's own SVG
-- primitives (cnnlab.svg):   ./cnnlab docs/img/architecture.lua [docs/img/architecture.svg]
local svg = require "cnnlab.svg"

local out = arg[1] or "docs/img/architecture.svg"
local W = 960
local parts = {}
local function add(s) parts[#parts + 1] = s end

-- A box with a bold title and lines of text under it.
local function box(x, y, w, h, title, lines, fill, note)
  add(svg.rect(x, y, w, h, ('fill="%s" stroke="#555" rx="6"'):format(fill)))
  add(svg.text(x + 10, y + 19, title, 'font-size="14" font-weight="bold"'))
  for i, l in ipairs(lines or {}) do
    add(svg.text(x + 10, y + 19 + 16 * i, l, 'font-size="11.5" fill="#333"'))
  end
  if note then add(svg.text(x + w - 10, y + 19, note, 'font-size="11" fill="#666" text-anchor="end"')) end
end

local function arrow(x, y1, y2, label)
  add(svg.line(x, y1, x, y2 - 6, 'stroke="#333" stroke-width="1.5"'))
  add(svg.path(("M %s %s L %s %s L %s %s Z"):format(svg.num(x - 5), svg.num(y2 - 8),
    svg.num(x + 5), svg.num(y2 - 8), svg.num(x), svg.num(y2)), 'fill="#333"'))
  if label then add(svg.text(x + 8, (y1 + y2) / 2 + 4, label, 'font-size="11" fill="#666"')) end
end

add(svg.text(20, 28, "cnnlab: four layers, each talking only to the one below it",
  'font-size="17" font-weight="bold"'))

-- 1. scripts
box(20, 44, W - 40, 58, "scripts/  and  tools/", {
  "task0_data … task6_ablation: one per study task, a list of named steps;  demo.lua runs them all;",
  "sweep.lua, mpi_compare.lua;  tools/compare_runs.lua (are two runs folders the same?)"},
  "#e8f1fb", "./cnnlab scripts/NAME.lua")
arrow(W / 2, 102, 124, "require \"cnnlab\"")

-- 2. the Lua library
local ly = 124
add(svg.rect(20, ly, W - 40, 330, 'fill="#f4f9ee" stroke="#555" rx="6"'))
add(svg.text(30, ly + 20, "lua/cnnlab/  — the Lua library", 'font-size="14" font-weight="bold"'))
local col, gap, top = (W - 40 - 50) / 4, 10, ly + 32
box(30, top, col, 120, "script library", {"study.lua  options, data cache,", "   train-and-evaluate",
  "runs.lua  repeated runs, tables", "defaults.lua  every default", "util.lua, mpi.lua"}, "#ffffff")
box(30 + (col + gap), top, col, 120, "training", {"nn.lua  modules (Torch7-style)", "optim.lua  SGD, Adam",
  "train.lua  the loop (knows no", "   debias method)", "data.lua  Colored MNIST"}, "#ffffff")
box(30 + 2 * (col + gap), top, col, 120, "instruments", {"hooks.lua, metrics.lua", "gradcam.lua, attack.lua",
  "ablation.lua (+ _curves)", "features.lua, adversarial.lua", "evidence.lua (Task 4)"}, "#ffffff")
box(30 + 3 * (col + gap), top, col, 120, "drawing", {"svg.lua  the primitives", "figure.lua  pictures of",
  "   tensors, on svg.lua", "report.lua  report.html"}, "#ffffff")
-- plug-in folders
local py = top + 132
add(svg.text(30, py + 14, "plug-in folders: one file per item, found by name (or by a path to any .lua file)",
  'font-size="12.5" font-weight="bold"'))
local pw = (W - 40 - 20 - 4 * gap) / 5
local plugins = {
  {"debias/", "NAME.lua: model, loss,", "per-epoch hooks, state"},
  {"attacks/", "NAME.lua: the step", "(run by attack.lua)"},
  {"attributions/", "NAME.lua: compute or", "from_gradients"},
  {"datasets/", "NAME.lua: a data set", "(found by data.lua)"},
  {"models/", "NAME.lua: a network", "(found by models.lua)"}}
for i, p in ipairs(plugins) do
  box(30 + (i - 1) * (pw + gap), py + 24, pw, 68, p[1], {p[2], p[3]}, "#fff8e6")
end
add(svg.text(30, py + 116, "each folder's init.lua is its registry: plugins.lua lists the files "
  .. "(available()) and loads one (load(name or path))", 'font-size="11.5" fill="#333"'))
add(svg.text(30, py + 132, "init.lua: `lab`, the core plus every module by name (lab.nn, lab.train, …)",
  'font-size="11.5" fill="#333"'))
arrow(W / 2, ly + 330, ly + 352, "cnnlab.core")

-- 3. the binding
local by = ly + 352
box(20, by, W - 40, 58, "src/lua/  — the binding", {
  "lbind.c: the tensor userdata and the one set of argument checks;  lcore.c registers each file's clb_open_*:",
  "ltensor.c, lcreate.c, lnn.c (layers, losses, optimizer steps), lio.c (files, data sets), lhooks.c, lmpi.c, …"},
  "#f3eefb")
arrow(W / 2, by + 58, by + 80, "cnnlab.h, cnnlab_io.h")

-- 4. the C core
local cy = by + 80
local cw = (W - 40 - 3 * gap) / 4
box(20, cy, cw, 76, "src/core/", {"tensors, views, autograd,", "element-wise, reductions,", "PCG32, SGD/Adam"}, "#fbeeee")
box(20 + (cw + gap), cy, cw, 76, "src/ops/", {"one file per operation:", "forward + backward +", "reference kernel"}, "#fbeeee")
box(20 + 2 * (cw + gap), cy, cw, 76, "src/gemm/", {"cl_gemm: OpenBLAS or the", "portable micro-kernel", "(AVX-512, AVX2, baseline)"}, "#fbeeee")
box(20 + 3 * (cw + gap), cy, cw, 76, "src/formats/", {"IDX, PNG, safetensors,", "Colored MNIST; atomic", "writes, bounded reads"}, "#fbeeee")
box(20, cy + 88, W - 40, 40, "src/app/  — the interpreter cnnlab", {
  "Lua 5.4 with cnnlab.core preloaded: runs a script, -e code or the REPL (main.c, repl.c, rprint.c, rcomplete.c, rnames.c)"},
  "#eeeeee")

svg.save(out, svg.doc(W, cy + 140, parts))
print("wrote " .. out)
