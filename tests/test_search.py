"""Per-cell search (gdepth/search/): the space as data, Optuna ask/tell over cells, validation
only, resume without repeating finished trials."""

from __future__ import annotations

import math

import pytest

from gdepth.search import space, study

SEARCH = {"name": "t", "trials": 6, "seeds": 2, "sampler_seed": 0, "startup_trials": 3,
          "parallel": 2,
          "space": {"train.lr": {"low": 1e-3, "high": 1e-1, "log": True},
                    "model.hidden": {"choices": [16, 32]}},
          "models": {"gcnii": {"model.alpha": {"low": 0.05, "high": 0.5}}}}
CONFIG = {"model": {"name": "gcn", "hidden": 64, "dropout": 0.5},
          "train": {"lr": 0.01, "weight_decay": 5e-4}, "depth": 4, "seeds": 5}


class Poison(dict):
    """A seed result whose test accuracy must never be read."""

    def __getitem__(self, key):
        if key == "test_acc":
            raise AssertionError("the search read a test accuracy")
        return super().__getitem__(key)

    def get(self, key, default=None):
        if key == "test_acc":
            raise AssertionError("the search read a test accuracy")
        return super().get(key, default)


def fake_record(job: list[str]) -> dict:
    """val accuracy peaks at lr = 0.01; test accuracy is poison (and would rank the reverse)."""
    values = dict(o.split("=", 1) for o in job)
    lr, seeds = float(values["train.lr"]), int(values["seeds"])
    val = 0.9 - abs(math.log10(lr) + 2) / 10
    return {"key": f"k{lr:.6g}-{values['model.hidden']}-{seeds}", "status": "ok",
            "seeds": [Poison(seed=i, status="ok", val_acc=val, test_acc=1 - val)
                      for i in range(seeds)]}


class Launcher:
    def __init__(self, die_after: int | None = None):
        self.jobs: list[list[str]] = []
        self.die_after = die_after

    def __call__(self, jobs):
        if self.die_after is not None and len(self.jobs) + len(jobs) > self.die_after:
            raise KeyboardInterrupt("killed")
        self.jobs.extend(jobs)
        return [fake_record(j) for j in jobs]


def test_space_reads_the_data_and_refuses_what_cannot_be_searched():
    found = space.check(SEARCH, CONFIG)
    assert set(found) == {"train.lr", "model.hidden"}
    assert found["train.lr"].log and found["model.hidden"].choices == (16, 32)
    gcnii = {**CONFIG, "model": {"name": "gcnii", "hidden": 64, "alpha": 0.1}}
    assert "model.alpha" in space.check(SEARCH, gcnii)
    for bad, message in [
        ({"trials": 0}, "search.trials=0: must be a whole number >= 1"),
        ({"space": {"depth": {"low": 2, "high": 64}}}, "'depth' cannot be searched"),
        ({"space": {"model.hiden": {"low": 2, "high": 64}}}, "has no key 'model.hiden'"),
        ({"space": {"train.lr": {"low": 0.1, "high": 0.01}}}, "low 0.1 must be < high 0.01"),
        ({"space": {"train.lr": {"low": 0.0, "high": 0.1, "log": True}}}, "> 0 with log"),
    ]:
        with pytest.raises(space.SearchError, match="^[^\n]*$") as err:
            space.check({**SEARCH, **bad}, CONFIG)
        assert message in str(err.value)


def test_study_spends_the_budget_on_validation_only_and_reruns_the_best(tmp_path):
    launch = Launcher()
    base = ["model=gcn", "depth=4", "search=t", "seeds=5", "train.lr=0.5"]
    summary = study.run(tmp_path, "cellkey", "csbm gcn·none L=4", base, SEARCH, CONFIG, launch)
    trials, final = launch.jobs[:-1], launch.jobs[-1]
    assert len(trials) == 6 and all("seeds=2" in j and "search=none" in j for j in trials)
    assert all("train.lr=0.5" not in j for j in launch.jobs)  # the search sets lr
    best = max(summary["trials"], key=lambda t: t["val_acc"])
    assert summary["best"]["number"] == best["number"]
    assert "seeds=5" in final and f"model.hidden={best['params']['model.hidden']}" in final
    assert summary["final"]["key"] == fake_record(final)["key"]
    assert [t["key"] for t in summary["trials"]] == [fake_record(j)["key"] for j in trials]
    assert study.load_summaries(tmp_path)[0]["study"] == "cellkey"
    assert study.trial_only_keys(tmp_path) == {fake_record(j)["key"] for j in trials} - {
        summary["final"]["key"]}


def test_a_killed_study_resumes_without_repeating_finished_trials(tmp_path):
    base = ["model=gcn", "depth=4"]
    first = Launcher(die_after=4)  # two batches of two trials told, the third killed
    with pytest.raises(KeyboardInterrupt):
        study.run(tmp_path, "k", "cell", base, SEARCH, CONFIG, first)
    second = Launcher()
    summary = study.run(tmp_path, "k", "cell", base, SEARCH, CONFIG, second)
    assert len(first.jobs) == 4
    assert len(second.jobs) == 2 + 1  # the killed batch's two trials, same values, then final
    assert all(job not in first.jobs for job in second.jobs)  # no finished trial repeated
    done = [t for t in summary["trials"] if t["state"] == "COMPLETE"]
    assert len(done) == 6 and all(t["key"] for t in done)
    again = Launcher()
    study.run(tmp_path, "k", "cell", base, SEARCH, CONFIG, again)
    assert len(again.jobs) == 1  # nothing but the final cell (its record is found, not rerun)


def test_failed_trials_count_against_the_budget(tmp_path):
    def launch(jobs):
        return [None for _ in jobs]

    summary = study.run(tmp_path, "f", "cell", [], {**SEARCH, "trials": 3}, CONFIG, launch)
    assert [t["state"] for t in summary["trials"]] == ["FAIL"] * 3
    assert summary["best"] is None and summary["final"] is None
