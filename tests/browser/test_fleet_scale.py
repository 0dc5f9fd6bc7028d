"""The fleet view with 1,000 real servers registered, 200 of them being prepared: rendered, live, responsive.

The servers are 1,000 registrations of the simulated target in a real service (not a fake of the
gateway's endpoints): the gateway sweeps them with Status and follows the active ones with
StreamLogs, as it would a real fleet. What is asserted is behaviour (every row rendered, every
preparation's end shown, the counts agree with the service); the timings are measured in the page
(first render, event-loop lag, long tasks, input latency) and printed, never asserted. Figures go
to tests/browser/screenshots/scale-figures.json.
"""

from __future__ import annotations

import json
import os
import time
from typing import Any

import pytest
from browser.conftest import SCREENSHOTS, screenshot, wait_until
from browser.gateway import web_gateway

from harness.targets import behave
from serverprep.clients.types import TERMINAL, PreparationState

pytestmark = pytest.mark.sshd

SERVERS = 1000
PREPARED = 200

#: In the page: how late a 20 ms timer fires (the main thread's responsiveness), long tasks, events received.
PROBES = """
if (window.__probe) { clearInterval(window.__probe.timer); window.__probe.observer.disconnect(); }
const p = window.__probe = {lags: [], longTasks: [], events: 0, rows: 0, start: performance.now(),
                            flushes: {...window.serverprep.flushes}};
let expected = performance.now() + 20;
p.timer = setInterval(() => { const now = performance.now(); p.lags.push(now - expected); expected = now + 20; }, 20);
p.observer = new PerformanceObserver((list) => { for (const e of list.getEntries()) p.longTasks.push(e.duration); });
p.observer.observe({type: "longtask", buffered: false});
window.serverprep.listeners.add((rows) => { if (window.__probe === p) { p.events++; p.rows += rows.length; } });
"""
COLLECT = """
const p = window.__probe, f = window.serverprep.flushes;
clearInterval(p.timer);
return {lags: p.lags, longTasks: p.longTasks, events: p.events, rows: p.rows, ms: performance.now() - p.start,
        batches: f.count - p.flushes.count, batchMs: f.ms - p.flushes.ms, batchMaxMs: f.maxMs,
        heap: performance.memory ? performance.memory.usedJSHeapSize : 0};
"""

#: Time from a click on a filter button to the frame after it was drawn.
CLICK = """
const done = arguments[arguments.length - 1];
const b = document.querySelector(`#counts button[data-state='${arguments[0]}']`);
const t = performance.now();
b.click();
requestAnimationFrame(() => requestAnimationFrame(() => done(performance.now() - t)));
"""


def percentile(values: list[float], q: float) -> float:
    if not values:
        return 0.0
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def page_figures(probe: dict[str, Any], clicks: list[float]) -> dict[str, float]:
    lags, tasks = probe["lags"], probe["longTasks"]
    return {
        "seconds": round(probe["ms"] / 1000, 1), "fleet_events": probe["events"], "row_updates": probe["rows"],
        "timer_lag_ms_p50": round(percentile(lags, 0.5), 1), "timer_lag_ms_p99": round(percentile(lags, 0.99), 1),
        "timer_lag_ms_max": round(max(lags or [0]), 1),
        "long_tasks": len(tasks), "long_task_ms_max": round(max(tasks or [0]), 1), "long_task_ms_total": round(sum(tasks), 1),
        "click_to_frame_ms_p50": round(percentile(clicks, 0.5), 1), "click_to_frame_ms_max": round(max(clicks or [0]), 1),
        "clicks": len(clicks), "batches_applied": probe["batches"], "batch_script_ms_total": round(probe["batchMs"], 1),
        "batch_script_ms_max": round(probe["batchMaxMs"], 1), "js_heap_mib": round(probe["heap"] / 2**20, 1),
    }


def proc_figures(pid: int) -> dict[str, float]:
    """The gateway process's resident memory (MiB) and CPU time so far (s)."""
    status = open(f"/proc/{pid}/status").read()
    rss = int(next(line.split()[1] for line in status.splitlines() if line.startswith("VmRSS:")))
    fields = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
    ticks = os.sysconf("SC_CLK_TCK")
    return {"rss_mib": round(rss / 1024, 1), "cpu_s": round((int(fields[11]) + int(fields[12])) / ticks, 2)}


def chromium_cpu(profile: str) -> dict[str, float]:
    """CPU seconds used so far by this browser's processes: all of them, and the renderers (where the page runs)."""
    ticks = os.sysconf("SC_CLK_TCK")
    parents, cpu, kinds = {}, {}, {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = open(f"/proc/{entry}/stat").read().rsplit(")", 1)[1].split()
            cmdline = open(f"/proc/{entry}/cmdline", "rb").read().decode(errors="replace")
        except OSError:
            continue
        pid = int(entry)
        parents[pid] = int(stat[1])
        cpu[pid] = (int(stat[11]) + int(stat[12])) / ticks
        kinds[pid] = "root" if f"--user-data-dir={profile}" in cmdline and "--type=" not in cmdline else (
            "renderer" if "--type=renderer" in cmdline else "other")
    roots = {p for p, k in kinds.items() if k == "root"}

    def ours(pid: int) -> bool:
        while pid > 1:
            if pid in roots:
                return True
            pid = parents.get(pid, 1)
        return False

    mine = [p for p in cpu if ours(p)]
    return {"all": sum(cpu[p] for p in mine), "renderer": sum(cpu[p] for p in mine if kinds[p] == "renderer")}


def test_a_thousand_servers_render_once_and_stay_responsive_while_200_are_prepared(browser, client, sim, service, tmp_path):
    figures: dict[str, object] = {"servers": SERVERS, "prepared": PREPARED}
    began = time.monotonic()
    names = [f"node{i:04d}" for i in range(SERVERS)]
    for name in names:
        client.create_server(name, host=sim.host, port=sim.port, user=sim.user, private_key=sim.key.private,
                             host_key=sim.host_key)
    figures["register_s"] = round(time.monotonic() - began, 1)
    # Preparations started by another client (here: the test's) are found by the sweeps; --refresh 2 finds them
    # sooner than the default 5 s, so more of them stream to the page at once.
    with web_gateway(service.address, "--refresh", "2", workdir=tmp_path) as web:
        stats = wait_until(lambda: (s := web.json("GET", "/api/gateway")[1])["servers"] == SERVERS and s["swept"] and s,
                           timeout=60, what="the first sweep of 1,000 servers")
        figures["first_sweep_s"] = stats["sweep_seconds"]
        status, headers, body = web.request("GET", "/api/fleet")
        figures["snapshot_kib"] = round(len(body) / 1024, 1)

        browser.get(web.url)
        first = wait_until(lambda: browser.execute_script("return window.serverprep && window.serverprep.firstRender"),
                           timeout=60, what="the first render")
        assert first["rows"] == SERVERS
        assert browser.execute_script("return document.querySelectorAll('#fleet-rows .frow').length") == SERVERS
        nav = browser.execute_script("const n = performance.getEntriesByType('navigation')[0];"
                                     "return {dcl: n.domContentLoadedEventEnd, load: n.loadEventEnd};")
        figures["first_render_ms"] = round(first["sinceNavigation"])
        figures["first_render_build_ms"] = round(first["buildMs"])
        figures["dom_content_loaded_ms"] = round(nav["dcl"])

        # A quiet baseline first: the same page and machine, no preparations, no events.
        browser.execute_script(PROBES)
        quiet_clicks: list[float] = []
        for _ in range(4):
            time.sleep(1)
            for state in ("RUNNING", "SUCCEEDED", "ALL"):
                quiet_clicks.append(browser.execute_async_script(CLICK, state))
        figures["page_quiet"] = page_figures(browser.execute_script(COLLECT), quiet_clicks)
        browser.execute_script(PROBES)
        cpu_before = chromium_cpu(browser.sp_profile)
        behave(sim, "apt-get", "sleep 0.3")
        started = time.monotonic()
        preps = {name: client.prepare(name, docker_source="distro").id for name in names[:PREPARED]}
        clicks: list[float] = []
        shot = False
        while time.monotonic() - started < 120:
            if not shot and time.monotonic() - started > 8:
                shot = bool(screenshot(browser, "fleet-1000-streaming"))
            for state in ("RUNNING", "SUCCEEDED", "ALL"):
                clicks.append(browser.execute_async_script(CLICK, state))
            done = sum(1 for n, p in preps.items() if client.status(n, p).state in TERMINAL)
            if done == PREPARED:
                break
            time.sleep(1)
        figures["prepare_all_s"] = round(time.monotonic() - started, 1)
        figures["gateway_during"] = {**proc_figures(web.proc.pid), **{k: web.json("GET", "/api/gateway")[1][k]
                                                                    for k in ("followed_peak", "sweep_seconds")}}
        # The page ends where the service is: the same count in each state (the service decides the states:
        # on this loaded machine a few preparations may lose their SSH connection; the page must show that too).
        final = [client.status(n, p) for n, p in preps.items()]
        assert all(p.state in TERMINAL for p in final)
        expected = {"ALL": SERVERS, "NONE": SERVERS - PREPARED, "RUNNING": 0, "PENDING": 0,
                    **{s: sum(1 for p in final if PreparationState.Name(p.state).endswith(s))
                       for s in ("SUCCEEDED", "FAILED", "CANCELLED")}}
        figures["service_final"] = {k: v for k, v in expected.items() if k in ("SUCCEEDED", "FAILED", "CANCELLED")}
        page: dict[str, Any] = {}

        def page_agrees() -> bool:
            page.clear()
            page.update(browser.execute_script(
                "return Object.fromEntries([...document.querySelectorAll('#counts button')].map("
                "b => [b.dataset.state, +b.querySelector('.n').textContent]))"))
            return page == expected

        try:
            wait_until(page_agrees, timeout=30, what=f"the page's counts to be the service's {expected}")
        except TimeoutError as e:
            # Which side is behind: the gateway's own rows (what a new page would get), or only this page?
            rows = web.json("GET", "/api/fleet")[1]["rows"]
            behind = {r["name"]: r["state"] for r in rows if r["name"] in preps and r["state"] not in ("SUCCEEDED", "FAILED", "CANCELLED")}
            raise AssertionError(f"{e}; the page showed {page}; the gateway's rows not ended: {dict(list(behind.items())[:10])} "
                                 f"({len(behind)} in all); the gateway: {web.json('GET', '/api/gateway')[1]}") from e
        figures["page_streaming"] = page_figures(browser.execute_script(COLLECT), clicks)
        cpu_after = chromium_cpu(browser.sp_profile)
        figures["page_streaming"]["chromium_cpu_s"] = round(cpu_after["all"] - cpu_before["all"], 1)
        figures["page_streaming"]["renderer_cpu_s"] = round(cpu_after["renderer"] - cpu_before["renderer"], 1)
        figures["gateway_after"] = proc_figures(web.proc.pid)
        screenshot(browser, "fleet-1000")
    SCREENSHOTS.mkdir(exist_ok=True)
    (SCREENSHOTS / "scale-figures.json").write_text(json.dumps(figures, indent=2) + "\n")
    print("\nweb view at 1,000 servers:", json.dumps(figures, indent=2))
