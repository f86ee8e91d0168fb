"""``livecam batch``: settings in, every input and output checked, then the jobs run (in-process or on Ray).

Everything a user can get wrong (an input, a colliding name, DIR, the engine's settings) is said
before the model is built; the run then shows a progress bar of inputs and frames, and ends with
results.parquet, errors.jsonl and report.html in DIR.
"""

from __future__ import annotations

import dataclasses
import os
import sys
import time

from livecam import logs
from livecam.cli.configs import BatchConfig, check, engine_from_config, engine_line
from livecam.errors import UserError, counted, shown


def batch(config: BatchConfig) -> int:
    from livecam.batch import plan as plans
    from livecam.batch.store import ERRORS, REPORT, RESULTS, Store
    from livecam.batch.work import BatchSettings

    check(config.engine, config.look)
    if config.ray is not None:
        from livecam.batch.ray_run import check_ray

        check_ray(config.ray)
    jobs = plans.plan(list(config.inputs))
    _check_out_not_an_input(config, jobs)
    store = Store(config.out, _settings_stamp(config), resume=config.resume, overwrite=config.overwrite)
    settings = BatchSettings(
        out=os.path.abspath(store.out), engine=config.engine, look=config.look, save_maps=config.save_maps,
        batch=config.batch, tmp=os.path.abspath(store.tmp),
    )  # fmt: skip
    done = store.done_jobs() if config.resume else set()
    todo = [job for job in jobs if job.id not in done]
    inputs = sum(len(job.inputs) for job in jobs)
    say = (lambda text: None) if config.quiet else (lambda text: print(shown(text), file=sys.stderr, flush=True))
    say(
        f"livecam: {counted(inputs, 'input')} in {counted(len(jobs), 'job')}"
        + (f", {len(jobs) - len(todo)} done before" if config.resume else "")
        + (f"; on Ray ({config.ray or os.environ.get('RAY_ADDRESS') or 'started here'})" if config.ray is not None else "")
    )
    start = time.monotonic()
    if todo:
        _run(todo, store, settings, config, say)
    seconds = time.monotonic() - start
    rows, errors = store.gather(jobs)
    store.write_results(rows, errors)
    from livecam.batch.report import write_report

    write_report(
        store.out,
        rows,
        errors,
        inputs=[item for job in jobs for item in job.inputs],
        settings=_settings_stamp(config),
        seconds=seconds,
    )
    say(
        f"livecam: {len(rows)} rows in {seconds:.1f} s, {len(errors)} inputs with errors; saved "
        f"{store.out.resolve() / RESULTS}, {ERRORS} and {REPORT}"
    )
    return 0


def _run(todo, store, settings, config: BatchConfig, say) -> None:
    """Runs the jobs in-process or on Ray, under one progress bar of inputs and frames."""
    from tqdm import tqdm

    engine = None
    if config.ray is None:  # in-process: the model is built before the bar starts
        with logs.native_stderr_silenced(logs.quiet()) as note:
            engine = engine_from_config(config.engine, log=None if config.quiet else note)
        say(engine_line(engine))
    bar = tqdm(total=sum(len(job.inputs) for job in todo), unit="input", dynamic_ncols=True, disable=config.quiet)
    frames = 0

    def done(job, rows: int) -> None:
        nonlocal frames
        frames += rows
        bar.update(len(job.inputs))
        bar.set_postfix(frames=frames)

    try:
        if engine is None:
            from livecam.batch.ray_run import run_on_ray

            run_on_ray(
                todo, store, settings, address=config.ray, workers=config.workers, cpus_per_worker=config.cpus_per_worker,
                done=done, say=lambda text: None if config.quiet else bar.write(shown(text), file=sys.stderr),
            )  # fmt: skip
        else:
            from livecam.batch.local import run_local

            run_local(todo, store, settings, engine, done=done)
    finally:
        bar.close()


def _check_out_not_an_input(config: BatchConfig, jobs) -> None:
    out = os.path.realpath(config.out.expanduser())
    for job in jobs:
        for item in job.inputs:
            if os.path.realpath(item.path).startswith(out + os.sep):
                raise UserError(
                    f"The input {shown(item.given)} is inside --out {shown(str(config.out))}, where the run writes; "
                    "choose an --out folder outside the inputs."
                )


def _settings_stamp(config: BatchConfig) -> dict:
    """What the results depend on: a resumed run must have the same (and the report shows it)."""
    from livecam import __version__

    return {
        "livecam": __version__,
        "engine": dataclasses.asdict(config.engine),
        "look": dataclasses.asdict(config.look),
        "save_maps": config.save_maps,
    }
