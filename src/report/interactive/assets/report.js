// report.html's interactive charts (issue 35): reads the chart specs from #charts-data
// (written by src/report/interactive/chart.rs) and draws each with uPlot. Time charts
// share the cursor and the zoom; a click on a legend entry hides its series. Every text
// from the scenario reaches the page through textContent or the canvas, never as HTML.
(function () {
  "use strict";
  var THRESHOLD = "#c81e1e", MARKER = "#5a5a5a", WARMUP = "rgba(95,100,110,0.08)";
  var HEIGHT = 330;
  var scriptAt = performance.now();
  var specs = JSON.parse(document.getElementById("charts-data").textContent);
  var parseMs = performance.now() - scriptAt;
  var timeCharts = [];
  var charts = [];
  var syncing = false;

  function fmt(v) {
    if (v == null || !isFinite(v)) return "–";
    var a = Math.abs(v);
    if (a >= 1000) return (Math.round(v * 10) / 10).toLocaleString("en");
    return String(+v.toPrecision(a >= 1 ? 6 : 4));
  }

  // The percentile of x = 1/(1−q), as the static spectrum labels it.
  function percentile(x) {
    var p = 100 * (1 - 1 / x);
    if (p < 1e-9) return "0%";
    if (Math.abs(p - Math.round(p)) < 1e-6) return Math.round(p) + "%";
    var decimals = Math.min(6, Math.max(1, Math.round(Math.log10(x)) - 2));
    return p.toFixed(decimals) + "%";
  }

  // Aligns the series on one x column; an unknown value (null) stays a gap, a missing x
  // (undefined) is joined over, as in the static plots.
  function align(spec) {
    var tables = spec.series.map(function (s) { return [s.x, s.y]; });
    if (spec.x_max != null) tables.push([[0, spec.x_max]]); // the whole run on the axis
    return uPlot.join(tables);
  }

  function stack(data) {
    var out = [data[0]];
    for (var i = 1; i < data.length; i++) {
      out.push(data[i].map(function (v, j) {
        if (v == null) return v;
        return v + (i > 1 && out[i - 1][j] != null ? out[i - 1][j] : 0);
      }));
    }
    return out;
  }

  // A log axis cannot show 0: such values are drawn at the smallest positive value.
  function clampForLog(data) {
    var low = Infinity;
    data.slice(1).forEach(function (col) {
      col.forEach(function (v) { if (v != null && v > 0 && v < low) low = v; });
    });
    if (!isFinite(low)) low = 0.001;
    return [data[0]].concat(data.slice(1).map(function (col) {
      return col.map(function (v) { return v == null ? v : Math.max(v, low); });
    }));
  }

  function yRange(spec) {
    var reach = spec.thresholds.filter(function (t) { return t.in_reach; }).map(function (t) { return t.at; });
    return function (u, min, max) {
      if (min == null) { min = spec.log_y ? 0.1 : 0; max = 1; }
      reach.forEach(function (t) { if (!spec.log_y || t > 0) { min = Math.min(min, t); max = Math.max(max, t); } });
      if (spec.y_max != null) max = spec.y_max;
      if (spec.log_y) return uPlot.rangeLog(Math.max(min, 1e-3), Math.max(max, min * 10), 10, true);
      return [Math.min(0, min), max > 0 ? (spec.y_max != null ? max : max * 1.08) : 1];
    };
  }

  // `held.raw`: the values as measured, replaced when a live chart gets new rows.
  function seriesOptions(spec, held) {
    var x = { label: spec.kind === "spectrum" ? "percentile" : spec.categories.length ? "" : spec.x_label };
    x.value = function (u, v) {
      if (v == null) return "–";
      if (spec.kind === "spectrum") return percentile(v);
      if (spec.categories.length) return spec.categories[Math.round(v)] || "";
      if (spec.kind === "time" || spec.kind === "stacked") return "second " + fmt(v);
      return fmt(v);
    };
    var out = [x];
    spec.series.forEach(function (s, i) {
      var o = {
        label: s.name,
        stroke: s.colour,
        width: s.style === "main" ? 1.5 : 1,
        spanGaps: false,
        points: { show: s.points, size: 7, fill: s.colour },
        // The value as measured, not as drawn (stacked sums, a log axis' floor).
        value: function (u, v, si, idx) { return idx == null ? "–" : fmt(held.raw[si][idx]); }
      };
      // Secondary lines are thin and lighter, not dashed as in the static plots: a dashed
      // path of 3,600 points took seconds to stroke in Chromium's software canvas.
      if (s.style === "secondary") o.alpha = 0.7;
      if (s.style === "faint") o.alpha = 0.45;
      if (spec.kind === "stacked") o.fill = s.colour + "b0";
      if (spec.kind === "bars") {
        o.paths = uPlot.paths.bars({ size: [0.6, 90] });
        o.fill = s.colour;
        o.points = { show: false };
      }
      out.push(o);
    });
    return out;
  }

  function axes(spec) {
    var xAxis = { label: spec.x_label, labelSize: 24 };
    if (spec.kind === "spectrum") {
      xAxis.splits = function (u, ai, min, max) {
        var out = [];
        for (var d = 1; d <= max * 1.0001; d *= 10) if (d >= min * 0.9999) out.push(d);
        return out;
      };
      xAxis.values = function (u, splits) { return splits.map(percentile); };
    } else if (spec.categories.length) {
      xAxis.splits = function () { return spec.categories.map(function (_, i) { return i; }); };
      xAxis.values = function (u, splits) { return splits.map(function (i) { return spec.categories[i] || ""; }); };
      xAxis.gap = 4;
    }
    var yAxis = { label: spec.y_label, labelSize: 24, size: 64 };
    if (spec.log_y) yAxis.values = function (u, splits) { return splits.map(fmt); };
    return [xAxis, yAxis];
  }

  function scales(spec) {
    var x = { time: false };
    if (spec.kind === "spectrum") { x.distr = 3; x.log = 10; }
    if (spec.categories.length) x.range = [-0.5, spec.categories.length - 0.5];
    var y = { range: yRange(spec) };
    if (spec.log_y) { y.distr = 3; y.log = 10; }
    return { x: x, y: y };
  }

  // SLO thresholds (dashed red, labelled), [[action]] markers (dashed grey, labelled) and
  // the warmup window, drawn over the plotting area.
  function drawOverlays(spec, warmup_s) {
    return function (u) {
      var ctx = u.ctx, r = uPlot.pxRatio, b = u.bbox;
      ctx.save();
      ctx.beginPath();
      ctx.rect(b.left, b.top, b.width, b.height);
      ctx.clip();
      ctx.font = Math.round(12 * r) + "px sans-serif";
      if (warmup_s > 0 && (spec.kind === "time" || spec.kind === "stacked")) {
        var w = u.valToPos(warmup_s, "x", true);
        if (w > b.left) {
          ctx.fillStyle = WARMUP;
          ctx.fillRect(b.left, b.top, Math.min(w, b.left + b.width) - b.left, b.height);
        }
      }
      ctx.lineWidth = r;
      spec.thresholds.forEach(function (t) {
        if (!t.in_reach) return;
        var y = u.valToPos(t.at, "y", true);
        if (y < b.top - 1 || y > b.top + b.height + 1) return;
        ctx.strokeStyle = THRESHOLD; ctx.fillStyle = THRESHOLD;
        ctx.setLineDash([8 * r, 5 * r]);
        ctx.beginPath(); ctx.moveTo(b.left, y); ctx.lineTo(b.left + b.width, y); ctx.stroke();
        ctx.textAlign = "right";
        ctx.fillText(t.label, b.left + b.width - 4 * r, y - 4 * r);
      });
      spec.markers.forEach(function (m) {
        var x = u.valToPos(m.at, "x", true);
        if (x < b.left || x > b.left + b.width) return;
        ctx.strokeStyle = MARKER; ctx.fillStyle = MARKER;
        ctx.setLineDash([4 * r, 4 * r]);
        ctx.beginPath(); ctx.moveTo(x, b.top); ctx.lineTo(x, b.top + b.height); ctx.stroke();
        ctx.textAlign = "left";
        ctx.fillText(m.label, x + 4 * r, b.top + 14 * r);
      });
      ctx.restore();
    };
  }

  // Zooming one time chart zooms them all.
  function shareZoom(u, key) {
    if (key !== "x" || syncing) return;
    syncing = true;
    var min = u.scales.x.min, max = u.scales.x.max;
    timeCharts.forEach(function (other) {
      if (other !== u && (other.scales.x.min !== min || other.scales.x.max !== max)) {
        other.setScale("x", { min: min, max: max });
      }
    });
    syncing = false;
  }

  // Shift + wheel (or a sideways swipe) pans the time charts; Ctrl + wheel zooms them.
  function wheel(u, e) {
    var min = u.scales.x.min, max = u.scales.x.max, span = max - min;
    if (e.ctrlKey) {
      e.preventDefault();
      var at = u.posToVal(e.offsetX, "x");
      var f = e.deltaY > 0 ? 1.25 : 0.8;
      u.setScale("x", { min: at - (at - min) * f, max: at + (max - at) * f });
    } else if (e.shiftKey || Math.abs(e.deltaX) > Math.abs(e.deltaY)) {
      e.preventDefault();
      var d = (e.shiftKey ? e.deltaY : e.deltaX) > 0 ? span * 0.1 : -span * 0.1;
      u.setScale("x", { min: min + d, max: max + d });
    }
  }

  // The values as measured, and as drawn (stacked sums, a log axis' floor).
  function prepare(spec) {
    var raw = align(spec);
    var drawn = spec.kind === "stacked" ? stack(raw) : raw;
    if (spec.log_y) drawn = clampForLog(drawn);
    return { raw: raw, drawn: drawn };
  }

  function make(spec) {
    var box = document.getElementById("chart-" + spec.id);
    if (!box) return;
    var held = prepare(spec);
    var timeLike = spec.kind === "time" || spec.kind === "stacked";
    var bands = [];
    if (spec.kind === "stacked") {
      for (var i = 2; i <= spec.series.length; i++) bands.push({ series: [i, i - 1] });
    }
    var opts = {
      width: Math.max(320, box.clientWidth),
      height: HEIGHT,
      series: seriesOptions(spec, held),
      axes: axes(spec),
      scales: scales(spec),
      bands: bands,
      legend: { live: true },
      cursor: timeLike
        ? { y: false, sync: { key: "time" }, drag: { x: true, y: false, setScale: true } }
        : { y: false, drag: { x: spec.kind === "spectrum", y: false, setScale: spec.kind === "spectrum" } },
      hooks: {
        draw: [drawOverlays(spec, window.__warmup_s || 0)],
        setScale: timeLike ? [shareZoom] : []
      }
    };
    var u = new uPlot(opts, held.drawn, box);
    u.cqrsSpec = spec;
    u.cqrsHeld = held;
    if (timeLike) {
      u.cqrsTime = true;
      timeCharts.push(u);
      u.over.addEventListener("wheel", function (e) { wheel(u, e); }, { passive: false });
    }
    charts.push(u);
    var off = spec.thresholds.filter(function (t) { return !t.in_reach; });
    if (off.length) {
      var note = document.createElement("div");
      note.className = "chart-note";
      note.textContent = "Off the chart: " + off.map(function (t) { return t.label; }).join("; ");
      box.appendChild(note);
    }
  }

  function zoomAll(how) {
    var u = timeCharts[0];
    if (!u) return;
    var data = u.data[0], min = u.scales.x.min, max = u.scales.x.max, span = max - min;
    var all = [data[0], data[data.length - 1]];
    var next = {
      "in": [min + span / 4, max - span / 4],
      "out": [min - span / 2, max + span / 2],
      "left": [min - span / 4, max - span / 4],
      "right": [min + span / 4, max + span / 4],
      "all": all
    }[how];
    u.setScale("x", { min: Math.max(all[0], next[0]), max: Math.min(all[1], next[1]) });
  }

  // The live view (src/live/view.rs): new rows for the charts. A chart whose series are
  // the same gets the data (zoom kept); one whose series changed (errors appeared) is
  // drawn again.
  function update(newSpecs) {
    newSpecs.forEach(function (spec) {
      var u = charts.find(function (c) { return c.cqrsSpec.id === spec.id; });
      var same = u && u.cqrsSpec.series.map(function (s) { return s.name; }).join("\n") ===
        spec.series.map(function (s) { return s.name; }).join("\n");
      if (same) {
        var next = prepare(spec);
        u.cqrsSpec = spec;
        u.cqrsHeld.raw = next.raw;
        var xs = u.data[0], min = u.scales.x.min, max = u.scales.x.max;
        var zoomed = xs.length > 1 && (min > xs[0] || max < xs[xs.length - 1]);
        u.setData(next.drawn);
        if (zoomed) u.setScale("x", { min: min, max: max });
        return;
      }
      if (u) {
        charts.splice(charts.indexOf(u), 1);
        var t = timeCharts.indexOf(u);
        if (t >= 0) timeCharts.splice(t, 1);
        var box = u.root.parentNode;
        u.destroy();
        box.querySelectorAll(".chart-note").forEach(function (n) { n.remove(); });
      }
      make(spec);
    });
    window.cqrsBenchCharts.count = charts.length;
  }

  var started = performance.now();
  window.__warmup_s = specs.warmup_s;
  specs.charts.forEach(make);
  document.querySelectorAll("[data-zoom]").forEach(function (button) {
    button.addEventListener("click", function () { zoomAll(button.getAttribute("data-zoom")); });
  });
  window.addEventListener("resize", function () {
    charts.forEach(function (u) {
      var box = u.root.parentNode;
      u.setSize({ width: Math.max(320, box.clientWidth), height: HEIGHT });
    });
  });
  // Read by the browser tests and the open-time measurement (issue 35). uPlot strokes the
  // paths in a microtask after `new uPlot`: buildMs leaves it out, the load event does not.
  window.cqrsBenchCharts = {
    count: charts.length,
    scriptAtMs: scriptAt,
    parseMs: parseMs,
    buildMs: performance.now() - started,
    charts: charts,
    update: update
  };
})();
