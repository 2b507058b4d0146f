"""`mnistlab evaluate` (the test split, once) and `mnistlab predict` (pictures, folders, CSV files).

    mnistlab evaluate runs/simple-20261125-101500
    mnistlab evaluate runs/deeper-best --tta auto      # test-time augmentation if it wins on validation
    mnistlab predict runs/simple-20261125-101500 seven.png --json
    mnistlab predict runs/kaggle test.csv --submission submission.csv
"""

from __future__ import annotations

import argparse
import csv
import sys

from mnistlab.commands.output import EXIT_FAILED, EXIT_OK, emit_json, print_table
from mnistlab.errors import UserError

N_CONFUSIONS = 5  # confused pairs named after the table


def cmd_evaluate(args: argparse.Namespace) -> int:
    from mnistlab.evaluation.evaluate import evaluate_run
    from mnistlab.maths.metrics import HIGH_CONFIDENCE
    from mnistlab.training.progress import stderr_log

    m = evaluate_run(args.run_dir, data_dir=args.data_dir, tta=args.tta, log=stderr_log)
    if args.json:
        emit_json(m)
        return EXIT_OK
    print(f"{args.run_dir}: test accuracy {m['accuracy']:.4f} ({m['n_errors']} errors in {m['n_samples']}), "
          f"macro F1 {m['macro_f1']:.4f}, NLL {m['nll']:.4f}, ECE {m['ece']:.4f}, "
          f"{m['high_confidence_errors']} errors above {HIGH_CONFIDENCE} confidence"
          + (f", with TTA ({m['tta']['views']} views)" if m.get("tta", {}).get("used") else ""))
    print_table("per class", ["class", "precision", "recall", "f1", "support"],
                [(c["name"], f"{c['precision']:.4f}", f"{c['recall']:.4f}", f"{c['f1']:.4f}", c["support"])
                 for c in m["per_class"]])
    names = [c["name"] for c in m["per_class"]]
    confusions = ", ".join(f"{names[c['true']]}→{names[c['predicted']]} ×{c['count']}"
                           for c in m["top_confusions"][:N_CONFUSIONS])
    print(f"most confused: {confusions or 'none'}")
    return EXIT_OK


def cmd_predict(args: argparse.Namespace) -> int:
    from mnistlab.predict import predict_paths, write_submission

    results, failures = predict_paths(args.run_dir, args.images)
    if failures and not results:  # nothing could be read: the inputs are the mistake
        for failure in failures[1:]:
            print(f"mnistlab predict: {failure.reason}", file=sys.stderr)
        raise UserError(failures[0].reason if len(failures) == 1 else
                        f"none of the {len(failures)} files could be read (reasons above); {failures[0].reason}")
    for failure in failures:
        print(f"mnistlab predict: skipped: {failure.reason}", file=sys.stderr)
    if args.submission:
        rows = write_submission(args.submission, results)
        print(f"wrote {args.submission}: {rows} rows (ImageId,Label)", file=sys.stderr)
    output = "json" if args.json else args.output
    if output == "json":
        emit_json(results)
    elif output == "csv":
        writer = csv.writer(sys.stdout, lineterminator="\n")
        writer.writerow(["file", "row", "class", "label", "probability"])
        writer.writerows([r["file"], r.get("row", ""), r["digit"], r["label"], r["probability"]] for r in results)
    else:
        for r in results:
            where = f"{r['file']}:{r['row']}" if "row" in r else r["file"]
            print(f"{where}: {r['label']} ({r['probability']:.1%})")
    return EXIT_FAILED if failures else EXIT_OK


def add_commands(command) -> None:
    """Add ``evaluate`` and ``predict`` through ``command(name, func, help, ...)``."""
    p = command("evaluate", cmd_evaluate, "evaluate a run on the test split once; write metrics.json")
    p.add_argument("run_dir")
    # Checked by evaluate_run, not by argparse choices: a bad value is then one line (exit 2), not usage + error.
    p.add_argument("--tta", default="off", metavar="off|shifts|flip|auto",
                   help="test-time augmentation: the mean prediction over the image and its 8 one-pixel shifts "
                        "(9× the inference time) or over the image and its left-right mirror (2×; data sets "
                        "whose classes survive a mirror, such as fashion-mnist); 'shifts' and 'flip' use it, "
                        "'auto' uses the set that scores best on validation if it beats no TTA (decided "
                        "before the test split is read); default off")

    from mnistlab.data.images import ACCEPTED_TEXT

    p = command("predict", cmd_predict, "classify pictures, folders of them and CSV files with a trained run "
                "(or ensemble); a file that cannot be read is skipped with its reason (exit 1)", data_dir=False)
    p.add_argument("run_dir")
    p.add_argument("images", nargs="+", metavar="PATH",
                   help=f"pictures ({ACCEPTED_TEXT} of any size, preprocessed as the run's data set was made), "
                        "folders of them (searched recursively) or CSV files of pixel0..pixelK rows "
                        "(Kaggle's test.csv)")
    p.add_argument("--output", choices=["table", "json", "csv"], default="table",
                   help="table: one line per image; json (as --json); csv: file,row,class,label,probability")
    p.add_argument("--submission", metavar="FILE",
                   help="also write Kaggle's submission format (ImageId,Label; ids from 1) for the one CSV given")
