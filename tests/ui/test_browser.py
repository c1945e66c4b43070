"""The web UI in a real headless Chromium, against live `kfp-backend serve` processes with runs made by the
kfp 1.8.22 client: every page opens, a finished run, a failed run and its log, actions, compare; with
authentication on, a token sign-in, the namespace picker, and an action refused for another namespace.
Each page is photographed into test-output/ui-screenshots/.
"""

from __future__ import annotations

import base64
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import requests

from tests.e2e.helpers import kfp_client_for
from tests.e2e.run_checks import wait_for_run
from tests.e2e.servers import live_server
from tests.ui.pipelines import compile_to, failing_pipeline, loop_and_retry, slow_pipeline, train_pipeline

pytestmark = [pytest.mark.e2e, pytest.mark.ui]
WAIT_SECONDS = 20


@dataclass
class World:
    url: str
    experiment_id: str
    pipeline_id: str
    good_runs: list[str]
    failed_run: str


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    """A single-user server (authentication off) with two finished runs and a failed one."""
    workdir = tmp_path_factory.mktemp("ui-single-user")
    with live_server(workdir) as url, kfp_client_for(url, workdir) as client:
        experiment = client.create_experiment("ui-experiment")
        package = compile_to(train_pipeline, workdir / "train.yaml")
        pipeline = client.upload_pipeline(str(package), pipeline_name="ui-train")
        runs = [
            client.run_pipeline(experiment.id, name, pipeline_id=pipeline.id, params=params).id
            for name, params in (("train-high", {"accuracy": 0.91, "epochs": 3}),
                                 ("train-low", {"accuracy": 0.75, "epochs": 5}))
        ]
        failed = client.create_run_from_pipeline_package(
            str(compile_to(failing_pipeline, workdir / "fail.yaml")), {}, run_name="broken-run",
            experiment_name="ui-experiment").run_id
        for run_id in runs:
            assert wait_for_run(client, run_id).run.status == "Succeeded"
        assert wait_for_run(client, failed).run.status == "Failed"
        yield World(url, experiment.id, pipeline.id, runs, failed)


# -- browser helpers ---------------------------------------------------------------------------------------


def wait_for(browser: Any, css: str, text: str | None = None) -> Any:
    from selenium.common.exceptions import StaleElementReferenceException
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    def found(driver: Any) -> Any:
        try:
            for element in driver.find_elements(By.CSS_SELECTOR, css):
                if element.is_displayed() and (text is None or text in element.text):
                    return element
        except StaleElementReferenceException:  # the page script redrew it: look again
            pass
        return False

    described = f"no visible {css!r}" + (f" with {text!r}" if text else "")
    return WebDriverWait(browser, WAIT_SECONDS).until(found, described)


def find(browser: Any, css: str) -> Any:
    from selenium.webdriver.common.by import By

    return browser.find_element(By.CSS_SELECTOR, css)


def click_button(browser: Any, label: str, scope: str = "main") -> None:
    from selenium.webdriver.common.by import By

    for button in browser.find_element(By.CSS_SELECTOR, scope).find_elements(By.CSS_SELECTOR, "button, a.button"):
        if button.is_displayed() and button.text.strip() == label:
            button.click()
            return
    raise AssertionError(f"no button {label!r} on {browser.current_url}")


def shot(browser: Any, folder: Path, name: str) -> None:
    """The whole page (not only the 1280x800 window), as PNG."""
    width, height = browser.execute_script(
        "return [document.documentElement.scrollWidth, document.documentElement.scrollHeight];")
    image = browser.execute_cdp_cmd("Page.captureScreenshot", {
        "format": "png", "captureBeyondViewport": True,
        "clip": {"x": 0, "y": 0, "width": width, "height": min(height, 4000), "scale": 1}})
    (folder / f"{name}.png").write_bytes(base64.b64decode(image["data"]))


def heading(browser: Any) -> str:
    return find(browser, "h1").text


# -- single user -------------------------------------------------------------------------------------------


def test_the_runs_page_lists_runs_with_status_as_text(browser: Any, world: World, screenshots: Path) -> None:
    browser.get(world.url + "/")
    table = wait_for(browser, "table.runs", "train-high")
    assert "Succeeded" in table.text and "Failed" in table.text  # status in words, not only colour
    assert "ui-train" in table.text
    browser.get(world.url + "/runs?metrics=accuracy&sort=metric:accuracy&desc=1")
    rows = wait_for(browser, "table.runs tbody").text.splitlines()
    assert [line.split()[0] for line in rows[:2]] == ["train-high", "train-low"]  # sorted by the metric
    assert "0.91" in rows[0]
    shot(browser, screenshots, "runs")
    browser.get(world.url + "/runs?status=Failed")
    assert "broken-run" in wait_for(browser, "table.runs").text
    assert "train-high" not in find(browser, "table.runs").text
    browser.get(world.url + "/runs?name=low")
    assert "train-low" in wait_for(browser, "table.runs").text and "train-high" not in find(browser, "table.runs").text


def _seconds(duration: str) -> int:
    """A duration as the runs list shows it ("7s", "1m 05s", "2h 00m 03s") in seconds."""
    units = {"h": 3600, "m": 60, "s": 1}
    return sum(int(part[:-1]) * units[part[-1]] for part in duration.split())


def test_the_runs_list_sorts_by_pipeline_and_duration_from_their_headers(browser: Any, world: World) -> None:
    from selenium.webdriver.common.by import By

    browser.get(world.url + "/runs")
    wait_for(browser, "table.runs", "train-high")
    browser.find_element(By.LINK_TEXT, "Pipeline ⇅").click()
    header = wait_for(browser, 'th[aria-sort="descending"]', "Pipeline")
    assert "sort=pipeline_name" in browser.current_url and header.is_displayed()
    rows = find(browser, "table.runs tbody").find_elements(By.TAG_NAME, "tr")
    pipelines = [row.find_elements(By.TAG_NAME, "td")[5].text for row in rows]
    assert pipelines == sorted(pipelines, key=lambda name: name != "-", reverse=True)  # named ones first
    assert pipelines[0] == "ui-train" and pipelines[-1] == "-"  # the package run has no pipeline
    browser.find_element(By.LINK_TEXT, "Duration ⇅").click()
    wait_for(browser, 'th[aria-sort="descending"]', "Duration")
    rows = find(browser, "table.runs tbody").find_elements(By.TAG_NAME, "tr")
    durations = [_seconds(row.find_elements(By.TAG_NAME, "td")[3].text) for row in rows]
    assert durations == sorted(durations, reverse=True) and len(durations) >= 3


def test_a_finished_run_shows_parameters_metrics_manifest_and_its_steps(
    browser: Any, world: World, screenshots: Path
) -> None:
    browser.get(world.url + f"/runs/{world.good_runs[0]}")
    assert "train-high" in heading(browser) and "Succeeded" in heading(browser)
    page = find(browser, "main").text
    assert "accuracy" in page and "0.91" in page and "epochs" in page
    assert find(browser, f'.kfp-graph[data-graph-url="/ui/api/runs/{world.good_runs[0]}/graph"]')
    step = wait_for(browser, "#step-list button", "train")
    step.click()
    panel = wait_for(browser, "#node-panel", "Step train")
    assert "Succeeded" in panel.text
    wait_for(browser, "#node-log", "training for 3 epochs")
    assert "mlpipeline-metrics" in panel.text  # its output artifact, with a download link
    link = find(browser, "#node-panel a[href*='/artifacts/']").get_attribute("href")
    download = requests.get(link, timeout=10)
    assert download.status_code == 200 and download.content[:2] == b"\x1f\x8b"  # the stored .tgz
    click_button(browser, "Preview", "#node-panel")
    assert '"numberValue": 0.91' in wait_for(browser, "#node-panel pre.preview", "accuracy").text
    shot(browser, screenshots, "run")


def test_a_failed_run_shows_its_message_and_the_failed_steps_log(
    browser: Any, world: World, screenshots: Path
) -> None:
    browser.get(world.url + f"/runs/{world.failed_run}")
    assert "Failed" in heading(browser)
    wait_for(browser, "#step-list button", "explode").click()
    panel = wait_for(browser, "#node-panel", "Step explode")
    assert "Failed" in panel.text
    log = wait_for(browser, "#node-log", "about to fail")
    assert "the second line" in log.text
    assert find(browser, "form[action$='/retry'] button").text == "Retry"
    shot(browser, screenshots, "run-failed")


def test_experiments_create_open_archive_and_restore(browser: Any, world: World, screenshots: Path) -> None:
    browser.get(world.url + "/experiments")
    assert "ui-experiment" in wait_for(browser, "table.list").text
    shot(browser, screenshots, "experiments")
    find(browser, "details.card summary").click()
    find(browser, "input[name=name]").send_keys("made-in-the-browser")
    click_button(browser, "Create experiment")
    assert "made-in-the-browser" in wait_for(browser, "h1", "Experiment made-in-the-browser").text
    click_button(browser, "Archive", ".heading")
    browser.switch_to.alert.accept()
    assert "Archived" in wait_for(browser, "h1", "Archived").text
    click_button(browser, "Restore", ".heading")
    wait_for(browser, ".flash", "restored")
    browser.get(world.url + f"/experiments/{world.experiment_id}")
    assert "train-high" in wait_for(browser, "table.runs").text
    shot(browser, screenshots, "experiment")


def test_a_run_created_from_a_pipeline_with_its_default_parameters(
    browser: Any, world: World, screenshots: Path
) -> None:
    browser.get(world.url + "/pipelines")
    wait_for(browser, "a", "ui-train").click()
    assert "Pipeline ui-train" in heading(browser)
    assert find(browser, ".kfp-graph[data-graph-url^='/ui/api/pipeline-versions/']")
    assert "accuracy" in find(browser, "main").text
    shot(browser, screenshots, "pipeline")
    click_button(browser, "Create run", ".heading")
    assert find(browser, "input[name='param.accuracy']").get_attribute("value") == "0.5"  # the default
    assert find(browser, "input[name='param.epochs']").get_attribute("value") == "3"
    epochs = find(browser, "input[name='param.epochs']")
    epochs.clear()
    epochs.send_keys("7")
    shot(browser, screenshots, "run-new")
    click_button(browser, "Start run")
    wait_for(browser, "h1", "Run of ui-train")
    assert "7" in find(browser, "main").text
    browser.get(world.url + "/pipelines")
    shot(browser, screenshots, "pipelines")


def test_a_pipeline_uploaded_through_its_form(browser: Any, world: World, tmp_path: Path) -> None:
    package = compile_to(failing_pipeline, tmp_path / "uploaded.yaml")
    browser.get(world.url + "/pipelines")
    find(browser, "details.card summary").click()
    find(browser, "input[type=file][name=file]").send_keys(str(package))
    find(browser, "input[name=name]").send_keys("uploaded-in-the-browser")
    click_button(browser, "Upload")
    assert "Pipeline uploaded-in-the-browser" in wait_for(browser, "h1", "uploaded-in-the-browser").text
    assert "explode" in find(browser, "pre.yaml").get_attribute("textContent")


def test_a_kfp_v2_run(browser: Any, world: World) -> None:
    """A KFP v2 pipeline spec (IR) run: its steps, their outputs and artifacts, the same way."""
    from tests.ir_pipelines import artifact_passing, manifest

    created = requests.post(world.url + "/apis/v1beta1/runs", json={
        "name": "ir-run", "pipeline_spec": {"workflow_manifest": manifest(artifact_passing())}}, timeout=30)
    assert created.status_code == 200, created.text
    run_id = created.json()["run"]["id"]
    browser.get(world.url + f"/runs/{run_id}")
    wait_for(browser, "h1", "Succeeded")
    wait_for(browser, "#step-list button", "write").click()
    panel = wait_for(browser, "#node-panel", "Step write")
    wait_for(browser, "#node-panel a[href*='/artifacts/']")
    assert "Succeeded" in panel.text


def test_clone_prefills_the_runs_parameters(browser: Any, world: World) -> None:
    browser.get(world.url + f"/runs/{world.good_runs[1]}")
    click_button(browser, "Clone", ".heading")
    assert find(browser, "input[name=name]").get_attribute("value") == "Clone of train-low"
    assert find(browser, "input[name='param.accuracy']").get_attribute("value") == "0.75"
    assert find(browser, "input[name='param.epochs']").get_attribute("value") == "5"


def test_compare_two_runs(browser: Any, world: World, screenshots: Path) -> None:
    browser.get(world.url + "/runs")
    for run_id in world.good_runs:
        find(browser, f"input[name=run][value='{run_id}']").click()
    click_button(browser, "Compare selected")
    wait_for(browser, "h1", "Compare 2 runs")
    differing = [row.text for row in browser.find_elements("css selector", "tr.differs")]
    assert any(row.startswith("accuracy") for row in differing) and any(row.startswith("epochs") for row in differing)
    assert len(browser.find_elements("css selector", "svg.chart rect.bar")) == 2
    shot(browser, screenshots, "compare")


def test_archive_and_restore_a_run_from_the_list(browser: Any, world: World) -> None:
    browser.get(world.url + "/runs")
    find(browser, f"input[name=run][value='{world.good_runs[1]}']").click()
    click_button(browser, "Archive selected")
    wait_for(browser, ".flash", "Archive: 1 of 1")
    assert "train-low" not in find(browser, "table.runs").text
    browser.get(world.url + "/runs?archived=1")
    find(browser, f"input[name=run][value='{world.good_runs[1]}']").click()
    click_button(browser, "Restore selected")
    wait_for(browser, ".flash", "Unarchive: 1 of 1")


def test_a_recurring_run_with_its_next_fire_times(browser: Any, world: World, screenshots: Path) -> None:
    browser.get(world.url + f"/recurring-runs/new?pipeline_id={world.pipeline_id}&experiment_id={world.experiment_id}")
    cron = wait_for(browser, "input[name=cron]")
    cron.clear()
    cron.send_keys("0 30 4 * * *")
    # Refreshed as the schedule is typed: five times, each at 04:30:00.
    times = wait_for(browser, "#fire-times", "04:30:00 UTC").text.splitlines()
    assert len(times) == 5 and all(t.endswith("04:30:00 UTC") for t in times), times
    cron.send_keys(" nonsense")
    assert "invalid" in wait_for(browser, "#preview-error").text
    cron.clear()
    cron.send_keys("0 30 4 * * *")
    shot(browser, screenshots, "recurring-run-new")
    find(browser, "input[name=name]").clear()
    find(browser, "input[name=name]").send_keys("nightly")
    click_button(browser, "Create recurring run")
    assert "Enabled" in wait_for(browser, "h1", "Recurring run nightly").text
    click_button(browser, "Disable", ".heading")
    wait_for(browser, "h1", "Disabled")
    shot(browser, screenshots, "recurring-run")
    browser.get(world.url + "/recurring-runs")
    assert "nightly" in wait_for(browser, "table.list").text
    shot(browser, screenshots, "recurring-runs")


def test_a_running_runs_steps_and_log_update_without_a_reload(
    browser: Any, world: World, tmp_path: Path, screenshots: Path
) -> None:
    with kfp_client_for(world.url, tmp_path) as client:
        run_id = client.create_run_from_pipeline_package(
            str(compile_to(slow_pipeline, tmp_path / "slow.yaml")), {}, run_name="slow-run",
            experiment_name="ui-experiment").run_id
        browser.get(world.url + f"/runs/{run_id}")
        wait_for(browser, "#step-list button", "Running").click()
        log = wait_for(browser, "#node-log", "first line")
        assert "second line" not in log.text
        shot(browser, screenshots, "run-running")
        wait_for(browser, "#node-log", "second line")  # followed, no reload
        assert wait_for_run(client, run_id).run.status == "Succeeded"
    # When the run ends the page shows its final state, and the same step again (#node=<id>).
    assert "Succeeded" in wait_for(browser, "h1", "Succeeded").text
    wait_for(browser, "#node-panel", "Step slow")


def test_a_loop_and_a_retried_step(browser: Any, world: World, tmp_path: Path, screenshots: Path) -> None:
    marker = f"ui-retry-{uuid.uuid4().hex}"  # the flaky step's attempt counter, /var/tmp/<marker>
    with kfp_client_for(world.url, tmp_path) as client:
        run_id = client.create_run_from_pipeline_package(
            str(compile_to(loop_and_retry(marker), tmp_path / "loop.yaml")), {}, run_name="loop-run",
            experiment_name="ui-experiment").run_id
        assert wait_for_run(client, run_id).run.status == "Succeeded"
    browser.get(world.url + f"/runs/{run_id}")
    steps = wait_for(browser, "#step-list", "flaky").text
    assert steps.count("item") == 3  # one step per loop item
    attempts = [b.text for b in browser.find_elements("css selector", "#step-list button") if "flaky" in b.text]
    assert any("Failed" in a for a in attempts) and any("Succeeded" in a for a in attempts), attempts
    shot(browser, screenshots, "run-loop-retry")
    Path("/var/tmp", marker).unlink(missing_ok=True)


def test_the_keyboard_reaches_everything(browser: Any, world: World) -> None:
    from selenium.webdriver.common.keys import Keys

    browser.get(world.url + f"/runs/{world.failed_run}")
    wait_for(browser, "#step-list button", "explode")
    body = find(browser, "body")
    body.send_keys(Keys.TAB)
    active = browser.switch_to.active_element
    assert active.text == "Skip to content"
    outline = browser.execute_script("return getComputedStyle(arguments[0]).outlineStyle", active)
    assert outline != "none"  # the focus is visible
    # Tab on to the step list's button and open the step with Enter: no mouse needed.
    for _ in range(40):
        browser.switch_to.active_element.send_keys(Keys.TAB)
        if browser.switch_to.active_element.get_attribute("data-node-id"):
            break
    browser.switch_to.active_element.send_keys(Keys.ENTER)
    wait_for(browser, "#node-log", "about to fail")


def test_a_page_of_a_missing_run_says_so(browser: Any, world: World) -> None:
    browser.get(world.url + "/runs/no-such-run")
    assert "Not found" in heading(browser)
    assert "no-such-run" in find(browser, "#error-message").text


def test_a_form_without_its_csrf_token_is_refused(world: World) -> None:
    response = requests.post(world.url + "/experiments", data={"name": "forged"}, timeout=10)
    assert response.status_code == 403 and "CSRF" in response.text


# -- multi user --------------------------------------------------------------------------------------------


@dataclass
class Tenants:
    url: str
    token_a: str
    token_b: str
    run_a: str
    server: Any  # tests.e2e.test_kfp_client_auth.Server: the token CLI on its database


@pytest.fixture(scope="module")
def tenants(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Tenants]:
    """A server with authentication on; team-a has a finished run, team-b's token sees none of it."""
    import kfp

    from tests.e2e.test_kfp_client_auth import Server

    workdir = tmp_path_factory.mktemp("ui-multi-user")
    with live_server(workdir, env={"KFP_BACKEND_AUTH": "required"}) as url:
        server = Server(url, workdir / "data", None)
        token_a, _ = server.new_token("alice", "team-a")
        token_b, _ = server.new_token("bob", "team-b")
        with pytest.MonkeyPatch.context() as patch:
            patch.setattr(kfp.Client, "LOCAL_KFP_CONTEXT", str(workdir / "context.json"))
            client = kfp.Client(host=url, existing_token=token_a, namespace="team-a")
            experiment = client.create_experiment("team-a-experiment")
            package = compile_to(train_pipeline, workdir / "train.yaml")
            run = client.create_run_from_pipeline_package(
                str(package), {"accuracy": 0.6}, run_name="alice-run", experiment_name=experiment.name,
                namespace="team-a")
            assert wait_for_run(client, run.run_id).run.status == "Succeeded"
        yield Tenants(url, token_a, token_b, run.run_id, server)


def sign_in(browser: Any, url: str, token: str) -> None:
    find(browser, "#token").send_keys(token)
    click_button(browser, "Sign in")


def test_pages_ask_for_a_token_then_show_the_namespaces_runs(
    browser: Any, tenants: Tenants, screenshots: Path
) -> None:
    assert requests.get(tenants.url + "/apis/v1beta1/runs", timeout=10).status_code == 401  # the API still wants one
    browser.get(tenants.url + f"/runs/{tenants.run_a}")
    assert "/signin" in browser.current_url
    wait_for(browser, "#token")
    shot(browser, screenshots, "signin")
    sign_in(browser, tenants.url, "kfpb_" + "x" * 43)
    assert "not valid" in wait_for(browser, ".flash.error").text
    sign_in(browser, tenants.url, tenants.token_a)
    assert "alice-run" in wait_for(browser, "h1", "alice-run").text  # back where the person was going
    # The graph's JSON is authorized by the same session: the run's steps are drawn.
    assert "Succeeded" in wait_for(browser, "#run-graph g.kfp-node", "train").text
    cookie = browser.get_cookie("kfp_ui_session")
    assert cookie["httpOnly"] is True and cookie["sameSite"] == "Strict"
    assert tenants.token_a not in cookie["value"]  # the token itself is not in the cookie
    browser.get(tenants.url + "/runs")
    assert "alice-run" in wait_for(browser, "table.runs").text
    assert "Signed in as alice" in find(browser, "header").text
    assert find(browser, "#ns option[selected]").text == "team-a"
    shot(browser, screenshots, "runs-signed-in")
    click_button(browser, "Sign out", "header")
    wait_for(browser, "#token")
    browser.get(tenants.url + "/runs")
    assert "/signin" in browser.current_url


def test_another_namespaces_run_is_refused_with_a_clear_message(
    browser: Any, tenants: Tenants, screenshots: Path
) -> None:
    browser.get(tenants.url + "/signin")
    sign_in(browser, tenants.url, tenants.token_b)
    assert "alice-run" not in wait_for(browser, "table.runs").text  # team-b's list
    browser.get(tenants.url + f"/runs/{tenants.run_a}")
    assert "Not allowed" in heading(browser)
    message = find(browser, "#error-message").text
    assert "bob" in message and "team-a" in message
    # An action, posted as the page's own forms do (with the CSRF token): refused the same way.
    browser.execute_script(
        """const form = document.createElement('form'); form.method = 'post'; form.action = arguments[0];
        const token = document.createElement('input'); token.name = 'csrf_token';
        token.value = document.querySelector('meta[name=csrf-token]').content; form.appendChild(token);
        document.body.appendChild(form); form.submit();""",
        f"/runs/{tenants.run_a}/archive")
    wait_for(browser, "h1", "Not allowed")
    assert "team-a" in find(browser, "#error-message").text
    shot(browser, screenshots, "refused")
    # The namespace picker offers only the token's namespaces.
    browser.get(tenants.url + "/runs")
    assert [o.text for o in browser.find_elements("css selector", "#ns option")] == ["team-b"]


def test_a_session_ends_when_its_token_is_revoked(browser: Any, tenants: Tenants) -> None:
    token, token_id = tenants.server.new_token("carol", "team-b")
    browser.get(tenants.url + "/signin")
    sign_in(browser, tenants.url, token)
    assert "Signed in as carol" in wait_for(browser, "header", "carol").text
    tenants.server.token_cli("revoke", token_id)
    browser.get(tenants.url + "/runs")
    assert "/signin" in browser.current_url
