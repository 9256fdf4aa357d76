"""Render synthetic Chinese licence plates, named by their text, for training and testing.

    python gen_plates.py --num 20000 --savepath data/synth --types blue,green,yellow --workers 2
    python gen_plates.py --num 5000 --savepath data/synth_wan --types blue=8,green=1,yellow=1 --provinces 皖=30
    python gen_plates.py --num 2000 --savepath data/synth_context --context     # + boxes.tsv with corners
    python gen_plates.py --num 100 --savepath data/synth_ccpd --ccpd            # 720x1160 CCPD-named photos
    python gen_plates.py --num 300 --savepath data/synth_2row --types yellow_double --join_rows False   # 94x48
"""
import argparse
import sys

from lprnet.cli import check_flags, str2bool
from lprnet.pool import WorkerDied
from lprnet.synth import FontError, generate


def parse_opt(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--num", type=int, default=1000, help="number of images")
    p.add_argument("--savepath", default="data/synth", help="output folder")
    p.add_argument("--types", default="blue,green,yellow",
                   help="plate kinds with optional weights: blue, yellow, green (= green_small + green_large), "
                        "green_small, green_large, yellow_double (two rows: rear plates of large vehicles), "
                        "e.g. blue=6,green=3,yellow=1")
    p.add_argument("--size", default="94x24", help="output WIDTHxHEIGHT of plate crops (not --context/--ccpd)")
    p.add_argument("--seed", type=int, default=0, help="same seed, same images, whatever --workers is")
    p.add_argument("--workers", type=int, default=1, help="rendering processes")
    p.add_argument("--provinces", default="", help="province weights, others weigh 1 (or '*=W'): e.g. 皖=30; "
                   "a bare name weighs 1, so only these: 皖,苏,*=0")
    p.add_argument("--strength", type=float, default=1.0, help="scales every camera effect; 0 gives clean plates "
                   "(jpeg stops growing at 1, the pose at about 2.3)")
    p.add_argument("--effects", default="", help="per-effect strengths after --strength, e.g. dirt=0,blur=0.5 "
                   "(perspective, rotate, framing, blur, noise, jpeg, light, colour, dirt, shadow)")
    p.add_argument("--font_cn", default="", help="font file(s) for the province characters (default: fontconfig)")
    p.add_argument("--font_en", default="", help="font file(s) for letters and digits (default: fontconfig)")
    p.add_argument("--context", action="store_true", help="plates with surroundings + boxes.tsv of their corners")
    p.add_argument("--ccpd", action="store_true", help="full 720x1160 scenes with CCPD file names")
    p.add_argument("--quality", type=int, default=95, help="JPEG quality of the written files")
    p.add_argument("--numbered", type=str2bool, default=True,
                   help="name files 皖A12345_<index>.jpg (False: 皖A12345.jpg)")
    p.add_argument("--join_rows", type=str2bool, default=True,
                   help="plate crops of two-row plates: rows joined into one, as LPRNet reads them (for training); "
                        "False: as photographed, twice --size's height (read them with --two_rows True)")
    opt = p.parse_args(argv)
    check_flags(("--num", opt.num, opt.num >= 1, "at least 1"),
                ("--workers", opt.workers, opt.workers >= 1, "at least 1"),
                ("--strength", opt.strength, opt.strength >= 0, "0 or more"),
                ("--quality", opt.quality, 1 <= opt.quality <= 100, "from 1 to 100"))
    return opt


def main(argv=None):
    opt = parse_opt(argv)
    try:
        generate(**vars(opt))
    except (FontError, ValueError, OSError, WorkerDied) as e:
        sys.exit(f"error: {e}")
    except KeyboardInterrupt:
        sys.exit("interrupted: run the same command again to render them all (the same --seed gives the same plates)")


if __name__ == "__main__":
    main()
