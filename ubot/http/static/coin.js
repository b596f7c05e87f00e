// The coin view: one coin's candles on our own canvas chart, in any of the six timeframes, with
// overlays typed in the condition language (GET /v1/coins/{id}/overlay), the user's alerts on this
// coin as markers, and the dry run's firings (set by the strategies view) as markers and a table.
import { api } from "./api.js";
import { CandleChart } from "./chart.js";
import { caretText, change, el, price } from "./format.js";

export const TIMEFRAMES = { "1m": 60_000, "5m": 300_000, "15m": 900_000, "1h": 3_600_000, "4h": 14_400_000, "1d": 86_400_000 };
const PAGE = 500; // candles per request
export const MAX_CANDLES = 1000; // the most a request (and so an overlay) covers
const COLORS = ["#f59e0b", "#8b5cf6", "#06b6d4", "#ec4899", "#84cc16"];
const OVERLAYS_KEY = "ubot.overlays"; // the expressions drawn, kept for the next visit

/** A candle of the API as the chart takes it. */
export const candle = (c) => ({ t: Date.parse(c.open_time), o: c.open, h: c.high, l: c.low, c: c.close });

function storedOverlays() {
  try {
    const stored = JSON.parse(localStorage.getItem(OVERLAYS_KEY) || "[]");
    return Array.isArray(stored) ? stored.filter((item) => typeof item === "string").slice(0, COLORS.length) : [];
  } catch {
    return [];
  }
}

export class CoinView {
  constructor(root, { toast, signedIn }) {
    this.root = root;
    this.toast = toast;
    this.signedIn = signedIn;
    this.key = null;
    this.coin = null; // {id, symbol}
    this.timeframe = "1h";
    this.candles = [];
    this.overlays = storedOverlays().map((expression, i) => ({ expression, color: COLORS[i % COLORS.length], values: new Map() }));
    this.alertMarkers = [];
    this.dryRunMarkers = [];
    this.more = true; // whether older candles may exist
    this.loading = null;
    this.title = root.querySelector("#coin-title");
    this.quote = root.querySelector("#coin-quote");
    this.status = root.querySelector("#coin-status");
    this.readout = root.querySelector("#coin-readout");
    this.canvas = root.querySelector("#coin-chart");
    this.overlayInput = root.querySelector("#overlay-input");
    this.overlayCaret = root.querySelector("#overlay-caret");
    this.overlayMessage = root.querySelector("#overlay-message");
    this.overlayList = root.querySelector("#overlay-list");
    this.chart = new CandleChart(this.canvas, { onChange: (state) => this.viewChanged(state) });
    for (const button of root.querySelectorAll("[data-timeframe]")) {
      button.addEventListener("click", () => this.setTimeframe(button.dataset.timeframe));
    }
    root.querySelector("#overlay-form").addEventListener("submit", (event) => {
      event.preventDefault();
      this.addOverlay(this.overlayInput.value.trim());
    });
    root.querySelector("#chart-zoom-in").addEventListener("click", () => this.chart.zoom(1 / 1.25));
    root.querySelector("#chart-zoom-out").addEventListener("click", () => this.chart.zoom(1.25));
    root.querySelector("#chart-latest").addEventListener("click", () => this.chart.pan(this.candles.length));
  }

  /** Show the coin `key` (a symbol or an id), in `timeframe` if given. */
  async open(key, timeframe) {
    const changed = key.toUpperCase() !== (this.key || "").toUpperCase();
    if (timeframe && TIMEFRAMES[timeframe]) this.timeframe = timeframe;
    if (changed) {
      this.key = key;
      this.coin = null;
      this.dryRunMarkers = [];
    }
    this.pressed();
    await this.load(true);
  }

  pressed() {
    for (const button of this.root.querySelectorAll("[data-timeframe]")) {
      button.setAttribute("aria-pressed", String(button.dataset.timeframe === this.timeframe));
    }
  }

  setTimeframe(timeframe) {
    if (timeframe === this.timeframe) return;
    this.timeframe = timeframe;
    history.replaceState(null, "", `#coin/${encodeURIComponent(this.key)}/${timeframe}`);
    this.pressed();
    this.load(true);
  }

  /** The newest page of candles (reset) and everything drawn over them. */
  async load(reset) {
    const key = this.key;
    const timeframe = this.timeframe;
    this.status.textContent = "Loading…";
    try {
      const { data } = await api("GET", `/v1/coins/${encodeURIComponent(key)}/candles?timeframe=${timeframe}&limit=${PAGE}`);
      if (key !== this.key || timeframe !== this.timeframe) return;
      this.coin = { id: data.id, symbol: data.symbol };
      this.candles = data.candles.map(candle);
      this.more = data.candles.length === PAGE;
      this.chart.setCandles(this.candles, TIMEFRAMES[timeframe], reset);
      this.describe();
      await Promise.all([this.loadOverlays(), this.loadAlerts()]);
    } catch (error) {
      this.status.textContent = error.status === 404 ? `No coin ${key}.` : error.message;
      this.candles = [];
      this.chart.setCandles([], TIMEFRAMES[timeframe], true);
    }
  }

  /** A new snapshot: the newest candles again (the open one moved, or a new one began). */
  async tick() {
    if (!this.coin || this.root.hidden || this.loading) return;
    const { id } = this.coin;
    const timeframe = this.timeframe;
    try {
      const { data } = await api("GET", `/v1/coins/${id}/candles?timeframe=${timeframe}&limit=3`);
      if (!this.coin || id !== this.coin.id || timeframe !== this.timeframe) return;
      const fresh = data.candles.map(candle);
      const since = fresh.length ? fresh[0].t : Infinity;
      this.candles = [...this.candles.filter((c) => c.t < since), ...fresh].slice(-MAX_CANDLES);
      this.chart.setCandles(this.candles);
      this.describe();
      await this.loadOverlays();
    } catch {
      // the next snapshot tries again
    }
  }

  /** Panning near the oldest candle loads the page before it. */
  viewChanged(state) {
    this.showReadout(state.hover);
    if (state.first < 5 && this.more && !this.loading && this.candles.length < MAX_CANDLES) this.older();
  }

  async older() {
    const { id } = this.coin;
    const timeframe = this.timeframe;
    const end = this.candles[0].t - 1;
    const limit = Math.min(PAGE, MAX_CANDLES - this.candles.length);
    this.loading = api("GET", `/v1/coins/${id}/candles?timeframe=${timeframe}&limit=${limit}&end=${end}`)
      .then(async ({ data }) => {
        if (id !== this.coin.id || timeframe !== this.timeframe) return;
        const earlier = data.candles.map(candle);
        this.more = earlier.length === limit;
        if (!earlier.length) return;
        this.candles = [...earlier, ...this.candles];
        if (this.chart.end >= 0) this.chart.end += earlier.length; // the same candles stay in view
        this.chart.setCandles(this.candles);
        await this.loadOverlays();
      })
      .catch(() => {
        this.more = false;
      })
      .finally(() => {
        this.loading = null;
      });
  }

  describe() {
    const last = this.candles[this.candles.length - 1];
    const first = this.candles[0];
    this.title.textContent = this.coin ? `${this.coin.symbol}` : this.key;
    const market = this.market ? this.market(this.coin && this.coin.id) : null;
    this.quote.replaceChildren();
    if (market) {
      const moved = market.percent_change_24h;
      this.quote.append(
        el("span", { className: "name" }, market.name),
        el("strong", {}, price(market.price, market.currency)),
        el("span", { className: moved > 0 ? "pos" : moved < 0 ? "neg" : "" }, `${change(moved)} 24h`),
      );
    }
    this.status.textContent = last
      ? `${this.candles.length} candles of ${this.timeframe} from ${new Date(first.t).toLocaleString()}`
      : "No candles yet: uBot builds them as snapshots arrive.";
    this.canvas.setAttribute(
      "aria-label",
      last
        ? `${this.coin.symbol} ${this.timeframe} candle chart: ${this.candles.length} candles, last close ${last.c}. Arrow keys pan, plus and minus zoom.`
        : `${this.key} candle chart: no candles yet`,
    );
  }

  showReadout(index) {
    const c = index == null ? this.candles[this.candles.length - 1] : this.candles[index];
    if (!c) {
      this.readout.textContent = "";
      return;
    }
    const figure = (v) => (v == null ? "—" : price(v, "").trim());
    const parts = [
      new Date(c.t).toLocaleString([], { dateStyle: "medium", timeStyle: "short" }),
      `O ${figure(c.o)}`,
      `H ${figure(c.h)}`,
      `L ${figure(c.l)}`,
      `C ${figure(c.c)}`,
    ];
    for (const overlay of this.overlays) parts.push(`${overlay.expression} ${figure(overlay.values.get(c.t))}`);
    this.readout.textContent = parts.join("  ·  ");
  }

  async overlay(expression) {
    const start = this.candles.length ? this.candles[0].t : undefined;
    const query = new URLSearchParams({ expression, timeframe: this.timeframe, limit: String(MAX_CANDLES) });
    if (start !== undefined) query.set("start", String(start));
    const { data } = await api("GET", `/v1/coins/${this.coin.id}/overlay?${query}`);
    return new Map(data.points.map((p) => [Date.parse(p.open_time), p.value]));
  }

  async addOverlay(expression) {
    this.showOverlayCheck(null);
    if (!expression || !this.coin) return;
    if (this.overlays.some((o) => o.expression === expression)) {
      this.showOverlayCheck({ message: `${expression} is drawn already.` });
      return;
    }
    try {
      const values = await this.overlay(expression);
      const used = new Set(this.overlays.map((o) => o.color));
      const color = COLORS.find((c) => !used.has(c)) || COLORS[this.overlays.length % COLORS.length];
      this.overlays.push({ expression, color, values });
      this.overlayInput.value = "";
      this.drawOverlays();
    } catch (error) {
      this.showOverlayCheck({ message: error.message, column: error.column, text: expression });
    }
  }

  async loadOverlays() {
    if (!this.coin) return;
    await Promise.all(
      this.overlays.map(async (overlay) => {
        try {
          overlay.values = await this.overlay(overlay.expression);
        } catch {
          overlay.values = new Map();
        }
      }),
    );
    this.drawOverlays();
  }

  drawOverlays() {
    localStorage.setItem(OVERLAYS_KEY, JSON.stringify(this.overlays.map((o) => o.expression)));
    this.chart.setOverlays(this.overlays.map((o) => ({ label: o.expression, color: o.color, values: o.values })));
    this.overlayList.replaceChildren(
      ...this.overlays.map((overlay) => {
        const remove = el("button", { type: "button", className: "ghost small" }, "×");
        remove.setAttribute("aria-label", `Remove overlay ${overlay.expression}`);
        remove.addEventListener("click", () => {
          this.overlays = this.overlays.filter((o) => o !== overlay);
          this.drawOverlays();
        });
        const swatch = el("span", { className: "swatch" });
        swatch.style.setProperty("--swatch", overlay.color);
        return el("li", { className: "chip" }, swatch, el("code", {}, overlay.expression), remove);
      }),
    );
    this.showReadout(null);
  }

  showOverlayCheck(result) {
    this.overlayCaret.hidden = true;
    this.overlayInput.removeAttribute("aria-invalid");
    this.overlayMessage.textContent = result ? result.message : "";
    if (!result || !result.text) return;
    this.overlayInput.setAttribute("aria-invalid", "true");
    if (result.column) {
      this.overlayCaret.textContent = caretText(result.text, result.column);
      this.overlayCaret.setAttribute("aria-label", `Column ${result.column}`);
      this.overlayCaret.hidden = false;
    }
  }

  /** The user's alerts on this coin (its newest 500), as markers on the candles they fell in. */
  async loadAlerts() {
    this.alertMarkers = [];
    if (this.signedIn() && this.coin) {
      try {
        const { data } = await api("GET", `/v1/me/alerts?coin=${this.coin.id}&limit=500`);
        this.alertMarkers = data.alerts.map((alert) => this.marker(Date.parse(alert.fired_at), `${alert.strategy_name}: ${alert.text}`, "alert"));
      } catch {
        // no markers: the chart still draws
      }
    }
    this.drawMarkers();
  }

  /** An alert raised live: a marker at once when it is about this coin. */
  alert(event) {
    if (!this.coin || event.coin_id !== this.coin.id) return;
    this.alertMarkers.push(this.marker(event.fired_at_ms, `${event.strategy_name}: ${event.text}`, "alert"));
    this.drawMarkers();
  }

  marker(ms, label, kind) {
    const size = TIMEFRAMES[this.timeframe];
    return { t: Math.floor(ms / size) * size, label, kind };
  }

  setDryRun(markers) {
    this.dryRunMarkers = markers;
    this.drawMarkers();
  }

  drawMarkers() {
    this.chart.setMarkers([...this.alertMarkers, ...this.dryRunMarkers]);
    const count = this.alertMarkers.length;
    this.root.querySelector("#coin-alerts").textContent = this.signedIn()
      ? `${count} of your alerts on this coin${count ? " (▼ above their candles)" : ""}.`
      : "Log in to see your alerts on this coin.";
  }
}
