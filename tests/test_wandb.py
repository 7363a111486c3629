"""logger=wandb: offline by default, and the offline run holds the scalars, config, plots and table.

The run's ``.wandb`` file is read back record by record with wandb's own protobuf schema
(``wandb.proto.wandb_internal_pb2.Record``); wandb 0.31 no longer ships a Python reader for it.
"""

from __future__ import annotations

import json
import struct
from pathlib import Path

import pytest

from hih.pipeline import compose, train

pytestmark = pytest.mark.slow

PNG = b"\x89PNG\r\n\x1a\n"

from tiny import tiny  # noqa: E402  (tests/tiny.py)


def read_records(path: Path):
    """Records of a .wandb transaction log: a 7-byte header, then 32 KiB blocks of chunks, each chunk
    ``crc32 (4) | length (2, little-endian) | type (1: full, 2: first, 3: middle, 4: last) | data``."""
    from wandb.proto import wandb_internal_pb2 as pb

    data = path.read_bytes()
    assert data[:4] == b":W&B", f"{path} is not a W&B transaction log"
    block, pos, pending = 32768, 7, b""
    while pos + 7 <= len(data):
        if block - pos % block < 7:  # a block's tail too short for a chunk header is zero padding
            pos += block - pos % block
            continue
        _crc, length, kind = struct.unpack("<IHB", data[pos : pos + 7])
        pending += data[pos + 7 : pos + 7 + length]
        pos += 7 + length
        if kind in (1, 4):
            record = pb.Record()
            record.ParseFromString(pending)
            pending = b""
            yield record
    assert not pending, f"{path} ends inside a record"


class OfflineRun:
    """What one offline run logged, folded the way the W&B UI shows it."""

    def __init__(self, run_dir: Path):
        (self.log,) = run_dir.glob("run-*.wandb")
        self.dir = run_dir
        self.config: dict = {}
        self.summary: dict[str, object] = {}
        self.history: list[dict[str, object]] = []
        self.files: list[str] = []
        self.run = None
        self.kinds: list[str] = []
        for record in read_records(self.log):
            kind = record.WhichOneof("record_type")
            if kind == "run":
                self.run = record.run
                self.config.update(self._items(record.run.config.update))
            elif kind == "config":
                self.config.update(self._items(record.config.update))
            elif kind == "summary":
                self.summary.update(self._items(record.summary.update))
            elif kind == "history":
                self.history.append(self._items(record.history.item))
            elif kind == "files":
                self.files += [f.path for f in record.files.files]
            self.kinds.append(kind)
        assert self.run is not None, f"{self.log} holds no run record; records: {self.kinds}"

    @staticmethod
    def _items(items) -> dict[str, object]:
        # Nested summary values (images, tables) arrive as one item per leaf: key path joined by ".".
        return {(item.key or ".".join(item.nested_key)): json.loads(item.value_json) for item in items}


@pytest.fixture
def wandb_env(tmp_path, monkeypatch):
    """Offline, silent, every wandb folder inside tmp_path, no key: nothing may reach the network."""
    for name, value in {
        "WANDB_MODE": "offline",
        "WANDB_SILENT": "true",
        "WANDB_DIR": tmp_path / "wandb_dir",
        "WANDB_CONFIG_DIR": tmp_path / "wandb_config",
        "WANDB_CACHE_DIR": tmp_path / "wandb_cache",
        "WANDB_DATA_DIR": tmp_path / "wandb_data",
    }.items():
        monkeypatch.setenv(name, str(value))
    monkeypatch.delenv("WANDB_API_KEY", raising=False)
    return tmp_path


def test_wandb_logger_is_offline_by_default():
    cfg = compose("train", ["logger=wandb"], output_dir="/tmp/unused")
    wandb_cfg = cfg.logger.wandb
    assert wandb_cfg.offline is True
    assert wandb_cfg.project == "hih"
    assert wandb_cfg.group == "train" and list(wandb_cfg.tags) == ["quickstart", "hih_l", "synthetic"]
    assert wandb_cfg.name == "hih_l-synthetic-s42"


def test_offline_run_holds_metrics_config_plots_and_table(wandb_env, data_dir, tmp_path):
    import wandb

    run_dir = tmp_path / "run"
    cfg = compose("train", tiny(data_dir, "model=baseline", "logger=wandb"), output_dir=run_dir)
    metrics = train(cfg)
    assert wandb.run is None, "the W&B run must be finished when train() returns"
    # finish() returns before wandb-core has flushed the .wandb file; teardown waits for the service
    # to exit (what the atexit hook does at the end of a CLI run).
    wandb.teardown()

    (offline,) = (run_dir / "wandb").glob("offline-run-*")  # offline: never a run-* synced dir
    logged = OfflineRun(offline)

    assert logged.run.project == "hih" and logged.run.run_group == "train"
    assert logged.run.display_name == "baseline-synthetic-s42"
    assert set(logged.run.tags) == {"quickstart", "baseline", "synthetic"}
    # The resolved Hydra config, nested as composed.
    assert logged.config["model"]["name"] == "baseline"
    assert logged.config["data"]["input_size"] == 64
    assert logged.config["paths"]["output_dir"] == str(run_dir)
    # Scalars: every test metric in the summary, equal to metrics.json; training curves in the history.
    written = json.loads((run_dir / "metrics.json").read_text())
    assert written == metrics
    for key, value in written.items():
        assert logged.summary[key] == pytest.approx(value, rel=1e-6), key
    assert any("train/loss_epoch" in row for row in logged.history)
    assert any("val/nme" in row for row in logged.history)
    # The interval timing (hih.callbacks.IntervalLog), for a dashboard of loader-bound runs.
    timed = [row for row in logged.history if "time/data_share" in row]
    assert timed and all({"time/step_s", "time/data_s", "throughput/img_s"} <= set(row) for row in timed)
    # The plots as images and the results as a table, with their files in the run.
    for key in ("test/ced", "test/predictions"):
        assert logged.summary[f"{key}._type"] == "images/separated"
        (name,) = logged.summary[f"{key}.filenames"]
        assert name in logged.files
        assert (offline / "files" / name).read_bytes()[:8] == PNG
    assert logged.summary["test/results._type"] == "table-file"
    table = json.loads((offline / "files" / logged.summary["test/results.path"]).read_text())
    assert table["columns"][:4] == ["subset", "nme", "fr_10", "auc_10"]
    rows = {row[0]: dict(zip(table["columns"], row)) for row in table["data"]}
    assert set(rows) == {"full", "pose", "expression", "illumination", "makeup", "occlusion", "blur"}
    assert rows["full"]["nme"] == pytest.approx(written["test/nme"])
    assert rows["pose"]["fr_10"] == pytest.approx(written["test/fr_10/pose"])

    # A second run in the same process (as in a Hydra multirun) gets a run of its own.
    second_dir = tmp_path / "second"
    ckpt = run_dir / "checkpoints" / "last.ckpt"
    cfg = compose(
        "train", tiny(data_dir, "model=wsm", "logger=wandb", "train=false", f"ckpt_path={ckpt}"), output_dir=second_dir
    )
    second = train(cfg)
    wandb.teardown()
    (offline2,) = (second_dir / "wandb").glob("offline-run-*")
    logged2 = OfflineRun(offline2)
    assert logged2.run.run_id != logged.run.run_id
    assert logged2.config["model"]["name"] == "wsm"
    assert logged2.summary["test/nme"] == pytest.approx(second["test/nme"], rel=1e-6)
    assert wandb.run is None


def test_offline_run_holds_head_metrics(wandb_env, data_dir, tmp_path):
    """The compensation-head metrics reach W&B (summary and per-validation history)."""
    import wandb

    run_dir = tmp_path / "run"
    metrics = train(compose("train", tiny(data_dir, "model=hih_c", "logger=wandb"), output_dir=run_dir))
    wandb.teardown()
    (offline,) = (run_dir / "wandb").glob("offline-run-*")
    logged = OfflineRun(offline)
    for key in ("test/decimal_acc", "test/decimal_gain", "test/nme_integer_corner"):
        assert logged.summary[key] == pytest.approx(metrics[key], rel=1e-6), key
    for key in ("val/decimal_acc", "val/decimal_gain", "val/nme_integer", "train/decimal_acc"):
        assert any(key in row for row in logged.history), key
