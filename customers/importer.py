"""Import a channel's order export (CSV or JSON Lines) from a file: read, map, ingest, report rejects."""

from __future__ import annotations

import codecs
import csv
import datetime as dt
import io
import json
import logging
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO, Final

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from customers.mapping import (
    DEFAULT_TIMEZONE,
    FieldMap,
    NormalisedOrder,
    RejectedRecord,
    group_records,
    normalise_with,
)
from customers.orders import DEFAULT_BATCH, IngestReport, ingest_orders

_LOGGER = logging.getLogger(__name__)

FORMATS: Final = ("csv", "jsonl")
_EXTENSIONS: Final = {".csv": "csv", ".jsonl": "jsonl", ".ndjson": "jsonl", ".json": "jsonl"}
_SNIFF_BYTES: Final = 256 * 1024
# Some back offices (older Tmall/POS exports) still write GBK; its superset GB18030 reads them all.
_FALLBACK_ENCODING: Final = "gb18030"


class ImportFileError(Exception):
    """The file cannot be read at all (missing, unreadable, not CSV): nothing was imported."""


@dataclass(frozen=True)
class Reject:
    """One bad row for the rejects file."""

    line: str
    order_id: str
    reason: str


@dataclass
class ImportResult:
    """What importing one file did."""

    path: Path
    channel: str
    rows: int = 0
    report: IngestReport = field(default_factory=IngestReport)
    rejects: list[Reject] = field(default_factory=list)
    rejects_path: Path | None = None

    @property
    def landed(self) -> int:
        """Orders that are now stored as the file says."""
        return self.report.landed


def detect_format(path: Path) -> str:
    """csv or jsonl from the file name; ValueError if the extension says neither."""
    fmt = _EXTENSIONS.get(path.suffix.lower())
    if fmt is None:
        raise ValueError(f"cannot tell the format of {path.name} from its extension: pass --format csv or jsonl")
    return fmt


def detect_encoding(head: bytes) -> str:
    """utf-8-sig (which also reads plain UTF-8), or GB18030 when the start of the file is not UTF-8."""
    try:
        codecs.getincrementaldecoder("utf-8")().decode(head, final=False)
    except UnicodeDecodeError:
        try:
            codecs.getincrementaldecoder(_FALLBACK_ENCODING)().decode(head, final=False)
        except UnicodeDecodeError:
            return "utf-8-sig"  # neither: let the UTF-8 error name the line
        return _FALLBACK_ENCODING
    return "utf-8-sig"


def count_lines(path: Path) -> int:
    """Physical lines in the file (progress total); cheap next to the import itself."""
    lines = 0
    last = b"\n"
    with path.open("rb") as f:
        while chunk := f.read(1 << 20):
            lines += chunk.count(b"\n")
            last = chunk[-1:]
    return lines + (last != b"\n")


class _Reader:
    """Numbered records from a file; ``line`` is where reading has got to (for progress)."""

    def __init__(self, raw: BinaryIO, fmt: str, encoding: str) -> None:
        self.text = io.TextIOWrapper(raw, encoding=encoding, newline="", errors="strict")
        self.fmt = fmt
        self.line = 0

    def __iter__(self) -> Iterator[tuple[str, Any]]:
        return self._csv() if self.fmt == "csv" else self._jsonl()

    def _csv(self) -> Iterator[tuple[str, Any]]:
        reader = csv.reader(self.text)
        try:
            header = next(reader)
        except StopIteration:
            return
        self.line = reader.line_num
        names = [h.strip().lstrip("\ufeff") for h in header]
        if len([n for n in names if n]) < 2:
            raise ImportFileError(f"the first line is not a CSV header (got {header!r})")
        while True:
            start = self.line + 1
            try:
                row = next(reader)
            except StopIteration:
                return
            except csv.Error as exc:
                self.line = reader.line_num
                yield str(start), RejectedRecord(f"CSV 格式错误 malformed CSV row: {exc}")
                continue
            self.line = reader.line_num
            if not any(cell.strip() for cell in row):
                continue  # blank lines, e.g. the trailing ones spreadsheets add
            record = dict(zip(names, row))
            if len(row) > len(names):
                record["_extra"] = row[len(names):]  # kept in the stored source, not mapped
            yield str(start), record

    def _jsonl(self) -> Iterator[tuple[str, Any]]:
        for text in self.text:
            self.line += 1
            if not text.strip():
                continue
            try:
                record = json.loads(text.strip())
            except json.JSONDecodeError as exc:
                yield str(self.line), RejectedRecord(f"JSON 格式错误 malformed JSON: {exc.msg} (column {exc.colno})")
                continue
            yield str(self.line), record


def write_rejects(path: Path, rejects: list[Reject]) -> None:
    """The rejects file: line, order id, reason; with a BOM so Excel shows the Chinese correctly."""
    with path.open("w", encoding="utf-8-sig", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["line", "order_id", "reason"])
        for r in rejects:
            writer.writerow([r.line, r.order_id, r.reason])


async def import_orders(
    path: Path,
    fmap: FieldMap,
    maker: async_sessionmaker[AsyncSession],
    *,
    now: dt.datetime,
    fmt: str | None = None,
    timezone: str = DEFAULT_TIMEZONE,
    rejects_path: Path | None = None,
    batch_size: int = DEFAULT_BATCH,
    progress: Callable[[str, int, int], None] | None = None,
) -> ImportResult:
    """Import one export file of ``fmap``'s channel; raises ImportFileError if it cannot be read."""
    fmt = fmt or detect_format(path)
    if fmt not in FORMATS:
        raise ValueError(f"unknown format {fmt!r} (csv or jsonl)")
    result = ImportResult(path=path, channel=fmap.channel)
    try:
        total = count_lines(path)
        raw = path.open("rb")
    except OSError as exc:
        raise ImportFileError(f"cannot read {path}: {exc.strerror or exc}") from None
    with raw:
        encoding = detect_encoding(raw.read(_SNIFF_BYTES))
        raw.seek(0)
        if encoding != "utf-8-sig":
            _LOGGER.info("%s is not UTF-8; reading it as %s", path.name, encoding)
        reader = _Reader(raw, fmt, encoding)
        lines: dict[str, str] = {}  # ref -> order id, for rejects raised during ingestion

        def records() -> Iterator[tuple[str, Any]]:
            for ref, record in reader:
                result.rows += 1
                yield ref, record

        def orders() -> Iterator[NormalisedOrder]:
            for ref, record in group_records(fmap, records()):
                if isinstance(record, RejectedRecord):
                    result.rejects.append(Reject(ref.split("-")[0], "", record.reason))
                    continue
                try:
                    order = normalise_with(fmap, record, timezone=timezone, ref=ref)
                except RejectedRecord as exc:
                    result.rejects.append(Reject(ref, exc.order_id or fmap.order_id_of(record), exc.reason))
                    continue
                lines[ref] = order.channel_order_id
                yield order

        shown = [0]

        def tick(_done: int) -> None:
            if progress is not None:
                shown[0] = min(reader.line, total)
                progress("导入 import", shown[0], total)

        try:
            result.report = await ingest_orders(maker, orders(), now=now, batch_size=batch_size, progress=tick)
        except UnicodeDecodeError as exc:
            raise ImportFileError(
                f"{path.name} is not UTF-8 (or GBK) text near line {reader.line + 1}: {exc.reason}; "
                "save it as CSV UTF-8"
            ) from None
        if progress is not None and shown[0] < total:
            progress("导入 import", total, total)
    for ref, reason in result.report.rejected:
        result.rejects.append(Reject(ref, lines.get(ref, ""), reason))
    result.rejects.sort(key=lambda r: int(r.line.split("-")[0]) if r.line.split("-")[0].isdigit() else 0)
    result.rejects_path = rejects_path or path.with_name(path.name + ".rejects.csv")
    write_rejects(result.rejects_path, result.rejects)
    return result


def summary(result: ImportResult) -> str:
    """The end-of-import summary an operator reads."""
    r = result.report
    lines = [
        f"{result.path.name} ({result.channel})",
        f"  读取行数 rows read          {result.rows}",
        f"  新建订单 orders created     {r.created}",
        f"  更新订单 orders updated     {r.updated}",
        f"  未变订单 orders unchanged   {r.unchanged}",
        f"  拒绝 rejected               {len(result.rejects)}"
        + (f"  → {result.rejects_path}" if result.rejects else ""),
        f"  新客户 new customers        {r.customers_created}",
        f"  合并客户 merges             {r.merges}",
    ]
    if r.warnings:
        lines.append(f"  警告 warnings               {len(r.warnings)}")
        # The same warning (an unknown store code) often hits thousands of orders: say it once.
        grouped: dict[str, list[str]] = {}
        for ref, message in r.warnings:
            grouped.setdefault(message, []).append(ref)
        for message, refs in list(grouped.items())[:10]:
            where = ", ".join(refs[:3]) + (", …" if len(refs) > 3 else "")
            lines.append(f"    {message} ({len(refs)} × line {where})")
        if len(grouped) > 10:
            lines.append(f"    … {len(grouped) - 10} more kinds of warning")
    return "\n".join(lines)
