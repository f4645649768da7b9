"""``brainscore-plugins``: list, inspect, fetch and link the catalogued models; run the offline demo."""
from __future__ import annotations

import argparse
import dataclasses
import json
import sys

from region_commitment.errors import RegionCommitmentError

from . import bridge, catalog, factory, families, provenance, settings
from .errors import BrainscorePluginsError


def _list(args) -> None:
    for identifier in catalog.identifiers(args.family, checkpoints=args.checkpoints):
        print(identifier)


def _info(args) -> None:
    entry = catalog.resolve(args.identifier)
    record = provenance.map_provenance(args.identifier)
    print(json.dumps({**dataclasses.asdict(entry), "map_provenance": record}, indent=2))


def _fetch(args) -> None:
    print(factory.weights_path(catalog.resolve(args.identifier)))


def _link(args) -> None:
    print("\n".join(bridge.link()))


def _unlink(args) -> None:
    print("\n".join(bridge.unlink()) or "nothing to unlink")


def _generate(args) -> None:
    from . import plugin_sources
    for prefix in families.all_families():
        n_ids, n_maps = plugin_sources.write(prefix)
        print(f"{prefix}: {n_ids} registry lines, {n_maps} region maps")


def _parse_pairs(pairs, what: str) -> dict[str, str]:
    parsed = {}
    for pair in pairs or []:
        region, sep, value = pair.partition("=")
        if not sep or not value:
            raise SystemExit(f"error: {what} must look like REGION=VALUE, got {pair!r}")
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

    entry = catalog.resolve(args.identifier)
    name = args.identifier if args.identifier.startswith(entry.family + "_") else entry.identifier
    if entry.region_layer_map and not args.output:
        raise ValueError(
            f"{name} has a published commitment in the catalog; pass --output DIR to write a recomputed one there")
    benchmarks = _parse_pairs(args.benchmark, "--benchmark")
    for region, files in _parse_pairs(args.assembly, "--assembly").items():
        files = files.split(",")
        if region == region_commitment.BEHAVIOR:
            if len(files) != 3:
                raise SystemExit("error: --assembly behavior=TRIALS.nc,STIMULI.csv,FITTING.csv needs three files")
            benchmarks[region] = region_commitment.from_behavioral_files(*files)
        else:
            if len(files) != 2:
                raise SystemExit(f"error: --assembly {region}=ASSEMBLY.nc,STIMULI.csv needs two files")
            benchmarks[region] = region_commitment.from_files(*files, region, time_bin=_time_bin(args.time_bin))
    layers = args.layers[0] if args.layers in (["default"], ["study"]) else args.layers
    result, written = factory.commit(name, benchmarks or None, layers=layers, reference=args.reference,
                                     n_components=args.n_components, readout=args.readout, output=args.output)
    print(json.dumps({**result.region_layer_map, "behavioral_readout_layer": result.behavioral_readout_layer}))
    for kind, path in written.items():
        print(f"{kind}: {path}")


def _score(args) -> None:
    """``brainscore_vision.score``; first a warning line when the benchmark's data chose the model's layers
    (``provenance.selection_overlap``)."""
    import logging

    entry = catalog.resolve(args.identifier)
    name = args.identifier if args.identifier.startswith(entry.family + "_") else entry.identifier
    overlap = provenance.selection_overlap(name, args.benchmark)
    if overlap:
        logging.getLogger(__name__).warning("warning: %s", overlap)
    import brainscore_vision
    print(brainscore_vision.score(name, args.benchmark))


def _demo(args) -> None:
    from .demo import run_demo
    run_demo(args.identifier, args.benchmark, args.workdir)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="brainscore-plugins", description=__doc__, epilog=settings.help_text(),
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = parser.add_subparsers(dest="command", required=True)

    p = commands.add_parser("list", help="print registered identifiers, one per line")
    p.add_argument("--family", choices=sorted(families.all_families()))
    p.add_argument("--checkpoints", action="store_true", help="include every epoch checkpoint")
    p.set_defaults(run=_list)

    p = commands.add_parser("info", help="the catalog row of an identifier (or study model id)")
    p.add_argument("identifier")
    p.set_defaults(run=_info)

    p = commands.add_parser("fetch", help="download (or find in the mirror) and verify the weights")
    p.add_argument("identifier")
    p.set_defaults(run=_fetch)

    for name, run, text in [("link", _link, "make our plugins visible to the installed brainscore_vision"),
                            ("unlink", _unlink, "remove those links")]:
        commands.add_parser(name, help=text).set_defaults(run=run)

    commands.add_parser("generate", help="rewrite registry lines and region maps from the catalog"
                        ).set_defaults(run=_generate)

    p = commands.add_parser("commit", help="select a layer per region with region_commitment; write the map "
                            "(region_layer_map/<id>.json), readout, score table and plot into the plugin folder")
    p.add_argument("identifier")
    p.add_argument("--layers", nargs="+", help="candidate layers: names, or 'study' for every named module (the "
                   "scaling-primate-vvs study's search space; default: the architecture's block outputs)")
    p.add_argument("--benchmark", action="append", metavar="REGION=BENCHMARK",
                   help="a Brain-Score benchmark per region, or behavior=BENCHMARK for the readout (default: the "
                   "public ones ModelCommitment uses and Rajalingham2018public-i2n)")
    p.add_argument("--assembly", action="append", metavar="REGION=ASSEMBLY.nc,STIMULI.csv",
                   help="commit a region on your own recordings; behavior=TRIALS.nc,STIMULI.csv,FITTING.csv for the "
                   "readout (formats in the README)")
    p.add_argument("--readout", help="keep this behavioral readout layer instead of selecting one")
    p.add_argument("--reference", help="PCA reference images: a folder (an ImageNet validation folder in class "
                   "folders gives Brain-Score's one-per-class images), 'brainscore' or 'builtin' (default: "
                   "Brain-Score's own ImageNet images when cached or reachable, else the built-in set, with a warning)")
    p.add_argument("--n-components", type=int, default=1000)
    p.add_argument("--time-bin", metavar="START,END", help="average the time bins of --assembly recordings that lie "
                   "within START-END ms (default: a single bin as it is, several over 70-170 ms)")
    p.add_argument("--output", help="folder to write into instead of the plugin folder")
    p.set_defaults(run=_commit)

    p = commands.add_parser("score", help="brainscore_vision.score with study model ids accepted")
    p.add_argument("identifier")
    p.add_argument("benchmark")
    p.set_defaults(run=_score)

    p = commands.add_parser("demo", help="offline end to end: forge a checkpoint, load, commit, score")
    p.add_argument("--identifier", default="spvvs_resnet18_imagenet_full")
    p.add_argument("--benchmark", default="bsp-synthetic.IT-pls")
    p.add_argument("--workdir", help="where the forged mirror and caches go (default: a temporary folder)")
    p.set_defaults(run=_demo)

    args = parser.parse_args(argv)
    try:
        args.run(args)
    except (BrainscorePluginsError, RegionCommitmentError, ValueError, OSError) as error:
        # ours and region_commitment's errors, bad input, missing files, a full disk: one line, no traceback
        print(f"error: {error}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
