"""The AI pipeline under load: time from a chest X-ray series' last C-STORE to its SR in the
archive, pipeline throughput on a burst, and ingest speed with the AI idle and busy.

    python benchmarks/bench_ai_pipeline.py                 # real model from ../shared/data
    python benchmarks/bench_ai_pipeline.py --quick
    python benchmarks/bench_ai_pipeline.py --provider cuda --workers 1 --threads 4

Latency is measured one series at a time on an otherwise idle server: each series is sent,
and its result's creation time (written by the worker just after the SR is stored) minus
the end of the C-STORE is the latency; the stable-series delay is reported apart. The burst
sends many series at once and times them through the pipeline. Ingest is a CT set (not
routed to the model) stored with DCMTK's storescu, first with the AI idle, then while the
burst keeps it busy.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import tempfile
import threading
import time
import urllib.request
from pathlib import Path
from typing import Any

from common import (
    RESULTS,
    DataSet,
    Server,
    association,
    ct_slice,
    ensure_set,
    machine_info,
    percentiles,
    radiograph,
    start_ours,
    store,
    warm_page_cache,
)
from pydicom import dcmread
from pydicom.uid import ComputedRadiographyImageStorage

SHARED_MODEL = Path(__file__).resolve().parents[2] / "shared" / "data" / "cxr-model"


def ai_config(models: Path, args: argparse.Namespace) -> str:
    """The ``[ai]`` table (and a route) for the server under test."""
    return (
        f'[ai]\nenabled = true\nmodels_dir = "{models}"\nstable_seconds = {args.stable_seconds}\n'
        f'workers = {args.workers}\nthreads = {args.threads}\nprovider = "{args.provider}"\n'
        f"batch_size = {args.batch_size}\nheatmaps = {'true' if args.heatmaps else 'false'}\n"
        f"yield_to_ingest = {args.yield_to_ingest}\n"
        'poll_seconds = 0.1\n[[ai.routes]]\nmodel = "bench-model"\nmodalities = ["CR", "DX"]\n'
    )


def wait_for_ai_worker(server: Server, timeout: float = 180.0) -> None:
    """Until the AI worker has loaded its model (and run its warm-up batch)."""
    deadline = time.monotonic() + timeout
    while "AI worker" not in server.log.read_text(errors="replace"):
        if time.monotonic() > deadline:
            raise RuntimeError("the AI worker did not start")
        time.sleep(0.2)


def http_json(server: Server, path: str) -> Any:
    with urllib.request.urlopen(f"http://127.0.0.1:{server.http_port}{path}", timeout=30) as r:
        return json.loads(r.read())


def send(server: Server, files: list[Path]) -> float:
    """C-STORE the files on one association; the time the last one was acknowledged."""
    with association(server, ComputedRadiographyImageStorage) as assoc:
        for path in files:
            status = assoc.send_c_store(dcmread(path))
            if int(status.Status) != 0:
                raise RuntimeError(f"C-STORE of {path.name} failed: 0x{int(status.Status):04X}")
    return time.time()


def result_time(server: Server, study: str, timeout: float = 300.0) -> float:
    """When the AI result of the study was recorded (server clock = this machine's)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        results = http_json(server, f"/ai/studies/{study}")
        if results:
            return float(results[0]["created_at"])
        time.sleep(0.05)
    raise RuntimeError(f"no AI result for study {study} after {timeout} s")


def measure_latency(server: Server, cr: DataSet, count: int, stable: float) -> dict[str, Any]:
    """One series at a time on an idle server."""
    latencies = []
    for index in range(count):
        stored_at = send(server, [cr.paths[index]])
        latencies.append(result_time(server, cr.studies[index]) - stored_at - stable)
    return {"series": count, "stable_seconds": stable, **percentiles(latencies)}


def measure_burst(
    server: Server, cr: DataSet, first: int, count: int, ct: DataSet | None, logs: Path
) -> dict[str, Any]:
    """``count`` series at once; while the AI works through them, the CT set is ingested."""
    files = cr.paths[first : first + count]
    started = time.time()
    sent_at = send(server, files)
    ingest: dict[str, Any] = {}

    def ingest_while_busy() -> None:
        if ct is not None:
            ingest.update(store(server, ct, 1, logs))
        ingest["finished_at"] = time.time()

    ingesting = threading.Thread(target=ingest_while_busy)
    ingesting.start()
    done = [result_time(server, study) for study in cr.studies[first : first + count]]
    ingesting.join()
    busy_until = max(done)
    return {
        "series": count,
        "send_seconds": round(sent_at - started, 2),
        "pipeline_seconds_after_last_store": round(busy_until - sent_at, 2),
        "images_per_s": round(count / (busy_until - sent_at), 2),
        "ingest_while_ai_busy": ingest,
        # The comparison means something only if the AI was still working when ingest ended.
        "ai_busy_during_whole_ingest": busy_until > ingest["finished_at"],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--model", type=Path, default=SHARED_MODEL)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--latency-series", type=int, default=20)
    parser.add_argument("--burst-series", type=int, default=48)
    parser.add_argument("--ct-slices", type=int, default=400)
    parser.add_argument("--stable-seconds", type=float, default=2.0)
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--yield-to-ingest", type=float, default=3.0)
    parser.add_argument("--provider", choices=("auto", "cpu", "cuda"), default="cpu")
    parser.add_argument("--heatmaps", action="store_true", help="also make occlusion heat maps")
    parser.add_argument(
        "--no-ingest", action="store_true", help="skip the CT ingest figures (no DCMTK needed)"
    )
    args = parser.parse_args()
    if args.quick:
        args.latency_series, args.burst_series, args.ct_slices = 6, 16, 200
    if not (args.model / "model_card.json").is_file():
        raise SystemExit(f"no model at {args.model} (give --model)")

    total = args.latency_series + args.burst_series
    cr = ensure_set("cr", total, radiograph, {"rows": 2500})
    warm_page_cache(cr.paths)
    ct = ensure_set("ct", args.ct_slices, ct_slice, {"rows": 512})
    if not args.no_ingest:
        warm_page_cache(ct.paths)
    scratch = Path(tempfile.mkdtemp(prefix="bench-ai-"))
    models = scratch / "models"
    models.mkdir()
    (models / "bench-model").symlink_to(args.model.resolve(), target_is_directory=True)
    logs = scratch / "logs"
    logs.mkdir()
    results: dict[str, Any] = {"settings": vars(args) | {"model": str(args.model)}}
    server = start_ours(scratch / "ours", None, extra_config=ai_config(models, args))
    try:
        wait_for_ai_worker(server)
        if not args.no_ingest:
            print("ingest, AI idle ...", flush=True)
            results["ingest_ai_idle"] = store(server, ct, 1, logs)
        print(f"latency, {args.latency_series} series one at a time ...", flush=True)
        results["latency"] = measure_latency(server, cr, args.latency_series, args.stable_seconds)
        print(f"burst of {args.burst_series} series, CT ingest meanwhile ...", flush=True)
        ct_again = None
        if not args.no_ingest:
            ct_again = ensure_set("ct-again", args.ct_slices, ct_slice, {"rows": 512})
            warm_page_cache(ct_again.paths)
        results["burst"] = measure_burst(
            server, cr, args.latency_series, args.burst_series, ct_again, logs
        )
        results["jobs"] = http_json(server, "/ai/jobs")["counts"]
    finally:
        results["server_stop"] = server.stop()
        RESULTS.mkdir(exist_ok=True)
        shutil.copyfile(server.log, RESULTS / "bench_ai_pipeline-server.log")
        shutil.rmtree(scratch, ignore_errors=True)
    results["machine"] = machine_info("")
    latency = results["latency"]
    print(
        f"\nlast C-STORE -> SR stored (minus the {args.stable_seconds} s stable delay): "
        f"p50 {latency['p50_ms']:.0f} ms, p95 {latency['p95_ms']:.0f} ms, max {latency['max_ms']:.0f} ms"
    )
    print(
        f"burst: {args.burst_series} series through the pipeline at "
        f"{results['burst']['images_per_s']} images/s"
    )
    if not args.no_ingest:
        idle = results["ingest_ai_idle"]["instances_per_s"]
        busy = results["burst"]["ingest_while_ai_busy"]["instances_per_s"]
        results["ingest_ratio_busy_vs_idle"] = round(busy / idle, 3)
        print(
            f"CT ingest: {idle} inst/s with the AI idle, {busy} inst/s with the AI busy "
            f"(ratio {results['ingest_ratio_busy_vs_idle']}; the AI was busy throughout: "
            f"{results['burst']['ai_busy_during_whole_ingest']})"
        )
    RESULTS.mkdir(exist_ok=True)
    out = RESULTS / f"bench_ai_pipeline-{time.strftime('%Y%m%d-%H%M%S')}.json"
    out.write_text(json.dumps(results, indent=2))
    print(f"results in {out}")


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    main()
