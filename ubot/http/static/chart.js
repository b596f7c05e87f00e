// A candle chart on <canvas>, of our own: candles, overlay lines and markers, with zoom and pan by
// mouse (wheel, drag), touch (drag) and keyboard (arrows, + and -, Home and End).
//
// The chart shows `span` candles ending at `end` (a candle index, fractional while panning); its
// prices are scaled to what is visible. Colours come from the page's CSS variables, so it follows
// the light or dark theme. A crosshair follows the pointer with the candle's figures.

const MIN_SPAN = 10;
const AXIS_W = 78; // the price axis on the right
const AXIS_H = 22; // the time axis at the bottom
const PAD_TOP = 14;

function css(name, fallback) {
  return getComputedStyle(document.documentElement).getPropertyValue(name).trim() || fallback;
}

/** Round numbers for a price axis: about `count` steps between low and high. */
function ticks(low, high, count) {
  const raw = (high - low) / Math.max(1, count);
  const power = 10 ** Math.floor(Math.log10(raw || 1));
  const step = [1, 2, 2.5, 5, 10].map((m) => m * power).find((s) => s >= raw) || raw;
  const out = [];
  for (let v = Math.ceil(low / step) * step; v <= high; v += step) out.push(v);
  return { values: out, step };
}

function priceText(value, step) {
  const digits = Math.max(0, Math.min(8, -Math.floor(Math.log10(step || 1)) + 1));
  return value.toLocaleString("en", { minimumFractionDigits: digits, maximumFractionDigits: digits });
}

function timeText(ms, timeframeMs, withDay) {
  const date = new Date(ms);
  if (timeframeMs >= 86_400_000 || withDay) {
    return date.toLocaleDateString([], { month: "short", day: "numeric" }) +
      (timeframeMs < 86_400_000 ? ` ${date.toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" })}` : "");
  }
  return date.toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" });
}

export class CandleChart {
  /**
   * @param {HTMLCanvasElement} canvas
   * @param {{onChange?: (state) => void}} options  onChange: the visible range or the hovered candle changed
   */
  constructor(canvas, options = {}) {
    this.canvas = canvas;
    this.onChange = options.onChange || (() => {});
    this.candles = []; // [{t, o, h, l, c}], ascending
    this.overlays = []; // [{label, color, values: Map(t -> value)}]
    this.markers = []; // [{t, label, kind: "alert" | "dry-run"}]
    this.timeframeMs = 3_600_000;
    this.span = 80;
    this.end = -1; // the index of the rightmost candle shown; -1: follow the newest
    this.hover = null;
    this.drag = null;
    this.frame = 0;
    this.listen();
    new ResizeObserver(() => this.draw()).observe(canvas);
    matchMedia("(prefers-color-scheme: dark)").addEventListener("change", () => this.draw());
  }

  /** New candles: keep the view on the newest candle when it was there. */
  setCandles(candles, timeframeMs, reset = false) {
    const following = this.end < 0 || this.end >= this.candles.length - 1;
    this.candles = candles;
    if (timeframeMs) this.timeframeMs = timeframeMs;
    if (reset) {
      const fits = Math.floor((this.canvas.clientWidth - AXIS_W) / 7) || 80; // candles 7 px apart at least
      this.span = Math.max(MIN_SPAN, Math.min(80, fits, candles.length));
      this.end = -1;
    } else if (following) {
      this.end = -1;
    }
    this.draw();
  }

  setOverlays(overlays) {
    this.overlays = overlays;
    this.draw();
  }

  setMarkers(markers) {
    this.markers = markers;
    this.draw();
  }

  /** The visible window: [first, last] candle indices (fractional) and how many are shown. */
  window() {
    const n = this.candles.length;
    const span = Math.max(MIN_SPAN, Math.min(this.span, Math.max(MIN_SPAN, n)));
    const last = this.end < 0 ? n - 1 : Math.min(n - 1, Math.max(span / 4, this.end));
    return { first: last - span + 1, last, span };
  }

  zoom(factor, anchor = null) {
    const n = this.candles.length;
    if (!n) return;
    const { first, last, span } = this.window();
    const newSpan = Math.max(MIN_SPAN, Math.min(Math.max(MIN_SPAN, n) * 1.25, span * factor));
    const at = anchor == null ? last : anchor; // keep this candle where it is on screen
    const ratio = (at - first) / span;
    let end = at + (1 - ratio) * newSpan;
    this.span = newSpan;
    this.end = end >= n - 1 ? -1 : end;
    this.draw();
    this.changed();
  }

  pan(candles) {
    const n = this.candles.length;
    if (!n) return;
    const { last } = this.window();
    const end = last + candles;
    this.end = end >= n - 1 ? -1 : Math.max(0, end);
    this.draw();
    this.changed();
  }

  changed() {
    const { first, last } = this.window();
    this.onChange({ first: Math.max(0, Math.floor(first)), last: Math.floor(last), hover: this.hover });
  }

  listen() {
    const canvas = this.canvas;
    canvas.addEventListener(
      "wheel",
      (event) => {
        event.preventDefault();
        if (Math.abs(event.deltaX) > Math.abs(event.deltaY)) {
          this.pan(event.deltaX / this.candleWidth());
        } else {
          this.zoom(event.deltaY > 0 ? 1.15 : 1 / 1.15, this.indexAt(event.offsetX));
        }
      },
      { passive: false },
    );
    canvas.addEventListener("pointerdown", (event) => {
      canvas.setPointerCapture(event.pointerId);
      this.drag = { x: event.offsetX, end: this.window().last };
      canvas.classList.add("dragging");
    });
    canvas.addEventListener("pointermove", (event) => {
      if (this.drag) {
        const moved = (this.drag.x - event.offsetX) / this.candleWidth();
        const n = this.candles.length;
        const end = this.drag.end + moved;
        this.end = end >= n - 1 ? -1 : Math.max(0, end);
      }
      this.hover = this.indexAt(event.offsetX);
      this.pointer = { x: event.offsetX, y: event.offsetY };
      this.draw();
      this.changed();
    });
    const release = () => {
      this.drag = null;
      canvas.classList.remove("dragging");
    };
    canvas.addEventListener("pointerup", release);
    canvas.addEventListener("pointercancel", release);
    canvas.addEventListener("pointerleave", () => {
      if (this.drag) return;
      this.hover = null;
      this.pointer = null;
      this.draw();
      this.changed();
    });
    canvas.addEventListener("keydown", (event) => {
      const step = Math.max(1, Math.round(this.window().span / 10));
      const keys = {
        ArrowLeft: () => this.pan(-step),
        ArrowRight: () => this.pan(step),
        "+": () => this.zoom(1 / 1.25),
        "=": () => this.zoom(1 / 1.25),
        "-": () => this.zoom(1.25),
        Home: () => this.pan(-this.candles.length),
        End: () => this.pan(this.candles.length),
      };
      const action = keys[event.key];
      if (action) {
        event.preventDefault();
        action();
      }
    });
  }

  candleWidth() {
    const width = this.canvas.clientWidth - AXIS_W;
    return width / this.window().span;
  }

  indexAt(x) {
    const { first } = this.window();
    const index = Math.round(first + x / this.candleWidth() - 0.5);
    return index >= 0 && index < this.candles.length ? index : null;
  }

  draw() {
    if (this.frame) return;
    this.frame = requestAnimationFrame(() => {
      this.frame = 0;
      this.paint();
    });
  }

  /** Draw now (the browser tests and the first render call it through draw()). */
  paint() {
    const canvas = this.canvas;
    const ratio = window.devicePixelRatio || 1;
    const width = canvas.clientWidth;
    const height = canvas.clientHeight;
    if (!width || !height) return;
    if (canvas.width !== Math.round(width * ratio) || canvas.height !== Math.round(height * ratio)) {
      canvas.width = Math.round(width * ratio);
      canvas.height = Math.round(height * ratio);
    }
    const g = canvas.getContext("2d");
    g.setTransform(ratio, 0, 0, ratio, 0, 0);
    const colors = {
      bg: css("--surface", "#fff"),
      grid: css("--border", "#ddd"),
      text: css("--muted", "#666"),
      up: css("--pos", "#047857"),
      down: css("--neg", "#c2410c"),
      accent: css("--accent", "#2563eb"),
      ink: css("--text", "#111"),
    };
    g.fillStyle = colors.bg;
    g.fillRect(0, 0, width, height);
    g.font = "11px system-ui, sans-serif";
    const n = this.candles.length;
    if (!n) {
      g.fillStyle = colors.text;
      g.textAlign = "center";
      g.fillText("No candles yet", width / 2, height / 2);
      this.canvas.dataset.drawn = "0";
      return;
    }
    const plotW = width - AXIS_W;
    const plotH = height - AXIS_H - PAD_TOP;
    const { first, last, span } = this.window();
    const cw = plotW / span;
    const from = Math.max(0, Math.floor(first));
    const to = Math.min(n - 1, Math.ceil(last));
    // The price range of what is visible: candles, overlays and markers.
    let low = Infinity;
    let high = -Infinity;
    for (let i = from; i <= to; i++) {
      const c = this.candles[i];
      if (c.l != null) low = Math.min(low, c.l);
      if (c.h != null) high = Math.max(high, c.h);
      for (const overlay of this.overlays) {
        const v = overlay.values.get(c.t);
        if (v != null && Number.isFinite(v)) {
          low = Math.min(low, v);
          high = Math.max(high, v);
        }
      }
    }
    if (!Number.isFinite(low)) {
      low = 0;
      high = 1;
    }
    if (high === low) {
      high += Math.abs(high) * 0.01 || 1;
      low -= Math.abs(low) * 0.01 || 1;
    }
    const margin = (high - low) * 0.06;
    low -= margin;
    high += margin;
    const y = (price) => PAD_TOP + ((high - price) / (high - low)) * plotH;
    const x = (index) => (index - first + 0.5) * cw;

    // Grid and price axis
    const { values, step } = ticks(low, high, Math.max(2, Math.floor(plotH / 48)));
    g.strokeStyle = colors.grid;
    g.lineWidth = 1;
    g.fillStyle = colors.text;
    g.textAlign = "left";
    g.textBaseline = "middle";
    for (const v of values) {
      const yy = Math.round(y(v)) + 0.5;
      g.beginPath();
      g.moveTo(0, yy);
      g.lineTo(plotW, yy);
      g.stroke();
      g.fillText(priceText(v, step), plotW + 6, yy);
    }
    // Time axis: a label every ~100 px
    const every = Math.max(1, Math.ceil(100 / cw));
    g.textAlign = "center";
    g.textBaseline = "top";
    let previousDay = null;
    for (let i = Math.ceil(from / every) * every; i <= to; i += every) {
      const xx = Math.round(x(i)) + 0.5;
      if (xx < 30 || xx > plotW - 30) continue; // a label cut by an edge
      g.beginPath();
      g.moveTo(xx, PAD_TOP);
      g.lineTo(xx, PAD_TOP + plotH);
      g.stroke();
      const day = new Date(this.candles[i].t).toDateString();
      g.fillText(timeText(this.candles[i].t, this.timeframeMs, previousDay !== null && day !== previousDay), xx, PAD_TOP + plotH + 5);
      previousDay = day;
    }

    g.save();
    g.beginPath();
    g.rect(0, 0, plotW, height);
    g.clip();
    // Candles
    const body = Math.max(1, Math.min(cw * 0.7, cw - 1));
    for (let i = from; i <= to; i++) {
      const c = this.candles[i];
      if (c.o == null || c.c == null) continue;
      const color = c.c >= c.o ? colors.up : colors.down;
      const xx = x(i);
      g.strokeStyle = color;
      g.fillStyle = color;
      g.beginPath();
      g.moveTo(Math.round(xx) + 0.5, y(c.h ?? Math.max(c.o, c.c)));
      g.lineTo(Math.round(xx) + 0.5, y(c.l ?? Math.min(c.o, c.c)));
      g.stroke();
      const top = y(Math.max(c.o, c.c));
      const bottom = y(Math.min(c.o, c.c));
      g.fillRect(xx - body / 2, top, body, Math.max(1, bottom - top));
    }
    // Overlays
    g.lineWidth = 1.5;
    for (const overlay of this.overlays) {
      g.strokeStyle = overlay.color;
      g.beginPath();
      let open = false;
      for (let i = from; i <= to; i++) {
        const v = overlay.values.get(this.candles[i].t);
        if (v == null || !Number.isFinite(v)) {
          open = false;
          continue;
        }
        if (open) g.lineTo(x(i), y(v));
        else g.moveTo(x(i), y(v));
        open = true;
      }
      g.stroke();
    }
    // Markers: a triangle above the candle's high (alerts) or below its low (dry-run firings)
    const index = new Map(this.candles.map((c, i) => [c.t, i]));
    let drawnMarkers = 0;
    const stacked = new Map(); // markers already on a candle's side: the next one goes further out
    for (const marker of this.markers) {
      const i = index.get(marker.t);
      if (i == null || i < from || i > to) continue;
      const c = this.candles[i];
      const xx = x(i);
      const above = marker.kind === "alert";
      const key = `${i}${above}`;
      const depth = stacked.get(key) || 0;
      stacked.set(key, depth + 1);
      const yy = above ? y(c.h ?? c.c) - 6 - depth * 9 : y(c.l ?? c.c) + 6 + depth * 9;
      g.fillStyle = above ? colors.accent : colors.ink;
      g.beginPath();
      if (above) {
        g.moveTo(xx, yy);
        g.lineTo(xx - 5, yy - 8);
        g.lineTo(xx + 5, yy - 8);
      } else {
        g.moveTo(xx, yy);
        g.lineTo(xx - 5, yy + 8);
        g.lineTo(xx + 5, yy + 8);
      }
      g.closePath();
      g.fill();
      drawnMarkers++;
    }
    g.restore();

    // Crosshair
    if (this.pointer && this.hover != null) {
      const c = this.candles[this.hover];
      g.strokeStyle = colors.text;
      g.setLineDash([3, 3]);
      g.beginPath();
      g.moveTo(Math.round(x(this.hover)) + 0.5, PAD_TOP);
      g.lineTo(Math.round(x(this.hover)) + 0.5, PAD_TOP + plotH);
      if (this.pointer.y > PAD_TOP && this.pointer.y < PAD_TOP + plotH) {
        g.moveTo(0, Math.round(this.pointer.y) + 0.5);
        g.lineTo(plotW, Math.round(this.pointer.y) + 0.5);
      }
      g.stroke();
      g.setLineDash([]);
      if (this.pointer.y > PAD_TOP && this.pointer.y < PAD_TOP + plotH) {
        const price = high - ((this.pointer.y - PAD_TOP) / plotH) * (high - low);
        g.fillStyle = colors.ink;
        g.fillRect(plotW, this.pointer.y - 9, AXIS_W, 18);
        g.fillStyle = colors.bg;
        g.textAlign = "left";
        g.textBaseline = "middle";
        g.fillText(priceText(price, step / 10), plotW + 6, this.pointer.y);
      }
      if (c) this.canvas.dataset.hover = String(c.t);
    }
    // What the tests (and assistive technology, through the label) can read back.
    this.canvas.dataset.drawn = String(to - from + 1);
    if (!performance.getEntriesByName("ubot:chart").length) performance.mark("ubot:chart"); // bench/dashboard.py
    this.canvas.dataset.first = String(from);
    this.canvas.dataset.markers = String(drawnMarkers);
    this.canvas.dataset.overlays = String(this.overlays.length);
  }
}
