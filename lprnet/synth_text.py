"""Plate text for the synthetic generator: valid serials by plate kind, province and kind weights."""
from dataclasses import dataclass, field
from functools import cached_property

import numpy as np

from .charset import DIGITS, LETTERS, PROVINCES, check_plate
from .cli import comma_list

KINDS = ("blue", "yellow", "green_small", "green_large", "yellow_double")
TYPE_ALIASES = ("green",)  # --types green: both green kinds, split by TextStyle.green_large (pick_kind)

@dataclass
class TextStyle:
    """How plate text is drawn. Weights need not sum to 1."""
    provinces: dict = field(default_factory=dict)  # {province: weight}; missing ones weigh `default_weight`
    default_weight: float = 1.0
    city_a: float = 0.35            # chance the issuing-office letter is A (the provincial capital)
    serial_letters: tuple = (0.2, 0.4, 0.4)  # weights of 0, 1, 2 letters among a 7-char plate's 5 serials
    letter_first: float = 0.6       # chance a serial with letters starts with one (most new issues do)
    green_large: float = 0.25       # share of large-vehicle plates among green ones

    @cached_property
    def province_cdf(self):
        return np.cumsum(self.province_probs())

    def province_probs(self):
        unknown = sorted(set(self.provinces) - set(PROVINCES))
        if unknown:
            raise ValueError(f"unknown province(s) {''.join(unknown)}; expected some of {PROVINCES}")
        w = np.float64([self.provinces.get(p, self.default_weight) for p in PROVINCES])
        if w.sum() <= 0 or (w < 0).any():
            raise ValueError("province weights must be >= 0 with at least one > 0")
        return w / w.sum()


def parse_weights(spec, keys=None):
    """'皖=20,苏=2' -> {'皖': 20.0, '苏': 2.0}; a bare name weighs 1; '*' sets the weight of the rest."""
    weights = {}
    for item in comma_list(spec):
        name, _, value = item.partition("=")
        name = name.strip()
        if keys is not None and name not in keys and name != "*":
            raise ValueError(f"unknown name {name!r} in {spec!r}; expected some of {', '.join(keys)}")
        try:
            weights[name] = float(value) if value else 1.0
        except ValueError:
            raise ValueError(f"weight {value!r} of {name!r} is not a number") from None
        if weights[name] < 0:
            raise ValueError(f"weight {value!r} of {name!r} is below 0")
    return weights


def style_from_spec(spec):
    """TextStyle from a --provinces spec such as '皖=30' or '皖,苏,*=0'."""
    weights = parse_weights(spec)
    default = weights.pop("*", 1.0)
    style = TextStyle(provinces=weights, default_weight=default)
    style.province_probs()  # validate now, not in a worker
    return style


def kind_probs(spec):
    """'blue=6,green=3,yellow' -> (kinds, probabilities); 'green' splits into small/large in the caller."""
    weights = parse_weights(spec, keys=KINDS + TYPE_ALIASES)
    weights.pop("*", None)
    if not weights or sum(weights.values()) <= 0:
        raise ValueError(f"no plate type in {spec!r}")
    names = list(weights)
    p = np.float64([weights[n] for n in names])
    return names, p / p.sum()


def random_plate(kind, rng, style=TextStyle()):
    """A valid plate text of this kind (GA 36-2018 serial rules; I and O never appear)."""
    province = PROVINCES[draw(rng, style.province_cdf)]
    city = "A" if rng.random() < style.city_a else LETTERS[rng.integers(len(LETTERS))]
    if kind in ("blue", "yellow", "yellow_double"):
        serial = _serial5(rng, style)
    elif kind == "green_small":  # D/F, then a letter or digit, then four digits
        alnum = LETTERS + DIGITS
        serial = "DF"[rng.integers(2)] + alnum[rng.integers(len(alnum))] + _digits(rng, 4)
    elif kind == "green_large":  # five digits, then D/F
        serial = _digits(rng, 5) + "DF"[rng.integers(2)]
    else:
        raise ValueError(f"unknown plate kind {kind!r}")
    return check_plate(province + city + serial)


def draw(rng, cdf):
    """Index drawn with probabilities given by a cumulative sum of weights."""
    return min(int(np.searchsorted(cdf, rng.random() * cdf[-1], side="right")), len(cdf) - 1)


def _digits(rng, n):
    return "".join(DIGITS[i] for i in rng.integers(10, size=n))


def _serial5(rng, style):
    n_letters = draw(rng, np.cumsum(style.serial_letters))
    chars = list(_digits(rng, 5))
    if n_letters:
        first = [0] if rng.random() < style.letter_first else []
        rest = [i for i in rng.permutation(5) if i not in first]
        for i in (first + rest)[:n_letters]:
            chars[i] = LETTERS[rng.integers(len(LETTERS))]
    return "".join(chars)


def pick_kind(names, probs, rng, style=TextStyle()):
    kind = names[draw(rng, np.cumsum(probs))]
    if kind == "green":
        kind = "green_large" if rng.random() < style.green_large else "green_small"
    return kind


