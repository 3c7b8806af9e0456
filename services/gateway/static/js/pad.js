// The drawing pad: pointer events (mouse, pen, finger) and a keyboard pen for those who use no
// pointer. The canvas keeps white paper and black ink, the way an upload of a drawing looks.

const STEP = 10, BIG_STEP = 30;

export function createPad(canvas, caret, { onSubmit } = {}) {
  const ctx = canvas.getContext("2d");
  let active = null;     // the pointerId drawing now
  let last = null;       // its last point
  let empty = true;
  const pen = { x: canvas.width / 2, y: canvas.height / 2, down: false };

  function style() {
    ctx.lineWidth = canvas.width / 15; ctx.lineCap = "round"; ctx.lineJoin = "round";
    ctx.strokeStyle = "#111"; ctx.fillStyle = "#111";
  }
  function clear() {
    ctx.fillStyle = "#fff"; ctx.fillRect(0, 0, canvas.width, canvas.height);
    style(); empty = true; pen.down = false; placeCaret();
  }
  function dot(p) { ctx.beginPath(); ctx.arc(p.x, p.y, ctx.lineWidth / 2, 0, Math.PI * 2); ctx.fill(); empty = false; }
  function line(a, b) { ctx.beginPath(); ctx.moveTo(a.x, a.y); ctx.lineTo(b.x, b.y); ctx.stroke(); empty = false; }
  function at(e) {
    const r = canvas.getBoundingClientRect();
    return { x: (e.clientX - r.left) * (canvas.width / r.width), y: (e.clientY - r.top) * (canvas.height / r.height) };
  }

  canvas.addEventListener("pointerdown", e => {
    if (active !== null || (e.pointerType === "mouse" && e.button !== 0)) return;
    e.preventDefault();
    active = e.pointerId;
    try { canvas.setPointerCapture(e.pointerId); } catch { /* already gone */ }
    last = at(e); dot(last);
  });
  canvas.addEventListener("pointermove", e => {
    if (e.pointerId !== active) return;
    const events = typeof e.getCoalescedEvents === "function" ? e.getCoalescedEvents() : [];
    for (const ev of events.length ? events : [e]) { const p = at(ev); line(last, p); last = p; }
  });
  const end = e => { if (e.pointerId === active) { active = null; last = null; } };
  canvas.addEventListener("pointerup", end);
  canvas.addEventListener("pointercancel", end);   // a palm, a scroll, a lost pen: stop the stroke
  canvas.addEventListener("lostpointercapture", end);

  // The keyboard pen: a caret moved by the arrow keys, drawing while it is down.
  function placeCaret() {
    if (!caret) return;
    const r = canvas.getBoundingClientRect();
    const s = r.width / canvas.width || 1;
    caret.style.left = `${pen.x * s}px`; caret.style.top = `${pen.y * s}px`;
    caret.classList.toggle("down", pen.down);
  }
  canvas.addEventListener("focus", () => { if (caret) { caret.hidden = false; placeCaret(); } });
  canvas.addEventListener("blur", () => { if (caret) caret.hidden = true; });
  canvas.addEventListener("keydown", e => {
    const step = e.shiftKey ? BIG_STEP : STEP;
    const moves = { ArrowLeft: [-step, 0], ArrowRight: [step, 0], ArrowUp: [0, -step], ArrowDown: [0, step] };
    if (moves[e.key]) {
      e.preventDefault();
      const from = { x: pen.x, y: pen.y };
      pen.x = Math.min(canvas.width - 1, Math.max(0, pen.x + moves[e.key][0]));
      pen.y = Math.min(canvas.height - 1, Math.max(0, pen.y + moves[e.key][1]));
      if (pen.down) line(from, pen);
      placeCaret();
    } else if (e.key === " ") {
      e.preventDefault();
      pen.down = !pen.down;
      if (pen.down) dot(pen);
      placeCaret();
      canvas.setAttribute("aria-label", `Drawing pad, pen ${pen.down ? "down" : "up"}`);
    } else if (e.key === "Delete" || e.key === "Backspace") {
      e.preventDefault(); clear();
    } else if (e.key === "Enter" && onSubmit) {
      e.preventDefault(); onSubmit();
    }
  });
  window.addEventListener("resize", placeCaret);

  clear();
  return {
    clear,
    isEmpty: () => empty,
    toBlob: () => new Promise(resolve => canvas.toBlob(resolve, "image/png")),
  };
}
