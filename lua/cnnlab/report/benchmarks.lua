--- cnnlab.report.benchmarks — the report's section for a benchmark table's run folder
-- (runs/benchmarks/<table>/, written by scripts/benchmarks.lua): the comparison of ours
-- (mean ± sd over seeds) with the published figures and their sources, then the protocol.
local H = require "cnnlab.report.html"
local benchmarks = require "cnnlab.benchmarks"

local M = {}

--- The HTML of a benchmark folder's section body (the comparison table, the sources, the
-- protocol), or nil when the folder's table is not a known benchmark.
function M.html(name, m)
  local ok, t = pcall(benchmarks.load, m.table or name)
  if not ok then return nil end
  local esc = H.esc
  local out = {("<p>%s: %s. %s</p>"):format(esc(t.name), esc(t.description or ""), esc(t.measure))}
  if m.protocol_quick then
    out[#out + 1] = '<p class="quick">Quick run: a subset of the data and a few epochs; the '
      .. "protocol's numbers need the full table (<code>make benchmarks</code>).</p>"
  end
  local header = table.move(benchmarks.HEADER, 1, #benchmarks.HEADER, 1, {})
  header[2] = t.param.name
  local rows = benchmarks.rows(t, m)
  for _, r in ipairs(rows) do for i, c in ipairs(r) do r[i] = esc(c) end end
  out[#out + 1] = H.wide_table(header, rows)
  local src = {}
  for _, f in ipairs(t.published) do
    src[#src + 1] = ("<li>%s at %g%s: %s%s</li>"):format(esc(f.method), f.value, esc(t.param.unit),
      esc(f.source), f.note and (" — " .. esc(f.note)) or "")
  end
  for _, n in ipairs(t.notes or {}) do src[#src + 1] = "<li>" .. esc(n) .. "</li>" end
  out[#out + 1] = "<details><summary>sources of the published figures</summary><ul>"
    .. table.concat(src) .. "</ul></details>"
  out[#out + 1] = ("<p class=\"src\">Protocol: %s %s, %s %s, %s lr %g, batch %d, %s epochs; %s "
    .. "from the table file lua/cnnlab/benchmarks/%s.lua.</p>"):format(esc(m.protocol_dataset or t.dataset),
    esc(m.protocol_dataset_options or ""), esc(m.protocol_arch or t.arch),
    esc(m.protocol_arch_options or ""), esc(m.protocol_optimizer or t.optimizer),
    m.protocol_lr or t.lr, m.protocol_batch or t.batch, tostring(m.protocol_epochs or t.epochs),
    esc(t.param.name), esc(t.name))
  return table.concat(out, "\n")
end

return M
