"""`livecam serve` under load: N WebSocket clients on one engine, and a long browser run.

For each model (weights none: weights do not change speed), a real `livecam serve` process is
started and N = 1, 2, 4, 8 clients each send 640x480 JPEG frames of the demo scene, stop-and-wait
(the next frame goes when the previous answer is back), for --seconds each. Per N it prints the
total answered fps, the per-client fps (slowest and fastest), the round trip p50/p95 and the
mean engine batch size (from /metrics); for one client, also the engine step alone (p50 of the
server's own "ms.engine"). Then one headless Chromium page (the system's, with a fake camera
playing the demo scene) runs for --browser-seconds, and the page's round trips in its first
and last 10 s are compared.

Targets (checked at the end):
  - one client: round trip p50 within the engine step + 10 ms;
  - 8 clients: total fps at least 1.5x the one-client fps, and every client at least half of
    the fair share (total / 8);
  - the browser's last-10-s p50 within 1.2x its first-10-s p50.

    python scripts/bench_serve.py [--models demo mobilenet_v2] [--clients 1 2 4 8] [--seconds 20]
                                  [--browser-seconds 60] [--browser-model demo] [--max-wait-ms 5] [--json]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import re
import shutil
import sys
import tempfile
import time
from pathlib import Path

import aiohttp
import cv2
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from livecam.demo import AnimatedScene  # noqa: E402
from serve_helpers import ServerProcess  # noqa: E402  (a real `livecam serve --port 0` process)

SIZE_WH = (640, 480)
WARMUP_S = 2.0


def demo_jpegs(n: int = 60) -> list[bytes]:
    scene = AnimatedScene(size=SIZE_WH, fps=30, seed=1)
    return [cv2.imencode(".jpg", scene.frame(i * 2), [cv2.IMWRITE_JPEG_QUALITY, 85])[1].tobytes() for i in range(n)]


async def metric_sum(session: aiohttp.ClientSession, server: ServerProcess, name: str) -> float:
    async with session.get(server.path("/metrics")) as response:
        text = await response.text()
    return sum(float(v) for v in re.findall(rf"^{re.escape(name)}(?:{{[^}}]*}})? (\S+)$", text, re.M))


async def client(session, server, jpegs, stop_at: float, record_from: float, offset: int) -> tuple[list[float], list[float]]:
    """One stop-and-wait client: (round trips in ms, engine ms) of the answers after ``record_from``."""
    rtts, engine = [], []
    async with session.ws_connect(server.path("/ws"), max_msg_size=0) as ws:
        i = offset
        while time.monotonic() < stop_at:
            t0 = time.monotonic()
            await ws.send_bytes(jpegs[i % len(jpegs)])
            message = json.loads((await ws.receive(timeout=60)).data)
            if message["type"] != "result":
                raise RuntimeError(f"the server answered {message}")
            if t0 >= record_from:
                rtts.append((time.monotonic() - t0) * 1000)
                engine.append(message["ms"]["engine"])
            i += 1
    return rtts, engine


async def load_run(server: ServerProcess, jpegs: list[bytes], n: int, seconds: float) -> dict:
    async with aiohttp.ClientSession() as session:
        start = time.monotonic()
        record_from = start + WARMUP_S
        stop_at = record_from + seconds

        # The batch counters at the end of the warm-up: a task reads them then.
        async def counters_at(t: float) -> tuple[float, float]:
            await asyncio.sleep(max(0.0, t - time.monotonic()))
            return (
                await metric_sum(session, server, "livecam_engine_batch_size_sum"),
                await metric_sum(session, server, "livecam_engine_batch_size_count"),
            )

        before_task = asyncio.ensure_future(counters_at(record_from))
        results = await asyncio.gather(*(client(session, server, jpegs, stop_at, record_from, k * 7) for k in range(n)))
        before = await before_task
        after = await counters_at(0)
    per_client_fps = [len(r) / seconds for r, _ in results]
    rtts = np.concatenate([r for r, _ in results])
    engine = np.concatenate([e for _, e in results])
    frames, batches = after[0] - before[0], after[1] - before[1]
    return {
        "clients": n,
        "total_fps": round(sum(per_client_fps), 2),
        "client_fps_min": round(min(per_client_fps), 2),
        "client_fps_max": round(max(per_client_fps), 2),
        "rtt_p50_ms": round(float(np.percentile(rtts, 50)), 1),
        "rtt_p95_ms": round(float(np.percentile(rtts, 95)), 1),
        "engine_p50_ms": round(float(np.percentile(engine, 50)), 1),
        "mean_batch": round(frames / batches, 2) if batches else None,
    }


def browser_run(server: ServerProcess, seconds: float, workdir: Path) -> dict:
    chromium = shutil.which("chromium")
    if chromium is None:
        return {"skipped": "no chromium (apt-get install chromium)"}
    from playwright.sync_api import sync_playwright

    scene = AnimatedScene(size=SIZE_WH, fps=30, seed=1)
    video = workdir / "scene.y4m"
    with open(video, "wb") as out:  # Chromium's fake camera plays it in a loop
        out.write(f"YUV4MPEG2 W{SIZE_WH[0]} H{SIZE_WH[1]} F30:1 Ip A1:1 C420jpeg\n".encode())
        for i in range(300):
            out.write(b"FRAME\n" + cv2.cvtColor(scene.frame(i), cv2.COLOR_BGR2YUV_I420).tobytes())
    args = ["--use-fake-ui-for-media-stream", "--use-fake-device-for-media-stream", f"--use-file-for-fake-video-capture={video}"]
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=chromium, args=args)
        try:
            page = browser.new_context(bypass_csp=True).new_page()
            page.goto(server.path("/"))
            page.wait_for_function("window.livecam && window.livecam.results > 5", timeout=120_000)
            page.evaluate("window.livecam.rttLog.length = 0")
            time.sleep(seconds)
            log = page.evaluate("window.livecam.rttLog")
        finally:
            browser.close()
    times = np.array([t for t, _ in log]) / 1000
    rtts = np.array([r for _, r in log])
    first = rtts[times < times[0] + 10]
    last = rtts[times > times[-1] - 10]
    return {
        "seconds": seconds,
        "answers": len(rtts),
        "first10_p50_ms": round(float(np.percentile(first, 50)), 1),
        "first10_p95_ms": round(float(np.percentile(first, 95)), 1),
        "last10_p50_ms": round(float(np.percentile(last, 50)), 1),
        "last10_p95_ms": round(float(np.percentile(last, 95)), 1),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--models", nargs="+", default=["demo", "mobilenet_v2"])
    parser.add_argument("--clients", nargs="+", type=int, default=[1, 2, 4, 8])
    parser.add_argument("--seconds", type=float, default=20.0, help="measured seconds per number of clients")
    parser.add_argument("--browser-seconds", type=float, default=60.0, help="0 skips the browser run")
    parser.add_argument("--browser-model", default="demo")
    parser.add_argument("--max-wait-ms", default="5", help="the server's batching wait cap (livecam serve --max-wait-ms)")
    parser.add_argument("--json", action="store_true", help="print one JSON object instead of tables")
    args = parser.parse_args()

    jpegs = demo_jpegs()
    report: dict = {"machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores", "models": {}}
    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        for model in args.models:
            server = ServerProcess("--model", model, "--weights", "none", "--max-wait-ms", args.max_wait_ms, log_dir=workdir)
            try:
                rows = [asyncio.run(load_run(server, jpegs, n, args.seconds)) for n in args.clients]
                report["models"][model] = rows
                if args.browser_seconds > 0 and model == args.browser_model:
                    report["browser"] = {"model": model, **browser_run(server, args.browser_seconds, workdir)}
            finally:
                server.stop()
    report["targets"] = targets(report)
    if args.json:
        print(json.dumps(report, indent=2))
    else:
        print_tables(report)
    return 0


def targets(report: dict) -> dict:
    checks = {}
    for model, rows in report["models"].items():
        by_n = {row["clients"]: row for row in rows}
        if 1 in by_n:
            one = by_n[1]
            checks[f"{model}: 1 client p50 <= engine + 10 ms"] = one["rtt_p50_ms"] <= one["engine_p50_ms"] + 10
        if 1 in by_n and 8 in by_n:
            eight = by_n[8]
            checks[f"{model}: 8 clients >= 1.5x one client"] = eight["total_fps"] >= 1.5 * by_n[1]["total_fps"]
            checks[f"{model}: 8 clients none starved"] = eight["client_fps_min"] >= 0.5 * eight["total_fps"] / 8
    browser = report.get("browser", {})
    if "last10_p50_ms" in browser:
        checks["browser: last 10 s p50 <= 1.2x first 10 s"] = browser["last10_p50_ms"] <= 1.2 * browser["first10_p50_ms"]
    return checks


def print_tables(report: dict) -> None:
    print(f"machine: {report['machine']}")
    for model, rows in report["models"].items():
        print(f"\n{model} (weights none), 640x480 JPEG, stop-and-wait clients")
        print(
            f"{'clients':>7} {'total fps':>10} {'per client (min-max)':>22} {'rtt p50':>8} {'rtt p95':>8} {'engine p50':>11} {'batch':>6}"
        )
        for row in rows:
            spread = f"{row['client_fps_min']:.1f}-{row['client_fps_max']:.1f}"
            print(
                f"{row['clients']:>7} {row['total_fps']:>10.1f} {spread:>22} {row['rtt_p50_ms']:>6.1f}ms {row['rtt_p95_ms']:>6.1f}ms "
                f"{row['engine_p50_ms']:>9.1f}ms {row['mean_batch'] or 0:>6.2f}"
            )
    browser = report.get("browser")
    if browser:
        if "skipped" in browser:
            print(f"\nbrowser run skipped: {browser['skipped']}")
        else:
            print(
                f"\nbrowser ({browser['model']}, {browser['seconds']:.0f} s, {browser['answers']} answers): round trip p50/p95 "
                f"first 10 s {browser['first10_p50_ms']:.1f}/{browser['first10_p95_ms']:.1f} ms, "
                f"last 10 s {browser['last10_p50_ms']:.1f}/{browser['last10_p95_ms']:.1f} ms"
            )
    print("\ntargets:")
    for name, ok in report["targets"].items():
        print(f"  {'PASS' if ok else 'MISS'}  {name}")


if __name__ == "__main__":
    sys.exit(main())
