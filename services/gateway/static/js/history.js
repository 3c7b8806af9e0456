// History: the token's recognitions, newest first, with thumbnails, paging and delete.
import { ApiError, busy, clearProblem, getToken, pct, request, requestJson, showProblem } from "./api.js";

const $ = id => document.getElementById(id);
const PAGE = 10;

export function setupHistory() {
  const status = $("history-status"), problem = $("history-problem"), table = $("history-table"), rows = $("history-rows");
  const prev = $("history-prev"), next = $("history-next"), refresh = $("history-refresh");
  const controls = [prev, next, refresh];
  let pages = [""];   // the page_token of each page seen so far; pages[i] opens page i
  let index = 0;
  let nextToken = "";
  let urls = [];      // object URLs of the thumbnails shown

  function releaseThumbnails() { urls.forEach(u => URL.revokeObjectURL(u)); urls = []; }

  async function load() {
    clearProblem(problem);
    if (!getToken()) {
      releaseThumbnails(); rows.textContent = ""; table.hidden = true;
      status.textContent = "";
      showProblem(problem, new Error("The history needs a bearer token: enter yours at the top of the page."));
      updatePaging(false);
      return;
    }
    await busy(controls, status, "Loading…", async () => {
      const query = new URLSearchParams({ limit: String(PAGE) });
      if (pages[index]) query.set("page_token", pages[index]);
      try {
        const page = await requestJson(`/v1/recognitions?${query}`);
        nextToken = page.next_page_token || "";
        render(page.items || []);
        const n = (page.items || []).length;
        status.textContent = n ? `Page ${index + 1}: ${n} recognition${n === 1 ? "" : "s"}.` : (index ? "No more recognitions." : "No recognitions yet: recognise a digit with your token set.");
      } catch (err) {
        status.textContent = "";
        showProblem(problem, err, "Could not load the history. ");
      }
    });
    updatePaging(true);
  }

  function updatePaging(enabled) {
    prev.disabled = !enabled || index === 0;
    next.disabled = !enabled || !nextToken;
    $("history-page").textContent = enabled ? `page ${index + 1}` : "";
  }

  function render(items) {
    releaseThumbnails();
    rows.textContent = "";
    table.hidden = items.length === 0;
    for (const r of items) {
      const tr = document.createElement("tr");
      tr.dataset.id = r.id;
      const when = r.received_at ? new Date(r.received_at) : null;
      const cells = [
        thumbnail(r),
        text(r.number || String(r.digit), "read"),
        text(pct(r.confidence), "num"),
        text(r.label ? String(r.label.number ?? r.label.digit) : "–"),
        timeCell(when),
        text(r.user || "(anonymous)"),
      ];
      const actions = document.createElement("td");
      const del = document.createElement("button");
      del.type = "button"; del.className = "delete";
      del.textContent = "Delete";
      del.setAttribute("aria-label", `Delete the recognition of ${r.number || r.digit}${when ? ` from ${when.toLocaleString()}` : ""}`);
      del.addEventListener("click", () => remove(r, del));
      actions.append(del);
      tr.append(...cells, actions);
      rows.append(tr);
    }
  }

  function text(value, cls) {
    const td = document.createElement("td");
    td.textContent = value;
    if (cls) td.className = cls;
    return td;
  }
  function timeCell(when) {
    const td = document.createElement("td");
    if (!when) return td;
    const t = document.createElement("time");
    t.dateTime = when.toISOString();
    t.textContent = when.toLocaleString();
    td.append(t);
    return td;
  }
  function thumbnail(r) {
    const td = document.createElement("td");
    const img = document.createElement("img");
    img.alt = `The image read as ${r.number || r.digit}`;
    img.width = 48; img.height = 48;
    td.append(img);
    if (r.image_url) {
      // The image needs the token, which an <img src> cannot send: fetch it as a blob.
      request(r.image_url, { headers: { Accept: "image/*" } })
        .then(res => res.blob())
        .then(blob => { const u = URL.createObjectURL(blob); urls.push(u); img.src = u; })
        .catch(err => { img.alt = err instanceof ApiError && err.status === 410 ? "Image expired" : "Image unavailable"; });
    }
    return td;
  }

  async function remove(r, button) {
    const dialog = $("confirm");
    $("confirm-text").textContent = `The recognition of ${r.number || r.digit} (${r.id}) and its image will be deleted for good.`;
    const answer = await new Promise(resolve => {
      dialog.returnValue = "";
      dialog.addEventListener("close", () => resolve(dialog.returnValue), { once: true });
      dialog.showModal();
    });
    button.focus();
    if (answer !== "delete") return;
    await busy([...controls, button], status, "Deleting…", async () => {
      try {
        await request(`/v1/recognitions/${encodeURIComponent(r.id)}`, { method: "DELETE" });
        status.textContent = `Deleted the recognition of ${r.number || r.digit}.`;
      } catch (err) {
        showProblem(problem, err, "Not deleted. ");
      }
    });
    const message = status.textContent;
    if (!problem.hidden) return;
    await load();
    status.textContent = message;
    refresh.focus();
  }

  prev.addEventListener("click", () => { if (index > 0) { index -= 1; load(); } });
  next.addEventListener("click", () => { if (nextToken) { pages[index + 1] = nextToken; index += 1; load(); } });
  refresh.addEventListener("click", () => load());

  return {
    show: () => load(),
    reset: () => { pages = [""]; index = 0; nextToken = ""; },
  };
}
