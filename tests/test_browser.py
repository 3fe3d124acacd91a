"""JupyterLab in a real browser: `make lab`, headless Chromium, one chapter's notebooks run top to bottom.

What README promises a learner, checked the way a learner meets it: `make lab` serves the course, a
notebook opens, the **Course (CPU)** kernel is picked from JupyterLab's kernel dialog, Run All runs
every cell, and then

- the kernel that ran is course-cpu (session and toolbar),
- no cell shows a traceback (an error output, or one printed on stderr), every code cell ran,
- each exercise prints exactly one check line: ❌ in the exercise notebook, ✅ in the lesson,
  counted against the exercises of the chapter's source (`pipeline.exercise_spans`),
- every figure is an <img> that loaded, as many as the notebook's image outputs,
- the widget explorer redraws when its slider moves with the keyboard (its figure changes).

A second test plants a raising cell in a copy of a notebook (inside the served folder, removed
afterwards) and shows the same assertion reports its traceback.

Needs Debian's Chromium and Playwright's Python package (Playwright cannot download its own browsers
here): `apt-get install chromium fonts-noto-color-emoji`, then `make setup`. Without them the tests
are skipped with that message; under CI=true (where .ci/run installs both) they fail instead.

Files: a screenshot of each notebook after a passing run goes to tests/.artifacts/browser/ (git-ignored);
on a failure, tests/.artifacts/browser/FAILED-<notebook>/ holds a screenshot, the page's text, the
notebook's outputs as JupyterLab holds them and the server's log, and the failure message names it.
JupyterLab runs with its own settings (autosave off, so nothing a test runs is written back; every
cell rendered, so the page holds every output), a fresh workspace per notebook, and the test fails if
the server saved any file.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import urllib.request
import uuid
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import nbformat
import pytest

from conftest import record_notebook_time
from course_utils import config
from course_utils.checks import FAIL_MARK, LINE_PATTERN, PASS_MARK
from course_utils.tools import pipeline

try:
    from playwright.sync_api import Error as PlaywrightError
    from playwright.sync_api import sync_playwright
except ImportError:  # not installed: the tests skip (fail under CI) with the message below
    sync_playwright = None
    PlaywrightError = Exception

pytestmark = pytest.mark.slow

CHROMIUM = Path("/usr/bin/chromium")
HOW_TO_ENABLE = ("to run the browser tests: `apt-get install chromium fonts-noto-color-emoji` "
                 "(Debian's Chromium and an emoji font), then `make setup` (Playwright)")
ARTIFACTS = config.REPO_ROOT / "tests" / ".artifacts" / "browser"
KERNEL_LABEL = "Course (CPU)"  # the display name `make setup` gives config.CPU_KERNEL; README names it
CHAPTER = pipeline.find_chapter("02")  # the smallest chapter with a slider explorer: ~25 s per notebook
RUN_TIMEOUT_S = 300  # one notebook's Run All; about 25 s alone, more beside nbval under `make test`
ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")


def missing_requirement() -> str | None:
    if sync_playwright is None:
        return "the playwright package is not installed"
    if not CHROMIUM.exists():
        return f"{CHROMIUM} is not installed"
    return None


def require_browser() -> None:
    missing = missing_requirement()
    if missing is None:
        return
    if os.environ.get("CI") == "true":  # .ci/run installs Chromium: a skip there would hide a broken install
        pytest.fail(f"{missing}; {HOW_TO_ENABLE}", pytrace=False)
    pytest.skip(f"{missing}; {HOW_TO_ENABLE}")


# ------------------------------------------------------------------------------------------------
# JupyterLab, started as README says
# ------------------------------------------------------------------------------------------------

# JupyterLab's user settings for the test server (JUPYTERLAB_SETTINGS_DIR): never write a notebook back,
# render every cell (a windowed notebook leaves off-screen outputs out of the page), no news prompt.
LAB_SETTINGS = {
    "@jupyterlab/docmanager-extension/plugin": {"autosave": False},
    "@jupyterlab/notebook-extension/tracker": {"windowingMode": "none"},
    "@jupyterlab/apputils-extension/notification": {"fetchNews": "false", "checkForUpdates": False},
}


@dataclass
class Lab:
    url: str
    token: str
    log: Path

    def api(self, path: str, method: str = "GET"):
        request = urllib.request.Request(f"{self.url}{path}?token={self.token}", method=method)
        with urllib.request.urlopen(request, timeout=10) as response:
            body = response.read()
        return json.loads(body) if body else None

    def saved_files(self) -> list[str]:
        return [line for line in self.log.read_text(errors="replace").splitlines() if "Saving file at" in line]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    """`make lab` from the repository root on a free port with a token; shut down however the tests end."""
    require_browser()
    home = tmp_path_factory.mktemp("lab")
    for plugin, values in LAB_SETTINGS.items():
        path = home / "settings" / f"{plugin}.jupyterlab-settings"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(values))
    port, token = free_port(), uuid.uuid4().hex
    args = " ".join([
        "--no-browser", "--ip=127.0.0.1", f"--port={port}", "--ServerApp.port_retries=0",
        f"--IdentityProvider.token={token}",
        "--expose-app-in-browser",  # window.jupyterapp: the notebook model and the Run All command
        "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate",
    ])
    env = dict(os.environ, MAKEFLAGS="", JUPYTER_RUNTIME_DIR=str(home / "runtime"),
               JUPYTERLAB_SETTINGS_DIR=str(home / "settings"), JUPYTERLAB_WORKSPACES_DIR=str(home / "workspaces"))
    log = home / "lab.log"
    with open(log, "wb") as log_file:
        server = subprocess.Popen(["make", "-s", "lab", f"LAB_ARGS={args}"], cwd=config.REPO_ROOT, env=env,
                                  stdout=log_file, stderr=subprocess.STDOUT, start_new_session=True)
    served = Lab(f"http://127.0.0.1:{port}", token, log)
    try:
        deadline = time.monotonic() + 180  # `make lab` first runs `make setup` when requirements changed
        while True:
            try:
                served.api("/api/status")
                break
            except OSError:
                if server.poll() is not None or time.monotonic() > deadline:
                    tail = "\n".join(log.read_text(errors="replace").splitlines()[-30:])
                    pytest.fail(f"`make lab` did not serve JupyterLab (exit code {server.poll()}):\n{tail}")
                time.sleep(0.5)
        yield served
    finally:
        os.killpg(server.pid, signal.SIGTERM)  # the server shuts its kernels down on SIGTERM
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(server.pid, signal.SIGKILL)
            server.wait()


@pytest.fixture(scope="module")
def browser(lab):
    args = ["--disable-gpu", "--disable-background-networking", "--disable-dev-shm-usage"]
    if os.geteuid() == 0:
        args.append("--no-sandbox")  # Chromium's sandbox refuses to run as root
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=str(CHROMIUM), args=args)
        yield chromium
        chromium.close()


# ------------------------------------------------------------------------------------------------
# Driving a notebook
# ------------------------------------------------------------------------------------------------

# Each takes the notebook's path; window.jupyterapp exists because of --expose-app-in-browser.
JS_PANEL = "(path) => Array.from(window.jupyterapp.shell.widgets('main')).find(w => w.context && w.context.path === path)"

JS_OPENED = f"""(path) => {{
    if (!window.jupyterapp) return null;
    const dialog = document.querySelector('.jp-Dialog');
    if (dialog) return {{dialog: dialog.innerText}};
    const panel = ({JS_PANEL})(path);
    if (!panel || !panel.context.isReady || !panel.sessionContext.isReady) return null;
    return {{id: panel.id}};
}}"""

JS_KERNEL = f"""(path) => {{
    const session = ({JS_PANEL})(path).sessionContext;
    const kernel = session.session && session.session.kernel;
    return kernel ? {{name: kernel.name, status: kernel.status, connection: kernel.connectionStatus}} : null;
}}"""

JS_RUN_ALL = f"""(path) => {{
    const app = window.jupyterapp, panel = ({JS_PANEL})(path);
    app.shell.activateById(panel.id);
    window.__courseRun = null;
    app.commands.execute('notebook:run-all-cells').then(
        ok => {{ window.__courseRun = {{ok: ok}}; }}, err => {{ window.__courseRun = {{error: String(err)}}; }});
}}"""

# The notebook as JupyterLab holds it: every cell's source, execution count and outputs (images as sizes).
JS_MODEL = f"""(path) => ({JS_PANEL})(path).content.widgets.map(cell => {{
    const model = cell.model, code = model.type === 'code';
    const outputs = code ? model.outputs.toJSON() : [];
    for (const out of outputs) {{
        if (out.data && out.data['image/png']) out.data['image/png'] = `<${{out.data['image/png'].length}} base64 characters>`;
    }}
    return {{type: model.type, source: model.sharedModel.getSource(),
             execution_count: code ? model.executionCount : null, outputs: outputs}};
}})"""

# What the page shows: the toolbar's kernel name, the printed text and the images of the output areas
# (those inside widgets left out: they belong to the explorer).
JS_RENDERED = """(id) => {
    const root = document.getElementById(id);
    const outputs = Array.from(root.querySelectorAll('.jp-OutputArea-output')).filter(e => !e.closest('.jupyter-widgets'));
    const images = outputs.filter(e => e.getAttribute('data-mime-type') === 'image/png').flatMap(e => Array.from(e.querySelectorAll('img')));
    return {
        kernel_label: root.querySelector('.jp-Toolbar-kernelName').innerText.trim(),
        stdout: outputs.filter(e => e.getAttribute('data-mime-type') === 'application/vnd.jupyter.stdout').map(e => e.innerText),
        images: images.length,
        broken_images: images.filter(img => !(img.complete && img.naturalWidth > 0)).length,
    };
}"""


@dataclass
class NotebookRun:
    """One notebook after Run All in the browser: what the kernel reported and what the page shows."""

    path: str
    kernel: str  # the session's kernel name, from the server
    kernel_label: str  # the kernel name in the notebook's toolbar
    cells: list[dict]  # JupyterLab's model: type, source, execution_count, outputs
    stdout: list[str]  # the rendered stdout outputs' text
    images: int  # <img> elements of image outputs
    broken_images: int  # of which not loaded
    seconds: float  # Run All, wall clock


def open_notebook(page, lab: Lab, path: str):
    """Open `path` in a fresh workspace; return the notebook panel's locator. Fails on a load error dialog."""
    page.goto(f"{lab.url}/lab/workspaces/test-{uuid.uuid4().hex[:8]}/tree/{path}?token={lab.token}")
    state = page.wait_for_function(JS_OPENED, arg=path, timeout=90_000, polling=250).json_value()
    if "dialog" in state:
        raise AssertionError(f"JupyterLab did not open {path}; it showed this dialog:\n{state['dialog']}")
    return page.locator(f"[id='{state['id']}']")


def wait_for_kernel(page, path: str, name: str | None = None, timeout_s: float = 120) -> dict:
    deadline = time.monotonic() + timeout_s
    while True:
        kernel = page.evaluate(JS_KERNEL, path)
        if (kernel and kernel["connection"] == "connected" and kernel["status"] == "idle"
                and (name is None or kernel["name"] == name)):
            return kernel
        if time.monotonic() > deadline:
            raise AssertionError(f"{path}: the kernel did not become idle{f' as {name}' if name else ''}: {kernel}")
        page.wait_for_timeout(250)


def choose_course_kernel(page, panel, path: str) -> None:
    """Pick "Course (CPU)" in JupyterLab's kernel dialog, as README tells a learner to."""
    wait_for_kernel(page, path)  # the notebook's own kernel started; switch from it
    panel.locator(".jp-Toolbar-kernelName").click()
    dialog = page.locator(".jp-Dialog")
    dialog.locator("select").select_option(label=KERNEL_LABEL)
    dialog.locator(".jp-mod-accept").click()
    wait_for_kernel(page, path, config.CPU_KERNEL)


def run_all(page, path: str) -> float:
    """Run All (JupyterLab's notebook:run-all-cells); wait until every cell replied and the kernel is idle."""
    start = time.monotonic()
    page.evaluate(JS_RUN_ALL, path)
    result = page.wait_for_function("() => window.__courseRun", timeout=RUN_TIMEOUT_S * 1000, polling=500).json_value()
    assert "error" not in result, f"Run All failed in JupyterLab: {result['error']}"
    wait_for_kernel(page, path)
    return time.monotonic() - start


def read_run(page, panel, lab: Lab, path: str, seconds: float) -> NotebookRun:
    rendered = page.evaluate(JS_RENDERED, panel.get_attribute("id"))
    sessions = [s for s in lab.api("/api/sessions") if s["path"] == path]
    return NotebookRun(
        path=path,
        kernel=sessions[0]["kernel"]["name"] if sessions else "(no session)",
        kernel_label=rendered["kernel_label"],
        cells=page.evaluate(JS_MODEL, path),
        stdout=rendered["stdout"],
        images=rendered["images"],
        broken_images=rendered["broken_images"],
        seconds=seconds,
    )


def shut_down_kernels(lab: Lab, path: str) -> None:
    for session in lab.api("/api/sessions"):
        if session["path"] == path:
            lab.api(f"/api/sessions/{session['id']}", method="DELETE")


@contextmanager
def notebook_page(browser, lab: Lab, path: str, name: str):
    """A page for one notebook. On a failure inside: save evidence and name its folder in the message."""
    context = browser.new_context(viewport={"width": 1400, "height": 1000})
    context.set_default_timeout(60_000)
    page = context.new_page()
    try:
        yield page
    except (AssertionError, PlaywrightError) as err:
        folder = save_evidence(page, lab, path, ARTIFACTS / f"FAILED-{name}")
        raise AssertionError(f"{err}\n\nscreenshot, page text, outputs and server log: {folder}") from err
    finally:
        context.close()
        shut_down_kernels(lab, path)


def save_evidence(page, lab: Lab, path: str, folder: Path) -> Path:
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    steps = {
        "screenshot.png": lambda: page.screenshot(path=str(folder / "screenshot.png")),
        "page.txt": lambda: (folder / "page.txt").write_text(page.inner_text("body")),
        "outputs.json": lambda: (folder / "outputs.json").write_text(json.dumps(page.evaluate(JS_MODEL, path), indent=1)),
        "lab.log": lambda: shutil.copy(lab.log, folder / "lab.log"),
    }
    for name, step in steps.items():
        try:
            step()
        except Exception as err:  # keep what could be saved; say what could not
            (folder / f"{name}.missing.txt").write_text(f"{type(err).__name__}: {err}\n")
    return folder


# ------------------------------------------------------------------------------------------------
# The assertion
# ------------------------------------------------------------------------------------------------


def problems(run: NotebookRun, expected: dict[str, str], figures: bool = True) -> list[str]:
    """What is wrong with a run: `expected` maps each exercise id to the mark its one check line must carry."""
    found = []
    if run.kernel != config.CPU_KERNEL or run.kernel_label != KERNEL_LABEL:
        found.append(f"ran on kernel {run.kernel!r} (toolbar: {run.kernel_label!r}), not {config.CPU_KERNEL!r} ({KERNEL_LABEL})")
    for index, cell in enumerate(run.cells):
        for out in cell["outputs"]:
            if out["output_type"] == "error":
                traceback = ANSI.sub("", "\n".join(out.get("traceback", [])))
                found.append(f"cell {index} raised {out['ename']}: {out['evalue']}\n{traceback}")
            elif out["output_type"] == "stream" and "Traceback (most recent call last)" in out["text"]:
                found.append(f"cell {index} printed a traceback on {out['name']}:\n{out['text']}")
    never_ran = [i for i, c in enumerate(run.cells)
                 if c["type"] == "code" and c["source"].strip() and c["execution_count"] is None]
    if never_ran:
        found.append(f"{len(never_ran)} code cell(s) never ran, from cell {never_ran[0]} on")

    lines: dict[str, list[str]] = {}
    for text in run.stdout:
        for line in text.splitlines():
            match = LINE_PATTERN.match(line)
            if match:
                lines.setdefault(match.group(2), []).append(match.group(1))
    for exercise, mark in expected.items():
        if lines.get(exercise) != [mark]:
            found.append(f"exercise {exercise}: expected one {mark} line, the page shows {lines.get(exercise, [])}")
    if set(lines) - set(expected):
        found.append(f"check lines for exercises not in the chapter: {sorted(set(lines) - set(expected))}")

    if figures:
        stored = sum(1 for c in run.cells for out in c["outputs"] if "image/png" in out.get("data", {}))
        if not stored or run.images != stored or run.broken_images:
            found.append(f"figures: {stored} image outputs, {run.images} <img> on the page, {run.broken_images} not loaded")
    return found


def assert_ran_cleanly(run: NotebookRun, expected: dict[str, str], figures: bool = True) -> None:
    found = problems(run, expected, figures)
    assert not found, f"{run.path} in JupyterLab:\n- " + "\n- ".join(found)


def chapter_exercises(chapter: pipeline.Chapter) -> list[str]:
    return list(pipeline.exercise_spans(pipeline.read_source(chapter)))


def run_in_browser(page, lab: Lab, path: str) -> tuple:
    panel = open_notebook(page, lab, path)
    choose_course_kernel(page, panel, path)
    seconds = run_all(page, path)
    return panel, read_run(page, panel, lab, path, seconds)


def relative(path: Path) -> str:
    return path.relative_to(config.REPO_ROOT).as_posix()


def move_explorer_slider(page, panel) -> tuple[str, str]:
    """Move the explorer's first slider with the keyboard, twice; return its readouts after each. The
    explorer draws nothing until a control moves; each move must draw a figure, the second another one."""
    explorer = panel.locator(".jp-OutputArea-output").filter(has=page.locator(".widget-slider")).first
    explorer.scroll_into_view_if_needed()
    figure = explorer.locator(".widget-output img")
    readout = explorer.locator(".widget-slider .widget-readout").first
    handle = explorer.locator(".widget-slider .noUi-handle").first
    assert figure.count() == 0, "the explorer drew a figure before any control moved"

    handle.focus()
    page.keyboard.press("ArrowRight")
    figure.first.wait_for(state="visible", timeout=60_000)
    first_value, first_src = readout.inner_text(), figure.first.get_attribute("src")

    handle.focus()
    page.keyboard.press("End")  # the slider's far end: a learning rate where gradient descent diverges
    page.wait_for_function(
        "([box, old]) => { const img = box.querySelector('.widget-output img');"
        " return img && img.complete && img.naturalWidth > 0 && img.getAttribute('src') !== old; }",
        arg=[explorer.element_handle(), first_src], timeout=60_000,
    )
    second_value = readout.inner_text()
    assert first_value != second_value, f"the slider's readout did not move: {first_value}"
    explorer.scroll_into_view_if_needed()
    return first_value, second_value


# ------------------------------------------------------------------------------------------------
# The tests
# ------------------------------------------------------------------------------------------------


def test_exercise_notebook_and_lesson_run_in_jupyterlab(lab, browser, request):
    exercises = chapter_exercises(CHAPTER)
    assert exercises, f"{CHAPTER.slug} has no exercises to count"
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    seconds = 0.0

    path = relative(CHAPTER.exercises)
    with notebook_page(browser, lab, path, f"exercises-{CHAPTER.slug}") as page:
        panel, run = run_in_browser(page, lab, path)
        seconds += run.seconds
        assert_ran_cleanly(run, dict.fromkeys(exercises, FAIL_MARK))
        panel.locator(".jp-OutputArea-output", has_text=f"{FAIL_MARK} {exercises[-1]} ").scroll_into_view_if_needed()
        page.screenshot(path=str(ARTIFACTS / f"exercises-{CHAPTER.slug}.png"))

    path = relative(CHAPTER.full)
    with notebook_page(browser, lab, path, CHAPTER.slug) as page:
        panel, run = run_in_browser(page, lab, path)
        seconds += run.seconds
        assert_ran_cleanly(run, dict.fromkeys(exercises, PASS_MARK))
        before, after = move_explorer_slider(page, panel)
        page.screenshot(path=str(ARTIFACTS / f"{CHAPTER.slug}-explorer.png"))

    record_notebook_time(request, CHAPTER.slug, "browser: exercises + lesson", seconds)
    assert not lab.saved_files(), f"JupyterLab wrote notebooks back: {lab.saved_files()}"
    print(f"\nexplorer redrawn at {before} and {after}; screenshots in {ARTIFACTS}")


def test_a_planted_error_is_reported_with_its_traceback(lab, browser):
    """A copy of the exercise notebook's opening (title and set-up cells), one check, then a raising cell."""
    source = nbformat.read(CHAPTER.exercises, as_version=4)
    setup_cell = next(i for i, c in enumerate(source.cells) if c.cell_type == "code" and "setup()" in c.source)
    exercise = chapter_exercises(CHAPTER)[0]
    source.cells = source.cells[: setup_cell + 1] + [
        nbformat.v4.new_code_cell(f'check("{exercise}", None)'),
        nbformat.v4.new_code_cell('raise RuntimeError("planted by tests/test_browser.py")'),
    ]
    folder = Path(tempfile.mkdtemp(prefix="_browser_planted_", dir=config.REPO_ROOT / "tests"))
    try:
        notebook = folder / f"{CHAPTER.slug}.ipynb"
        nbformat.write(source, notebook)
        path = relative(notebook)
        with notebook_page(browser, lab, path, "planted") as page:
            _, run = run_in_browser(page, lab, path)
        with pytest.raises(AssertionError) as failure:
            assert_ran_cleanly(run, {exercise: FAIL_MARK}, figures=False)
        message = str(failure.value)
        assert "raised RuntimeError: planted by tests/test_browser.py" in message
        assert "Traceback" in message or "---> " in message, message
        assert len(problems(run, {exercise: FAIL_MARK}, figures=False)) == 1, message  # only the planted error
    finally:
        shutil.rmtree(folder, ignore_errors=True)
