--- cnnlab.report.browser — the report in headless Chromium: the layout check, screenshots and
-- the rendered DOM (lab.report.check, .screenshot, .render, .browser).
local util = require "cnnlab.util"

local B = {}

-- lab.report, looked up at each call: report.sections for the sections the check expects,
-- report.check for the height of a screenshot.
local report = setmetatable({}, {__index = function(_, k) return require("cnnlab.report")[k] end})

--- The path of a Chromium to run headless (chromium, chromium-browser or google-chrome), or nil
-- and a message saying how to install one.
local function find_browser()
  for _, name in ipairs({"chromium", "chromium-browser", "google-chrome"}) do
    local p = io.popen("command -v " .. name .. " 2>/dev/null")
    local found = p:read("l")
    p:close()
    if found and found ~= "" then return found end
  end
  return nil, "chromium is not installed (apt-get install chromium)"
end
B.browser = find_browser

local function absolute(path)
  if path:sub(1, 1) == "/" then return path end
  local p = io.popen("pwd")
  local cwd = p:read("l")
  p:close()
  return cwd .. "/" .. path
end

-- Runs headless Chromium with the given flags on a file: URL; returns its standard output.
local function chromium(flags, path)
  local browser, why = find_browser()
  if not browser then return nil, why end
  local profile = os.tmpname()
  os.remove(profile)
  -- The flags keep a headless Chromium from reaching for the network on a closed machine.
  local cmd = ("%s --headless --no-sandbox --disable-gpu --disable-quic --no-first-run "
    .. "--disable-background-networking --disable-component-update --disable-sync "
    .. "--hide-scrollbars --user-data-dir=%s %s %s 2>/dev/null"):format(util.shell_quote(browser),
    util.shell_quote(profile), flags, util.shell_quote("file://" .. absolute(path)))
  local p = io.popen(cmd)
  local out = p:read("a")
  p:close()
  os.execute("rm -rf " .. util.shell_quote(profile))
  return out
end

-- The page that loads the report in frames of the given widths and every SVG it shows on its
-- own, measures them, and writes what it found as JSON into <pre id="result">.
local HARNESS = [[<!DOCTYPE html><html><head><meta charset="utf-8"></head><body>
<pre id="result">pending</pre>
<script>
var REPORT = %s, WIDTHS = %s, HEIGHT = %d, SECTIONS = %s;
var result = {pages: {}, svgs: {}, problems: []};
function describe(el) {
  var s = el.tagName.toLowerCase();
  if (el.id) s += '#' + el.id;
  if (el.className && typeof el.className === 'string') s += '.' + el.className.split(' ').join('.');
  var t = (el.textContent || el.getAttribute('src') || '').replace(/\s+/g, ' ').trim();
  return s + ' "' + t.slice(0, 50) + '"';
}
function checkPage(win, width) {
  var d = win.document, root = d.documentElement, vw = root.clientWidth;
  var page = {viewport: vw, height: root.scrollHeight, scroll_width: root.scrollWidth,
    images: 0, figures: 0, overflow: [], overflow_count: 0};
  var add = function (what) { result.problems.push(width + ' px: ' + what); };
  var els = d.body.getElementsByTagName('*');
  for (var i = 0; i < els.length; i++) {
    var r = els[i].getBoundingClientRect();
    if (r.width === 0 && r.height === 0) continue;
    if (r.right > vw + 1 || r.left < -1) {
      page.overflow_count++;
      if (page.overflow.length < 8) {
        page.overflow.push(describe(els[i]) + ' spans ' + Math.round(r.left) + '..' + Math.round(r.right));
        add('wider than the ' + vw + ' px viewport: ' + describe(els[i]) + ' spans ' +
          Math.round(r.left) + '..' + Math.round(r.right));
      }
    }
  }
  if (root.scrollWidth > vw + 1) add('the page scrolls sideways (' + root.scrollWidth + ' px wide)');
  for (var i = 0; i < d.images.length; i++) {
    var img = d.images[i];
    page.images++;
    if (!img.complete || img.naturalWidth === 0) add('picture did not load: ' + img.getAttribute('src'));
  }
  var figs = d.getElementsByTagName('figure');
  for (var i = 0; i < figs.length; i++) {
    page.figures++;
    var fc = figs[i].getElementsByTagName('figcaption')[0];
    var src = (figs[i].querySelector('img') || {getAttribute: function () { return '?'; }}).getAttribute('src');
    var text = '';
    if (fc) {
      var c = fc.cloneNode(true), spans = c.querySelectorAll('.file, b');
      for (var k = 0; k < spans.length; k++) spans[k].remove();
      text = c.textContent.replace(/\s+/g, ' ').trim();
    }
    if (figs[i].hasAttribute('data-uncaptioned') || text.split(' ').length < 6 || !/[.!?]$/.test(text))
      add('figure without a caption sentence: ' + src + (text ? ' ("' + text.slice(0, 60) + '")' : ''));
  }
  for (var i = 0; i < SECTIONS.length; i++)
    if (!d.getElementById(SECTIONS[i])) add('section "' + SECTIONS[i] + '" is missing');
  result.pages[width] = page;
  var svgs = [];
  for (var i = 0; i < d.images.length; i++)
    if (/\.svg$/i.test(d.images[i].src) && svgs.indexOf(d.images[i].src) < 0) svgs.push(d.images[i].src);
  return svgs;
}
function checkSvg(frame, url) {
  var name = url.replace(/^.*\/([^\/]+\/[^\/]+)$/, '$1');
  var d = frame.contentDocument, root = d && d.documentElement;
  if (!root || root.tagName.toLowerCase() !== 'svg') { result.problems.push(name + ': did not load as SVG'); return; }
  var vb = root.viewBox && root.viewBox.baseVal, rr = root.getBoundingClientRect();
  var bx = vb && vb.width ? vb : {x: 0, y: 0, width: rr.width, height: rr.height};
  var sx = rr.width / bx.width, sy = rr.height / bx.height, out = 0, texts = d.getElementsByTagName('text');
  for (var i = 0; i < texts.length; i++) {
    if (!texts[i].textContent.trim()) continue;
    var b = texts[i].getBoundingClientRect();
    var x0 = (b.left - rr.left) / sx, x1 = (b.right - rr.left) / sx;
    var y0 = (b.top - rr.top) / sy, y1 = (b.bottom - rr.top) / sy;
    if (x0 < -1 || y0 < -1 || x1 > bx.width + 1 || y1 > bx.height + 1) {
      out++;
      if (out <= 5) result.problems.push(name + ': text "' + texts[i].textContent.slice(0, 50) +
        '" extends outside the ' + Math.round(bx.width) + '×' + Math.round(bx.height) +
        ' picture (' + Math.round(x0) + ',' + Math.round(y0) + '..' + Math.round(x1) + ',' + Math.round(y1) + ')');
    }
  }
  result.svgs[name] = {texts: texts.length, outside: out};
}
function load(src, width, height, then) {
  var f = document.createElement('iframe');
  f.style.border = '0'; f.width = width; f.height = height;
  f.onload = function () { try { then(f); } catch (e) { result.problems.push(src + ': ' + e); } next(); };
  f.src = src;
  document.body.appendChild(f);
}
var queue = [], svgList = [];
function next() {
  var job = queue.shift();
  if (job) { job(); return; }
  document.getElementById('result').textContent = JSON.stringify(result);
}
WIDTHS.forEach(function (w, i) {
  queue.push(function () {
    load(REPORT, w, HEIGHT, function (f) {
      var list = checkPage(f.contentWindow, w);
      if (i === 0) list.forEach(function (u) {
        queue.push(function () { load(u, 3000, 3000, function (g) { checkSvg(g, u); g.remove(); }); });
      });
      f.remove();
    });
  });
});
next();
</script></body></html>
]]

--- Loads the report in headless Chromium at each width (default 1280 and 390 px) and every
-- SVG it shows on its own. Returns {problems = {...}, pages = {[width] = {height =, images =,
-- figures =, ...}}, svgs = {...}}, or nil and a reason (no Chromium, or the page did not
-- finish). Problems: an element wider than the viewport, a picture that did not load, a figure
-- without a caption sentence, a missing section (opts.sections: ids), SVG text outside its
-- picture.
function B.check(html_path, opts)
  opts = opts or {}
  local widths = opts.widths or {1280, 390}
  local sections = opts.sections or {"findings"}
  if not opts.sections then
    for _, s in ipairs(report.sections) do sections[#sections + 1] = s.task end
  end
  local dir = os.tmpname()
  os.remove(dir)
  util.mkdir_p(dir)
  local harness = dir .. "/harness.html"
  util.write_file(harness, HARNESS:format(util.json_encode("file://" .. absolute(html_path)),
    util.json_encode(widths), opts.height or 800, util.json_encode(sections)))
  local out, why = chromium(("--allow-file-access-from-files --virtual-time-budget=%d --dump-dom")
    :format(opts.budget or 60000), harness)
  os.execute("rm -rf " .. util.shell_quote(dir))
  if not out then return nil, why end
  local json = out:match('<pre id="result">(.-)</pre>')
  if not json or json == "pending" then
    return nil, "the check page did not finish in headless Chromium"
  end
  json = json:gsub("&lt;", "<"):gsub("&gt;", ">"):gsub("&quot;", '"'):gsub("&amp;", "&")
  local ok, result = pcall(util.json_decode, json)
  if not ok then return nil, "unreadable result from the check page: " .. tostring(result) end
  result.problems = result.problems or {}
  return result
end

--- Writes a screenshot of the whole page, `width` wide (default 1280) — its height measured
-- first (opts.height to give it), or a fixed opts.height for the top of the page only.
-- Returns the height, or nil and a reason.
function B.screenshot(html_path, png, opts)
  opts = opts or {}
  local width = opts.width or 1280
  local height = opts.height
  if not height then
    local r, why = report.check(html_path, {widths = {width}, sections = {}})
    if not r then return nil, why end
    local page = r.pages[tostring(width)] or r.pages[width]
    height = page and page.height
    if not height then return nil, "could not measure the page" end
  end
  height = math.min(math.ceil(height), opts.max_height or 40000)
  local out, why = chromium(("--allow-file-access-from-files --virtual-time-budget=10000 "
    .. "--window-size=%d,%d --screenshot=%s"):format(width, height, util.shell_quote(absolute(png))),
    html_path)
  if not out then return nil, why end
  if not util.exists(png) then return nil, "Chromium wrote no screenshot" end
  return height
end

--- The DOM of an HTML file after headless Chromium loaded it (and a screenshot of the whole
-- page when opts.screenshot is a path); nil and a reason without Chromium.
function B.render(html_path, opts)
  opts = opts or {}
  local dom, why = chromium("--virtual-time-budget=10000 --dump-dom", html_path)
  if not dom then return nil, why end
  if opts.screenshot then
    report.screenshot(html_path, opts.screenshot, {width = opts.width, height = opts.height})
  end
  return dom
end

return B
