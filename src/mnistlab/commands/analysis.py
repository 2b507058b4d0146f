"""`mnistlab plots`, `mnistlab compare` and `mnistlab report`: analysis of finished runs.

    mnistlab plots runs/deeper-20261125-101500
    mnistlab compare runs/qs/simple runs/qs/deeper runs/qs/resnet --out runs/qs/comparison
    mnistlab report runs/qs/simple runs/qs/deeper -o runs/qs/report.html
"""

from __future__ import annotations

import argparse
from pathlib import Path

from mnistlab.commands.output import EXIT_OK, add_output_options, emit_json, print_table
from mnistlab.errors import UserError
from mnistlab.training.progress import stderr_log


def cmd_plots(args: argparse.Namespace) -> int:
    from mnistlab.analysis.analyze import analyze_run
    from mnistlab.analysis.uncertainty import SCORE_LABELS

    summary = analyze_run(args.run_dir, data_dir=args.data_dir, mc_passes=args.mc_passes, mc_limit=args.mc_limit,
                          log=stderr_log if not args.json else (lambda _m: None))
    if args.json:
        emit_json(summary)
        return EXIT_OK
    cal = summary["calibration"]
    print(f"{args.run_dir}: {len(summary['figures'])} figures under {Path(args.run_dir) / 'plots'}")
    print(f"ECE {cal['ece_before']:.4f} → {cal['ece_after']:.4f} with T = {cal['temperature']:.3f} (fitted on validation)")
    for name, a in summary["uncertainty"]["aurocs"].items():
        auroc = "—" if a["auroc"] is None else f"{a['auroc']:.4f}"
        print(f"error-detection AUROC, {SCORE_LABELS[name]}: {auroc} ({a['n']:,} images)")
    if summary.get("curves", {}).get("overfitting"):
        print(f"overfitting: val loss rose while train loss fell at epoch(s) {summary['curves']['overfitting_epochs']}")
    for note in summary["notes"]:
        print(f"note: {note}")
    return EXIT_OK


def cmd_compare(args: argparse.Namespace) -> int:
    from mnistlab.analysis.compare import COLUMNS, compare_runs, default_out, table_rows, write_comparison

    result = compare_runs(args.run_dirs)
    out = Path(args.out) if args.out else default_out(args.run_dirs)
    paths = write_comparison(result, out)
    if args.json:
        emit_json({**result, "files": paths})
        return EXIT_OK
    print_table("comparison (test split)", COLUMNS, table_rows(result))
    print(f"written: {out}/comparison.md, .csv, .json and plots/model_comparisons/")
    return EXIT_OK


def cmd_report(args: argparse.Namespace) -> int:
    from mnistlab.report.html import build_report
    from mnistlab.report.sweep import build_sweep_report, is_sweep_dir

    sweeps = [d for d in args.run_dirs if is_sweep_dir(d)]
    if sweeps and len(args.run_dirs) > 1:
        raise UserError(f"{sweeps[0]} is a sweep folder: report it alone (its best run can join other runs)")
    if sweeps:  # the search itself, from its summary and figures; no trial is evaluated on test
        path = build_sweep_report(sweeps[0], args.output)
    else:
        path = build_report(args.run_dirs, args.output, data_dir=args.data_dir, mc_limit=args.mc_limit,
                            log=stderr_log if not args.json else (lambda _m: None))
    if args.json:
        emit_json({"report": str(path), "bytes": path.stat().st_size})
    else:
        print(f"report: {path} ({path.stat().st_size / 1e6:.1f} MB, self-contained; open it in any browser)")
    return EXIT_OK


def add_commands(command) -> None:
    """Add this feature's subcommands through ``command(name, func, help, ...)``."""
    from mnistlab.analysis.uncertainty import MC_PASSES

    mc_limit_help = "run MC dropout on the first N test images only (default: all)"
    p = command("plots", cmd_plots, "write every plot of one run (from its saved logits and history)")
    p.add_argument("run_dir")
    p.add_argument("--mc-passes", type=int, default=MC_PASSES,
                   help="Monte-Carlo dropout passes (models with dropout; default %(default)s)")
    p.add_argument("--mc-limit", type=int, metavar="N", help=mc_limit_help)

    p = command("compare", cmd_compare, "compare runs side by side: table (md, csv, json) and plots",
                data_dir=False)
    p.add_argument("run_dirs", nargs="+", metavar="RUN_DIR")
    add_output_options(p, out="folder for the comparison files (default: <common parent>/comparison)", quiet=False)

    p = command("report", cmd_report, "write one self-contained HTML report for one or more runs, or for a sweep "
                                      "folder (mnistlab sweep)")
    p.add_argument("run_dirs", nargs="+", metavar="RUN_DIR", help="run directories, or one sweep folder")
    p.add_argument("-o", "--output", default="report.html", help="the HTML file to write (default report.html)")
    p.add_argument("--mc-limit", type=int, metavar="N", help=mc_limit_help)
