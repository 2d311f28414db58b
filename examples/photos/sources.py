"""The photographs make_corpus.py takes, where each one comes from, and its author and licence.

Every candidate image of ≥ 2 MP in each package was looked at (contact sheets of thumbnails);
only photographs are listed: renders, 3-D scenes, paintings, drawings, photos of paint and images
with logos were left out by hand. Near-duplicates (the same photo in two packages or versions) are
also removed automatically by make_corpus.py (32×32 thumbnails compared).

Licences are as stated in each package's debian/copyright (for Plasma, each wallpaper's
metadata.json) and in the Python packages' documentation of their sample data.
"""
from __future__ import annotations

# (package, suite): {path under the package root: (author, licence)}. suite None = the suites this
# machine's apt is set up for; a named suite is fetched from the same Debian mirror.
# author/licence None = read from the package (Plasma's metadata.json).
DEBIAN = {
    ("lomiri-wallpapers-16.04", None): {
        f"usr/share/backgrounds/{n}.jpg": (a, l) for n, a, l in [
            ("Bridge_by_Sander_Klootwijk", "Sander Klootwijk", "CC-BY-SA-4.0"),
            ("Dragonfly_by_Bolly", "Bolly", "CC-BY-SA-4.0"),
            ("Picture_0B_by_freespace", "Trevor Freespace", "CC-BY-4.0"),
            ("Picture_1A_by_freespace", "Trevor Freespace", "CC-BY-4.0"),
            ("Wine_by_Jakkub_Mede", "Jakub Mede", "CC-BY-4.0"),
            ("aitzgorri_by_Aitzol_Berasategi", "Aitzol Berasategi", "CC-BY-4.0"),
            ("analogpattern_by_Peter_Nerlich", "Peter Nerlich", "CC-BY-SA-4.0"),
            ("free_by_Peter_Nerlich", "Peter Nerlich", "CC-BY-SA-4.0"),
            ("friends_by_Aitzol_Berasategi", "Aitzol Berasategi", "CC-BY-4.0"),
            ("life_by_Aitzol_Berasategi", "Aitzol Berasategi", "CC-BY-4.0"),
            ("picosdeeuropa_by_Aitzol_Berasategi", "Aitzol Berasategi", "CC-BY-4.0"),
            ("seeding_by_Clements_Engelhardt", "Clemens Engelhardt", "CC0-1.0"),
            ("sunset_by_Aitzol_Berasategi", "Aitzol Berasategi", "CC-BY-4.0"),
        ]},
    ("lomiri-wallpapers-20.04", None): {
        "usr/share/backgrounds/Kleiber_by_Lukas_Baubkus.jpg": ("Lukas Baubkus", "CC-BY-SA-3.0"),
    },
    ("mate-backgrounds", None): {
        f"usr/share/backgrounds/mate/nature/{n}.jpg": (a, "GPL-2+") for n, a in [
            ("Aqua", "Charles Barbin"), ("Blinds", "Lennart Poettering, Andrea Cimitan"),
            ("Dune", "Marco Cogoni, Hylke Bons"), ("FreshFlower", "Jens Ansorg"),
            ("Garden", "Charles Barbin"), ("GreenMeadow", "Timothy Schellhase, Lapo Calamandrei"),
            ("LadyBird", "Charles Barbin"), ("RainDrops", "blackcombwhistler07"),
            ("Storm", "Sergey Nazarov"), ("TwoWings", "Charles Barbin, Hylke Bons"),
            ("Wood", "Jean-François Fortin Tam"), ("YellowFlower", "Charles Barbin"),
        ]},
    ("plasma-workspace-wallpapers", None): {
        f"usr/share/wallpapers/{n}": (None, None) for n in [
            "BytheWater", "ColorfulCups", "EveningGlow", "FallenLeaf", "Grey", "Kite", "MilkyWay",
            "OneStandsOut", "Path", "summer_1am", "DarkestHour",
        ]},
    ("plasma-workspace-wallpapers", "trixie"): {  # two photos newer than the system's version
        f"usr/share/wallpapers/{n}": (None, None) for n in ["ColdRipple", "Mountain"]},
    ("budgie-backgrounds", "trixie"): {  # debian/copyright: Files: * CC0-1.0
        f"usr/share/backgrounds/budgie/{n}.jpg": ("Budgie Desktop Developers (photographers' CC0 uploads)", "CC0-1.0")
        for n in [
            "abstract-spiral", "beacon-street-sunset", "blue-periwinkle", "canyon-wren", "casa-mila",
            "extreme-desert-hike", "high-trestle-trail", "lake-sherburne", "oakland-zoo-otters",
            "perched-osprey", "piazza-gae-aulenti", "roman-colosseum", "saturnian-profile",
            "singaporean-cityscape", "tea-gardens",
        ]},
    ("gnome-backgrounds", "bullseye"): {  # the last GNOME release with photographs
        f"usr/share/backgrounds/gnome/{n}.jpg": (a, l) for n, a, l in [
            ("ColdWarm", "GNOME backgrounds contributors (not named per file in debian/copyright)", "GPL-2+ or CC-BY-SA-3.0 (debian/copyright)"),
            ("Dark_Ivy", "Garrett LeSage", "CC-BY-SA-3.0"),
            ("Icetwigs", "GNOME backgrounds contributors (not named per file in debian/copyright)", "GPL-2+ or CC-BY-SA-3.0 (debian/copyright)"),
            ("LightWaves", "GNOME backgrounds contributors (not named per file in debian/copyright)", "GPL-2+ or CC-BY-SA-3.0 (debian/copyright)"),
            ("Road", "Garrett LeSage", "CC-BY-SA-3.0"),
            ("SeaSunset", "GNOME backgrounds contributors (not named per file in debian/copyright)", "GPL-2+ or CC-BY-SA-3.0 (debian/copyright)"),
        ]},
    ("ukui-wallpapers", "sid"): {  # debian/copyright: Files: * CC-BY-SA-3.0; the photos came after 20.04.3
        f"usr/share/backgrounds/{n}.jpg": ("Ubuntu Kylin community contributors", "CC-BY-SA-3.0") for n in [
            "bluebird", "bridgecity", "bridgecity2", "flamingos", "horse", "house", "look", "mountain-range",
            "mountain", "mountain2", "sea", "sky", "snowy-mountains", "still-life", "sunf",
        ]},
}

# Held out, never trained on: the validation photos of the v1 corpus, kept as they were so that
# numbers stay comparable across corpus versions.
VAL = {
    "lomiri-Picture_0B_by_freespace", "lomiri-free_by_Peter_Nerlich", "mate-Aqua", "mate-GreenMeadow",
    "mate-Wood", "plasma-EveningGlow", "plasma-OneStandsOut",
}

# (module, file under its data folder, author, licence, split); licences as stated in
# skimage.data's docstrings and sklearn's datasets/images/README.txt. These are small (< 2 MP).
SAMPLE_DATA = [
    ("skimage", "data/camera.png", "Lav Varshney", "CC0", "train"),
    ("skimage", "data/ihc.png", "Yale Rosen (immunohistochemistry)", "no known copyright restrictions", "train"),
    ("skimage", "data/coins.png", "Brooklyn Museum", "no known copyright restrictions", "train"),
    ("skimage", "data/grass.png", "linolafett (DeviantArt)", "CC0", "train"),
    ("skimage", "data/gravel.png", "CC0Textures", "CC0", "train"),
    ("skimage", "data/brick.png", "CC0Textures", "CC0", "train"),
    ("sklearn", "datasets/images/china.jpg", "danielbuechele (Flickr)", "CC-BY-2.0", "train"),
    ("sklearn", "datasets/images/flower.jpg", "vultilion (Flickr)", "CC-BY-2.0", "train"),
    ("matplotlib", "mpl-data/sample_data/grace_hopper.jpg", "US Navy", "public domain (US Navy photograph)", "train"),
    # the photos of examples/val (examples/val/SOURCES.md): validation only
    ("skimage", "data/astronaut.png", "NASA", "public domain", "val"),
    ("skimage", "data/chelsea.png", "Stefan van der Walt", "CC0", "val"),
    ("skimage", "data/coffee.png", "Rachel Michetti", "CC0", "val"),
    ("skimage", "data/rocket.jpg", "SpaceX", "public domain", "val"),
    ("skimage", "data/hubble_deep_field.jpg", "NASA", "public domain", "val"),
]
