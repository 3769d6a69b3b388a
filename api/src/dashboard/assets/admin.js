// The longhaul dashboard's script: live lane figures and charts on the
// overview (server-sent events from /admin/live), and "select all" on the
// dead jobs page. Every page works without it; it only keeps them fresh.
"use strict";

(function () {
  const LANES = ["video", "reports", "email", "refresh", "default"];
  const W = 600, H = 200, PAD_L = 44, PAD_B = 20, PAD_T = 8;
  const SVG = "http://www.w3.org/2000/svg";
  const KEEP = 150; // live samples kept: 5 minutes at one every 2 s

  function el(name, attrs, text) {
    const node = document.createElementNS(SVG, name);
    for (const [key, value] of Object.entries(attrs)) node.setAttribute(key, value);
    if (text !== undefined) node.textContent = text;
    return node;
  }

  function fmt(value) {
    return value >= 10 || Number.isInteger(value) ? String(Math.round(value)) : value.toFixed(1);
  }

  // Draws one line per lane. series: {lane: [[x, y], ...]}.
  function draw(svg, series, labels) {
    if (!svg) return;
    svg.replaceChildren();
    let xMin = Infinity, xMax = -Infinity, yMax = 0;
    for (const points of Object.values(series)) {
      for (const [x, y] of points) {
        xMin = Math.min(xMin, x); xMax = Math.max(xMax, x); yMax = Math.max(yMax, y);
      }
    }
    if (yMax <= 0) yMax = 1;
    const span = xMax > xMin ? xMax - xMin : 1;
    svg.append(
      el("line", { class: "axis", x1: PAD_L, y1: H - PAD_B, x2: W, y2: H - PAD_B }),
      el("line", { class: "axis", x1: PAD_L, y1: PAD_T, x2: PAD_L, y2: H - PAD_B }),
      el("text", { class: "tick", x: PAD_L - 4, y: PAD_T + 8, "text-anchor": "end" }, fmt(yMax)),
      el("text", { class: "tick", x: PAD_L - 4, y: H - PAD_B, "text-anchor": "end" }, "0"),
      el("text", { class: "tick", x: PAD_L, y: H - 4 }, labels[0]),
      el("text", { class: "tick", x: W - 4, y: H - 4, "text-anchor": "end" }, labels[1]),
    );
    if (xMin > xMax) {
      svg.append(el("text", { class: "empty", x: W / 2, y: H / 2, "text-anchor": "middle" }, "no data yet"));
      return;
    }
    for (const [lane, points] of Object.entries(series)) {
      if (!points.length) continue;
      const coords = points.map(([x, y]) => {
        const px = PAD_L + (x - xMin) / span * (W - PAD_L - 4);
        const py = H - PAD_B - y / yMax * (H - PAD_B - PAD_T);
        return px.toFixed(1) + "," + py.toFixed(1);
      });
      svg.append(el("polyline", { class: "series lane-" + lane, points: coords.join(" ") }));
    }
  }

  function age(seconds) {
    seconds = Math.max(0, seconds);
    if (seconds < 60) return Math.round(seconds) + " s";
    if (seconds < 3600) return Math.floor(seconds / 60) + " min " + Math.floor(seconds % 60) + " s";
    if (seconds < 86400) return Math.floor(seconds / 3600) + " h " + Math.floor((seconds % 3600) / 60) + " min";
    return Math.floor(seconds / 86400) + " d " + Math.floor((seconds % 86400) / 3600) + " h";
  }

  function perMinute(history, field) {
    const now = Math.floor(Date.now() / 60000);
    const series = {};
    for (const lane of LANES) series[lane] = Array.from({ length: 60 }, (_, i) => [i, 0]);
    for (const row of history) {
      const ago = now - Math.floor(Date.parse(row.minute) / 60000);
      if (ago >= 0 && ago < 60 && series[row.lane]) series[row.lane][59 - ago][1] += row[field];
    }
    return series;
  }

  function updateTable(lanes) {
    for (const lane of lanes) {
      const row = document.querySelector('tr[data-lane="' + lane.lane + '"]');
      if (!row) continue;
      for (const field of ["depth", "in_flight", "delayed", "throughput_5m"]) {
        const cell = row.querySelector('[data-field="' + field + '"]');
        if (cell) cell.textContent = String(lane[field]);
      }
      const oldest = row.querySelector('[data-field="oldest_age_seconds"]');
      if (oldest) oldest.textContent = age(lane.oldest_age_seconds);
      const dead = row.querySelector('[data-field="dead"]');
      if (dead && dead.textContent !== String(lane.dead)) {
        dead.replaceChildren();
        if (lane.dead > 0) {
          const link = document.createElement("a");
          link.href = "/admin/dead?lane=" + encodeURIComponent(lane.lane);
          link.textContent = String(lane.dead);
          dead.append(link);
        } else {
          dead.textContent = "0";
        }
      }
      const redrive = document.getElementById("redrive-" + lane.lane);
      if (redrive) redrive.disabled = lane.dead === 0;
    }
  }

  function overview() {
    const initialLanes = document.getElementById("initial-lanes");
    if (!initialLanes) return;
    const samples = {};
    for (const lane of LANES) samples[lane] = { depth: [], oldest: [] };
    const started = Date.now();
    function record(lanes) {
      const t = (Date.now() - started) / 1000;
      for (const lane of lanes) {
        const s = samples[lane.lane];
        if (!s) continue;
        s.depth.push([t, lane.depth]);
        s.oldest.push([t, lane.oldest_age_seconds]);
        if (s.depth.length > KEEP) { s.depth.shift(); s.oldest.shift(); }
      }
      const pick = (key) => Object.fromEntries(LANES.map((lane) => [lane, samples[lane][key]]));
      draw(document.getElementById("chart-depth"), pick("depth"), ["opened", "now"]);
      draw(document.getElementById("chart-oldest"), pick("oldest"), ["opened", "now"]);
    }
    function history(rows) {
      draw(document.getElementById("chart-finished"), perMinute(rows, "finished"), ["-60 min", "now"]);
      draw(document.getElementById("chart-failed"), perMinute(rows, "failed"), ["-60 min", "now"]);
    }
    record(JSON.parse(initialLanes.textContent));
    const state = document.getElementById("live-state");
    if (!window.EventSource) return;
    const source = new EventSource("/admin/live");
    source.addEventListener("lanes", (event) => {
      const lanes = JSON.parse(event.data);
      updateTable(lanes);
      record(lanes);
      if (state) state.textContent = "Live: updated " + new Date().toLocaleTimeString() + ".";
    });
    source.addEventListener("history", (event) => history(JSON.parse(event.data)));
    source.addEventListener("error", () => {
      if (state) state.textContent = "Live updates paused: reconnecting…";
    });
    // The session (or token) ended: reconnecting would only be refused.
    source.addEventListener("expired", () => {
      source.close();
      if (state) state.textContent = "Live updates stopped: the session has ended. Sign in again to resume.";
    });
  }

  function selectAll() {
    const all = document.getElementById("select-all");
    if (!all) return;
    all.addEventListener("change", () => {
      for (const box of document.querySelectorAll('input[name="ids"]')) box.checked = all.checked;
    });
  }

  document.addEventListener("DOMContentLoaded", () => {
    overview();
    selectAll();
  });
})();
