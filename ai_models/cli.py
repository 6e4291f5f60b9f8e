"""``pacs ai evaluate``: the evaluation command, wired into ``pacs.cli`` as the ``ai`` group."""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path
from typing import Any


def add_ai_commands(parser: argparse.ArgumentParser) -> argparse._SubParsersAction[Any]:
    """Add the ``ai`` subcommands to the ``ai`` parser of the ``pacs`` command; returns the
    subcommand group (``pacs.cli`` adds the commands that need the archive)."""
    commands = parser.add_subparsers(dest="ai_command", required=True)
    text = "evaluate a model folder on labelled images (AUROC, sensitivity, specificity)"
    evaluate = commands.add_parser("evaluate", help=text, description=text)
    evaluate.add_argument("--model", required=True, type=Path, help="model folder (card + ONNX)")
    evaluate.add_argument("--labels", required=True, type=Path, help="labels CSV")
    evaluate.add_argument("--label-column", required=True, help="column holding the labels")
    evaluate.add_argument("--file-column", default="file", help="column of image paths")
    evaluate.add_argument("--dataset-name", help="name kept with the figures (CSV folder name)")
    evaluate.add_argument("--record", action="store_true", help="append to the card's evaluations")
    evaluate.add_argument("--json", action="store_true", help="print the report as JSON")
    evaluate.add_argument("--batch-size", type=int, default=8)
    evaluate.add_argument("--threads", type=int, default=0, help="intra-op threads, 0 = default")
    evaluate.add_argument(
        "--providers",
        default="CPUExecutionProvider",
        help="comma-separated onnxruntime providers, in order of preference",
    )
    evaluate.add_argument("--bootstrap", type=int, default=2000, help="bootstrap resamples")
    evaluate.add_argument("--seed", type=int, default=0, help="bootstrap seed")
    return commands


def run_ai(args: argparse.Namespace) -> int:
    """Run the chosen ``ai`` subcommand; the exit status."""
    from ai_models.backend import OnnxBackend
    from ai_models.card import ModelCardError, load_card
    from ai_models.classifier import Classifier
    from ai_models.evaluate import evaluate, record_evaluation

    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    try:
        card = load_card(args.model)
        providers = [p.strip() for p in args.providers.split(",") if p.strip()]
        backend = OnnxBackend(card, providers, threads=args.threads)
        classifier = Classifier(card, backend, batch_size=args.batch_size)
        report = evaluate(
            classifier,
            args.labels,
            args.label_column,
            file_column=args.file_column,
            dataset_name=args.dataset_name,
            bootstrap=args.bootstrap,
            seed=args.seed,
        )
    except (ModelCardError, ValueError, OSError) as exc:
        print(f"pacs ai evaluate: {exc}", file=sys.stderr)
        return 2
    print(json.dumps(report.to_dict(), indent=2) if args.json else report.to_text())
    if args.record:
        try:
            path = record_evaluation(args.model, report)
        except (ModelCardError, OSError) as exc:
            print(
                f"pacs ai evaluate: cannot record in {args.model}: {exc}\n"
                "Record into a deployment folder: a folder holding a symlink to the ONNX file "
                "and a copy of model_card.json (see ai_models/README.md).",
                file=sys.stderr,
            )
            return 1
        print(f"recorded in {path}", file=sys.stderr)
    return 0
