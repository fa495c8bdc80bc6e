"""The contract every task family keeps, asserted the same way for each (the shape of smp's
``BaseModelTester``). A family's test module subclasses :class:`TaskTester` as ``Test<Family>Contract``
and declares its tiny config, its overrides, its headline metric, its pictures, its prediction files and
an architecture option to change; the tests below then run for it:

- ``fit`` through the real command writes ``metrics.json`` with the headline metric, the best and last
  checkpoints and ``images/``;
- ``test --run RUN --ckpt best`` scores that checkpoint again: the same headline metric (1e-6), and
  nothing written into the run;
- ``predict --run RUN`` writes the family's files into a new folder beside the run;
- a config whose architecture differs from the checkpoint's is refused at load, one line, exit 2.

The fit runs once per family per session (:meth:`TaskTester.fit_once`); the family module's own tests of
the same run take it from there too. Not collected itself (no ``test_`` file name, no ``Test`` class name).
"""

from __future__ import annotations

import contextlib
import io
import json
import math
import sys
from pathlib import Path
from typing import Any, ClassVar

import pytest

from visionsuite.cli.app import main


class TaskTester:
    #: the tiny config (``tests/configs/`` or a shipped one), and what the fit adds to it
    config: ClassVar[str]
    overrides: ClassVar[tuple[str, ...]] = ()
    #: the fixture whose path is the run's ``--data.init_args.data_dir``
    data_dir_fixture: ClassVar[str] = "data_root"
    #: the headline test metric, ``metrics.json``'s key (``test/acc``, ``test/miou``, ``test/map``…)
    metric: ClassVar[str]
    #: glob patterns under ``<run>/images/``, each to match a picture
    images: ClassVar[tuple[str, ...]]
    #: the checkpoint the fit's test scored: ``best``, or ``last`` for a task that keeps no best
    checkpoint: ClassVar[str] = "best"
    #: glob patterns under the ``<stamp>-predict`` folder, each to match a file; ``None``: the family has no predict
    predictions: ClassVar[tuple[str, ...] | None]
    predict_overrides: ClassVar[tuple[str, ...]] = ()
    #: an architecture option of ``model.init_args`` and a value other than the fit's
    mismatch: ClassVar[tuple[str, str]]

    #: one fit per class per session: ``{class: {"run": Path, "stdout": str}}`` (or the reason it failed)
    _fitted: ClassVar[dict[type, dict[str, Any] | str]] = {}

    @classmethod
    def fit_args(cls, request: pytest.FixtureRequest, root: Path) -> list[str]:
        """The ``fit`` command line; a family that needs a file made at test time extends it."""
        data_dir = request.getfixturevalue(cls.data_dir_fixture)
        return ["fit", "--config", cls.config, "--data.init_args.data_dir", str(data_dir),
                "--trainer.default_root_dir", str(root), *cls.overrides, "--run_name", "fit"]  # fmt: skip

    @classmethod
    def fit_once(cls, request: pytest.FixtureRequest) -> dict[str, Any]:
        """``{"run": the run folder, "stdout": what the fit printed}``, the fit run on the first call."""
        if cls not in TaskTester._fitted:
            TaskTester._fitted[cls] = f"the fit of {cls.__name__} failed in an earlier test"
            root = request.getfixturevalue("tmp_path_factory").mktemp(cls.__name__)
            args = cls.fit_args(request, root)
            out = io.StringIO()
            try:
                with contextlib.redirect_stdout(out):
                    code = main(args)
            finally:
                sys.stdout.write(out.getvalue())  # shown by pytest when a test fails
            assert code == 0, f"fit exited {code}: {' '.join(args)}"
            TaskTester._fitted[cls] = {"run": root / "fit", "stdout": out.getvalue()}
        fitted = TaskTester._fitted[cls]
        if isinstance(fitted, str):
            pytest.fail(fitted)
        return fitted

    @pytest.fixture
    def run(self, request: pytest.FixtureRequest, mirror: Path) -> Path:
        """The fitted run (real data: skipped without the dataset mirror)."""
        return type(self).fit_once(request)["run"]

    # -- the contract ------------------------------------------------------------------------------
    def test_fit_writes_metrics_checkpoints_and_images(self, run: Path) -> None:
        metrics = json.loads((run / "metrics.json").read_text())
        assert self.metric in metrics and math.isfinite(metrics[self.metric]), sorted(metrics)
        assert (run / "checkpoints" / "last.ckpt").is_file()
        best = sorted(p.name for p in (run / "checkpoints").glob("best-*.ckpt"))
        assert len(best) == (1 if self.checkpoint == "best" else 0), best
        for pattern in self.images:
            assert list((run / "images").glob(pattern)), f"no images/{pattern} in {sorted(p.name for p in (run / 'images').glob('*'))}"

    def test_test_run_reproduces_the_fitted_metric(self, run: Path) -> None:
        fitted = json.loads((run / "metrics.json").read_text())[self.metric]
        folder = self.command(run, "test", "--ckpt", self.checkpoint)
        again = json.loads((folder / "metrics.json").read_text())[self.metric]
        assert again == pytest.approx(fitted, abs=1e-6), f"test --run scored {self.metric} {again}, the fit's test {fitted}"

    def test_predict_run_writes_the_family_files(self, run: Path) -> None:
        if self.predictions is None:
            pytest.skip(f"{type(self).__name__}: the family writes no predictions")
        folder = self.command(run, "predict", *self.predict_overrides)
        for pattern in self.predictions:
            assert list(folder.glob(pattern)), f"predict wrote no {pattern}: {sorted(str(p.relative_to(folder)) for p in folder.rglob('*'))}"

    def test_a_mismatched_architecture_is_refused_in_one_line(self, run: Path, capsys: pytest.CaptureFixture[str]) -> None:
        option, value = self.mismatch
        capsys.readouterr()
        try:
            code = main(["test", "--run", str(run), f"--model.init_args.{option}", value])
        except Exception as error:  # a traceback, not a one-line refusal
            raise AssertionError(f"{option}={value}: {type(error).__name__}: {error}"[:2000]) from error
        err = capsys.readouterr().err
        lines = [line for line in err.strip().splitlines() if line.startswith("visionsuite: error: ")]
        assert code == 2 and len(lines) == 1 and "Traceback" not in err, err[-2000:]
        assert "other model settings" in lines[0] and f"{option}: checkpoint=" in lines[0], lines[0]

    # -- helpers -----------------------------------------------------------------------------------
    @staticmethod
    def command(run: Path, subcommand: str, *args: str) -> Path:
        """Run ``subcommand --run RUN *args``; the one folder it made beside the run (``<stamp>-<subcommand>``).
        The run itself is left as it was."""
        before, siblings = _files(run), set(run.parent.iterdir())
        assert main([subcommand, "--run", str(run), *args]) == 0
        made = [p for p in set(run.parent.iterdir()) - siblings if p.name.endswith(f"-{subcommand}")]
        assert len(made) == 1, made
        assert _files(run) == before, f"{subcommand} --run wrote into the run folder"
        return made[0]


def _files(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}
