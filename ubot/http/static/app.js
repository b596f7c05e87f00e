// The dashboard's entry: who is logged in, which view shows (the URL's hash), the account form.
import { api } from "./api.js";
import { AlertsView } from "./alerts.js";
import { CoinView } from "./coin.js";
import { HealthView } from "./health.js";
import { MarketView } from "./market.js";
import { SettingsView } from "./settings.js";
import { StrategiesView } from "./strategies.js";

const USERNAME_KEY = "ubot.username"; // only to greet: the session itself is the HttpOnly cookie
const VIEWS = ["market", "coin", "strategies", "alerts", "settings", "health", "account"];
const NAV = { coin: "market" }; // the menu entry a view belongs to
const $ = (selector) => document.querySelector(selector);

let toastTimer = null;
function toast(text) {
  const box = $("#toast");
  box.textContent = text;
  box.classList.add("show");
  clearTimeout(toastTimer);
  toastTimer = setTimeout(() => box.classList.remove("show"), 4000);
}

const state = { user: null };
const market = new MarketView($("#view-market"));
const strategies = new StrategiesView($("#view-strategies"), toast);
const coin = new CoinView($("#view-coin"), { toast, signedIn: () => Boolean(state.user) });
coin.market = (id) => market.coin(id);
const alerts = new AlertsView($("#view-alerts"), { toast });
const settings = new SettingsView($("#view-settings"), { toast, ended: (error, text) => ended(error, text) });
const health = new HealthView($("#view-health"));
strategies.listed = (list) => alerts.setStrategies(list);
strategies.latest = () => market.snapshot && market.snapshot.timestamp;
market.on("snapshot", () => {
  coin.tick();
  health.refresh();
});
market.on("alert", (alert) => {
  coin.alert(alert);
  alerts.add(alert);
});
market.on("open", () => $("#alerts-live").classList.add("on"));
/** The views only a signed-in user has: their login prompt, their body, and how they load. */
const PRIVATE = {
  strategies: { prompt: "#strategies-login", body: ["#strategies-body", "#strategy-new"], load: () => strategies.load() },
  alerts: { prompt: "#alerts-login", body: ["#alerts-body"], load: () => Promise.all([alerts.load(), strategies.load()]) },
  settings: { prompt: "#settings-login", body: ["#settings-body"], load: () => settings.load() },
};

function setUser(username) {
  state.user = username;
  if (username) localStorage.setItem(USERNAME_KEY, username);
  else localStorage.removeItem(USERNAME_KEY);
  $("#who").textContent = username ? `Signed in as ${username}` : "";
  $("#who").hidden = !username;
  $("#logout").hidden = !username;
  $("#login-link").hidden = Boolean(username);
  show();
}

/** The view the URL's hash names, and what follows it: #coin/1/1h is ["coin", ["1", "1h"]]. */
function route() {
  const [name, ...rest] = location.hash.slice(1).split("/");
  const view = VIEWS.includes(name) && $(`#view-${name}`) ? name : "market";
  return [view, rest.map(decodeURIComponent)];
}

function show() {
  const [view, rest] = route();
  for (const name of VIEWS) {
    const section = $(`#view-${name}`);
    if (section) section.hidden = name !== view;
  }
  const nav = NAV[view] || view;
  for (const link of document.querySelectorAll("nav a")) {
    if (link.dataset.view === nav) link.setAttribute("aria-current", "page");
    else link.removeAttribute("aria-current");
  }
  if (view === "coin") coin.open(rest[0] || "1", rest[1]);
  if (view === "health") health.refresh();
  const gated = PRIVATE[view];
  if (gated) {
    $(gated.prompt).hidden = Boolean(state.user);
    for (const part of gated.body) $(part).hidden = !state.user;
    if (state.user) gated.load().catch(expired);
  }
  if (view === "account" && state.user) location.hash = "#market";
}

function expired(error) {
  if (error.status === 401) {
    setUser(null);
    toast("Your session ended: log in again.");
  } else {
    toast(error.message);
  }
}

/** This session is over (logged out everywhere, a new password, or a 401): show the login. */
function ended(error, text) {
  if (error) return expired(error);
  setUser(null);
  market.connect();
  toast(text);
  location.hash = "#account";
}

async function logIn(username, password) {
  await api("POST", "/v1/sessions/browser", { username, password });
  $("#auth-password").value = "";
  setUser(username);
  market.connect(); // the stream now carries this user's alerts too
  location.hash = "#market";
}

async function account(event, signUp) {
  event.preventDefault();
  const message = $("#auth-message");
  message.textContent = "";
  const username = $("#auth-username").value.trim();
  const password = $("#auth-password").value;
  try {
    if (signUp) {
      await api("POST", "/v1/users", { username, email: $("#auth-email").value.trim(), password });
    }
    await logIn(username, password);
    toast(signUp ? `Welcome, ${username}` : `Logged in as ${username}`);
  } catch (error) {
    message.textContent = error.message;
    const field = { username: "#auth-username", email: "#auth-email", password: "#auth-password" }[error.field];
    if (field) $(field).focus();
  }
}

async function logOut() {
  try {
    await api("DELETE", "/v1/sessions/current");
  } catch (error) {
    if (error.status !== 401) {
      toast(error.message);
      return;
    }
  }
  setUser(null);
  market.connect();
  toast("Logged out");
}

$("#auth-form").addEventListener("submit", (event) => account(event, false));
$("#signup").addEventListener("click", (event) => account(event, true));
$("#logout").addEventListener("click", logOut);
window.addEventListener("hashchange", show);

// Who is this? The cookie answers: GET /v1/me/settings is 200 for a live session, 401 otherwise
// (and the 401 clears a stale cookie).
api("GET", "/v1/me/settings")
  .then(() => setUser(localStorage.getItem(USERNAME_KEY) || "you"))
  .catch(() => setUser(null))
  .finally(() => market.start());
