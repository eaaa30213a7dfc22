#!/usr/bin/env python3
"""Training zips from Noto Color Emoji (OFL-1.1): `people`, `faces` and `all`.

    apt-get install -y fonts-noto-color-emoji
    python scripts/emoji_dataset.py people emoji-people64.zip [--resolution 64] [--font PATH]

people: the person emoji that take skin tones, each plain and with the five tone modifiers
    U+1F3FB..U+1F3FF right after the base: Unicode's person, person-gesture, person-role and
    person-fantasy subgroups (PEOPLE_BASES) with their woman/man ZWJ variants, the hair styles
    and professions of person/man/woman, and U+1F9D6. Not in it: hands and body parts, families
    and couples, sports and activity figures (full bodies, with small faces).
faces: animal faces and smileys, no tones, disjoint from `people`: ANIMAL_FACES, SMILEY_RANGES
    (the smiley blocks U+1F600..U+1F64F, U+1F910..U+1F92F, U+1F970..U+1F97A, U+1F9D0 without
    their hands and people, plus U+1FAE0..U+1FAE8 and the costume faces) and SEQUENCE_FACES.
all: every PNG bitmap in the font's CBDT table (flags, objects, symbols, all of the above).

Candidates are rendered one sequence at a time with Pillow (FreeType + raqm, so ZWJ sequences
and tone modifiers ligate). A candidate is kept only when the font draws it as ONE colour glyph;
the rest (sequences this font does not ligate, code points it lacks) are counted and dropped,
so the font, not this file, decides which of the generated candidates exist. Every set then goes
through the same pipeline: crop to the alpha bounding box, composite on white, pad to a square
with white, resize with LANCZOS; pixel-identical glyphs are kept once. The zip is NVIDIA's
dataset layout written by `stylegen.training.dataset.write_image_zip`, with `provenance.json` inside
(font, Debian package version, licence, renderer versions, the code points of every image).
"""

from __future__ import annotations

import argparse
import hashlib
import io
import json
import struct
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import PIL
from PIL import Image, ImageDraw, ImageFont, features

from stylegen.training.dataset import write_image_zip

FONT_PATH = Path("/usr/share/fonts/truetype/noto/NotoColorEmoji.ttf")
FONT_PACKAGE = "fonts-noto-color-emoji"
FONT_SIZE = 109  # the font's only bitmap strike (109 ppem, 136x128 bitmaps): drawn 1:1, no scaling
SETS = ("people", "faces", "all")

ZWJ, VS16 = "\u200d", "\ufe0f"
TONES = tuple(chr(cp) for cp in range(0x1F3FB, 0x1F400))  # Fitzpatrick 1-2 .. 6
GENDERS = (ZWJ + "\u2640" + VS16, ZWJ + "\u2642" + VS16)  # woman, man

# -- people: bases in Unicode's subgroup order; the tone goes right after the base code point --
PERSON = [0x1F476, 0x1F9D2, 0x1F466, 0x1F467, 0x1F9D1, 0x1F471, 0x1F468, 0x1F9D4, 0x1F469, 0x1F9D3, 0x1F474, 0x1F475]
PERSON_GESTURE = [0x1F64D, 0x1F64E, 0x1F645, 0x1F646, 0x1F481, 0x1F64B, 0x1F9CF, 0x1F647, 0x1F926, 0x1F937]
PERSON_ROLE = [0x1F46E, 0x1F575, 0x1F482, 0x1F977, 0x1F477, 0x1FAC5, 0x1F934, 0x1F478, 0x1F473, 0x1F472, 0x1F9D5]
PERSON_ROLE += [0x1F935, 0x1F470, 0x1F930, 0x1FAC3, 0x1FAC4, 0x1F931]
PERSON_FANTASY = [0x1F47C, 0x1F385, 0x1F936, 0x1F9B8, 0x1F9B9, 0x1F9D9, 0x1F9DA, 0x1F9DB, 0x1F9DC, 0x1F9DD]
PERSON_FANTASY += [0x1F9DE, 0x1F9DF]  # genie, zombie: no tones, plain and man/woman only
# U+1F9D6 person in steamy room (a head in steam) completes U+1F9D1..U+1F9DD, but not U+1F9D7 climbing and
# U+1F9D8 lotus position: full-body activity figures, like the sports and activities left out
PERSON_EXTRA = [0x1F9D6]
PEOPLE_BASES = PERSON + PERSON_GESTURE + PERSON_ROLE + PERSON_FANTASY + PERSON_EXTRA
TEXT_DEFAULT = {0x1F575}  # text presentation by default: needs VS16 when no tone follows
ADULTS = [0x1F9D1, 0x1F468, 0x1F469]  # person, man, woman: the bases of hair styles and professions
HAIR = [0x1F9B0, 0x1F9B1, 0x1F9B3, 0x1F9B2]  # red, curly, white, bald
PROFESSIONS = ["\u2695\ufe0f", "\U0001f393", "\U0001f3eb", "\u2696\ufe0f", "\U0001f33e", "\U0001f373"]
PROFESSIONS += ["\U0001f527", "\U0001f3ed", "\U0001f4bc", "\U0001f52c", "\U0001f4bb", "\U0001f3a4"]
PROFESSIONS += ["\U0001f3a8", "\u2708\ufe0f", "\U0001f680", "\U0001f692", "\U0001f37c", "\U0001f384"]

# -- faces: animal faces and smileys (no hands, no people) --
ANIMAL_FACES = [0x1F435, 0x1F436, 0x1F43A, 0x1F98A, 0x1F99D, 0x1F431, 0x1F981, 0x1F42F, 0x1F434, 0x1F984]
ANIMAL_FACES += [0x1F993, 0x1F992, 0x1F42E, 0x1F437, 0x1F417, 0x1F42D, 0x1F439, 0x1F430, 0x1F43B, 0x1F428]
ANIMAL_FACES += [0x1F43C, 0x1F414, 0x1F424, 0x1F426, 0x1F427, 0x1F989, 0x1F438, 0x1F432, 0x1F41D]
SMILEY_RANGES = [
    (0x1F600, 0x1F644),  # smileys and cat faces (U+1F645.. are people, hands, monkeys)
    (0x1F648, 0x1F64A),  # see-, hear-, speak-no-evil monkeys
    (0x1F910, 0x1F917),  # zipper-mouth .. hugging face (U+1F918..U+1F91F are hands)
    (0x1F920, 0x1F925),  # cowboy .. lying face (U+1F926 is a person)
    (0x1F927, 0x1F92F),  # sneezing .. exploding head
    (0x1F970, 0x1F976),  # smiling with hearts .. cold face (U+1F977 is a person)
    (0x1F978, 0x1F97A),  # disguised .. pleading face
    (0x1F9D0, 0x1F9D0),  # face with monocle
    (0x1FAE0, 0x1FAE5),  # melting .. diagonal mouth (Emoji 14)
    (0x1FAE8, 0x1FAE8),  # shaking face (Emoji 15)
    (0x1F479, 0x1F47B),  # ogre, goblin, ghost
    (0x1F47D, 0x1F47D),  # alien
    (0x1F47F, 0x1F480),  # imp, skull
    (0x1F4A9, 0x1F4A9),  # pile of poo
]
SEQUENCE_FACES = ["\u263a\ufe0f", "\u2639\ufe0f"]  # relaxed, frowning: text by default, so with VS16
SEQUENCE_FACES += [
    "\U0001f62e\u200d\U0001f4a8",  # face exhaling
    "\U0001f635\u200d\U0001f4ab",  # face with spiral eyes
    "\U0001f636\u200d\U0001f32b\ufe0f",  # face in clouds
]

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


class Unsupported(ValueError):
    """The font does not draw this sequence as one colour glyph; `reason` is a short key."""

    def __init__(self, seq: str, reason: str, detail: str = ""):
        super().__init__(f"{codepoints(seq)}: {reason}" + (f" ({detail})" if detail else ""))
        self.reason = reason


def codepoints(seq: str) -> str:
    """'U+1F469 U+1F3FD': how sequences are named in messages and in provenance.json."""
    return " ".join(f"U+{ord(ch):04X}" for ch in seq)


def people_sequences() -> list[str]:
    """Candidate people sequences, each plain and with the 5 tones; the font rejects the rest."""

    def toned(base: int, suffix: str = "") -> list[str]:
        plain = chr(base) + (VS16 if base in TEXT_DEFAULT else "") + suffix
        return [plain] + [chr(base) + tone + suffix for tone in TONES]

    seqs = []
    for base in PEOPLE_BASES:
        for suffix in ("", *GENDERS):  # man/woman variants exist for some bases only
            seqs += toned(base, suffix)
    for adult in ADULTS:
        for obj in [chr(cp) for cp in HAIR] + PROFESSIONS:
            seqs += toned(adult, ZWJ + obj)
    return seqs


def faces_sequences() -> list[str]:
    """The `faces` candidates: ANIMAL_FACES, then SMILEY_RANGES, then SEQUENCE_FACES."""
    smileys = [chr(cp) for lo, hi in SMILEY_RANGES for cp in range(lo, hi + 1)]
    return [chr(cp) for cp in ANIMAL_FACES] + smileys + SEQUENCE_FACES


def _font_file(path: str | Path) -> Path:
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such font (apt-get install -y {FONT_PACKAGE}, or pass --font)")
    return path


class EmojiFont:
    """Noto Color Emoji at its bitmap strike, shaped by raqm so that ZWJ sequences ligate."""

    def __init__(self, path: str | Path = FONT_PATH):
        self.path = _font_file(path)
        if not features.check_feature("raqm"):
            raise RuntimeError(
                "Pillow has no raqm text layout, so emoji ZWJ sequences and skin tones cannot ligate: Pillow's "
                "wheels bundle raqm but load FriBiDi at run time (apt-get install -y libfribidi0); "
                "`python -m PIL.report` shows what Pillow found"
            )
        layout = ImageFont.Layout.RAQM if hasattr(ImageFont, "Layout") else ImageFont.LAYOUT_RAQM
        self.font = ImageFont.truetype(str(self.path), FONT_SIZE, layout_engine=layout)
        self.advance = self.font.getlength("\U0001f600")  # one glyph: every emoji has this advance

    def _draw(self, seq: str, fill: tuple[int, int, int, int]) -> Image.Image:
        width = int(self.font.getlength(seq)) + 2 * FONT_SIZE
        canvas = Image.new("RGBA", (width, 2 * FONT_SIZE), (0, 0, 0, 0))
        origin = (FONT_SIZE // 2, FONT_SIZE // 4)
        ImageDraw.Draw(canvas).text(origin, seq, font=self.font, fill=fill, embedded_color=True)
        return canvas

    def render(self, seq: str) -> Image.Image:
        """RGBA [h, w] of seq cropped to its alpha bounding box; Unsupported unless ONE colour glyph."""
        glyphs = self.font.getlength(seq) / self.advance
        if abs(glyphs - 1) > 0.05:  # not ligated: the pieces are laid out side by side
            raise Unsupported(seq, "not one glyph", f"drawn as {glyphs:.3g} glyphs")
        img = self._draw(seq, (0, 0, 0, 255))
        bbox = img.getchannel("A").getbbox()
        if bbox is None:  # this font's .notdef is blank
            raise Unsupported(seq, "not in the font", "draws nothing")
        width = bbox[2] - bbox[0]
        if width > 1.3 * self.advance:  # a second guard: ink spread over more than one glyph cell
            raise Unsupported(seq, "not one glyph", f"{width} pixels wide")
        if img.tobytes() != self._draw(seq, (255, 0, 0, 255)).tobytes():  # bitmaps ignore the fill
            raise Unsupported(seq, "not a colour bitmap", "an outline glyph drawn in the fill colour")
        return img.crop(bbox)


def render_all(font: EmojiFont, seqs: list[str]) -> tuple[list[tuple[str, Image.Image]], Counter]:
    """(code points, RGBA) for each sequence the font draws as one colour glyph; rejections by reason."""
    kept, rejected = [], Counter()
    for seq in seqs:
        try:
            kept.append((codepoints(seq), font.render(seq)))
        except Unsupported as e:
            rejected[e.reason] += 1
    return kept, rejected


def read_table(path: str | Path, tag: bytes) -> bytes:
    """The raw bytes of one table of an sfnt (TrueType/OpenType) file."""
    data = _font_file(path).read_bytes()
    if data[:4] not in (b"\x00\x01\x00\x00", b"OTTO", b"true"):
        raise ValueError(f"{path}: not a TrueType/OpenType font")
    (num_tables,) = struct.unpack_from(">H", data, 4)
    for i in range(num_tables):
        name, _, offset, length = struct.unpack_from(">4sIII", data, 12 + 16 * i)
        if name == tag:
            return data[offset : offset + length]
    raise ValueError(
        f"{path}: no {tag.decode()} table (the CBDT build of Noto Color Emoji has one; COLRv1 builds do not)"
    )


def cbdt_pngs(path: str | Path = FONT_PATH) -> list[tuple[int, bytes]]:
    """(offset in the CBDT table, PNG stream) of every bitmap: from the signature to the end of IEND."""
    table = read_table(path, b"CBDT")
    pngs, start = [], table.find(PNG_SIGNATURE)
    while start >= 0:
        end = start + len(PNG_SIGNATURE)
        kind = b""
        while kind != b"IEND":  # walk the chunks: length, type, data, CRC
            if end + 12 > len(table):
                raise ValueError(f"{path}: the PNG at CBDT offset {start} runs past the table")
            length, kind = struct.unpack_from(">I4s", table, end)
            end += 12 + length
        pngs.append((start, table[start:end]))
        start = table.find(PNG_SIGNATURE, end)
    return pngs


def square_on_white(rgba: Image.Image, resolution: int) -> Image.Image | None:
    """RGB [resolution, resolution]: crop to alpha, composite on white, pad square (white), LANCZOS."""
    rgba = rgba.convert("RGBA")
    bbox = rgba.getchannel("A").getbbox()
    if bbox is None:
        return None
    rgba = rgba.crop(bbox)
    rgb = Image.alpha_composite(Image.new("RGBA", rgba.size, (255, 255, 255, 255)), rgba).convert("RGB")
    side = max(rgb.size)
    square = Image.new("RGB", (side, side), (255, 255, 255))
    square.paste(rgb, ((side - rgb.width) // 2, (side - rgb.height) // 2))
    return square.resize((resolution, resolution), Image.LANCZOS)


def dedupe(items: list[tuple[str, Image.Image]]) -> tuple[list[tuple[str, Image.Image]], list[list[str]]]:
    """Keep the first of pixel-identical images; also [dropped source, kept source] pairs."""
    first, kept, dropped = {}, [], []
    for source, img in items:
        key = hashlib.sha256(f"{img.mode}{img.size}".encode() + img.tobytes()).hexdigest()
        if key in first:
            dropped.append([source, first[key]])
        else:
            first[key] = source
            kept.append((source, img))
    return kept, dropped


def collect(set_name: str, font_path: str | Path = FONT_PATH) -> tuple[list[tuple[str, Image.Image]], Counter, int]:
    """(source, RGBA) of every candidate of a set that the font provides, rejections, number of candidates."""
    if set_name == "all":
        pngs = cbdt_pngs(font_path)
        return (
            [(f"CBDT PNG #{i} at table offset {off}", _decode(png)) for i, (off, png) in enumerate(pngs)],
            Counter(),
            len(pngs),
        )
    seqs = {"people": people_sequences, "faces": faces_sequences}[set_name]()
    items, rejected = render_all(EmojiFont(font_path), seqs)
    return items, rejected, len(seqs)


def _decode(png: bytes) -> Image.Image:
    img = Image.open(io.BytesIO(png))
    img.load()
    return img.convert("RGBA")


def package_version(font_path: Path) -> str | None:
    """The Debian version of FONT_PACKAGE when font_path is its file, else None."""
    if font_path.resolve() != FONT_PATH.resolve():
        return None
    try:
        out = subprocess.run(["dpkg-query", "-W", "-f=${Version}", FONT_PACKAGE], capture_output=True, text=True)
    except FileNotFoundError:  # not a Debian system
        return None
    version = out.stdout.strip() if out.returncode == 0 else ""
    return version or None


def renderer_versions() -> dict[str, str | None]:
    """Versions of what draws, shapes, resamples and encodes the images (None: unknown to this Pillow)."""
    return {
        "pillow": PIL.__version__,
        **{name: features.version(name) for name in ("freetype2", "raqm", "harfbuzz", "fribidi")},
    }


def provenance(set_name: str, resolution: int, font_path: Path, sources: list[str], **counts) -> dict:
    """What provenance.json records: the font and its licence, the renderer, the pipeline, the sources."""
    return {
        "format": 1,
        "set": set_name,
        "resolution": resolution,
        "images": len(sources),
        "font": {
            "path": str(font_path),
            "sha256": hashlib.sha256(font_path.read_bytes()).hexdigest(),
            "package": FONT_PACKAGE,
            "package_version": package_version(font_path),  # dpkg-query -W fonts-noto-color-emoji
            "license": "OFL-1.1",
            "copyright": "Google Inc. (Noto Emoji, https://github.com/googlefonts/noto-emoji)",
        },
        "renderer": {**renderer_versions(), "size": FONT_SIZE, "layout": "raqm"},
        "pipeline": "crop to the alpha bbox; composite on white; pad to a square with white; LANCZOS resize",
        **counts,
        "sources": sources,  # sources[i]: the code points (or CBDT bitmap) of the i-th image, zip order
    }


def build(set_name: str, dest: str | Path, resolution: int = 64, font_path: str | Path = FONT_PATH) -> dict:
    """Write the `set_name` zip to dest (atomically, provenance.json inside); returns the provenance."""
    if set_name not in SETS:
        raise ValueError(f"unknown set {set_name!r}; choose one of {', '.join(SETS)}")
    font_path = Path(font_path)
    items, rejected, candidates = collect(set_name, font_path)
    items, duplicates = dedupe(items)
    squares = [(source, square_on_white(img, resolution)) for source, img in items]
    empty = [source for source, img in squares if img is None]
    if empty:
        rejected["empty bitmap"] += len(empty)
    squares = [(source, img) for source, img in squares if img is not None]
    prov = provenance(
        set_name,
        resolution,
        font_path,
        [source for source, _ in squares],
        candidates=candidates,
        rejected=dict(sorted(rejected.items())),
        duplicates=duplicates,
    )
    extra = {"provenance.json": json.dumps(prov, indent=1, ensure_ascii=False).encode()}
    write_image_zip((img for _, img in squares), dest, extra_files=extra)
    return prov


def _resolution(text: str) -> int:
    res = int(text)
    if res < 4 or res & (res - 1):
        raise argparse.ArgumentTypeError(f"{res} is not a power of two >= 4")
    return res


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Build a training zip from Noto Color Emoji (OFL-1.1).")
    parser.add_argument("set", choices=SETS, help="people (skin tones), faces (animals, smileys) or all (CBDT)")
    parser.add_argument("dest", type=Path, help="the zip to write, e.g. emoji-people64.zip")
    parser.add_argument("--resolution", type=_resolution, default=64, help="output size (default: 64)")
    parser.add_argument("--font", type=Path, default=FONT_PATH, help=f"the font file (default: {FONT_PATH})")
    args = parser.parse_args(argv)
    if args.dest.suffix != ".zip":
        parser.error(f"DEST {str(args.dest)!r} must end in .zip")
    start = time.time()
    try:
        prov = build(args.set, args.dest, args.resolution, args.font)
    except (OSError, RuntimeError, ValueError) as e:
        print(f"Error: {e}", file=sys.stderr)
        return 2
    rejected = ", ".join(f"{n} {reason}" for reason, n in prov["rejected"].items()) or "none"
    print(
        f"wrote {args.dest}: {prov['images']} images {args.resolution}x{args.resolution}x3 from "
        f"{prov['candidates']} candidates (rejected: {rejected}; {len(prov['duplicates'])} duplicates) "
        f"in {time.time() - start:.1f} s"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
