"""The command line's grammar: one root parser (the viewer) with the subcommands serve, models, layers and cache.

The arguments that several commands take (``--debug``, the input, the engine, the look) are each
written once, in a parent parser, and copied into every command that takes them. Parsing only checks
the form of each value; ``configs`` turns the result into settings.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable, Sequence
from pathlib import Path

from livecam import __version__
from livecam.errors import UserError, shown

PROG = "livecam"
COMMANDS = ("serve", "batch", "models", "layers", "cache")


class _ArgumentParser(argparse.ArgumentParser):
    def error(self, message: str):  # one sentence, exit 2, no usage dump
        raise UserError(f"{message[0].upper()}{message[1:]}; see `{self.prog} --help`.")


class _CommandParser(_ArgumentParser):
    """A subcommand's parser: says its own unknown arguments (with its own --help), and may be built when first used.

    argparse hands a subcommand's unknown arguments to the root parser, which would point at
    `livecam --help`; and building `livecam serve`'s parser imports the server, which starts TensorFlow.
    """

    def __init__(self, *args, build: Callable[[argparse.ArgumentParser], None] | None = None, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self._build = build

    def _built(self) -> None:
        if self._build is not None:
            build, self._build = self._build, None
            build(self)

    def parse_known_args(self, args=None, namespace=None):
        self._built()
        namespace, extras = super().parse_known_args(args, namespace)
        if extras:
            self.error(f"unrecognized arguments: {' '.join(extras)}")
        return namespace, extras

    def format_help(self) -> str:
        self._built()
        return super().format_help()

    def format_usage(self) -> str:
        self._built()
        return super().format_usage()


class _Commands(argparse._SubParsersAction):
    """The subcommand's name and everything after it; remembers how many arguments that was (see ``parse``)."""

    def __call__(self, parser, namespace, values, option_string=None):
        namespace.command_argc = len(values)
        super().__call__(parser, namespace, values, option_string)


def parse(argv: Sequence[str]) -> argparse.Namespace:
    """The parsed command line; ``command`` is None for the viewer (no subcommand), else its name."""
    argv = list(argv)
    args = _root_parser()[0].parse_args(argv)
    if args.command is not None:
        # The root parser is the viewer's, so it accepts the viewer's options before a subcommand too,
        # and the subcommand's own values would then silently replace them: refuse that.
        split = len(argv) - args.command_argc
        before = [arg for arg in argv[:split] if arg != "--debug"]
        if before:
            fixed = " ".join([PROG, args.command, *before, *argv[split + 1 :]])
            raise UserError(f"Options go after the command: `{shown(fixed)}`; see `{PROG} {args.command} --help`.")
    return args


def view_parser() -> argparse.ArgumentParser:
    """The viewer's parser (the root parser, whose subcommands are only reached by name)."""
    return _root_parser()[0]


def serve_parser() -> argparse.ArgumentParser:
    """`livecam serve`'s parser."""
    return _root_parser()[1]["serve"]


# ---------------------------------------------------------------------- the parent parsers


def _common() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(add_help=False)
    p.add_argument("--debug", action="store_true", help="show tracebacks and the libraries' own log lines")
    return p


def _input(*, source_help: str, source_default: str | None, demo_help: str, cameras: bool) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(add_help=False)
    src = p.add_argument_group("input")
    src.add_argument("--source", default=source_default, help=source_help)
    src.add_argument("--demo", action="store_true", help=demo_help)
    src.add_argument("--loop", action="store_true", help="replay video files and folders")
    src.add_argument(
        "--resolution", type=_width_by_height("--resolution", (7680, 4320)), help="camera resolution to request, WxH"
    )
    src.add_argument("--fps", type=_positive_float("--fps"), help="camera frame rate to request")
    if cameras:
        src.add_argument("--list-cameras", action="store_true", help="probe cameras 0-9 and exit")
    return p


def _engine() -> argparse.ArgumentParser:
    """The engine's options (model, weights, layer, method, class, speed), shared by the viewer and `livecam serve`."""
    from livecam.engine.fit import FITS
    from livecam.engine.methods import METHOD_NAMES
    from livecam.models import DEFAULT_MODEL

    p = argparse.ArgumentParser(add_help=False)
    eng = p.add_argument_group("model")
    eng.add_argument(
        "--model", default=None, help=f"zoo name, 'demo', 'demo-vit', or a .keras/.h5 file (default: {DEFAULT_MODEL})"
    )
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
    trust = p.add_argument_group("trust")
    trust.add_argument(
        "--faithfulness",
        type=_int_range("--faithfulness", 0, None),
        default=10,
        metavar="N",
        help="every Nth map, hide its hottest and (as a control) its coldest 20%% and show how the class's probability "
        "changes; 1 on files adds deletion/insertion curves; 0: off (default 10)",
    )
    return p


def _look(*, view: bool) -> argparse.ArgumentParser:
    """How the map is drawn (colormap, blend, opacity, smoothing, HUD), shared by the viewer and `livecam serve`."""
    from livecam.engine.compare import COMPARE_MODES
    from livecam.render import BLENDS, DEFAULT_ALPHA, DEFAULT_BLEND, DEFAULT_SMOOTH, HUD_LEVELS
    from livecam.trust.scale import NORMALIZE

    p = argparse.ArgumentParser(add_help=False)
    ren = p.add_argument_group("rendering" if view else "rendering (the stream, overlays, and the page's starting values)")
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
    ren.add_argument(
        "--smooth",
        type=_unit_float("--smooth", upper_open=True),
        default=DEFAULT_SMOOTH,
        help=f"temporal smoothing in [0, 1); 0 = off (default {DEFAULT_SMOOTH})",
    )
    if not view:
        ren.add_argument(
            "--hud",
            choices=HUD_LEVELS,
            default="label",
            help="the HUD of /stream.mjpg and ?overlay=1 pictures: label: label and legend; full: adds top-k bars and "
            "diagnostics; none: the overlay alone (default: label)",
        )
        return p
    ren.add_argument(
        "--hud",
        choices=HUD_LEVELS,
        help="full: label, top-k bars, diagnostics, legend; label: label and legend; none: clean output "
        "(default: full in the window, label in recordings and snapshots; a value given here applies to both)",
    )
    ren.add_argument("--no-hud", action="store_true", help="same as --hud none")
    ren.add_argument("--side-by-side", action="store_true", help="show raw | overlay")
    ren.add_argument(
        "--compare",
        choices=COMPARE_MODES,
        help="maps side by side: classes (the top 3, in one engine call) or methods (each CAM method)",
    )
    ren.add_argument(
        "--contrast",
        metavar="CLASS",
        help="why the explained class and not CLASS (id or name): each map explains the difference of their pre-softmax scores",
    )
    ren.add_argument(
        "--normalize",
        choices=NORMALIZE,
        default="frame",
        help="frame: each map scaled to its own maximum; session: to the largest of the last seconds for the same class "
        "and method, so a weak map looks weak (default: frame)",
    )
    ren.add_argument(
        "--box",
        metavar="X,Y,W,H",
        help="a region in frame pixels (or fractions of the frame when all four are in [0, 1]): how much of the map's "
        "heat lies in it, and whether its peak does (in the window: right-drag; c clears)",
    )
    return p


# ---------------------------------------------------------------------- the commands


def _root_parser() -> tuple[argparse.ArgumentParser, dict[str, argparse.ArgumentParser]]:
    """The viewer's parser, and the subcommands' parsers by name."""
    p = _ArgumentParser(
        prog=PROG,
        description="Real-time Grad-CAM viewer: shows which parts of the picture make the network say what it says.",
        epilog="Other commands: `livecam serve` shows the viewer in a browser; `livecam models` lists the model zoo; "
        "`livecam layers MODEL` lists a model's target layers; `livecam cache` lists or clears the converted models.",
        parents=[
            _input(
                source_help="camera index, video file, image folder or glob, rtsp/http URL, or synth: (default: 0)",
                source_default="0",
                demo_help="offline demo: --source synth: --model demo",
                cameras=True,
            ),
            _engine(),
            _look(view=True),
            _common(),
        ],
    )
    p.add_argument("--version", action="version", version=f"livecam {__version__}")
    out = p.add_argument_group("output")
    out.add_argument(
        "--output",
        "-o",
        type=str,  # kept as typed: Path would drop the trailing slash of DIR/
        help="record the overlay to this .mp4 file; for an image folder or glob, a folder (DIR/) gets one annotated "
        "image per input under the same name, while a file name records them as one video",
    )
    out.add_argument(
        "--size",
        type=_width_by_height("--size", (16384, 16384)),
        help="size of the recording, WxH (default: the input's; for image folders the most common image size)",
    )
    out.add_argument(
        "--results", type=Path, metavar="FILE", help="one line per frame (.jsonl or .csv): top-k, explained class, hottest point"
    )
    out.add_argument(
        "--save-maps", type=Path, metavar="DIR", help="each frame's raw map as float32 .npy (the target layer's resolution)"
    )
    out.add_argument(
        "--overwrite",
        action="store_true",
        help="replace an existing --output/--results/--stats-json file, write into a folder with files (never over an input; a link is replaced, never written through; never a device or FIFO)",
    )
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
    perf = p.add_argument_group("speed")
    perf.add_argument(
        "--batch",
        type=_int_range("--batch", 1, 256),
        default=None,
        help="frames per engine call for files (default 8; live sources use 1)",
    )
    perf.add_argument(
        "--every", type=_int_range("--every", 1, 1000), default=1, help="explain every Nth frame, reuse the result in between"
    )

    # Subcommands are chosen by argparse: `--source serve` is a source, `serve` alone the command.
    commands = p.add_subparsers(
        dest="command", metavar="COMMAND", action=_Commands, parser_class=_CommandParser, title="commands"
    )
    serve = commands.add_parser(
        "serve",
        prog=f"{PROG} serve",
        help="the live viewer in a browser",
        description="The live viewer in a browser: for the browser's own camera, and for the server's --source.",
        parents=[
            _input(
                source_help="the server's own view: camera index, video file, image folder, URL or synth: (default: none)",
                source_default=None,
                demo_help="--source synth: --model demo",
                cameras=False,
            ),
            _engine(),
            _look(view=False),
            _common(),
        ],
        build=_server_arguments,
    )
    batch = commands.add_parser(
        "batch",
        prog=f"{PROG} batch",
        help="explain whole archives of videos and images, with a report",
        description="Explain every frame of videos, image folders or globs, and manifests (.csv/.parquet with a path "
        "column, optional label and box): annotated videos and pictures, results.parquet, errors.jsonl and report.html "
        "in --out DIR. In-process by default; --ray runs on Ray Data.",
        parents=[_engine(), _look(view=True), _common()],
        build=_batch_arguments,
    )
    models = commands.add_parser(
        "models",
        prog=f"{PROG} models",
        help="list the model zoo",
        description="List the models --model accepts by name: input size, preprocessing and the layer the map is taken from. "
        "Use `livecam layers MODEL` for all of a model's layers.",
        parents=[_common()],
    )
    layers = commands.add_parser(
        "layers",
        prog=f"{PROG} layers",
        help="list a model's target layers",
        description="List the layers a map can be taken from (--layer), with their output size.",
        parents=[_common()],
    )
    layers.add_argument("model", help="zoo name (livecam models), 'demo', 'demo-vit', or a .keras/.h5 file")
    layers.add_argument(
        "--weights", default="none", help="imagenet | none | a weights file (default: none; the layers do not depend on it)"
    )
    layers.add_argument("--unsafe-model-load", action="store_true", help="allow model files with Lambda layers (runs their code)")
    cache = commands.add_parser(
        "cache",
        prog=f"{PROG} cache",
        help="list or clear the converted models",
        description="The network bodies converted for OpenVINO, kept so that the next start skips converting (and, for "
        "most models, TensorFlow): list them with their sizes, or clear them all. See docs/architecture.md for how an "
        "entry is keyed.",
        parents=[_common()],
    )
    cache.add_argument("action", nargs="?", choices=("list", "clear"), default="list", help="list (default) or clear")
    return p, {"serve": serve, "batch": batch, "models": models, "layers": layers, "cache": cache}


def _batch_arguments(p: argparse.ArgumentParser) -> None:
    """`livecam batch`'s own options."""
    p.add_argument(
        "inputs", nargs="+", metavar="INPUT", help="a video file, an image folder or glob, or a .csv/.parquet manifest"
    )
    out = p.add_argument_group("output")
    out.add_argument("--out", type=Path, required=True, metavar="DIR", help="the folder for everything the run writes")
    out.add_argument("--save-maps", action="store_true", help="each frame's raw map as float32 .npy under DIR/maps")
    out.add_argument("--resume", action="store_true", help="finish an earlier run in DIR: inputs already done are skipped")
    out.add_argument("--overwrite", action="store_true", help="start afresh in a DIR that has files")
    out.add_argument("--quiet", "-q", action="store_true", help="no progress bar or summary")
    run = p.add_argument_group("execution")
    run.add_argument(
        "--ray",
        nargs="?",
        const="",
        default=None,
        metavar="ADDRESS",
        help="run on Ray Data: alone, the cluster $RAY_ADDRESS names or a Ray started here; or a cluster's address "
        "(needs pip install 'livecam[ray]')",
    )
    run.add_argument(
        "--workers", type=_int_range("--workers", 1, 4096), help="Ray: workers, one engine each (default: as many as fit)"
    )
    run.add_argument(
        "--cpus-per-worker",
        type=_positive_float("--cpus-per-worker"),
        metavar="C",
        help="Ray: CPUs each worker takes (default 1)",
    )
    run.add_argument("--batch", type=_int_range("--batch", 1, 256), default=None, help="frames per engine call (default 8)")


def _server_arguments(p: argparse.ArgumentParser) -> None:
    """`livecam serve`'s own options, added when the command is chosen (for ``DEFAULT_PORT``, see ``_CommandParser``)."""
    from livecam.serve.app import DEFAULT_PORT

    net = p.add_argument_group("server")
    net.add_argument(
        "--host", default="127.0.0.1", help="address to listen on; anything but loopback needs a token (default: 127.0.0.1)"
    )
    net.add_argument(
        "--port",
        type=_int_range("--port", 0, 65535),
        default=DEFAULT_PORT,
        help=f"TCP port; 0 picks a free one (default: {DEFAULT_PORT})",
    )
    net.add_argument("--token", help="secret that every request must carry (generated when --host is not loopback)")
    net.add_argument("--certfile", help="HTTPS certificate (PEM); browsers give the camera only to HTTPS pages or localhost")
    net.add_argument("--keyfile", help="HTTPS private key (PEM)")
    net.add_argument(
        "--max-batch",
        type=_int_range("--max-batch", 1, 256),
        default=8,
        help="most frames of all clients in one engine call (default 8)",
    )
    net.add_argument(
        "--max-wait-ms",
        type=_int_range("--max-wait-ms", 0, 1000),
        default=5,
        help="longest a frame waits for others to share its call, 0-1000 (default 5)",
    )


# ---------------------------------------------------------------------- values


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
