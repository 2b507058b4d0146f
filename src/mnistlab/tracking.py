"""Copy a finished run into MLflow: its settings as parameters, each epoch's numbers as metrics, its files,
and its model as ONNX in MLflow's ``onnx`` flavour (:mod:`mnistlab.tracking_model`).

    from mnistlab.tracking import Tracker
    tracker = Tracker.parse("mlflow", beside="runs")       # --track mlflow: sqlite:///runs/mlflow.db
    tracker.log_run("runs/simple", experiment="mnistlab")  # the MLflow run's id

Built from the run directory's files (``config.json``, ``history.csv``, ``training.json``), after
training: the run stays the record and MLflow a view of it, so a run can be logged again, or later.
Needs ``mnistlab[track]`` (mlflow-skinny; pandas for the model) and, for the model,
``mnistlab[deploy]`` (onnx, onnxruntime). MLflow's telemetry is switched off before it is
imported (``MLFLOW_DISABLE_TELEMETRY``, ``DO_NOT_TRACK``), unless the environment says otherwise.
"""

from __future__ import annotations

import dataclasses
import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mnistlab import runs
from mnistlab.errors import UserError
from mnistlab.fileio import read_json

if TYPE_CHECKING:
    from mnistlab.runconfig import RunConfig

DEFAULT_DB = "mlflow.db"
ARTIFACTS = "mlartifacts"  # beside an SQLite store, one folder per experiment
MAX_ARTIFACT_BYTES = 200 * 2**20  # a run's files are a few MB; a bigger folder is not copied whole


def _mlflow() -> Any:
    os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
    os.environ.setdefault("DO_NOT_TRACK", "true")
    try:
        import mlflow
    except ImportError:
        raise UserError("--track mlflow needs MLflow: pip install 'mnistlab[track]'") from None
    return mlflow


@dataclass(frozen=True)
class Tracker:
    """Where runs are logged: an MLflow tracking URI."""

    uri: str

    @classmethod
    def parse(cls, value: str, *, beside: str | Path) -> Tracker:
        """``mlflow`` (an SQLite store in ``beside``) or ``mlflow:URI``.

        >>> Tracker.parse("mlflow:http://127.0.0.1:5000", beside="runs").uri
        'http://127.0.0.1:5000'
        >>> Tracker.parse("mlflow", beside="/data/runs").uri
        'sqlite:////data/runs/mlflow.db'
        """
        kind, _, uri = value.partition(":")
        if kind != "mlflow":
            raise UserError(f"--track {value!r:.60}: give mlflow or mlflow:URI (e.g. mlflow:sqlite:///mlflow.db)")
        return cls(uri or f"sqlite:///{(Path(beside) / DEFAULT_DB).absolute()}")

    def require(self) -> None:
        """A one-line UserError now, before any training, when MLflow is not installed."""
        _mlflow()

    def _experiment(self, mlflow: Any, name: str) -> str:
        """The experiment's id, made if new; beside an SQLite store its artifacts get a folder there."""
        client = mlflow.tracking.MlflowClient(self.uri)
        found = client.get_experiment_by_name(name)
        if found is not None:
            return found.experiment_id
        location = None
        if self.uri.startswith("sqlite:///"):
            location = (Path(self.uri.removeprefix("sqlite:///")).parent / ARTIFACTS / name).absolute().as_uri()
        return client.create_experiment(name, artifact_location=location)

    def prepare(self, experiment: str) -> None:
        """Create the store and the experiment now (before several processes log into it at once)."""
        self._experiment(_mlflow(), experiment)

    def logged(self, run_dir: str | Path, *, experiment: str) -> str | None:
        """The id of the MLflow run already holding ``run_dir`` in ``experiment``, or None."""
        mlflow = _mlflow()
        client = mlflow.tracking.MlflowClient(self.uri)
        where = str(Path(run_dir).absolute()).replace("'", "\\'")
        found = client.search_runs([self._experiment(mlflow, experiment)],
                                   filter_string=f"tags.`mnistlab.run_dir` = '{where}'", max_results=1)
        return found[0].info.run_id if found else None

    def log_run(self, run_dir: str | Path, *, experiment: str, tags: dict[str, str] | None = None,
                model: bool = True, data_dir: str | None = None) -> str:
        """Log the finished run at ``run_dir``, with its model unless ``model`` is False; the MLflow run's id.

        The model is the run's ONNX export (:mod:`mnistlab.tracking_model`; ``data_dir`` is for its
        self-check). Where it cannot be exported or logged here, one line on stderr says why and the
        run is logged without it.
        """
        mlflow = _mlflow()
        run_dir = Path(run_dir)
        config = runs.read_config(run_dir)
        client = mlflow.tracking.MlflowClient(self.uri)
        experiment_id = self._experiment(mlflow, experiment)
        run = client.create_run(experiment_id, run_name=run_dir.name,
                                tags={"mnistlab.run_dir": str(run_dir.absolute()), **(tags or {})})
        run_id = run.info.run_id
        params = {"arch": config.arch, "framework": config.framework, "dataset": config.dataset,
                  "params": config.params}
        if config.train is not None:
            params.update({k: v for k, v in dataclasses.asdict(config.train).items() if not isinstance(v, dict)})
        for key, value in params.items():
            client.log_param(run_id, key, value)
        for row in runs.read_history(run_dir):
            for key, value in row.items():
                if key != "epoch":
                    client.log_metric(run_id, key, float(value), step=int(row["epoch"]))
        training = run_dir / runs.TRAINING
        if training.is_file():
            summary = read_json(training)
            for key in ("best_val_acc", "best_val_loss", "best_epoch", "train_seconds"):
                if isinstance(summary.get(key), (int, float)):
                    client.log_metric(run_id, key, float(summary[key]))
            client.set_tag(run_id, "mnistlab.stop_reason", str(summary.get("stop_reason")))
        for path in _artifacts(run_dir):
            folder = path.parent.relative_to(run_dir)
            client.log_artifact(run_id, str(path), artifact_path=None if folder == Path(".") else folder.as_posix())
        if model:
            self._log_model(client, run_id, experiment_id, run_dir, config, data_dir)
        client.set_terminated(run_id)
        return run_id

    def _log_model(self, client: Any, run_id: str, experiment_id: str, run_dir: Path, config: RunConfig,
                   data_dir: str | None) -> None:
        """The model beside the run's files, or one line on stderr saying why not (the MLflow run is
        marked failed if logging it breaks)."""
        from mnistlab.tracking_model import log_onnx_model

        try:
            uri = log_onnx_model(self.uri, run_id, experiment_id, run_dir, config, data_dir=data_dir)
        except UserError as exc:
            client.set_tag(run_id, "mnistlab.model", "none")
            print(f"mlflow: {run_dir}: logged without its model: {exc}", file=sys.stderr)
            return
        except BaseException:
            client.set_terminated(run_id, "FAILED")
            raise
        client.set_tag(run_id, "mnistlab.model", uri)


def _artifacts(run_dir: Path) -> list[Path]:
    """The run's regular files (no links, no lock or temporary files), while they stay under the size cap."""
    files, total = [], 0
    for path in sorted(p for p in run_dir.rglob("*") if p.is_file() and not p.is_symlink()):
        if path.name.startswith("."):
            continue
        total += path.stat().st_size
        if total > MAX_ARTIFACT_BYTES:
            break
        files.append(path)
    return files
