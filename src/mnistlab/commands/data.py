"""`mnistlab data fetch|verify|info` and `mnistlab models`: what there is to train on and with.

    mnistlab data verify --dataset all
    mnistlab models --json
"""

from __future__ import annotations

import argparse
from typing import Any

from mnistlab.commands.output import EXIT_FAILED, EXIT_OK, emit_json, print_table


def cmd_data(args: argparse.Namespace) -> int:
    from mnistlab.data import datasets, store

    names = store.list_dataset_names() if args.dataset == "all" else [args.dataset]
    results = {}
    for name in names:
        if args.action == "fetch":
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
    from mnistlab.data.datasets import list_datasets

    p = command("data", cmd_data, "fetch, verify or describe the data sets")
    p.add_argument("action", choices=["fetch", "verify", "info"],
                   help="fetch: download (or find) and check the files; verify: check sizes and SHA-256 sums; "
                        "info: sizes, pixel statistics and images per class")
    p.add_argument("--dataset", default="mnist", choices=[*list_datasets(), "all"], help="default %(default)s")

    command("models", cmd_models, "list the registered architectures, their parameters and MACs per image",
            data_dir=False)
