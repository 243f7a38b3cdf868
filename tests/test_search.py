"""Per-cell search (gdepth/search/): the space as data, Optuna ask/tell over cells, validation
only, resume without repeating finished trials."""

from __future__ import annotations

import math
import statistics

import pytest

from gdepth.search import space, study
from gdepth.sweep import plan

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


def _drop_journal(folder, key):
    """What a fresh clone of a committed study has: the summary, no journal (.gitignore)."""
    from gdepth.sweep import layout

    journal = layout.journal_path(folder, key)
    assert journal.exists()
    for path in journal.parent.glob(journal.name + "*"):  # the journal and any lock
        path.unlink()


def test_a_finished_study_on_a_fresh_clone_only_looks_its_final_up(tmp_path):
    """Without its journal, the study is rebuilt from the committed summary: the same told
    trials (values, accuracies, keys), no trial launched again, the same final."""
    base = ["model=gcn", "depth=4"]
    first = study.run(tmp_path, "k", "cell", base, SEARCH, CONFIG, Launcher())
    _drop_journal(tmp_path, "k")
    again = Launcher()
    second = study.run(tmp_path, "k", "cell", base, SEARCH, CONFIG, again)
    assert len(again.jobs) == 1 and fake_record(again.jobs[0])["key"] == first["final"]["key"]
    fields = ("number", "state", "params", "val_acc", "key")
    assert ([{f: t[f] for f in fields} for t in second["trials"]]
            == [{f: t[f] for f in fields} for t in first["trials"]])
    assert second["best"] == first["best"] and second["final"] == first["final"]


def test_a_stopped_study_on_a_fresh_clone_goes_on_where_it_stopped(tmp_path):
    """Killed after four told trials, resumed without the journal: the four stay told (not
    launched again, the same numbers and keys); the killed batch's two trials run, then the
    final."""
    base = ["model=gcn", "depth=4"]
    first = Launcher(die_after=4)
    with pytest.raises(KeyboardInterrupt):
        study.run(tmp_path, "k", "cell", base, SEARCH, CONFIG, first)
    _drop_journal(tmp_path, "k")
    second = Launcher()
    summary = study.run(tmp_path, "k", "cell", base, SEARCH, CONFIG, second)
    assert len(second.jobs) == 2 + 1 and all(job not in first.jobs for job in second.jobs)
    assert [t["number"] for t in summary["trials"]] == list(range(6))
    assert [t["key"] for t in summary["trials"][:4]] == [fake_record(j)["key"]
                                                        for j in first.jobs]
    assert all(t["state"] == "COMPLETE" for t in summary["trials"])


def test_a_study_killed_mid_launch_resumes_on_a_fresh_clone_as_with_its_journal(tmp_path):
    """Killed while its third batch was launched: resumed with the journal and, in another
    folder, without it, the study launches the same jobs (the killed batch's trials with
    their values, then the final) and ends with the same trials. The summary holds the
    killed batch because it is written as soon as a batch is asked."""
    base = ["model=gcn", "depth=4"]
    resumed = {}
    for journal in (True, False):
        folder = tmp_path / str(journal)
        with pytest.raises(KeyboardInterrupt):
            study.run(folder, "k", "cell", base, SEARCH, CONFIG, Launcher(die_after=4))
        running = [t for t in study.read_summary(study.summary_path(folder, "k"))["trials"]
                   if t["state"] == "RUNNING"]
        assert len(running) == SEARCH["parallel"]
        if not journal:
            _drop_journal(folder, "k")
        again = Launcher()
        summary = study.run(folder, "k", "cell", base, SEARCH, CONFIG, again)
        assert again.jobs[:2] == [study.trial_job(base, t["params"], SEARCH["seeds"])
                                  for t in running]
        resumed[journal] = (again.jobs, [{f: t[f] for f in ("number", "state", "params",
                                                             "val_acc", "key")}
                                         for t in summary["trials"]])
    assert resumed[False] == resumed[True]
    assert len(resumed[False][0]) == 2 + 1


def test_restored_keeps_each_told_state_and_refuses_another_space():
    dists = space.check(SEARCH, CONFIG)
    p = {"train.lr": 0.01, "model.hidden": 16}
    summary = {"trials": [
        {"number": 0, "state": "COMPLETE", "params": p, "val_acc": 0.8, "key": "a"},
        {"number": 1, "state": "PRUNED", "params": p, "val_acc": 0.5, "key": "b",
         "pruned_at": 7},
        {"number": 2, "state": "FAIL", "params": p, "val_acc": None, "key": None},
        {"number": 3, "state": "RUNNING", "params": p, "val_acc": None, "key": None}]}
    trials, keys = study.restored(summary, dists, "cell")
    assert [t.state.name for t in trials] == ["COMPLETE", "PRUNED", "FAIL", "RUNNING"]
    assert [t.value for t in trials] == [0.8, 0.5, None, None]
    assert trials[3].params == p  # launched again with its values
    assert trials[1].intermediate_values == {7: 0.5}
    assert keys == {0: "a", 1: "b", 2: None, 3: None}
    moved = {**summary, "trials": [{**summary["trials"][0],
                                    "params": {"train.lr": 0.5, "model.hidden": 16}}]}
    assert study.restored(moved, dists, "cell") == ([], {})  # lr 0.5 is outside the space


def test_failed_trials_count_against_the_budget(tmp_path):
    def launch(jobs):
        return [None for _ in jobs]

    summary = study.run(tmp_path, "f", "cell", [], {**SEARCH, "trials": 3}, CONFIG, launch)
    assert [t["state"] for t in summary["trials"]] == ["FAIL"] * 3
    assert summary["best"] is None and summary["final"] is None


def test_a_search_is_done_only_with_its_budget_told_and_its_final_done(tmp_path):
    """gdepth status's reading of a study summary (gdepth/search/progress.py): the trials not
    asked yet are in no plan, so only the summary says that a killed search is not done."""
    from optuna.trial import TrialState

    from gdepth.search import progress

    assert set(study.FINISHED) == {s for s in TrialState if s.is_finished()}  # Optuna's own
    base = ["model=gcn", "depth=4"]
    with pytest.raises(KeyboardInterrupt):  # two batches of two told, the third killed
        study.run(tmp_path, "k", "csbm gcn·none L=4", base, SEARCH, CONFIG, Launcher(4))
    (killed,) = progress.load_summaries(tmp_path)
    best = max(t["val_acc"] for t in killed["trials"] if t["state"] == "COMPLETE")
    state = progress.state(killed, None)
    assert (state.study, state.label, state.status) == ("k", "csbm gcn·none L=4", "searching")
    assert state.detail == (f"4 of 6 trials told, best val {100 * best:.1f} %, "
                            "2 asked, not yet told")
    summary = study.run(tmp_path, "k", "csbm gcn·none L=4", base, SEARCH, CONFIG, Launcher())
    best = 100 * summary["best"]["val_acc"]
    assert progress.state(summary, "ok").status == "done"
    assert progress.state(summary, "ok").detail == (
        f"6 of 6 trials told, best val {best:.1f} %; final (5 seeds) ok")
    for final_status in ("missing", "running", "failed"):  # the final not done yet
        state = progress.state(summary, final_status)
        assert state.status == "searching"
        assert state.detail.endswith(f"; its final (5 seeds) is {final_status}")
    final_key = summary["final"]["key"]
    assert progress.search_states(tmp_path, {final_key: "ok"})[0].status == "done"
    assert progress.search_states(tmp_path, {})[0].detail.endswith("is missing")
    no_final = {**summary, "final": None}  # all told, the final not launched yet
    assert progress.state(no_final, None).detail.endswith("its final (5 seeds) is not run")
    # Killed while its final runs: the summary has the final's overrides, not yet its record's
    # key; the cell that plan.json marks with the study's key and those overrides is the final.
    with pytest.raises(KeyboardInterrupt):
        study.run(tmp_path / "g", "g", "cell", base, SEARCH, CONFIG, Launcher(SEARCH["trials"]))
    (asked,) = progress.load_summaries(tmp_path / "g")
    assert asked["final"] == {"overrides": [*base, "search=none", "seeds=5",
                                            *space.overrides(asked["best"]["params"])],
                              "key": None, "status": "asked"}
    assert progress.search_states(tmp_path / "g", {})[0].detail.endswith("(5 seeds) is not run")
    plan.add(tmp_path / "g", {
        "fk": {"label": "cell", "overrides": asked["final"]["overrides"], "config": CONFIG,
               "search": "g"},
        "other": {"label": "cell", "overrides": asked["final"]["overrides"], "config": CONFIG,
                  "search": "another study"},  # the same overrides in another study: not it
        "trial": {"label": "cell", "overrides": [*base, "seeds=2"], "config": CONFIG,
                  "search": "g"}})
    for final_status in ("running", "missing", "failed"):
        (found,) = progress.search_states(tmp_path / "g", {"fk": final_status, "other": "ok"})
        assert (found.status, found.detail.split("; ")[-1]) == (
            "searching", f"its final (5 seeds) is {final_status}")
    assert progress.search_states(tmp_path / "g", {"fk": "ok"})[0].status == "done"
    failed = study.run(tmp_path / "f", "f", "cell", [], {**SEARCH, "trials": 3}, CONFIG,
                       lambda jobs: [None for _ in jobs])
    assert progress.state(failed, None) == progress.SearchState(
        "f", "cell", "failed", "every one of its 3 trials failed: no tuned cell")


# A pruned search (gdepth/search/prune.py): each fake job opens its trial from the study's
# journal, as a real trial's job does, and reports a validation curve that rises to fake_record's
# value (lr 0.01 best); a job stopped by the pruner returns a pruned record.
PRUNED = {**SEARCH, "trials": 8, "startup_trials": 8, "parallel": 1, "pruner": "median",
          "pruner_startup_trials": 2, "pruner_warmup_epochs": 4, "pruner_interval": 2}
EPOCHS = 20


def fake_trial(folder, job: list[str]) -> dict:
    from gdepth.search import prune

    record = fake_record(job)
    values = dict(o.split("=", 1) for o in job)
    trial = {k.removeprefix("trial."): v for k, v in values.items() if k.startswith("trial.")}
    reporter = prune.open_trial(folder, trial, EPOCHS)
    final = record["seeds"][0]["val_acc"]
    try:
        for epoch in range(1, EPOCHS + 1):  # the selected val acc so far: rises to the final
            if reporter is not None:
                reporter(epoch, {s["seed"]: final * min(1.0, epoch / 10)
                                 for s in record["seeds"]})
    except prune.Pruned as stop:
        return {"key": record["key"], "status": "pruned", "pruned": stop.info,
                "overrides": job, "seeds": []}
    return record


class PruningLauncher(Launcher):
    def __init__(self, folder, die_after: int | None = None):
        super().__init__(die_after)
        self.folder, self.written = folder, {}

    def __call__(self, jobs):
        if self.die_after is not None and len(self.jobs) + len(jobs) > self.die_after:
            raise KeyboardInterrupt("killed")
        self.jobs.extend(jobs)
        out = [self.written.get(tuple(j)) or fake_trial(self.folder, j) for j in jobs]
        self.written.update({tuple(j): r for j, r in zip(jobs, out, strict=True)})
        return out


def test_a_pruned_search_stops_the_trials_behind_the_median_and_never_picks_one(tmp_path):
    launch = PruningLauncher(tmp_path)
    summary = study.run(tmp_path, "p", "cell", ["model=gcn"], PRUNED, CONFIG, launch)
    trials, final = summary["trials"], launch.jobs[-1]
    assert len(trials) == 8 and len(launch.jobs) == 9
    assert all("trial.number=" not in j for j in [final])  # the final is an ordinary cell
    pruned = [t for t in trials if t["state"] == "PRUNED"]
    assert pruned, [(t["state"], t["params"]["train.lr"]) for t in trials]
    complete = [t for t in trials if t["state"] == "COMPLETE"]
    for t in pruned:  # below the median of the complete trials' values at its epoch
        epoch = t["pruned_at"]
        assert epoch >= 4 and epoch % 2 == 0
        before = [c["val_acc"] * min(1.0, epoch / 10) for c in complete
                  if c["number"] < t["number"]]  # what they reported at that epoch
        assert len(before) >= 2 and t["val_acc"] < statistics.median(before)
        record = launch.written[tuple(launch.jobs[t["number"]])]
        assert record["pruned"]["epoch"] == epoch
        assert record["pruned"]["val_acc"] == pytest.approx(t["val_acc"], rel=1e-12)
    assert summary["best"]["number"] in {t["number"] for t in complete}
    assert summary["best"]["val_acc"] == max(t["val_acc"] for t in complete)
    assert summary["search"]["pruner"] == "median"


def test_a_killed_pruned_search_repeats_no_finished_or_pruned_trial(tmp_path):
    first = PruningLauncher(tmp_path, die_after=6)
    with pytest.raises(KeyboardInterrupt):
        study.run(tmp_path, "k", "cell", ["model=gcn"], PRUNED, CONFIG, first)
    told = {t["number"]: t["state"] for t in study.read_summary(
        study.summary_path(tmp_path, "k"))["trials"] if t["state"] != "RUNNING"}
    assert "PRUNED" in told.values()
    second = PruningLauncher(tmp_path)
    summary = study.run(tmp_path, "k", "cell", ["model=gcn"], PRUNED, CONFIG, second)
    assert all(job not in first.jobs for job in second.jobs)
    assert len(second.jobs) == 8 - 6 + 1  # the trials never launched, then the final
    assert {t["number"]: t["state"] for t in summary["trials"] if t["number"] in told} == told


def test_a_pruned_study_rebuilt_without_its_journal_prunes_as_the_journal_would(tmp_path):
    """The summary keeps every told trial's reported curve, so a fresh clone's rebuilt study
    holds the same intermediate values and its median pruner stops the same new trial: one
    whose value at an epoch is just below the median of what the complete trials reported
    there. Without the curves the rebuilt study had no values to take a median of."""
    import optuna

    from gdepth.search import prune

    summary = study.run(tmp_path, "p", "cell", ["model=gcn"], PRUNED, CONFIG,
                        PruningLauncher(tmp_path))
    journal = optuna.load_study(study_name="p", storage=prune.storage(tmp_path, "p"))
    told = [t for t in journal.get_trials() if t.state in study.FINISHED]
    rebuilt, _ = study.restored(summary, space.check(PRUNED, CONFIG), "cell")
    assert ([t.intermediate_values for t in rebuilt]
            == [t.intermediate_values for t in told])
    assert all(len(t.intermediate_values) >= 2 for t in rebuilt)  # curves, not last values
    epoch = 6
    reported = [t.intermediate_values[epoch] for t in told
                if t.state.name == "COMPLETE" and epoch in t.intermediate_values]
    assert len(reported) >= PRUNED["pruner_startup_trials"]
    below = statistics.median(reported) - 1e-6
    settings = {"pruner": "median", **{short: PRUNED[key] for key, short in prune.SETTINGS.items()}}

    def prunes(trials) -> bool:
        fresh = optuna.create_study(direction="maximize", pruner=prune.pruner(settings))
        fresh.add_trials(trials)
        trial = fresh.ask()
        trial.report(below, epoch)
        return trial.should_prune()

    assert prunes(told) and prunes(rebuilt)
    assert not prunes([optuna.trial.create_trial(  # what a summary without curves restored
        state=t.state, params=t.params, distributions=t.distributions, value=t.value)
        for t in told if t.state.name == "COMPLETE"])


def test_a_trial_pruned_before_its_study_heard_is_told_pruned_on_resume(tmp_path):
    """Killed after the trial's job wrote its pruned record, before the study was told: the
    resumed study launches the trial again, finds that record (the sweeper does not rerun the
    job: ``study.pruned_here``) and tells it pruned, not failed."""
    class KilledAfterWrite(PruningLauncher):
        def __call__(self, jobs):
            out = super().__call__(jobs)
            if any(r["status"] == "pruned" for r in out):
                raise KeyboardInterrupt("killed before the tell")
            return out

    first = KilledAfterWrite(tmp_path)
    with pytest.raises(KeyboardInterrupt):
        study.run(tmp_path, "w", "cell", ["model=gcn"], PRUNED, CONFIG, first)
    job, record = next((list(j), r) for j, r in first.written.items() if r["status"] == "pruned")
    assert study.pruned_here(record, job)
    assert not study.pruned_here(record, [*job[:-1], "trial.interval=3"])  # another job's
    assert not study.pruned_here({**record, "status": "failed"}, job)
    second = PruningLauncher(tmp_path)
    second.written = dict(first.written)  # the records on disk: found, not rerun
    summary = study.run(tmp_path, "w", "cell", ["model=gcn"], PRUNED, CONFIG, second)
    number = next(t["number"] for t in summary["trials"] if t["key"] == record["key"]
                  and t["params"]["train.lr"] == pytest.approx(
                      float(dict(o.split("=", 1) for o in job)["train.lr"])))
    assert summary["trials"][number]["state"] == "PRUNED"
    assert summary["trials"][number]["val_acc"] == pytest.approx(record["pruned"]["val_acc"])


def test_without_a_pruner_a_trial_job_is_as_before(tmp_path):
    launch = Launcher()
    study.run(tmp_path, "n", "cell", ["model=gcn", "trial.number=3"], {**SEARCH, "trials": 2},
              CONFIG, launch)
    assert not any(o.startswith("trial.") for job in launch.jobs for o in job)


@pytest.mark.parametrize("bad, message", [
    ({"pruner": "hyperband"}, "search.pruner=hyperband: unknown pruner; valid: none, median"),
    ({"pruner_interval": 0}, "search.pruner_interval=0: must be a whole number >= 1"),
    ({"pruner_warmup_epochs": -1}, "search.pruner_warmup_epochs=-1: must be a whole number >= 0"),
])
def test_a_bad_pruner_is_refused_in_one_line(bad, message):
    with pytest.raises(space.SearchError, match="^[^\n]*$") as err:
        space.check({**PRUNED, **bad}, CONFIG)
    assert str(err.value) == message


def test_a_resumed_study_asks_new_values_not_its_first_trials_again(tmp_path):
    """The sampler's seed restarts its random sequence: a resumed study must not draw the
    values of its first trials again (they would be the same cells: a wasted trial each)."""
    search = {**SEARCH, "startup_trials": 6}  # every trial drawn at random
    first = Launcher(die_after=2)  # one batch told, the next killed
    with pytest.raises(KeyboardInterrupt):
        study.run(tmp_path, "r", "cell", ["model=gcn"], search, CONFIG, first)
    summary = study.run(tmp_path, "r", "cell", ["model=gcn"], search, CONFIG, Launcher())
    values = [tuple(sorted(t["params"].items())) for t in summary["trials"]]
    lrs = [t["params"]["train.lr"] for t in summary["trials"]]
    assert len(values) == 6 and len(set(lrs)) == 6, values
    fresh = study.run(tmp_path / "fresh", "r", "cell", ["model=gcn"], search, CONFIG,
                      Launcher())  # uninterrupted: the sampler seed's own sequence
    assert [t["params"] for t in fresh["trials"]][:2] == [t["params"]
                                                          for t in summary["trials"]][:2]


class FakeTrial:
    """Optuna's Trial as the reporter uses it: report and should_prune."""

    def __init__(self, prune_at: int | None = None):
        self.reports: dict[int, float] = {}
        self.prune_at = prune_at

    def report(self, value, step):
        assert step not in self.reports  # Optuna ignores (and warns on) a repeated step
        self.reports[step] = value

    def should_prune(self):
        return self.prune_at is not None and max(self.reports) >= self.prune_at


def test_the_reporter_reports_every_interval_the_seeds_mean_and_fills_an_early_end():
    from gdepth.search import prune

    settings = {"pruner": "median", "interval": 2}
    trial = FakeTrial()
    reporter = prune.Reporter(trial, settings, epochs=12, reported={2: 0.1})  # 2: resumed
    for epoch in range(1, 8):  # every seed stopped after epoch 7 (patience)
        reporter(epoch, {0: 0.5 + epoch / 100, 1: math.nan if epoch == 1 else 0.7})
    reporter(1, {5: 0.9})  # a second batch of seeds: not reported
    reporter.finish()
    assert list(trial.reports) == [4, 6, 8, 10, 12]
    assert trial.reports[4] == pytest.approx((0.54 + 0.7) / 2)
    assert trial.reports[8] == trial.reports[12] == pytest.approx((0.57 + 0.7) / 2)
    pruned = prune.Reporter(FakeTrial(prune_at=6), settings, epochs=12, reported={})
    with pytest.raises(prune.Pruned) as stop:
        for epoch in range(1, 13):
            pruned(epoch, {0: epoch / 100})
    assert stop.value.info == {"epoch": 6, "epochs": 12, "val_acc": 0.06, "pruner": "median",
                               "interval": 2}
