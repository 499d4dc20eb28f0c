#!/usr/bin/env python
"""Produce gendet's shipped real photos (gendet/assets/real) from the full-size originals.

    python tools/make_real_assets.py --src /work/shared/data/real --out gendet/assets/real

For each photo listed in SRC/MANIFEST.csv: check its sha256, decode it (EXIF
orientation applied), downscale it so the shorter side is 256 px with
`gendet.data.real_photos.downscale_short_side` (the same function that
downscales a user's --real-dir photos at run time) and store it as PNG (lossless,
no metadata). Writes OUT/MANIFEST.csv (one row per file: origin, licence,
photographer, original hash and size, processing) and OUT/ATTRIBUTION.md.

Deterministic: no randomness is involved; the same inputs and Pillow version
give byte-identical PNGs.
"""

from __future__ import annotations

import argparse
import csv
import re
import sys
from pathlib import Path

import PIL

from gendet.data.decode import decode_image
from gendet.data.real_photos import REDUCING_GAP, SHORT_SIDE, downscale_short_side, sha256_file

# Photographers / copyright holders as stated in each Debian package's /usr/share/doc/<package>/copyright
# (mate-backgrounds 1.26.0-1, lomiri-wallpapers-16.04/-20.04 20.04.0-2). The MATE file names do
# not name the photographer, so the copyright file is the only source for them.
COPYRIGHT = {
    "Bridge_by_Sander_Klootwijk.jpg": "2018 Sander Klootwijk",
    "Dragonfly_by_Bolly.jpg": '2018 "Bolly"',
    "Picture_0B_by_freespace.jpg": 'Trevor "Freespace", 2018',
    "Picture_1A_by_freespace.jpg": 'Trevor "Freespace", 2018',
    "Wine_by_Jakkub_Mede.jpg": "Jakub Mede, 2018",
    "aitzgorri_by_Aitzol_Berasategi.jpg": "Aitzol Berasategi, 2018",
    "friends_by_Aitzol_Berasategi.jpg": "Aitzol Berasategi, 2018",
    "greentock_by_Peter_Nerlich.jpg": "Peter Nerlich, 2018",
    "life_by_Aitzol_Berasategi.jpg": "Aitzol Berasategi, 2018",
    "picosdeeuropa_by_Aitzol_Berasategi.jpg": "Aitzol Berasategi, 2018",
    "seeding_by_Clements_Engelhardt.jpg": "Clemens Engelhardt, 2018",
    "sunset_by_Aitzol_Berasategi.jpg": "Aitzol Berasategi, 2018",
    "umang_by_Abhishek_Mudgal.jpg": "Abhishek Mudgal, 2018",
    "Kleiber_by_Lukas_Baubkus.jpg": "2021 Lukas Baubkus",
    "Aqua.jpg": "2008 Charles Barbin",
    "LadyBird.jpg": "2008 Charles Barbin",
    "YellowFlower.jpg": "2008 Charles Barbin",
    "Garden.jpg": "2008 Charles Barbin",
    "Blinds.jpg": "2008 Lennart Poettering; 2008 Andrea Cimitan",
    "Dune.jpg": "2007 Marco Cogoni; 2008 Hylke Bons",
    "FreshFlower.jpg": "2005 Jens Ansorg",
    "GreenMeadow.jpg": "2005 Timothy Schellhase; 2008 Lapo Calamandrei",
    "RainDrops.jpg": '2008 "blackcombwhistler07"',
    "Storm.jpg": "2008 Sergey Nazarov",
    "TwoWings.jpg": "2008 Charles Barbin; 2008 Hylke Bons",
    "Wood.jpg": "2008 Jean-François Fortin Tam",
    "Elephants.jpg": "2020 Wyng Stancikaite",
}
LICENCE_URLS = {
    "CC0-1.0": "https://creativecommons.org/publicdomain/zero/1.0/",
    "CC-BY-4.0": "https://creativecommons.org/licenses/by/4.0/",
    "CC-BY-SA-3.0": "https://creativecommons.org/licenses/by-sa/3.0/",
    "CC-BY-SA-4.0": "https://creativecommons.org/licenses/by-sa/4.0/",
    "GPL-2+": "https://www.gnu.org/licenses/old-licenses/gpl-2.0.html",
}
FIELDS = [
    "file",
    "original_file",
    "debian_package",
    "path_in_package",
    "license",
    "photographer",
    "copyright",
    "original_sha256",
    "original_width",
    "original_height",
    "original_format",
    "original_bytes",
    "width",
    "height",
    "sha256",
    "bytes",
    "processing",
]


def photographer(copyright_line: str) -> str:
    """Holder names from the Debian copyright line, years dropped.

    Preferred over the name in the file name, which misspells two of them
    ("Clements" for Clemens Engelhardt, "Jakkub" for Jakub Mede) and is absent for MATE files.
    """
    names = [re.sub(r"^\d{4},?\s+|,?\s+\d{4}$", "", part.strip()) for part in copyright_line.split(";")]
    return "; ".join(n.strip('"') if n.count('"') == 2 and n[0] == '"' else n for n in names)


def process(src: Path, out: Path) -> list[dict]:
    with open(src / "MANIFEST.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    out.mkdir(parents=True, exist_ok=True)
    processing = (
        f"decoded with Pillow {PIL.__version__} (EXIF orientation applied), downscaled so the shorter side is "
        f"{SHORT_SIDE} px (Image.resize LANCZOS, reducing_gap={REDUCING_GAP}), saved as PNG (lossless, no metadata)"
    )
    records = []
    for row in sorted(rows, key=lambda r: r["file"]):
        path = src / row["file"]
        digest = sha256_file(path)
        if digest != row["sha256"]:
            raise SystemExit(f"{path}: sha256 {digest} does not match the manifest {row['sha256']}")
        img = downscale_short_side(decode_image(path))
        name = Path(row["file"]).with_suffix(".png").name
        img.save(out / name, format="PNG", optimize=True)
        orig_name = Path(row["path_in_package"]).name
        holder = COPYRIGHT[orig_name]
        records.append(
            {
                "file": name,
                "original_file": row["file"],
                "debian_package": row["debian_package"],
                "path_in_package": row["path_in_package"],
                "license": row["license"],
                "photographer": photographer(holder),
                "copyright": holder,
                "original_sha256": digest,
                "original_width": row["width"],
                "original_height": row["height"],
                "original_format": row["format"],
                "original_bytes": path.stat().st_size,
                "width": img.width,
                "height": img.height,
                "sha256": sha256_file(out / name),
                "bytes": (out / name).stat().st_size,
                "processing": processing,
            }
        )
        print(f"{name}: {row['width']}x{row['height']} -> {img.width}x{img.height}, {records[-1]['bytes']} B")
    with open(out / "MANIFEST.csv", "w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=FIELDS, lineterminator="\n")
        w.writeheader()
        w.writerows(records)
    (out / "ATTRIBUTION.md").write_text(attribution(records, processing))
    return records


def attribution(records: list[dict], processing: str) -> str:
    lines = [
        "# Real photographs shipped with gendet: attribution and licences",
        "",
        "These are **modified copies** (downscaled) of camera photographs distributed in the Debian packages",
        "`lomiri-wallpapers-16.04`, `lomiri-wallpapers-20.04` (20.04.0-2) and `mate-backgrounds` (1.26.0-1).",
        f"Modification: {processing}.",
        "They were produced by `python tools/make_real_assets.py --src DIR --out gendet/assets/real`;",
        "`MANIFEST.csv` lists each original's path in its package and its sha256.",
        "",
        "Each photo keeps its original licence; crops of them (e.g. the `nature` images of",
        "`gendet bench --preset tiny`) are further modified copies under the same licence and attribution.",
        "Copyright holders are as stated in `/usr/share/doc/<package>/copyright` of each package.",
        "",
        "| File | Photographer | Copyright | Licence | Source package | Path in package |",
        "|---|---|---|---|---|---|",
    ]
    for r in records:
        lic = f"[{r['license']}]({LICENCE_URLS[r['license']]})"
        lines.append(
            f"| {r['file']} | {r['photographer']} | {r['copyright']} | {lic} | {r['debian_package']} "
            f"| {r['path_in_package']} |"
        )
    lines += [
        "",
        "CC-BY-SA files: the modified copies are shared under the same licence (CC-BY-SA-3.0/4.0 as listed).",
        "GPL-2+ files (mate-backgrounds): distributed under the GNU GPL version 2 or later; the",
        "preferred form for modification is the original full-size JPEG in `mate-backgrounds`,",
        "identified above by package path and in `MANIFEST.csv` by sha256.",
        "",
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--src", type=Path, required=True, help="folder with the originals and their MANIFEST.csv")
    ap.add_argument("--out", type=Path, required=True, help="output folder (gendet/assets/real)")
    args = ap.parse_args(argv)
    records = process(args.src, args.out)
    total = sum(r["bytes"] for r in records)
    print(f"{len(records)} photos, {total / 1e6:.2f} MB in {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
