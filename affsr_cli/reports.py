"""The files `affsr eval` writes: its results as JSON (infinity as "inf", NaN as null, names that are not
UTF-8 as JSON escapes) and as CSV, atomically, nothing measured lost."""

from __future__ import annotations

import csv
import io
import json
import math
from pathlib import Path

from .evaluate import Results
from .files import atomic_write
from .text import UNDECODABLE, csv_cell


def _plain(v):
    """JSON has no infinity: +inf (identical images) is written as the string "inf", NaN as null."""
    if isinstance(v, float) and not math.isfinite(v):
        return None if math.isnan(v) else ("inf" if v > 0 else "-inf")
    return v


def to_json(res: Results) -> str:
    doc = {
        "conventions": res.conventions,
        "metrics": list(res.metrics),
        "methods": res.methods,
        "means": {m: {k: _plain(v) for k, v in d.items()} for m, d in res.means().items()},
        "images": [{k: _plain(v) for k, v in r.items()} for r in res.rows],
    }
    text = json.dumps(doc, indent=2, ensure_ascii=False, allow_nan=False) + "\n"
    # a file name that is not UTF-8 holds surrogate escapes, which no UTF-8 file can: as JSON escapes
    # ("\udce9"), which a JSON reader turns back into the same name (lossless, and valid UTF-8)
    return UNDECODABLE.sub(lambda m: f"\\u{ord(m.group()):04x}", text)


def to_csv(res: Results) -> str:
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(["image", "method", *res.metrics])
    for r in res.rows:
        w.writerow([csv_cell(r["image"]), csv_cell(r["method"]), *(repr(r.get(k, math.nan)) for k in res.metrics)])
    for m, d in res.means().items():
        w.writerow(["mean", csv_cell(m), *(repr(d[k]) for k in res.metrics)])
    return buf.getvalue()


def write_text(path: Path, text: str, overwrite: bool = False) -> Path:
    """UTF-8; a name that is not UTF-8 (CSV) keeps its own bytes (surrogateescape), so nothing measured is lost."""
    return atomic_write(path, lambda tmp: tmp.write_bytes(text.encode("utf-8", "surrogateescape")), overwrite)
