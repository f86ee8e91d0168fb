"""Parsed arguments -> frozen settings, each checked once; what the commands below the parser take.

Nothing below this module reads the ``argparse.Namespace``: a command gets its settings as these
dataclasses, so a second front-end (a batch runner, a test) builds them without a command line.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from livecam.errors import shown

if TYPE_CHECKING:
    from livecam.trust.region import RegionBox


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
    compare: str | None = None  # --compare: "classes" or "methods"
    contrast_query: str | None = None  # --contrast as typed (an id or a name); resolved against the model's names
    normalize: str = "frame"
    box: RegionBox | None = None


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


@dataclass(frozen=True)
class BatchConfig:
    """Everything ``livecam batch`` runs on. ``ray``: None in-process; "" Ray here (or $RAY_ADDRESS); else a cluster's address."""

    inputs: tuple[str, ...]
    out: Path
    engine: EngineConfig
    look: LookConfig
    save_maps: bool = False
    resume: bool = False
    overwrite: bool = False
    ray: str | None = None
    workers: int | None = None
    cpus_per_worker: float = 1.0
    batch: int = 8
    quiet: bool = False


def view_config(args: argparse.Namespace) -> ViewConfig:
    return ViewConfig(
        # --demo is the synthetic scene, whatever --source says.
        source=_source(args, "synth:" if args.demo else args.source),
        engine=_engine(args),
        look=_look(args),
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


def batch_config(args: argparse.Namespace) -> BatchConfig:
    from livecam.errors import UserError

    if args.ray is None and (args.workers is not None or args.cpus_per_worker is not None):
        raise UserError("--workers and --cpus-per-worker apply to Ray; add --ray (or --ray ADDRESS) to run on Ray.")
    if args.resume and args.overwrite:
        raise UserError("--resume finishes the run in --out and --overwrite starts afresh; give one of them.")
    if args.compare is not None:
        raise UserError("--compare is the viewer's; livecam batch writes one map per frame (leave --compare out).")
    return BatchConfig(
        inputs=tuple(args.inputs),
        out=args.out,
        engine=_engine(args),
        look=_look(args),
        save_maps=args.save_maps,
        resume=args.resume,
        overwrite=args.overwrite,
        ray=args.ray,
        workers=args.workers,
        cpus_per_worker=args.cpus_per_worker or 1.0,
        batch=args.batch or 8,
        quiet=args.quiet,
    )


def _source(args: argparse.Namespace, spec: str | None) -> SourceConfig:
    return SourceConfig(spec=spec, loop=args.loop, resolution=args.resolution, fps=args.fps)


def _look(args: argparse.Namespace) -> LookConfig:
    """How the viewer and batch draw and read out the maps (``livecam serve`` has its own: the page steers the rest)."""
    from livecam.trust.region import parse_box

    return LookConfig(
        colormap=args.colormap,
        blend=args.blend,
        alpha=args.alpha,
        smooth=args.smooth,
        hud="none" if args.no_hud else args.hud,
        side_by_side=args.side_by_side,
        compare=args.compare,
        contrast_query=args.contrast,
        normalize=args.normalize,
        box=parse_box(args.box),
    )


def _engine(args: argparse.Namespace) -> EngineConfig:
    from livecam.models import DEFAULT_MODEL

    return EngineConfig(
        model=args.model or ("demo" if getattr(args, "demo", False) else DEFAULT_MODEL),
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


def renderer_from_look(look: LookConfig):
    """The Renderer that ``look`` asks for (the window's HUD full, the files' label, unless ``look.hud`` says)."""
    from livecam.render import Renderer

    return Renderer(
        colormap=look.colormap,
        alpha=look.alpha,
        smooth=look.smooth,
        blend=look.blend,
        hud=look.hud or "full",
        file_hud=look.hud or "label",
        side_by_side=look.side_by_side,
    )


def class_id_of(engine, config: EngineConfig) -> int | None:
    """The class ``--class`` locks, as an id of ``engine``'s model; None when not given."""
    return _class_id(engine, config.class_query)


def contrast_id_of(engine, look: LookConfig) -> int | None:
    """The class ``--contrast`` names, as an id of ``engine``'s model; None when not given."""
    return _class_id(engine, look.contrast_query)


def _class_id(engine, query: str | None) -> int | None:
    from livecam.models import class_index

    return class_index(engine.class_names, query) if query is not None else None


def engine_line(engine) -> str:
    """The console's line on what the engine explains with (the viewer's and the server's)."""
    return f"livecam: model {shown(engine.model_name)}, layer {shown(engine.layer_name)}, method {engine.method}"
