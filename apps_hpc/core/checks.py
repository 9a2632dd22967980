"""One check's outcome, as `doctor`, preflight and `make gpu-check` print it."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Check:
    name: str
    status: str  # ok | skip | warn | fail
    detail: str

    def line(self) -> str:
        mark = {"ok": "ok  ", "skip": "skip", "warn": "WARN", "fail": "FAIL"}[self.status]
        return f"[{mark}] {self.name}: {self.detail}"
