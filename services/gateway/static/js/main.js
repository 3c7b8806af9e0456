// The page's sections (#recognise, #history, #dashboard) and the token, kept in sessionStorage.
import { getToken, setToken } from "./api.js";
import { setupDashboard } from "./dashboard.js";
import { setupHistory } from "./history.js";
import { setupRecognise } from "./recognise.js";

const $ = id => document.getElementById(id);
const VIEWS = ["recognise", "history", "dashboard"];

const history = setupHistory();
const dashboard = setupDashboard();
setupRecognise({ onRecorded: () => history.reset() });

const token = $("token");
token.value = getToken();
// Another token is another history: its paging starts again.
token.addEventListener("input", () => { setToken(token.value.trim()); history.reset(); });
$("token-form").addEventListener("submit", e => { e.preventDefault(); route(); });
$("token-clear").addEventListener("click", () => { token.value = ""; setToken(""); history.reset(); route(); token.focus(); });

function route(focus = false) {
  const name = VIEWS.includes(location.hash.slice(1)) ? location.hash.slice(1) : "recognise";
  for (const section of document.querySelectorAll("main > section[data-view]")) section.hidden = section.dataset.view !== name;
  for (const a of document.querySelectorAll("nav a[data-view]")) {
    if (a.dataset.view === name) a.setAttribute("aria-current", "page"); else a.removeAttribute("aria-current");
  }
  document.title = `digits: ${name}`;
  if (name === "history") history.show();
  if (name === "dashboard") dashboard.show();
  if (focus) $(`h-${name}`).setAttribute("tabindex", "-1"), $(`h-${name}`).focus();
}
window.addEventListener("hashchange", () => route(true));
route();
document.documentElement.dataset.ready = "true";
