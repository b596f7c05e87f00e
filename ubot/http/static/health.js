// The health view: GET /health drawn for a person: the status and why, each pipeline stage's time
// on the last tick, the clock's lateness, the scanner's cost, and CoinMarketCap's credits against
// the plan (today, this month, the month's projection at the current settings). Refreshed on every
// snapshot while shown.
import { count, el } from "./format.js";

const ms = (value) => (value == null ? "—" : `${value < 10 ? value.toFixed(2) : Math.round(value).toLocaleString("en")} ms`);

function figures(items) {
  return el("dl", { className: "figures" }, ...items.map(([term, value, hint]) => {
    const row = el("div", {}, el("dt", {}, term), el("dd", {}, value));
    if (hint) row.title = hint;
    return row;
  }));
}

/** `part` of `whole` in percent, capped in the text (a tick a second can project 46,000 %). */
function share(part, whole) {
  const percent = Math.round((100 * part) / whole);
  return percent > 999 ? "> 999%" : `${percent}%`;
}

/** The costliest strategies by id, for the operator to look at. */
function costliest(items) {
  if (!items || !items.length) return null;
  return el("p", { className: "muted small-print" }, `Costliest: ${items.map((item) => `#${item.id} (${count(item.cost)})`).join(", ")}`);
}

/** A card of the view: a region named by its heading. */
function card(title, ...children) {
  return el("section", { className: "card", "aria-label": title }, el("h2", {}, title), ...children);
}

/** A bar of `part` out of `whole`, labelled for assistive technology. */
function meter(label, part, whole, warnAt = 0.8) {
  const bar = el("meter", { min: 0, max: whole || 1, value: Math.min(part, whole || 1), low: (whole || 1) * warnAt, high: whole || 1, optimum: 0 });
  bar.setAttribute("aria-label", label);
  return bar;
}

export class HealthView {
  constructor(root) {
    this.root = root;
    this.status = root.querySelector("#health-status");
    this.reason = root.querySelector("#health-reason");
    this.body = root.querySelector("#health-body");
    this.pending = null;
  }

  refresh() {
    if (this.root.hidden || this.pending) return this.pending;
    this.pending = fetch("/health", { headers: { Accept: "application/json" }, cache: "no-store" })
      .then((response) => response.json())
      .then((doc) => this.render(doc)) // a 503 has the document too, with its reason
      .catch(() => {
        this.status.textContent = "unreachable";
        this.reason.textContent = "uBot cannot be reached; check that it runs.";
      })
      .finally(() => {
        this.pending = null;
      });
    return this.pending;
  }

  render(doc) {
    this.status.textContent = doc.status;
    this.status.className = `badge ${doc.status === "ok" ? "good" : doc.status === "starting" ? "" : "bad"}`;
    this.reason.textContent = doc.reason || (doc.source_exhausted ? "The replay has ended: no more ticks." : "");
    const cards = [this.pipeline(doc), this.clock(doc.clock), this.scanner(doc.scanner), this.budget(doc.source_status, doc.clock)];
    if (doc.role === "gateway") cards.splice(0, cards.length, this.gateway(doc));
    this.body.replaceChildren(...cards.filter(Boolean));
  }

  pipeline(doc) {
    const stages = Object.entries(doc.last_tick_ms || {});
    const total = stages.reduce((sum, [, value]) => sum + value, 0);
    const list = el(
      "ol",
      { className: "stages" },
      ...stages.map(([name, value]) => {
        const bar = el("span", { className: "stage-bar" });
        bar.style.setProperty("--share", `${total ? (100 * value) / total : 0}%`);
        return el("li", {}, el("span", { className: "stage-name" }, name), bar, el("span", { className: "num" }, ms(value)));
      }),
    );
    return card("Pipeline", figures([
        ["Source", doc.source],
        ["Ticks", `${count(doc.ticks_ok)} ok · ${count(doc.ticks_skipped)} skipped`],
        ["Last snapshot", doc.last_snapshot_at ? new Date(doc.last_snapshot_at).toLocaleString() : "—"],
        ["Last tick", ms(total)],
      ]),
      stages.length ? list : el("p", { className: "muted" }, "No tick yet."),
    );
  }

  clock(clock) {
    if (!clock) return null;
    return card("Clock", figures([
        ["Interval", clock.interval_s ? `${clock.interval_s} s` : "back-to-back"],
        ["Ticking", clock.ticking ? "yes" : "no"],
        ["Lateness p50", ms(clock.lateness_ms_p50), "how late the ticks fired after their deadline"],
        ["Lateness p99", ms(clock.lateness_ms_p99)],
        ["Lateness max", ms(clock.lateness_ms_max)],
        ["Missed ticks", count(clock.missed_ticks), "deadlines skipped because the previous tick was still running"],
      ]),
    );
  }

  scanner(scanner) {
    if (!scanner) return card("Scanner", el("p", { className: "muted" }, "No scan yet: the scanner starts with the first enabled strategy."));
    return card("Scanner", figures([
        ["Strategies", count(scanner.strategies)],
        ["Workers", count(scanner.workers)],
        ["Last scan", ms(scanner.last_scan_ms)],
        ["Scan p50 · p99", `${ms(scanner.scan_ms_p50)} · ${ms(scanner.scan_ms_p99)}`],
        ["Evaluated", `${count(scanner.last_evaluated)} pairs over ${count(scanner.last_coins)} coins`],
        ["Scans", `${count(scanner.scans)} · ${count(scanner.scans_skipped)} skipped`],
        ["Alerts", count(scanner.alerts)],
        ["Worker restarts", count(scanner.worker_restarts)],
        ["History folding", ms(scanner.last_history_ms), "the last tick's candles folded into the indicator state"],
        ["Cost", `${count(scanner.cost)} series-coins`, "the enabled strategies' costs: coins × (1 + distinct indicator series)"],
      ]),
      costliest(scanner.costliest),
    );
  }

  budget(status, clock) {
    if (!status || status.credits_month === undefined) {
      return card("CoinMarketCap budget", el("p", { className: "muted" }, "This market source spends no CoinMarketCap credits."));
    }
    const allowance = status.credit_limit_monthly;
    const projected = status.projected_month;
    const items = [
      ["Used today", count(status.credits_today)],
      ["Used this month", count(status.credits_month)],
      ["Per tick", count(status.credits_per_tick)],
      ["Month's projection", projected == null ? "—" : count(projected), "the credits this month ends at if the interval and the coins stay as they are"],
      ["Plan allowance", allowance == null ? "unknown" : `${count(allowance)} a month`, `read from ${status.plan_from}`],
    ];
    const parts = [figures(items)];
    if (allowance) {
      parts.push(
        el("p", { className: "meter-line" }, el("span", {}, "This month"), meter("Credits used this month of the allowance", status.credits_month, allowance), el("span", { className: "num" }, share(status.credits_month, allowance))),
      );
      if (projected != null) {
        const over = projected > allowance;
        parts.push(
          el("p", { className: "meter-line" }, el("span", {}, "Projection"), meter("The month's projected credits of the allowance", projected, allowance), el("span", { className: `num ${over ? "neg" : ""}` }, share(projected, allowance))),
          el("p", { className: over ? "neg" : "muted" }, over ? "At this interval the plan runs out before the month ends: lengthen [market] interval or lower the coins." : "The plan lasts the month at this interval."),
        );
      }
    }
    if (status.state !== "ok") parts.push(el("p", { className: "neg" }, status.reason));
    if (clock && !clock.interval_s) parts.push(el("p", { className: "muted" }, "Ticks are back-to-back: no rate to project."));
    return card("CoinMarketCap budget", ...parts);
  }

  gateway(doc) {
    return card("Gateway", figures([
        ["Role", doc.role],
        ["Bus", `${doc.bus.kind}${doc.bus.connected ? "" : " (not connected)"}`],
        ["Last snapshot", doc.last_snapshot_at ? new Date(doc.last_snapshot_at).toLocaleString() : "—"],
      ]),
      el("p", { className: "muted" }, "The engine's figures are in its own log."),
    );
  }
}
