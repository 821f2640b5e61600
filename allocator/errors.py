"""Input errors: every problem with the input is reported at once, each with file, row, column
and the rule it breaks."""

from __future__ import annotations

from dataclasses import asdict, dataclass


@dataclass(frozen=True, order=True)
class InputIssue:
    """One broken rule in the input.

    ``row`` is the line in the file as a spreadsheet shows it (the header is row 1, the first
    data row is row 2); ``None`` when the issue is about a whole file or column.
    """

    file: str
    row: int | None
    column: str | None
    rule: str
    message: str

    def __str__(self) -> str:
        where = self.file
        if self.row is not None:
            where += f", row {self.row}"
        if self.column:
            where += f", column {self.column}"
        return f"{where}: [{self.rule}] {self.message}"

    def to_dict(self) -> dict[str, object]:
        return asdict(self)


class ProblemValidationError(ValueError):
    """Raised when the input breaks one or more rules; carries all of them."""

    def __init__(self, issues: list[InputIssue]):
        self.issues = sorted(issues, key=lambda i: (i.file, i.row or 0, i.column or "", i.rule))
        super().__init__(self.report())

    def report(self, limit: int | None = None) -> str:
        shown = self.issues if limit is None else self.issues[:limit]
        lines = [f"{len(self.issues)} input error(s):"] + [f"  {i}" for i in shown]
        if limit is not None and len(self.issues) > limit:
            lines.append(f"  ... and {len(self.issues) - limit} more")
        return "\n".join(lines)
