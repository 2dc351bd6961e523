// The dashboard: polls /dashboard/data and redraws. No build step; uPlot draws the day chart.
"use strict";

const REFRESH_MS = Number(document.body.dataset.refreshMs) || 1000;
// Absolute, from the origin: opened as http://user:password@host/dashboard, the page's own URL
// carries the credentials, and fetch() refuses a URL resolved against it. The browser sends the
// basic-auth credentials it holds for this origin with every request (STREAMS_HTTP_*_FILE).
const DATA_URL = new URL("/dashboard/data", window.location.origin);
const fmt = new Intl.NumberFormat("en-US");
const DAY_MS = 86400000;
let windowDays = 30;
let last = null; // the last snapshot with numbers
let chart = null;

const $ = (id) => document.getElementById(id);

function setNumber(id, value) {
  const el = $(id);
  el.dataset.value = String(value);
  el.textContent = fmt.format(value);
}

function clock(iso) {
  if (!iso) return "–";
  return new Date(iso).toISOString().slice(11, 19) + " UTC";
}

function table(id, rows, headers, barCol) {
  const el = $(id);
  if (!rows.length) {
    el.innerHTML = `<tr><td class="empty">none yet</td></tr>`;
    return;
  }
  const max = Math.max(1, ...rows.map((r) => r[barCol]));
  const head = "<tr>" + headers.map((h, i) => `<th class="${i ? "n" : ""}">${h}</th>`).join("") + "<th></th></tr>";
  const body = rows
    .map((r) => {
      const cells = r.map((v, i) => (i === 0 ? `<td class="name"></td>` : `<td class="n">${fmt.format(v)}</td>`));
      const width = ((100 * r[barCol]) / max).toFixed(1);
      return `<tr>${cells.join("")}<td class="bar"><span style="width:${width}%"></span></td></tr>`;
    })
    .join("");
  el.innerHTML = head + body;
  // Names are set as text, never parsed as HTML.
  el.querySelectorAll("td.name").forEach((td, i) => {
    td.textContent = rows[i][0];
    td.title = rows[i][0];
  });
}

function daySeries(days) {
  const byDay = new Map(days.map((d) => [d[0], d[1]]));
  const end = Date.UTC(new Date().getUTCFullYear(), new Date().getUTCMonth(), new Date().getUTCDate());
  const xs = [];
  const ys = [];
  for (let i = windowDays - 1; i >= 0; i--) {
    const t = end - i * DAY_MS;
    const key = new Date(t).toISOString().slice(0, 10);
    xs.push(t / 1000);
    ys.push(byDay.get(key) || null); // null: no bar (a zero bar would still draw its outline)
  }
  return [xs, ys];
}

function drawChart(days) {
  const data = daySeries(days);
  const el = $("chart");
  const width = Math.max(300, el.clientWidth);
  if (chart === null) {
    chart = new uPlot(
      {
        width,
        height: 260,
        legend: { show: false },
        cursor: { drag: { x: false, y: false } },
        scales: { x: { time: true }, y: { range: (u, min, max) => [0, Math.max(10, max * 1.1)] } },
        axes: [
          { stroke: "#6b7385", grid: { stroke: "#eef0f4" } },
          { stroke: "#6b7385", grid: { stroke: "#eef0f4" }, size: 70, values: (u, v) => v.map((x) => fmt.format(x)) },
        ],
        series: [
          {},
          {
            label: "points lost",
            stroke: "#3b5bdb",
            fill: "rgba(59,91,219,0.55)",
            paths: uPlot.paths.bars({ size: [0.7, 40] }),
            points: { show: false },
          },
        ],
      },
      data,
      el,
    );
  } else {
    chart.setData(data);
  }
}

function render(snap) {
  const t = snap.totals;
  setNumber("points-lost", t.points_lost);
  setNumber("customers", t.customers);
  setNumber("customers-with-points", t.customers_with_points);
  setNumber("advocates-lost", t.advocates_lost);
  setNumber("orphaned", t.referred_customers_orphaned);
  drawChart(snap.days);
  table("campaigns", snap.campaigns, ["campaign", "points lost", "customers"], 1);
  table("tiers", snap.tiers, ["tier", "points lost", "customers"], 1);
  table("referrers", snap.referrers, ["referrer", "referees lost"], 1);
}

function renderPipeline(snap) {
  const p = snap.pipeline || {};
  if (p.kafka) {
    $("events-per-s").textContent = "Kafka not answering";
    return;
  }
  $("events-per-s").textContent = p.events_per_s.toFixed(1);
  const lagTotal = p.lag.reduce((a, r) => a + r[1], 0);
  setNumber("lag-total", lagTotal);
  setNumber("dead-letters", p.dead_letters);
  if (p.duplicates_dropped !== undefined) setNumber("duplicates", p.duplicates_dropped);
  if (p.last_update !== undefined) $("last-update").textContent = clock(p.last_update);
  const lag = $("lag");
  lag.innerHTML =
    "<tr><th>input partition</th>" + p.lag.map((r) => `<th class="n">${r[0]}</th>`).join("") + "</tr>" +
    "<tr><td>records waiting</td>" +
    p.lag.map((r) => `<td class="n${r[1] ? " behind" : ""}">${fmt.format(r[1])}</td>`).join("") + "</tr>";
}

const STATES = {
  rebalancing: "The workers are rebalancing",
  recovering: "A worker is restoring its tables from their changelogs",
  stalled: "A partition is stalled",
  workers_missing: "Some workers do not answer",
};

function show(snap) {
  const current = snap.state === "current";
  document.body.classList.toggle("not-current", !current);
  const status = $("status");
  status.classList.toggle("not-current", !current);
  if (current) {
    last = snap;
    render(snap);
    status.textContent = "live · " + clock(snap.as_of);
    status.dataset.state = "current";
  } else {
    const why = STATES[snap.state] || "Not current";
    const since = last ? ` — the numbers below are from ${clock(last.as_of)}, not current.` : " — no numbers yet.";
    const detail = snap.stalled && snap.stalled.length ? ` (${snap.stalled.join(", ")})` : "";
    $("banner").textContent = `${why}${detail}${since}`;
    status.textContent = "not current: " + snap.state;
    status.dataset.state = snap.state;
  }
  renderPipeline(snap);
}

async function poll() {
  try {
    const resp = await fetch(DATA_URL, { cache: "no-store" });
    if (!resp.ok) throw new Error(`HTTP ${resp.status}`);
    show(await resp.json());
  } catch (err) {
    document.body.classList.add("not-current");
    $("banner").textContent = `The worker does not answer (${err.message}); retrying.`;
    $("status").textContent = "disconnected";
    $("status").dataset.state = "disconnected";
    $("status").classList.add("not-current");
  } finally {
    setTimeout(poll, REFRESH_MS);
  }
}

$("window").addEventListener("click", (ev) => {
  const days = Number(ev.target.dataset.days);
  if (!days) return;
  windowDays = days;
  document.querySelectorAll("#window button").forEach((b) => b.classList.toggle("on", b === ev.target));
  if (last) drawChart(last.days);
});

window.addEventListener("resize", () => {
  if (chart) chart.setSize({ width: Math.max(300, $("chart").clientWidth), height: 260 });
});

poll();
