"""`mnistlab evaluate` (the test split, once) and `mnistlab predict` (image files).

    mnistlab evaluate runs/simple-20261125-101500
    mnistlab evaluate runs/deeper-best --tta auto      # test-time augmentation if it wins on validation
    mnistlab predict runs/simple-20261125-101500 seven.png --json
"""

from __future__ import annotations

import argparse

from mnistlab.commands.output import EXIT_OK, emit_json, print_table

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
    from mnistlab.predict import predict_files

    results = predict_files(args.run_dir, args.images)
    if args.json:
        emit_json(results)
    else:
        for r in results:
            print(f"{r['file']}: {r['label']} ({r['probability']:.1%})")
    return EXIT_OK


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

    p = command("predict", cmd_predict, "classify image files with a trained run (or ensemble)", data_dir=False)
    p.add_argument("run_dir")
    p.add_argument("images", nargs="+", metavar="IMAGE",
                   help=f"image files, each {ACCEPTED_TEXT} of any size, preprocessed as the run's data set was made")
