"""``search.pruner=median`` end to end (gdepth/search/prune.py): a real ``gdepth sweep`` whose
trials report to their study from their own jobs; the pruned trial's record and value,
``gdepth status``, ``gdepth tune-report``; and (slow) a sweep killed with ``kill -9`` once a
trial was pruned, resumed, then run once more.

The constructed case: the learning rate is 1e-6 (cannot learn in 16 epochs) or 0.05, every
trial drawn at random (sampler seed 0: 0.05 first, then 1e-6), and the median pruner judges
from the first complete trial on, from epoch 4, every 2 epochs: a 1e-6 trial after the first
complete 0.05 one must be pruned.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import optuna
import pandas as pd
import pytest
from hydra import compose, initialize_config_dir
from optuna.storages import JournalStorage
from optuna.storages.journal import JournalFileBackend

from gdepth import cell
from gdepth import compose as gdepth_compose
from gdepth.cli import config_dir
from gdepth.search import study
from gdepth.sweep import collect, layout

GDEPTH = [str(Path(sys.executable).with_name("gdepth"))]
EPOCHS = 16
ARGS = ["sweep", "search=default", "search.trials=5", "search.startup_trials=5",
        "search.seeds=2", "search.pruner=median", "search.pruner_startup_trials=1",
        "search.pruner_warmup_epochs=4", "search.pruner_interval=2",
        "+search.models.gcn={train.lr: {choices: [1.0e-6, 0.05]}}", "depth=2", "seeds=3",
        "dataset.num_nodes=300", "dataset.num_classes=3", f"train.epochs={EPOCHS}",
        "progress=false", "name=prune"]


def _records(folder: Path) -> dict[str, str]:
    return {p.name: p.read_text() for p in (folder / "records").glob("*.json")}


def _told(folder: Path) -> dict[int, str]:
    """The study's trials that were told (finished) when the sweep was killed."""
    (path,) = (folder / layout.SEARCH).glob("*.journal")
    storage = JournalStorage(JournalFileBackend(str(path)))
    found = optuna.load_study(study_name=path.stem, storage=storage)
    return {t.number: t.state.name for t in found.get_trials(deepcopy=False)
            if t.state.is_finished()}


def _env(mirror, data_cache) -> dict[str, str]:
    return dict(os.environ, GDEPTH_DATA=str(data_cache), GDEPTH_DATA_MIRROR=str(mirror),
                OMP_NUM_THREADS="1", GDEPTH_OFFLINE="1")


def gdepth(args, env, cwd, timeout=300):
    return subprocess.run([*GDEPTH, *args], env=env, cwd=cwd, capture_output=True, text=True,
                          timeout=timeout)


@pytest.fixture(scope="module")
def pruned(tmp_path_factory, mirror, data_cache):
    """The pruned search, run once (~25 s: one gdepth process, five trials and the final)."""
    cwd, env = tmp_path_factory.mktemp("prune"), _env(mirror, data_cache)
    folder = cwd / "outputs" / "sweeps" / "prune"
    first = gdepth([*ARGS, "threads=1"], env, cwd)
    assert first.returncode == 0, first.stderr[-3000:]
    (summary,) = study.load_summaries(folder)
    return folder, summary, env, cwd


def test_the_bad_half_is_pruned_and_the_best_trial_is_complete(pruned):
    folder, summary, *_ = pruned
    trials = summary["trials"]
    assert len(trials) == 5 and all(t["state"] in ("COMPLETE", "PRUNED") for t in trials)
    first_good = min(t["number"] for t in trials if t["params"]["train.lr"] == 0.05
                     and t["state"] == "COMPLETE")
    bad = [t for t in trials if t["params"]["train.lr"] == 1e-6 and t["number"] > first_good]
    assert bad and all(t["state"] == "PRUNED" for t in bad)
    assert summary["best"]["number"] in {t["number"] for t in trials if t["state"] == "COMPLETE"}
    by_key = {r["key"]: r for r in collect.load(folder, planned=False)}
    for t in (t for t in trials if t["state"] == "PRUNED"):
        record = by_key[t["key"]]
        assert record["status"] == "pruned" and record["seeds"] == []
        info = record["pruned"]
        assert info["epoch"] == t["pruned_at"] and info["epoch"] >= 4 and info["epoch"] % 2 == 0
        assert info["epochs"] == EPOCHS and info["pruner"] == "median"
        assert info["val_acc"] == t["val_acc"]  # the study keeps the trial's last report
        assert any(o == f"trial.number={t['number']}" for o in record["overrides"])
        assert not (folder / layout.CHECKPOINTS / t["key"]).exists()


def test_the_value_reported_is_the_cells_objective_had_it_stopped_there(pruned, tmp_path):
    """The pruned trial's last report: the mean over its seeds of the validation accuracy at
    each seed's selected epoch, i.e. the record of the same cell trained for that many epochs."""
    folder, summary, *_ = pruned
    t = next(t for t in summary["trials"] if t["state"] == "PRUNED")
    (record,) = [r for r in collect.load(folder, planned=False) if r["key"] == t["key"]]
    job = [o for o in record["overrides"] if not o.startswith(("trial.", "train.epochs="))]
    gdepth_compose.register()
    with initialize_config_dir(config_dir=config_dir(), version_base="1.3"):
        cfg = compose("config", overrides=[*job, f"train.epochs={t['pruned_at']}"])
    alone = cell.run_cell(cfg, tmp_path, overrides=job)
    values = [s["val_acc"] for s in alone["seeds"]]
    # the same float32 training on the same thread count: equal up to the mean's rounding
    assert sum(values) / len(values) == pytest.approx(t["val_acc"], abs=1e-12)


@pytest.mark.slow  # ~1 min: two sweeps and Optuna's 30 s grace period for a stale lock
def test_a_sweep_killed_after_a_pruned_trial_resumes_without_repeating_a_told_one(
        tmp_path, mirror, data_cache):
    """``kill -9`` once a trial's pruned record is written (before or after its study was
    told). A kill while a process wrote to the journal leaves Optuna's lock behind: made here
    if the kill did not, so the resume must get past a stale lock (forcibly released after
    the grace period; a lock whose link dangles was never released)."""
    env, folder = _env(mirror, data_cache), tmp_path / "outputs" / "sweeps" / "prune"
    first = subprocess.Popen([*GDEPTH, *ARGS, "threads=1"], env=env, cwd=tmp_path,
                             stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 300
    while first.poll() is None and time.monotonic() < deadline:  # kill it once one is pruned
        if any('"status": "pruned"' in text for text in _records(folder).values()):
            first.send_signal(signal.SIGKILL)
            break
        time.sleep(0.05)
    _, err = first.communicate(timeout=60)
    assert first.returncode == -signal.SIGKILL, f"no trial was pruned:\n{err[-3000:]}"
    told, before = _told(folder), _records(folder)
    assert "PRUNED" in told.values() or any('"status": "pruned"' in t for t in before.values())
    (journal,) = (folder / layout.SEARCH).glob("*.journal")
    lock = journal.with_name(journal.name + ".lock")
    if not lock.is_symlink():
        lock.symlink_to(journal.resolve())
    second = gdepth([*ARGS, "threads=1"], env, tmp_path, timeout=240)
    assert second.returncode == 0, second.stderr[-3000:]
    launched = {int(n) for n in re.findall(r"#\d+ : .*trial\.number=(\d+)", second.stderr)}
    assert not launched & set(told), (told, launched)
    after = _records(folder)
    changed = [name for name, text in before.items() if after[name] != text]
    assert not changed, "\n".join([*changed, *(before[n] for n in changed),
                                    *(after[n] for n in changed), second.stderr])
    (summary,) = study.load_summaries(folder)
    assert len(summary["trials"]) == 5 and summary["final"]["status"] == "ok"
    assert {t["number"]: t["state"] for t in summary["trials"] if t["number"] in told} == told
    assert "PRUNED" in {t["state"] for t in summary["trials"]}
    again = gdepth([*ARGS, "threads=1"], env, tmp_path)  # a finished study: nothing to run
    assert again.returncode == 0 and "Launching" not in again.stderr, again.stderr[-3000:]
    assert _records(folder) == after


def test_status_and_tune_report_show_the_pruned_trials(pruned):
    folder, summary, env, cwd = pruned
    n_pruned = sum(t["state"] == "PRUNED" for t in summary["trials"])
    status = gdepth(["status", str(folder), "--all"], env, cwd)
    assert status.returncode == 0, status.stdout  # pruned trials are finished, not failed
    assert status.stdout.splitlines()[-2].endswith(f"0 missing, {n_pruned} pruned")
    assert status.stdout.splitlines()[-1] == "1 search: 1 done, 0 searching"
    assert "(search: 5 of 5 trials told, best val " in status.stdout  # pruned ones are told
    rows = [line for line in status.stdout.splitlines() if line.startswith("pruned ")]
    assert len(rows) == n_pruned and all(f"/{EPOCHS}, val acc " in r for r in rows)
    report = gdepth(["tune-report", str(folder), "--trials"], env, cwd)
    assert report.returncode == 0, report.stderr
    assert report.stdout.count("| PRUNED ") == n_pruned and "median pruner" in report.stdout
    hyper = pd.read_csv(folder / "hyperparameters.csv")
    assert list(hyper["pruned"]) == [n_pruned] and list(hyper["completed"]) == [5 - n_pruned]
    plan = json.loads((folder / "plan.json").read_text())
    assert len(plan["cells"]) == 6  # every trial and the final: gdepth status sees them
