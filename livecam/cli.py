"""argparse -> objects -> pipeline. The only module that prints usage errors and exits the process.

Every mistake a user can make ends here as one sentence on stderr and exit code 2 (a
``UserError``); ``--debug`` shows tracebacks instead.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import re
import signal
import sys
import warnings
from pathlib import Path
from typing import Sequence

from livecam import __version__
from livecam.errors import UserError, shown

EXIT_USAGE = 2
EXIT_INTERRUPTED = 130


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    debug = "--debug" in argv
    if not debug:
        os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # TensorFlow's start-up chatter
    # The step is one chain of ops, so TensorFlow gains nothing from running ops side by side,
    # while its extra threads compete with the capture, render and encoder stages for the CPU.
    os.environ.setdefault("TF_NUM_INTEROP_THREADS", "1")
    try:
        if argv and argv[0] == "models":
            return _models()
        if argv and argv[0] == "layers":
            return _layers(argv[1:])
        if argv and argv[0] == "serve":
            return _serve(argv[1:])
        return _view(_parser().parse_args(argv))
    except SystemExit as exc:  # argparse's --help and --version
        return exc.code if isinstance(exc.code, int) else 0
    except UserError as exc:
        if debug:
            raise
        print(f"livecam: error: {shown(exc)}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        if debug:
            raise
        print("livecam: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except Exception as exc:  # a bug or an environment fault: one line, the traceback with --debug
        if debug:
            raise
        text = str(exc).strip().splitlines()
        print(f"livecam: unexpected error: {type(exc).__name__}: {shown(text[0]) if text else ''} (rerun with --debug for details)", file=sys.stderr)
        return 1


# ---------------------------------------------------------------------- arguments


def _parser() -> argparse.ArgumentParser:
    from livecam.render import DEFAULT_ALPHA, DEFAULT_SMOOTH

    p = _ArgumentParser(
        prog="livecam",
        description="Real-time Grad-CAM viewer: shows which parts of the picture make the network say what it says.",
        epilog="Other commands: `livecam serve` shows the viewer in a browser; `livecam models` lists the model zoo; "
        "`livecam layers MODEL` lists a model's target layers.",
    )
    p.add_argument("--version", action="version", version=f"livecam {__version__}")
    src = p.add_argument_group("input")
    src.add_argument("--source", default="0", help="camera index, video file, image folder or glob, rtsp/http URL, or synth: (default: 0)")
    src.add_argument("--demo", action="store_true", help="offline demo: --source synth: --model demo")
    src.add_argument("--loop", action="store_true", help="replay video files and folders")
    src.add_argument("--resolution", type=_width_by_height("--resolution", (7680, 4320)), help="camera resolution to request, WxH")
    src.add_argument("--fps", type=_positive_float("--fps"), help="camera frame rate to request")
    src.add_argument("--list-cameras", action="store_true", help="probe cameras 0-9 and exit")
    add_engine_arguments(p)
    out = p.add_argument_group("output")
    out.add_argument("--output", "-o", type=Path, help="record the overlay to this .mp4 file")
    out.add_argument("--size", type=_width_by_height("--size", (16384, 16384)), help="size of the recording, WxH (default: the input's; for image folders the most common image size)")
    out.add_argument("--overwrite", action="store_true", help="replace an existing --output or --stats-json file (never an input)")
    out.add_argument("--no-display", action="store_true", help="no window (headless)")
    out.add_argument("--max-frames", type=_int_range("--max-frames", 1, None), help="stop after N frames")
    out.add_argument("--stats-json", type=Path, help="write run statistics to this JSON file at exit")
    out.add_argument("--snapshot-dir", type=Path, default=Path("."), help="where the s key saves snapshots (default: .)")
    out.add_argument("--quiet", "-q", action="store_true", help="no progress bar or summary")
    ren = p.add_argument_group("rendering")
    ren.add_argument("--colormap", default="jet", help="any OpenCV colormap name (default: jet)")
    ren.add_argument("--alpha", type=_unit_float("--alpha", upper_open=False), default=DEFAULT_ALPHA, help=f"heat-map opacity in [0, 1] (default {DEFAULT_ALPHA})")
    ren.add_argument("--smooth", type=_unit_float("--smooth", upper_open=True), default=DEFAULT_SMOOTH, help=f"temporal smoothing in [0, 1); 0 = off (default {DEFAULT_SMOOTH})")
    ren.add_argument("--no-hud", action="store_true", help="no text or legend: clean output")
    ren.add_argument("--side-by-side", action="store_true", help="show raw | overlay")
    perf = p.add_argument_group("speed")
    perf.add_argument("--batch", type=_int_range("--batch", 1, 256), default=None, help="frames per engine call for files (default 8; live sources use 1)")
    perf.add_argument("--every", type=_int_range("--every", 1, 1000), default=1, help="explain every Nth frame, reuse the result in between")
    p.add_argument("--debug", action="store_true", help="show tracebacks")
    return p


def add_engine_arguments(p: argparse.ArgumentParser) -> None:
    """The engine's options (model, weights, layer, method, class, speed), shared by the viewer and `livecam serve`."""
    from livecam.methods import METHOD_NAMES
    from livecam.models import DEFAULT_MODEL

    eng = p.add_argument_group("model")
    eng.add_argument("--model", default=None, help=f"zoo name, 'demo', or a .keras/.h5 file (default: {DEFAULT_MODEL})")
    eng.add_argument("--weights", default="imagenet", help="imagenet | none | a weights file (zoo models)")
    eng.add_argument("--labels", help="class names for a custom model: one per line, or JSON")
    eng.add_argument("--layer", help="target layer (default: the model's last spatial layer)")
    eng.add_argument("--method", default="gradcam", help=f"{', '.join(METHOD_NAMES)} (default: gradcam)")
    eng.add_argument("--class", dest="class_", metavar="CLASS", help="explain this class (id or name) instead of the top one")
    eng.add_argument("--topk", type=_int_range("--topk", 1, 20), default=None, help="top classes on the HUD (1-20, default 5)")
    eng.add_argument("--unsafe-model-load", action="store_true", help="allow model files with Lambda layers (runs their code)")
    eng.add_argument("--input-size", type=_int_range("--input-size", 32, 1024), help="feed the network at this square size")
    eng.add_argument("--xla", action="store_true", help="compile the step with XLA")
    eng.add_argument("--mixed-precision", action="store_true", help="mixed_float16 zoo models (GPUs)")


class _ArgumentParser(argparse.ArgumentParser):
    def error(self, message: str):  # one sentence, exit 2, no usage dump
        raise UserError(f"{message[0].upper()}{message[1:]}; see `{self.prog} --help`.")


def _width_by_height(flag: str, most: tuple[int, int]):
    """A parser of "WxH" for ``flag``, each side from 16 up to ``most``'s."""

    def parse(text: str) -> tuple[int, int]:
        try:
            w, h = (int(v) for v in text.lower().split("x"))
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected {flag} as WxH, e.g. 1280x720. Received: {text!r}") from None
        if not (16 <= w <= most[0] and 16 <= h <= most[1]):
            raise argparse.ArgumentTypeError(f"expected {flag} between 16x16 and {most[0]}x{most[1]}. Received: {text!r}")
        return (w, h)

    return parse


def _int_range(flag: str, low: int, high: int | None):
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected an integer for {flag}. Received: {text!r}") from None
        if value < low or (high is not None and value > high):
            bound = f"in [{low}, {high}]" if high is not None else f">= {low}"
            raise argparse.ArgumentTypeError(f"expected {flag} {bound}. Received: {value}")
        return value

    return parse


def _unit_float(flag: str, *, upper_open: bool):
    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a number for {flag}. Received: {text!r}") from None
        if not (0.0 <= value < 1.0 if upper_open else 0.0 <= value <= 1.0):
            raise argparse.ArgumentTypeError(f"expected {flag} in [0, 1{')' if upper_open else ']'}. Received: {value}")
        return value

    return parse


def _positive_float(flag: str):
    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a number for {flag}. Received: {text!r}") from None
        if not 0 < value <= 1000:
            raise argparse.ArgumentTypeError(f"expected {flag} in (0, 1000]. Received: {value}")
        return value

    return parse


# ---------------------------------------------------------------------- commands


def _models() -> int:
    from livecam.models import DEFAULT_MODEL, ZOO

    print(f"{'model':<20} {'input':<9} {'preprocessing':<14} default layer")
    for name, entry in ZOO.items():
        size = f"{entry.input_size[1]}x{entry.input_size[0]}"
        layer = entry.default_layer or "auto (last spatial layer)"
        mark = " (default)" if name == DEFAULT_MODEL else ""
        print(f"{name:<20} {size:<9} {entry.preprocess:<14} {layer}{mark}")
    print(f"{'demo':<20} {'':<9} {'built in':<14} the shipped offline demo model (livecam --demo)")
    return 0


def _layers(argv: list[str]) -> int:
    p = _ArgumentParser(prog="livecam layers", description="List the layers a map can be taken from.")
    p.add_argument("model")
    p.add_argument("--weights", default="none")
    p.add_argument("--unsafe-model-load", action="store_true", help="allow model files with Lambda layers (runs their code)")
    p.add_argument("--debug", action="store_true")
    args = p.parse_args(argv)
    with _native_stderr_silenced(not args.debug):  # TensorFlow's C++ start-up log lines
        from livecam.models import load_model, spatial_layers

        loaded = load_model(args.model, weights=args.weights, unsafe=args.unsafe_model_load)
    for layer in spatial_layers(loaded.model):
        shape = "x".join(str(d) for d in tuple(layer.output.shape)[1:])
        mark = " (default)" if layer.name == loaded.default_layer else ""
        print(f"{shown(layer.name):<45} {shape}{mark}")
    return 0


def _serve_parser() -> argparse.ArgumentParser:
    from livecam.render import DEFAULT_ALPHA, DEFAULT_SMOOTH
    from livecam.serve import DEFAULT_PORT

    p = _ArgumentParser(
        prog="livecam serve",
        description="The live viewer in a browser: for the browser's own camera, and for the server's --source.",
    )
    src = p.add_argument_group("input")
    src.add_argument("--source", help="the server's own view: camera index, video file, image folder, URL or synth: (default: none)")
    src.add_argument("--demo", action="store_true", help="--source synth: --model demo")
    src.add_argument("--loop", action="store_true", help="replay video files and folders")
    src.add_argument("--resolution", type=_resolution, help="camera resolution to request, WxH")
    src.add_argument("--fps", type=_positive_float("--fps"), help="camera frame rate to request")
    add_engine_arguments(p)
    net = p.add_argument_group("server")
    net.add_argument("--host", default="127.0.0.1", help="address to listen on; anything but loopback needs a token (default: 127.0.0.1)")
    net.add_argument("--port", type=_int_range("--port", 0, 65535), default=DEFAULT_PORT, help=f"TCP port; 0 picks a free one (default: {DEFAULT_PORT})")
    net.add_argument("--token", help="secret that every request must carry (generated when --host is not loopback)")
    net.add_argument("--certfile", help="HTTPS certificate (PEM); browsers give the camera only to HTTPS pages or localhost")
    net.add_argument("--keyfile", help="HTTPS private key (PEM)")
    net.add_argument("--max-batch", type=_int_range("--max-batch", 1, 256), default=8, help="most frames of all clients in one engine call (default 8)")
    net.add_argument("--max-wait-ms", type=_int_range("--max-wait-ms", 0, 1000), default=5, help="longest a frame waits for others to share its call, 0-1000 (default 5)")
    ren = p.add_argument_group("rendering (the stream, overlays, and the page's starting values)")
    ren.add_argument("--colormap", default="jet", help="any OpenCV colormap name (default: jet)")
    ren.add_argument("--alpha", type=_unit_float("--alpha", upper_open=False), default=DEFAULT_ALPHA, help=f"heat-map opacity in [0, 1] (default {DEFAULT_ALPHA})")
    ren.add_argument("--smooth", type=_unit_float("--smooth", upper_open=True), default=DEFAULT_SMOOTH, help=f"temporal smoothing in [0, 1) (default {DEFAULT_SMOOTH})")
    p.add_argument("--debug", action="store_true", help="show tracebacks")
    return p


def _serve(argv: list[str]) -> int:
    with _native_stderr_silenced("--debug" not in argv):  # the parser's imports start TensorFlow, which logs
        parser = _serve_parser()
    args = parser.parse_args(argv)
    from livecam import sources
    from livecam.render import colormap_id

    with _native_stderr_silenced(not args.debug):  # TensorFlow's C++ start-up log lines
        from livecam import serve
        from livecam.methods import check_method

    colormap_id(args.colormap)
    check_method(args.method)
    ssl_ctx = serve.ssl_context(args.certfile, args.keyfile)
    token = args.token
    if token is not None and not token.strip():
        raise UserError("Expected a non-empty --token; leave it out to have one generated.")
    if token is None and serve.needs_token(args.host):
        token = serve.new_token()
    spec = "synth:" if args.demo and args.source is None else args.source
    model_name = args.model or ("demo" if args.demo else "mobilenet_v2")
    source = sources.open_source(spec, loop=args.loop, resolution=args.resolution, fps=args.fps) if spec is not None else None
    try:
        with _native_stderr_silenced(not args.debug):
            from livecam.models import class_index
            from livecam.worker import EngineWorker

            engine = engine_from_args(args, model_name)
        class_id = class_index(engine.class_names, args.class_) if args.class_ is not None else None
        config = serve.ServeConfig(token=token, class_id=class_id, alpha=args.alpha, colormap=args.colormap, smooth=args.smooth)
        with EngineWorker(engine, max_batch=args.max_batch, max_wait_ms=args.max_wait_ms) as worker:
            app = serve.create_app(engine, worker, config, source=source)

            def ready(port: int) -> None:
                print(f"livecam: model {engine.model_name}, layer {engine.layer_name}, method {engine.method}", file=sys.stderr)
                if source is not None:
                    print(f"livecam: the server's source: {source.description}", file=sys.stderr)
                if ssl_ctx is None and serve.needs_token(args.host):
                    print(
                        f"livecam: note: browsers give the camera only to HTTPS pages or localhost; add --certfile/--keyfile, "
                        f"or tunnel with `ssh -L {port}:localhost:{port} THIS-HOST` and open http://localhost:{port}/",
                        file=sys.stderr,
                    )
                print(f"livecam: open {serve.page_url(args.host, port, token, https=ssl_ctx is not None)}  (Ctrl-C stops)", flush=True)

            serve.run(app, args.host, args.port, ssl_ctx=ssl_ctx, on_ready=ready)
    finally:
        if source is not None:
            source.close()
    print("livecam: server stopped", file=sys.stderr, flush=True)
    # Everything is closed. The interpreter's own teardown with TensorFlow loaded takes seconds
    # (about 3 s here), which would break the promise that Ctrl-C stops the server within 2 s.
    sys.stdout.flush()
    os._exit(0)


def _view(args: argparse.Namespace) -> int:
    from livecam import sources

    if args.list_cameras:
        cameras = sources.list_cameras()
        if not cameras:
            print("No camera opened (indexes 0-9 probed).")
        for cam in cameras:
            print(", ".join(f"{k}: {v}" for k, v in cam.items()))
        return 0

    spec = "synth:" if args.demo else args.source
    model_name = args.model or ("demo" if args.demo else "mobilenet_v2")
    display = not args.no_display

    from livecam import sinks
    from livecam.methods import check_method
    from livecam.render import colormap_id

    # Validate what can be validated before anything slow (camera, model).
    colormap_id(args.colormap)
    check_method(args.method)
    if display and not sinks.gui_available():
        if args.demo:  # the demo works anywhere: with no screen it records instead
            display = False
            args.output = args.output or sinks.free_name(Path("livecam-demo.mp4"))
            args.max_frames = args.max_frames or 300
            print(
                f"livecam: no display here, so the demo records {args.max_frames} frames to {args.output} instead of opening a window.",
                file=sys.stderr,
            )
        else:
            raise UserError(
                "This OpenCV build has no GUI or there is no display (opencv-python-headless, or no $DISPLAY); "
                "run with --no-display --output out.mp4 to record instead."
            )
    # No output may be any input or another output, --overwrite or not (compared as files).
    inputs = _input_files(args, spec)
    if args.output is not None:
        sinks.check_video_output(args.output, overwrite=args.overwrite, others=inputs)
    if args.stats_json is not None:
        outputs = [("--output", args.output)] if args.output is not None else []
        sinks.check_output(args.stats_json, overwrite=args.overwrite, others=[*inputs, *outputs])

    source = sources.open_source(spec, loop=args.loop, resolution=args.resolution, fps=args.fps)
    try:
        return _run(args, source, model_name, display)
    finally:
        source.close()


def _input_files(args: argparse.Namespace, spec: str) -> list[tuple[str, Path]]:
    """(role, path) of every local file this run reads: the input video or images, model, weights, labels."""
    import glob

    from livecam.sources import is_image_name

    found: list[tuple[str, Path]] = []
    path = Path(spec).expanduser()
    if re.fullmatch(r"[0-9]+|synth(:.*)?|[A-Za-z][A-Za-z0-9+.-]*://.*", spec.strip()):
        pass  # a camera, the synthetic scene or a URL
    elif path.is_dir():
        found += [("the input image", p) for p in path.iterdir() if is_image_name(p)]  # what the folder source reads
    elif path.exists():
        found.append(("the input", path))
    elif re.search(r"[*?[]", spec):
        found += [("the input image", Path(p)) for p in glob.glob(os.path.expanduser(spec)) if is_image_name(Path(p))]
    for flag, value in (("--model", args.model), ("--weights", args.weights), ("--labels", args.labels)):
        if value and Path(value).expanduser().is_file():
            found.append((flag, Path(value).expanduser()))
    return found


def _run(args: argparse.Namespace, source, model_name: str, display: bool) -> int:
    from livecam import sinks
    from livecam.models import class_index
    from livecam.render import Renderer

    quiet = args.quiet
    if not quiet:
        print(f"livecam: source: {shown(source.description)}", file=sys.stderr)
        for warning in getattr(source, "warnings", []) or []:
            print(f"livecam: warning: {shown(warning)}", file=sys.stderr)
    with _native_stderr_silenced(not args.debug):  # TensorFlow's C++ start-up log lines
        from livecam.pipeline import Options, Pipeline, recording_size

        engine = engine_from_args(args, model_name)
    class_id = class_index(engine.class_names, args.class_) if args.class_ is not None else None
    if not quiet:
        print(f"livecam: model {shown(engine.model_name)}, layer {shown(engine.layer_name)}, method {engine.method}", file=sys.stderr)

    renderer = Renderer(colormap=args.colormap, alpha=args.alpha, smooth=args.smooth, hud=not args.no_hud, side_by_side=args.side_by_side)
    batch = 1 if source.live else (args.batch or 8)
    _check_memory(engine, source, batch)
    options = Options(
        batch=batch,
        every=args.every,
        max_frames=args.max_frames,
        output=args.output,
        size=args.size,
        snapshot_dir=args.snapshot_dir,
        stats_json=args.stats_json,
        progress=not quiet,
        class_id=class_id,
    )
    recorder = None
    if args.output is not None:
        recorder = sinks.VideoWriter(
            args.output,
            fps=source.fps or 30.0,
            size=recording_size(source, args.size, side_by_side=args.side_by_side),
            live=source.live or source.variable_frame_rate,  # the latter: keep the file's own timing
            overwrite=args.overwrite,
        )
    window = sinks.WindowSink("livecam") if display else None
    pipeline = Pipeline(source, engine, renderer, options, window=window, recorder=recorder, log=_log)

    previous = signal.signal(signal.SIGTERM, _raise_interrupt)
    try:
        with warnings.catch_warnings():
            # The pipeline prints what the writer notes, this one too: once, as a livecam line.
            warnings.filterwarnings("ignore", message="Could not start ffmpeg", category=RuntimeWarning)
            stats = pipeline.run()
    finally:
        signal.signal(signal.SIGTERM, previous)
    if not quiet:
        print(
            f"livecam: {stats.frames} frames in {stats.seconds:.1f} s ({stats.fps:.1f} fps), "
            f"dropped {stats.dropped}, corrupt {stats.corrupt}"
            + (f"; saved {shown(', '.join(stats.recordings))}" if stats.recordings and stats.recording_error is None else ""),
            file=sys.stderr,
        )
    if stats.recording_error is not None and window is None:
        return 1
    return 0


def engine_from_args(args: argparse.Namespace, model_name: str):
    """The CamEngine that the options of ``add_engine_arguments`` ask for."""
    from livecam.engine import CamEngine

    return CamEngine(
        model_name,
        weights=args.weights,
        layer=args.layer,
        method=args.method,
        labels=args.labels,
        topk=args.topk,
        input_size=args.input_size,
        xla=args.xla,
        mixed_precision=args.mixed_precision,
        unsafe_model_load=args.unsafe_model_load,
    )


# Frames of the source's size alive at once, per frame of a batch: the queue to the engine (two
# batches), the batch in the engine and the queue to the renderer (two batches).
_FRAMES_IN_FLIGHT_PER_BATCH_FRAME = 5


def _check_memory(engine, source, batch: int) -> None:
    """Refuses a batch and input size whose working set would not fit in the memory available now.

    On a GPU the step's activations live in the GPU's memory, so only the frames count here.
    """
    from livecam.models import step_bytes_per_frame

    available = available_memory_bytes()
    if available is None:
        return
    width, height = source.size or (1920, 1080)
    per_frame = _FRAMES_IN_FLIGHT_PER_BATCH_FRAME * width * height * 3
    if activations_in_host_memory():
        per_frame += step_bytes_per_frame(engine.model, engine.layer_name, engine.input_size)
    if batch * per_frame <= available:
        return
    h, w = engine.input_size
    fits = available // per_frame
    advice = f"pass --batch {fits} or less, or a smaller --input-size" if fits >= 1 else "pass a smaller --input-size"
    raise UserError(
        f"A batch of {batch} frames at {w}x{h} with {engine.model_name} needs about {_gigabytes(batch * per_frame)} of memory, "
        f"but only {_gigabytes(available)} is available; {advice}."
    )


def activations_in_host_memory() -> bool:
    """Whether TensorFlow runs the step in the machine's memory: True unless it sees a GPU."""
    import tensorflow as tf

    return not tf.config.list_physical_devices("GPU")


def available_memory_bytes() -> int | None:
    """Memory this process can still take without swapping, in bytes; None where it cannot be told.

    Linux's MemAvailable (free memory plus caches it can drop), lowered to what is left under a
    cgroup (container) limit; elsewhere the free physical pages, where the system says.
    """
    available = None
    with contextlib.suppress(OSError, ValueError):
        with open("/proc/meminfo") as meminfo:
            for line in meminfo:
                if line.startswith("MemAvailable:"):
                    available = int(line.split()[1]) * 1024
    if available is None:
        with contextlib.suppress(AttributeError, OSError, ValueError):
            available = os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    for folder, limit, usage, cache in (
        ("/sys/fs/cgroup", "memory.max", "memory.current", "inactive_file"),  # cgroup v2
        ("/sys/fs/cgroup/memory", "memory.limit_in_bytes", "memory.usage_in_bytes", "total_inactive_file"),  # v1
    ):
        with contextlib.suppress(OSError, ValueError):  # no such file, or "max": no limit
            cgroup = Path(folder)
            left = int((cgroup / limit).read_text()) - int((cgroup / usage).read_text())
            stats = dict(line.split() for line in (cgroup / "memory.stat").read_text().splitlines())
            left += int(stats.get(cache, 0))  # page cache the kernel drops before it runs out
            available = left if available is None else min(available, left)
            break
    return available


def _gigabytes(n_bytes: int) -> str:
    return f"{n_bytes / 1e9:.1f} GB" if n_bytes >= 1e9 else f"{n_bytes / 1e6:.0f} MB"


@contextlib.contextmanager
def _native_stderr_silenced(enabled: bool):
    """Sends file descriptor 2 to /dev/null: TensorFlow's C++ logging ignores TF_CPP_MIN_LOG_LEVEL
    for the lines it prints before its logger is set up. Python exceptions are unaffected."""
    if not enabled:
        yield
        return
    sys.stderr.flush()
    saved = os.dup(2)
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, 2)
        yield
    finally:
        sys.stderr.flush()
        os.dup2(saved, 2)
        os.close(saved)
        os.close(devnull)


def _log(text: str) -> None:
    print(shown(text), file=sys.stderr, flush=True)


def _raise_interrupt(signum, frame):
    raise KeyboardInterrupt
