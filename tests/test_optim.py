"""Optimiser and schedule factories: each name builds what it says, with the course's numbers."""

from types import SimpleNamespace
from typing import get_args

import pytest
import torch
from torch import nn

from visionsuite.tasks.optim import SCHEDULERS, SchedulerName, build_optimizer, build_scheduler, param_groups


def _model() -> nn.Module:
    return nn.Sequential(nn.Linear(4, 8), nn.BatchNorm1d(8), nn.Linear(8, 2))


@pytest.mark.parametrize(
    ("name", "cls"),
    [("sgd", torch.optim.SGD), ("adam", torch.optim.Adam), ("adamw", torch.optim.AdamW),
     ("rmsprop", torch.optim.RMSprop), ("adagrad", torch.optim.Adagrad)],
)
def test_each_optimizer_name_builds_its_class(name: str, cls: type) -> None:
    opt = build_optimizer(name, _model().parameters(), lr=0.05, weight_decay=2e-5)
    assert isinstance(opt, cls)
    assert opt.param_groups[0]["lr"] == 0.05
    assert opt.param_groups[0]["weight_decay"] == 2e-5


def test_sgd_nesterov_and_momentum_reach_torch() -> None:
    opt = build_optimizer("sgd", _model().parameters(), lr=0.1, momentum=0.9, nesterov=True)
    assert opt.param_groups[0]["momentum"] == 0.9 and opt.param_groups[0]["nesterov"] is True


def test_weight_decay_is_the_l2_gradient() -> None:
    """SGD's weight_decay λ adds λθ to the gradient: one step from θ=1 with zero loss gives 1-lr·λ."""
    w = nn.Parameter(torch.ones(3))
    opt = build_optimizer("sgd", [w], lr=0.1, momentum=0.0, weight_decay=2e-5)
    (w * 0).sum().backward()
    opt.step()
    assert torch.allclose(w.detach(), torch.full((3,), 1 - 0.1 * 2e-5))


def test_no_decay_groups_exempt_biases_and_norms() -> None:
    groups = param_groups(_model(), 1e-4, no_decay_norm_and_bias=True)
    assert [g["weight_decay"] for g in groups] == [1e-4, 0.0]
    assert all(p.ndim > 1 for p in groups[0]["params"]) and all(p.ndim == 1 for p in groups[1]["params"])


def _rates(opt: torch.optim.Optimizer, scheduler: object, steps: int) -> list[float]:
    """The learning rate at each of ``steps`` optimiser steps, the schedule stepped after each."""
    lrs = []
    for _ in range(steps):
        lrs.append(opt.param_groups[0]["lr"])
        opt.step()
        scheduler.step()  # type: ignore[attr-defined]
    return lrs


def test_unknown_names_list_the_choices() -> None:
    with pytest.raises(ValueError, match="sgd, adam, adamw, rmsprop, adagrad"):
        build_optimizer("lamb", _model().parameters(), lr=1.0)
    opt = build_optimizer("sgd", _model().parameters(), lr=1.0)
    with pytest.raises(ValueError, match="multistep, cosine, cosine_time, onecycle, triangular, plateau"):
        build_scheduler("poly", opt, max_epochs=1, total_steps=1)


def test_the_parser_s_scheduler_names_are_the_registry_s() -> None:
    """``SchedulerName`` (what the CLI parser accepts and ``--help`` shows) lists exactly the
    schedules :data:`SCHEDULERS` builds, in its order."""
    assert list(get_args(SchedulerName)) == SCHEDULERS.names()


def test_multistep_decays_lr_from_0_1_to_0_01_at_the_milestone() -> None:
    opt = build_optimizer("sgd", _model().parameters(), lr=0.1)
    cfg = build_scheduler("multistep", opt, max_epochs=4, total_steps=40, milestones=[2], gamma=0.1)
    lrs = _rates(opt, cfg["scheduler"], 4)
    assert lrs == pytest.approx([0.1, 0.1, 0.01, 0.01])
    assert cfg["interval"] == "epoch"


def test_onecycle_steps_per_batch_and_peaks_at_lr() -> None:
    opt = build_optimizer("sgd", _model().parameters(), lr=0.5)
    cfg = build_scheduler("onecycle", opt, max_epochs=1, total_steps=10, warmup_pct=0.3)
    assert cfg["interval"] == "step"
    lrs = _rates(opt, cfg["scheduler"], 10)
    assert max(lrs) == pytest.approx(0.5) and lrs[0] < 0.05 and lrs[-1] < 0.01


def test_triangular_rises_linearly_to_lr_then_falls_linearly_to_zero() -> None:
    """10 steps, 20% warm-up: half the peak, the peak (steps 1 and 2), then down by lr/8 per step."""
    opt = build_optimizer("sgd", _model().parameters(), lr=0.4, nesterov=True)
    cfg = build_scheduler("triangular", opt, max_epochs=1, total_steps=10, warmup_pct=0.2)
    assert cfg["interval"] == "step"
    lrs = _rates(opt, cfg["scheduler"], 10)
    expected = [0.2, 0.4] + [0.4 * (10 - k) / 8 for k in range(2, 10)]
    assert lrs == pytest.approx(expected)
    assert opt.param_groups[0]["nesterov"] is True


def test_triangular_ends_start_and_finish_at_their_fractions_of_lr() -> None:
    """airbench94's triangle: from 0.2 of the peak up, down to 0.07 at the last step (here 0.1),
    hand-computed for 10 steps with a 20% warm-up; through the task's option too."""
    opt = build_optimizer("sgd", _model().parameters(), lr=0.4)
    cfg = build_scheduler("triangular", opt, max_epochs=1, total_steps=10, warmup_pct=0.2, triangular_ends=(0.2, 0.1))
    lrs = _rates(opt, cfg["scheduler"], 10)
    expected = [0.4 * (0.2 + 0.8 / 2), 0.4] + [0.4 * (0.1 + 0.9 * (10 - k) / 8) for k in range(2, 10)]
    assert lrs == pytest.approx(expected)
    from visionsuite.tasks import ClassificationTask

    task = ClassificationTask(backbone="lenet5", num_classes=10, in_chans=1, optimizer="sgd", lr=0.4,
                              scheduler="triangular", warmup_pct=0.2, triangular_ends=(0.2, 0.1))  # fmt: skip
    task._trainer = SimpleNamespace(max_epochs=1, estimated_stepping_batches=10, callbacks=[], max_time=None)
    try:
        config = task.configure_optimizers()
    finally:
        task._trainer = None
    assert _rates(config["optimizer"], config["lr_scheduler"]["scheduler"], 10) == pytest.approx(expected)


def test_plateau_monitors_the_task_metric() -> None:
    opt = build_optimizer("adam", _model().parameters(), lr=1e-3)
    cfg = build_scheduler("plateau", opt, max_epochs=1, total_steps=1, monitor="val/acc", mode="max")
    assert cfg["monitor"] == "val/acc" and cfg["scheduler"].mode == "max"


def test_a_stage_unfrozen_after_the_optimizer_was_built_trains() -> None:
    """Frozen parameters are in the optimiser but not updated; once unfrozen, a step moves them."""
    from visionsuite.backbones import create_backbone

    torch.manual_seed(0)
    model = create_backbone("lenet5", num_classes=10, in_chans=1)
    model.freeze()  # every stage but the head
    opt = build_optimizer("adam", param_groups(model, 0.0, no_decay_norm_and_bias=False), lr=1e-2)
    x, y = torch.randn(8, 1, 28, 28), torch.randint(0, 10, (8,))

    def step() -> dict[str, torch.Tensor]:
        before = {k: v.detach().clone() for k, v in model.named_parameters()}
        opt.zero_grad()
        nn.functional.cross_entropy(model(x), y).backward()
        opt.step()
        return {k for k, v in model.named_parameters() if not torch.equal(before[k], v)}

    changed = step()
    assert changed and all(k.startswith("head.") for k in changed)  # frozen: no gradient, no update
    model.unfreeze()
    changed = step()
    assert any(k.startswith("stages.stage1.") for k in changed), changed


def test_param_groups_carry_their_own_learning_rate() -> None:
    """Discriminative fine-tuning: a lower learning rate for the backbone than for the head."""
    model = _model()
    groups = param_groups(model[:2], 1e-4, no_decay_norm_and_bias=True, lr=1e-4) + param_groups(
        model[2], 1e-4, no_decay_norm_and_bias=False
    )
    opt = build_optimizer("adamw", groups, lr=1e-2, betas=(0.5, 0.99))
    assert [g["lr"] for g in opt.param_groups] == [1e-4, 1e-4, 1e-2]
    assert all(g["betas"] == (0.5, 0.99) for g in opt.param_groups)


def test_norm_biases_step_mult_times_as_far_with_the_same_decay_per_step() -> None:
    """``norm_bias_lr``: a batch-norm bias takes ``mult`` times the plain SGD step on the same
    gradient, every other parameter the plain one, and weight decay alone moves the bias by the
    same ``lr × weight_decay`` as without it (airbench's 64x rate on batch-norm biases)."""
    torch.manual_seed(0)
    x, lr, mult, wd = torch.randn(16, 4), 0.01, 64.0, 0.5
    model = _model()
    groups = param_groups(model, wd, no_decay_norm_and_bias=False, norm_bias_lr=(lr, mult))
    assert [(g["lr"], g["weight_decay"]) for g in groups] == [(lr, wd), (lr * mult, wd / mult)]
    assert [id(p) for p in groups[1]["params"]] == [id(model[1].bias)]

    opt = build_optimizer("sgd", param_groups(model, 0.0, no_decay_norm_and_bias=False, norm_bias_lr=(lr, mult)), lr=lr,
                          momentum=0.0)  # fmt: skip
    model(x).square().mean().backward()
    norm_bias, linear_bias = model[1].bias, model[0].bias
    expected = (norm_bias - lr * mult * norm_bias.grad, linear_bias - lr * linear_bias.grad)
    opt.step()
    torch.testing.assert_close(norm_bias.detach(), expected[0].detach())
    torch.testing.assert_close(linear_bias.detach(), expected[1].detach())

    decayed = []
    for norm_bias_lr in (None, (lr, mult)):
        model = _model()
        model[1].bias.data.fill_(1.0)
        opt = build_optimizer("sgd", param_groups(model, wd, no_decay_norm_and_bias=False, norm_bias_lr=norm_bias_lr),
                              lr=lr, momentum=0.0)  # fmt: skip
        model[1].bias.grad = torch.zeros(8)
        opt.step()
        decayed.append(model[1].bias.detach().clone())
    torch.testing.assert_close(decayed[1], decayed[0])
    torch.testing.assert_close(decayed[0], torch.full((8,), 1 - lr * wd))


def test_norm_bias_lr_mult_reaches_the_task_optimizer_and_refuses_staged_rates() -> None:
    from visionsuite.errors import ConfigError
    from visionsuite.tasks import ClassificationTask

    task = ClassificationTask(backbone="airbench94", num_classes=10, in_chans=3, lr=0.1, norm_bias_lr_mult=64.0)
    opt = task.make_optimizer(task.optimizer_params())
    norms = [m for m in task.modules() if isinstance(m, nn.BatchNorm2d)]
    assert norms and opt.param_groups[-1]["lr"] == pytest.approx(6.4)
    assert {id(p) for p in opt.param_groups[-1]["params"]} == {id(m.bias) for m in norms}
    with pytest.raises(ConfigError, match="norm_bias_lr_mult does not combine"):
        ClassificationTask(backbone="resnet18", num_classes=10, in_chans=3, norm_bias_lr_mult=64.0, frozen_stages=1)


def test_cosine_time_follows_the_budget_clock_not_the_step_count() -> None:
    """Warm-up 0.1 then cosine: at 0, 0.05, 0.1, 0.55, 1.0 and 1.3 of the budget the multipliers
    are 0, 0.5, 1, 0.5, 0 and 0, whichever number of steps came before."""
    fractions = iter([0.0, 0.05, 0.1, 0.55, 1.0, 1.3])
    opt = build_optimizer("sgd", _model().parameters(), lr=0.4)
    cfg = build_scheduler("cosine_time", opt, max_epochs=1, total_steps=1, warmup_pct=0.1, budget_clock=lambda: next(fractions))
    assert cfg["interval"] == "step"
    lrs = [opt.param_groups[0]["lr"]]
    for _ in range(5):
        opt.step()
        cfg["scheduler"].step()
        lrs.append(opt.param_groups[0]["lr"])
    assert lrs == pytest.approx([0.0, 0.2, 0.4, 0.2, 0.0, 0.0])


def test_cosine_time_state_is_checkpoint_data_and_needs_a_clock(tmp_path) -> None:
    opt = build_optimizer("sgd", _model().parameters(), lr=0.4)
    sched = build_scheduler("cosine_time", opt, max_epochs=1, total_steps=1, warmup_pct=0.0, budget_clock=lambda: 0.5)["scheduler"]
    torch.save(sched.state_dict(), tmp_path / "s.pt")
    state = torch.load(tmp_path / "s.pt", weights_only=True)  # no callable in it
    assert "clock" not in state and state["base_lrs"] == [0.4]
    with pytest.raises(ValueError, match="time budget"):
        build_scheduler("cosine_time", opt, max_epochs=1, total_steps=1)
