"""The task-stream page's HTML, CSS and script (filled in by `osiiso._timeline`).

The script draws on one canvas: a bar per attempt, a pixel column where bars are narrower
than a pixel (coloured by the worst outcome in it: crashed, error, timeout, cancelled, ok),
a dark tick at the start of every retry. Wheel zooms around the pointer, dragging pans, a
double click shows the whole run again. It writes what it drew into ``#osiiso-stats``
(``data-bars``, ``data-rects``, ``data-columns``, ``data-merged``) and builds the legend
(``#osiiso-legend``), so a browser test can read both from the DOM. User text (task names,
ids, messages, worker names) reaches the page only through ``textContent`` and canvas text.
"""

from __future__ import annotations

__all__ = ("OUTCOMES", "PAGE")

#: the outcomes of `osiiso.AttemptTiming`, in the order the page's colours and severities use
OUTCOMES = ("ok", "error", "timeout", "cancelled", "crashed")

PAGE = """<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>@TITLE@ — osiiso task stream</title>
<style>
  body { font: 13px system-ui, sans-serif; margin: 16px; color: #1d1f23; background: #fff; }
  h1 { font-size: 17px; margin: 0 0 4px; }
  #osiiso-stats { color: #555; margin-bottom: 8px; }
  #osiiso-legend { list-style: none; padding: 0; margin: 0 0 8px; display: flex; gap: 16px; flex-wrap: wrap; }
  #osiiso-legend li { display: flex; align-items: center; gap: 6px; }
  .swatch { width: 14px; height: 10px; display: inline-block; border-radius: 2px; }
  #osiiso-wrap { position: relative; border: 1px solid #ddd; }
  canvas { display: block; cursor: crosshair; }
  #osiiso-tip { position: fixed; pointer-events: none; background: #1d1f23; color: #fff; padding: 6px 8px;
                border-radius: 4px; white-space: pre-line; max-width: 520px; display: none; z-index: 2;
                font: 12px ui-monospace, monospace; }
  .hint { color: #777; font-size: 12px; margin-top: 6px; }
</style>
</head>
<body>
<h1 id="osiiso-title"></h1>
<div id="osiiso-stats"></div>
<ul id="osiiso-legend"></ul>
<div id="osiiso-wrap"><canvas id="osiiso-canvas"></canvas></div>
<div class="hint">Wheel: zoom around the pointer · drag: pan · double click: the whole run.
Bars narrower than a pixel are merged into one column per pixel, coloured by the worst outcome in it.</div>
<div id="osiiso-tip"></div>
<script type="application/json" id="osiiso-data">@DATA@</script>
<script>
(function () {
  "use strict";
  const data = JSON.parse(document.getElementById("osiiso-data").textContent);
  const B = data.bars, S = data.strings, rows = data.rows, outcomes = data.outcomes, n = B.row.length;
  const COLOURS = {ok: "#2e9d5b", error: "#d64545", timeout: "#f08c00", cancelled: "#9aa0a6", crashed: "#7b3fb3"};
  const SEVERITY = {crashed: 4, error: 3, timeout: 2, cancelled: 1, ok: 0};
  const LABEL = 150, HEADER = 18, AXIS = 22;
  const rowH = rows.length > 400 ? 2 : rows.length > 150 ? 4 : rows.length > 60 ? 8 : 16;
  const canvas = document.getElementById("osiiso-canvas"), ctx = canvas.getContext("2d");
  const tip = document.getElementById("osiiso-tip"), stats = document.getElementById("osiiso-stats");
  document.getElementById("osiiso-title").textContent = data.title;

  // bars of each row, sorted by start
  const order = Array.from({length: n}, (_, i) => i);
  order.sort((a, b) => (B.row[a] - B.row[b]) || (B.start[a] - B.start[b]));
  const rowFirst = new Int32Array(rows.length + 1);
  for (const i of order) rowFirst[B.row[i] + 1]++;
  for (let r = 0; r < rows.length; r++) rowFirst[r + 1] += rowFirst[r];
  let end = 1;
  for (let i = 0; i < n; i++) if (B.end[i] > end) end = B.end[i];

  // vertical layout: a header per backend, then its rows
  const rowTop = new Float64Array(rows.length), headers = [];
  let y = AXIS;
  for (let r = 0; r < rows.length; r++) {
    if (r === 0 || rows[r][0] !== rows[r - 1][0]) { headers.push([rows[r][0], y]); y += HEADER; }
    rowTop[r] = y; y += rowH;
  }
  const height = y + 4;

  // the legend, with a count per outcome
  const counts = outcomes.map(() => 0);
  let retries = 0;
  for (let i = 0; i < n; i++) { counts[B.outcome[i]]++; if (B.attempt[i] > 1) retries++; }
  const legend = document.getElementById("osiiso-legend");
  const item = (key, label, colour) => {
    const li = document.createElement("li"), swatch = document.createElement("span");
    li.dataset.outcome = key; swatch.className = "swatch"; swatch.style.background = colour;
    li.append(swatch, document.createTextNode(label)); legend.append(li);
  };
  outcomes.forEach((o, k) => item(o, o + " (" + counts[k].toLocaleString() + ")", COLOURS[o]));
  item("retry", "retry: attempt 2 or later, tick at its start (" + retries.toLocaleString() + ")", "#1d1f23");

  let t0 = 0, t1 = end, width = 800;
  const scale = () => (width - LABEL - 8) / (t1 - t0);
  const fmt = (us) => us >= 1e6 ? (us / 1e6).toFixed(2) + " s" : us >= 1e3 ? (us / 1e3).toFixed(1) + " ms"
                                    : Math.round(us) + " µs";

  function draw() {
    width = Math.max(400, document.getElementById("osiiso-wrap").clientWidth);
    const dpr = window.devicePixelRatio || 1;
    canvas.width = width * dpr; canvas.height = height * dpr;
    canvas.style.width = width + "px"; canvas.style.height = height + "px";
    ctx.setTransform(dpr, 0, 0, dpr, 0, 0);
    ctx.clearRect(0, 0, width, height);
    const k = scale();
    ctx.font = "11px system-ui, sans-serif"; ctx.textBaseline = "middle";
    for (let t = 0; t <= 6; t++) {  // the time axis
      const x = LABEL + (width - LABEL - 8) * t / 6;
      ctx.fillStyle = "#eee"; ctx.fillRect(x, AXIS - 4, 1, height);
      ctx.fillStyle = "#555"; ctx.fillText(fmt(t0 + (t1 - t0) * t / 6), Math.min(x, width - 60), 9);
    }
    for (const [name, top] of headers) {
      ctx.fillStyle = "#f3f4f6"; ctx.fillRect(0, top, width, HEADER);
      ctx.fillStyle = "#1d1f23"; ctx.font = "bold 12px system-ui, sans-serif";
      ctx.fillText(name, 4, top + HEADER / 2);
    }
    ctx.font = "10px system-ui, sans-serif";
    let rects = 0, columns = 0, merged = 0;
    for (let r = 0; r < rows.length; r++) {
      const top = rowTop[r], h = Math.max(1, rowH - 1);
      if (rowH >= 8) { ctx.fillStyle = "#555"; ctx.fillText(rows[r][1], 10, top + rowH / 2, LABEL - 14); }
      let px = -1, worst = -1, count = 0;
      const flush = () => {
        if (count) {
          ctx.fillStyle = COLOURS[outcomes[worst]]; ctx.fillRect(px, top, 1, h);
          columns++; merged += count;
        }
        count = 0; worst = -1;
      };
      for (let j = rowFirst[r]; j < rowFirst[r + 1]; j++) {
        const i = order[j];
        if (B.end[i] < t0 || B.start[i] > t1) continue;
        const x0 = LABEL + (B.start[i] - t0) * k, x1 = LABEL + (B.end[i] - t0) * k;
        if (x1 - x0 >= 1) {
          flush();
          ctx.fillStyle = COLOURS[outcomes[B.outcome[i]]];
          ctx.fillRect(Math.max(LABEL, x0), top, Math.min(x1, width) - Math.max(LABEL, x0), h);
          if (B.attempt[i] > 1 && x0 >= LABEL) { ctx.fillStyle = "#1d1f23"; ctx.fillRect(x0, top, 2, h); }
          rects++;
        } else {
          const p = Math.floor(Math.max(LABEL, x0));
          if (p !== px) { flush(); px = p; }
          const s = SEVERITY[outcomes[B.outcome[i]]];
          if (worst < 0 || s > SEVERITY[outcomes[worst]]) worst = B.outcome[i];
          count++;
        }
      }
      flush();
    }
    stats.dataset.bars = n; stats.dataset.rects = rects; stats.dataset.columns = columns;
    stats.dataset.merged = merged; stats.dataset.rows = rows.length;
    stats.textContent = n.toLocaleString() + " attempts on " + rows.length.toLocaleString() + " rows over " +
      fmt(end) + "; showing " + fmt(t0) + " to " + fmt(t1) + ": " + rects.toLocaleString() + " bars" +
      (columns ? ", " + merged.toLocaleString() + " narrow ones merged into " + columns.toLocaleString() +
       " pixel columns (zoom in to separate them)" : "") +
      (data.unran ? "; " + data.unran.toLocaleString() + " tasks never started (cancelled while waiting, " +
       "or a dependency failed): no bar" : "");
  }

  function find(ev) {  // the attempt under the pointer, or -1
    const box = canvas.getBoundingClientRect(), x = ev.clientX - box.left, yy = ev.clientY - box.top;
    if (x < LABEL) return -1;
    let lo = 0, hi = rows.length - 1, r = -1;
    while (lo <= hi) { const m = (lo + hi) >> 1; if (rowTop[m] <= yy) { r = m; lo = m + 1; } else hi = m - 1; }
    if (r < 0 || yy > rowTop[r] + rowH) return -1;
    const k = scale(), t = t0 + (x - LABEL) / k, slack = 2 / k;
    lo = rowFirst[r]; hi = rowFirst[r + 1] - 1;
    let j = -1;
    while (lo <= hi) {
      const m = (lo + hi) >> 1;
      if (B.start[order[m]] <= t + slack) { j = m; lo = m + 1; } else hi = m - 1;
    }
    for (let c = j; c >= rowFirst[r] && c > j - 64; c--) {
      const i = order[c];
      if (B.end[i] + slack >= t) return i;
    }
    return -1;
  }

  function show(i, x, y) {  // the tooltip of attempt i, near (x, y)
    tip.textContent = S[B.name[i]] + " (" + S[B.task[i]] + ")\\nattempt " + B.attempt[i] + " of " +
      B.attempts[i] + ": " + outcomes[B.outcome[i]] + "\\nran " + fmt(B.end[i] - B.start[i]) + ", waited " +
      fmt(B.start[i] - B.queued[i]) + " on " + rows[B.row[i]][0] + " / " + rows[B.row[i]][1] +
      "\\n" + S[B.message[i]];
    tip.dataset.attempt = i;
    tip.style.display = "block";
    tip.style.left = Math.max(0, Math.min(x + 14, window.innerWidth - 540)) + "px";
    tip.style.top = (y + 14) + "px";
  }

  let drag = null;
  canvas.addEventListener("mousemove", (ev) => {
    if (drag) {
      const dt = (drag.x - ev.clientX) / scale();
      t0 = drag.t0 + dt; t1 = drag.t1 + dt; draw(); return;
    }
    const i = find(ev);
    if (i < 0) { tip.style.display = "none"; return; }
    show(i, ev.clientX, ev.clientY);
  });
  canvas.addEventListener("mouseleave", () => { tip.style.display = "none"; });
  canvas.addEventListener("mousedown", (ev) => { drag = {x: ev.clientX, t0: t0, t1: t1}; });
  window.addEventListener("mouseup", () => { drag = null; });
  canvas.addEventListener("dblclick", () => { t0 = 0; t1 = end; draw(); });
  canvas.addEventListener("wheel", (ev) => {
    ev.preventDefault();
    const box = canvas.getBoundingClientRect(), x = ev.clientX - box.left;
    const at = t0 + Math.max(0, x - LABEL) / scale(), f = ev.deltaY > 0 ? 1.25 : 0.8;
    t0 = at - (at - t0) * f; t1 = at + (t1 - at) * f;
    if (t1 - t0 < 1) t1 = t0 + 1;
    draw();
  }, {passive: false});
  window.addEventListener("resize", draw);
  draw();
  const pinned = /^#attempt=(\\d+)$/.exec(location.hash);  // page.html#attempt=3 opens that tooltip
  if (pinned && +pinned[1] < n) {
    const i = +pinned[1], box = canvas.getBoundingClientRect();
    show(i, box.left + LABEL + (B.start[i] - t0) * scale(), box.top + rowTop[B.row[i]]);
  }
})();
</script>
</body>
</html>
"""
