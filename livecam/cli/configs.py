"""Parsed arguments -> frozen settings, each checked once; what the commands below the parser take.

Nothing below this module reads the ``argparse.Namespace``: a command gets its settings as these
dataclasses, so a second front-end (a batch runner, a test) builds them without a command line.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from livecam.errors import shown


@dataclass(frozen=True)
class SourceConfig:
    """What to read: ``spec`` as ``sources.open_source`` takes it (None: no source of its own, for the server)."""

    spec: str | None
    loop: bool = False
    resolution: tuple[int, int] | None = None
    fps: float | None = None


@dataclass(frozen=True)
class EngineConfig:
    """The engine's settings; ``model`` is resolved (the zoo's default, or ``demo`` for ``--demo``)."""

    model: str
    weights: str = "imagenet"
    labels: str | None = None
    layer: str | None = None
    method: str = "gradcam"
    class_query: str | None = None  # --class as typed (an id or a name); resolved against the model's names
    topk: int | None = None
    input_size: int | None = None
    fit: str = "squash"
    xla: bool = False
    mixed_precision: bool = False
    unsafe_model_load: bool = False
    runtime: str = "auto"
    faithfulness: int = 10  # test every Nth map (livecam.trust.faithfulness); 0: off


@dataclass(frozen=True)
class LookConfig:
    """How the map is drawn. ``hud`` None: each view's own default (full in the window, label in files)."""

    colormap: str
    blend: str
    alpha: float | None
    smooth: float
    hud: str | None = None
    side_by_side: bool = False


@dataclass(frozen=True)
class OutputConfig:
    """The viewer's outputs and run limits."""

    output: str | None = None  # as typed: a trailing slash (DIR/) asks for one image per input
    size: tuple[int, int] | None = None
    results: Path | None = None
    save_maps: Path | None = None
    stats_json: Path | None = None
    snapshot_dir: Path = Path(".")
    overwrite: bool = False
    display: bool = True
    fullscreen: bool = False
    delay_s: float | None = None
    max_frames: int | None = None
    quiet: bool = False
    batch: int | None = None  # None: 8 for files, 1 for live sources
    every: int = 1

    @property
    def saves_something(self) -> bool:
        return any(value is not None for value in (self.output, self.results, self.save_maps))


@dataclass(frozen=True)
class ViewConfig:
    """Everything the viewer (``livecam`` with no subcommand) runs on."""

    source: SourceConfig
    engine: EngineConfig
    look: LookConfig
    output: OutputConfig
    demo: bool = False
    list_cameras: bool = False


@dataclass(frozen=True)
class ServerConfig:
    """Where and how ``livecam serve`` listens, and how it batches its clients' frames."""

    host: str
    port: int
    token: str | None = None
    certfile: str | None = None
    keyfile: str | None = None
    max_batch: int = 8
    max_wait_ms: int = 5


@dataclass(frozen=True)
class ServeCommandConfig:
    """Everything ``livecam serve`` runs on."""

    source: SourceConfig
    engine: EngineConfig
    look: LookConfig
    server: ServerConfig


def view_config(args: argparse.Namespace) -> ViewConfig:
    return ViewConfig(
        # --demo is the synthetic scene, whatever --source says.
        source=_source(args, "synth:" if args.demo else args.source),
        engine=_engine(args),
        look=LookConfig(
            colormap=args.colormap,
            blend=args.blend,
            alpha=args.alpha,
            smooth=args.smooth,
            hud="none" if args.no_hud else args.hud,
            side_by_side=args.side_by_side,
        ),
        output=OutputConfig(
            output=args.output,
            size=args.size,
            results=args.results,
            save_maps=args.save_maps,
            stats_json=args.stats_json,
            snapshot_dir=args.snapshot_dir,
            overwrite=args.overwrite,
            display=not args.no_display,
            fullscreen=args.fullscreen,
            delay_s=args.delay,
            max_frames=args.max_frames,
            quiet=args.quiet,
            batch=args.batch,
            every=args.every,
        ),
        demo=args.demo,
        list_cameras=args.list_cameras,
    )


def serve_config(args: argparse.Namespace) -> ServeCommandConfig:
    return ServeCommandConfig(
        # The server has no source of its own unless asked; --demo gives it the synthetic scene unless --source names one.
        source=_source(args, "synth:" if args.demo and args.source is None else args.source),
        engine=_engine(args),
        look=LookConfig(colormap=args.colormap, blend=args.blend, alpha=args.alpha, smooth=args.smooth, hud=args.hud),
        server=ServerConfig(
            host=args.host,
            port=args.port,
            token=args.token,
            certfile=args.certfile,
            keyfile=args.keyfile,
            max_batch=args.max_batch,
            max_wait_ms=args.max_wait_ms,
        ),
    )


def _source(args: argparse.Namespace, spec: str | None) -> SourceConfig:
    return SourceConfig(spec=spec, loop=args.loop, resolution=args.resolution, fps=args.fps)


def _engine(args: argparse.Namespace) -> EngineConfig:
    from livecam.models import DEFAULT_MODEL

    return EngineConfig(
        model=args.model or ("demo" if args.demo else DEFAULT_MODEL),
        weights=args.weights,
        labels=args.labels,
        layer=args.layer,
        method=args.method,
        class_query=args.class_,
        topk=args.topk,
        input_size=args.input_size,
        fit=args.fit,
        xla=args.xla,
        mixed_precision=args.mixed_precision,
        unsafe_model_load=args.unsafe_model_load,
        runtime=args.runtime,
        faithfulness=args.faithfulness,
    )


def check(engine: EngineConfig, look: LookConfig) -> None:
    """Refuses (``UserError``) what can be told wrong before anything slow starts (a camera, the model)."""
    from livecam.engine.methods import check_method
    from livecam.render import colormap_id

    colormap_id(look.colormap)
    check_method(engine.method)


def engine_from_config(config: EngineConfig, log: Callable[[str], None] | None = None):
    """The CamEngine that ``config`` asks for; ``log`` gets its notes (conversion), each as a livecam line."""
    from livecam.engine.core import CamEngine

    return CamEngine(
        config.model,
        weights=config.weights,
        layer=config.layer,
        method=config.method,
        labels=config.labels,
        topk=config.topk,
        input_size=config.input_size,
        xla=config.xla,
        mixed_precision=config.mixed_precision,
        unsafe_model_load=config.unsafe_model_load,
        runtime=config.runtime,
        fit=config.fit,
        log=(lambda text: log(f"livecam: {text}")) if log is not None else (lambda text: None),
    )


def class_id_of(engine, config: EngineConfig) -> int | None:
    """The class ``--class`` locks, as an id of ``engine``'s model; None when not given."""
    from livecam.models import class_index

    return class_index(engine.class_names, config.class_query) if config.class_query is not None else None


def engine_line(engine) -> str:
    """The console's line on what the engine explains with (the viewer's and the server's)."""
    return f"livecam: model {shown(engine.model_name)}, layer {shown(engine.layer_name)}, method {engine.method}"
