"""`mnistlab explain` and `mnistlab gradient-flow`: interpretability figures for a PyTorch or Keras run.

    mnistlab explain runs/simple-20261125-101500                 # four chosen test examples
    mnistlab explain RUN --index 7 42 --target 3 --layer features.3   # (Keras: features_3_conv)
    mnistlab explain RUN --image seven.png
    mnistlab gradient-flow RUN                                   # only the gradient-norm plot
"""

from __future__ import annotations

import argparse

from mnistlab.commands.output import EXIT_OK, emit_json


def cmd_explain(args: argparse.Namespace) -> int:
    from mnistlab.explain import explain_run
    from mnistlab.explain.run import OUT_DIR

    index = explain_run(args.run_dir, indices=args.index, images=args.image, target=args.target,
                        layer=args.layer, data_dir=args.data_dir)
    if args.json:
        emit_json(index)
        return EXIT_OK
    out = f"{args.run_dir.rstrip('/')}/{OUT_DIR}"
    print(f"Grad-CAM layer: {index['layer']}")
    for ex in index["examples"]:
        print(f"  {ex['example']}: {ex['note']}; predicted {ex['predicted_name']} ({ex['confidence']:.1%})")
    for entry in index["files"]:
        print(f"{out}/{entry['file']}")
    return EXIT_OK


def cmd_gradient_flow(args: argparse.Namespace) -> int:
    from mnistlab.errors import UserError
    from mnistlab.explain import gradient_flow_plot
    from mnistlab.explain.run import OUT_DIR

    entry = gradient_flow_plot(args.run_dir)
    if entry is None:
        raise UserError(f"{args.run_dir}: no grad_norms.csv; it is written by 'mnistlab train' from this version on")
    if args.json:
        emit_json(entry)
        return EXIT_OK
    print(f"{args.run_dir.rstrip('/')}/{OUT_DIR}/{entry['file']}")
    for warning in entry["warnings"]:
        print(f"warning: {warning}")
    return EXIT_OK


def add_commands(command) -> None:
    """Add this feature's subcommands through ``command(name, func, help, ...)``."""
    from mnistlab.data.images import ACCEPTED_TEXT

    p = command("explain", cmd_explain,
                "Grad-CAM, saliency, filters and feature maps of a PyTorch or Keras run (plots/interpretability/)")
    p.add_argument("run_dir")
    which = p.add_mutually_exclusive_group()
    which.add_argument("--index", type=int, nargs="+", metavar="I",
                       help="test-set indices to explain (default: correct and misclassified, "
                            "high and low confidence)")
    which.add_argument("--image", nargs="+", metavar="FILE",
                       help=f"image files ({ACCEPTED_TEXT}), preprocessed like 'mnistlab predict'")
    p.add_argument("--target", metavar="CLASS",
                   help="also show Grad-CAM for this class (default: the true class if mispredicted, "
                        "else the runner-up)")
    p.add_argument("--layer", metavar="NAME",
                   help="layer for Grad-CAM: a dotted module name (PyTorch) or a layer name (Keras); "
                        "default: the last spatial layer")

    p = command("gradient-flow", cmd_gradient_flow,
                "plot the per-layer gradient norms recorded during training (gradient_flow.png)", data_dir=False)
    p.add_argument("run_dir")
