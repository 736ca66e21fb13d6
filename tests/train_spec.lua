-- The trainer: learns a small coloured set, is reproducible bit for bit, resumes exactly
-- (after a finished epoch and after a Ctrl-C in the middle of one), and its checkpoint
-- reloads into a fresh model with identical outputs.
local lab = require "cnnlab"
local nn = lab.nn

local sets -- small generated Colored MNIST: 640 train, 160 val, 160 hard
local function small_sets()
  if not sets then
    local source = lab.data.generated{n = 800, n_test = 160, seed = 3}
    sets = lab.data.colored_mnist{seed = 3, source = source}
  end
  return sets
end

-- A small network so the tests run in seconds; the trainer does not care what it trains.
local function tiny_method(extra)
  local m = {name = "tiny", options = {}}
  function m.build_model(ctx)
    local net = nn.Sequential()
    net:add(nn.Conv2d(3, 8, 3, {padding = 1, generator = ctx.init_generator}), "conv1")
    net:add(nn.ReLU()):add(nn.MaxPool2d(3, 2)):add(nn.Flatten())
    net:add(nn.Dropout(0.2, {generator = ctx.dropout_generator}), "drop")
    net:add(nn.Linear(8 * 13 * 13, 10, {generator = ctx.init_generator}), "fc")
    return net
  end
  function m.loss(ctx, batch)
    local logits = ctx.model(batch.x)
    return lab.cross_entropy(logits, batch.y), logits
  end
  for k, v in pairs(extra or {}) do m[k] = v end
  return m
end

local function fit(opts)
  local o = {method = tiny_method(opts.method_extra), data = small_sets(), epochs = 2, batch = 64,
    lr = 3e-3, seed = 5, progress = false}
  for k, v in pairs(opts) do if k ~= "method_extra" then o[k] = v end end
  return lab.train.fit(o)
end

local function same_weights(a, b)
  local sa, sb = a:state_dict(), b:state_dict()
  for name, t in pairs(sa) do
    if (t - sb[name]):abs():max():item() ~= 0 then return false, name end
  end
  return true
end

local function tmpdir()
  local d = os.tmpname()
  os.remove(d)
  lab.util.mkdir_p(d)
  return d
end

describe("train.fit", function()
  it("learns the coloured set (validation ≥ 90% in 2 epochs) and reads colour", function()
    local r = fit{}
    local val = lab.metrics.evaluate(r.model, small_sets().val)
    local hard = lab.metrics.evaluate(r.model, small_sets().hard)
    assert.is_true(val.acc >= 90, ("validation accuracy %.1f%%"):format(val.acc))
    assert.is_true(hard.conflicting_acc < 50,
      ("hard-conflicting accuracy %.1f%%: expected the colour shortcut"):format(hard.conflicting_acc))
    local total = 0
    for _, row in ipairs(hard.confusion) do for _, c in ipairs(row) do total = total + c end end
    assert.equal(small_sets().hard.n, total)
  end)

  it("gives the same weights bit for bit for the same seed, other weights for another", function()
    local a, b, c = fit{epochs = 1}, fit{epochs = 1}, fit{epochs = 1, seed = 6}
    assert.is_true(same_weights(a.model, b.model))
    assert.is_false(same_weights(a.model, c.model))
  end)

  it("calls a method's begin_step once per step with the whole batch, before any loss", function()
    -- batch 200 over 640 samples: steps of 200, 200, 200, 40; with micro_batches = 2 the
    -- losses see halves, begin_step and before_step the whole batch
    for _, micro in ipairs({1, 2}) do
      local events = {}
      local function log(kind) return function(ctx, batch)
        events[#events + 1] = ("%s%d/%d"):format(kind, batch.y:numel(), ctx.micro_batches)
      end end
      local m = tiny_method{begin_step = log("B"), before_step = log("S")}
      local loss = m.loss
      m.loss = function(ctx, batch)
        log("L")(ctx, batch)
        return loss(ctx, batch)
      end
      lab.train.fit{method = m, data = {train = small_sets().train}, epochs = 1, batch = 200,
        lr = 3e-3, seed = 5, progress = false, validate = false, micro_batches = micro}
      local want = {}
      for _, count in ipairs({200, 200, 200, 40}) do
        want[#want + 1] = ("B%d/%d"):format(count, micro)
        for _ = 1, micro do want[#want + 1] = ("L%d/%d"):format(count // micro, micro) end
        want[#want + 1] = ("S%d/%d"):format(count, micro)
      end
      assert.are.same(want, events)
    end
  end)

  it("resumes after a finished epoch to the weights of an uninterrupted run", function()
    local dir = tmpdir()
    local whole = fit{epochs = 2}
    fit{epochs = 1, out = dir}
    local resumed = fit{epochs = 2, out = dir, resume = true}
    assert.is_true(same_weights(whole.model, resumed.model))
    assert.equal(2, #resumed.history)
  end)

  it("resumes after Ctrl-C in the middle of an epoch to the same weights", function()
    local dir = tmpdir()
    local whole = fit{epochs = 2}
    local pid = io.open("/proc/self/stat"):read("n")
    local steps = 0
    local r = fit{out = dir, method_extra = {before_step = function()
      steps = steps + 1
      if steps == 13 then
        -- os.execute (system) ignores SIGINT while its child runs: signal from a background
        -- process after it returns, and wait for the trap to see it
        os.execute(("(sleep 0.1; kill -INT %d) &"):format(pid))
        local deadline = lab.now() + 10
        while not lab.sigint_pending() and lab.now() < deadline do end
      end
    end}}
    assert.is_true(r.interrupted)
    assert.is_true(lab.util.exists(dir .. "/checkpoint.safetensors"))
    local resumed = fit{out = dir, resume = true}
    assert.is_false(resumed.interrupted)
    assert.is_true(same_weights(whole.model, resumed.model))
  end)

  it("refuses to resume with other settings, and without a checkpoint", function()
    local dir = tmpdir()
    fit{epochs = 1, out = dir}
    assert.has_error(function() fit{epochs = 2, out = dir, resume = true, lr = 1e-2} end)
    assert.has_error(function() fit{out = tmpdir(), resume = true} end)
  end)

  it("stops on a non-finite loss, naming the step, keeping the last good checkpoint", function()
    local dir = tmpdir()
    local calls = 0
    local ok, err = pcall(fit, {epochs = 2, out = dir, method_extra = {loss = function(ctx, batch)
      calls = calls + 1
      local logits = ctx.model(batch.x)
      local loss = lab.cross_entropy(logits, batch.y)
      if calls == 12 then loss = loss * (0 / 0) end
      return loss, logits
    end}})
    assert.is_false(ok)
    assert.truthy(tostring(err):find("loss became", 1, true))
    assert.truthy(tostring(err):find("epoch 2, step 2", 1, true))
    local tensors = lab.load_safetensors(dir .. "/model.safetensors")
    assert.is_not_nil(tensors["fc.weight"])
  end)

  it("saves a checkpoint that reloads into a fresh model with identical outputs", function()
    local dir = tmpdir()
    local r = fit{epochs = 1, out = dir}
    local fresh = tiny_method().build_model({init_generator = lab.Generator(99),
      dropout_generator = lab.Generator(98)})
    fresh:load_state_dict(lab.load_safetensors(dir .. "/model.safetensors"))
    fresh:eval()
    r.model:eval()
    local x = small_sets().val.images:narrow(0, 0, 32):float() / 255
    assert.equal(0, (fresh(x) - r.model(x)):abs():max():item())
  end)

  it("rejects bad settings", function()
    assert.has_error(function() fit{epochs = 0} end, "train: epochs must be a positive integer, got 0")
    assert.has_error(function() fit{batch = 2.5} end, "train: batch must be a positive integer, got 2.5")
    assert.has_error(function() fit{optimizer = "rmsprop"} end)
  end)
end)
