// Vigil's dashboard: the explorer chart (uPlot), the breakdown, feedback and silences.
"use strict";
const Vigil = (() => {
  const zone = document.body.dataset.timezone || "UTC";
  const fmt = (v) => v === null || v === undefined ? "–" :
    Math.abs(v) >= 1000 ? v.toLocaleString("en-US", {maximumFractionDigits: 0}) :
    Math.abs(v) >= 1 ? v.toLocaleString("en-US", {maximumFractionDigits: 2}) :
    v.toLocaleString("en-US", {maximumSignificantDigits: 3});
  const pct = (v) => v === null || v === undefined ? "–" : (v * 100).toFixed(1) + "%";
  const localTime = (iso) => {
    if (!iso) return "";
    return new Date(iso).toLocaleString("sv-SE", {timeZone: zone}).slice(0, 16);
  };

  async function api(path, options = {}) {
    const response = await fetch("/api/v1" + path, {
      headers: {"Content-Type": "application/json"}, credentials: "same-origin", ...options});
    const body = await response.json().catch(() => ({}));
    if (!response.ok) throw new Error((body.error && body.error.message) || response.statusText);
    return body;
  }

  function showTimes(root = document) {
    root.querySelectorAll(".time[data-time]").forEach((cell) => {
      const iso = cell.dataset.time;
      if (!iso) return;
      const target = cell.querySelector("a") || cell;
      target.textContent = localTime(iso);
      cell.title = iso;
    });
  }

  // --- the explorer --------------------------------------------------------------------
  function explorer(el) {
    const metric = el.dataset.metric, segment = el.dataset.segment;
    const status = document.getElementById("chart-status");
    const full = {from: el.dataset.from, to: el.dataset.to};
    let plot = null, breakdownShown = false;

    async function load(from, to) {
      const width = Math.max(200, Math.min(4000, Math.round(el.clientWidth * 1.5)));
      const query = new URLSearchParams({metric, segment, from, to, width});
      status.textContent = "Loading…";
      try {
        const data = await api("/chart?" + query);
        draw(data);
        if (!breakdownShown) {
          const filled = data.t.filter((t, i) => data.value[i] !== null);
          breakdown(el.dataset.at || (filled.length ? new Date(filled[filled.length - 1] * 1000).toISOString() : full.to));
        }
        status.textContent = `${data.points.toLocaleString()} points${data.downsampled ? " (thinned to " + data.t.length.toLocaleString() + ", peaks kept)" : ""}` +
          `${data.band_analyzer ? " · band: " + data.band_analyzer : ""} · ${data.anomalies.length} anomalies · drag to zoom`;
      } catch (e) {
        status.textContent = "Error: " + e.message;
      }
    }

    function draw(data) {
      const anomalyAt = new Map(data.anomalies.map((a) => [a.t, a.value]));
      const marks = data.t.map((t) => anomalyAt.has(t) ? anomalyAt.get(t) : null);
      const line = (label, stroke, extra = {}) => ({label, stroke, width: 1, points: {show: false}, value: (u, v) => fmt(v), ...extra});
      const series = [{}, line("value", "#2563eb", {width: 2}),
        line("expected low", "rgba(22,163,74,0.5)"), line("expected high", "rgba(22,163,74,0.5)")];
      const columns = [data.t, data.value, data.lower, data.upper];
      if (data.day_ago) { series.push(line("1 day ago", "#9ca3af", {dash: [6, 4]})); columns.push(data.day_ago); }
      if (data.week_ago) { series.push(line("1 week ago", "#d97706", {dash: [2, 3]})); columns.push(data.week_ago); }
      series.push({label: "anomaly", stroke: "#dc2626", fill: "#dc2626", width: 0, paths: () => null,
        points: {show: true, size: 9, fill: "#dc2626", stroke: "#dc2626"}, value: (u, v) => fmt(v)});
      columns.push(marks);
      const atLine = el.dataset.at ? Date.parse(el.dataset.at) / 1000 : null;
      const options = {
        width: el.clientWidth - 16, height: el.clientWidth < 500 ? 240 : 320,
        tzDate: (ts) => uPlot.tzDate(new Date(ts * 1000), zone),
        series, bands: [{series: [3, 2], fill: "rgba(22,163,74,0.12)"}],
        scales: {x: {time: true}}, axes: [{}, {values: (u, vals) => vals.map(fmt), size: 60}],
        cursor: {drag: {x: true, y: false}},
        hooks: {
          setSelect: [(u) => {
            if (u.select.width < 5) return;
            const from = u.posToVal(u.select.left, "x"), to = u.posToVal(u.select.left + u.select.width, "x");
            load(new Date(from * 1000).toISOString(), new Date(to * 1000).toISOString());
          }],
          draw: [(u) => {
            if (atLine === null) return;
            const x = u.valToPos(atLine, "x", true);
            const ctx = u.ctx; ctx.save(); ctx.strokeStyle = "#dc2626"; ctx.setLineDash([4, 4]);
            ctx.beginPath(); ctx.moveTo(x, u.bbox.top); ctx.lineTo(x, u.bbox.top + u.bbox.height); ctx.stroke(); ctx.restore();
          }],
        },
      };
      if (plot) plot.destroy();
      el.innerHTML = "";
      plot = new uPlot(options, columns, el);
      plot.over.addEventListener("click", () => {
        const i = plot.cursor.idx;
        if (i !== null && i !== undefined) breakdown(new Date(data.t[i] * 1000).toISOString());
      });
      window.vigilChart = plot;
      window.vigilChartData = data;
    }

    async function breakdown(at) {
      const table = document.getElementById("breakdown");
      if (!table) return;
      breakdownShown = true;
      const body = table.querySelector("tbody");
      try {
        const data = await api("/breakdown?" + new URLSearchParams({metric, at}));
        document.getElementById("breakdown-when").textContent = "at " + localTime(data.at);
        const rows = data.segments.map((s) => `<tr><td><a href="?${new URLSearchParams({segment: s.segment, at: data.at})}">${escape(s.segment)}</a></td>` +
          `<td class="num">${fmt(s.value)}</td><td class="num">${fmt(s.baseline)}</td><td class="num">${fmt(s.change)}</td>` +
          `<td class="num">${pct(s.change_pct)}</td><td class="num">${pct(s.share_of_total_change)}</td></tr>`);
        const t = data.total;
        rows.unshift(`<tr><td><b>total</b></td><td class="num">${fmt(t.value)}</td><td class="num">${fmt(t.baseline)}</td>` +
          `<td class="num">${fmt(t.change)}</td><td class="num">${pct(t.change_pct)}</td><td class="num">100%</td></tr>`);
        body.innerHTML = rows.join("") || `<tr><td colspan="6" class="muted">No slices.</td></tr>`;
      } catch (e) {
        body.innerHTML = `<tr><td colspan="6" class="bad">${escape(e.message)}</td></tr>`;
      }
    }

    document.getElementById("reset-zoom").addEventListener("click", () => load(full.from, full.to));
    window.addEventListener("resize", () => plot && plot.setSize({width: el.clientWidth - 16, height: plot.height}));
    load(full.from, full.to);
  }

  // --- feedback on alerts ----------------------------------------------------------------
  function feedback(table) {
    if (!table) return;
    table.addEventListener("click", async (event) => {
      const button = event.target.closest("button[data-label]");
      if (!button) return;
      const row = button.closest("tr");
      const label = row.querySelector(".label");
      try {
        const saved = await api("/feedback", {method: "POST", body: JSON.stringify({alert: row.dataset.alert, label: button.dataset.label})});
        label.textContent = saved.label.replace("_", " ");
        label.className = "label saved";
      } catch (e) {
        label.textContent = "Error: " + e.message;
      }
    });
  }

  // --- incidents -------------------------------------------------------------------------
  function incidents(root) {
    root.addEventListener("click", async (event) => {
      const button = event.target.closest("button[data-action]");
      if (!button) return;
      const message = button.closest(".message").dataset.key;
      button.disabled = true;
      try {
        await api("/incidents/actions", {method: "POST", body: JSON.stringify({message, action: button.dataset.action})});
        location.reload();
      } catch (e) {
        document.getElementById("incident-error").textContent = e.message;
        button.disabled = false;
      }
    });
  }

  // --- silences --------------------------------------------------------------------------
  function silences(form, table) {
    if (form) form.addEventListener("submit", async (event) => {
      event.preventDefault();
      const values = Object.fromEntries(new FormData(form));
      const segment = {};
      (values.segment || "").split(",").map((p) => p.trim()).filter(Boolean).forEach((pair) => {
        const [k, ...v] = pair.split("="); segment[k.trim()] = v.join("=").trim();
      });
      const body = {metric: values.metric, segment, duration: values.duration, reason: values.reason, monitor: values.monitor || null};
      try {
        await api("/silences", {method: "POST", body: JSON.stringify(body)});
        location.reload();
      } catch (e) {
        document.getElementById("silence-error").textContent = e.message;
      }
    });
    if (table) table.addEventListener("click", async (event) => {
      const button = event.target.closest("button.expire");
      if (!button) return;
      try {
        await api(`/silences/${button.dataset.id}/expire`, {method: "POST"});
        location.reload();
      } catch (e) {
        button.textContent = e.message;
      }
    });
  }

  function escape(text) {
    return String(text).replace(/[&<>"']/g, (c) => ({"&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;"}[c]));
  }

  document.addEventListener("DOMContentLoaded", () => showTimes());
  return {explorer, feedback, incidents, silences, api, showTimes};
})();
