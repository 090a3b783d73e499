// The side panel: what the next request will send (context) and what the session cost (chart, table, export).
import { BarController, BarElement, CategoryScale, Chart, Legend, LinearScale, Tooltip } from "chart.js";
import { el } from "./content.js";
import { percent, tokens, usd } from "./format.js";

Chart.register(BarController, BarElement, CategoryScale, LinearScale, Legend, Tooltip);

const row = (label, value, name) => el("tr", name ? { "data-figure": name } : {}, el("th", { scope: "row", text: label }),
  el("td", { text: value }));

function where(breakpoint) {
  if (breakpoint.place === "tools") return "end of the tools";
  if (breakpoint.place === "system") return "end of the system prompt";
  if (breakpoint.place === "new message") return "the new message (the whole request is written to the cache)";
  return `message #${breakpoint.index + 1} (${breakpoint.role})`;
}

export function renderContext(box, report) {
  box.replaceChildren();
  const layout = report.layout || { breakpoints: [] };
  const limit = report.budget || report.context_window;
  const meter = el("meter", { id: "context-meter", min: "0", max: String(report.context_window),
    value: String(report.total_tokens), "aria-label": "Tokens of the next request against the context window" });
  box.append(
    el("h3", { text: "Next request" }),
    el("p", {}, el("strong", { id: "context-total", text: tokens(report.total_tokens) }),
      ` of ${tokens(report.context_window)} tokens in the window`,
      report.budget ? ` (policy budget ${tokens(report.budget)})` : ""),
    meter,
    el("table", { class: "figures", id: "context-table" },
      el("tbody", {},
        row("Model", report.model),
        row("Policy", report.policy),
        row("System", tokens(report.system_tokens), "system_tokens"),
        row("Tools", tokens(report.tools_tokens), "tools_tokens"),
        row("Summary", tokens(report.summary_tokens), "summary_tokens"),
        row("Messages", tokens(report.messages_tokens), "messages_tokens"),
        row("Read from the cache", tokens(report.cached_tokens), "cached_tokens"),
        row("Not cached", tokens(report.uncached_tokens), "uncached_tokens"),
        row("Turns kept", `${report.kept_turns} (${report.kept_messages} messages)`, "kept_turns"),
        row(report.summary_tokens ? "Turns summarised" : "Turns cut", String(report.dropped_turns), "dropped_turns"),
        row("Cache breakpoints", String(report.breakpoints), "breakpoints"),
        row("Cache TTL", report.cache_ttl || "-"),
        row("Estimated input cost", usd(report.estimated_cost), "estimated_cost"))),
  );
  if (limit && report.total_tokens > limit) box.append(el("p", { class: "error", text: "Over the budget." }));
  const list = el("ul", { id: "breakpoints", "aria-label": "Cache breakpoints" });
  for (const b of layout.breakpoints) list.append(el("li", { text: `${where(b)}, TTL ${b.ttl}` }));
  if (!layout.breakpoints.length) list.append(el("li", { class: "muted", text: "No cache breakpoint." }));
  box.append(el("h4", { text: "Cache breakpoints" }), list,
    el("p", { class: "muted", text: "Messages dimmed in the chat are not sent: the policy cut or summarised them. "
      + "The stored log keeps every message." }));
}

let chart = null;

export function renderCost(box, canvas, table, costs) {
  const t = costs.totals;
  box.replaceChildren(
    el("h3", { text: "Cost of this session" }),
    el("p", {}, el("strong", { id: "cost-total", text: usd(t.cost_usd) }),
      ` over ${costs.turns.length} ${costs.turns.length === 1 ? "reply" : "replies"}; `,
      el("span", { id: "cache-share", text: percent(costs.cache_read_share) }), " of the input read from the cache"),
  );
  const labels = costs.turns.map((turn, i) => `#${i + 1}`);
  const series = {
    input: costs.turns.map((turn) => turn.usage.input_tokens),
    cache_write: costs.turns.map((turn) => turn.usage.cache_creation_input_tokens),
    cache_read: costs.turns.map((turn) => turn.usage.cache_read_input_tokens),
    output: costs.turns.map((turn) => turn.usage.output_tokens),
  };
  canvas.dataset.series = JSON.stringify(series);
  const data = {
    labels,
    datasets: [
      { label: "Input", data: series.input, backgroundColor: "#4e79a7", stack: "in" },
      { label: "Cache writes", data: series.cache_write, backgroundColor: "#f28e2b", stack: "in" },
      { label: "Cache reads", data: series.cache_read, backgroundColor: "#59a14f", stack: "in" },
      { label: "Output", data: series.output, backgroundColor: "#b07aa1", stack: "out" },
    ],
  };
  if (chart) chart.destroy();
  chart = new Chart(canvas, {
    type: "bar",
    data,
    options: { animation: false, responsive: true, maintainAspectRatio: false,
      scales: { x: { stacked: true, title: { display: true, text: "reply" } },
        y: { stacked: true, title: { display: true, text: "tokens" } } } },
  });
  table.replaceChildren(
    el("thead", {}, el("tr", {}, ...["Reply", "Input", "Cache writes", "Cache reads", "Output", "Cost"].map(
      (h) => el("th", { scope: "col", text: h })))),
    el("tbody", {}, ...costs.turns.map((turn, i) => el("tr", {},
      el("th", { scope: "row", text: `#${i + 1}` }),
      el("td", { text: tokens(turn.usage.input_tokens) }),
      el("td", { text: tokens(turn.usage.cache_creation_input_tokens) }),
      el("td", { text: tokens(turn.usage.cache_read_input_tokens) }),
      el("td", { text: tokens(turn.usage.output_tokens) }),
      el("td", { text: usd(turn.cost_usd) })))),
    el("tfoot", {}, el("tr", {},
      el("th", { scope: "row", text: "Total" }),
      el("td", { text: tokens(t.usage.input_tokens) }),
      el("td", { text: tokens(t.usage.cache_creation_input_tokens) }),
      el("td", { text: tokens(t.usage.cache_read_input_tokens) }),
      el("td", { text: tokens(t.usage.output_tokens) }),
      el("td", { text: usd(t.cost_usd) }))),
  );
}
