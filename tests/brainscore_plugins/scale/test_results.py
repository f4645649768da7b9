"""The results table (Parquet, atomic, one row per pair, migrated), the published scores, units and metrics it carries,
`score` and `results` on the command line."""
from __future__ import annotations

import json
import math
import multiprocessing

import numpy as np
import pandas as pd
import pytest

from brainscore_plugins import catalog, cli
from brainscore_plugins.scale import published_scores, results, scoring, units
from brainscore_plugins.errors import BenchmarkNotFoundError, ResultsTableError


def _row(identifier="spvvs_resnet18_imagenet_full", benchmark="bsp-synthetic.IT-pls", status="ok", score=0.5, **kw):
    return {"identifier": identifier, "benchmark": benchmark, "status": status, "score": score,
            "error_message": "" if status == "ok" else "RuntimeError: boom", "epoch": 100, "family": "spvvs",
            "schema_version": results.SCHEMA_VERSION, **kw}


def test_append_round_trip_keeps_the_schema(tmp_path):
    path = tmp_path / "deep" / "results.parquet"
    results.append([_row(), _row(benchmark="bsp-synthetic-i2n", epoch=None)], path)
    table = results.read(path)
    assert list(table.columns) == list(results.COLUMNS)
    assert {c: str(t) for c, t in table.dtypes.items()} == {c: str(pd.Series(dtype=d).dtype)
                                                           for c, d in results.COLUMNS.items()}
    assert table.epoch.tolist()[0] == 100 and table.epoch.isna().tolist() == [False, True]
    assert table.score.tolist() == [0.5, 0.5] and (table.error_message == "").all()
    assert sorted(p.name for p in path.parent.iterdir()) == ["results.parquet", "results.parquet.lock"]


def test_one_row_per_pair_ok_kept_failed_replaced(tmp_path):
    path = tmp_path / "results.parquet"
    results.append([_row(status="failed", score=math.nan), _row(benchmark="b2", score=0.1)], path)
    table = results.append([_row(score=0.7), _row(benchmark="b2", score=0.9)], path)
    assert len(table) == 2
    by_benchmark = table.set_index("benchmark")
    assert by_benchmark.loc["bsp-synthetic.IT-pls", "score"] == 0.7  # the failure was replaced
    assert by_benchmark.loc["b2", "score"] == 0.1  # an ok row is never replaced
    assert results.scored(table) == {("spvvs_resnet18_imagenet_full", "bsp-synthetic.IT-pls", "", ""),
                                     ("spvvs_resnet18_imagenet_full", "b2", "", "")}
    failed = results.append([_row(identifier="other", status="failed", score=math.nan)], path)
    assert ("other", "bsp-synthetic.IT-pls", "", "") in results.scored(failed)
    assert ("other", "bsp-synthetic.IT-pls", "", "") not in results.scored(failed, retry_failed=True)


def test_another_precision_or_pipeline_is_another_row_and_is_swept(tmp_path, monkeypatch):
    """A bfloat16 or training-config score of a pair scored in float32 with the default pipeline is a row of its
    own (never dropped as a duplicate), and a sweep in that configuration scores it instead of skipping it."""
    from brainscore_plugins import settings
    from brainscore_plugins.scale import sweep
    path = tmp_path / "results.parquet"
    float32 = _row(preprocessing="", extractor="fast", precision="float32", score=0.5)
    results.append([float32], path)
    monkeypatch.delenv(settings.PRECISION, raising=False)
    monkeypatch.delenv(settings.PREPROCESSING, raising=False)
    assert sweep.plan([float32["identifier"]], [float32["benchmark"]], results.read(path)) == []
    monkeypatch.setenv(settings.PRECISION, "bfloat16")
    [task] = sweep.plan([float32["identifier"]], [float32["benchmark"]], results.read(path))
    assert task.benchmarks == (float32["benchmark"],)
    table = results.append([{**float32, "precision": "bfloat16", "score": 0.49},
                            {**float32, "preprocessing": "training-config", "score": 0.45}], path)
    assert sorted(zip(table.precision, table.preprocessing, table.score)) == [
        ("bfloat16", "", 0.49), ("float32", "", 0.5), ("float32", "training-config", 0.45)]
    assert sweep.plan([float32["identifier"]], [float32["benchmark"]], results.read(path)) == []


def test_a_failed_write_leaves_the_old_table_and_no_partial_file(tmp_path, monkeypatch):
    path = tmp_path / "results.parquet"
    results.append([_row()], path)
    before = path.read_bytes()

    def half_written(self, target, **kwargs):
        open(target, "wb").write(b"PAR1 half")
        raise OSError("disk full")

    monkeypatch.setattr(pd.DataFrame, "to_parquet", half_written)
    with pytest.raises(OSError, match="disk full"):
        results.append([_row(benchmark="b2")], path)
    assert path.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["results.parquet", "results.parquet.lock"]


def _append_many(path, worker):
    for i in range(12):
        results.append([_row(identifier=f"model{worker}", benchmark=f"b{i}")], path)


def test_concurrent_writers_lose_nothing(tmp_path):
    path = tmp_path / "results.parquet"
    context = multiprocessing.get_context("spawn")
    workers = [context.Process(target=_append_many, args=(path, w)) for w in range(2)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(120)
    assert [w.exitcode for w in workers] == [0, 0]
    table = results.read(path)
    assert len(table) == 24 and not table.duplicated(["identifier", "benchmark"]).any()


def test_older_schema_migrated_newer_and_foreign_files_refused(tmp_path):
    old = tmp_path / "old.parquet"
    pd.DataFrame({"identifier": ["a", "b"], "benchmark": ["x", "x"], "score": [0.3, np.nan],
                  "note": ["kept out", ""]}).to_parquet(old)
    table = results.read(old)
    assert list(table.columns) == list(results.COLUMNS)
    assert table.status.tolist() == ["ok", "failed"] and (table.schema_version == results.SCHEMA_VERSION).all()
    assert table.unit.tolist() == ["fraction"] * 2 and table.metric.tolist() == ["brainscore"] * 2
    assert table.preprocessing.tolist() == ["unknown"] * 2
    appended = results.append([_row(identifier="c", benchmark="x")], old)
    assert appended.identifier.tolist() == ["a", "b", "c"]

    newer = tmp_path / "newer.parquet"
    results.frame([_row()]).assign(schema_version=results.SCHEMA_VERSION + 1).to_parquet(newer)
    with pytest.raises(ResultsTableError, match="newer than this brainscore-plugins reads.*upgrade"):
        results.read(newer)
    foreign = tmp_path / "foreign.parquet"
    pd.DataFrame({"a": [1]}).to_parquet(foreign)
    with pytest.raises(ResultsTableError, match="no column identifier, benchmark, score"):
        results.read(foreign)
    garbage = tmp_path / "garbage.parquet"
    garbage.write_text("identifier,benchmark\n")
    with pytest.raises(ResultsTableError, match="is not a results table \\(Parquet\\)"):
        results.read(garbage)
    assert results.read(tmp_path / "absent.parquet").empty


def test_version_1_rows_are_fractions_with_their_metric_and_preprocessing_unknown(tmp_path):
    """A table of schema version 1 (no metric, unit, preprocessing) scored every benchmark in fractions, the Algonauts
    ones included (their metric unrecorded); migrated, its rows say so, and a new row keeps its own labels."""
    path = tmp_path / "v1.parquet"
    version_1 = [column for column in results.COLUMNS if column not in ("metric", "unit", "preprocessing")]
    rows = [_row(score=0.55, schema_version=1), _row(identifier="grouplin_phase1-fmri", family="grouplin",
                                                     benchmark="algonauts2023-direct", score=0.41, schema_version=1)]
    frame = results.frame(rows)[version_1].astype({"schema_version": "Int64"})
    frame.to_parquet(path)
    assert results.read(path)[["benchmark", "score", "unit", "metric", "preprocessing", "schema_version"]] \
        .values.tolist() == [["bsp-synthetic.IT-pls", 0.55, "fraction", "brainscore", "unknown", 3],
                             ["algonauts2023-direct", 0.41, "fraction", "", "unknown", 3]]
    new = _row(identifier="grouplin_phase2-fmri", benchmark="algonauts2023-test-direct", score=61.0, unit="percent",
               metric="noise_normalized_r2", preprocessing="")
    table = results.append([new], path)
    assert table.unit.tolist() == ["fraction", "fraction", "percent"]
    assert results.read(path).metric.tolist() == ["brainscore", "", "noise_normalized_r2"]
    assert (results.read(path).schema_version == 3).all()


def test_version_2_rows_were_float32_by_an_unrecorded_extractor(tmp_path):
    """Before schema 3 every forward pass ran in float32 and the extractor was not recorded; migrated rows say so,
    and count as scored for a float32 sweep."""
    path = tmp_path / "v2.parquet"
    version_2 = [column for column in results.COLUMNS if column not in ("extractor", "precision")]
    results.frame([_row(preprocessing="", schema_version=2)])[version_2].to_parquet(path)
    table = results.read(path)
    assert table[["extractor", "precision", "schema_version"]].values.tolist() == [["unknown", "float32", 3]]
    assert results.scored(table) == {("spvvs_resnet18_imagenet_full", "bsp-synthetic.IT-pls", "", "float32")}


def test_select_and_export(tmp_path):
    table = results.frame([_row(), _row(identifier="hlvit_x", benchmark="b2", family="hlvit", epoch=None),
                           _row(identifier="spvvs_a.ep3", status="failed", score=math.nan, epoch=3)])
    assert results.select(table, identifier="spvvs_*").identifier.tolist() == ["spvvs_resnet18_imagenet_full",
                                                                                "spvvs_a.ep3"]
    assert results.select(table, status="failed", epoch=3).identifier.tolist() == ["spvvs_a.ep3"]
    assert results.select(table, family="hlvit", benchmark="b?").identifier.tolist() == ["hlvit_x"]
    with pytest.raises(ValueError, match="cannot filter on score"):
        results.select(table, score="1")
    results.export(table, tmp_path / "t.csv", "csv")
    results.export(table, tmp_path / "t.json", "json")
    assert pd.read_csv(tmp_path / "t.csv").identifier.tolist() == table.identifier.tolist()
    assert [r["status"] for r in json.loads((tmp_path / "t.json").read_text())] == ["ok", "ok", "failed"]


def test_published_scores_of_the_study():
    """The study's own score of a checkpoint, its per-epoch scores, the site's for a final checkpoint; none for
    other families."""
    latest = catalog.resolve("spvvs_resnet18_imagenet_full")
    assert published_scores.published_score(latest, "MajajHong2015public.IT-pls") == pytest.approx(0.5497394832)
    reference = pd.read_csv(published_scores.DATA / "study_scores.csv")
    epoch_row = reference[~reference.latest].iloc[0]
    entry = catalog.resolve(f"spvvs_{epoch_row.model_id}.ep{epoch_row.epoch}")
    assert published_scores.published_score(entry, epoch_row.benchmark) == pytest.approx(epoch_row.score)
    site = catalog.resolve("spvvs_convnext_base_imagenet_full_seed-0")
    assert published_scores.published_score(site, "FreemanZiemba2013.V1-pls") == pytest.approx(0.21)
    assert math.isnan(published_scores.published_score(latest, "bsp-synthetic.IT-pls"))
    hlvit = catalog.resolve("hlvit_vits14_1.0_1")
    assert math.isnan(published_scores.published_score(hlvit, "MajajHong2015public.IT-pls"))


def test_published_scores_of_the_algonauts_studies():
    """GroupLin's README scores (percent) on its validation split and the challenge test split; every row of the data
    file is what the lookup answers, in its benchmark's unit, with a source; ScalingVisionEncoder has none yet."""
    phase1, phase2 = catalog.resolve("grouplin_phase1"), catalog.resolve("grouplin_phase2")
    assert published_scores.published_score(phase1, "algonauts2023-lane2023val-direct") == 20.4
    assert published_scores.published_score(phase1, "algonauts2023-test-direct") == 58.8
    assert published_scores.published_score(phase2, "algonauts2023-lane2023val-direct") == 20.9
    assert published_scores.published_score(phase2, "algonauts2023-test-direct") == 60.3
    # the dev-kit split: unpublished
    assert math.isnan(published_scores.published_score(phase1, "algonauts2023-direct"))
    assert math.isnan(published_scores.published_score(phase1, "algonauts2023-test-r2-direct"))  # another metric
    table = pd.read_csv(published_scores.ALGONAUTS, keep_default_na=False)
    assert list(table.columns) == ["family", "identifier", "benchmark", "score", "unit", "metric", "source", "note"]
    assert not table.duplicated(["identifier", "benchmark"]).any()
    for row in table.itertuples():
        entry = catalog.resolve(row.identifier)
        assert (entry.identifier, entry.family) == (row.identifier, row.family)
        assert row.unit == units.unit(row.benchmark) == units.PERCENT and row.metric in units.LABELS
        assert row.source.startswith("https://") and published_scores.published_score(entry, row.benchmark) == row.score
    listed = dict(zip(zip(table.identifier, table.benchmark), table.score))
    svenc = catalog.entries("svenc")
    assert len(svenc) == 7
    for entry in svenc:  # the paper's per-encoder test scores once found; none recorded now
        expected = listed.get((entry.identifier, "algonauts2023-test-ridge"), math.nan)
        published = published_scores.published_score(entry, "algonauts2023-test-ridge")
        assert published == pytest.approx(expected, nan_ok=True)


def _fake_score(value, **attrs):
    from brainscore_core.metrics import Score

    def score(model, benchmark):
        found = Score(value)
        found.attrs.update(attrs)
        return found
    return score


def test_an_algonauts_row_is_labelled_percent_with_its_metric_beside_the_published_score(monkeypatch):
    import brainscore_vision
    from brainscore_core.metrics import Score

    monkeypatch.setattr(brainscore_vision, "score", _fake_score(60.0, error=Score(0.5), ceiling=Score(100.0),
                                                                raw=Score(0.6), metric="noise_normalized_r2",
                                                                unit="percent"))
    row, failure = scoring.score_row("grouplin_phase1-fmri", "algonauts2023-test-direct")
    assert failure is None and (row["score"], row["raw"], row["ceiling"]) == (60.0, 0.6, 100.0)
    assert (row["unit"], row["metric"], row["published_score"]) == ("percent", "noise_normalized_r2", 58.8)
    assert row["published_difference"] == pytest.approx(1.2) and row["preprocessing"] == ""
    monkeypatch.setattr(brainscore_vision, "score", _fake_score(31.0, raw=Score(0.31), metric="pearson_r2"))
    row, _ = scoring.score_row("svenc_eva02-clip-base", "algonauts2023-test-r2-ridge")
    assert (row["unit"], row["metric"], math.isnan(row["published_score"])) == ("percent", "pearson_r2", True)
    assert units.label(row["metric"]) == "raw r² (no noise ceiling)"

    def failing(model, benchmark):
        raise RuntimeError("no challenge data")

    monkeypatch.setattr(brainscore_vision, "score", failing)
    row, _ = scoring.score_row("grouplin_phase2-fmri", "algonauts2023-lane2023val-direct")
    assert (row["status"], row["unit"], row["metric"], row["published_score"]) == ("failed", "percent", "", 20.9)
    table = results.frame([row])
    assert table.loc[0, "unit"] == "percent" and table.loc[0, "schema_version"] == results.SCHEMA_VERSION


def test_a_row_names_a_preprocessing_other_than_the_familys_default(monkeypatch):
    """'' for the family's default pipeline; the pipeline's name otherwise (the activations identifier's
    ``-<pipeline>-preprocessing``), also when the score failed on an unknown one."""
    import brainscore_vision
    from brainscore_plugins import factory, settings

    monkeypatch.setattr(brainscore_vision, "score", _fake_score(0.5))
    assert scoring.score_row("spvvs_resnet18_imagenet_full", "bsp-synthetic.IT-pls")[0]["preprocessing"] == ""
    monkeypatch.setenv(settings.PREPROCESSING, "training-config")
    row, _ = scoring.score_row("spvvs_resnet18_imagenet_full", "bsp-synthetic.IT-pls")
    assert row["preprocessing"] == "training-config" == factory.preprocessing_variant("spvvs_resnet18_imagenet_full")
    assert factory.preprocessing_variant("hlvit_vits14_1.0_1") == ""  # training-config is hlvit's default
    assert factory.preprocessing_variant("spvvs_resnet18_imagenet_full", "brainscore") == ""
    monkeypatch.setenv(settings.PREPROCESSING, "square")

    def failing(model, benchmark):
        raise ValueError("Unknown preprocessing 'square'")

    monkeypatch.setattr(brainscore_vision, "score", failing)
    row, failure = scoring.score_row("spvvs_resnet18_imagenet_full", "bsp-synthetic.IT-pls")
    assert isinstance(failure, ValueError) and row["preprocessing"] == "square" and row["status"] == "failed"


def test_a_row_carries_the_model_commitment_and_published_score(monkeypatch):
    import brainscore_vision
    from brainscore_core.metrics import Score

    def fake_score(model, benchmark):
        score = Score(0.5)
        score.attrs.update(error=Score(0.01), ceiling=Score(0.8), raw=Score(0.4))
        return score

    monkeypatch.setattr(brainscore_vision, "score", fake_score)
    row, failure = scoring.score_row("spvvs_resnet18_imagenet_full", "MajajHong2015public.IT-pls")
    assert failure is None and row["status"] == "ok"
    assert (row["score"], row["error"], row["ceiling"], row["raw"]) == (0.5, 0.01, 0.8, 0.4)
    assert row["published_difference"] == pytest.approx(0.5 - 0.5497394832)
    assert (row["unit"], row["metric"], row["preprocessing"]) == ("fraction", "brainscore", "")
    assert json.loads(row["layers"])["behavior"] == "avgpool" and row["commitment_source"].startswith("published:")
    assert row["epoch"] == 100 and row["wall_s"] >= 0 and row["peak_rss_mb"] > 0
    assert row["brainscore_vision_version"] != "unknown" and row["timestamp"].endswith("+00:00")

    def failing(model, benchmark):
        raise RuntimeError("no data\nsecond line")

    monkeypatch.setattr(brainscore_vision, "score", failing)
    row, failure = scoring.score_row("spvvs_resnet18_imagenet_full", "MajajHong2015public.IT-pls")
    assert isinstance(failure, RuntimeError) and row["status"] == "failed" and math.isnan(row["score"])
    assert row["error_message"] == "RuntimeError: no data"


def test_unknown_benchmark_named_with_close_matches(linked):
    with pytest.raises(BenchmarkNotFoundError, match="did you mean bsp-synthetic.IT-pls"):
        scoring.check_benchmarks(["bsp-synthetic.IT-pls", "bsp-synthetic.IT-plz"])
    assert "MajajHong2015public.IT-pls" in scoring.known_benchmarks()


def test_cli_score_writes_rows_and_reports_failures_after_the_others(linked, tmp_path, monkeypatch, capsys):
    import brainscore_vision
    from brainscore_core.metrics import Score

    def flaky(model, benchmark):
        if benchmark == "bsp-synthetic-i2n":
            raise ValueError("bad stimuli\nmore detail")  # one line on the command line
        return Score(0.25)

    monkeypatch.setattr(brainscore_vision, "score", flaky)
    path = tmp_path / "r.parquet"
    status = cli.main(["score", "resnet18_imagenet_full", "spvvs_resnet34_imagenet_full", "bsp-synthetic-i2n",
                       "bsp-synthetic.IT-pls", "--results", str(path)])
    captured = capsys.readouterr()
    assert status == 2, captured  # every failure was an input error
    assert captured.out.splitlines()[0].startswith("spvvs_resnet18_imagenet_full bsp-synthetic.IT-pls: 0.2500 "
                                                   "(Brain-Score (ceiled); error")
    assert [line for line in captured.err.splitlines() if line.startswith("error:")] == [
        f"error: {m} on bsp-synthetic-i2n: bad stimuli" for m in ("spvvs_resnet18_imagenet_full",
                                                                  "spvvs_resnet34_imagenet_full")]
    table = results.read(path)
    assert len(table) == 4 and sorted(table.status) == ["failed", "failed", "ok", "ok"]

    assert cli.main(["score", "resnet18_imagenet_full", "bsp-synthetic.IT-plz", "--results", str(path)]) == 2
    assert cli.main(["score", "no_such_model", "bsp-synthetic.IT-pls", "--results", str(path)]) == 2
    assert len(results.read(path)) == 4  # nothing ran
    assert cli.main(["results", "--results", str(path), "--status", "failed", "--format", "csv", "-o",
                     str(tmp_path / "f.csv")]) == 0
    assert len(pd.read_csv(tmp_path / "f.csv")) == 2
    (tmp_path / "bad.parquet").write_text("nope")
    assert cli.main(["results", "--results", str(tmp_path / "bad.parquet")]) == 2
    assert "is not a results table" in capsys.readouterr().err


@pytest.mark.parametrize("bound, value", [("MAX_ROWS", 1000), ("MAX_DECODED_BYTES", 20_000)])
def test_a_table_beyond_the_bounds_is_refused_from_its_metadata(tmp_path, monkeypatch, bound, value):
    """A few-kilobyte Parquet file can declare millions of rows: the metadata is checked before anything is read."""
    path = tmp_path / "bomb.parquet"
    pd.DataFrame({"identifier": ["x"] * 5000, "benchmark": ["b" * 20] * 5000, "score": np.arange(5000.0)}).to_parquet(
        path, index=False)
    assert len(results.read(path)) == 5000  # within the default bounds
    monkeypatch.setattr(results, bound, value)
    monkeypatch.setattr(pd, "read_parquet", lambda *a, **k: pytest.fail("read before the bounds were checked"))
    with pytest.raises(ResultsTableError, match=rf"{path} declares 5,000 rows and [\d,]+ bytes of results columns, "
                                                r"beyond what a results table holds"):
        results.read(path)


def test_columns_of_no_schema_are_never_read(tmp_path, monkeypatch):
    path = tmp_path / "extra.parquet"
    pd.DataFrame({"identifier": ["x"], "benchmark": ["b"], "score": [0.5], "junk": ["j" * 100_000]}).to_parquet(
        path, index=False)
    read_columns = []
    real = pd.read_parquet
    monkeypatch.setattr(pd, "read_parquet", lambda p, columns=None, **k: read_columns.append(columns) or real(
        p, columns=columns, **k))
    table = results.read(path)
    assert read_columns == [["identifier", "benchmark", "score"]] and "junk" not in table
    assert table.score.tolist() == [0.5] and table.status.tolist() == ["ok"]


def test_an_unusable_table_is_refused_before_anything_is_scored(tmp_path, monkeypatch, capsys):
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    monkeypatch.setattr(scoring, "score_row", lambda *a, **k: pytest.fail("scored before the table was checked"))
    for path, reason in ((blocker / "results.parquet", "is not a folder"), (tmp_path, "is not a file")):
        with pytest.raises(ResultsTableError, match=rf"cannot write the results table {path} \(.*{reason}"):
            results.check_writable(path)
        assert cli.main(["score", "resnet18_imagenet_full", "bsp-synthetic.IT-pls", "--results", str(path)]) == 2
        assert capsys.readouterr().err.startswith(f"error: cannot write the results table {path}")
    (tmp_path / "bad.parquet").write_text("not parquet")
    with pytest.raises(ResultsTableError, match="bad.parquet is not a results table"):
        results.check_writable(tmp_path / "bad.parquet")
    assert results.check_writable(tmp_path / "new" / "results.parquet") == tmp_path / "new" / "results.parquet"
    assert not (tmp_path / "new").exists()  # probed, not created


def test_exact_filters_are_pushed_down_into_the_parquet_read(tmp_path, monkeypatch, capsys):
    path = tmp_path / "results.parquet"
    results.append([_row("spvvs_a.ep1", "b1", epoch=1), _row("spvvs_a.ep2", "b1", epoch=2),
                    _row("spvvs_a.ep2", "b2", status="failed", score=float("nan"), epoch=2)], path)
    seen = []
    real = pd.read_parquet
    monkeypatch.setattr(pd, "read_parquet", lambda p, **k: seen.append(k.get("filters")) or real(p, **k))
    assert results.read(path, where={"epoch": 2, "status": None}).identifier.tolist() == ["spvvs_a.ep2"] * 2
    assert seen[-1] == [("epoch", "==", 2)]
    assert cli.main(["results", "--results", str(path), "--status", "ok", "--benchmark", "b1", "--identifier",
                     "spvvs_a.*", "--format", "csv"]) == 0
    assert seen[-1] == [("status", "==", "ok"), ("benchmark", "==", "b1")]  # the glob is matched after the read
    assert capsys.readouterr().out.count("spvvs_a.ep") == 2
