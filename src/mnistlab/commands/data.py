"""`mnistlab data fetch|verify|info|add` and `mnistlab models`: what there is to train on and with.

    mnistlab data verify --dataset all
    mnistlab data add pets ~/Pictures/pets --channels 3 --size 32
    mnistlab data add kaggle train.csv
    mnistlab models --json
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

from mnistlab.commands.output import EXIT_FAILED, EXIT_OK, emit_json, print_table
from mnistlab.errors import UserError


def cmd_data(args: argparse.Namespace) -> int:
    from mnistlab.data import datasets, registry, store

    if args.action == "add":
        return cmd_add(args)
    if args.operands:
        raise UserError(f"'data {args.action}' takes no NAME or PATH ({' '.join(args.operands)}); "
                        "name a data set with --dataset")
    names = store.list_dataset_names() if args.dataset == "all" else [registry.get(args.dataset).name]
    results = {}
    for name in names:
        if not registry.builtin(name) and args.action != "info":
            # An added data set has no files to fetch; verifying it is reading it: the fingerprint is checked.
            datasets.load_split(name, "train")
            results[name] = [{"name": name, "ok": True, "path": registry.get(name).folder, "bytes": None,
                              "sha256": registry.get(name).fingerprint}] if args.action == "verify" else {}
        elif args.action == "fetch":
            paths = store.fetch(name, data_dir=args.data_dir)
            results[name] = {k: str(v) for k, v in paths.items()}
        elif args.action == "verify":
            results[name] = store.verify(name, data_dir=args.data_dir)
        else:
            results[name] = datasets.summary(name, data_dir=args.data_dir)
    if args.json:
        emit_json(results)
        return EXIT_OK
    for name, result in results.items():
        if args.action == "fetch":
            print(f"{name}: verified")
            for key, path in result.items():
                print(f"  {key:<13} {path}")
        elif args.action == "verify":
            print_table(f"{name}: verify", ["file", "ok", "bytes", "sha256", "path"],
                        [(r["name"], "yes" if r["ok"] else f"NO: {r.get('problem')}", r.get("bytes"),
                          (r.get("sha256") or "")[:16], r.get("path")) for r in result])
        else:
            print_info(result)
    bad = [r for result in results.values() if args.action == "verify" for r in result if not r["ok"]]
    return EXIT_FAILED if bad else EXIT_OK


def cmd_add(args: argparse.Namespace) -> int:
    from mnistlab.data.adding import add

    if len(args.operands) != 2:
        raise UserError("'data add' takes NAME and PATH: mnistlab data add NAME PATH [--format ...]")
    name, path = args.operands
    added = add(name, path, format=args.format, size=args.size, channels=args.channels, pipeline=args.pipeline,
                test_fraction=args.test_fraction, data_dir=args.data_dir, force=args.force)
    for note in added.notes:
        print(f"note: {note}", file=sys.stderr)
    if args.json:
        emit_json(added.to_dict())
        return EXIT_OK
    info = added.info
    total = {split: sum(counts) for split, counts in added.counts.items()}
    print(f"{info.name}: {total['train']:,} training and {total['test']:,} test images"
          + (" (test carved: stratified, seed 0)" if added.test_carved else "")
          + f", {info.num_classes} classes, {info.image_size}×{info.image_size}, "
          f"{'grayscale' if info.in_channels == 1 else 'colour'}, from {added.source} ({added.source_format})")
    print(f"pixel mean / std: {info.mean:.4f} / {info.std:.4f} (training split); pictures to predict go through "
          f"the {info.pipeline} pipeline" + (" (chosen from the images; --pipeline to change)"
                                             if added.pipeline_guessed else ""))
    print(f"fingerprint: sha256 {info.fingerprint}")
    print(f"stored in: {info.folder}")
    print_table(f"{info.name}: images per class", ["class", "name", "train", "test"],
                [(i, n, f"{a:,}", f"{b:,}") for i, (n, a, b)
                 in enumerate(zip(info.class_names, added.counts["train"], added.counts["test"]))])
    print(f"train on it: mnistlab train --dataset {info.name}")
    return EXIT_OK


def print_info(s: dict[str, Any]) -> None:
    """``data info`` for a person: sizes, pixel statistics, files and the images per class."""
    print(f"{s['dataset']}: {s['train']['count']:,} training and {s['test']['count']:,} test images, "
          f"{len(s['class_names'])} classes")
    print(f"pixel mean / std: {s['mean']:.4f} / {s['std']:.4f} used for normalisation, "
          f"{s['measured_mean']:.4f} / {s['measured_std']:.4f} measured on the training images")
    print("files:")
    for key, path in s["files"].items():
        print(f"  {key:<13} {path}")
    print_table(f"{s['dataset']}: images per class", ["class", "name", "train", "test"],
                [(i, name, f"{train:,}", f"{test:,}") for i, (name, train, test)
                 in enumerate(zip(s["class_names"], s["train"]["class_counts"], s["test"]["class_counts"]))])


def cmd_models(args: argparse.Namespace) -> int:
    from mnistlab.models import REFERENCE_PARAMS, count_macs, count_parameters, create_model, describe_models

    rows = []
    for name, desc in describe_models().items():
        model = create_model(name)
        rows.append({"name": name, "params": count_parameters(model), "macs": count_macs(model),
                     "description": desc, "reference_params": REFERENCE_PARAMS.get(name)})
    if args.json:
        emit_json(rows)
    else:
        print_table("models (MACs: multiply-adds per 28×28 image)", ["name", "params", "MACs", "description"],
                    [(r["name"], f"{r['params']:,}", f"{r['macs']:,}", r["description"]) for r in rows])
    return EXIT_OK


def add_commands(command) -> None:
    """Add ``data`` and ``models`` through ``command(name, func, help, ...)``."""
    from mnistlab.data.adding import PIPELINE_CHOICES
    from mnistlab.data.datasets import list_datasets
    from mnistlab.data.readers import FORMATS

    p = command("data", cmd_data, "fetch, verify or describe the data sets, or add your own")
    p.add_argument("action", choices=["fetch", "verify", "info", "add"],
                   help="fetch: download (or find) and check the files; verify: check sizes and SHA-256 sums; "
                        "info: sizes, pixel statistics and images per class; add NAME PATH: import your own "
                        "data set into the store (docs/own-data.md)")
    p.add_argument("operands", nargs="*", metavar="NAME PATH", help="for add: the new data set's name and its "
                   "folder of pictures (one sub-folder per class), CSV, .npz or folder of IDX files")
    p.add_argument("--dataset", default="mnist", metavar="NAME",
                   help=f"{', '.join(list_datasets())}, one added with 'data add', or all (default %(default)s)")
    add = p.add_argument_group("data add")
    add.add_argument("--format", default="auto", choices=FORMATS, help="default: from the path")
    add.add_argument("--size", type=int, default=28, help="image side in pixels; pictures are resized keeping "
                     "their aspect and padded (default %(default)s)")
    add.add_argument("--channels", type=int, default=1, choices=[1, 3], help="1: grayscale, 3: colour (default 1)")
    add.add_argument("--pipeline", choices=list(PIPELINE_CHOICES), help="how pictures are prepared at predict and "
                     "serve time: digits (as MNIST), objects (as Fashion-MNIST), plain (resize only); "
                     "default: chosen from the images")
    add.add_argument("--test-fraction", type=float, default=1 / 6, help="share carved (stratified, seed 0) as the "
                     "test split when the source has none (default 1/6)")
    add.add_argument("--force", action="store_true", help="replace a data set of that name in the store")

    command("models", cmd_models, "list the registered architectures, their parameters and MACs per image",
            data_dir=False)
