"""Copy one store into another (a laptop's SQLite history into the team's
PostgreSQL): ``edgert farm copy-store SRC DST``.

Both stores are opened (so both are migrated to the current schema first: a
store of any version copies), then each run of the source that the destination
lacks is copied whole (the run, its plan, its devices, every result row, in
their order) in one transaction. A run the destination already has is skipped,
so copying twice copies nothing twice. Result ids are the destination's own.
"""
from __future__ import annotations

from typing import Dict, List

from sqlalchemy import select

from device_farm.store import schema as t
from device_farm.store.results import ResultStore


def copy_store(src: str, dst: str) -> Dict[str, object]:
    """Copy the runs of ``src`` missing from ``dst``; return what was done."""
    copied: List[str] = []
    skipped: List[str] = []
    results = 0
    with ResultStore(src) as a, ResultStore(dst) as b:
        have = {str(r["run_id"]) for r in b.runs()}
        for run in a.runs():
            run_id = str(run["run_id"])
            if run_id in have:
                skipped.append(run_id)
                continue
            results += _copy_run(a, b, run)
            copied.append(run_id)
        for sha in b.missing_model_files(_model_shas(a)):
            content = a.model_file_content(sha)
            if content is not None:
                name = a._rows(select(t.model_files.c.name).where(  # noqa: SLF001
                    t.model_files.c.sha256 == sha))[0]["name"]
                b.put_model_file(sha, str(name), content)
    return {"copied": copied, "skipped": skipped, "results": results}


def _model_shas(store: ResultStore) -> List[str]:
    return [str(r["sha256"]) for r in store._rows(select(t.model_files.c.sha256))]  # noqa: SLF001


def _copy_run(a: ResultStore, b: ResultStore, run: Dict[str, object]) -> int:
    run_id = run["run_id"]
    jobs = a._rows(select(t.jobs).where(t.jobs.c.run_id == run_id))          # noqa: SLF001
    devices = a._rows(select(t.devices).where(t.devices.c.run_id == run_id))  # noqa: SLF001
    rows = a._rows(select(t.results).where(t.results.c.run_id == run_id)    # noqa: SLF001
                   .order_by(t.results.c.id))
    for r in rows:
        r.pop("id")
    with b._engine.begin() as conn:   # noqa: SLF001 - one transaction per run
        conn.execute(t.runs.insert().values(**run))
        for table, items in ((t.jobs, jobs), (t.devices, devices), (t.results, rows)):
            if items:
                conn.execute(table.insert(), items)
    return len(rows)
