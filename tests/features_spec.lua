-- The three inputs of Task 2 (lua/cnnlab/features.lua): A an easy digit in its own colour read
-- right, B the same grey digit in another colour, C a hard digit of a third class in B's colour.
local lab = require "cnnlab"
local features = require "cnnlab.features"

-- A "model" that answers whatever the colour says: the class of the dominant palette colour.
local function colour_reader()
  local palette = lab.tensor(lab.data.PALETTE):float() / 255 -- 10×3
  local m = lab.nn.Sequential {}
  function m:forward(x)
    local mean = x:reshape(x:size(0), 3, -1):max(2)               -- N×3 brightest per channel
    local d = {}
    for i = 0, x:size(0) - 1 do
      local row = {}
      for k = 0, 9 do row[k + 1] = -((mean:select(0, i) - palette:select(0, k)):square():sum():item()) end
      d[i + 1] = row
    end
    return lab.tensor(d)
  end
  return m
end

describe("features.choose_inputs", function()
  local sets = lab.study.load_data({seed = 3, rho = 1, beta = 0.25, data = "generated",
    generated_n = 400, quick = false})
  local model = colour_reader()

  it("picks A, B (A's grey digit recoloured) and C as the study describes", function()
    local images, inputs = features.choose_inputs(model, sets, {digit = 1, color = 0, beta = 0.25,
      seed = 3, stream = 7200})
    assert.same({3, 3, 28, 28}, images.shape)
    assert.same({"A_easy", "B_recoloured", "C_hard"}, {inputs[1].key, inputs[2].key, inputs[3].key})
    assert.same({1, 1}, {inputs[1].label, inputs[1].color})
    assert.same({1, 0}, {inputs[2].label, inputs[2].color})
    assert.equal(inputs[1].index, inputs[2].index)
    assert.equal(0, inputs[3].color)
    assert.is_true(inputs[3].label ~= 0 and inputs[3].label ~= 1)
    -- B is A's grey digit painted by colorize with the given stream
    local grey = sets.source.train.images:index_select(0, lab.tensor({inputs[1].index}, {dtype = "int64"}))
    local b = lab.colorize(grey, lab.tensor({0}, {dtype = "int64"}), 0.25, 3, 7200)
    assert.equal(0, (images:narrow(0, 1, 1):float() - b:float()):abs():max():item())
    assert.equal("true 1, painted red = colour of 0", features.describe(inputs[2]))
    assert.equal("true 1, painted " .. lab.data.PALETTE_NAMES[2], features.describe(inputs[1]))
  end)

  it("says when no easy digit in its own colour is read right", function()
    local wrong = lab.nn.Sequential {}
    function wrong:forward(x) return lab.zeros({x:size(0), 10}) end -- always 0
    local ok, err = pcall(features.choose_inputs, wrong, sets, {digit = 1, color = 0,
      beta = 0.25, seed = 3, stream = 7200})
    assert.is_false(ok)
    assert.truthy(err:find("no validation digit 1 in its own colour is read correctly", 1, true))
  end)
end)
