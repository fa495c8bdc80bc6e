"""The ``visionsuite`` command: LightningCLI subcommands plus a few tools.

    visionsuite fit      --config configs/classification/lenet5_fashion_mnist.yaml [--trainer.max_epochs 3]
    visionsuite fit      --config … --ckpt_path last        # resume the latest run in place
    visionsuite validate|test|predict --config … --ckpt_path best|last|PATH
    visionsuite summary vgg16 --input 3x224x224
    visionsuite backbones [PATTERN]

Each command writes into its own run folder under ``trainer.default_root_dir`` (see
:mod:`visionsuite.runs.folders`); checkpoints are checked by :mod:`visionsuite.runs.checkpoints`.

Errors caused by the user's input are printed as one line (exit status 2).
"""

from __future__ import annotations

import argparse
import contextlib
import os
import re
import sys
from pathlib import Path
from typing import Any, Optional, get_args

from visionsuite.core.tool_parser import ToolParser
from visionsuite.errors import ConfigError, VisionSuiteError


def _lightning_cli(args: list[str] | None) -> Any:
    """Build and run the LightningCLI (imported lazily: ``import lightning`` costs seconds)."""
    import torch
    from lightning.pytorch import LightningDataModule
    from lightning.pytorch.callbacks import LearningRateMonitor
    from lightning.pytorch.cli import LightningCLI, SaveConfigCallback

    import visionsuite.data
    from visionsuite.outputs.csv_history import CSVHistory
    from visionsuite.tasks import BaseTask

    visionsuite.data.import_all()  # registers the data modules: --data FashionMNISTDataModule
    _quiet_lightning()
    if torch.cuda.is_available():
        torch.set_float32_matmul_precision("high")

    class LoggedConfig(SaveConfigCallback):
        """Saves ``config.yaml`` in the run folder and sends the whole resolved config (trainer,
        seed, data and model) to every logger."""

        def save_config(self, trainer: Any, pl_module: Any, stage: str) -> None:
            import yaml

            config = yaml.safe_load(self.parser.dump(self.config, skip_none=False))
            for logger in trainer.loggers:
                logger.log_hyperparams({"config": config})

    class VisionSuiteCLI(LightningCLI):
        """Run folders, checked checkpoints and ``--test_after_fit`` on top of LightningCLI."""

        run_dir: Path | None = None
        resumed = False

        def add_arguments_to_parser(self, parser: Any) -> None:
            parser.add_argument(
                "--test_after_fit",
                type=bool,
                default=True,
                help="After fit, run test on the checkpoint with the best validation score.",
            )
            parser.add_argument(
                "--run_name",
                type=Optional[str],
                default=None,
                help="fit: name of the new run folder (default: a timestamp); with --ckpt_path best|last:"
                " the run to take the checkpoint from (default: the latest).",
            )
            parser.add_argument(
                "--run",
                type=Optional[str],
                default=None,
                help="validate/test/predict: the run to evaluate (its folder, its name under logs/, or latest):"
                " its own config.yaml and --ckpt best (default)|last|PATH; other options may change how it is"
                " run or what it is applied to, not what its weights mean.",
            )
            parser.add_argument(
                "--allow_untrained",
                type=bool,
                default=False,
                help="validate/test/predict without --ckpt_path, on freshly initialised weights.",
            )

            _count_or_fraction(parser)

        def _parse_ckpt_path(self) -> None:
            """Replaces LightningCLI's: resolve the run folder and check the checkpoint (see
            :func:`prepare_run`) instead of letting the checkpoint's hyperparameters override the config."""
            subcommand = self.config.get("subcommand")
            if subcommand:
                self.run_dir, self.resumed = prepare_run(self.config[subcommand], subcommand)
            if subcommand != "fit":  # the checkpoint's own callbacks matter only to a training that resumes
                import warnings

                for text in ("Be aware that when using `ckpt_path`", "The dirpath has changed from"):
                    warnings.filterwarnings("ignore", message=re.escape(text))

        def instantiate_trainer(self, **kwargs: Any) -> Any:
            """The run's callbacks go to the Trainer itself, so they exist before it resolves ``ckpt_path``."""
            trainer_cfg = self.config_init.get(str(self.subcommand), self.config_init).get("trainer", {})
            configured = trainer_cfg.get("callbacks") or []
            configured = configured if isinstance(configured, list) else [configured]
            checkpoint_dir = self.run_dir / "checkpoints" if self.run_dir else None
            from visionsuite.callbacks.assembly import missing_callbacks

            wanted = self.model.run_callbacks(checkpoint_dir) if isinstance(self.model, BaseTask) else []
            extra = missing_callbacks(wanted, configured, checkpointing=trainer_cfg.get("enable_checkpointing") is not False)
            present = {type(cb) for cb in configured}
            if self.subcommand == "fit" and trainer_cfg.get("logger") is not False:
                if LearningRateMonitor not in present:
                    extra.append(LearningRateMonitor(logging_interval="step"))
                if self.resumed and self.run_dir is not None:
                    extra.append(CSVHistory(self.run_dir / "metrics.csv"))
            from lightning.pytorch.callbacks import ProgressBar

            from visionsuite.callbacks.epoch_log import EpochLog
            from visionsuite.core.console import interactive

            # stdout not a terminal (VISIONSUITE_PROGRESS_BAR=1 keeps it), no bar in the config's callbacks:
            # no bar, whose carriage returns would fill a log file; without a bar, one line per epoch
            if not interactive() and not any(isinstance(cb, ProgressBar) for cb in configured):
                kwargs["enable_progress_bar"] = False  # kwargs override the config's trainer options
            bar = kwargs.get("enable_progress_bar", trainer_cfg.get("enable_progress_bar"))
            if self.subcommand == "fit" and bar is False and EpochLog not in present:
                extra.append(EpochLog())
            trainer = super().instantiate_trainer(callbacks=[*configured, *extra], **kwargs)
            _refuse_half_precision_on_cpu(trainer)
            _drop_unset_wandb_anonymous(trainer)
            return trainer

        def after_fit(self) -> None:
            if not self._test_after_fit() and self.trainer.is_global_zero and not self.trainer.interrupted:
                # no test headline (no test data, test_after_fit off, or a task without a headline metric,
                # e.g. a GAN without FID): still one closing line saying what was trained and where it is
                print(f"Fit finished after {self.trainer.global_step} steps; run folder {self.trainer.default_root_dir}")

        def _test_after_fit(self) -> bool:
            """Test the best checkpoint after fit; whether its headline line was printed."""
            if not self.config[self.subcommand].get("test_after_fit", False):
                return False
            if self.trainer.interrupted or not _has_test_data(self.datamodule):
                return False
            best = getattr(self.trainer.checkpoint_callback, "best_model_path", "") or None
            results = self.trainer.test(self.model, datamodule=self.datamodule, ckpt_path=best, weights_only=True)
            if self.trainer.is_global_zero and results:
                return _print_result(results[0], self.model, "test", "best-validation checkpoint" if best else "final weights")
            return False

        def after_test(self) -> None:
            self._closing_line("test")

        def after_validate(self) -> None:
            self._closing_line("val")

        def after_predict(self) -> None:
            """``Predicted 20 image(s) (best-epoch=004-step=640.ckpt, step 640); outputs in …``."""
            if not self.trainer.is_global_zero or not isinstance(self.model, BaseTask):
                return
            loaders = self.trainer.predict_dataloaders
            images = 0
            for loader in loaders if isinstance(loaders, (list, tuple)) else [loaders]:
                with contextlib.suppress(TypeError, AttributeError):  # a loader over an iterable dataset has no length
                    images += len(loader.dataset)
            print(f"Predicted {images} image(s) ({self._which('predict')}); outputs in {self.trainer.default_root_dir}")

        def _which(self, stage: str) -> str:
            """The weights a stage ran on: the checkpoint and its step, or what was loaded without one."""
            from visionsuite.outputs.metrics_file import scored_step

            ckpt = self.trainer.ckpt_path
            hp = self.model.hparams
            pretrained = hp.get("detector_weights") or hp.get("weights")  # zero-shot: the pretrained weights as loaded
            untrained = f"{pretrained} as loaded, no checkpoint" if pretrained else "untrained weights"
            return f"{Path(ckpt).name}, step {scored_step(self.trainer, self.model, stage)}" if ckpt else untrained

        def _closing_line(self, stage: str) -> None:
            """``Test acc (best-epoch=004-step=640.ckpt, step 640): 91.2%``: what was scored, on which weights."""
            if not self.trainer.is_global_zero or not isinstance(self.model, BaseTask):
                return
            metrics = {k: float(v) for k, v in self.trainer.callback_metrics.items()}
            _print_result(metrics, self.model, stage, self._which(stage))

    try:
        cli = _run_cli(VisionSuiteCLI, LoggedConfig, args)
    except BaseException:
        discard_fresh_run()
        raise
    FRESH_RUN.clear()
    return cli


#: the config every ``fit``/``validate``/``test``/``predict`` reads before its ``--config``: the
#: trainer and logger settings the shipped configs share (see the file's header).
BASE_CONFIG = Path(__file__).resolve().with_name("base.yaml")

#: the LightningCLI subcommands the base applies to.
CONFIG_SUBCOMMANDS = ("fit", "validate", "test", "predict")


def _run_cli(cli_class: Any, save_config: Any, args: list[str] | None) -> Any:
    from lightning.pytorch import LightningDataModule

    from visionsuite.tasks import BaseTask

    if not BASE_CONFIG.is_file():
        raise ConfigError(f"{BASE_CONFIG} is missing: the installed package is incomplete (reinstall visionsuite)")
    # abbreviations off: `--trainer.max_epoch 3` is a misspelling to report, not a prefix of max_epochs to take
    base = {name: {"default_config_files": [str(BASE_CONFIG)], "allow_abbrev": False} for name in CONFIG_SUBCOMMANDS}
    return cli_class(
        model_class=BaseTask,
        datamodule_class=LightningDataModule,
        subclass_mode_model=True,
        subclass_mode_data=True,
        seed_everything_default=42,
        auto_configure_optimizers=False,
        save_config_callback=save_config,
        save_config_kwargs={"overwrite": True},  # a resumed run rewrites its own config.yaml
        parser_kwargs={"exit_on_error": False, "allow_abbrev": False, **base},  # errors reach main(), which prints one line
        args=args,
    )


def prepare_run(cfg: Any, subcommand: str) -> tuple[Path, bool]:
    """Resolve ``--ckpt_path``, create (or, to resume, reuse) the run folder and point the config at it.

    ``fit --ckpt_path last`` resumes the latest run (or ``--run_name``) in place; every other
    command gets a new folder. ``best``/``last`` are turned into file paths here, from the run's
    ``checkpoints/`` folder, and any checkpoint is opened weights-only and its model
    hyperparameters compared with the config before Lightning sees it. Returns the run folder
    and whether it is resumed in place.
    """
    from visionsuite.core.notes import warn
    from visionsuite.runs import checkpoints
    from visionsuite.runs import config as run_config
    from visionsuite.runs import folders as runs
    from visionsuite.runs.trained import import_class

    _check_trainer_limits(cfg.trainer, subcommand, cfg.get("test_after_fit", False))
    root = Path(cfg.trainer.get("default_root_dir") or "logs")
    spec, name = cfg.get("ckpt_path"), cfg.get("run_name")
    resumed_dir = os.environ.get(_RUN_DIR_ENV) if os.environ.get("LOCAL_RANK", "0") != "0" else None
    source, ckpt = runs.checkpoint_for_config(root, name, spec) if spec else (None, None)
    if ckpt is None and subcommand != "fit" and not cfg.get("allow_untrained"):
        raise checkpoints.CheckpointError(
            f"{subcommand} needs trained weights: pass --ckpt_path best|last|PATH"
            " (or --allow_untrained true to use freshly initialised weights)"
        )
    if ckpt is not None:
        contents = checkpoints.load_checkpoint(ckpt)
        saved = contents.get("hyper_parameters") or {}
        if subcommand == "fit":
            _check_limits_left(ckpt, contents, cfg.trainer)
        configured = cfg.model.init_args.as_dict() if cfg.model.get("init_args") is not None else {}
        task_class = import_class(cfg.model.class_path) if cfg.model.get("class_path") else None
        resuming = subcommand == "fit"  # a fit from a checkpoint continues that training
        for note in checkpoints.check_settings(ckpt, saved, configured, task_class, resume=resuming):
            warn(note)
        if cfg.get("run"):
            _check_run_inputs(Path(cfg.run), cfg.data)
        cfg.ckpt_path = str(ckpt)
        if "weights_only" in cfg:
            cfg.weights_only = True
    resume = subcommand == "fit" and spec == "last"
    if resumed_dir:
        run_dir = Path(resumed_dir)  # a DDP worker: the folder rank 0 made
    elif resume:
        run_dir = source
    else:
        run_dir = runs.create_run_dir(root, name if subcommand == "fit" else None, "" if subcommand == "fit" else f"-{subcommand}")
        FRESH_RUN.update(root=root, run=run_dir, latest=runs.latest_name(root))
        if subcommand == "fit":
            runs.set_latest(root, run_dir)
    if cfg.get("run") and not resume:  # a new W&B run, not the fit's id from its config.yaml
        for entry in run_config.logger_entries(cfg.trainer):
            if entry.class_path.endswith("WandbLogger") and entry.get("init_args") is not None:
                entry.init_args.id = None
    os.environ[_RUN_DIR_ENV] = str(run_dir)  # inherited by the DDP workers Lightning starts
    cfg.trainer.default_root_dir = str(run_dir)
    for note in run_config.configure_loggers(cfg.trainer, run_dir, resumed=resume):
        warn(note)
    return run_dir, resume


_RUN_DIR_ENV = "VISIONSUITE_RUN_DIR"

#: the run folder this process created (``root``, ``run``, and the ``latest`` it replaced), so a
#: command that fails before it produced anything can take it back (:func:`discard_fresh_run`).
FRESH_RUN: dict[str, Any] = {}


def discard_fresh_run() -> None:
    """Remove the run folder this process created if the command failed before writing anything
    of value into it (no checkpoint, no metrics, no predictions), and put ``latest`` back."""
    import shutil

    from visionsuite.runs import folders as runs

    run, root = FRESH_RUN.pop("run", None), FRESH_RUN.pop("root", None)
    if run is None or not run.is_dir() or os.environ.get("LOCAL_RANK", "0") != "0":
        return
    from visionsuite.callbacks.run_record import holds_results

    if holds_results(run):
        return  # it trained or wrote something: keep it (a checkpoint resumes, metrics show what happened)
    shutil.rmtree(run, ignore_errors=True)
    previous = FRESH_RUN.pop("latest", None)
    if (root / runs.LATEST).exists() or (root / runs.LATEST).is_symlink():
        if runs.latest_name(root) == run.name:
            if previous and (root / previous).is_dir():
                runs.set_latest(root, root / previous)
            else:
                (root / runs.LATEST).unlink(missing_ok=True)


def _check_limits_left(ckpt: Path, contents: dict[str, Any], trainer_cfg: Any) -> None:
    """A resume whose ``max_epochs``/``max_steps`` the checkpoint has reached already: one line
    with the run's epoch or step, the limit, and how to extend it (instead of Lightning's exception)."""
    try:  # an epoch is done when its end ran (processed) after its last batch (else it was cut short)
        fit_loop = contents["loops"]["fit_loop"]
        done = "processed" if fit_loop["epoch_loop.batch_progress"].get("is_last_batch") else "completed"
        epochs = int(fit_loop["epoch_progress"]["current"][done])
    except (KeyError, TypeError, ValueError, AttributeError):
        epochs = int(contents.get("epoch", 0))
    step = int(contents.get("global_step", 0))
    max_epochs, max_steps = trainer_cfg.get("max_epochs"), trainer_cfg.get("max_steps")
    if max_epochs not in (None, -1) and epochs >= max_epochs:
        raise ConfigError(
            f"{ckpt} has trained {epochs} epoch(s) already and trainer.max_epochs is {max_epochs}: nothing is"
            f" left to train; to train longer, resume with --trainer.max_epochs {epochs + 1} or more"
        )
    if max_steps not in (None, -1) and step >= max_steps:
        raise ConfigError(
            f"{ckpt} has trained {step} step(s) already and trainer.max_steps is {max_steps}: nothing is"
            f" left to train; to train longer, resume with --trainer.max_steps {step + 1} or more"
        )


def _check_run_inputs(run: Path, data_cfg: Any) -> None:
    """With ``--run``: the data options that decide what the network sees (normalisation, image
    size, channels; :data:`visionsuite.data.base.INPUT_OPTIONS`) must stay the run's."""
    import yaml

    from visionsuite.data.base import INPUT_OPTIONS
    from visionsuite.runs.checkpoints import CheckpointError, plain_value

    saved = ((yaml.safe_load((run / "config.yaml").read_text()) or {}).get("data") or {}).get("init_args") or {}
    given = data_cfg.get("init_args")
    given = given.as_dict() if hasattr(given, "as_dict") else dict(given or {})
    for key in INPUT_OPTIONS:
        if key in saved and key in given and plain_value(saved[key]) != plain_value(given[key]):
            raise CheckpointError(
                f"--data.init_args.{key}: run {run} was trained with {saved[key]!r}, this command gives"
                f" {given[key]!r}; the input its weights expect cannot change"
            )


#: Trainer arguments where an int is a count of batches and a float a fraction of them.
COUNT_OR_FRACTION = ("limit_train_batches", "limit_val_batches", "limit_test_batches", "limit_predict_batches",
                     "overfit_batches")  # fmt: skip


def _count_or_fraction(parser: Any) -> None:
    """Parse ``limit_val_batches: 1`` as one batch, not as 1.0 (all of them).

    Lightning annotates these ``Optional[Union[int, float]]``, but typing caches unions by
    equality and Fabric's earlier ``Optional[Union[float, int]]`` is the one it hands back
    (Lightning issue #21259), so jsonargparse tries ``float`` first and ``1`` silently became
    every batch. A ``|`` union is not cached, so it keeps ``int`` first.
    """
    from visionsuite.core.private_api import option_action, option_typehint, set_option_typehint

    for key in COUNT_OR_FRACTION:
        action = option_action(parser, f"--trainer.{key}")
        if action is not None:
            nullable = type(None) in get_args(option_typehint(action))  # as Lightning annotated it
            set_option_typehint(action, int | float | None if nullable else int | float)


def _check_trainer_limits(trainer_cfg: Any, subcommand: str, test_after_fit: bool) -> None:
    """``max_steps``/``max_epochs``: -1 (no limit) or ≥ 0; 0 trains nothing, so nothing to test."""
    for key in ("max_steps", "max_epochs"):
        value = trainer_cfg.get(key)
        if value is not None and value < -1:
            raise ConfigError(f"trainer.{key}={value}: use -1 (no limit) or a count ≥ 0")
        if value == 0 and subcommand == "fit" and test_after_fit:
            raise ConfigError(
                f"trainer.{key}=0 trains nothing, and testing the untrained weights says nothing;"
                " set a positive trainer." + key + " (or --test_after_fit false)"
            )


#: Lightning precisions that compute in 16 bits (autocast or true half).
HALF_PRECISIONS = ("16-mixed", "bf16-mixed", "16-true", "bf16-true")


def cpu_has_amx() -> bool:
    """Whether this CPU has AMX bf16 tile units (Sapphire Rapids and later), the only CPUs on
    which 16-bit autocast is not far slower than float32."""
    try:
        return "amx_bf16" in Path("/proc/cpuinfo").read_text()
    except OSError:
        return False


def _refuse_half_precision_on_cpu(trainer: Any) -> None:
    """16-bit precision on a CPU without AMX: one line, instead of a run ~100x slower than float32
    (measured here: bf16 autocast on an AVX-512 CPU). A GPU, or an AMX CPU, runs it."""
    from lightning.pytorch.accelerators import CPUAccelerator

    precision = str(getattr(trainer.precision_plugin, "precision", trainer.precision))
    if precision in HALF_PRECISIONS and isinstance(trainer.accelerator, CPUAccelerator) and not cpu_has_amx():
        raise ConfigError(
            f"trainer.precision={precision} on this CPU (no AMX bf16 units) runs ~100x slower than float32: "
            "use --trainer.precision 32-true here, and 16-bit precision on a GPU"
        )


def _drop_unset_wandb_anonymous(trainer: Any) -> None:
    """Lightning's WandbLogger always hands ``wandb.init`` an ``anonymous`` argument (``None``
    when not asked for), and W&B then prints "The anonymous setting has no effect" on every run:
    leave the argument out when it is unset (the run is created lazily, on first use)."""
    from lightning.pytorch.loggers import WandbLogger

    from visionsuite.core.private_api import wandb_init_arguments

    for logger in trainer.loggers:
        init = wandb_init_arguments(logger)
        if isinstance(logger, WandbLogger) and init is not None and init.get("anonymous") is None:
            init.pop("anonymous", None)


def _data_warnings_on_one_line() -> None:
    """Print the data layer's skipped-and-counted notes (:class:`DataWarning`) as the suite's own
    one-line warnings, not as warnings located in the Lightning file that called the data module."""
    import warnings

    from visionsuite.errors import DataWarning

    shown = warnings.showwarning
    if getattr(shown, "_visionsuite", False):
        return

    def show(message: Any, category: type[Warning], filename: str, lineno: int, file: Any = None, line: Any = None) -> None:
        if issubclass(category, DataWarning):
            print(f"visionsuite: warning: {message}", file=sys.stderr)
        else:
            shown(message, category, filename, lineno, file, line)

    show._visionsuite = True  # type: ignore[attr-defined]
    warnings.showwarning = show


def _quiet_lightning() -> None:
    """Drop Lightning's advertisement tips and a deprecation note from its own internals."""
    import logging
    import warnings

    _data_warnings_on_one_line()

    class NoTips(logging.Filter):
        def filter(self, record: logging.LogRecord) -> bool:
            return not str(record.msg).startswith("💡 Tip")

    for name in ("lightning.pytorch.utilities.rank_zero", "lightning.fabric.utilities.rank_zero"):
        log = logging.getLogger(name)
        if not any(isinstance(f, NoTips) for f in log.filters):
            log.addFilter(NoTips())
    warnings.filterwarnings("ignore", message=r".*isinstance\(treespec, LeafSpec\)")
    warnings.filterwarnings("ignore", message=r"LightningCLI's args parameter")  # main() hands it the (rewritten) argv
    # predict over the suite's resumable loader: the prediction writers name files by the batch's
    # own paths, never by Lightning's batch indices, so the indices it cannot infer are not needed
    warnings.filterwarnings("ignore", message=r"Couldn't infer the batch indices fetched from your dataloader")


def _print_result(metrics: dict[str, float], model: Any, stage: str, which: str) -> bool:
    """One closing line with the headline metric in its own unit, for humans and ``make train``.

    The task names the metric (``headline_key()``: by default the test twin of ``monitor``) and
    its format (``headline_format``: ``"{:.2%}"`` for an accuracy, ``"{:.2f} nats"`` for a loss);
    ``stage`` ``val`` prints its validation twin; ``which`` says which weights were scored.
    Whether a line was printed (not when the task has no headline metric or it was not logged).
    """
    key = model.headline_key()
    if key is None:
        return False
    key = key.replace("test/", f"{stage}/", 1)
    if key not in metrics:
        return False
    title = {"test": "Test", "val": "Validation"}[stage]
    print(f"{title} {key.split('/', 1)[-1]} ({which}): {model.headline_format.format(metrics[key])}")
    return True


def condense_parser_error(message: str) -> str:
    """One line from jsonargparse's nested report: ``<key> (<Class>): <what is wrong>``."""
    lines = [line.strip() for line in message.splitlines() if line.strip()]
    head = re.match(r'Parser key "([^"]+)":', lines[0]) if lines else None
    problem = next((i for i, line in enumerate(lines) if line.startswith("- Problem with given class_path")), None)
    if head is None or problem is None:
        return " ".join(lines)
    cls = re.search(r"class_path '([^']+)'", lines[problem])
    detail: list[str] = []
    for line in lines[problem + 1 :]:
        if line.startswith(("- Expected a <class 'NoneType'>", "Given value")):
            break
        detail.append(line.lstrip("- "))
    where = f"{head.group(1)} ({cls.group(1).rsplit('.', 1)[-1]})" if cls else head.group(1)
    return f"{where}: {' '.join(detail)}"


def _user_error_in_chain(err: BaseException) -> VisionSuiteError | None:
    """The user-facing error behind ``err`` (jsonargparse and Lightning wrap the ones we raise)."""
    seen: set[int] = set()
    current: BaseException | None = err
    while current is not None and id(current) not in seen:
        if isinstance(current, VisionSuiteError):
            return current
        seen.add(id(current))
        current = current.__cause__ or current.__context__
    return None


def _has_test_data(datamodule: Any) -> bool:
    from lightning.pytorch.utilities.model_helpers import is_overridden

    return datamodule is not None and is_overridden("test_dataloader", datamodule)


SUBCOMMANDS = {
    "fit": "train (and, with --test_after_fit, test the best checkpoint) in a new run folder",
    "validate": "score a checkpoint on the validation split",
    "test": "score a checkpoint on the test split",
    "predict": "write predictions of a checkpoint (PredictionCSVWriter: predictions.csv)",
    "summary": "layer table, parameters and FLOPs of a backbone",
    "backbones": "list the backbone names (optionally matching a pattern)",
    "list": "list what a registry holds: backbones, heads, models, losses, optimizers, schedulers or generative",
    "export": "export a checkpoint to ONNX or TorchScript and check it on real test images",
    "predict-exported": "predict with an exported model, without Lightning (a CSV, or masks for segmentation)",
    "ensemble": "score checkpoints and their ensemble (mean/weighted/vote) on the test set",
    "explain": "saliency, Grad-CAM on a stage and first-layer filters of a checkpoint, as PNGs",
    "runs": "list the runs below a folder (default logs/): task, model, status, epochs, best metric, age",
    "compare": "config differences, final/best metrics and overlaid validation curves of runs",
    "convert": "convert detection labels between COCO JSON, YOLO text and Pascal VOC XML",
}

#: subcommands served by a module's ``main(args)``.
TOOLS = {"export": "visionsuite.tools.export", "predict-exported": "visionsuite.tools.exported", "ensemble": "visionsuite.tools.ensemble",
         "explain": "visionsuite.tools.explain", "runs": "visionsuite.tools.runs", "compare": "visionsuite.tools.compare",
         "convert": "visionsuite.tools.convert"}


#: one example per command, for ``visionsuite --help``.
EXAMPLES = {
    "fit": "visionsuite fit --config configs/classification/lenet5_fashion_mnist.yaml",
    "validate": "visionsuite validate --run latest --ckpt last",
    "test": "visionsuite test --run latest",
    "predict": "visionsuite predict --run latest --data.init_args.predict_dir my_images/",
    "summary": "visionsuite summary resnet18 --input 3x224x224",
    "backbones": "visionsuite backbones 'resnet*'",
    "list": "visionsuite list heads",
    "export": "visionsuite export --run latest --format onnx",
    "predict-exported": "visionsuite predict-exported logs/<run>-export/model.onnx my_images/",
    "ensemble": "visionsuite ensemble --run runA --run runB",
    "explain": "visionsuite explain --run latest --stage layer3",
    "runs": "visionsuite runs",
    "compare": "visionsuite compare runA runB",
    "convert": "visionsuite convert --from coco --to yolo instances.json out/ --image_dir images/",
}


def _help() -> str:
    from visionsuite import __version__

    width = max(map(len, SUBCOMMANDS)) + 2
    lines = [f"visionsuite {__version__}: train and evaluate vision models from YAML configs.", "",
             "usage: visionsuite COMMAND [options]   (visionsuite COMMAND --help for its options)", ""]
    for name, text in SUBCOMMANDS.items():
        lines += [f"  {name:<{width}}{text}", f"  {'':<{width}}  e.g. {EXAMPLES[name]}"]
    lines += ["", f"  {'--version':<{width}}print the version and exit", "",
              "A run is the unit: fit makes logs/<stamp>/ (config, checkpoints, metrics, pictures); --run <folder|name|latest>",
              "points every other command at it. A quickstart per task family (classification, segmentation, detection,",
              "autoencoders/VAEs, GANs, transfer, ensembles) is in the README: README.md#quickstart."]
    return "\n".join(lines)


def _backbones(args: list[str]) -> int:
    from visionsuite.backbones import list_backbones

    parser = ToolParser(prog="visionsuite backbones", description=SUBCOMMANDS["backbones"])
    parser.add_argument("pattern", nargs="?", default="*", help="glob pattern, e.g. 'resnet*' (default: all)")
    pattern = parser.parse_args(args).pattern
    print("\n".join(list_backbones(pattern)))
    print("\nExternal: tv/<torchvision model name>, timm/<timm model name>")
    return 0


#: ``visionsuite list KIND``: where each kind's registry lives (imported on request only); a dict
#: of registries (``generative``) is printed one option per line, ``option: name name …``.
LISTS = {
    "backbones": ("visionsuite.backbones", "list_backbones"),
    "heads": ("visionsuite.models.detection.detector", "HEAD_REGISTRY"),
    "models": ("visionsuite.models.segmentation.factory", "model_names"),
    "losses": ("visionsuite.models.segmentation.losses", "LOSSES"),
    "optimizers": ("visionsuite.tasks.optim", "OPTIMIZERS"),
    "schedulers": ("visionsuite.tasks.optim", "SCHEDULERS"),
    "generative": ("visionsuite.models.generative", "CHOICES"),
}


def _list(args: list[str]) -> int:
    """Print the names one registry holds, one per line."""
    import importlib

    parser = ToolParser(prog="visionsuite list", description=SUBCOMMANDS["list"])
    parser.add_argument("kind", choices=list(LISTS), help="backbones, heads (detection), models (segmentation), "
                        "losses (segmentation), optimizers, schedulers or generative (the options of the "
                        "autoencoder, VAE and GAN tasks)")  # fmt: skip
    kind = parser.parse_args(args).kind
    module, attr = LISTS[kind]
    names = getattr(importlib.import_module(module), attr)
    if isinstance(names, dict):
        print("\n".join(f"{option}: {' '.join(registry.names())}" for option, registry in names.items()))
    else:
        print("\n".join(names() if callable(names) else names.names()))
    return 0


def _discard_tool_dirs() -> None:
    """A tool that failed takes back the output folder it made (when nothing was written in it)."""
    if "visionsuite.runs.folders" in sys.modules:
        sys.modules["visionsuite.runs.folders"].discard_empty_tool_dirs()


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``visionsuite`` console script."""
    args = sys.argv[1:] if argv is None else list(argv)
    os.environ.setdefault("TORCH_CPP_LOG_LEVEL", "ERROR")
    try:
        if not args or args[0] in ("-h", "--help"):
            print(_help())
            return 0 if args else 2
        if args[0] == "--version":
            from visionsuite import __version__

            print(f"visionsuite {__version__}")
            return 0
        if args[0] == "summary":
            from visionsuite.tools.summary import main as summary_main

            return summary_main(args[1:])
        if args[0] == "backbones":
            return _backbones(args[1:])
        if args[0] == "list":
            return _list(args[1:])
        if args[0] in TOOLS:
            import importlib

            _quiet_lightning()  # the tools that build a Trainer (ensemble --predict_dir) print as fit does

            try:
                return importlib.import_module(TOOLS[args[0]]).main(args[1:])
            except OSError as err:  # an output folder that cannot be made or written, a full disk
                if err.filename is None:
                    raise
                _discard_tool_dirs()
                print(f"visionsuite: error: {err.filename}: {err.strerror or err} (nothing was written)", file=sys.stderr)
                return 2
        from visionsuite.cli.run_args import expand_run

        if args[0] in ("validate", "test", "predict", "fit"):
            args = [args[0], *expand_run(args[0], args[1:])]
            from visionsuite.cli import help as cli_help

            if cli_help.wants_full_help(args):
                args = [a for i, a in enumerate(args) if not (a in cli_help.FULL and args[i - 1] in ("-h", "--help"))]
            elif cli_help.wants_help(args):
                cli_help.print_help(args[0], args[1:], _lightning_cli)
                return 0
        _lightning_cli(args)
    except argparse.ArgumentError as err:
        _discard_tool_dirs()
        from visionsuite.cli.suggest import explain_unknown_key

        message = explain_unknown_key(condense_parser_error(str(err)), args)
        print(f"visionsuite: error: {message} (see --help)", file=sys.stderr)
        return 2
    except Exception as err:
        _discard_tool_dirs()
        user_error = _user_error_in_chain(err)
        if user_error is None:
            raise
        print(f"visionsuite: error: {user_error}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
