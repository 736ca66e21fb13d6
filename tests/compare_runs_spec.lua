-- tools/compare_runs.lua: the acceptance check of a behaviour-preserving change. Two runs
-- folders are the same when every safetensors has the same tensors and every metrics.json /
-- result.json the same values, timings and the runs folder's own name aside.
local lab = require "cnnlab"
local util = lab.util
local BIN = os.getenv("CNNLAB_BIN") or "./cnnlab"

local tmpdir = require("tests.helpers").tmpdir

local function make_run(root, o)
  util.mkdir_p(root .. "/task1")
  util.write_json(root .. "/task1/metrics.json", {hard_acc = o.hard_acc or 10.5,
    total_seconds = o.seconds or 3, model = root .. "/task1/model.safetensors", extra = o.extra})
  lab.save_safetensors(root .. "/task1/model.safetensors", {w = lab.tensor({1, 2, o.w or 3})},
    {seconds = tostring(o.seconds or 3)})
end

local function compare(a, b)
  local out = os.tmpname()
  local _, _, code = os.execute(("%s tools/compare_runs.lua %s %s >%s 2>&1"):format(BIN,
    util.shell_quote(a), util.shell_quote(b), out))
  local text = util.read_file(out)
  os.remove(out)
  return code, text
end

describe("tools/compare_runs.lua", function()
  local d = tmpdir()
  make_run(d .. "/a", {})
  it("finds two runs the same when only timings and the runs folder differ", function()
    make_run(d .. "/b", {seconds = 9})
    local code, text = compare(d .. "/a", d .. "/b")
    assert.equal(0, code)
    assert.truthy(text:find("VERDICT: SAME", 1, true))
    assert.truthy(text:find("1 path differ only in the runs folder", 1, true))
  end)
  it("reports a changed value and different tensors, and exits 1", function()
    make_run(d .. "/c", {hard_acc = 11, w = 4})
    local code, text = compare(d .. "/a", d .. "/c")
    assert.equal(1, code)
    assert.truthy(text:find("hard_acc: 10.5 -> 11", 1, true))
    assert.truthy(text:find("tensor data differ", 1, true))
    assert.truthy(text:find("VERDICT: DIFFERENT", 1, true))
  end)
  it("reports added keys apart from changes, without failing", function()
    make_run(d .. "/e", {extra = 1})
    local code, text = compare(d .. "/a", d .. "/e")
    assert.equal(0, code)
    assert.truthy(text:find("ADDED keys: extra", 1, true))
    assert.truthy(text:find("1 keys and 0 files added", 1, true))
  end)
  it("counts a file missing in the second run as a difference", function()
    util.mkdir_p(d .. "/f")
    local code, text = compare(d .. "/a", d .. "/f")
    assert.equal(1, code)
    assert.truthy(text:find("missing in", 1, true))
  end)
  teardown(function() os.execute("rm -rf " .. util.shell_quote(d)) end)
end)
