"""The photographs make_corpus.py takes, where each one comes from, and its author and licence.

Every candidate image of ≥ 2 MP in each package was looked at (contact sheets of thumbnails); in the
packages added for corpus v3 (issue 31) every image of any size. Only photographs are listed: renders,
3-D scenes, paintings, drawings, photos of paint and images with logos drawn over them were left out
by hand (the comment of each v3 package names what was left out and why). Near-duplicates (the same
photo in two packages or versions) are also removed automatically by make_corpus.py (32×32 thumbnails
compared).

Licences are as stated in each package's debian/copyright (for Plasma, each wallpaper's
metadata.json; for LXQt, wallpapers/License; for the Plasma avatars, each photo's SPDX .license) and
in the Python packages' documentation of their sample data.
"""

from __future__ import annotations

# (package, suite): {path under the package root: (author, licence)}. suite None = the suites this
# machine's apt is set up for; a named suite is fetched from the same Debian mirror.
# author/licence None = read from the package (Plasma's metadata.json).
DEBIAN = {
    ("lomiri-wallpapers-16.04", None): {
        f"usr/share/backgrounds/{n}.jpg": (a, l)
        for n, a, l in [
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
        ]
    },
    ("lomiri-wallpapers-20.04", None): {
        "usr/share/backgrounds/Kleiber_by_Lukas_Baubkus.jpg": ("Lukas Baubkus", "CC-BY-SA-3.0"),
    },
    ("mate-backgrounds", None): {
        f"usr/share/backgrounds/mate/nature/{n}.jpg": (a, "GPL-2+")
        for n, a in [
            ("Aqua", "Charles Barbin"),
            ("Blinds", "Lennart Poettering, Andrea Cimitan"),
            ("Dune", "Marco Cogoni, Hylke Bons"),
            ("FreshFlower", "Jens Ansorg"),
            ("Garden", "Charles Barbin"),
            ("GreenMeadow", "Timothy Schellhase, Lapo Calamandrei"),
            ("LadyBird", "Charles Barbin"),
            ("RainDrops", "blackcombwhistler07"),
            ("Storm", "Sergey Nazarov"),
            ("TwoWings", "Charles Barbin, Hylke Bons"),
            ("Wood", "Jean-François Fortin Tam"),
            ("YellowFlower", "Charles Barbin"),
        ]
    },
    ("plasma-workspace-wallpapers", None): {
        f"usr/share/wallpapers/{n}": (None, None)
        for n in [
            "BytheWater",
            "ColorfulCups",
            "EveningGlow",
            "FallenLeaf",
            "Grey",
            "Kite",
            "MilkyWay",
            "OneStandsOut",
            "Path",
            "summer_1am",
            "DarkestHour",
        ]
    },
    ("plasma-workspace-wallpapers", "trixie"): {  # two photos newer than the system's version
        f"usr/share/wallpapers/{n}": (None, None) for n in ["ColdRipple", "Mountain"]
    },
    ("budgie-backgrounds", "trixie"): {  # debian/copyright: Files: * CC0-1.0
        f"usr/share/backgrounds/budgie/{n}.jpg": ("Budgie Desktop Developers (photographers' CC0 uploads)", "CC0-1.0")
        for n in [
            "abstract-spiral",
            "beacon-street-sunset",
            "blue-periwinkle",
            "canyon-wren",
            "casa-mila",
            "extreme-desert-hike",
            "high-trestle-trail",
            "lake-sherburne",
            "oakland-zoo-otters",
            "perched-osprey",
            "piazza-gae-aulenti",
            "roman-colosseum",
            "saturnian-profile",
            "singaporean-cityscape",
            "tea-gardens",
        ]
    },
    ("gnome-backgrounds", "bullseye"): {  # the last GNOME release with photographs
        f"usr/share/backgrounds/gnome/{n}.jpg": (a, l)
        for n, a, l in [
            (
                "ColdWarm",
                "GNOME backgrounds contributors (not named per file in debian/copyright)",
                "GPL-2+ or CC-BY-SA-3.0 (debian/copyright)",
            ),
            ("Dark_Ivy", "Garrett LeSage", "CC-BY-SA-3.0"),
            (
                "Icetwigs",
                "GNOME backgrounds contributors (not named per file in debian/copyright)",
                "GPL-2+ or CC-BY-SA-3.0 (debian/copyright)",
            ),
            (
                "LightWaves",
                "GNOME backgrounds contributors (not named per file in debian/copyright)",
                "GPL-2+ or CC-BY-SA-3.0 (debian/copyright)",
            ),
            ("Road", "Garrett LeSage", "CC-BY-SA-3.0"),
            (
                "SeaSunset",
                "GNOME backgrounds contributors (not named per file in debian/copyright)",
                "GPL-2+ or CC-BY-SA-3.0 (debian/copyright)",
            ),
        ]
    },
    ("ukui-wallpapers", "sid"): {  # debian/copyright: Files: * CC-BY-SA-3.0; the photos came after 20.04.3
        f"usr/share/backgrounds/{n}.jpg": ("Ubuntu Kylin community contributors", "CC-BY-SA-3.0")
        for n in [
            "bluebird",
            "bridgecity",
            "bridgecity2",
            "flamingos",
            "horse",
            "house",
            "look",
            "mountain-range",
            "mountain",
            "mountain2",
            "sea",
            "sky",
            "snowy-mountains",
            "still-life",
            "sunf",
        ]
    },
    # --- corpus v3 (issue 31): photos of clean licence in further Debian packages ---
    ("lxqt-themes", "sid"): {  # 2.4.0 adds graphite.jpg; wallpapers/License: "Licensed under CC-BY-SA-3.0"
        # (debian/copyright does not list wallpapers/ apart: Files: * LGPL-2.1+). Left out: the origami,
        # triangles, waves, plasma and logo wallpapers (drawings, renders, logos).
        f"usr/share/lxqt/wallpapers/{n}": (a, "CC-BY-SA-3.0 (wallpapers/License; debian/copyright Files: * LGPL-2.1+)")
        for n, a in [
            ("after-the-rain.jpg", "Stef Binde (stefonarch)"),
            ("appleflower.png", "Stef Binde (stefonarch)"),
            ("beam.png", "Stef Binde (stefonarch)"),
            ("butterfly.png", "Stef Binde (stefonarch)"),
            ("drop.png", "Stef Binde (stefonarch)"),
            ("flowers.png", "Stef Binde (stefonarch)"),
            ("fog.jpg", "Stef Binde (stefonarch)"),
            ("this-is-not-windows.jpg", "Stef Binde (stefonarch)"),
            ("graphite.jpg", "Stef Binde (EXIF Artist; not in wallpapers/License's credits)"),
            ("Butterfly-Kenneth-Wimer.jpg", "Kenneth Wimer (JPEG comment)"),
            ("Valendas.png", "LXQt Project Team (photographer not named)"),
            ("cloud.png", "LXQt Project Team (photographer not named)"),
        ]
    },
    ("lifeograph", None): {  # debian/copyright: Files: * 2007-2022 Ahmet Öztürk, GPL-3+. Photos with faded
        # (cloister, fog, pier, snow) or darkened (horizon, street, trams) tones, made to sit behind text
        f"usr/share/net.sourceforge.Lifeograph/backgrounds/{n}.jpg": ("Ahmet Öztürk", "GPL-3+")
        for n in ["cloister", "fog", "horizon", "pier", "sands", "snow", "street", "trams"]
    },
    ("forensics-samples-files", None): {  # debian/copyright: Files: original-files/* CC-BY-SA-4.0. Left out:
        # the Debian logos (debian*.png/jpg/ppm, d-debian.*) and empty.jpg (161x1)
        f"usr/share/forensics-samples/original-files/{n}": ("Joao Eriberto Mota Filho", "CC-BY-SA-4.0")
        for n in [
            "pic1/IMG-20191006-WA0002.jpg",
            "pic1/IMG_1054.JPG",
            "pic1/IMG_20200827_231612.jpg",
            "pic2/IMG_20191224_234846.jpg",
            "pic2/IMG_20200124_231153.jpg",
            "pic2/IMG_20200608_111614.jpg",
        ]
    },
    ("budgie-backgrounds", "sid"): {  # 4.2, JPEG XL: the 4 photos new since 3.0 (the others are the JPEGs
        # above). Left out: ocean-waves (a woodblock-style painting), valley-midnight, waves-midnight (drawings)
        f"usr/share/backgrounds/budgie/{n}.jxl": ("Budgie Desktop Developers (photographers' CC0 uploads)", "CC0-1.0")
        for n in ["perched-shrike", "pondering-heron", "sunning-anhinga", "the-spices-of-life"]
    },
    ("tuxpaint-data", "trixie"): {  # 0.9.34 (bookworm's 0.9.28 has 19 of the 21); AUTHORS.txt: the templates
        # by Bill Kendrick; debian/copyright: Files: * GPL-2+
        f"usr/share/tuxpaint/templates/{n}.jpg": ("Bill Kendrick", "GPL-2+")
        for n in [
            "burnt_bark",
            "cliff",
            "clouds_from_airplane",
            "corn_maze",
            "jellyfish",
            "lighthouse",
            "lough_leane",
            "mossy_bark",
            "mossy_log",
            "mudstone",
            "ocean_splash",
            "ocean_waves",
            "redwoods_above",
            "rocks",
            "sheep",
            "spiders_web",
            "sun_behind_clouds",
            "sun_behind_leaves",
            "trees_above",
            "trees_at_dusk",
            "wool_mill_machine",
        ]
    },
    ("libjxl-testdata", None): {  # debian/copyright: Files: * the JPEG XL Project Authors, BSD-3-clause-Google;
        # Files: external/wesaturate/* CC0 (wesaturate.com photos, 500x500 crops; the _srgb8 originals, not the
        # gray/alpha derivatives). Left out: external/raw.pixls (64x64 crops), the synthetic test images
        "usr/share/libjxl-testdata/jxl/flower/flower.png": ("the JPEG XL Project Authors", "BSD-3-Clause"),
        **{
            f"usr/share/libjxl-testdata/external/wesaturate/500px/{n}_srgb8.png": (a, "CC0-1.0")
            for n, a in [
                ("cvo9xd_keong_macan", "keong macan (wesaturate.com)"),
                ("tmshre_riaphotographs", "riaphotographs (wesaturate.com)"),
                ("u76c0g_bliznaca", "bliznaca (wesaturate.com)"),
            ]
        },
    },
    ("grub2-splashimages", "sid"): {  # 1.1.1; licences per file in debian/copyright (Wikimedia Commons).
        # Left out: Glasses_800_edit (Gilles Tran's ray-traced render), City_Lights_of_Asia_and_Middle_East_2016
        # (NASA's composite of night lights on a rendered globe)
        f"usr/share/images/grub/{n}.png": (a, l)
        for n, a, l in [
            ("001_Chateau_de_Chillon_and_Dents_du_Midi_Photo_by_Giles_Laurent", "Giles Laurent", "CC-BY-SA-4.0"),
            (
                "001_Juvenile_leopard_in_the_Serengeti_National_Park_Photo_by_Giles_Laurent",
                "Giles Laurent",
                "CC-BY-SA-4.0",
            ),
            (
                "003_Olive-bellied_Sunbird_in_flight_at_Kibale_forest_National_Park_Photo_by_Giles_Laurent",
                "Giles Laurent",
                "CC-BY-SA-4.0",
            ),
            ("004_2018_05_14_Extremes_Wetter", "Friedrich Haag", "CC-BY-SA-4.0"),
            ("2006-02-15_Piping", "Roger McLassus", "GFDL-1.2+"),
            ("Anse_Source_d_Argent_2-La_Digue", "Tobias Alt", "CC-BY-SA-4.0"),
            ("Apollo_17_The_Last_Moon_Shot_Edit1", "NASA (KSC-72PC-589)", "public domain"),
            ("BonsaiTridentMaple", "Peggy Greb (USDA)", "public domain"),
            ("BrockenBahnWinter", "Andreas Tille", "CC-BY-SA-4.0"),
            ("Hortensia-1", "Alvesgaspar", "GFDL-1.2+"),
            ("Lake_mapourika_NZ", "Richard Palmer", "GFDL-1.2+"),
            ("Moraine_Lake_17092005", "Gorgo", "public domain"),
            ("Plasma-lamp", "Luc Viatour", "GFDL-1.2+"),
            ("TulipStair_QueensHouse_Greenwich", "Mcginnly", "GFDL-1.2+"),
            ("Windbuchencom", "Richardfabi", "public domain"),
            *[
                (
                    f"splash-0{i}",
                    "not named (added 2017 by the packager Michael <codejodler@gmx.ch>)",
                    "public domain (debian/copyright Files: *)",
                )
                for i in range(2, 7)
            ],
        ]
    },
    ("kphotoalbum", None): {  # the demo album (800x600 and smaller); debian/copyright (not per file): the
        # whole package © Jesper K. Pedersen and others, GPL-2+. qt-logo.jpg is a photo of three people
        # wearing Qt-logo stickers: kept (a logo in the scene, not drawn over the photo)
        f"usr/share/kphotoalbum/demo/{n}.jpg": (
            "Jesper K. Pedersen and KPhotoAlbum contributors (demo album)",
            "GPL-2+",
        )
        for n in [
            "anne_helene",
            "bar55",
            "bar55_2",
            "blackie",
            "cold_water",
            "donna",
            "donna_2",
            "grand_canyon_1",
            "grand_canyon_2",
            "grand_canyon_3",
            "jesper",
            "jesper_2",
            "new_wave_1",
            "new_wave_2",
            "pool",
            "pool_2",
            "qt-logo",
            "skagen",
            "skagen_2",
            "snow",
            "spiff",
            "spiff_2",
            "sunset",
            "wayne",
        ]
    },
    ("plasma-workspace-data", None): {  # the avatar photos (512x512): CC0-1.0 in debian/copyright and in each
        # photo's .license (SPDX, with its Pexels page). Left out: Shuttle.png (a render of the Space Shuttle)
        f"usr/share/plasma/avatars/photos/{n}.png": (f"{a} (Pexels)", "CC0-1.0")
        for n, a in [
            ("Air Balloon", "Skitterphoto"),
            ("Astronaut", "Pixabay"),
            ("Books", "Pixabay"),
            ("Brushes", "Pixabay"),
            ("Bulb", "Skitterphoto"),
            ("Car", "Pixabay"),
            ("Cat", "Skitterphoto"),
            ("Chameleon", "Pixabay"),
            ("Cocktail", "Public Domain Pictures"),
            ("Dog", "Snapwire"),
            ("Fish", "Skitterphoto"),
            ("Gamepad", "Pixabay"),
            ("Owl", "Pixabay"),
            ("Pancakes", "Skitterphoto"),
            ("Parrot", "Skitterphoto"),
            ("Pencils", "Public Domain Pictures"),
            ("Soccer", "Pixabay"),
            ("Sunflower", "Snapwire"),
            ("Sushi", "Skitterphoto"),
        ]
    },
}

# Held out, never trained on: the validation photos of the v1 corpus, kept as they were so that
# numbers stay comparable across corpus versions.
VAL = {
    "lomiri-Picture_0B_by_freespace",
    "lomiri-free_by_Peter_Nerlich",
    "mate-Aqua",
    "mate-GreenMeadow",
    "mate-Wood",
    "plasma-EveningGlow",
    "plasma-OneStandsOut",
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
