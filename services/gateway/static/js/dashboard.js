// Dashboard: GET /v1/stats?days=N, drawn with Chart.js (vendored) and, for every chart, a table
// of the same values.
import { ApiError, busy, clearProblem, getToken, pct, requestJson, showProblem } from "./api.js";

const $ = id => document.getElementById(id);
const num = v => (Number.isFinite(Number(v)) ? Number(v) : 0);
const first = (obj, ...keys) => { for (const k of keys) if (obj && obj[k] !== undefined && obj[k] !== null) return obj[k]; return undefined; };

// The aggregate API's answer, read tolerantly: a list of {key, count} objects, a list of
// numbers, or an object keyed by label all become [[label, count], ...].
function pairs(value, labelKeys, countKeys) {
  if (Array.isArray(value)) {
    return value.map((v, i) => (v !== null && typeof v === "object"
      ? [first(v, ...labelKeys) ?? String(i), num(first(v, ...countKeys))]
      : [String(i), num(v)]));
  }
  if (value && typeof value === "object") return Object.entries(value).map(([k, v]) => [k, num(v)]);
  return [];
}

// GET /v1/stats (services/gateway/stats.py): totals, rates (null without requests), digits[10],
// confidence_histogram [{lower, upper, count}], model_versions {version: count}, hourly [{hour, requests, ...}].
export function normalise(s) {
  const hours = pairs(first(s, "hourly", "requests_per_hour"), ["hour", "start"], ["requests", "count"])
    .map(([h, c]) => [String(h), c]).sort((a, b) => (a[0] < b[0] ? -1 : 1));
  const digits = pairs(first(s, "digits", "digit_distribution"), ["digit"], ["count"]);
  const confidence = (first(s, "confidence_histogram") || []).map((b, i) => {
    const label = b.lower !== undefined && b.upper !== undefined
      ? `${Math.round(b.lower * 100)}–${Math.round(b.upper * 100)}%` : String(i);
    return [label, num(b.count)];
  });
  let models = first(s, "model_versions", "model_version") || {};
  if (typeof models === "string") models = { [models]: 1 };
  const model = Object.entries(models).sort((a, b) => b[1] - a[1]).map(([m]) => m).join(", ");
  return {
    hours, digits, confidence, model,
    total: first(s, "requests"), recognitions: first(s, "recognitions"),
    refusals: first(s, "refusals"), failures: first(s, "failures"), reasons: first(s, "refusals_by_reason") || {},
    errorRate: first(s, "error_rate"), labels: first(s, "labels"), corrections: first(s, "corrections"),
    correctionRate: first(s, "correction_rate"), days: first(s, "days"),
  };
}

export function setupDashboard() {
  const status = $("stats-status"), problem = $("stats-problem"), box = $("stats");
  const refresh = $("stats-refresh"), days = $("days");
  const charts = {};

  function table(el, head, rows) {
    el.textContent = "";
    const t = document.createElement("table");
    const thead = t.createTHead().insertRow();
    head.forEach((h, i) => { const th = document.createElement("th"); th.scope = "col"; th.textContent = h; if (i) th.className = "num"; thead.append(th); });
    const body = t.createTBody();
    rows.forEach(r => { const tr = body.insertRow(); r.forEach((v, i) => { const td = tr.insertCell(); td.textContent = v; if (i) td.className = "num"; }); });
    if (!rows.length) { const td = body.insertRow().insertCell(); td.colSpan = head.length; td.textContent = "No data in this period."; }
    el.append(t);
  }

  function chart(id, type, labels, data, label) {
    const canvas = $(id);
    const summary = labels.length ? labels.map((l, i) => `${l}: ${data[i]}`).join(", ") : "no data";
    canvas.setAttribute("aria-label", `${label}. ${summary}`);
    if (!window.Chart) return; // the table carries the values
    if (charts[id]) charts[id].destroy();
    const reduced = window.matchMedia && window.matchMedia("(prefers-reduced-motion: reduce)").matches;
    charts[id] = new window.Chart(canvas, {
      type,
      data: { labels, datasets: [{ label, data, backgroundColor: "#2f6fd0", borderColor: "#1f5fbf", fill: false, tension: 0.2, pointRadius: 2 }] },
      options: {
        responsive: true, maintainAspectRatio: false, animation: reduced || navigator.webdriver ? false : { duration: 300 },
        plugins: { legend: { display: false } },
        scales: { y: { beginAtZero: true, ticks: { precision: 0, color: "#1d2733" } }, x: { ticks: { color: "#1d2733", maxRotation: 60, autoSkip: true } } },
      },
    });
  }

  function kpis(n) {
    const dl = $("kpis");
    dl.textContent = "";
    const count = v => (v === undefined ? "–" : String(v));
    const rate = r => (r === undefined || r === null ? "–" : pct(r));
    const reasons = Object.entries(n.reasons).map(([k, v]) => `${k}: ${v}`).join(", ");
    const items = [
      ["Requests", count(n.total), ""],
      ["Recognised", count(n.recognitions), ""],
      ["Error rate", rate(n.errorRate), `${count(n.refusals)} refused, ${count(n.failures)} failed${reasons ? ` (${reasons})` : ""}`],
      ["Correction rate", rate(n.correctionRate), `${count(n.corrections)} corrected of ${count(n.labels)} labelled`],
      ["Model version", n.model || "–", ""],
    ];
    for (const [k, v, detail] of items) {
      const div = document.createElement("div");
      const dt = document.createElement("dt"); dt.textContent = k;
      const dd = document.createElement("dd"); dd.textContent = v;
      if (k === "Model version") dd.className = "code";
      div.append(dt, dd);
      if (detail) { const more = document.createElement("dd"); more.className = "detail"; more.textContent = detail; div.append(more); }
      dl.append(div);
    }
  }

  function hourLabel(h) {
    const d = new Date(h);
    return Number.isNaN(d.getTime()) ? h : `${d.toLocaleDateString([], { month: "short", day: "numeric" })} ${String(d.getHours()).padStart(2, "0")}:00`;
  }

  async function load() {
    clearProblem(problem);
    if (!getToken()) {
      box.hidden = true; status.textContent = "";
      showProblem(problem, new Error("The dashboard needs a bearer token: enter yours at the top of the page."));
      return;
    }
    await busy([refresh, days], status, "Loading…", async () => {
      try {
        const stats = await requestJson(`/v1/stats?days=${encodeURIComponent(days.value)}`);
        const n = normalise(stats);
        box.hidden = false;
        kpis(n);
        const hourLabels = n.hours.map(([h]) => hourLabel(h));
        chart("chart-hours", "line", hourLabels, n.hours.map(([, c]) => c), "Requests per hour");
        table($("t-hours"), ["Hour", "Requests"], n.hours.filter(([, c]) => c).map(([h, c], i) => [hourLabel(h), String(c)]));
        chart("chart-digits", "bar", n.digits.map(([d]) => d), n.digits.map(([, c]) => c), "Recognitions per digit");
        table($("t-digits"), ["Digit", "Recognitions"], n.digits.map(([d, c]) => [d, String(c)]));
        chart("chart-conf", "bar", n.confidence.map(([b]) => b), n.confidence.map(([, c]) => c), "Recognitions per confidence range");
        table($("t-conf"), ["Confidence", "Recognitions"], n.confidence.map(([b, c]) => [b, String(c)]));
        status.textContent = `Statistics of the last ${n.days || days.value} day${(n.days || days.value) == 1 ? "" : "s"}.`;
      } catch (err) {
        box.hidden = true; status.textContent = "";
        if (err instanceof ApiError && err.missingRoute) {
          showProblem(problem, new Error("The dashboard's statistics (GET /v1/stats) are not available on this server yet."));
        } else {
          showProblem(problem, err, "Could not load the statistics. ");
        }
      }
    });
  }

  refresh.addEventListener("click", load);
  days.addEventListener("change", load);
  return { show: load };
}
