"""``brainscore-plugins``: list, inspect, fetch, commit, score, sweep and package the catalogued models; keep their
scores in a results table, fit the study's scaling laws, report; link them into Brain-Score; run the offline demo.

Exit status: 0 success, 2 a usage error (unknown identifier, bad option or input file), 1 a runtime failure (weights
unavailable, invalid checkpoint, commitment failed, disk), 130 interrupted. Errors are one line on stderr, never a
traceback. Heavy modules (torch, Brain-Score) are imported by the commands that need them, not by ``--help``.
"""
from __future__ import annotations

import argparse
import contextlib
import json
import os
import sys

from . import families, settings
from .errors import BrainscorePluginsError, ModelNotFoundError

USAGE, RUNTIME = 2, 1


class _Parser(argparse.ArgumentParser):
    """argparse's, with a usage error on one line (status 2) instead of the usage text and the error."""

    def error(self, message):
        self.exit(USAGE, f"error: {self.prog}: {message} (see {self.prog} --help)\n")


def _version() -> str:
    return settings.installed_version("brainscore-plugins")


def _selection(args) -> list[str]:
    from . import catalog
    return catalog.select(args.patterns, family=args.family, arch=args.arch, dataset=args.dataset,
                          checkpoints=args.checkpoints)


def _list(args) -> None:
    identifiers = _selection(args)
    if not args.json:
        print("\n".join(identifiers))
        return
    from . import catalog
    print(json.dumps([catalog.row(i, catalog.resolve(i)) for i in identifiers], indent=1))


def _resolved(identifier: str):
    """(the registered identifier: a catalog identifier, study ids resolved, or a family's ``<identifier>-fmri``;
    the catalog entry), resolving the identifier once."""
    from . import catalog, families
    base = identifier.removesuffix(families.FMRI_SUFFIX)
    entry = catalog.resolve(base)
    if base == identifier:
        return entry.identifier_of(identifier), entry
    if not families.get(entry.family).fmri_predictor:
        catalog.resolve(identifier)  # raises: a family without fMRI predictors registers no such name
    return entry.identifier_of(base) + families.FMRI_SUFFIX, entry


def _info(args) -> None:
    from . import catalog, provenance
    identifier, entry = _resolved(args.identifier)
    record = provenance.map_provenance(args.identifier, entry)
    print(json.dumps({**catalog.row(identifier, entry), "map_provenance": record}, indent=2))


def _fetch(args) -> None:
    from . import catalog, factory
    print(factory.weights_path(catalog.resolve(args.identifier)))


def _forge(args) -> None:
    import zlib
    from . import catalog, forge
    mirror = args.mirror or settings.mirror()
    if not mirror:
        raise ValueError(f"forge needs a mirror folder to write into: pass --mirror DIR or set ${settings.MIRROR}")
    identifiers = _selection(args)
    print(f"forging {len(identifiers)} checkpoint(s) of random weights into {mirror}; use them with a throwaway "
          f"${settings.CACHE} and ${settings.DATA}: the weights are random, never the published ones", file=sys.stderr)
    for identifier in identifiers:
        checkpoint = catalog.resolve(identifier).identifier  # a model's bare name forges its latest checkpoint's file
        print(forge.forge_into_mirror(identifier, mirror, args.seed + zlib.crc32(checkpoint.encode())))


def _link(args) -> None:
    from . import bridge
    print("\n".join(bridge.link()))


def _unlink(args) -> None:
    from . import bridge
    print("\n".join(bridge.unlink()) or "nothing to unlink")


def _generate(args) -> None:
    from . import plugin_sources
    for prefix in families.prefixes():
        n_ids, n_maps = plugin_sources.write(prefix)
        print(f"{prefix}: {n_ids} registry lines, {n_maps} region maps")


def _parse_pairs(pairs, option: str) -> dict[str, str]:
    parsed = {}
    for pair in pairs or []:
        region, sep, value = pair.partition("=")
        if not sep or not region or not value:
            raise ValueError(f"{option} must look like REGION=VALUE, got {pair!r}")
        parsed[region] = value
    return parsed


def _time_bin(text: str | None) -> tuple[float, float] | None:
    if text is None:
        return None
    try:
        start, end = (float(v) for v in text.split(","))
    except ValueError:
        raise ValueError(f"--time-bin must look like START,END in ms (e.g. 70,170), got {text!r}") from None
    return start, end


def _commit(args) -> None:
    import region_commitment
    from . import factory

    name, entry = _resolved(args.identifier)
    if entry.region_layer_map and not args.output:
        raise ValueError(f"{name} has a published commitment in the catalog; pass --output DIR to write a "
                         f"recomputed one there")
    benchmarks = _parse_pairs(args.benchmark, "--benchmark")
    for region, files in _parse_pairs(args.assembly, "--assembly").items():
        files = files.split(",")
        if region == region_commitment.BEHAVIOR:
            if len(files) != 3:
                raise ValueError("--assembly behavior=TRIALS.nc,STIMULI.csv,FITTING.csv needs three files")
            benchmarks[region] = region_commitment.from_behavioral_files(*files)
        else:
            if len(files) != 2:
                raise ValueError(f"--assembly {region}=ASSEMBLY.nc,STIMULI.csv needs two files")
            benchmarks[region] = region_commitment.from_files(*files, region, time_bin=_time_bin(args.time_bin))
    layers = args.layers[0] if args.layers in (["default"], ["study"]) else args.layers
    result, written = factory.commit(name, benchmarks or None, layers=layers, reference=args.reference,
                                     n_components=args.n_components, readout=args.readout, output=args.output,
                                     progress=not args.quiet, entry=entry)
    print(json.dumps({"identifier": name, "region_layer_map": result.region_layer_map,
                      "behavioral_readout_layer": result.behavioral_readout_layer,
                      "files": {kind: str(path) for kind, path in written.items()}}, indent=2))


def _split_score_arguments(words: list[str]) -> tuple[list[str], list[str]]:
    """``score ID... BENCHMARK...``: the words an installed plugin registers as benchmarks, and the rest (models),
    each list non-empty; every model is resolved to (identifier, catalog entry) (an unknown one raises)."""
    from .scale import scoring
    known = set(scoring.known_benchmarks())
    words = list(dict.fromkeys(words))  # each pair once
    benchmarks = [w for w in words if w in known]
    models = [w for w in words if w not in known]
    if not benchmarks:
        scoring.check_benchmarks(models[-1:])  # names the unknown benchmark, with close matches
    if not models:
        raise ValueError("score needs at least one model identifier before the benchmarks")
    return [_resolved(m) for m in models], benchmarks


def _score(args) -> int:
    """``brainscore_vision.score`` of every model x benchmark, one line each, a row each in the results table; first
    a warning line when a benchmark's data chose the model's layers (``provenance.selection_overlap``). Failures are
    reported after the others ran: status 2 when each was an input error, else 1."""
    import logging
    from . import families, provenance
    from .scale import results, scoring, units

    _require_linked()
    models, benchmarks = _split_score_arguments(args.words)
    if not args.no_results:
        results.check_writable(args.results)  # before minutes of scoring, not after
    failures = []
    for name, entry in models:
        for benchmark in benchmarks:
            overlap = None if name.endswith(families.FMRI_SUFFIX) else \
                provenance.selection_overlap(name, benchmark, entry)
            if overlap:
                logging.getLogger(__name__).warning("warning: %s", overlap)
            row, failure = scoring.score_row(name, benchmark, entry)
            if not args.no_results:
                results.append([row], args.results)
            if failure is not None:
                failures.append((name, benchmark, failure))
                continue
            sign = " %" if row["unit"] == units.PERCENT else ""
            published = "" if row["published_score"] != row["published_score"] else \
                f", published {row['published_score']:.4f}{sign}"
            print(f"{name} {benchmark}: {row['score']:.4f}{sign} ({units.label(row['metric']) or 'metric unknown'}; "
                  f"error {row['error']:.4f}{sign}, ceiling {row['ceiling']:.4f}{sign}{published})", flush=True)
    for name, benchmark, failure in failures:
        print(f"error: {name} on {benchmark}: {scoring.first_line(failure, kind=False)}", file=sys.stderr)
    return max((_exit_status(failure) for _, _, failure in failures), default=0)


def _require_linked() -> None:
    """Brain-Score finds our models and benchmarks only through the links ``link`` makes."""
    from . import bridge
    from .errors import NotLinkedError
    if not bridge.is_linked():
        raise NotLinkedError("our plugins are not linked into the installed brainscore_vision, so it cannot find "
                             "them (it would fail with 'No registrations found'); run `brainscore-plugins link` once "
                             "in this environment")


def _sweep(args) -> int:
    """The sweep's JSON summary on standard output (each failed pair with its reason); status 1 when a pair
    failed."""
    from .scale import sweep
    _require_linked()
    if args.quiet:
        os.environ["TQDM_DISABLE"] = "1"  # Brain-Score's bars too: tqdm reads it where the model processes start
    summary = sweep.sweep(_selection(args), args.benchmarks, args.results, engine=args.engine, jobs=args.jobs,
                          address=args.address, workers=args.workers, cpus=args.cpus, memory_gb=args.memory_gb,
                          gpus=args.gpus, retry_failed=args.retry_failed, progress=not args.quiet)
    print(json.dumps({"models": summary.models, "rows": summary.rows, "failed": summary.failed,
                      "skipped": summary.skipped, "seconds": round(summary.seconds, 1),
                      "models_per_hour": round(summary.models_per_hour, 1), "failures": summary.failures}))
    return RUNTIME if summary.failed else 0


def _results(args) -> None:
    from .scale import results
    exact = {column: getattr(args, column) for column in ("identifier", "benchmark", "family", "arch", "dataset")
             if getattr(args, column) and not any(c in getattr(args, column) for c in "*?[")}
    read = results.read(args.results, where={"status": args.status, "epoch": args.epoch, **exact})  # pushed down
    table = results.select(read, epoch=args.epoch, identifier=args.identifier,
                           benchmark=args.benchmark, family=args.family, arch=args.arch, dataset=args.dataset,
                           status=args.status)
    if args.format == "table":
        columns = ["identifier", "benchmark", "status", "score", "unit", "metric", "error", "ceiling",
                   "published_score", "wall_s"]
        print(table[columns].to_string(index=False) if len(table) else "no rows")
    elif args.output:
        results.export(table, args.output, args.format)
        print(f"{len(table)} rows -> {args.output}")
    else:
        print(table.to_csv(index=False) if args.format == "csv" else table.to_json(orient="records", indent=1))


def _scored_rows(path):
    """The results table at ``path``; a ``ValueError`` when it has no rows."""
    from .scale import results
    table = results.read(path)
    if table.empty:
        raise ValueError(f"the results table {path or results.default_path()} has no rows; score models first "
                         f"(`brainscore-plugins score` or `sweep`)")
    return table


def _noise_ceiling(args) -> None:
    from tqdm.auto import tqdm

    from .algonauts import data, noise_ceiling
    root = data.resolve_root(args.data_dir)
    subjects = [data.load_subject(name, root) for name in args.subject or data.SUBJECTS]  # all checked first
    summaries = [noise_ceiling.write(subject, args.nsd)
                 for subject in tqdm(subjects, desc="noise-ceiling inputs", disable=len(subjects) < 2)]
    print(json.dumps(summaries, indent=1))


def _scaling_fit(args) -> None:
    from .scale import laws
    table = laws.study_table() if args.published else laws.from_results(_scored_rows(args.results))
    fitted = laws.fit(table, bootstrap=args.bootstrap, seed=args.seed, progress=not args.quiet)
    written = laws.save(fitted, args.output)
    print(json.dumps({"curves": len(fitted.curves), "skipped": fitted.skipped,
                      "files": {name: str(path) for name, path in written.items()}}, indent=2))


def _report(args) -> None:
    import tempfile
    from pathlib import Path
    from . import catalog, committed_maps, families
    from .scale import report, report_figures

    table = _scored_rows(args.results)
    folders = [Path(folder) for folder in args.commitments or []]
    for folder in folders:
        if not folder.is_dir():
            raise ValueError(f"--commitments {folder} is not a folder; pass a folder `commit --output` wrote into")
    scaling = []
    if args.scaling:
        plots = sorted(Path(args.scaling).glob("scaling_*.png"))
        if not plots:
            raise ValueError(f"--scaling {args.scaling} holds no scaling_*.png; pass the folder `scaling fit -o` "
                             f"wrote")
        summary = Path(args.scaling) / "scaling_fit.json"
        source = json.loads(summary.read_text()).get("source_table", "") if summary.is_file() else ""
        fitted = "the study's published scores" if source.endswith("study_scores.csv") else source or "its table"
        scaling = [(p, f"{p.stem.removeprefix('scaling_')}: the study's laws fitted to {fitted} (`scaling fit`)")
                   for p in plots]
    # one dictionary lookup per identifier: no close-match suggestions for the uncatalogued ones
    entries = {i: catalog.lookup(i.removesuffix(families.FMRI_SUFFIX)) for i in dict.fromkeys(table.identifier)}
    written = {}  # layer-commitment plots in the --commitments folders (DIR/layer_scores/ or DIR/*/layer_scores/)
    for folder in folders:
        for plot in sorted(folder.glob("layer_scores/*.png")) + sorted(folder.glob("*/layer_scores/*.png")):
            written.setdefault(plot.stem, plot)
    layer_plots, shown = [], set()
    for identifier, entry in entries.items():
        base = identifier.removesuffix(families.FMRI_SUFFIX)
        names = [identifier, base] + ([entry.identifier] + [entry.bare_identifier] * entry.latest if entry else [])
        plot = next((written[n] for n in names if n in written), None)
        if plot is None and entry is not None and (found := committed_maps.locate(entry, base)):
            plot = found[0] / "layer_scores" / f"{found[1]}.png"
        if plot is not None and plot.is_file() and plot not in shown:
            shown.add(plot)
            layer_plots.append((plot, f"{identifier} (layer scores in {plot.parent})"))
    parameters = {i: e.n_params for i, e in entries.items() if e is not None and e.n_params}
    with tempfile.TemporaryDirectory(prefix="brainscore-report-") as scratch:
        images = report_figures.write(table, scratch, parameters=parameters, bootstrap=args.bootstrap,
                                      progress=not args.quiet)
        images.update({"Layer commitments": layer_plots, f"Scaling fits read from {args.scaling}": scaling})
        print(report.write_report(table, args.output, images={k: v for k, v in images.items() if v},
                                  title=args.title))


def _package(args) -> None:
    from . import packaging
    made = packaging.package(_selection(args), args.output, name=args.name)
    print(json.dumps({"folder": str(made.folder) if made.folder else None, "zip": str(made.zip),
                      "identifiers": len(made.identifiers), "zip_bytes": made.size_bytes}, indent=2))


def _demo(args) -> None:
    from .demo import run_demo
    run_demo(args.identifier, args.benchmark, args.workdir)


def _selection_options(parser, what: str, required: bool = False) -> None:
    parser.add_argument("patterns", nargs="+" if required else "*", metavar="PATTERN",
                        help=f"identifiers, study model ids or shell globs "
                             f"({what}{'' if required else '; default: all'})")
    parser.add_argument("--family", choices=families.prefixes(), help="only this model family")
    parser.add_argument("--arch", help="only this architecture (a value or glob of the catalog's arch column)")
    parser.add_argument("--dataset", help="only this training data set (a value or glob)")
    parser.add_argument("--checkpoints", action="store_true",
                        help="globs also select every epoch checkpoint, not only each model's latest")


def _results_option(parser) -> None:
    parser.add_argument("--results", metavar="FILE.parquet",
                        help=f"the results table (default: results.parquet in ${settings.DATA})")


def _command(commands, name: str, run, text: str):
    parser = commands.add_parser(name, help=text, description=text)
    parser.set_defaults(run=run)
    return parser


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="brainscore-plugins", description=__doc__, epilog=settings.help_text(),
                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--version", action="version", version=f"%(prog)s {_version()}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = _command(commands, "list", _list, "print the registered identifiers, one per line (or JSON)")
    _selection_options(p, "what to list")
    p.add_argument("--json", action="store_true", help="print the catalog rows as one JSON document")

    p = _command(commands, "info", _info, "print the catalog row of an identifier and where its region map comes from")
    p.add_argument("identifier", help="an identifier or study model id")

    p = _command(commands, "fetch", _fetch, "download (or find in the mirror or cache) and verify the weights")
    p.add_argument("identifier", help="an identifier or study model id")

    p = _command(commands, "forge", _forge, "write checkpoints of random weights of the real architectures, in "
                 "the studies' exact file layouts, into a local mirror: the offline stand-in for real weights "
                 "(tutorial, tests); prints each file's path")
    _selection_options(p, "what to forge", required=True)
    p.add_argument("--mirror", metavar="DIR", help=f"the mirror folder (default: ${settings.MIRROR})")
    p.add_argument("--seed", type=int, default=0, help="the random weights' base seed (default 0); "
                   "each checkpoint's weights are seeded by it and the checkpoint's identifier, so checkpoints differ")

    _command(commands, "link", _link, "make our plugin folders visible to the installed brainscore_vision")
    _command(commands, "unlink", _unlink, "remove those links")
    _command(commands, "generate", _generate,
             "rewrite the plugin folders (registry lines, model.py, test.py, requirements, region maps) from the "
             "family declarations and catalogs")

    p = _command(commands, "commit", _commit,
                 "select a layer per region with region_commitment and write the map, readout, score table, plot "
                 f"and provenance into the user data folder (${settings.DATA}) or --output; prints one JSON document")
    p.add_argument("identifier", help="an identifier or study model id")
    p.add_argument("--layers", nargs="+", help="candidate layers: names, or 'study' for every named module (the "
                   "scaling-primate-vvs study's search space; default: the family's candidate layers)")
    p.add_argument("--benchmark", action="append", metavar="REGION=BENCHMARK",
                   help="a Brain-Score benchmark per region, or behavior=BENCHMARK for the readout (default: the "
                   "public ones ModelCommitment uses and Rajalingham2018public-i2n)")
    p.add_argument("--assembly", action="append", metavar="REGION=ASSEMBLY.nc,STIMULI.csv",
                   help="commit a region on your own recordings; behavior=TRIALS.nc,STIMULI.csv,FITTING.csv for the "
                   "readout (formats: docs/design/region-commitment.md)")
    p.add_argument("--readout", help="keep this behavioral readout layer instead of selecting one")
    p.add_argument("--reference", help="PCA reference images: a folder (an ImageNet validation folder in class "
                   "folders gives Brain-Score's one-per-class images), 'brainscore' or 'builtin' (default: "
                   "Brain-Score's own ImageNet images when cached or reachable, else the built-in set, with a warning)")
    p.add_argument("--n-components", type=int, default=1000, help="PCA components of each layer (default 1000)")
    p.add_argument("--time-bin", metavar="START,END", help="average the time bins of --assembly recordings that lie "
                   "within START-END ms (default: a single bin as it is, several over 70-170 ms)")
    p.add_argument("--output", help="folder to write into instead of the user data folder")
    p.add_argument("--quiet", action="store_true", help="no progress bars")

    p = _command(commands, "score", _score, "brainscore_vision.score of every model on every benchmark (study model "
                 "ids accepted), each appended as a row to the results table")
    p.add_argument("words", nargs="+", metavar="ID_OR_BENCHMARK",
                   help="identifiers (or study model ids), then Brain-Score benchmark identifiers")
    _results_option(p)
    p.add_argument("--no-results", action="store_true", help="print the scores only; write no row")

    p = _command(commands, "sweep", _sweep,
                 "score the selected models on the benchmarks into the results table, skipping pairs already there "
                 "(resumable), one process per model, locally or on a Ray cluster; prints a JSON summary")
    _selection_options(p, "what to score")
    p.add_argument("--benchmark", dest="benchmarks", action="append", required=True, metavar="BENCHMARK",
                   help="a Brain-Score benchmark identifier (repeat for several)")
    _results_option(p)
    p.add_argument("--engine", choices=("local", "ray"), default="local",
                   help="local processes (default) or Ray tasks (needs brainscore-plugins[ray])")
    p.add_argument("--jobs", type=int, default=1, help="local: models scored at once (default 1: scoring uses every "
                   "core already)")
    p.add_argument("--address", help="ray: the cluster to join (default: start a local instance)")
    p.add_argument("--workers", type=int, help="ray without --address: CPUs of the local instance (default --jobs)")
    p.add_argument("--cpus", type=float, default=1, help="ray: CPUs each model's task requests (default 1)")
    p.add_argument("--memory-gb", type=float, help="ray: memory each model's task requests (GiB)")
    p.add_argument("--gpus", type=float, default=0, help="ray: GPUs each model's task requests (default 0; local "
                   "processes take one visible CUDA device each, in turn)")
    p.add_argument("--retry-failed", action="store_true", help="score again the pairs whose row failed")
    p.add_argument("--quiet", action="store_true", help="no progress bars (the model processes' included)")

    p = _command(commands, "results", _results, "print, filter and export the results table")
    _results_option(p)
    for column in ("identifier", "benchmark", "family", "arch", "dataset"):
        p.add_argument(f"--{column}", metavar="GLOB", help=f"only rows whose {column} matches")
    p.add_argument("--status", choices=("ok", "failed"), help="only rows with this status")
    p.add_argument("--epoch", type=int, help="only rows of this epoch")
    p.add_argument("--format", choices=("table", "csv", "json"), default="table", help="output format")
    p.add_argument("-o", "--output", help="csv / json: write to this file instead of standard output")

    p = _command(commands, "noise-ceiling", _noise_ceiling,
                 "compute what the noise-normalised Algonauts 2023 held-out benchmarks need from the Natural Scenes "
                 "Dataset (each subject's ncsnr at its challenge vertices and its training images' repetition counts, "
                 "as the challenge organisers computed the test split's ceiling) and write it beside the challenge "
                 "data (subjNN/training_split/noise_ceiling/); prints a JSON summary")
    p.add_argument("--nsd", required=True, metavar="NSD_DIR", help="the Natural Scenes Dataset folder (holding "
                   "nsddata/experiments/nsd/nsd_expdesign.mat and nsddata_betas/ppdata/subjNN/fsaverage/"
                   "betas_fithrf_GLMdenoise_RR/{lh,rh}.ncsnr.mgh)")
    p.add_argument("--data-dir", help=f"the challenge data folder (default: ${settings.ALGONAUTS})")
    p.add_argument("--subject", action="append", choices=[f"subj{i:02d}" for i in range(1, 9)],
                   help="only this subject (repeat for several; default: all eight)")

    p = _command(commands, "scaling", None, "scaling laws: `scaling fit` fits the scaling-primate-vvs study's laws")
    fits = p.add_subparsers(dest="scaling_command", required=True, metavar="SUBCOMMAND", help="what to do")
    p = _command(fits, "fit", _scaling_fit, "fit the study's saturating power laws (compute, parameters, samples; "
                 "per region and behavior, with bootstrap bands) to the results table or the study's published "
                 "scores; writes scaling_fit.json and PNG plots, prints a JSON summary")
    _results_option(p)
    p.add_argument("--published", action="store_true",
                   help="fit the study's published scores (its benchmark_scores tables) instead of the results table")
    p.add_argument("-o", "--output", required=True, metavar="DIR", help="folder to write the JSON and plots into")
    p.add_argument("--bootstrap", type=int, default=100, help="bootstrap resamples of the models (default 100)")
    p.add_argument("--seed", type=int, default=0, help="bootstrap seed (default 0)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")

    p = _command(commands, "report", _report, "write a static HTML report (DIR/index.html) of the results table: "
                 "sortable, filterable rows, failed rows with their errors, figures of your scores (per benchmark "
                 "against compute, parameters and samples with fits, by epoch, against the published scores) and "
                 "layer-commitment plots; prints its path")
    p.add_argument("results", nargs="?", metavar="RESULTS",
                   help=f"the results table (default: results.parquet in ${settings.DATA})")
    p.add_argument("-o", "--output", required=True, metavar="DIR", help="the folder to write the page into")
    p.add_argument("--commitments", action="append", metavar="DIR",
                   help="also show the layer-commitment plots `commit --output DIR` wrote there (repeatable; those "
                   "in the data folder are always shown)")
    p.add_argument("--scaling", metavar="DIR", help="also show the plots of `scaling fit -o DIR`, labelled with "
                   "what they fitted")
    p.add_argument("--bootstrap", type=int, default=20,
                   help="bootstrap resamples for the bands of the fits of your scores (default 20; 0: no band)")
    p.add_argument("--title", default="Brain-Score results", help="the page's title")
    p.add_argument("--quiet", action="store_true", help="no progress bar")

    p = _command(commands, "package", _package,
                 "write one self-contained Brain-Score model plugin folder (and its zip) for the selected identifiers, "
                 "ready to submit to the Brain-Score site")
    _selection_options(p, "what to package")
    p.add_argument("-o", "--output", required=True, metavar="DIR_OR_ZIP",
                   help="the plugin folder to write (its zip is written beside it), or a .zip to write only that")
    p.add_argument("--name", help="the plugin's name (default: the output's name); a lower-case Python identifier")

    p = _command(commands, "demo", _demo, "offline end to end: forge a checkpoint, load, commit, score")
    p.add_argument("--identifier", default="spvvs_resnet18_imagenet_full", help="the model (default: %(default)s)")
    p.add_argument("--benchmark", default="bsp-synthetic.IT-pls", help="the benchmark (default: %(default)s)")
    p.add_argument("--workdir", help="keep the forged mirror and caches here (default: a temporary folder, removed)")
    return parser


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    from region_commitment.errors import RegionCommitmentError
    settings.quiet_libraries()
    try:
        status = args.run(args) or 0
        sys.stdout.flush()
    except KeyboardInterrupt:  # what finished is kept (a sweep's rows); rerun to resume
        print("error: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # `brainscore-plugins list | head`: the reader is gone, which is fine
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    except (BrainscorePluginsError, RegionCommitmentError, ValueError, OSError) as error:
        print(f"error: {error}", file=sys.stderr)
        return _exit_status(error)
    return status


def _exit_status(error: Exception) -> int:
    """2 when the input was wrong (unknown identifier, bad option value or data, a file that does not exist), 1 when
    the work could not be done (weights, checkpoint, commitment, disk)."""
    return USAGE if isinstance(error, ModelNotFoundError | FileNotFoundError | ValueError) else RUNTIME


def run() -> None:
    """The console command: :func:`main`, then the process ends at once with its status. Skipping the interpreter's
    teardown is what keeps a finished command from aborting there (status 134, "terminate called without an active
    exception": a native library's thread torn down at exit, seen after an error once Brain-Score was imported)."""
    import logging
    status = main()
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(OSError, ValueError):
            stream.flush()
    logging.shutdown()
    os._exit(status)


if __name__ == "__main__":
    run()
