// A dry run's answer (POST /v1/conditions/dry-run): the firings as markers on a coin's candles and
// as a table. The chart shows one coin at a time (the one with the most firings first), in the
// strategy's timeframe, or a longer one when the range holds more candles than one request gives.
import { api } from "./api.js";
import { CandleChart } from "./chart.js";
import { MAX_CANDLES, TIMEFRAMES, candle } from "./coin.js";
import { el, inputs } from "./format.js";

/** The strategy's timeframe, or the shortest longer one whose candles over the range fit one request. */
export function displayTimeframe(timeframe, startMs, endMs) {
  const names = Object.keys(TIMEFRAMES);
  return names.slice(names.indexOf(timeframe)).find((name) => (endMs - startMs) / TIMEFRAMES[name] <= MAX_CANDLES) || "1d";
}

export class DryRunPanel {
  constructor(root) {
    this.root = root;
    this.summary = root.querySelector("#dry-run-summary");
    this.coinSelect = root.querySelector("#dry-run-coin");
    this.body = root.querySelector("#dry-run-table").tBodies[0];
    this.canvas = root.querySelector("#dry-run-chart");
    this.chart = new CandleChart(this.canvas);
    this.answer = null;
    this.coinSelect.addEventListener("change", () => this.draw(Number(this.coinSelect.value)));
  }

  running() {
    this.root.hidden = false;
    this.root.setAttribute("aria-busy", "true");
    this.summary.textContent = "Running the strategy over the stored history…";
  }

  failed() {
    this.root.hidden = true;
    this.root.removeAttribute("aria-busy");
  }

  /** Show `answer` for the rules run (their timeframe) over [startMs, endMs). */
  async show(answer, timeframe, startMs, endMs) {
    this.answer = answer;
    this.timeframe = displayTimeframe(timeframe, startMs, endMs);
    this.range = [startMs, endMs];
    this.root.removeAttribute("aria-busy");
    const { firings } = answer;
    const from = new Date(answer.from).toLocaleString();
    const to = new Date(answer.to).toLocaleString();
    const byCoin = new Map();
    for (const firing of firings) {
      const entry = byCoin.get(firing.coin_id) || { symbol: firing.symbol, count: 0 };
      entry.count += 1;
      byCoin.set(firing.coin_id, entry);
    }
    this.summary.textContent =
      `${firings.length}${answer.truncated ? "+ (the earliest shown)" : ""} firing${firings.length === 1 ? "" : "s"} ` +
      `over ${answer.coins} coin${answer.coins === 1 ? "" : "s"} and ${answer.candles.toLocaleString("en")} one-minute candles, ${from} to ${to}.`;
    const coins = [...byCoin.entries()].sort((a, b) => b[1].count - a[1].count);
    this.coinSelect.replaceChildren(...coins.map(([id, entry]) => el("option", { value: String(id) }, `${entry.symbol} (${entry.count})`)));
    this.coinSelect.disabled = coins.length === 0;
    this.body.replaceChildren(
      ...firings.map((firing) => {
        const values = inputs(firing.values);
        const row = el(
          "tr",
          {},
          el("td", {}, el("time", { dateTime: firing.time }, new Date(firing.time).toLocaleString())),
          el("th", { scope: "row" }, firing.symbol),
          el("td", {}, values),
        );
        row.addEventListener("click", () => {
          this.coinSelect.value = String(firing.coin_id);
          this.draw(firing.coin_id);
        });
        return row;
      }),
    );
    if (!firings.length) this.body.append(el("tr", {}, el("td", { colSpan: 3, className: "empty" }, "It would not have fired in this range.")));
    this.root.hidden = false;
    await this.draw(coins.length ? coins[0][0] : null);
  }

  async draw(coinId) {
    const size = TIMEFRAMES[this.timeframe];
    if (coinId == null) {
      this.chart.setCandles([], size, true);
      this.chart.setMarkers([]);
      this.canvas.setAttribute("aria-label", "Dry run chart: no firing to show");
      return;
    }
    const [start, end] = this.range;
    const query = new URLSearchParams({ timeframe: this.timeframe, start: String(start), end: String(end), limit: String(MAX_CANDLES) });
    const { data } = await api("GET", `/v1/coins/${coinId}/candles?${query}`);
    const firings = this.answer.firings.filter((f) => f.coin_id === coinId);
    this.chart.setCandles(data.candles.map(candle), size, true);
    this.chart.span = Math.max(10, data.candles.length); // the whole range at once
    this.chart.setMarkers(firings.map((f) => ({ t: Math.floor(Date.parse(f.time) / size) * size, label: f.time, kind: "dry-run" })));
    this.canvas.setAttribute(
      "aria-label",
      `Dry run chart of ${data.symbol}, ${this.timeframe} candles: ${firings.length} firing${firings.length === 1 ? "" : "s"} marked below their candles`,
    );
  }
}
