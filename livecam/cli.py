"""argparse -> objects -> pipeline. The only module that prints usage errors and exits the process.

Every mistake a user can make ends here as one sentence on stderr and exit code 2 (a
``UserError``); ``--debug`` shows tracebacks instead.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import signal
import sys
from pathlib import Path
from typing import Callable, Sequence

from livecam import __version__
from livecam.errors import UserError

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
        return _view(_parser().parse_args(argv))
    except SystemExit as exc:  # argparse's --help and --version
        return exc.code if isinstance(exc.code, int) else 0
    except UserError as exc:
        if debug:
            raise
        print(f"livecam: error: {exc}", file=sys.stderr)
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
        print(f"livecam: unexpected error: {type(exc).__name__}: {text[0] if text else ''} (rerun with --debug for details)", file=sys.stderr)
        return 1


# ---------------------------------------------------------------------- arguments


def _parser() -> argparse.ArgumentParser:
    from livecam.methods import METHOD_NAMES
    from livecam.models import DEFAULT_MODEL
    from livecam.render import DEFAULT_ALPHA, DEFAULT_SMOOTH

    p = _ArgumentParser(
        prog="livecam",
        description="Real-time Grad-CAM viewer: shows which parts of the picture make the network say what it says.",
        epilog="Other commands: `livecam models` lists the model zoo; `livecam layers MODEL` lists a model's target layers.",
    )
    p.add_argument("--version", action="version", version=f"livecam {__version__}")
    src = p.add_argument_group("input")
    src.add_argument("--source", default="0", help="camera index, video file, image folder or glob, rtsp/http URL, or synth: (default: 0)")
    src.add_argument("--demo", action="store_true", help="offline demo: --source synth: --model demo")
    src.add_argument("--loop", action="store_true", help="replay video files and folders")
    src.add_argument("--resolution", type=_resolution, help="camera resolution to request, WxH")
    src.add_argument("--fps", type=_positive_float("--fps"), help="camera frame rate to request")
    src.add_argument("--list-cameras", action="store_true", help="probe cameras 0-9 and exit")
    eng = p.add_argument_group("model")
    eng.add_argument("--model", default=None, help=f"zoo name, 'demo', or a .keras/.h5 file (default: {DEFAULT_MODEL})")
    eng.add_argument("--weights", default="imagenet", help="imagenet | none | a weights file (zoo models)")
    eng.add_argument("--labels", help="class names for a custom model: one per line, or JSON")
    eng.add_argument("--layer", help="target layer (default: the model's last spatial layer)")
    eng.add_argument("--method", default="gradcam", help=f"{', '.join(METHOD_NAMES)} (default: gradcam)")
    eng.add_argument("--class", dest="class_", metavar="CLASS", help="explain this class (id or name) instead of the top one")
    eng.add_argument("--topk", type=_int_range("--topk", 1, 20), default=None, help="top classes on the HUD (1-20, default 5)")
    eng.add_argument("--unsafe-model-load", action="store_true", help="allow model files with Lambda layers (runs their code)")
    out = p.add_argument_group("output")
    out.add_argument("--output", "-o", type=Path, help="record the overlay to this .mp4 file")
    out.add_argument("--overwrite", action="store_true", help="replace an existing --output file")
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
    perf.add_argument("--input-size", type=_int_range("--input-size", 32, 1024), help="feed the network at this square size")
    perf.add_argument("--xla", action="store_true", help="compile the step with XLA")
    perf.add_argument("--mixed-precision", action="store_true", help="mixed_float16 zoo models (GPUs)")
    perf.add_argument(
        "--runtime",
        choices=("auto", "tensorflow", "openvino"),
        default="auto",
        help="auto: OpenVINO for the network body on a CPU-only machine when the model splits at the layer, else TensorFlow",
    )
    p.add_argument("--debug", action="store_true", help="show tracebacks")
    return p


class _ArgumentParser(argparse.ArgumentParser):
    def error(self, message: str):  # one sentence, exit 2, no usage dump
        raise UserError(f"{message[0].upper()}{message[1:]}; see `livecam --help`.")


def _resolution(text: str) -> tuple[int, int]:
    try:
        w, h = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected --resolution as WxH, e.g. 1280x720. Received: {text!r}") from None
    if not (16 <= w <= 7680 and 16 <= h <= 4320):
        raise argparse.ArgumentTypeError(f"expected --resolution between 16x16 and 7680x4320. Received: {text!r}")
    return (w, h)


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
    p.add_argument("--debug", action="store_true")
    args = p.parse_args(argv)
    from livecam.models import load_model, spatial_layers

    loaded = load_model(args.model, weights=args.weights)
    for layer in spatial_layers(loaded.model):
        shape = "x".join(str(d) for d in tuple(layer.output.shape)[1:])
        mark = " (default)" if layer.name == loaded.default_layer else ""
        print(f"{layer.name:<45} {shape}{mark}")
    return 0


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
    if args.output is not None:
        sinks.check_video_output(args.output, overwrite=args.overwrite)
    if args.stats_json is not None:
        sinks.check_output(args.stats_json, overwrite=True)

    source = sources.open_source(spec, loop=args.loop, resolution=args.resolution, fps=args.fps)
    try:
        return _run(args, source, model_name, display)
    finally:
        source.close()


def _run(args: argparse.Namespace, source, model_name: str, display: bool) -> int:
    from livecam import sinks
    from livecam.models import class_index
    from livecam.render import Renderer

    quiet = args.quiet
    if not quiet:
        print(f"livecam: source: {source.description}", file=sys.stderr)
        for warning in getattr(source, "warnings", []) or []:
            print(f"livecam: warning: {warning}", file=sys.stderr)
    with _native_stderr_silenced(not args.debug) as say:  # TensorFlow's C++ start-up log lines
        from livecam.pipeline import Options, Pipeline

        engine = _engine(args, model_name, log=(lambda text: None) if quiet else (lambda text: say(f"livecam: {text}")))
    class_id = class_index(engine.class_names, args.class_) if args.class_ is not None else None
    if not quiet:
        print(f"livecam: model {engine.model_name}, layer {engine.layer_name}, method {engine.method}", file=sys.stderr)
        print(f"livecam: runtime {engine.runtime} ({engine.runtime_reason})", file=sys.stderr)

    renderer = Renderer(colormap=args.colormap, alpha=args.alpha, smooth=args.smooth, hud=not args.no_hud, side_by_side=args.side_by_side)
    batch = 1 if source.live else (args.batch or 8)
    options = Options(
        batch=batch,
        every=args.every,
        max_frames=args.max_frames,
        output=args.output,
        snapshot_dir=args.snapshot_dir,
        stats_json=args.stats_json,
        progress=not quiet,
        class_id=class_id,
    )
    recorder = None
    if args.output is not None:
        recorder = sinks.VideoWriter(args.output, fps=source.fps or 30.0, live=source.live, overwrite=args.overwrite)
    window = sinks.WindowSink("livecam") if display else None
    pipeline = Pipeline(source, engine, renderer, options, window=window, recorder=recorder)

    previous = signal.signal(signal.SIGTERM, _raise_interrupt)
    try:
        stats = pipeline.run()
    finally:
        signal.signal(signal.SIGTERM, previous)
    if not quiet:
        print(
            f"livecam: {stats.frames} frames in {stats.seconds:.1f} s ({stats.fps:.1f} fps), "
            f"dropped {stats.dropped}, corrupt {stats.corrupt}"
            + (f"; saved {', '.join(stats.recordings)}" if stats.recordings and stats.recording_error is None else ""),
            file=sys.stderr,
        )
    if stats.recording_error is not None and window is None:
        return 1
    return 0


def _engine(args: argparse.Namespace, model_name: str, log: Callable[[str], None]):
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
        runtime=args.runtime,
        log=log,
    )


@contextlib.contextmanager
def _native_stderr_silenced(enabled: bool):
    """Sends file descriptor 2 to /dev/null: TensorFlow's C++ logging ignores TF_CPP_MIN_LOG_LEVEL
    for the lines it prints before its logger is set up. Python exceptions are unaffected.

    Yields ``say(text)``, which still reaches the real stderr (for livecam's own progress lines).
    """
    if not enabled:
        yield lambda text: print(text, file=sys.stderr, flush=True)
        return
    sys.stderr.flush()
    saved = os.dup(2)
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, 2)
        yield lambda text: os.write(saved, f"{text}\n".encode())
    finally:
        sys.stderr.flush()
        os.dup2(saved, 2)
        os.close(saved)
        os.close(devnull)


def _raise_interrupt(signum, frame):
    raise KeyboardInterrupt
