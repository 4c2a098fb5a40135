"""A zip archive with fixed entry dates and permissions, so equal workbooks are equal bytes.

zipfile stamps each entry with the time of writing; a report rerun from the same snapshot
must give the same file, so every entry gets the run's own timestamp. It can also splice
pre-rendered rows into a worksheet part as it is copied in (see fastrows.py).
"""

from __future__ import annotations

import os
import shutil
import zipfile
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path


class StampedZip(zipfile.ZipFile):
    """A ZipFile that stamps every entry with one fixed date and fixed permissions."""

    def __init__(
        self, path: Path, stamp: datetime, splices: dict[str, Iterator[str]] | None = None
    ) -> None:
        super().__init__(path, "w", zipfile.ZIP_DEFLATED, allowZip64=True)
        self._date_time = (stamp.year, stamp.month, stamp.day, stamp.hour, stamp.minute, 0)
        self._splices = splices or {}

    def _info(self, name: str) -> zipfile.ZipInfo:
        info = zipfile.ZipInfo(name, date_time=self._date_time)
        info.compress_type = zipfile.ZIP_DEFLATED
        info.external_attr = 0o644 << 16
        return info

    def writestr(  # type: ignore[override]
        self,
        zinfo_or_arcname: str | zipfile.ZipInfo,
        data: str | bytes,
        compress_type: int | None = None,
        compresslevel: int | None = None,
    ) -> None:
        info = zinfo_or_arcname
        if not isinstance(info, zipfile.ZipInfo):
            info = self._info(info)
        super().writestr(info, data)

    def write(  # type: ignore[override]
        self,
        filename: str | os.PathLike[str],
        arcname: str | None = None,
        compress_type: int | None = None,
        compresslevel: int | None = None,
    ) -> None:
        name = arcname if arcname is not None else os.fspath(filename)
        if name in self._splices:
            self._write_spliced(filename, name, self._splices[name])
            return
        size = os.path.getsize(filename)
        with (
            open(filename, "rb") as src,
            self.open(self._info(name), "w", force_zip64=size > zipfile.ZIP64_LIMIT) as dst,
        ):
            shutil.copyfileobj(src, dst, 1 << 20)

    def _write_spliced(
        self, filename: str | os.PathLike[str], name: str, rows: Iterator[str]
    ) -> None:
        """The sheet openpyxl wrote (header only) with `rows` inserted before </sheetData>."""
        text = Path(filename).read_text(encoding="utf-8")
        head, sep, tail = text.partition("</sheetData>")
        if not sep:  # an empty <sheetData/>: openpyxl writes no rows at all
            head, sep, tail = text.partition("<sheetData />")
            head, sep = head + "<sheetData>", "</sheetData>"
        with self.open(self._info(name), "w", force_zip64=True) as dst:
            dst.write(head.encode("utf-8"))
            chunk: list[str] = []
            for row in rows:
                chunk.append(row)
                if len(chunk) >= 1000:
                    dst.write("".join(chunk).encode("utf-8"))
                    chunk.clear()
            dst.write(("".join(chunk) + sep + tail).encode("utf-8"))
