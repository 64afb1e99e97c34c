"""The run-directory leaf's reader of a run's evaluation history (summary.json's `evals`, in either form)."""

import json
import math
from pathlib import Path

import pytest

from sac_runner.objectives import objective
from sac_runner.rundir import EVAL_FIELDS, Evaluation, eval_records, read_evals

DATA = Path(__file__).parent / "data" / "v0.1.0"
ARRAYS = [[300, -1787.8, 4.9, -1792.7, -1782.9], [600, -1408.7, 102.3, -1511.0, -1306.5], [900, -900.0, 0, -900, -900]]
LABELLED = [dict(zip(("env_steps", "mean", "std", "min", "max"), e)) for e in ARRAYS]


def test_both_forms_read_the_same():
    assert EVAL_FIELDS == ("env_steps", "mean", "std", "min", "max")
    old, new = read_evals(ARRAYS), read_evals(LABELLED)
    assert old == new and all(isinstance(e, Evaluation) for e in new)
    assert [e.env_steps for e in new] == [300, 600, 900] and isinstance(new[0].env_steps, int)
    assert [e.mean for e in new] == [-1787.8, -1408.7, -900.0] and new[1].std == 102.3
    assert new[0].min == -1792.7 and new[0].max == -1782.9
    assert new[0][0] == 300 and new[0][1] == -1787.8  # still indexable like the old arrays
    # the written form: labelled, read back unchanged, from either form (the checkpoint keeps the arrays)
    assert eval_records(ARRAYS) == eval_records(LABELLED) == [dict(e._asdict()) for e in new]
    assert json.loads(json.dumps(eval_records(ARRAYS))) == LABELLED
    assert read_evals(json.loads(json.dumps(eval_records(ARRAYS)))) == old
    assert read_evals(None) == read_evals([]) == [] and read_evals(tuple(ARRAYS)) == old
    assert read_evals([{**LABELLED[0], "note": "a later field"}]) == old[:1]  # other keys are ignored
    assert math.isnan(read_evals([[300, float("nan"), 0, 0, 0]])[0].mean)  # a diverged run's evaluation


@pytest.mark.parametrize("env_id", ["Pendulum-v1", "CartPoleContinuous-v1"])
def test_summaries_written_by_0_1_0_are_read(env_id):
    evals = json.loads((DATA / env_id / "summary.json").read_text())["evals"]
    assert isinstance(evals[0], list)
    history = read_evals(evals)
    assert [list(e) for e in history] == evals
    assert read_evals(eval_records(evals)) == history


@pytest.mark.parametrize(
    ("evals", "message"),
    [
        ("[[1, 2]]", "is not an evaluation record: expected {env_steps, mean, std, min, max}"),
        ('[{"env_steps": 1, "mean": 2}]', "evaluation 0 ({'env_steps': 1, 'mean': 2}) is not an evaluation record: no"),
        ('{"env_steps": 1}', "evals must be a list of evaluations, not dict"),
        ('[[100, 1, 0, 1, 1], ["a", 1, 0, 1, 1]]', "evaluation 1"),
        ("[[true, 1, 0, 1, 1]]", "a boolean is not a number"),
        ("[[100, null, 0, 1, 1]]", "evaluation 0"),
        ("[7]", "evaluation 0 (7)"),
    ],
)
def test_anything_else_is_one_clear_error(evals, message):
    with pytest.raises(ValueError) as e:
        read_evals(json.loads(evals))
    assert message in str(e.value) and "\n" not in str(e.value)


@pytest.mark.parametrize("metric", ["final", "best", "auc"])
def test_the_objective_is_the_same_from_either_form(metric):
    value = objective(ARRAYS, metric, 2)
    assert value == objective(LABELLED, metric, 2) == objective(read_evals(LABELLED), metric, 2)
    assert math.isfinite(value)


def test_tensorboard_hparams_read_either_form(make_cfg, tmp_path):
    """sweeps/hparams.py's metrics (the HParams dashboard's final return) from a summary in either form."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    from sac_runner.sweeps import hparams

    cfg = make_cfg("env=Pendulum-v1")
    finals = []
    for name, evals in (("arrays", ARRAYS), ("labelled", LABELLED)):
        run_dir = tmp_path / name
        summary = {"evals": evals, "best_return": -900.0, "objective": -1000.0, "env_steps": 900}
        assert hparams.write(cfg, run_dir, summary) is not None
        events = EventAccumulator(str(run_dir / "tensorboard"))
        events.Reload()
        finals.append([e.value for e in events.Scalars("hparams/final")])
    assert finals[0] == finals[1] == [-900.0]
