"""What a batch run keeps in DIR, and how it is kept exactly once.

Every job's rows (one per frame or image) and errors (one per input that could not be read) are
kept as a *part* under ``DIR/.livecam-batch/parts/``: a Parquet file (the in-process runner, one
per job) or a folder of them (one Ray run), each written under a temporary name and renamed
when complete. A job is done when a part holds it; ``--resume`` skips those jobs, after keeping
as parts the files a killed Ray run had finished in its staging folder. A run ends by
gathering every part into ``results.parquet`` and ``errors.jsonl`` (each written beside its name
and renamed), so a run killed at any moment and resumed gives the same rows, none twice.

Inside a part a row is (job, seq, of, kind, data): ``of`` is how many entries the job has (Ray
Data may split a long video's rows over several files), ``kind`` is "row" or "error", ``data`` the
record as JSON. The results' columns come from the records themselves (``livecam.viewer.outputs``'s
result fields, then the batch's), so fields added to the record builder appear here unchanged.
"""

from __future__ import annotations

import json
import os
import shutil
import uuid
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from livecam.batch.plan import Job
from livecam.errors import UserError, shown
from livecam.viewer.safe_files import write_file_atomic

STATE = ".livecam-batch"
RESULTS, ERRORS, REPORT = "results.parquet", "errors.jsonl", "report.html"
PART_COLUMNS = ("job", "seq", "of", "kind", "data")  # "of": the job's number of entries, to tell a whole job from a cut one


class Store:
    """DIR and its bookkeeping.

    Args:
        out: DIR; created if missing.
        settings: what the run explains with (JSON-able); a resumed run must have the same.
        resume: finish an earlier run in DIR (its settings must match).
        overwrite: start afresh in a DIR that has files (its earlier parts are dropped).

    Raises:
        UserError: DIR has files and neither ``resume`` nor ``overwrite``; or ``resume`` with
            other settings or no earlier run.
    """

    def __init__(self, out: str | Path, settings: dict[str, Any], *, resume: bool = False, overwrite: bool = False) -> None:
        self.out = Path(out).expanduser()
        if self.out.exists() and not self.out.is_dir():
            raise UserError(f"--out {shown(str(self.out))} is a file; give a folder (it is created if missing).")
        state = self.out / STATE
        saved = state / "settings.json"
        if resume:
            if not saved.is_file():
                raise UserError(
                    f"--resume: {shown(str(self.out))} holds no earlier livecam batch run; drop --resume to start one."
                )
            earlier = json.loads(saved.read_text(encoding="utf-8"))
            if earlier != json.loads(json.dumps(settings)):
                changed = sorted(k for k in set(earlier) | set(settings) if earlier.get(k) != settings.get(k))
                raise UserError(
                    f"--resume: the run in {shown(str(self.out))} used other settings ({', '.join(changed)}); "
                    "resume with the same options, or choose a new --out folder."
                )
        elif self.out.is_dir() and any(self.out.iterdir()):
            if not overwrite:
                raise UserError(
                    f"The --out folder {shown(str(self.out))} already has files; pass --resume to finish an earlier run "
                    "there, --overwrite to start afresh in it, or choose a new folder."
                )
            shutil.rmtree(state, ignore_errors=True)
        self.parts = state / "parts"
        self.tmp = state / "tmp"
        try:
            self.parts.mkdir(parents=True, exist_ok=True)
            if resume:
                self._keep_whole_writes()
                for leftover in self.out.rglob(".*.tmp"):  # files a killed run was writing beside their names
                    leftover.unlink(missing_ok=True)
            shutil.rmtree(self.tmp, ignore_errors=True)  # what a killed run left half-written
            self.tmp.mkdir(parents=True, exist_ok=True)
            write_file_atomic(saved, json.dumps(settings, indent=1, sort_keys=True).encode())
        except OSError as exc:
            raise UserError(
                f"Could not write into --out {shown(str(self.out))} ({exc.strerror or exc}); choose another folder."
            ) from None

    def done_jobs(self) -> set[str]:
        """The ids of the jobs a part holds."""
        import pyarrow.parquet as pq

        done: set[str] = set()
        for part in self._part_paths():
            done.update(pq.read_table(part, columns=["job"]).column("job").to_pylist())
        return done

    def save_job(self, job: Job, rows: Sequence[dict], errors: Sequence[dict]) -> None:
        """Keeps one job's rows and errors as a part, whole or not at all."""
        import pyarrow as pa
        import pyarrow.parquet as pq

        sink = pa.BufferOutputStream()
        pq.write_table(pa.table(part_columns(job.id, rows, errors)), sink)
        write_file_atomic(self.parts / f"{job.id}.parquet", sink.getvalue().to_pybytes())

    def staging(self) -> Path:
        """A new folder under tmp/ for a writer that makes many files (Ray Data); ``adopt`` makes it a part."""
        return self.tmp / f"run-{uuid.uuid4().hex[:12]}"

    def adopt(self, folder: Path) -> None:
        """A finished staging folder becomes a part, in one rename."""
        os.replace(folder, self.parts / folder.name)

    def _keep_whole_writes(self) -> None:
        """A killed Ray run's staging folders: the jobs whose every entry is in files Ray Data
        finished writing become a part, so that they are not run again; the rest (a file cut
        short, a job split over files not all written) is dropped with tmp/."""
        import pyarrow as pa
        import pyarrow.compute as pc
        import pyarrow.parquet as pq

        for folder in sorted(self.tmp.glob("run-*")):
            tally = JobTally()
            tables = [table for file in sorted(folder.glob("*.parquet")) if (table := finished_part_file(file)) is not None]
            for table in tables:
                tally.add(table)
            if tally.whole:
                table = pa.concat_tables(tables)
                kept = table.filter(pc.is_in(table.column("job"), value_set=pa.array(list(tally.whole))))
                sink = pa.BufferOutputStream()
                pq.write_table(kept, sink)
                write_file_atomic(self.parts / f"{folder.name}.parquet", sink.getvalue().to_pybytes())

    def gather(self, jobs: Sequence[Job]) -> tuple[list[dict], list[dict]]:
        """Every part's rows and errors in the plan's order (a job kept twice, by a run killed
        between its rename and its end, is taken once)."""
        import pyarrow.parquet as pq

        order = {job.id: index for index, job in enumerate(jobs)}
        taken: dict[str, Any] = {}
        for part in self._part_paths():
            table = pq.read_table(part).to_pydict()
            by_job: dict[str, list] = {}
            for job_id, seq, kind, data in zip(*(table[c] for c in ("job", "seq", "kind", "data"))):
                by_job.setdefault(job_id, []).append((seq, kind, data))
            for job_id, entries in by_job.items():
                taken.setdefault(job_id, entries)
        rows: list[dict] = []
        errors: list[dict] = []
        for job_id in sorted(taken, key=lambda j: order.get(j, len(order))):
            if job_id not in order:
                continue  # a job of inputs no longer given
            for _, kind, data in sorted(taken[job_id]):
                (rows if kind == "row" else errors).append(json.loads(data))
        return rows, errors

    def write_results(self, rows: Sequence[dict], errors: Sequence[dict]) -> None:
        import pyarrow as pa
        import pyarrow.parquet as pq

        columns: dict[str, None] = {}
        for row in rows:
            columns.update(dict.fromkeys(row))
        table = pa.table({name: [row.get(name) for row in rows] for name in columns})
        sink = pa.BufferOutputStream()
        pq.write_table(table, sink)
        write_file_atomic(self.out / RESULTS, sink.getvalue().to_pybytes())
        lines = "".join(json.dumps(error, ensure_ascii=False) + "\n" for error in errors)
        write_file_atomic(self.out / ERRORS, lines.encode("utf-8", "backslashreplace"))

    def _part_paths(self) -> list[Path]:
        return sorted(p for p in self.parts.iterdir() if not p.name.startswith("."))  # not a part being written


def finished_part_file(path: Path):
    """A part file's table (pyarrow), or None while it is being written or was cut short: its Parquet footer does not read."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        return pq.read_table(path, columns=list(PART_COLUMNS))
    except (OSError, pa.ArrowException):
        return None


class JobTally:
    """Counts each job's entries as part files are read (a job's rows may span files, a retried
    job's may come twice); a job is whole once all ``of`` of its entries are in.

    Attributes:
        whole: the whole jobs' ids, each with its number of rows (frames and images).
    """

    def __init__(self) -> None:
        self.whole: dict[str, int] = {}
        self._seen: dict[str, set[int]] = {}
        self._rows: dict[str, int] = {}

    def add(self, table) -> list[str]:
        """Counts a part file's table in; returns the jobs it made whole."""
        made_whole = []
        columns = table.select(["job", "seq", "of", "kind"]).to_pydict()
        for job_id, seq, of, kind in zip(columns["job"], columns["seq"], columns["of"], columns["kind"]):
            seen = self._seen.setdefault(job_id, set())
            if seq in seen:
                continue
            seen.add(seq)
            self._rows[job_id] = self._rows.get(job_id, 0) + (kind == "row")
            if len(seen) == of:
                self.whole[job_id] = self._rows[job_id]
                made_whole.append(job_id)
        return made_whole


def part_columns(job_id: str, rows: Iterable[dict], errors: Iterable[dict]) -> dict[str, list]:
    """A job's entries in the part layout (the in-process runner's and the Ray workers')."""
    entries = [("row", row) for row in rows] + [("error", error) for error in errors]
    return {
        "job": [job_id] * len(entries),
        "seq": list(range(len(entries))),
        "of": [len(entries)] * len(entries),
        "kind": [kind for kind, _ in entries],
        "data": [json.dumps(record) for _, record in entries],  # ASCII: a name that is not UTF-8 stays an escape
    }
