"""Plain-text tables in docker's style for the payload's hand CLI (the controller renders its own)."""


def table(headers, rows):
    """Render ``rows`` (lists of cells) under ``headers`` as left-aligned columns, three spaces apart."""
    cells = [[str(c) for c in headers]] + [["" if c is None else str(c) for c in r] for r in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(headers))]
    lines = []
    for r in cells:
        padded = [c.ljust(w) for c, w in zip(r, widths)]
        lines.append("   ".join(padded).rstrip())
    return "\n".join(lines)


def human_size(n):
    """Docker's human-readable size (decimal units, 3 significant digits): 187MB, 4.26kB."""
    n = float(n or 0)
    for unit in ("B", "kB", "MB", "GB", "TB"):
        if n < 1000 or unit == "TB":
            break
        n /= 1000.0
    text = "{:.3g}".format(n)
    return text + unit
