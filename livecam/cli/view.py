"""The viewer command (``livecam`` with no subcommand): settings in, checks first, then the pipeline runs.

Everything a user can get wrong is checked before anything slow (a camera, the model); the run then
says what it does on stderr and ends with its summary.
"""

from __future__ import annotations

import dataclasses
import glob
import os
import re
import sys
import warnings
from pathlib import Path

from livecam import logs
from livecam.cli.configs import (
    ViewConfig,
    check,
    class_id_of,
    contrast_id_of,
    engine_from_config,
    engine_line,
    renderer_from_look,
)
from livecam.cli.memory import check_memory
from livecam.errors import UserError, shown


def view(config: ViewConfig) -> int:
    from livecam import sources

    if config.list_cameras:
        cameras = sources.list_cameras()
        if not cameras:
            print("No camera opened (indexes 0-9 probed).")
        for cam in cameras:
            print(", ".join(f"{k}: {v}" for k, v in cam.items()))
        return 0

    from livecam.viewer import outputs, safe_files, sinks

    out = config.output
    per_image = out.output is not None and _names_a_folder(out.output)
    check(config.engine, config.look)  # before anything slow (camera, model)
    if out.display and not sinks.gui_available():
        if not config.demo:
            raise UserError(
                "This OpenCV build has no GUI or there is no display (opencv-python-headless, or no $DISPLAY); "
                "run with --no-display --output out.mp4 to record instead."
            )
        # The demo works anywhere: with no screen it records instead.
        out = dataclasses.replace(
            out,
            display=False,
            output=out.output or str(safe_files.free_name(Path("livecam-demo.mp4"))),
            max_frames=out.max_frames or 300,
        )
        print(
            f"livecam: no display here, so the demo records {out.max_frames} frames to {Path(out.output).resolve()} instead of opening a window.",
            file=sys.stderr,
        )
        config = dataclasses.replace(config, output=out)
    output = Path(out.output) if out.output is not None else None
    # No output may be any input or another output, --overwrite or not (compared as files).
    inputs = _input_files(config)
    if output is not None and per_image:
        _check_not_an_input_folder(out.output, inputs)
    elif output is not None:
        safe_files.check_video_output(output, overwrite=out.overwrite, others=inputs)
    written = [("--output", output)] if output is not None and not per_image else []
    if out.results is not None:
        outputs.check_results_path(out.results, overwrite=out.overwrite, others=[*inputs, *written])
        written.append(("--results", out.results))
    if out.save_maps is not None:
        outputs.check_output_folder(out.save_maps, "--save-maps", overwrite=out.overwrite)
    if out.stats_json is not None:
        safe_files.check_output(out.stats_json, overwrite=out.overwrite, others=[*inputs, *written])
        written.append(("--stats-json", out.stats_json))

    spec = config.source
    source = sources.open_source(spec.spec, loop=spec.loop, resolution=spec.resolution, fps=spec.fps)
    try:
        if per_image and not isinstance(source, sources.ImageFolderSource):
            raise UserError(
                f"-o {output}/ is a folder, which gets one image per input, but the source is not a folder or glob of "
                "images; give a video file name such as out.mp4 to record it."
            )
        # Every file of -o DIR/ and --save-maps is checked against the inputs and the other outputs:
        # those the inputs' names give now, the others (a repeated name) when written.
        keep_out = safe_files.KeepOut([*inputs, *written])
        names = [path.name for path in source.paths] if isinstance(source, sources.ImageFolderSource) else []
        per_frame = []  # closed by the pipeline
        if per_image:
            per_frame.append(outputs.ImageFolderWriter(output, overwrite=out.overwrite, others=keep_out, names=names))
        if out.save_maps is not None:
            per_frame.append(outputs.MapWriter(out.save_maps, overwrite=out.overwrite, others=keep_out, names=names))
        return _run(config, source, output, per_image, per_frame)
    finally:
        source.close()


def _run(config: ViewConfig, source, output: Path | None, per_image: bool, per_frame: list) -> int:
    from livecam import sources
    from livecam.trust.stamp import made_with
    from livecam.viewer import outputs, sinks
    from livecam.viewer import recorder as recorders

    out, look = config.output, config.look
    quiet = out.quiet
    if not quiet:
        print(f"livecam: source: {shown(source.description)}", file=sys.stderr)
        for warning in getattr(source, "warnings", []) or []:
            print(f"livecam: warning: {shown(warning)}", file=sys.stderr)
    with logs.native_stderr_silenced(logs.quiet()) as say:  # C++ notes while the model is built
        from livecam.engine.compare import panel_count
        from livecam.viewer.pipeline import Options, Pipeline, recording_size

        engine = engine_from_config(config.engine, log=None if quiet else say)
    if not quiet and _random_zoo_weights(config, engine.model_name):
        print(
            f"livecam: warning: --weights none gives {engine.model_name} random weights: its labels and maps mean nothing "
            "(useful only to measure speed).",
            file=sys.stderr,
        )
    class_id = class_id_of(engine, config.engine)
    contrast_id = contrast_id_of(engine, config.look)
    if not quiet:
        print(engine_line(engine), file=sys.stderr)
        info = engine.runtime_info
        print(f"livecam: runtime {info.runtime} ({shown(info.reason)})", file=sys.stderr)

    renderer = renderer_from_look(look)
    batch = 1 if source.live else (out.batch or 8)
    check_memory(engine, source, batch)
    options = Options(
        batch=batch,
        every=out.every,
        faithfulness=config.engine.faithfulness,
        max_frames=out.max_frames,
        output=None if per_image else output,
        size=out.size,
        snapshot_dir=out.snapshot_dir,
        stats_json=out.stats_json,
        progress=not quiet,
        class_id=class_id,
        contrast_id=contrast_id,
        compare=look.compare,
        step_images=out.display and isinstance(source, sources.ImageFolderSource),
        delay_s=out.delay_s,
        box=look.box,
        normalize=look.normalize,
    )
    stamp = made_with(engine, normalize=look.normalize)
    for sink in per_frame:
        if isinstance(sink, outputs.ImageFolderWriter):
            sink.made_with = stamp
    if out.results is not None:
        per_frame.append(
            outputs.ResultsWriter(
                out.results,
                class_names=engine.class_names,
                source=_source_name(source),
                overwrite=out.overwrite,
                made_with=stamp,
            )
        )
    recorder = None
    if output is not None and not per_image:
        recorder = recorders.VideoWriter(
            output,
            fps=source.fps or 30.0,
            size=recording_size(
                source, out.size, side_by_side=look.side_by_side, panels=panel_count(look.compare, engine.num_classes)
            ),
            live=source.live or source.variable_frame_rate,  # the latter: keep the file's own timing
            overwrite=out.overwrite,
            made_with=stamp,
        )
    window = sinks.WindowSink("livecam", fullscreen=out.fullscreen) if out.display else None
    pipeline = Pipeline(source, engine, renderer, options, window=window, recorder=recorder, outputs=per_frame, log=_log)

    if out.delay_s is not None and not options.step_images:
        print("livecam: warning: --delay applies to image folders shown in a window; it is ignored here.", file=sys.stderr)
    # Said last, when everything else is checked, just before the run.
    if not out.display and not out.saves_something:
        # Warned even with --quiet: a run that keeps nothing is most likely a mistake.
        print(
            "livecam: warning: --no-display without -o/--output, --results or --save-maps saves nothing"
            + (" and runs until stopped (Ctrl-C)" if source.live and out.max_frames is None else "")
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


def _check_not_an_input_folder(folder: str, inputs: list[tuple[str, Path]]) -> None:
    """-o DIR/ writes one picture per input under the input's own name: never into a folder of inputs."""
    target = os.path.realpath(Path(folder).expanduser())
    if any(os.path.realpath(path.parent) == target for _, path in inputs):
        raise UserError(
            f"-o {shown(folder)} is the folder the input images come from, and the annotated pictures take their "
            "names; choose another folder, e.g. -o annotated/."
        )


def _input_files(config: ViewConfig) -> list[tuple[str, Path]]:
    """(role, path) of every local file this run reads: the input video or images, model, weights, labels."""
    from livecam.sources import is_image_name

    spec = config.source.spec
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
    engine = config.engine
    for flag, value in (("--model", engine.model), ("--weights", engine.weights), ("--labels", engine.labels)):
        if value and Path(value).expanduser().is_file():
            found.append((flag, Path(value).expanduser()))
    return found


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


def _random_zoo_weights(config: ViewConfig, model_name: str) -> bool:
    from livecam.models import ZOO

    return model_name in ZOO and str(config.engine.weights).strip().lower() == "none"


def _log(text: str) -> None:
    print(shown(text), file=sys.stderr, flush=True)
