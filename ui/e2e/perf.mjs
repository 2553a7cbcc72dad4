// Performance of the two big tables, on data injected by mocking the API in the page
// (Playwright `page.route`): 5,000 instances and 100,000 events go through the real fetch,
// paging, merge, filter and virtualised rendering code of the console.

function instance(i) {
  const statuses = ["ready", "provisioning", "installing", "failed", "terminated", "unavailable"];
  const zones = ["fr-par-1", "fr-par-2", "nl-ams-1"];
  const models = ["meta-llama/Llama-3.1-8B-Instruct", "Qwen/Qwen2.5-14B-Instruct", "mistralai/Mistral-7B-Instruct-v0.3", "BAAI/bge-m3"];
  const t = new Date(Date.UTC(2026, 10, 1) + i * 60_000).toISOString();
  return {
    id: `0193${String(i).padStart(4, "0")}-0000-7000-8000-${String(i).padStart(12, "0")}`,
    status: statuses[i % statuses.length], progress: (i * 7) % 101,
    model_id: "m", model_repo: models[i % models.length], model_required_vram_gb: 24,
    zone: zones[i % zones.length], allowed_zones: [zones[i % zones.length]],
    instance_type: i % 2 ? "L4-1-24G" : "H100-1-80G", gpu_count: 1, vram_per_gpu_gb: 24,
    hourly_price_micro_eur: 750000, hourly_price_eur: "0.750000", data_volume_gb: 100, vllm_mode: "mono", provider: "scaleway",
    server: null, volumes: [], public_ip: `10.${(i >> 16) & 255}.${(i >> 8) & 255}.${i & 255}`, failure: null,
    install: { attempt: 1, phases: [], completed: false }, readiness: [],
    cost_micro_eur: i * 1000, cost_eur: "0", version: 3, requested_at: t, ready_at: null,
    terminated_at: i % 6 === 4 ? t : null, updated_at: t,
  };
}

function event(p) {
  const types = ["InstanceRequested", "ServerCreated", "PhaseStarted", "PhaseLogged", "PhaseCompleted", "InstanceReady", "ModelUpdated"];
  const type = types[p % types.length];
  const agg = type === "ModelUpdated" ? "model" : "instance";
  return {
    position: p, aggregate_type: agg, aggregate_id: `agg-${p % 500}`, sequence: Math.floor(p / 500) + 1,
    event_type: type, event_version: "1",
    payload: type === "InstanceReady" ? type : { [type]: { name: "install", chunk: "line\n" } },
    metadata: { actor: { kind: "processor", id: "bootstrap" }, correlation_id: `corr-${p % 1000}` },
    recorded_at: new Date(Date.UTC(2026, 10, 1) + p * 1000).toISOString(),
  };
}

const INSTANCES = Array.from({ length: 5000 }, (_, i) => instance(i));
const EVENTS = 100_000;

export async function mockBigData(page) {
  await page.route(/\/api\/instances\?/, (route) => {
    const u = new URL(route.request().url());
    const offset = Number(u.searchParams.get("offset") ?? 0);
    const limit = Number(u.searchParams.get("limit") ?? 100);
    const slice = INSTANCES.slice(offset, offset + limit);
    const next = offset + limit < INSTANCES.length ? offset + limit : null;
    route.fulfill({ json: { instances: slice, total: INSTANCES.length, limit, offset, next_offset: next } });
  });
  await page.route(/\/api\/events\?/, (route) => {
    const u = new URL(route.request().url());
    const after = Number(u.searchParams.get("after") ?? 0);
    const limit = Number(u.searchParams.get("limit") ?? 100);
    const events = [];
    for (let p = after + 1; p <= Math.min(EVENTS, after + limit); p++) events.push(event(p));
    route.fulfill({ json: { events, next_after: events.length ? events[events.length - 1].position : after } });
  });
}

/** Time from an interaction to the frame that shows its result, in the page (ms). */
async function timeInteraction(page, fn, arg) {
  return page.evaluate(
    async ([src, a]) => {
      const f = new Function("a", `return (${src})(a)`);
      const frame = () => new Promise((r) => requestAnimationFrame(() => r()));
      await frame();
      const t0 = performance.now();
      f(a);
      await frame();
      await frame();
      return performance.now() - t0;
    },
    [fn.toString(), arg],
  );
}

const scrollTo = (a) => {
  const el = document.querySelector(`[data-testid="${a.id}-scroll"]`);
  el.scrollTop = a.top;
};

const typeInto = (a) => {
  const el = document.querySelector(a.selector);
  const setter = Object.getOwnPropertyDescriptor(window.HTMLInputElement.prototype, "value").set;
  setter.call(el, a.value);
  el.dispatchEvent(new Event("input", { bubbles: true }));
};

const selectOption = (a) => {
  const el = document.querySelector(a.selector);
  const setter = Object.getOwnPropertyDescriptor(window.HTMLSelectElement.prototype, "value").set;
  setter.call(el, a.value);
  el.dispatchEvent(new Event("change", { bubbles: true }));
};

function stats(xs) {
  const s = [...xs].sort((a, b) => a - b);
  const r = (x) => Math.round(x * 10) / 10;
  return { median: r(s[Math.floor(s.length / 2)]), max: r(s[s.length - 1]), n: s.length, all: xs.map(r) };
}

export async function measure(page, base, shot) {
  const out = {};
  // Instances: 5,000 rows.
  let t0 = Date.now();
  await page.goto(`${base}/instances`);
  await page.waitForFunction(() => document.querySelector('[data-testid="instances"] .vfoot')?.textContent?.startsWith("5,000"), null, { timeout: 60_000 });
  out.instancesLoadMs = Date.now() - t0;
  // The floor of every figure below: two animation frames with nothing to do.
  const floor = [];
  for (let i = 0; i < 6; i++) floor.push(await timeInteraction(page, () => {}, null));
  out.twoFramesFloor = stats(floor);
  // One warm-up pass (first-render JIT), not counted.
  for (const top of [30000, 0]) await timeInteraction(page, scrollTo, { id: "instances", top });
  const scrolls = [];
  for (const top of [20000, 80000, 150000, 40000, 0, 160000, 100000, 5000]) scrolls.push(await timeInteraction(page, scrollTo, { id: "instances", top }));
  out.instancesScroll = stats(scrolls);
  const filters = [];
  for (const value of ["llama", "qwen", "10.0.1", "", "mistral", "bge", ""]) {
    filters.push(await timeInteraction(page, typeInto, { selector: '[data-testid="instances-filter"]', value }));
  }
  out.instancesFilter = stats(filters);
  const sorts = [];
  for (const col of ["Model", "Cost so far", "Zone", "Age"]) {
    sorts.push(
      await timeInteraction(
        page,
        (a) => [...document.querySelectorAll('[role="columnheader"]')].find((h) => h.textContent.startsWith(a.col)).click(),
        { col },
      ),
    );
  }
  out.instancesSort = stats(sorts);
  await shot("instances-5000");

  // Event log: 100,000 events.
  t0 = Date.now();
  await page.goto(`${base}/events`);
  await page.waitForFunction(() => /of 100,0\d\d events(?! \(loading)/.test(document.querySelector('[data-testid="event-count"]')?.textContent ?? ""), null, { timeout: 120_000 });
  out.eventsLoadMs = Date.now() - t0;
  const escrolls = [];
  for (const top of [100000, 1500000, 2900000, 500000, 0, 2000000]) escrolls.push(await timeInteraction(page, scrollTo, { id: "events", top }));
  out.eventsScroll = stats(escrolls);
  const efilters = [];
  efilters.push(await timeInteraction(page, selectOption, { selector: '[data-testid="filter-aggregate"]', value: "model" }));
  efilters.push(await timeInteraction(page, selectOption, { selector: '[data-testid="filter-aggregate"]', value: "" }));
  efilters.push(await timeInteraction(page, typeInto, { selector: '[data-testid="filter-event-type"]', value: "Phase" }));
  efilters.push(await timeInteraction(page, typeInto, { selector: '[data-testid="filter-event-type"]', value: "" }));
  efilters.push(await timeInteraction(page, typeInto, { selector: '[data-testid="filter-correlation"]', value: "corr-42" }));
  const corrCount = await page.textContent('[data-testid="event-count"]');
  efilters.push(await timeInteraction(page, typeInto, { selector: '[data-testid="filter-correlation"]', value: "" }));
  out.eventsFilter = stats(efilters);
  out.correlationFilterResult = corrCount.trim();
  await shot("events-100000");
  return out;
}
