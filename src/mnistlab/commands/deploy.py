"""`mnistlab export`, `mnistlab prune` and `mnistlab bench`: deployment subcommands.

    mnistlab export runs/simple-... --format onnx      # export/model.onnx + export/onnx.json
    mnistlab export runs/simple-... --format int8      # export/model.int8.onnx + export/int8.json
    mnistlab export runs/keras-simple-... --format litert   # export/model.tflite + export/litert.json
    mnistlab prune runs/simple-... --sparsity 0.5,0.7,0.9 --finetune-epochs 1
    mnistlab bench runs/simple-... --json

The library functions live in :mod:`mnistlab.export`; this module only parses and prints.
"""

from __future__ import annotations

import argparse

from mnistlab.commands.output import EXIT_FAILED, EXIT_OK, emit_json, print_table

FORMATS = ("onnx", "int8", "litert", "saved_model")


def cmd_export(args: argparse.Namespace) -> int:
    from mnistlab.api import export_run

    r = export_run(args.run_dir, args.format, data_dir=args.data_dir, threads=args.threads,
                   calibration_size=args.calibration_size, method=args.calibration)
    if args.format != "int8":
        ok = r["passed"]
        lines = [("file", r["file"]), ("preprocessing for clients", r["preprocess"]),
                 ("size", f"{r['bytes'] / 1024:.0f} KB"),
                 *([("opset", r["opset"]), ("onnx checker", r["checker"])] if "opset" in r else []),
                 (f"max |Δ logit| on {r['compared_images']} {r['split']} images",
                  f"{r['max_abs_diff']:.2e} (limit {r['max_abs_diff_limit']:g})"),
                 (f"same predictions as {r['reference']}", f"{r['agreement']:.4%}"),
                 (f"{r['split']} accuracy {r['reference']} / {r['runtime']}",
                  f"{r['reference_accuracy']:.4f} / {r['export_accuracy']:.4f}"),
                 ("checks", "passed" if ok else "FAILED")]
    else:
        ok = True  # the targets are reported, not enforced: a miss is a finding, not a failure
        lines = [("file", r["file"]), ("calibration", r["calibration"]),
                 ("test accuracy fp32 → int8", (f"{r['fp32_accuracy']:.4f} → {r['int8_accuracy']:.4f} "
                                               f"({r['accuracy_delta_points']:+.2f} points; target ≥ {r['accuracy_target_points']:g})")),
                 ("size fp32 → int8", (f"{r['fp32_bytes'] / 1024:.0f} KB → {r['int8_bytes'] / 1024:.0f} KB "
                                      f"(×{r['size_ratio']:.3f}; target ≤ {r['size_ratio_target']:g})")),
                 ("batch-1 p50 fp32 / int8", f"{r['fp32_batch1_p50_ms']:.3f} / {r['int8_batch1_p50_ms']:.3f} ms"),
                 ("images/s at batch 256 fp32 / int8", f"{r['fp32_throughput_256']:,.0f} / {r['int8_throughput_256']:,.0f}")]
    if args.json:
        emit_json(r)
    else:
        print_table(f"export {args.format}: {args.run_dir} ({r['threads']} threads)", ["check", "value"], lines)
    return EXIT_OK if ok else EXIT_FAILED


def cmd_prune(args: argparse.Namespace) -> int:
    from mnistlab.export.prune import PLOT, PRUNE_DIR, parse_sparsities, prune_run

    rows = prune_run(args.run_dir, parse_sparsities(args.sparsity), finetune_epochs=args.finetune_epochs,
                     lr=args.lr, train_subset=args.train_subset, data_dir=args.data_dir)
    if args.json:
        emit_json(rows)
        return EXIT_OK
    print_table(f"pruning {args.run_dir}: {args.finetune_epochs} fine-tuning epoch(s)",
                ["sparsity", "reached", "val pruned", "val tuned", "test acc", "Δ points", "zlib KB", "path"],
                [(f"{r['sparsity_target']:.2f}", f"{r['sparsity_reached']:.3f}", f"{r['val_acc_pruned']:.4f}",
                  f"{r['val_acc']:.4f}", f"{r['test_acc']:.4f}", f"{r['test_acc_delta_points']:+.2f}",
                  f"{r['weights_bytes_zlib'] / 1024:.0f}", r["run_dir"]) for r in rows])
    print(f"table: {args.run_dir}/{PRUNE_DIR}/prune.csv; plot: {args.run_dir}/{PLOT}")
    print(f"next: mnistlab export {args.run_dir}/{rows[-1]['run_dir']} --format onnx")
    return EXIT_OK


def cmd_bench(args: argparse.Namespace) -> int:
    from mnistlab.export import BENCH_PATHS
    from mnistlab.export.bench import bench_run

    paths = tuple(p.strip() for p in args.paths.split(",")) if args.paths else BENCH_PATHS
    r = bench_run(args.run_dir, threads=args.threads, quick=args.quick, export=not args.no_export,
                  data_dir=args.data_dir, paths=paths)
    if args.json:
        emit_json(r)
        return EXIT_OK
    c = r["conditions"]
    print_table(f"bench {args.run_dir} ({r['arch']})", ["path", "batch-1 p50 ms", "batch-1 p99 ms",
                                                       "img/s @256", "img/s @1024"],
                [(name, f"{p['batch1_p50_ms']:.4f}", f"{p['batch1_p99_ms']:.4f}", f"{p['throughput_256']:,.0f}",
                  f"{p['throughput_1024']:,.0f}") for name, p in r["paths"].items()])
    print_table("file sizes", ["file", "KB"], [(k, f"{v / 1024:.1f}") for k, v in r["file_sizes"].items()])
    for name, why in r["skipped"].items():
        print(f"skipped {name}: {why}")
    if r["exported"]:
        print(f"exported on the fly: {', '.join(r['exported'])}")
    print(f"conditions: {c['cpu']}, {r['threads']} threads, torch {c['torch']}, onnxruntime {c['onnxruntime']}, "
          f"load average {c['load_average_1min']}, {c['seconds_per_measurement']} s per measurement, {c['date']}")
    return EXIT_OK


def add_commands(command) -> None:
    """Add ``export``, ``prune`` and ``bench`` through ``command(name, func, help, ...)``."""
    from mnistlab.export import BENCH_PATHS, CALIBRATION_METHODS
    from mnistlab.export.bench import FULL_SECONDS, QUICK_SECONDS
    from mnistlab.export.quantize import CALIBRATION_SIZE

    p = command("export", cmd_export, "export a run (ONNX fp32 or INT8; Keras also LiteRT, SavedModel) and check it")
    p.add_argument("run_dir")
    p.add_argument("--format", choices=FORMATS, default="onnx",
                   help="onnx: fp32 with normalisation folded in, plus export/preprocess.py; int8: static "
                        "quantization calibrated on validation; litert, saved_model: Keras runs (TensorFlow formats)")
    p.add_argument("--threads", type=int, help="ONNX Runtime / torch threads (default: all cores)")
    p.add_argument("--calibration", choices=CALIBRATION_METHODS, default="minmax", help="int8 calibration method")
    p.add_argument("--calibration-size", type=int, default=CALIBRATION_SIZE,
                   help="validation images used to calibrate int8 (default %(default)s)")

    p = command("prune", cmd_prune, "magnitude-prune a run at several sparsities, fine-tune, compare")
    p.add_argument("run_dir")
    p.add_argument("--sparsity", default="0.5,0.7,0.9", help="fractions of weights to zero, comma-separated")
    p.add_argument("--finetune-epochs", type=int, default=1, help="epochs of fine-tuning per level (0 = none)")
    p.add_argument("--lr", type=float, help="fine-tuning learning rate (default: the run's lr / 10)")
    p.add_argument("--train-subset", type=int, help="fine-tune on this many training images (default: all)")

    p = command("bench", cmd_bench, "inference latency and throughput of each path (PyTorch, ONNX Runtime, INT8)")
    p.add_argument("run_dir")
    p.add_argument("--threads", type=int, help="threads for every path (default: all cores)")
    p.add_argument("--quick", action="store_true",
                   help=f"{QUICK_SECONDS:g} s per measurement instead of {FULL_SECONDS:g} s (for tests)")
    p.add_argument("--no-export", action="store_true", help="skip ONNX paths whose files are missing")
    p.add_argument("--paths", help=f"comma-separated subset of {','.join(BENCH_PATHS)} (default: all)")
