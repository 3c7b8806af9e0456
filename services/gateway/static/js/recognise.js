// Recognise: send the drawing or a file, show the answer, and take "right / wrong, it is a _".
import { ApiError, busy, clearProblem, getToken, newIdempotencyKey, pct, request, requestJson, showProblem } from "./api.js";
import { createPad } from "./pad.js";

const $ = id => document.getElementById(id);

export function setupRecognise({ onRecorded } = {}) {
  const send = $("send"), clearBtn = $("clear"), file = $("file"), drop = $("drop");
  const status = $("status"), problem = $("problem"), answer = $("answer");
  const controls = [send, clearBtn, file];
  let current = null; // the record shown

  const pad = createPad($("pad"), $("caret"), { onSubmit: () => send.click() });

  async function recognise(blob, filename) {
    await busy(controls, status, "Recognising…", async () => {
      clearProblem(problem);
      const form = new FormData();
      form.append("image", blob, filename);
      try {
        // fields=true: each digit comes with the 28×28 field the model saw (field_png).
        const res = await request("/v1/recognitions?fields=true", {
          method: "POST", body: form, headers: { "Idempotency-Key": newIdempotencyKey() },
        });
        const record = await res.json();
        show(record);
        status.textContent = `Read ${record.number ?? record.digit}.`;
        if (onRecorded) onRecorded(record);
      } catch (err) {
        answer.hidden = true; current = null;
        status.textContent = "";
        showProblem(problem, err);
      }
    });
  }

  send.addEventListener("click", async () => {
    if (pad.isEmpty()) {
      showProblem(problem, new Error("The pad is empty: draw a digit first (or choose an image file)."));
      return;
    }
    recognise(await pad.toBlob(), "drawing.png");
  });
  clearBtn.addEventListener("click", () => { pad.clear(); $("pad").focus(); });
  file.addEventListener("change", () => {
    const f = file.files && file.files[0];
    if (f) recognise(f, f.name);
    file.value = "";
  });
  // Drop a file on the pad.
  drop.addEventListener("dragover", e => { e.preventDefault(); drop.classList.add("dragging"); });
  drop.addEventListener("dragleave", () => drop.classList.remove("dragging"));
  drop.addEventListener("drop", e => {
    e.preventDefault(); drop.classList.remove("dragging");
    const f = e.dataTransfer && e.dataTransfer.files[0];
    if (f) recognise(f, f.name);
  });

  function show(r) {
    current = r;
    answer.hidden = false;
    $("number").textContent = r.number || String(r.digit);
    const digits = Array.isArray(r.digits) && r.digits.length ? r.digits : [{ digit: r.digit, confidence: r.confidence }];
    const several = digits.length > 1;
    $("confidence").textContent = several
      ? `${digits.length} digits; the first is ${digits[0].digit} with confidence ${pct(r.confidence)}`
      : `Confidence ${pct(r.confidence)}`;
    const list = $("digits");
    list.textContent = "";
    digits.forEach((d, i) => {
      const li = document.createElement("li");
      if (d.field_png) {
        const img = document.createElement("img");
        img.src = `data:image/png;base64,${d.field_png}`;
        img.alt = `Digit ${i + 1} as the model saw it (28 by 28 pixels)`;
        img.width = 84; img.height = 84;
        li.append(img);
      } else {
        const none = document.createElement("span");
        none.className = "nofield"; none.textContent = "no field image";
        li.append(none);
      }
      const text = document.createElement("span");
      text.textContent = `${d.digit} · ${pct(d.confidence)}`;
      li.append(text);
      list.append(li);
    });
    $("bars-of").textContent = several ? "(first digit)" : "";
    const bars = $("bars");
    bars.textContent = "";
    const probs = Array.isArray(r.probabilities) ? r.probabilities : [];
    const top = probs.indexOf(Math.max(...probs));
    probs.forEach((p, d) => {
      const li = document.createElement("li");
      if (d === top) li.className = "best";
      const label = document.createElement("span"); label.textContent = d;
      const track = document.createElement("span"); track.className = "track"; track.setAttribute("aria-hidden", "true");
      const fill = document.createElement("span"); fill.className = "fill"; fill.style.display = "block";
      fill.style.width = `${Math.max(0, Math.min(1, p)) * 100}%`;
      track.append(fill);
      const value = document.createElement("span"); value.className = "value"; value.textContent = pct(p);
      li.append(label, track, value);
      bars.append(li);
    });
    $("record").textContent = `Recorded as ${r.id}${r.user ? ` for ${r.user}` : " (anonymous)"}; model ${r.model_version || "?"}.`;
    const truth = $("truth");
    truth.value = r.number || String(r.digit);
    truth.maxLength = truth.value.length;
    truth.pattern = `[0-9]{${truth.value.length}}`;
    feedbackStatus.textContent = "";
    feedbackStatus.className = "status";
  }

  // Right / wrong.
  const feedback = $("feedback"), feedbackStatus = $("feedback-status");
  const feedbackControls = [$("right"), $("wrong"), $("truth")];
  async function label(number, right) {
    if (!current) return;
    feedbackStatus.className = "status";
    const expected = (current.number || String(current.digit)).length;
    if (!new RegExp(`^[0-9]{${expected}}$`).test(number)) {
      feedbackStatus.className = "status problem";
      feedbackStatus.textContent = `Type the true ${expected === 1 ? "digit" : `${expected} digits, left to right`}.`;
      $("truth").focus();
      return;
    }
    if (!getToken()) {
      feedbackStatus.textContent = "Correcting needs a bearer token (the record's owner's, or the admin's): enter it at the top of the page.";
      return;
    }
    const id = current.id;
    const body = expected === 1 ? { digit: Number(number) } : { number };
    await busy(feedbackControls, feedbackStatus, "Sending…", async () => {
      try {
        const saved = await requestJson(`/v1/recognitions/${encodeURIComponent(id)}/label`, { method: "POST", json: body });
        feedbackStatus.className = "status ok";
        const l = saved && saved.label ? saved.label.number ?? saved.label.digit : number;
        feedbackStatus.textContent = right ? `Thank you: confirmed as ${l}.` : `Thank you: corrected to ${l}. It will help train the next model.`;
      } catch (err) {
        feedbackStatus.className = "status problem";
        if (err instanceof ApiError && err.missingRoute) {
          feedbackStatus.textContent = "Corrections are not available on this server yet.";
        } else if (err instanceof ApiError && err.slug === "recognition-not-found") {
          feedbackStatus.textContent = "Only the record's owner (or the admin) can label it: an anonymous upload needs the admin token.";
        } else {
          feedbackStatus.textContent = `Not saved. ${err instanceof ApiError ? err.friendly : err.message}`;
        }
      }
    });
  }
  $("right").addEventListener("click", () => current && label(current.number || String(current.digit), true));
  feedback.addEventListener("submit", e => { e.preventDefault(); label($("truth").value.trim(), false); });
}
