"""Rebuilds bench/quality's foregrounds, textures and manifest from Debian's tuxpaint-stamps-default and scikit-image.

Usage: apt-get install tuxpaint-stamps-default && .venv/bin/python bench/quality/build_set.py

Not part of a benchmark run: bench/quality.py reads the committed files. This script says how they
were made and remakes them byte for byte from the same package versions (tuxpaint-stamps-default
2022.06.04-1, scikit-image 0.26.0's wheel).

Foregrounds: photographic Tux Paint stamps, each an RGBA PNG whose alpha its preparer cut by hand.
That alpha *is* the ground truth here: bench/quality.py makes every input photo by compositing the
stamp over a background with exactly this alpha, so the true matte of the photo is known to the
pixel. A stamp whose longest side is over 640 px is scaled down in premultiplied space (colour
times alpha, each channel resized with LANCZOS, then divided back), so no background colour bleeds
into the soft edge; the alpha is rounded to 8 bits and stored, and the stored alpha is the truth.
Colours under alpha 0 are stored black (they are never seen, and zeros compress).

Textures (the busy backgrounds of the test split): scikit-image's greyscale brick, grass and gravel
samples, coloured by a fixed two-colour ramp, and a crop of its Hubble deep field; with the demo
landscape (demo/origin/aitzgorri.jpg). The tune split's busy backgrounds are regions of the int8
calibration photos (cutouts/calibration), already tuning material.
"""

import json
import sys
from pathlib import Path

import numpy as np
from PIL import Image

HERE = Path(__file__).resolve().parent
STAMPS = Path("/usr/share/tuxpaint/stamps")
MAX_SIDE = 640

# Credits from the package's CHANGES.txt (/usr/share/doc/tuxpaint-stamps-default/changelog.gz) where
# it names them; every file is distributed by Debian under the package's GPL-2+ (its copyright file).
_ZOO = "Bill Kendrick, photographed at the San Francisco Zoo (CHANGES.txt 2005.November.25)"
_PERE = "Pere Pujal i Carabantes, \"License Gnu/GPL v2 or higher\" (CHANGES.txt {})"
_FORD_WP = "Caroline Ford, prepared from Wikipedia photos (CHANGES.txt 2007.July.1)"
FOREGROUNDS = [
    # name, stamp path, kind, split, credit
    ("tiger_sumatran", "animals/mammals/cats/tiger_sumatran.png", "fur", "test", _ZOO),
    ("european_bear", "animals/mammals/bears/european-bear.png", "fur", "test", _PERE.format("2008.June.27")),
    ("squirrel", "animals/mammals/rodents/squirrel.png", "fur", "test",
     "Childsplay (GPL, 2002-2005 Stas Zytkiewicz), adapted by Pere Pujal i Carabantes (CHANGES.txt 2007.July.1, "
     "updated 2008.June.27)"),
    ("tamarin_emperor", "animals/mammals/apes/tamarin_emperor.png", "fur", "test", _ZOO),
    ("gnu_baby_stand", "animals/mammals/bovines/gnu-baby-stand.png", "fur", "test", _PERE.format("2008.June.27")),
    ("otter", "animals/mammals/aquatic/otter.png", "fur", "tune", "not named in CHANGES.txt"),
    ("lion_2", "animals/mammals/cats/lion-2.png", "fur", "tune", "not named in CHANGES.txt"),
    ("capybara", "animals/mammals/rodents/capybara.png", "fur", "tune", _ZOO),
    ("crowned_crane", "animals/birds/crowned_crane.png", "feathers", "test", _ZOO),
    ("albino_peahen", "animals/birds/albino_peahen.png", "feathers", "test", _ZOO),
    ("helmeted_guineafowl", "animals/birds/helmeted_guineafowl.png", "feathers", "tune",
     "Paul Venter, Wikimedia Commons File:Helmeted_guineafowl_kruger00.jpg, GFDL without invariant sections "
     "(CHANGES.txt 2014.August.13)"),
    ("fireman", "people/fireman200b.png", "person", "test", "Albert Cahalan (CHANGES.txt 2005.November.25, Firemen)"),
    ("rag_doll", "people/toys/grannysmith.png", "toy", "test",
     "Jim Trice, \"Grandma's old rag doll\" (CHANGES.txt 2006.October.12)"),
    ("edward_bear", "animals/mammals/bears/toys/edward_bear.png", "toy", "test",
     "Jim Trice, \"Edward bear\" (CHANGES.txt 2006.October.12)"),
    ("smoker_figurine", "seasonal/christmas/German_Christmas_toy.png", "toy", "tune",
     "André Karwath, Wikimedia Commons Räuchermännchen.jpg, CC BY-SA (CHANGES.txt 2008.June.27)"),
    ("strawberry", "food/fruit/Strawberry2.png", "food", "test",
     "Benjamint444, Wikimedia Commons Strawberry444.jpg, GFDL (CHANGES.txt 2008.June.27)"),
    ("roast_turkey", "seasonal/christmas/Roast_turkey.png", "food", "test",
     "Patrick Fitzgerald, Wikimedia Commons Thanksgiving_Turkey.jpg, CC BY 2.0 (CHANGES.txt 2008.June.27)"),
    ("ginger", "food/spices/ginger.png", "food", "test", "CHANGES.txt 2008.February.27 (contributor not named)"),
    ("cherries", "food/fruit/Cherry_Stella.png", "food", "tune",
     "Benjamint444, Wikimedia Commons Cherry_Stella444.jpg, GFDL (CHANGES.txt 2008.June.27)"),
    ("mince_pie", "seasonal/christmas/Mince_Pie.png", "food", "tune",
     "Jmb, Wikimedia Commons Mince_Pie_PICT6877a.jpg, CC BY 2.5 (CHANGES.txt 2008.June.27)"),
    ("rambutan", "plants/trees/rambutan.png", "plant", "test", "not named in CHANGES.txt"),
    ("holm_oak", "plants/trees/holm_oak.png", "plant", "test", _PERE.format("2009.June.28")),
    ("cep", "plants/mushrooms/cep.png", "plant", "test", _PERE.format("2009.June.28")),
    ("thyme", "plants/thyme.png", "plant", "tune", _PERE.format("2008.June.27")),
    ("daffodil", "plants/flowers/daffodil.png", "plant", "tune", "Caroline Ford (CHANGES.txt 2014.August.13)"),
    ("candle", "seasonal/candle.png", "object", "test", "not named in CHANGES.txt"),
    ("lightbulb", "household/Lightbulb.png", "object", "test",
     "KMJ, alpha masking by Edokter, Wikimedia Commons Gluehlampe_01_KMJ.png, GFDL (CHANGES.txt 2008.June.27)"),
    ("floor_tom", "hobbies/music/percussion/drum_tomtom_floor.png", "object", "test", _FORD_WP),
    ("hot_air_balloon", "vehicles/flight/balloon360.png", "object", "tune",
     "Albert Cahalan (CHANGES.txt 2005.November.25)"),
    ("cement_mixer", "household/tools/cementmixer.png", "object", "tune", "Caroline Ford (CHANGES.txt 2014.August.13)"),
]

# name, scikit-image sample, dark end, light end of the ramp a greyscale sample is coloured with.
TEXTURES = [
    ("brick", "brick.png", (70, 28, 18), (214, 150, 118)),
    ("grass", "grass.png", (18, 46, 10), (176, 214, 96)),
    ("gravel", "gravel.png", (52, 44, 36), (226, 212, 190)),
    ("hubble", "hubble_deep_field.jpg", None, None),
]


def premultiplied_resize(rgba: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    alpha = rgba[..., 3].astype(np.float32) / 255.0
    channels = [Image.fromarray(rgba[..., c].astype(np.float32) * alpha, "F").resize(size, Image.Resampling.LANCZOS)
                for c in range(3)]
    new_alpha = np.clip(np.asarray(Image.fromarray(alpha * 255.0, "F").resize(size, Image.Resampling.LANCZOS)), 0, 255)
    alpha_8 = np.round(new_alpha).astype(np.uint8)
    out = np.zeros((size[1], size[0], 4), np.uint8)
    safe = np.maximum(new_alpha / 255.0, 1e-6)
    for c, channel in enumerate(channels):
        out[..., c] = np.clip(np.round(np.asarray(channel) / safe), 0, 255).astype(np.uint8)
    out[..., 3] = alpha_8
    return out


def foreground_build(path: Path) -> np.ndarray:
    rgba = np.asarray(Image.open(path).convert("RGBA")).copy()
    height, width = rgba.shape[:2]
    if max(width, height) > MAX_SIDE:
        scale = MAX_SIDE / max(width, height)
        rgba = premultiplied_resize(rgba, (max(1, round(width * scale)), max(1, round(height * scale))))
    rgba[rgba[..., 3] == 0] = 0
    return rgba


def texture_build(sample: str, dark, light) -> Image.Image:
    from skimage import data

    with Image.open(Path(data.__file__).parent / sample) as image:
        if dark is None:  # Already colour: the deep field's upper-left 640×480.
            return image.convert("RGB").crop((0, 0, 640, 480))
        grey = np.asarray(image.convert("L"), dtype=np.float32)[..., None] / 255.0
    ramp = np.asarray(dark, np.float32) + grey * (np.asarray(light, np.float32) - np.asarray(dark, np.float32))
    return Image.fromarray(np.clip(np.round(ramp), 0, 255).astype(np.uint8), "RGB")


def main():
    if not STAMPS.is_dir():
        sys.exit(f"{STAMPS} is missing: apt-get install tuxpaint-stamps-default")
    entries = []
    for name, stamp, kind, split, credit in FOREGROUNDS:
        rgba = foreground_build(STAMPS / stamp)
        target = HERE / "foregrounds" / f"{name}.png"
        Image.fromarray(rgba, "RGBA").save(target, optimize=True)
        entries.append({"name": name, "file": f"foregrounds/{name}.png", "kind": kind, "split": split,
                        "size": [rgba.shape[1], rgba.shape[0]],
                        "source": f"tuxpaint-stamps-default 2022.06.04-1: {STAMPS / stamp}",
                        "licence": "GPL-2+", "credit": credit})
    textures = []
    for name, sample, dark, light in TEXTURES:
        texture_build(sample, dark, light).save(HERE / "backgrounds" / f"{name}.jpg", quality=85)
        textures.append(f"backgrounds/{name}.jpg")
    manifest = {
        "foregrounds": entries,
        # Busy backgrounds by split: the test split's never touched tuning; the tune split's are
        # regions of the int8 calibration photos with none of their subjects (the wooden table, the
        # launch towers; not the cup, the rocket or the man with the camera), so that neither split puts a second object behind the subject.
        "busy": {
            "test": [{"file": path} for path in textures] + [{"file": "../../demo/origin/aitzgorri.jpg"}],
            "tune": [{"file": "../../cutouts/calibration/coffee.jpg", "box": [485, 0, 600, 400]},
                     {"file": "../../cutouts/calibration/rocket.jpg", "box": [0, 0, 190, 427]},
                     {"file": "../../cutouts/calibration/rocket.jpg", "box": [450, 0, 640, 427]}],
        },
    }
    (HERE / "manifest.json").write_text(json.dumps(manifest, indent=2, ensure_ascii=False) + "\n")
    total = sum(path.stat().st_size for path in HERE.glob("*/*") if path.suffix in (".png", ".jpg"))
    print(f"{len(entries)} foregrounds, {len(textures)} textures, {total / 2**20:.2f} MiB")


if __name__ == "__main__":
    main()
