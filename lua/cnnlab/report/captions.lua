--- cnnlab.report.captions — the caption sentence of every figure of every task, in story
-- order: the table that lab.report.CAPTIONS is (lua/cnnlab/report.lua assembles the parts).
local CAPTIONS
local layers_of = require("cnnlab.report.html").layers_of

--- Every figure of every task, in the order the story shows them, with a caption sentence:
-- what the figure shows and what to notice. report.CAPTIONS[task] is a list of
-- {file, caption}: file is a name or a Lua pattern (starting with ^); caption is a string, a
-- function(metrics, file, capture) returning one, or false for a picture that another figure
-- embeds (it is listed among the files, not shown). A PNG with an SVG of the same name beside
-- it is such a picture too. A figure found in a task folder and named here by nothing is shown
-- last with a visible "no caption" note, and the browser test fails on it.
CAPTIONS = {
  task0 = {
    {"palette.png", "The ten class colours, class 0 on the left: in the easy set a digit of "
      .. "class k always wears colour k."},
    {"easy_grid.png", "Ten easy (training) digits per class, one row per class from 0 at the "
      .. "top: every row wears one colour, so colour alone tells the label."},
    {"hard_grid.png", "Ten hard digits per class, one row per class: the colours are drawn at "
      .. "random, so every row mixes them and colour says nothing about the digit."},
    {"colors_train.svg", "Colour against label in the training set: every count sits on the "
      .. "diagonal, so a colour reader is right on every training digit."},
    {"colors_val.svg", "The same for the validation set: the diagonal again, so easy "
      .. "validation accuracy cannot tell a colour reader from a shape reader."},
    {"colors_hard.svg", "Colour against label in the hard set: the counts spread evenly, and "
      .. "only the diagonal — about one digit in ten — wears its own class colour."},
  },
  task1 = {
    {"curve.svg", function(m)
      local s = "Accuracy and loss per epoch on the easy set: validation accuracy reaches its "
        .. "ceiling at once, because colour is an easy feature to learn."
      if (m.epochs or 0) <= 1 then
        s = s .. " This run trained one epoch, so each series is one point, its value in the legend."
      end
      return s
    end},
    {"confusion.svg", "The hard set's confusion matrix, rows the true digit, columns the "
      .. "answer: every row is spread evenly, because the answer follows the random colour, "
      .. "not the digit."},
    {"example.png", function(m)
      if not m.example_label then return "A hard digit painted in another class's colour." end
      return ("Hard digit #%d: a %d painted in the colour of %d, read as %d with %.1f%% "
        .. "confidence — the network names the colour's class."):format(m.example_index,
        m.example_label, m.example_color, m.example_pred, m.example_confidence or 0)
    end},
  },
  task2 = {
    {"features.svg", function(m)
      local labels = layers_of(m, "feature_labels", true) -- conv1–conv3: the seed network
      return ("Every channel of %s for three inputs: A an easy digit, B the "
        .. "same digit in another colour, C another digit in B's colour. Notice that B's maps "
        .. "resemble C's (same colour), not A's (same shape) — the correlations at the bottom say "
        .. "how much."):format(#labels > 1 and (labels[1] .. "–" .. labels[#labels]) or labels[1])
    end},
    {"color_response.svg", function(m)
      return ("Mean response of each %s channel to each palette colour, on "
        .. "blank inputs and on digits: the first layer's channels are colour detectors, tuned "
        .. "before any digit is present."):format(layers_of(m, "feature_labels", true)[1])
    end},
    {"variance.svg", "Share of the activation variance explained by colour and by digit (η², "
      .. "hard set, where the two are independent), layer by layer: colour explains most of it "
      .. "everywhere, the digit almost nothing."},
    {"^features_.*%.png$", false},
    {"^input_.*%.png$", false},
  },
  task3 = {
    {"overlays_easy.svg", "Grad-CAM, Grad-CAM++ and input-gradient saliency for easy "
      .. "validation digits, the strokes outlined in cyan: the maps cover the digit and its "
      .. "tinted surroundings."},
    {"overlays_hard.svg", "The same maps for hard digits read as the class of their colour: "
      .. "they look like the easy ones — the network looks at the same place and reads the "
      .. "colour there."},
    {"share.svg", "Share of each map's mass on the strokes, beside a uniform map's share (the "
      .. "strokes' area): barely above it, and the same for right and misread digits — this "
      .. "measure cannot tell colour from shape on this data."},
  },
  task4 = {
    {"comparison.svg", "Hard-set accuracy of every debias method (blue), on the hard digits "
      .. "whose colour is not their own (orange), beside the seed study's published figures "
      .. "(grey): a method level with erm still reads colour."},
    {"evidence.svg", "How much colour a grey image still carries: readers that see only grey "
      .. "brightness predict the label far above chance, the leak that keeps the seed's grey "
      .. "consistency from working here."},
    {"sweep.svg", "Hard digits whose colour differs from their label, as ρ falls below 1: the "
      .. "bias-unaware methods (LfF, JTT) need some bias-conflicting training digits to find."},
    {"gradcam.svg", "Grad-CAM of the trained methods on the same hard digits: where each "
      .. "model looks (on this data colour sits on the strokes, so the maps alike do not mean "
      .. "the models read alike)."},
  },
  task5 = {
    {"grid.svg", "Validation and hard-set 7s before and after the attack at the seed's ε, each "
      .. "with its perturbation (grey: no change), and the validation 7s again at a larger ε: "
      .. "compare the answers under the rows — the hard 7s that fall are those already painted "
      .. "close to yellow."},
    {"curve.svg", "Share of 7s turned into 3s read with ≥ 90% confidence as ε grows, for the "
      .. "Task 1 network and a debiased one, the seed's budget dashed: the curves rise only once ε "
      .. "is large enough to change the colour or the shape."},
    {"matrix.svg", "Attack success for every source → target pair at ε: success comes where "
      .. "the two classes' colours are close, not where their shapes are."},
    {"min_eps_cdf.svg", "For every model, the share of 7s that the smallest change ε (found by "
      .. "bisection with APGD) turns into a 3 read with p ≥ 0.9, all source/target pairs dashed: "
      .. "compare where each curve crosses the seed's ε = 0.05 and ε = 0.1."},
    {"grid_median.svg", "7s attacked at each model's median minimal ε, each with its "
      .. "perturbation and captioned with p(3) and the L∞ of the change: whether the eye can see "
      .. "the change is what the seed's claim is about."},
  },
  task6 = {
    {"selectivity.svg", "Colour and digit selectivity of every channel: nearly every channel "
      .. "is far more selective for colour than for digit."},
    {"demo.svg", "One easy digit: the probability of its class as its most attributed "
      .. "channels are zeroed one by one — how few channels it takes to change the answer."},
    {"^curves_(.-)%.svg$", function(_, _, layer)
      return ("Easy and hard accuracy as %s's channels are zeroed by colour selectivity, by "
        .. "digit selectivity, by attribution and at random: hard accuracy does not climb "
        .. "above the random orders' spread, so no small set of colour channels holds the "
        .. "shortcut."):format(layer)
    end},
  },
}


return CAPTIONS
