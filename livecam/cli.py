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
import threading
import warnings
from pathlib import Path
from typing import Callable, Sequence

from livecam import __version__, logs
from livecam.errors import UserError, shown

EXIT_USAGE = 2
EXIT_INTERRUPTED = 130
EXIT_BROKEN_PIPE = 141  # 128 + SIGPIPE: what a shell shows for a tool whose reader left, as in `yes | head -1`


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    debug = "--debug" in argv
    logs.configure(debug)  # TensorFlow's, CUDA's and OpenCV's own log lines: only with --debug
    # The step is one chain of ops, so TensorFlow gains nothing from running ops side by side,
    # while its extra threads compete with the capture, render and encoder stages for the CPU.
    os.environ.setdefault("TF_NUM_INTEROP_THREADS", "1")
    # SIGTERM (a service manager, `timeout`, `kill`) ends a run like Ctrl-C: files closed, summary printed.
    previous = signal.signal(signal.SIGTERM, _raise_interrupt) if threading.current_thread() is threading.main_thread() else None
    try:
        code = _command(argv)
        sys.stdout.flush()  # where a closed pipe usually shows: here, not in the interpreter's exit
        return code
    except SystemExit as exc:  # argparse's --help and --version
        return exc.code if isinstance(exc.code, int) else 0
    except BrokenPipeError:  # stdout's reader left early (`livecam layers resnet50 | head -1`): stop quietly
        # Python's advice (the signal module's note on SIGPIPE): point stdout at /dev/null, so
        # that the interpreter's last flush does not fail again, and exit as a tool killed by SIGPIPE would.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return EXIT_BROKEN_PIPE
    except UserError as exc:
        if debug:
            raise
        print(f"livecam: error: {shown(exc.cli)}", file=sys.stderr)
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
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)


def _command(argv: list[str]) -> int:
    if argv and argv[0] == "models":
        return _models(argv[1:])
    if argv and argv[0] == "layers":
        return _layers(argv[1:])
    if argv and argv[0] == "serve":
        return _serve(argv[1:])
    return _view(_parser().parse_args(argv))


# ---------------------------------------------------------------------- arguments


def _parser() -> argparse.ArgumentParser:
    from livecam.render import HUD_LEVELS

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
    out.add_argument(
        "--output",
        "-o",
        type=str,  # kept as typed: Path would drop the trailing slash of DIR/
        help="record the overlay to this .mp4 file; for an image folder or glob, a folder (DIR/) gets one annotated "
        "image per input under the same name, while a file name records them as one video",
    )
    out.add_argument("--size", type=_width_by_height("--size", (16384, 16384)), help="size of the recording, WxH (default: the input's; for image folders the most common image size)")
    out.add_argument("--results", type=Path, metavar="FILE", help="one line per frame (.jsonl or .csv): top-k, explained class, hottest point")
    out.add_argument("--save-maps", type=Path, metavar="DIR", help="each frame's raw map as float32 .npy (the target layer's resolution)")
    out.add_argument("--overwrite", action="store_true", help="replace an existing --output/--results/--stats-json file, write into a folder with files (never over an input)")
    out.add_argument("--no-display", action="store_true", help="no window (headless)")
    out.add_argument("--fullscreen", action="store_true", help="open the window full screen (key f switches)")
    out.add_argument(
        "--delay",
        type=_positive_float("--delay"),
        metavar="S",
        help="image folders in a window: go on to the next picture after S seconds (default: wait for n or the Right key)",
    )
    out.add_argument("--max-frames", type=_int_range("--max-frames", 1, None), help="stop after N frames")
    out.add_argument("--stats-json", type=Path, help="write run statistics to this JSON file at exit")
    out.add_argument("--snapshot-dir", type=Path, default=Path("."), help="where the s key saves snapshots (default: .)")
    out.add_argument("--quiet", "-q", action="store_true", help="no progress bar or summary")
    ren = p.add_argument_group("rendering")
    add_look_arguments(ren)
    ren.add_argument(
        "--hud",
        choices=HUD_LEVELS,
        help="full: label, top-k bars, diagnostics, legend; label: label and legend; none: clean output "
        "(default: full in the window, label in recordings and snapshots; a value given here applies to both)",
    )
    ren.add_argument("--no-hud", action="store_true", help="same as --hud none")
    ren.add_argument("--side-by-side", action="store_true", help="show raw | overlay")
    perf = p.add_argument_group("speed")
    perf.add_argument("--batch", type=_int_range("--batch", 1, 256), default=None, help="frames per engine call for files (default 8; live sources use 1)")
    perf.add_argument("--every", type=_int_range("--every", 1, 1000), default=1, help="explain every Nth frame, reuse the result in between")
    p.add_argument("--debug", action="store_true", help="show tracebacks")
    return p


def add_engine_arguments(p: argparse.ArgumentParser) -> None:
    """The engine's options (model, weights, layer, method, class, speed), shared by the viewer and `livecam serve`."""
    from livecam.engine.fit import FITS
    from livecam.engine.methods import METHOD_NAMES
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
    eng.add_argument(
        "--fit",
        choices=FITS,
        default="squash",
        help="how a frame meets the network's square input: squash (the whole frame, stretched), crop (its central "
        "square; the map covers only that) or pad (letterboxed with grey; the map over the bands is cut away) (default: squash)",
    )
    eng.add_argument("--xla", action="store_true", help="compile the step with XLA")
    eng.add_argument("--mixed-precision", action="store_true", help="mixed_float16 zoo models (GPUs)")
    eng.add_argument(
        "--runtime",
        choices=("auto", "tensorflow", "openvino"),
        default="auto",
        help="auto: OpenVINO for the network body on a CPU-only machine when the model splits at the layer, else TensorFlow",
    )


def add_look_arguments(ren) -> None:
    """How the map is drawn (colormap, blend, opacity, smoothing), shared by the viewer and `livecam serve`."""
    from livecam.render import BLENDS, DEFAULT_ALPHA, DEFAULT_BLEND, DEFAULT_SMOOTH


    ren.add_argument("--colormap", default="jet", help="any OpenCV colormap name (default: jet)")
    ren.add_argument(
        "--blend",
        choices=BLENDS,
        default=DEFAULT_BLEND,
        help=f"heat: the overlay's opacity follows the map, cold regions show the picture as it is; uniform: one opacity everywhere (default {DEFAULT_BLEND})",
    )
    ren.add_argument(
        "--alpha",
        type=_unit_float("--alpha", upper_open=False),
        help=f"heat-map opacity in [0, 1]; with --blend heat, where the map is hottest (default {DEFAULT_ALPHA['heat']} heat, {DEFAULT_ALPHA['uniform']} uniform)",
    )
    ren.add_argument("--smooth", type=_unit_float("--smooth", upper_open=True), default=DEFAULT_SMOOTH, help=f"temporal smoothing in [0, 1); 0 = off (default {DEFAULT_SMOOTH})")


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


def _models(argv: list[str]) -> int:
    from livecam.models import DEFAULT_MODEL, ZOO

    p = _ArgumentParser(
        prog="livecam models",
        description="List the models --model accepts by name: input size, preprocessing and the layer the map is taken from. "
        "Use `livecam layers MODEL` for all of a model's layers.",
    )
    p.add_argument("--debug", action="store_true", help="show tracebacks")
    p.parse_args(argv)
    print(f"{'model':<22} {'input':<9} {'preprocessing':<14} target layer (without --layer)")
    for name, entry in ZOO.items():
        size = f"{entry.input_size[1]}x{entry.input_size[0]}"
        layer = entry.default_layer or "the last spatial layer"
        shown = f"{name} (default)" if name == DEFAULT_MODEL else name
        print(f"{shown:<22} {size:<9} {entry.preprocess:<14} {layer}")
    print(f"{'demo':<22} {'':<9} {'built in':<14} the shipped offline demo model (livecam --demo)")
    print("\n(default): the model used when --model is not given. ImageNet weights download once, to ~/.keras/models/.")
    return 0


def _layers(argv: list[str]) -> int:
    p = _ArgumentParser(prog="livecam layers", description="List the layers a map can be taken from (--layer), with their output size.")
    p.add_argument("model", help="zoo name (livecam models), 'demo', or a .keras/.h5 file")
    p.add_argument("--weights", default="none", help="imagenet | none | a weights file (default: none; the layers do not depend on it)")
    p.add_argument("--unsafe-model-load", action="store_true", help="allow model files with Lambda layers (runs their code)")
    p.add_argument("--debug", action="store_true", help="show tracebacks and TensorFlow's log lines")
    args = p.parse_args(argv)
    from livecam.models import find_target_layer, load_model, spatial_layers

    logs.import_tensorflow()
    with logs.native_stderr_silenced(logs.quiet()):  # Keras's C++ notes while it builds the model
        loaded = load_model(args.model, weights=args.weights, unsafe=args.unsafe_model_load)
    default = find_target_layer(loaded.model, loaded.default_layer)  # the engine's own choice without --layer
    for layer in spatial_layers(loaded.model):
        shape = "x".join(str(d) for d in tuple(layer.output.shape)[1:])
        mark = "  <- default target layer (without --layer)" if layer is default else ""
        print(f"{shown(layer.name):<45} {shape}{mark}")
    return 0


def _serve_parser() -> argparse.ArgumentParser:
    from livecam.render import HUD_LEVELS
    from livecam.serve.app import DEFAULT_PORT

    p = _ArgumentParser(
        prog="livecam serve",
        description="The live viewer in a browser: for the browser's own camera, and for the server's --source.",
    )
    src = p.add_argument_group("input")
    src.add_argument("--source", help="the server's own view: camera index, video file, image folder, URL or synth: (default: none)")
    src.add_argument("--demo", action="store_true", help="--source synth: --model demo")
    src.add_argument("--loop", action="store_true", help="replay video files and folders")
    src.add_argument("--resolution", type=_width_by_height("--resolution", (7680, 4320)), help="camera resolution to request, WxH")
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
    look = p.add_argument_group("rendering (the stream, overlays, and the page's starting values)")
    add_look_arguments(look)
    look.add_argument(
        "--hud",
        choices=HUD_LEVELS,
        default="label",
        help="the HUD of /stream.mjpg and ?overlay=1 pictures: label: label and legend; full: adds top-k bars and "
        "diagnostics; none: the overlay alone (default: label)",
    )
    p.add_argument("--debug", action="store_true", help="show tracebacks")
    return p


def _serve(argv: list[str]) -> int:
    with logs.native_stderr_silenced(logs.quiet()):  # the parser's imports start TensorFlow, which logs
        parser = _serve_parser()
    args = parser.parse_args(argv)
    from livecam import sources
    from livecam.render import colormap_id

    with logs.native_stderr_silenced(logs.quiet()):  # TensorFlow's C++ start-up log lines
        from livecam.serve import app as serve
        from livecam.engine.methods import check_method

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
        with logs.native_stderr_silenced(logs.quiet()) as say:
            from livecam.models import class_index
            from livecam.engine.worker import EngineWorker

            engine = engine_from_args(args, model_name, log=say)
        class_id = class_index(engine.class_names, args.class_) if args.class_ is not None else None
        config = serve.ServeConfig(token=token, class_id=class_id, blend=args.blend, alpha=args.alpha, colormap=args.colormap, smooth=args.smooth, hud=args.hud)
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

    per_image = args.output is not None and _names_a_folder(args.output)
    args.output = Path(args.output) if args.output is not None else None
    spec = "synth:" if args.demo else args.source
    model_name = args.model or ("demo" if args.demo else "mobilenet_v2")
    display = not args.no_display

    from livecam.viewer import outputs, sinks
    from livecam.engine.methods import check_method
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
                f"livecam: no display here, so the demo records {args.max_frames} frames to {args.output.resolve()} instead of opening a window.",
                file=sys.stderr,
            )
        else:
            raise UserError(
                "This OpenCV build has no GUI or there is no display (opencv-python-headless, or no $DISPLAY); "
                "run with --no-display --output out.mp4 to record instead."
            )
    # No output may be any input or another output, --overwrite or not (compared as files).
    inputs = _input_files(args, spec)
    if args.output is not None and per_image:
        _check_not_an_input_folder(args.output, inputs)
    elif args.output is not None:
        sinks.check_video_output(args.output, overwrite=args.overwrite, others=inputs)
    written = [("--output", args.output)] if args.output is not None and not per_image else []
    if args.results is not None:
        outputs.check_results_path(args.results, overwrite=args.overwrite, others=[*inputs, *written])
        written.append(("--results", args.results))
    if args.save_maps is not None:
        outputs.check_output_folder(args.save_maps, "--save-maps", overwrite=args.overwrite)
    if args.stats_json is not None:
        sinks.check_output(args.stats_json, overwrite=args.overwrite, others=[*inputs, *written])
        written.append(("--stats-json", args.stats_json))

    source = sources.open_source(spec, loop=args.loop, resolution=args.resolution, fps=args.fps)
    try:
        if per_image and not isinstance(source, sources.ImageFolderSource):
            raise UserError(
                f"-o {args.output}/ is a folder, which gets one image per input, but the source is not a folder or glob of "
                "images; give a video file name such as out.mp4 to record it."
            )
        # Every file of -o DIR/ and --save-maps is checked against the inputs and the other outputs:
        # those the inputs' names give now, the others (a repeated name) when written.
        keep_out = sinks.KeepOut([*inputs, *written])
        names = [path.name for path in source.paths] if isinstance(source, sources.ImageFolderSource) else []
        per_frame = []  # closed by the pipeline
        if per_image:
            per_frame.append(outputs.ImageFolderWriter(args.output, overwrite=args.overwrite, others=keep_out, names=names))
        if args.save_maps is not None:
            per_frame.append(outputs.MapWriter(args.save_maps, overwrite=args.overwrite, others=keep_out, names=names))
        return _run(args, source, model_name, display, per_image, per_frame)
    finally:
        source.close()


def _check_not_an_input_folder(folder: str, inputs: list[tuple[str, Path]]) -> None:
    """-o DIR/ writes one picture per input under the input's own name: never into a folder of inputs."""
    target = os.path.realpath(Path(folder).expanduser())
    if any(os.path.realpath(path.parent) == target for _, path in inputs):
        raise UserError(
            f"-o {shown(folder)} is the folder the input images come from, and the annotated pictures take their "
            "names; choose another folder, e.g. -o annotated/."
        )


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


def _run(args: argparse.Namespace, source, model_name: str, display: bool, per_image: bool, per_frame: list) -> int:
    from livecam.viewer import outputs, recorder as recorders, sinks
    from livecam import sources
    from livecam.models import class_index
    from livecam.render import Renderer

    quiet = args.quiet
    if not quiet:
        print(f"livecam: source: {shown(source.description)}", file=sys.stderr)
        for warning in getattr(source, "warnings", []) or []:
            print(f"livecam: warning: {shown(warning)}", file=sys.stderr)
    logs.import_tensorflow()
    with logs.native_stderr_silenced(logs.quiet()) as say:  # C++ notes while the model is built
        from livecam.viewer.pipeline import Options, Pipeline, recording_size

        engine = engine_from_args(args, model_name, log=None if quiet else say)
    if not quiet and _random_zoo_weights(args, engine.model_name):
        print(
            f"livecam: warning: --weights none gives {engine.model_name} random weights: its labels and maps mean nothing "
            "(useful only to measure speed).",
            file=sys.stderr,
        )
    class_id = class_index(engine.class_names, args.class_) if args.class_ is not None else None
    if not quiet:
        print(f"livecam: model {shown(engine.model_name)}, layer {shown(engine.layer_name)}, method {engine.method}", file=sys.stderr)
        info = engine.runtime_info
        print(f"livecam: runtime {info.runtime} ({shown(info.reason)})", file=sys.stderr)

    hud = "none" if args.no_hud else args.hud
    renderer = Renderer(
        colormap=args.colormap,
        alpha=args.alpha,
        smooth=args.smooth,
        blend=args.blend,
        hud=hud or "full",
        file_hud=hud or "label",
        side_by_side=args.side_by_side,
    )
    batch = 1 if source.live else (args.batch or 8)
    _check_memory(engine, source, batch)
    options = Options(
        batch=batch,
        every=args.every,
        max_frames=args.max_frames,
        output=None if per_image else args.output,
        size=args.size,
        snapshot_dir=args.snapshot_dir,
        stats_json=args.stats_json,
        progress=not quiet,
        class_id=class_id,
        step_images=display and isinstance(source, sources.ImageFolderSource),
        delay_s=args.delay,
    )
    if args.results is not None:
        per_frame.append(outputs.ResultsWriter(args.results, class_names=engine.class_names, source=_source_name(source), overwrite=args.overwrite))
    recorder = None
    if args.output is not None and not per_image:
        recorder = recorders.VideoWriter(
            args.output,
            fps=source.fps or 30.0,
            size=recording_size(source, args.size, side_by_side=args.side_by_side),
            live=source.live or source.variable_frame_rate,  # the latter: keep the file's own timing
            overwrite=args.overwrite,
        )
    window = sinks.WindowSink("livecam", fullscreen=args.fullscreen) if display else None
    pipeline = Pipeline(source, engine, renderer, options, window=window, recorder=recorder, outputs=per_frame, log=_log)

    if args.delay is not None and not options.step_images:
        print("livecam: warning: --delay applies to image folders shown in a window; it is ignored here.", file=sys.stderr)
    # Said last, when everything else is checked, just before the run.
    if not display and not _saves_something(args):
        # Warned even with --quiet: a run that keeps nothing is most likely a mistake.
        print(
            "livecam: warning: --no-display without -o/--output, --results or --save-maps saves nothing"
            + (" and runs until stopped (Ctrl-C)" if source.live and args.max_frames is None else "")
            + "; add one of them to keep the output.",
            file=sys.stderr,
        )
    interrupted = False
    try:
        with warnings.catch_warnings():
            # The pipeline prints what the writer notes, this one too: once, as a livecam line.
            warnings.filterwarnings("ignore", message="Could not start ffmpeg", category=RuntimeWarning)
            stats = pipeline.run()
    except KeyboardInterrupt:  # Ctrl-C or SIGTERM: the pipeline has closed everything; say what it did
        interrupted = True
        stats = pipeline.stats
    if not quiet:
        saved = [str(Path(path).resolve()) for path in stats.recordings] if stats.recording_error is None else []
        saved += [_describe_output(output) for output in per_frame]
        print(
            f"livecam: {stats.frames} frames in {stats.seconds:.1f} s ({stats.fps:.1f} fps), "
            f"dropped {stats.dropped}, corrupt {stats.corrupt}" + (f"; saved {shown(', '.join(saved))}" if saved else ""),
            file=sys.stderr,
        )
    if interrupted:
        raise KeyboardInterrupt
    if (stats.recording_error is not None and window is None) or stats.output_errors:
        return 1  # what was asked for was not all saved; each output said why
    return 0


def engine_from_args(args: argparse.Namespace, model_name: str, log: Callable[[str], None] | None = None):
    """The CamEngine that the options of ``add_engine_arguments`` ask for; ``log`` gets its notes (conversion)."""
    from livecam.engine.core import CamEngine

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
        fit=args.fit,
        log=(lambda text: log(f"livecam: {text}")) if log is not None else (lambda text: None),
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


def _names_a_folder(text: str) -> bool:
    """-o DIR/ (a trailing slash) or an existing folder: one image per input."""
    return text.endswith(("/", os.sep)) or Path(text).is_dir()


def _source_name(source) -> str:
    path = getattr(source, "path", None)
    return Path(path).name if path is not None else source.description


def _describe_output(output) -> str:
    from livecam.viewer import outputs

    if isinstance(output, outputs.ResultsWriter):
        return f"{output.lines} result lines to {output.path.resolve()}"
    if isinstance(output, outputs.MapWriter):
        return f"{output.saved} maps to {output.folder.resolve()}"
    return f"{output.saved} images to {output.folder.resolve()}"


def _saves_something(args: argparse.Namespace) -> bool:
    return any(getattr(args, name, None) is not None for name in ("output", "results", "save_maps"))


def _random_zoo_weights(args: argparse.Namespace, model_name: str) -> bool:
    from livecam.models import ZOO

    return model_name in ZOO and str(args.weights).strip().lower() == "none"


def _log(text: str) -> None:
    print(shown(text), file=sys.stderr, flush=True)


def _raise_interrupt(signum, frame):
    raise KeyboardInterrupt
