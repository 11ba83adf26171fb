"""gradlab report: every figure with its files, one self-contained page, opened in a real browser."""

import json
import os
import re
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

import gradlab
from gradlab.cli import main

SMALL_TRAIN = ["--len", "6", "--hidden", "6", "--steps", "6", "--batch", "4", "--sizes", "16,8,8", "--eval-every", "3",
               "--trace-every", "3", "--trace-batch", "4", "--quiet"]


def only_dir(path: Path) -> Path:
    (found,) = [p for p in path.iterdir() if not p.name.startswith(".")]
    return found


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """One run of each kind: analyze (two models), train (LSTM, traced), watch (a bidirectional LSTM)."""
    root = tmp_path_factory.mktemp("runs")
    assert main(["analyze", "--model", "srn,lstm", "--len", "12", "--batch", "4", "--hidden", "6",
                 "--out", str(root / "a"), "--quiet"]) == 0
    assert main(["train", "--model", "lstm", *SMALL_TRAIN, "--out", str(root / "t")]) == 0
    torch.manual_seed(0)
    rnn = torch.nn.LSTM(3, 5, bidirectional=True)
    with gradlab.watch(rnn, out=root / "w"):
        for _ in range(2):
            out, _ = rnn(torch.randn(7, 2, 3))
            out[-1].sum().backward()
    return [only_dir(root / k) for k in ("a", "t", "w")]


@pytest.fixture(scope="module")
def report(runs, tmp_path_factory):
    out = tmp_path_factory.mktemp("reports")
    assert main(["report", *map(str, runs), "--out", str(out), "--quiet"]) == 0
    return only_dir(out)


def test_every_figure_is_written_as_png_pdf_and_json_and_the_page_embeds_them(report, runs):
    pngs = sorted(report.glob("*.png"))
    assert len(pngs) >= 7  # analyze: decay, explicit; train: training, h and c heatmaps; watch: curves, heatmap ×2
    for png in pngs:
        assert png.with_suffix(".pdf").read_bytes()[:5] == b"%PDF-"
        sidecar = json.loads(png.with_suffix(".json").read_text())
        assert sidecar["caption"] and sidecar["run"]
    page = (report / "report.html").read_text()
    assert page.count('<img ') == len(pngs) and page.count('src="data:image/png;base64,') == len(pngs)
    assert not re.search(r'(?:src|href)="(?!data:)', page) and "http://" not in page and "https://" not in page
    summary = json.loads((runs[0] / "summary.json").read_text())
    factor = summary["models"]["lstm"]["gradients"]["h"]["decay_factor_per_step"]["factor"]
    assert f"{factor:.4g}" in page  # the table shows the run's own fitted factor
    assert {r["kind"] for r in json.loads((report / "report.json").read_text())["runs"]} == {"analyze", "train", "watch"}


def _chromium():
    browser, driver = shutil.which("chromium"), shutil.which("chromedriver")
    if browser and driver:
        return browser, driver
    if os.environ.get("CI") == "true":
        pytest.fail("CI must test the report in Chromium: .ci/run installs Debian's chromium and chromium-driver")
    pytest.skip("no chromium and chromedriver here (Debian: apt-get install chromium chromium-driver)")


def test_the_page_opens_in_headless_chromium_with_every_image_loaded_and_nothing_fetched(report, tmp_path):
    browser, driver_path = _chromium()
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = browser
    for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync",
                 f"--user-data-dir={tmp_path / 'profile'}", "--window-size=1200,900"):
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    drv = webdriver.Chrome(service=Service(driver_path), options=options)
    try:
        drv.get((report / "report.html").resolve().as_uri())
        images = drv.execute_script("return Array.from(document.images).map(i => [i.complete, i.naturalWidth])")
        assert images and all(done and width > 0 for done, width in images), images
        fetched = drv.execute_script("return performance.getEntriesByType('resource').map(e => e.name)")
        assert [u for u in fetched if not u.startswith("data:")] == []
        errors = [e for e in drv.get_log("browser") if e["level"] in ("SEVERE", "ERROR")]
        assert errors == []
        shot = tmp_path / "report.png"
        assert drv.save_screenshot(str(shot)) and shot.read_bytes()[:4] == b"\x89PNG"
    finally:
        drv.quit()


def test_bad_report_arguments_exit_2_with_one_line(tmp_path, runs, capsys):
    (tmp_path / "empty").mkdir()
    for argv, fragment in ((["report", str(tmp_path / "empty")], "not a gradlab run directory"),
                           (["report", str(tmp_path / "none")], "no such run directory"),
                           (["report", str(runs[0]), "--quick"], "--quick: applies when no run is given")):
        capsys.readouterr()
        assert main([*argv, "--out", str(tmp_path / "out")]) == 2
        err = capsys.readouterr().err.strip()
        assert fragment in err and len(err.splitlines()) == 1 and "Traceback" not in err
    assert not (tmp_path / "out").exists() or list((tmp_path / "out").iterdir()) == []


@pytest.mark.parametrize("damage", ["truncated", "garbage", "missing"])
def test_a_watch_run_with_a_damaged_step_file_exits_2_with_one_line_before_writing(runs, tmp_path, capsys, damage):
    import shutil

    watch_dir = tmp_path / "w"
    shutil.copytree(runs[2], watch_dir)
    step_file = sorted(watch_dir.rglob("*.npz"))[0]
    if damage == "truncated":
        step_file.write_bytes(step_file.read_bytes()[:100])
    elif damage == "garbage":
        step_file.write_bytes(b"not a step file")
    else:
        step_file.unlink()
    capsys.readouterr()
    assert main(["report", str(watch_dir), "--out", str(tmp_path / "out"), "--quiet"]) == 2
    err = capsys.readouterr().err.strip()
    assert step_file.name in err and len(err.splitlines()) == 1 and "Traceback" not in err
    assert not (tmp_path / "out").exists() or list((tmp_path / "out").iterdir()) == []


def test_a_second_report_never_overwrites_the_first(runs, tmp_path):
    for _ in range(2):
        assert main(["report", str(runs[0]), "--out", str(tmp_path), "--quiet"]) == 0
    assert len([p for p in tmp_path.iterdir() if not p.name.startswith(".")]) == 2


@pytest.mark.parametrize("case", ["all zero", "underflowed", "single step"])
def test_the_new_figure_draws_synthetic_data_of_every_kind(case):
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    from gradlab.plots.decay import explicit_and_total_figure

    K = 1 if case == "single step" else 30
    distance = np.arange(K)
    total = {"all zero": np.full(K, -np.inf), "underflowed": -50.0 * distance, "single step": np.zeros(1)}[case]
    explicit = np.full(K, -np.inf)
    explicit[0] = total[0]
    fig = explicit_and_total_figure(distance, {"lstm": total}, {"lstm": explicit})
    FigureCanvasAgg(fig).draw()
    ax = fig.axes[0]
    assert ax.get_xlabel().startswith("distance") and "partial" in ax.get_ylabel()
    drawn = np.concatenate([np.asarray(line.get_ydata(), dtype=float) for line in ax.get_lines()])
    assert not np.isinf(drawn).any()  # an exact zero is left out, never drawn at -inf


@pytest.mark.parametrize("case", ["all zero", "underflowed", "single step"])
def test_the_decay_figures_draw_synthetic_data_of_every_kind(case):
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    from gradlab.analysis.metrics import DecayProfile, fit_decay
    from gradlab.plots.decay import decay_figure
    from gradlab.plots.watch import decay_through_training_figure, step_decay_figure

    K = 1 if case == "single step" else 40
    log10 = {"all zero": np.full(K, -np.inf), "underflowed": -60.0 * np.arange(K), "single step": np.zeros(1)}[case]
    with np.errstate(under="ignore"):
        plain = np.where(log10 < -320, 0.0, 10.0 ** np.maximum(log10, -320))
    prof = DecayProfile(np.arange(K), plain, log10, log10 - 0.5, log10 + 0.5)
    fit = fit_decay(prof)
    for fig in (decay_figure({"gru": {"h": prof}}, {"gru": {"h": fit}}, title=case, dtype="float32"),
                step_decay_figure({"rnn h, layer 0": prof}, {"rnn h, layer 0": fit}),
                decay_through_training_figure([0, 10], [log10, log10])):
        FigureCanvasAgg(fig).draw()  # draws without raising; a -inf is never plotted
        for ax in fig.axes:
            for line in ax.get_lines():
                assert not np.isinf(np.asarray(line.get_ydata(), dtype=float)).any()
    if case == "all zero":
        assert fit.factor is None and fit.reason


def test_the_standard_sets_spectra_and_per_unit_gradients_are_drawn_from_what_was_computed(tmp_path):
    from gradlab.report.standard import SPECTRA, UNITS, write_spectra_and_units
    from gradlab.runs.analysis_run import write_run

    analysis = gradlab.analyze(gradlab.AnalyzeConfig(models=("srn", "lstm"), length=12, batch=4, hidden=5,
                                                     out=str(tmp_path / "a")), progress=False)
    run = write_run(analysis, tmp_path / "a")
    write_spectra_and_units(analysis, run)
    spectra = json.loads((run / SPECTRA).read_text())
    res = analysis.results[1]  # the LSTM, checked against the API directly
    problem = res.problem.double()
    x = problem.embed(torch.as_tensor(analysis.inputs))
    expected = np.log10(gradlab.jacobian_spectra(problem.model, x[:, :4]).largest())
    np.testing.assert_allclose(np.array(spectra["lstm"]["log10_largest"], dtype=float), expected, rtol=1e-10)
    units = np.array(json.loads((run / UNITS).read_text())["lstm"]["log10_mean_abs_grad_h"], dtype=float)
    assert units.shape == (12, 5)
    assert main(["report", str(run), "--out", str(tmp_path / "r"), "--quiet"]) == 0
    report = only_dir(tmp_path / "r")
    names = {p.name for p in report.glob("*.png")}
    assert f"{run.name}_jacobian_spectra.png" in names and f"{run.name}_lstm_units.png" in names
    drawn = json.loads((report / f"{run.name}_lstm_units.json").read_text())["log10_mean_abs_grad_h"]
    np.testing.assert_allclose(np.array(drawn, dtype=float), units)


@pytest.mark.parametrize("case", ["all zero", "underflowed", "single step"])
def test_the_spectra_unit_and_training_figures_draw_synthetic_data_of_every_kind(case):
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    from gradlab.plots.spectra import singular_value_bands_figure, unit_heatmap_figure
    from gradlab.plots.training import training_figure

    K, B, H = (1, 3, 4) if case == "single step" else (30, 3, 4)
    k = np.arange(K)[:, None]
    log10 = {"all zero": np.full((K, B), np.nan), "underflowed": -40.0 * k + np.zeros((K, B)),
             "single step": np.zeros((K, B))}[case]  # NaN: log10 of an exact zero as the sidecars hold it
    figs = [singular_value_bands_figure(np.arange(K), {"srn": log10}, {"srn": log10 - 1}, {"srn": -0.3}),
            unit_heatmap_figure(np.repeat(log10[:, :1], H, axis=1))]
    norms = {"all zero": [0.0] * K, "underflowed": list(10.0 ** (-40.0 * np.arange(K))), "single step": [1.0]}[case]
    history = {"step": list(range(1, K + 1)), "loss": norms,
               **{f"grad_norm/model.{p}_l0": norms for p in ("weight_ih", "weight_hh", "bias_ih")}}
    traces = [{"step": 0, "profile": {"h": list(log10[:, 0])}}]
    figs.append(training_figure(history, [{"step": 1, "dev_accuracy": 0.0}], traces, "accuracy", case))
    for fig in figs:
        FigureCanvasAgg(fig).draw()
        for ax in fig.axes:
            for line in ax.get_lines():
                assert not np.isinf(np.asarray(line.get_ydata(), dtype=float)).any()
