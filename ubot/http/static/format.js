// Numbers as people read them: prices with enough digits, large amounts compact, changes signed.
const compact = new Intl.NumberFormat("en", { notation: "compact", maximumFractionDigits: 2 });
const percent = new Intl.NumberFormat("en", { maximumFractionDigits: 2, minimumFractionDigits: 2, signDisplay: "always" });
const whole = new Intl.NumberFormat("en");

export function price(value, currency) {
  if (value == null) return "—";
  const digits = value >= 1000 ? 2 : value >= 1 ? 4 : value >= 0.01 ? 5 : 8;
  const text = new Intl.NumberFormat("en", { maximumFractionDigits: digits, minimumFractionDigits: Math.min(2, digits) }).format(value);
  return currency === "USD" ? `$${text}` : `${text} ${currency}`;
}

export function money(value, currency) {
  if (value == null) return "—";
  return currency === "USD" ? `$${compact.format(value)}` : `${compact.format(value)} ${currency}`;
}

export function change(value) {
  return value == null ? "—" : `${percent.format(value)}%`;
}

export function count(value) {
  return value == null ? "—" : whole.format(value);
}

export function time(iso) {
  return new Date(iso).toLocaleTimeString([], { hour: "2-digit", minute: "2-digit", second: "2-digit" });
}

export function dateTime(iso) {
  return new Date(iso).toLocaleString([], { dateStyle: "medium", timeStyle: "short" });
}

/** A DOM element: el("td", {className: "num"}, "text", child...). Text is always text, never HTML. */
export function el(tag, props = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(props)) {
    if (key in node && !key.includes("-")) node[key] = value;
    else node.setAttribute(key, value);
  }
  node.append(...children.filter((child) => child != null));
  return node;
}

/** The line of `text` that holds 1-based `column`, and a caret under that column. */
export function caretText(text, column) {
  const offset = Math.min(column - 1, text.length);
  const start = text.lastIndexOf("\n", offset - 1) + 1;
  const end = text.indexOf("\n", offset);
  const line = text.slice(start, end < 0 ? undefined : end);
  return `${line}\n${" ".repeat(offset - start)}^`;
}

/** A condition's inputs as an alert or a firing has them: "price = 67,412.5, rsi(14) = 28.1". */
export function inputs(values) {
  return Object.entries(values || {})
    .map(([name, value]) => `${name} = ${value == null ? "—" : price(value, "").trim()}`)
    .join(", ");
}
