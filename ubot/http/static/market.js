// The market view: the latest snapshot as a sortable, filterable table under the global metrics,
// kept current from /v1/stream: each "snapshot" event triggers a conditional GET of /v1/snapshot.
import { api } from "./api.js";
import { change, count, el, money, price, time } from "./format.js";

const COLUMNS = [
  { key: "rank", label: "#", numeric: true, title: "Rank" },
  { key: "symbol", label: "Symbol" },
  { key: "name", label: "Name" },
  { key: "price", label: "Price", numeric: true },
  { key: "percent_change_1h", label: "1h %", numeric: true, change: true },
  { key: "percent_change_24h", label: "24h %", numeric: true, change: true },
  { key: "percent_change_7d", label: "7d %", numeric: true, change: true },
  { key: "volume_24h", label: "Volume (24h)", numeric: true, money: true },
  { key: "market_cap", label: "Market cap", numeric: true, money: true },
];

const FILTERS = {
  all: () => true,
  top10: (coin) => coin.rank != null && coin.rank <= 10,
  top50: (coin) => coin.rank != null && coin.rank <= 50,
  gainers: (coin) => (coin.percent_change_24h ?? 0) > 0,
  losers: (coin) => (coin.percent_change_24h ?? 0) < 0,
};

export class MarketView {
  constructor(root) {
    this.root = root;
    this.table = root.querySelector("#market-table");
    this.body = this.table.tBodies[0];
    this.search = root.querySelector("#market-search");
    this.filter = root.querySelector("#market-filter");
    this.status = root.querySelector("#market-status");
    this.count = root.querySelector("#market-count");
    this.live = root.querySelector("#live");
    this.metrics = root.querySelector("#metrics");
    this.snapshot = null;
    this.etag = null;
    this.previous = new Map(); // coin id -> last price shown, to flash what moved
    this.sort = { key: "rank", direction: 1 };
    this.fetching = null;
    this.listeners = { snapshot: [], alert: [], open: [] };
    this.header();
    this.search.addEventListener("input", () => this.render());
    this.filter.addEventListener("change", () => this.render());
  }

  header() {
    const row = this.table.tHead.rows[0];
    for (const column of COLUMNS) {
      const button = el("button", { type: "button", className: "sort" }, column.label);
      if (column.title) button.setAttribute("aria-label", column.title);
      button.addEventListener("click", () => {
        const same = this.sort.key === column.key;
        this.sort = { key: column.key, direction: same ? -this.sort.direction : column.numeric && column.key !== "rank" ? -1 : 1 };
        this.render();
      });
      const cell = el("th", { scope: "col", className: column.numeric ? "num" : "" }, button);
      cell.dataset.key = column.key;
      row.append(cell);
    }
  }

  /** Open the stream and load the snapshot; the stream triggers each later load. */
  start() {
    this.connect();
    this.refresh();
  }

  connect() {
    clearTimeout(this.retry);
    if (this.stream) this.stream.close();
    const stream = (this.stream = new EventSource("/v1/stream"));
    stream.addEventListener("open", () => {
      this.live.classList.add("on");
      this.backoff = 0;
    });
    stream.addEventListener("error", () => {
      this.live.classList.remove("on");
      // The browser retries a dropped stream by itself, but not one refused (a 429 while the
      // slot of the stream just closed is being freed, a 503 while the server restarts): open it
      // again after a pause that grows to half a minute, and catch up on the snapshot then.
      if (stream === this.stream && stream.readyState === EventSource.CLOSED) {
        this.backoff = Math.min(30_000, (this.backoff || 500) * 2);
        this.retry = setTimeout(() => {
          this.connect();
          this.refresh();
        }, this.backoff);
      }
    });
    stream.addEventListener("snapshot", () => {
      this.refresh();
      this.emit("snapshot");
    });
    stream.addEventListener("reset", () => this.refresh());
    stream.addEventListener("alert", (event) => this.emit("alert", JSON.parse(event.data)));
    stream.addEventListener("open", () => this.emit("open"));
  }

  /** Other views follow the same stream: on("snapshot" | "alert" | "open", fn). */
  on(name, listener) {
    this.listeners[name].push(listener);
  }

  emit(name, data) {
    for (const listener of this.listeners[name]) listener(data);
  }

  /** A coin of the latest snapshot, with the currency, or null. */
  coin(id) {
    const found = this.snapshot && this.snapshot.coins.find((coin) => coin.id === id);
    return found ? { ...found, currency: this.snapshot.convert } : null;
  }

  /** Conditional GET: a 304 when the snapshot shown is still the latest. */
  refresh() {
    if (this.fetching) return this.fetching;
    const headers = this.etag ? { "If-None-Match": this.etag } : {};
    this.fetching = api("GET", "/v1/snapshot", undefined, headers)
      .then(({ status, data, headers: answer }) => {
        if (status === 200) {
          this.snapshot = data;
          this.etag = answer.get("ETag");
          this.render();
        }
      })
      .catch((error) => {
        this.status.textContent = error.status === 503 ? "Waiting for the first snapshot…" : error.message;
      })
      .finally(() => {
        this.fetching = null;
      });
    return this.fetching;
  }

  rows() {
    const query = this.search.value.trim().toLowerCase();
    const keep = FILTERS[this.filter.value] || FILTERS.all;
    const { key, direction } = this.sort;
    return this.snapshot.coins
      .filter((coin) => keep(coin) && (!query || coin.symbol.toLowerCase().includes(query) || coin.name.toLowerCase().includes(query)))
      .sort((a, b) => {
        const x = a[key];
        const y = b[key];
        if (x == null || y == null) return x == null ? (y == null ? 0 : 1) : -1; // blanks last
        return (typeof x === "string" ? x.localeCompare(y) : x - y) * direction;
      });
  }

  render() {
    if (!this.snapshot) return;
    const snapshot = this.snapshot;
    const currency = snapshot.convert;
    this.status.textContent = `${snapshot.coins.length} coins · updated ${time(snapshot.timestamp)}`;
    this.renderMetrics(snapshot.global, currency);
    for (const cell of this.table.tHead.rows[0].cells) {
      if (cell.dataset.key === this.sort.key) cell.setAttribute("aria-sort", this.sort.direction > 0 ? "ascending" : "descending");
      else cell.removeAttribute("aria-sort");
    }
    const rows = this.rows();
    const shown = rows.map((coin) => this.row(coin, currency));
    this.body.replaceChildren(...shown);
    if (!rows.length) {
      this.body.append(el("tr", {}, el("td", { colSpan: COLUMNS.length, className: "empty" }, "No coin matches.")));
    }
    this.count.textContent = `${rows.length} of ${snapshot.coins.length}`;
    if (!performance.getEntriesByName("ubot:market").length) performance.mark("ubot:market"); // bench/dashboard.py
    this.previous = new Map(snapshot.coins.map((coin) => [coin.id, coin.price]));
  }

  row(coin, currency) {
    const before = this.previous.get(coin.id);
    const moved = before != null && coin.price != null && before !== coin.price ? (coin.price > before ? "up" : "down") : "";
    const cells = COLUMNS.map((column) => {
      const value = coin[column.key];
      if (column.key === "symbol") {
        const link = el("a", { href: `#coin/${coin.id}`, className: "symbol" }, value);
        return el("th", { scope: "row" }, link);
      }
      if (column.key === "name") return el("td", { className: "name" }, value);
      let text = count(value);
      let className = "num";
      if (column.key === "price") {
        text = price(value, currency);
        if (moved) className += ` flash-${moved}`;
      } else if (column.change) {
        text = change(value);
        className += value > 0 ? " pos" : value < 0 ? " neg" : "";
      } else if (column.money) {
        text = money(value, currency);
      }
      return el("td", { className }, text);
    });
    return el("tr", {}, ...cells);
  }

  renderMetrics(global, currency) {
    if (!global) {
      this.metrics.replaceChildren();
      return;
    }
    const items = [
      ["Market cap", money(global.total_market_cap, currency)],
      ["Volume (24h)", money(global.total_volume_24h, currency)],
      ["BTC dominance", global.btc_dominance == null ? "—" : `${global.btc_dominance.toFixed(1)}%`],
      ["ETH dominance", global.eth_dominance == null ? "—" : `${global.eth_dominance.toFixed(1)}%`],
      ["Active coins", count(global.active_cryptocurrencies)],
    ];
    this.metrics.replaceChildren(...items.map(([term, value]) => el("div", { className: "metric" }, el("dt", {}, term), el("dd", {}, value))));
  }
}
