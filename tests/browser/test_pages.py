"""The web view in a real headless Chromium, against a real service preparing simulated servers.

Proves: the fleet view updates live from the gateway's one event stream (cells seen RUNNING, then
SUCCEEDED, without reloading); a server's log follows; a failed step is shown with its exit code,
reason and highlighted error lines, and Retry recovers it; Cancel stops a running one; the API's
refusals appear as messages in the page; escape sequences a server prints are shown, not obeyed.
It does not prove how the page looks in other browsers, or on a real network.
"""

from __future__ import annotations

import pytest
from browser.conftest import screenshot, wait_until
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import Select

from conftest import DEBIAN_12, SIM_USER, register, wait_step
from harness.targets import behave, free_port, simulated_host
from serverprep.clients.types import STEP_STATE_RUNNING

pytestmark = pytest.mark.sshd

#: Records every change of a fleet cell's state, with the time, as the page makes it (a MutationObserver).
RECORD_CELLS = """
window.__cells = [];
new MutationObserver((records) => {
  for (const r of records) {
    const td = r.target;
    if (!td.classList || !td.classList.contains("cell")) continue;
    const tr = td.closest(".frow");
    window.__cells.push([tr.dataset.name, [...tr.querySelectorAll(".cell")].indexOf(td), td.dataset.state, performance.now()]);
  }
}).observe(document.getElementById("fleet-rows"), {attributes: true, attributeFilter: ["data-state"], subtree: true});
window.__loaded = performance.timeOrigin;
"""


def row_state(driver, name: str) -> str:  # type: ignore[no-untyped-def]
    return driver.execute_script("const tr = document.querySelector(`#fleet-rows .frow[data-name='${arguments[0]}']`);"
                                 "return tr ? tr.dataset.state : '';", name)


def cells(driver, name: str) -> list[str]:  # type: ignore[no-untyped-def]
    return driver.execute_script("return [...document.querySelectorAll(`#fleet-rows .frow[data-name='${arguments[0]}'] .cell`)]"
                                 ".map(td => td.dataset.state);", name)


def step_item(driver, step: str):  # type: ignore[no-untyped-def]
    return driver.find_element(By.CSS_SELECTOR, f"#stepper li[data-step='{step}']")


def messages(driver) -> list[str]:  # type: ignore[no-untyped-def]
    return [m.text for m in driver.find_elements(By.CSS_SELECTOR, "#messages .msg")]


def prepare_in_page(driver, web, name: str) -> None:  # type: ignore[no-untyped-def]
    """Open a server's view and press Prepare with the distro's Docker, as a person would."""
    driver.get(web.url + f"#/server/{name}")
    wait_until(lambda: driver.find_element(By.ID, "server-name").text == name, what="the server view")
    Select(driver.find_element(By.ID, "docker-source")).select_by_value("distro")
    driver.find_element(By.ID, "prepare").click()


def test_fleet_cells_turn_from_running_to_succeeded_live(page, client, sim, web):
    """Eight servers in every state the fleet can show; four of them are seen RUNNING, then SUCCEEDED, live."""
    names = ["web01", "web02", "web03", "web04"]
    for name in [*names, "web06", "spare01"]:
        register(client, sim, name)
    client.create_server("edge-down", host="127.0.0.1", port=free_port(), user="admin", password="x", host_key=sim.host_key)
    with simulated_host(SIM_USER, DEBIAN_12) as broken:
        behave(broken, "systemctl", 'case "$1" in is-enabled|is-active) exit 3;; esac')
        behave(broken, "apt-get", 'case "$*" in *install*) echo "E: Unable to locate package ca-certificates" >&2; exit 100;; esac')
        register(client, broken, "web05")
        wait_until(lambda: len(page.find_elements(By.CSS_SELECTOR, "#fleet-rows .frow")) == 8, what="8 rows")
        page.execute_script(RECORD_CELLS)
        loaded = page.execute_script("return window.__loaded")
        behave(sim, "apt-get", "sleep 2")
        for name in ("edge-down", "web05", "web06"):
            client.prepare(name, docker_source="distro")
        preps = {name: client.prepare(name, docker_source="distro").id for name in names}
        wait_step(client, "web06", "update_packages", STEP_STATE_RUNNING)
        client.cancel("web06")
        wait_until(lambda: all(cells(page, n)[1] == "RUNNING" for n in names) or all(cells(page, n)[2] == "RUNNING" for n in names),
                   what="a step RUNNING on web01-web04")
        wait_until(lambda: row_state(page, "web05") == "FAILED" and row_state(page, "web06") == "CANCELLED"
                   and row_state(page, "edge-down") == "FAILED", what="web05 FAILED, web06 CANCELLED")
        assert page.find_element(By.CSS_SELECTOR, "#fleet-rows .frow[data-name='web01'] .cell.s-RUNNING > i")  # the spinner's cell
        screenshot(page, "fleet")
        wait_until(lambda: all(row_state(page, n) == "SUCCEEDED" for n in names), timeout=90, what="web01-web04 SUCCEEDED")
    assert page.execute_script("return window.__loaded") == loaded  # the same page all along: no reload
    for name in names:
        assert set(cells(page, name)) <= {"SUCCEEDED", "SKIPPED"}, (name, cells(page, name))
        seen = [s for n, i, s, _ in page.execute_script("return window.__cells") if n == name and i == 1]
        assert "RUNNING" in seen and seen[-1] == "SUCCEEDED" and seen.index("RUNNING") < len(seen) - 1, (name, seen)
        assert client.status(name, preps[name]).state == 3  # and the service agrees
    assert cells(page, "web05")[:3] == ["SUCCEEDED", "SUCCEEDED", "FAILED"] and cells(page, "web06")[1] == "CANCELLED"
    reason = page.find_element(By.CSS_SELECTOR, "#fleet-rows .frow[data-name='edge-down'] .reason")
    wait_until(lambda: reason.text == "CONNECTION_REFUSED", what="the failure's reason in the row")
    # Counts per state at the top, and the filter they make.
    counts = {b.get_attribute("data-state"): b.find_element(By.CSS_SELECTOR, ".n").text
              for b in page.find_elements(By.CSS_SELECTOR, "#counts button")}
    assert counts == {"ALL": "8", "RUNNING": "0", "PENDING": "0", "FAILED": "2", "CANCELLED": "1", "SUCCEEDED": "4",
                      "NONE": "1"}, counts
    row = page.find_element(By.CSS_SELECTOR, "#fleet-rows .frow[data-name='web01']")
    assert "Debian GNU/Linux 12" in row.find_element(By.CSS_SELECTOR, ".os").text
    assert row.find_element(By.CSS_SELECTOR, ".elapsed").text.endswith("s")
    screenshot(page, "fleet-done")
    page.find_element(By.CSS_SELECTOR, "#counts button[data-state='FAILED']").click()
    visible = [r.get_attribute("data-name") for r in page.find_elements(By.CSS_SELECTOR, "#fleet-rows .frow") if r.is_displayed()]
    assert visible == ["edge-down", "web05"]
    page.find_element(By.CSS_SELECTOR, "#counts button[data-state='ALL']").click()
    # A row opens its server.
    page.find_element(By.CSS_SELECTOR, "#fleet-rows .frow[data-name='web05'] .os").click()
    wait_until(lambda: page.find_element(By.ID, "server-name").text == "web05", what="web05's view")


def test_server_view_follows_the_log_and_shows_escapes_not_obeys_them(page, client, sim, web):
    register(client, sim, "app1")
    behave(sim, "apt-get", 'case "$*" in *update) i=1; while [ $i -le 60 ]; do echo "Get:$i http://deb.example/debian '
                           'bookworm/main pkg$i"; i=$((i+1)); sleep 0.05; done; '
                           'printf "evil \\033]52;c;cm0gLXJmIH4K\\007 and \\033[2J title \\033]0;owned\\007\\n";; esac')
    prepare_in_page(page, web, "app1")
    log = page.find_element(By.ID, "log")
    counts = []
    wait_until(lambda: len(log.find_elements(By.CSS_SELECTOR, "div.l-STDOUT")) >= 5, what="log lines")
    while len(counts) < 4:
        counts.append(len(page.find_elements(By.CSS_SELECTOR, "#log > div")))
        at_end = page.execute_script("const l = arguments[0]; return l.scrollHeight - l.scrollTop - l.clientHeight < 8;", log)
        assert at_end  # following: the newest line is in view
        page.implicitly_wait(0)
        wait_until(lambda n=counts[-1]: len(page.find_elements(By.CSS_SELECTOR, "#log > div")) > n, what="more lines")
    assert counts == sorted(counts) and counts[-1] > counts[0]  # it grew while we watched, without a reload
    wait_until(lambda: page.find_element(By.CSS_SELECTOR, "#prep-summary .state-label").text == "succeeded", timeout=60,
               what="succeeded")
    screenshot(page, "server-succeeded")
    evil = wait_until(lambda: [d for d in page.find_elements(By.CSS_SELECTOR, "#log div.l-STDOUT") if "evil" in d.text],
                      what="the escape line")[0]
    assert "^[]52;c;cm0gLXJmIH4K^G" in evil.text and "^[[2J" in evil.text and "^[]0;owned^G" in evil.text
    assert len(evil.find_elements(By.CSS_SELECTOR, ".ctl")) == 5  # each control character marked
    assert "\x1b" not in page.execute_script("return document.getElementById('log').textContent")
    assert page.title == "app1 · serverprep"
    step = step_item(page, "update_packages")
    assert "exit 0" in step.find_element(By.CSS_SELECTOR, ".meta").text
    assert step.get_attribute("data-state") == "SUCCEEDED"


def test_failed_step_is_shown_then_retry_recovers_it(page, client, sim, web):
    register(client, sim, "db1")
    behave(sim, "apt-get", 'case "$*" in *install*ca-certificates*) echo "Reading package lists..."; '
                           'echo "E: Unable to locate package ca-certificates" >&2; '
                           'echo "E: Sub-process /usr/bin/dpkg returned an error code (1)" >&2; exit 100;; esac')
    prepare_in_page(page, web, "db1")
    failed = wait_until(lambda: (li := step_item(page, "install_dependencies")).get_attribute("data-state") == "FAILED" and li,
                        timeout=60, what="install_dependencies FAILED")
    assert "exit 100" in failed.find_element(By.CSS_SELECTOR, ".meta").text
    assert step_item(page, "update_packages").get_attribute("data-state") == "SUCCEEDED"
    assert step_item(page, "install_docker").get_attribute("data-state") == "PENDING"
    box = page.find_element(By.ID, "failure")
    wait_until(lambda: box.is_displayed() and "STEP_FAILED" in box.text, what="the failure box")
    highlighted = wait_until(lambda: page.find_elements(By.CSS_SELECTOR, "#log .err-line"), what="highlighted lines")
    text = "\n".join(h.text for h in highlighted)
    assert "E: Unable to locate package ca-certificates" in text and "returned an error code (1)" in text
    assert all("install_dependencies" in h.text for h in highlighted)  # only the failed step's lines
    assert not page.find_element(By.ID, "retry").get_attribute("disabled")
    assert page.find_element(By.ID, "cancel").get_attribute("disabled")
    screenshot(page, "server-failed")
    # Fixed on the server; Retry resumes at the failed step.
    behave(sim, "apt-get", "sleep 1.5")
    page.find_element(By.ID, "retry").click()
    wait_until(lambda: step_item(page, "install_dependencies").get_attribute("data-state") == "RUNNING", what="retry running")
    # Prepare while it runs: the API refuses, and the page says so (reason and message), no alert.
    page.find_element(By.ID, "prepare").click()
    msg = wait_until(lambda: [m for m in messages(page) if "PREPARATION_ACTIVE" in m], what="the API's refusal")[0]
    assert "db1" in msg or "active" in msg.lower()
    assert page.execute_script("return typeof window.alert") == "function"  # nothing replaced it; no alert was open:
    assert page.switch_to.active_element is not None
    wait_until(lambda: page.find_element(By.CSS_SELECTOR, "#prep-summary .state-label").text == "succeeded", timeout=60,
               what="succeeded after the retry")
    assert step_item(page, "install_dependencies").get_attribute("data-state") == "SUCCEEDED"
    assert not page.find_element(By.ID, "failure").is_displayed()
    assert "attempt 2" in page.find_element(By.ID, "prep-summary").text
    screenshot(page, "server-retried")


def test_cancel_a_running_preparation(page, client, sim, web):
    register(client, sim, "cache1")
    behave(sim, "apt-get", "sleep 60")
    prep = client.prepare("cache1", docker_source="distro")
    wait_step(client, "cache1", "update_packages", STEP_STATE_RUNNING)
    page.get(web.url + "#/server/cache1")
    wait_until(lambda: step_item(page, "update_packages").get_attribute("data-state") == "RUNNING", what="running")
    cancel = page.find_element(By.ID, "cancel")
    assert cancel.is_enabled()
    cancel.click()
    wait_until(lambda: page.find_element(By.CSS_SELECTOR, "#prep-summary .state-label").text == "cancelled", timeout=40,
               what="cancelled")
    assert step_item(page, "update_packages").get_attribute("data-state") == "CANCELLED"
    assert client.status("cache1", prep.id).state == 5  # CANCELLED in the service too
    assert any("cancel" in m for m in messages(page))
    screenshot(page, "server-cancelled")
    page.find_element(By.CSS_SELECTOR, "a.back").click()
    wait_until(lambda: row_state(page, "cache1") == "CANCELLED", what="the fleet row CANCELLED")
    assert cells(page, "cache1")[1] == "CANCELLED"
