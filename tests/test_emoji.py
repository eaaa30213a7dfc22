"""scripts/emoji_dataset.py: render by code point, reject what the font lacks, cut CBDT, write the zip.

Needs the optional Debian package fonts-noto-color-emoji (and libfribidi0, which Pillow's raqm
layout loads at run time); CI installs both, elsewhere these tests skip and say why.
"""

from __future__ import annotations

import hashlib
import importlib.util
import io
import json
import struct
import zipfile
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageFont, features

from stylegen.training.dataset import ImageDataset

REPO = Path(__file__).resolve().parents[1]
_spec = importlib.util.spec_from_file_location("emoji_dataset", REPO / "scripts" / "emoji_dataset.py")
emoji = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(emoji)

pytestmark = pytest.mark.skipif(
    not emoji.FONT_PATH.is_file(),
    reason=f"{emoji.FONT_PATH} is absent: apt-get install -y {emoji.FONT_PACKAGE} (an optional Debian package)",
)

# fonts-noto-color-emoji 2.042-0+deb12u1 (Debian 12): the counts this font gives
DEBIAN12_SHA256 = "e5899ed38b8ed83e08bd3ac5de09791e9d19d288333a796de1d35ad17396f1ec"
DEBIAN12_COUNTS = {"cbdt": 3926, "people": 1014, "faces": 154}

BOY, WOMAN, CAT = "\U0001f466", "\U0001f469", "\U0001f431"
ZWJ, VS16 = "\u200d", "\ufe0f"
HANDS_AND_BODY = {0x261D, *range(0x270A, 0x270E), *range(0x1F442, 0x1F451), 0x1F485, 0x1F4AA, 0x1F590, 0x1F595}
HANDS_AND_BODY |= {0x1F596, 0x1F64C, 0x1F64F, *range(0x1F918, 0x1F920), 0x1F932, 0x1F933, 0x1F9B5, 0x1F9B6}
HANDS_AND_BODY |= {0x1F9BB, *range(0x1FAF0, 0x1FAF9), 0x1F463, 0x1F9E0, 0x1FAC0, 0x1FAC1}


def _known_font() -> bool:
    return hashlib.sha256(emoji.FONT_PATH.read_bytes()).hexdigest() == DEBIAN12_SHA256


@pytest.fixture(scope="module")
def font():
    if not features.check_feature("raqm"):
        pytest.skip("Pillow has no raqm layout (apt-get install -y libfribidi0): ZWJ sequences cannot ligate")
    return emoji.EmojiFont()


def _colourful(img: Image.Image) -> float:
    """Fraction of pixels with HSV saturation above 1/3: colour, not grey, black or white."""
    return float((np.asarray(img.convert("HSV"))[..., 1] > 85).mean())


@pytest.mark.parametrize(
    "seq",
    [BOY, BOY + "\U0001f3ff", f"\U0001f9d1{ZWJ}\u2695{VS16}", f"{WOMAN}\U0001f3fd{ZWJ}\U0001f680", CAT],
    ids=["boy", "boy-tone6", "health-worker", "woman-tone4-astronaut", "cat-face"],
)
def test_known_sequences_render_as_one_square_colour_image(font, seq):
    rgba = font.render(seq)
    assert rgba.mode == "RGBA" and rgba.getchannel("A").getbbox() == (0, 0, *rgba.size)  # cropped to the ink
    assert 0.7 < rgba.width / rgba.height < 1.3 and rgba.width <= font.advance
    square = emoji.square_on_white(rgba, 64)
    assert square.mode == "RGB" and square.size == (64, 64)
    assert _colourful(square) > 0.1


def test_unsupported_sequences_are_rejected(font):
    cases = {
        f"\U0001f9d1{ZWJ}{CAT}": "not one glyph",  # no person-cat ligature: two glyphs side by side
        f"{BOY}{ZWJ}\u2642{VS16}": "not one glyph",  # boy + male sign does not exist
        "\ue000": "not in the font",  # private use: the blank .notdef
        "A": "not in the font",
    }
    for seq, reason in cases.items():
        with pytest.raises(emoji.Unsupported, match=reason):
            font.render(seq)
    kept, rejected = emoji.render_all(font, [BOY, *cases])
    assert [source for source, _ in kept] == ["U+1F466"]
    assert rejected == {"not one glyph": 2, "not in the font": 2}


def test_outline_glyphs_are_not_colour_bitmaps(font):
    outline = ImageFont.load_default(size=emoji.FONT_SIZE)  # Pillow's bundled outline font
    if not isinstance(outline, ImageFont.FreeTypeFont):
        pytest.skip("this Pillow has no scalable default font (Pillow >= 10.1 has)")
    probe = object.__new__(emoji.EmojiFont)
    probe.font, probe.advance = outline, outline.getlength("W")
    with pytest.raises(emoji.Unsupported, match="not a colour bitmap"):
        probe.render("W")


def test_skin_tones_differ(font):
    variants = [WOMAN] + [WOMAN + tone for tone in emoji.TONES]
    digests = {hashlib.sha256(font.render(seq).tobytes()).hexdigest() for seq in variants}
    assert len(digests) == 6


def test_people_are_people(font):
    seqs = emoji.people_sequences()
    assert not {ord(seq[0]) for seq in seqs} & HANDS_AND_BODY
    assert not {ord(seq[0]) for seq in emoji.faces_sequences()} & HANDS_AND_BODY
    assert not {ord(s[0]) for s in seqs} & {ord(s[0]) for s in emoji.faces_sequences()}  # disjoint sets
    kept, _ = emoji.render_all(font, seqs)
    if _known_font():
        assert len(kept) == DEBIAN12_COUNTS["people"]
    assert 900 <= len(kept) <= 1100


def test_cbdt_extractor_finds_every_bitmap():
    table = emoji.read_table(emoji.FONT_PATH, b"CBDT")
    pngs = emoji.cbdt_pngs()
    end = 0
    for i, (offset, png) in enumerate(pngs):
        # formats 17/18/19 put the PNG's length in the 4 bytes before it, after 5/8/0 bytes of
        # metrics; the first follows the 4-byte table header. So no byte of the table is unread.
        assert struct.unpack(">I", table[offset - 4 : offset])[0] == len(png)
        assert offset - end in ((13, 16, 8) if i == 0 else (9, 12, 4))
        end = offset + len(png)
        img = Image.open(io.BytesIO(png))
        img.load()
        assert img.format == "PNG" and img.width <= 136 and img.height <= 128
    assert len(table) - end < 4  # padding only
    if _known_font():
        assert len(pngs) == DEBIAN12_COUNTS["cbdt"]


def test_zip_round_trips_through_image_dataset_and_is_reproducible(font, tmp_path):
    prov = emoji.build("faces", tmp_path / "a.zip", resolution=64)
    ds = ImageDataset(tmp_path / "a.zip")
    assert tuple(ds.images.shape) == (prov["images"], 3, 64, 64) and ds.c_dim == 0
    with zipfile.ZipFile(tmp_path / "a.zip") as zf:
        stored = json.loads(zf.read("provenance.json"))
    assert stored == prov and stored["font"]["license"] == "OFL-1.1"
    assert len(stored["sources"]) == len(ds) and stored["sources"][0] == "U+1F435"  # monkey face comes first
    if _known_font():
        assert prov["images"] == DEBIAN12_COUNTS["faces"]
    emoji.build("faces", tmp_path / "b.zip", resolution=64)
    assert (tmp_path / "a.zip").read_bytes() == (tmp_path / "b.zip").read_bytes()


def test_main_reports_bad_arguments(tmp_path, capsys):
    assert emoji.main(["faces", str(tmp_path / "f.zip"), "--font", str(tmp_path / "none.ttf")]) == 2
    assert "none.ttf: no such font (apt-get install -y fonts-noto-color-emoji" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        emoji.main(["faces", str(tmp_path / "f.tar")])
    with pytest.raises(SystemExit):
        emoji.main(["faces", str(tmp_path / "f.zip"), "--resolution", "48"])
    assert not list(tmp_path.iterdir())
