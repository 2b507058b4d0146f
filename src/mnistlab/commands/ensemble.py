"""`mnistlab ensemble` (combine any evaluated runs) and `mnistlab ensemble-train` (train the members, then combine).

    mnistlab ensemble runs/deeper-s0 runs/resnet-s0 runs/keras-simple --out runs/ens
    mnistlab ensemble-train --archs deeper,resnet --seeds 0-4 --epochs 12 --patience 0 --out runs/ens-mnist

Both choose members and weights on the validation split only (``--selection``, default Caruana's
greedy selection on validation NLL) and print each member, the ensemble and its gain over the
best member on validation. The logic lives in :mod:`mnistlab.ensembles`.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from mnistlab.commands.output import EXIT_OK, add_output_options, emit_json, print_table
from mnistlab.commands.repeats import add_repeat_options
from mnistlab.commands.train import PER_RUN_OPTIONS, add_train_options, train_config_from_args


def _fmt(value: float | None, digits: int = 4) -> str:
    return "" if value is None else f"{value:.{digits}f}"


def print_ensemble(result: dict[str, Any]) -> None:
    """The members (weight, validation and test accuracy), the ensemble and its gain, as tables on stdout."""
    rows = [(Path(m["run_dir"]).name, m["framework"], m["arch"], f"{m['weight']:.3f}", _fmt(m["val_accuracy"]),
             _fmt(m["test_accuracy"])) for m in result["members"]]
    rows.append(("ensemble", "", "", "", _fmt(result["val_accuracy"]), _fmt(result["accuracy"])))
    sel = result["selection"]
    print_table(f"ensemble: {sel['method']} ({result['weighting']}), {sel['members_used']} of "
                f"{sel['members_offered']} members used", ["name", "framework", "arch", "weight", "val acc", "test acc"],
                rows)
    best, gain = result["best_member"], result["gain"]
    if best is not None:
        print(f"best member on validation: {Path(best['run_dir']).name} (val {best['val_accuracy']:.4f}, "
              f"test {best['test_accuracy']:.4f}); ensemble gain: val {gain['val_accuracy']:+.4f}, "
              f"test {gain['test_accuracy']:+.4f}")
    print(f"saved in {result['run_dir']}")


def cmd_ensemble(args: argparse.Namespace) -> int:
    from mnistlab.ensembles import ensemble_runs

    selection = args.selection or (None if args.weighted else "caruana")
    result = ensemble_runs(args.run_dirs, weighted=args.weighted, selection=selection, temperature=args.temperature, rounds=args.rounds,
                           out=args.out, force=args.force)
    if args.json:
        emit_json(result)
    else:
        print_ensemble(result)
    return EXIT_OK


def cmd_ensemble_train(args: argparse.Namespace) -> int:
    from mnistlab.commands.repeats import repeat_options, resume_line
    from mnistlab.experiments.ensemble_train import ensemble_train, parse_members
    from mnistlab.experiments.multiseed import parse_seeds
    from mnistlab.maths.spread import mean_std_text

    members, seeds = parse_members(args.archs), parse_seeds(args.seeds)
    base = train_config_from_args(args)  # --arch is not an option here: each member gets its own
    out = args.out or f"runs/ens-{'+'.join(a if f == 'torch' else f'{f}-{a}' for f, a in members)}"
    # The same command (without --force) reuses finished members and resumes the rest.
    result = ensemble_train(members, seeds, base, out, selection=args.selection, temperature=args.temperature,
                            rounds=args.rounds, force=args.force, data_dir=args.data_dir, progress=not args.quiet,
                            options=repeat_options(args), resume_command=resume_line(args))
    if args.json:
        emit_json(result)
        return EXIT_OK
    print_ensemble(result["ensemble"])
    print_table("members: spread over seeds", ["framework", "arch", "seeds", "test acc mean ± std", "min", "max"],
                [(s["framework"], s["arch"], len(s["seeds"]),
                  mean_std_text(s["test_accuracy"]["mean"], s["test_accuracy"]["std"]),
                  f"{s['test_accuracy']['min']:.4f}", f"{s['test_accuracy']['max']:.4f}") for s in result["spread"]])
    states = [m["state"] for m in result["members"]]
    print(f"{len(states)} members ({', '.join(f'{states.count(s)} {s}' for s in dict.fromkeys(states))}); "
          f"training time of all members {result['train_seconds']:.0f} s; this call {result['wall_seconds']:.0f} s")
    return EXIT_OK


def _selection_options(p: argparse.ArgumentParser, default: str | None) -> None:
    from mnistlab.ensembles.select import DEFAULT_ROUNDS, METHODS

    p.add_argument("--selection", choices=METHODS, default=default,
                   help="how members and weights are chosen on validation: caruana (greedy forward selection "
                        "with replacement on validation NLL, the default), fitted (NLL-optimal weights), all "
                        "(plain average), accuracy (weight ∝ validation accuracy)")
    p.add_argument("--temperature", action="store_true",
                   help="first fit one temperature per member on validation (softmax(logits / T))")
    p.add_argument("--rounds", type=int, default=DEFAULT_ROUNDS,
                   help=f"caruana: additions after the sorted start (default {DEFAULT_ROUNDS})")


def add_commands(command) -> None:
    """Add ``ensemble`` and ``ensemble-train`` through ``command(name, func, help, ...)``."""
    p = command("ensemble", cmd_ensemble, "combine evaluated runs of any framework; members and weights chosen "
                "on validation", data_dir=False)
    p.add_argument("run_dirs", nargs="+", metavar="RUN_DIR", help="evaluated runs (predictions.npz, val_predictions.npz)")
    _selection_options(p, None)
    p.add_argument("--weighted", action="store_true", help="the same as --selection accuracy (kept for old scripts)")
    add_output_options(p, out="ensemble directory (default runs/ensemble-<time>)",
                       force="overwrite an existing ensemble at --out", quiet=False)

    p = command("ensemble-train", cmd_ensemble_train, "train members arch × seed (reusing finished ones), "
                "evaluate them and build their ensemble")
    p.add_argument("--archs", required=True, help="models, e.g. deeper,resnet,keras:simple")
    p.add_argument("--seeds", default="0-4", help="seeds, e.g. 0-4 or 0,1,2 (default 0-4)")
    add_train_options(p, skip=PER_RUN_OPTIONS)  # every member's settings, the same options as `train`
    add_repeat_options(p, "members")
    _selection_options(p, "caruana")
    add_output_options(p, out="folder for the members and <out>/ensemble (default runs/ens-<archs>); "
                              "run the same command again to continue",
                       force="retrain every member and rebuild the ensemble")
