"""CPU (or CUDA) throughput of a real model: images/s by batch size and intra-op threads.

    python benchmarks/bench_ai.py                          # ../shared/data/cxr-model, NIH PNGs
    python benchmarks/bench_ai.py --threads 1 2 --batches 1 4 8 16 --seconds 10
    python benchmarks/bench_ai.py --providers CUDAExecutionProvider,CPUExecutionProvider

Inputs are real images preprocessed once (preprocessing is timed separately); each
(threads, batch) cell runs whole batches for at least ``--seconds`` after one warm-up batch.
CPU time per image is printed too: on a shared machine it says more than wall time.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from pathlib import Path

import numpy as np

from ai_models.backend import OnnxBackend
from ai_models.card import load_card
from ai_models.classifier import Classifier
from ai_models.evaluate import load_image_file

SHARED = Path(__file__).resolve().parents[1].parent / "shared" / "data"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    shared = Path(os.environ.get("PACS_SHARED_DATA", SHARED))
    parser.add_argument("--model", type=Path, default=shared / "cxr-model")
    parser.add_argument("--images", type=Path, default=shared / "cxr-images/nih-chestxray14/images")
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--batches", type=int, nargs="+", default=[1, 4, 8, 16])
    parser.add_argument("--seconds", type=float, default=8.0)
    parser.add_argument("--providers", default="CPUExecutionProvider")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()

    card = load_card(args.model)
    files = sorted(args.images.glob("*.png"))[:64]
    started = time.perf_counter()
    classifier = Classifier(card, OnnxBackend(card, threads=1))
    inputs = [classifier.prepare_image(load_image_file(f)[1]) for f in files]
    prep_ms = (time.perf_counter() - started) / len(files) * 1000
    print(
        f"model {card.name} {card.version}; {len(files)} images; load+preprocess {prep_ms:.1f} ms/image"
    )
    results = []
    providers = args.providers.split(",")
    for threads in args.threads:
        backend = OnnxBackend(card, providers, threads=threads)
        for batch in args.batches:
            stack = np.stack([inputs[i % len(inputs)] for i in range(batch)])
            backend.run(stack)  # warm-up
            count, begin, cpu_begin = 0, time.perf_counter(), time.process_time()
            while (elapsed := time.perf_counter() - begin) < args.seconds:
                backend.run(stack)
                count += batch
            cpu = time.process_time() - cpu_begin
            rate = count / elapsed
            row = {
                "providers": backend.providers_in_use,
                "threads": threads,
                "batch": batch,
                "images_per_s": round(rate, 2),
                "ms_per_batch": round(elapsed / (count / batch) * 1000, 1),
                "cpu_s_per_image": round(cpu / count, 4),
            }
            results.append(row)
            print(
                f"threads {threads:2d} batch {batch:3d}: {rate:6.2f} images/s "
                f"({row['ms_per_batch']} ms/batch, {1000 * cpu / count:.0f} ms CPU/image)"
            )
    meta = {
        "machine": platform.processor() or platform.machine(),
        "cpus": os.cpu_count(),
        "load_avg": os.getloadavg(),
        "prep_ms_per_image": round(prep_ms, 2),
    }
    print(json.dumps(meta))
    if args.json:
        args.json.write_text(json.dumps({"meta": meta, "results": results}, indent=2))


if __name__ == "__main__":
    main()
