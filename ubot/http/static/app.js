// The dashboard's entry: who is logged in, which view shows (the URL's hash), the account form.
import { api } from "./api.js";
import { CoinView } from "./coin.js";
import { MarketView } from "./market.js";
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
market.on("snapshot", () => coin.tick());
market.on("alert", (alert) => coin.alert(alert));

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
  if (view === "coin") coin.open(rest[0] || "BTC", rest[1]);
  if (view === "strategies") {
    $("#strategies-login").hidden = Boolean(state.user);
    $("#strategies-body").hidden = !state.user;
    $("#strategy-new").hidden = !state.user;
    if (state.user) strategies.load().catch(expired);
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
