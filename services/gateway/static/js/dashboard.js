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

export function normalise(s) {
  const hours = pairs(first(s, "requests_per_hour", "hourly", "per_hour", "hours"), ["hour", "start", "time", "at"], ["count", "requests", "recognitions", "value"])
    .map(([h, c]) => [String(h), c]).sort((a, b) => (a[0] < b[0] ? -1 : 1));
  const digits = pairs(first(s, "digits", "digit_distribution", "digit_counts", "by_digit"), ["digit", "class"], ["count", "value", "recognitions"]);
  let conf = first(s, "confidence_histogram", "confidence", "confidences");
  if (conf && !Array.isArray(conf) && typeof conf === "object" && Array.isArray(conf.counts)) {
    const edges = conf.edges || conf.bounds || conf.buckets || [];
    conf = conf.counts.map((c, i) => ({ lower: edges[i], upper: edges[i + 1], count: c }));
  }
  const confidence = (Array.isArray(conf) ? conf : []).map((b, i, all) => {
    if (b !== null && typeof b === "object") {
      const lo = first(b, "lower", "from", "min", "ge"), hi = first(b, "upper", "to", "max", "lt", "le");
      const label = first(b, "bucket", "label") ?? (lo !== undefined && hi !== undefined ? `${pct(lo)}–${pct(hi)}` : String(i));
      return [String(label), num(first(b, "count", "value"))];
    }
    return [`${pct(i / all.length)}–${pct((i + 1) / all.length)}`, num(b)];
  });
  const total = first(s, "requests", "total", "recognitions", "total_requests");
  const refusals = first(s, "refusals", "refused", "errors", "rejections");
  const corrections = first(s, "corrections", "corrected", "labels_wrong");
  const labels = first(s, "labels", "labelled", "labeled");
  let errorRate = first(s, "refusal_rate", "error_rate");
  if (errorRate === undefined && total !== undefined && refusals !== undefined) {
    const all = num(total) + (first(s, "requests_include_refusals") ? 0 : num(refusals));
    errorRate = all ? num(refusals) / all : 0;
  }
  let correctionRate = first(s, "correction_rate");
  if (correctionRate === undefined && corrections !== undefined && total !== undefined) correctionRate = num(total) ? num(corrections) / num(total) : 0;
  let model = first(s, "model_version", "model", "model_versions");
  if (Array.isArray(model)) model = model.map(m => (typeof m === "object" ? first(m, "model_version", "version") : m)).join(", ");
  else if (model && typeof model === "object") model = Object.keys(model).join(", ");
  return { hours, digits, confidence, total, refusals, corrections, labels, errorRate, correctionRate, model, days: first(s, "days") };
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
    const items = [
      ["Recognitions", n.total !== undefined ? String(n.total) : "–"],
      ["Refused (not a digit, errors)", n.errorRate !== undefined ? `${pct(n.errorRate)}${n.refusals !== undefined ? ` (${n.refusals})` : ""}` : "–"],
      ["Corrected", n.correctionRate !== undefined ? `${pct(n.correctionRate)}${n.corrections !== undefined ? ` (${n.corrections})` : ""}` : "–"],
      ["Model version", n.model ? String(n.model) : "–"],
    ];
    for (const [k, v] of items) {
      const div = document.createElement("div");
      const dt = document.createElement("dt"); dt.textContent = k;
      const dd = document.createElement("dd"); dd.textContent = v;
      div.append(dt, dd); dl.append(div);
    }
  }

  function hourLabel(h) {
    const d = new Date(h);
    return Number.isNaN(d.getTime()) ? h : d.toLocaleString([], { month: "short", day: "numeric", hour: "2-digit", minute: "2-digit" });
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
