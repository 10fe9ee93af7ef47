"""Match a regular expression against each line of texts given on stdin, in its own process.

``search_code`` runs this with ``python -I -S`` and kills it after a time limit: Python's
``re`` cannot be interrupted, and a pattern like ``(a+)+$`` backtracks for ages. It reads
nothing but stdin (JSON: ``pattern``, ``flags``, ``max_hits``, ``texts``) and writes JSON:
the first ``max_hits`` hits as ``[text index, line number]``, the total of matching lines,
and how many texts had one. Imports nothing from the project.
"""

from __future__ import annotations

import json
import re
import sys


def search(pattern: str, flags: int, max_hits: int, texts: list[str]) -> dict[str, object]:
    rx = re.compile(pattern, flags)
    hits: list[list[int]] = []
    total = files = 0
    for index, text in enumerate(texts):
        found = False
        lines = text.split("\n")
        if lines[-1] == "":  # numbered as read_file numbers them: no line after the last \n
            lines.pop()
        for number, line in enumerate(lines, start=1):
            if rx.search(line.removesuffix("\r")) is not None:
                total += 1
                found = True
                if len(hits) < max_hits:
                    hits.append([index, number])
        files += found
    return {"hits": hits, "total": total, "files": files}


def main() -> None:
    request = json.load(sys.stdin)
    result = search(request["pattern"], request["flags"], request["max_hits"], request["texts"])
    json.dump(result, sys.stdout)


if __name__ == "__main__":
    main()
