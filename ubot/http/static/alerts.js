// The alerts view: the user's alerts, newest first: the history (GET /v1/me/alerts, a page at a
// time) with each channel's delivery state, and the live feed (the stream's "alert" events) on top.
// Filters: a strategy and a start time (asked of uBot), a coin and a delivery state (on the page).
import { api } from "./api.js";
import { el, inputs } from "./format.js";

const PAGE = 50;
const STATES = { sent: "pos", failed: "neg", pending: "muted", held: "muted" };

export class AlertsView {
  constructor(root, { toast }) {
    this.root = root;
    this.toast = toast;
    this.body = root.querySelector("#alert-table").tBodies[0];
    this.empty = root.querySelector("#alerts-empty");
    this.more = root.querySelector("#alerts-more");
    this.count = root.querySelector("#alerts-count");
    this.filters = {
      strategy: root.querySelector("#alerts-strategy"),
      since: root.querySelector("#alerts-since"),
      coin: root.querySelector("#alerts-coin"),
      state: root.querySelector("#alerts-state"),
    };
    this.alerts = []; // newest first
    this.live = new Set(); // ids that arrived on the stream
    this.refreshTimer = null;
    this.filters.strategy.addEventListener("change", () => this.load());
    this.filters.since.addEventListener("change", () => this.load());
    this.filters.coin.addEventListener("input", () => this.render());
    this.filters.state.addEventListener("change", () => this.render());
    this.more.addEventListener("click", () => this.load(true));
  }

  query(older) {
    const query = new URLSearchParams({ limit: String(PAGE) });
    if (this.filters.strategy.value) query.set("strategy", this.filters.strategy.value);
    if (this.filters.since.value) query.set("since", new Date(this.filters.since.value).toISOString());
    if (older && this.alerts.length) query.set("before", String(this.alerts[this.alerts.length - 1].id));
    return query;
  }

  /** The newest page (or, with `older`, the page before the oldest shown). */
  async load(older = false) {
    const { data } = await api("GET", `/v1/me/alerts?${this.query(older)}`);
    this.alerts = older ? [...this.alerts, ...data.alerts] : data.alerts;
    this.more.hidden = data.alerts.length < PAGE;
    this.render();
  }

  /** The strategies to filter by (the strategies view lists them). */
  setStrategies(strategies) {
    const chosen = this.filters.strategy.value;
    this.filters.strategy.replaceChildren(
      el("option", { value: "" }, "All strategies"),
      ...strategies.map((s) => el("option", { value: String(s.id) }, s.name)),
    );
    this.filters.strategy.value = strategies.some((s) => String(s.id) === chosen) ? chosen : "";
  }

  /** A live alert from the stream: on top at once; its deliveries are read back shortly after. */
  add(event) {
    if (this.alerts.some((a) => a.id === event.id)) return;
    if (this.filters.strategy.value && String(event.strategy_id) !== this.filters.strategy.value) return;
    this.live.add(event.id);
    this.alerts.unshift({ ...event, deliveries: null });
    this.render();
    if (!this.root.hidden) this.toast(`Alert: ${event.subject}`);
    if (!this.refreshTimer) {
      this.refreshTimer = setTimeout(() => {
        this.refreshTimer = null;
        this.load().catch(() => {});
      }, 3000);
    }
  }

  visible() {
    const coin = this.filters.coin.value.trim().toUpperCase();
    const state = this.filters.state.value;
    return this.alerts.filter(
      (alert) =>
        (!coin || alert.symbol.toUpperCase().includes(coin)) &&
        (!state || (alert.deliveries || []).some((d) => d.status === state)),
    );
  }

  render() {
    const shown = this.visible();
    this.body.replaceChildren(...shown.map((alert) => this.row(alert)));
    this.empty.hidden = shown.length > 0;
    this.empty.textContent = this.alerts.length
      ? "No alert matches the filters."
      : "No alert yet: they appear here the moment a strategy fires.";
    this.count.textContent = `${shown.length} shown`;
  }

  row(alert) {
    const fired = new Date(alert.fired_at);
    const when = el("td", {}, el("time", { dateTime: alert.fired_at }, fired.toLocaleString([], { dateStyle: "short", timeStyle: "medium" })));
    if (this.live.has(alert.id)) when.append(" ", el("span", { className: "badge" }, "live"));
    if (alert.replayed) when.append(" ", el("span", { className: "badge muted" }, "replayed"));
    const values = inputs(alert.values);
    const deliveries = alert.deliveries === null
      ? el("span", { className: "muted" }, "…")
      : alert.deliveries.length
        ? el("ul", { className: "deliveries" }, ...alert.deliveries.map((d) => this.delivery(d)))
        : el("span", { className: "muted" }, alert.replayed ? "not delivered (replay)" : "no channel");
    return el(
      "tr",
      {},
      when,
      el("td", {}, alert.strategy_name),
      el("th", { scope: "row" }, el("a", { href: `#coin/${alert.coin_id}/${alert.timeframe}`, className: "symbol" }, alert.symbol), ` ${alert.timeframe}`),
      el("td", { className: "wrap" }, el("span", { className: "block" }, alert.text), el("small", { className: "muted" }, values)),
      el("td", {}, deliveries),
    );
  }

  delivery(d) {
    const item = el("li", { className: `state ${STATES[d.status] || ""}` }, `${d.channel}: ${d.status}`);
    const detail = [`${d.attempts} attempt${d.attempts === 1 ? "" : "s"}`];
    if (d.sent_at) detail.push(`sent ${new Date(d.sent_at).toLocaleString()}`);
    if (d.detail) detail.push(d.detail);
    item.title = detail.join(" · ");
    item.setAttribute("aria-label", `${d.channel}: ${d.status}, ${detail.join(", ")}`);
    return item;
  }
}
