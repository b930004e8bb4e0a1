"""Reading a student's chat reply and judging it against a question's answer.

Students type on phones, in English, Hindi or a mix: "15", "१५", "fifteen", "पंद्रह",
"answer is 15!", "₹1,00,000", "1/2". `read_numbers` finds the numbers in such a reply
and `judge` decides whether the reply is right. Both are pure and never raise for any
text, because they run on the webhook's hot path for every message.

What is read, in short:

- digits of any script (Unicode category Nd), with a sign, decimals, Western ("1,000")
  or Indian ("1,00,000") grouping, fractions ("1/2", "½"), mixed numbers ("2 1/2");
- number words: English ("twenty-one", "one hundred and five", "a thousand", "half",
  "two and a half"), Hindi in Devanagari (शून्य to सौ, with हज़ार, लाख, करोड़, आधा,
  डेढ़, ढाई) and romanised Hindi (ek to das, sau, hazaar); digits with a scale word
  ("2 lakh") are multiplied out;
- units, currency and ordinals glued to a number are ignored: "₹20", "20rs", "5kg",
  "3rd", "20/-".

Not read: decimal commas ("2,5" is 2 and 5), exponents, Roman numerals, ordinal words
("third"), number words of other Indian languages, expressions ("7+8=15" is three
numbers, so it is not a bare 15).
"""

from __future__ import annotations

import re
import unicodedata
from decimal import MAX_EMAX, MAX_PREC, MIN_EMIN, ROUND_UP, Context, Decimal
from functools import lru_cache
from typing import Final, NamedTuple, assert_never

from .course import Answer, ChoiceAnswer, NumberAnswer, PhraseAnswer

__all__ = ["judge", "read_numbers"]

# Decimal arithmetic goes through private contexts, never the thread's current one:
# the result must not depend on what other code did to it, and no trap may fire.
# Sums and products are exact (their size is bounded by the text's length); a
# fraction such as 1/3 is rounded to 40 significant digits, far below any tolerance.
_EXACT: Final = Context(prec=MAX_PREC, Emax=MAX_EMAX, Emin=MIN_EMIN, traps=[])
_DIVIDE: Final = Context(prec=40, Emax=MAX_EMAX, Emin=MIN_EMIN, traps=[])
# A course's value may be anything finite ("1e999999999"), so the distance to it is
# bounded in size; rounding it away from zero can only make a reply wrong, never
# right, and only when the reply is off in its hundredth significant digit.
_DISTANCE: Final = Context(
    prec=100, rounding=ROUND_UP, Emax=MAX_EMAX, Emin=MIN_EMIN, traps=[]
)
_ZERO: Final = Decimal(0)
_ONE: Final = Decimal(1)
_HALF: Final = Decimal("0.5")
_HUNDRED: Final = Decimal(100)


# Folding --------------------------------------------------------------------------

# Characters that phone keyboards produce in place of the ASCII ones we parse.
_SPECIAL: Final[dict[str, str]] = {
    "\u2212": "-",  # minus sign
    "\u2010": "-",  # hyphen
    "\u2011": "-",  # non-breaking hyphen
    "\u2012": "-",  # figure dash
    "\u2013": "-",  # en dash: "smart punctuation" turns "-" into it on some phones
    "\ufe63": "-",  # small hyphen-minus
    "\u2796": "-",  # heavy minus sign emoji
    "\u2044": "/",  # fraction slash
    "\u2215": "/",  # division slash
    "\u066b": ".",  # Arabic decimal separator
    "\u066c": ",",  # Arabic thousands separator
    "\u2018": "'",  # typographic apostrophes, so that "isn’t" folds like "isn't"
    "\u2019": "'",
    "\u02bc": "'",
    "\u20e3": "",  # keycap: "5️⃣" is a 5
}
_TABLE_LIMIT: Final = 8192


def _fold_char(char: str) -> str:
    """Return what one (non-ASCII) character reads as; "" drops it."""
    special = _SPECIAL.get(char)
    if special is not None:
        return special
    category = unicodedata.category(char)
    if category == "Nd":
        # Every script's digits (Devanagari, Bengali, Tamil, fullwidth...) become
        # ASCII, so that the patterns below only deal with 0-9.
        return str(unicodedata.decimal(char))
    if category in ("Zs", "Zl", "Zp"):
        return " "
    if category == "Cf" or 0xFE00 <= ord(char) <= 0xFE0F:
        # Zero-width joiners, bidi marks, BOM, soft hyphen and emoji variation
        # selectors change how text looks, not what it says.
        return ""
    if category == "No":
        compatible = unicodedata.normalize("NFKC", char)
        if "\u2044" in compatible:
            # "½" becomes " 1/2 ", so that "1½" reads like the mixed number "1 1/2".
            return f" {compatible.replace(chr(0x2044), '/')} "
    if 0xFF01 <= ord(char) <= 0xFF5E:
        return chr(ord(char) - 0xFEE0)  # fullwidth ASCII
    return char


class _FoldTable(dict[int, str]):
    """A `str.translate` table that works out each character on first sight."""

    def __missing__(self, code: int) -> str:
        folded = _fold_char(chr(code))
        # A bounded cache: a flood of distinct characters must not grow memory.
        if len(self) < _TABLE_LIMIT:
            self[code] = folded
        return folded


_TABLE: Final = _FoldTable()


def _fold(text: str) -> str:
    """Return `text` in NFC, casefolded, with digits, dashes and spaces in ASCII."""
    if text.isascii():
        return text.lower()  # the common case; for ASCII this is NFC and casefold
    return unicodedata.normalize("NFC", text).casefold().translate(_TABLE)


def _mark_class() -> str:
    """Return a regex class body of the combining marks of the BMP."""
    # Python's \w leaves out combining marks, so "पाँच" would fall apart into "प" and
    # "च"; a word is therefore letters and marks. Finding the marks takes ~10 ms once.
    ranges: list[str] = []
    start: int | None = None
    for code in range(0x0300, 0x10001):
        is_mark = code < 0x10000 and unicodedata.category(chr(code)).startswith("M")
        if is_mark and start is None:
            start = code
        elif not is_mark and start is not None:
            ranges.append(f"\\u{start:04x}-\\u{code - 1:04x}")
            start = None
    return "".join(ranges)


_WORD: Final = rf"[^\W\d_](?:[^\W\d_]+|[{_mark_class()}]+)*"

# A sign counts only when it does not follow a word, digit or closing bracket: "-3"
# and "x = -3" are negative, "5-3", "4-5" and "class-5" are not. The sign is matched
# before the look-behind so that the look-behind only runs at a "-" or "+".
_SIGN = r"(?:[-+](?<![\w.)\]}][-+]))?"
# Western "1,000,000" or Indian "10,00,000" grouping; anything else is a list.
_GROUPED = r"(?:[0-9]{1,3}(?:,[0-9]{3})+|[0-9]{1,2}(?:,[0-9]{2})+,[0-9]{3})(?![0-9])"
_MIXED = rf"(?P<m_whole>{_SIGN}[0-9]+)\ +(?P<m_top>[0-9]+)\ */\ *(?P<m_bottom>[0-9]+)"
_FRACTION = rf"(?P<f_top>{_SIGN}[0-9]+)\ */\ *(?P<f_bottom>[0-9]+)"
# ".5" is a half, but in "Rs.20" the dot belongs to "Rs".
_NUMBER = rf"{_SIGN}(?:(?:{_GROUPED}|[0-9]+)(?:\.[0-9]+)?|\.(?<![\w.]\.)[0-9]+)"
_TOKEN: Final = re.compile(
    # The look-ahead is a cheap first test: Python's re would otherwise try each
    # number pattern at every space and letter of the reply.
    rf"(?P<word>{_WORD})"
    rf"|(?=[-+.0-9])(?:(?P<mixed>{_MIXED})|(?P<fraction>{_FRACTION})|(?P<number>{_NUMBER}))"
)
# Phrases compare as words and digit runs: "5cm" and "5 cm" are the same reply.
_PHRASE_TOKEN: Final = re.compile(rf"[0-9]+|{_WORD}")


def _normalise(text: str) -> str:
    """Return `text` as lowercase words and digit runs joined by single spaces."""
    return " ".join(_PHRASE_TOKEN.findall(_fold(text).replace("'", "")))


# Number words -----------------------------------------------------------------------

# How a word takes part in a number (see `_read_number`).
_UNIT: Final = "unit"  # 0-9; can follow a tens word ("twenty one")
_AMBIGUOUS: Final = "ambiguous"  # a unit that is also a common other word ("do")
_TENS: Final = "tens"  # twenty..ninety
_ATOM: Final = "atom"  # any other complete value: "eleven", "पच्चीस", "डेढ़", digits
_HUNDRED_WORD: Final = "hundred"
_SCALE: Final = "scale"  # thousand, lakh, million, crore
_HALF_WORD: Final = "half"
_AND: Final = "and"
_A: Final = "a"
_OTHER: Final = "other"

_ENGLISH: Final[dict[str, tuple[str, str]]] = {
    "zero": (_UNIT, "0"),
    "one": (_UNIT, "1"),
    "two": (_UNIT, "2"),
    "three": (_UNIT, "3"),
    "four": (_UNIT, "4"),
    "five": (_UNIT, "5"),
    "six": (_UNIT, "6"),
    "seven": (_UNIT, "7"),
    "eight": (_UNIT, "8"),
    "nine": (_UNIT, "9"),
    "ten": (_ATOM, "10"),
    "eleven": (_ATOM, "11"),
    "twelve": (_ATOM, "12"),
    "thirteen": (_ATOM, "13"),
    "fourteen": (_ATOM, "14"),
    "fifteen": (_ATOM, "15"),
    "sixteen": (_ATOM, "16"),
    "seventeen": (_ATOM, "17"),
    "eighteen": (_ATOM, "18"),
    "nineteen": (_ATOM, "19"),
    "twenty": (_TENS, "20"),
    "thirty": (_TENS, "30"),
    "forty": (_TENS, "40"),
    "fourty": (_TENS, "40"),  # the most common misspelling in school answers
    "fifty": (_TENS, "50"),
    "sixty": (_TENS, "60"),
    "seventy": (_TENS, "70"),
    "eighty": (_TENS, "80"),
    "ninety": (_TENS, "90"),
    "ninty": (_TENS, "90"),
    "hundred": (_HUNDRED_WORD, "100"),
    "hundreds": (_HUNDRED_WORD, "100"),
    "thousand": (_SCALE, "1000"),
    "thousands": (_SCALE, "1000"),
    "lakh": (_SCALE, "100000"),
    "lakhs": (_SCALE, "100000"),
    "lac": (_SCALE, "100000"),
    "lacs": (_SCALE, "100000"),
    "million": (_SCALE, "1000000"),
    "crore": (_SCALE, "10000000"),
    "crores": (_SCALE, "10000000"),
    "half": (_HALF_WORD, "0.5"),
    "and": (_AND, "0"),
    "a": (_A, "1"),
}

# Romanised Hindi as typed on an English keyboard. "do" is also an English verb and
# "che"/"chhe" the Gujarati "is", so they count only when nothing else reads as a
# number: "do" alone is 2, but "how do I get 5" is 5.
_ROMAN: Final[dict[str, tuple[str, str]]] = {
    "shunya": (_UNIT, "0"),
    "shoonya": (_UNIT, "0"),
    "ek": (_UNIT, "1"),
    "do": (_AMBIGUOUS, "2"),
    "teen": (_UNIT, "3"),
    "char": (_UNIT, "4"),
    "chaar": (_UNIT, "4"),
    "paanch": (_UNIT, "5"),
    "panch": (_UNIT, "5"),
    "chhe": (_AMBIGUOUS, "6"),
    "che": (_AMBIGUOUS, "6"),
    "chhah": (_UNIT, "6"),
    "chah": (_UNIT, "6"),
    "cheh": (_UNIT, "6"),
    "saat": (_UNIT, "7"),
    "aath": (_UNIT, "8"),
    "aat": (_UNIT, "8"),
    "nau": (_UNIT, "9"),
    "das": (_ATOM, "10"),
    "dus": (_ATOM, "10"),
    "sau": (_HUNDRED_WORD, "100"),
    "hazaar": (_SCALE, "1000"),
    "hazar": (_SCALE, "1000"),
    "hajar": (_SCALE, "1000"),
    "karod": (_SCALE, "10000000"),
    "karor": (_SCALE, "10000000"),
    "aadha": (_HALF_WORD, "0.5"),
    "adha": (_HALF_WORD, "0.5"),
    "dedh": (_ATOM, "1.5"),
    "dhai": (_ATOM, "2.5"),
    "dhaai": (_ATOM, "2.5"),
}

# Hindi 0-100 with the spellings in common use. Lookups ignore chandrabindu against
# anusvara and the nukta (see `_word_key`), so पाँच/पांच and हज़ार/हजार need no entry
# each; the other variants are listed.
_HINDI: Final = """
0 शून्य | 1 एक | 2 दो | 3 तीन | 4 चार | 5 पाँच | 6 छह छः छ छै छे | 7 सात | 8 आठ |
9 नौ | 10 दस | 11 ग्यारह | 12 बारह | 13 तेरह | 14 चौदह | 15 पंद्रह पन्द्रह | 16 सोलह |
17 सत्रह | 18 अठारह अट्ठारह | 19 उन्नीस | 20 बीस | 21 इक्कीस | 22 बाईस बाइस |
23 तेईस तेइस | 24 चौबीस | 25 पच्चीस | 26 छब्बीस | 27 सत्ताईस सत्ताइस सताइस |
28 अट्ठाईस अट्ठाइस अठाईस | 29 उनतीस उन्तीस | 30 तीस | 31 इकतीस इकत्तीस | 32 बत्तीस |
33 तैंतीस तेंतीस | 34 चौंतीस चौतीस | 35 पैंतीस पैतीस | 36 छत्तीस | 37 सैंतीस सैतीस |
38 अड़तीस | 39 उनतालीस उन्तालीस | 40 चालीस | 41 इकतालीस | 42 बयालीस बियालीस |
43 तैंतालीस तैतालीस | 44 चौवालीस चवालीस | 45 पैंतालीस पैतालीस | 46 छियालीस छयालीस |
47 सैंतालीस सैतालीस | 48 अड़तालीस | 49 उनचास | 50 पचास | 51 इक्यावन | 52 बावन |
53 तिरेपन तिरपन | 54 चौवन चव्वन | 55 पचपन | 56 छप्पन | 57 सत्तावन | 58 अट्ठावन अठावन |
59 उनसठ | 60 साठ | 61 इकसठ | 62 बासठ | 63 तिरसठ | 64 चौंसठ चौसठ | 65 पैंसठ |
66 छियासठ | 67 सड़सठ सरसठ | 68 अड़सठ | 69 उनहत्तर | 70 सत्तर | 71 इकहत्तर |
72 बहत्तर | 73 तिहत्तर | 74 चौहत्तर | 75 पचहत्तर | 76 छिहत्तर | 77 सतहत्तर |
78 अठहत्तर | 79 उन्यासी उनासी | 80 अस्सी | 81 इक्यासी | 82 बयासी | 83 तिरासी |
84 चौरासी | 85 पचासी | 86 छियासी | 87 सत्तासी | 88 अट्ठासी अठासी | 89 नवासी |
90 नब्बे | 91 इक्यानबे इक्यानवे | 92 बानबे बानवे | 93 तिरानबे तिरानवे |
94 चौरानबे चौरानवे | 95 पचानबे पचानवे | 96 छियानबे छियानवे | 97 सत्तानबे सत्तानवे |
98 अट्ठानबे अट्ठानवे अठानवे | 99 निन्यानबे निन्यानवे
"""
_HINDI_OTHER: Final[dict[str, tuple[str, str]]] = {
    "सौ": (_HUNDRED_WORD, "100"),
    "हज़ार": (_SCALE, "1000"),
    "लाख": (_SCALE, "100000"),
    "करोड़": (_SCALE, "10000000"),
    "आधा": (_HALF_WORD, "0.5"),
    "आधी": (_HALF_WORD, "0.5"),
    "डेढ़": (_ATOM, "1.5"),
    "ढाई": (_ATOM, "2.5"),
}
# Chandrabindu reads as anusvara and the nukta is dropped, for number words only.
_HINDI_SPELLING: Final = {0x0901: "\u0902", 0x093C: ""}


def _word_key(folded_word: str) -> str:
    """Return the lexicon key of an already folded word."""
    if folded_word.isascii():
        return folded_word
    return folded_word.translate(_HINDI_SPELLING)


def _build_lexicon() -> dict[str, tuple[str, Decimal]]:
    """Return every number word, keyed by `_word_key`, with its kind and value."""
    entries = {**_ENGLISH, **_ROMAN, **_HINDI_OTHER}
    for group in _HINDI.split("|"):
        value, *spellings = group.split()
        kind = _UNIT if int(value) < 10 else _ATOM
        entries.update(dict.fromkeys(spellings, (kind, value)))
    lexicon: dict[str, tuple[str, Decimal]] = {}
    for word, (kind, value) in entries.items():
        key = _word_key(_fold(word))
        if key in lexicon and lexicon[key] != (kind, Decimal(value)):
            raise ValueError(f"number word {word!r} is listed with two meanings")
        lexicon[key] = (kind, Decimal(value))
    return lexicon


_LEXICON: Final = _build_lexicon()


# Reading ----------------------------------------------------------------------------


class _Token(NamedTuple):
    """A number or a word of the reply, as far as numbers are concerned."""

    kind: str
    value: Decimal
    joined: bool  # only spaces or hyphens separate it from the token before


class _Reading(NamedTuple):
    """The distinct numbers of a reply, and whether it also holds other words."""

    numbers: list[Decimal]
    other_words: bool


def _exact(text: str) -> Decimal:
    """Return the number a matched digit string stands for, without "-0"."""
    value = Decimal(text.replace(",", ""))
    return _ZERO if value.is_zero() else value


def _fraction(top: str, bottom: str) -> Decimal | None:
    """Return top/bottom, or None for a zero denominator."""
    denominator = Decimal(bottom)
    if denominator.is_zero():
        return None
    value = _DIVIDE.divide(Decimal(top), denominator)
    return _ZERO if value.is_zero() else value


# Most words are not numbers; sharing their tokens saves building one per word.
_OTHER_TOKENS: Final = (_Token(_OTHER, _ZERO, False), _Token(_OTHER, _ZERO, True))


def _tokens(folded: str) -> list[_Token]:
    """Split a folded reply into number tokens and words."""
    tokens: list[_Token] = []
    end = 0
    for match in _TOKEN.finditer(folded):
        joined = not folded[end : match.start()].strip(" \t\r\n-")
        end = match.end()
        kind = match.lastgroup
        if kind == "word":
            kind_value = _LEXICON.get(_word_key(match.group()))
            if kind_value is None:
                tokens.append(_OTHER_TOKENS[joined])
            else:
                tokens.append(_Token(*kind_value, joined))
        elif kind == "number":
            tokens.append(_Token(_ATOM, _exact(match.group()), joined))
        elif kind == "fraction":
            value = _fraction(match["f_top"], match["f_bottom"])
            tokens.append(
                _Token(_OTHER if value is None else _ATOM, value or _ZERO, joined)
            )
        else:
            whole, top, bottom = match["m_whole"], match["m_top"], match["m_bottom"]
            part = _fraction(top, bottom)
            if part is not None and 0 < part < 1:
                # "2 1/2" is two and a half; the sign of the whole applies to both.
                number = _EXACT.add(_EXACT.abs(Decimal(whole)), part)
                signed = _EXACT.minus(number) if whole.startswith("-") else number
                tokens.append(_Token(_ATOM, signed, joined))
            else:
                # "5 9/4" or "5 3/0" is not a mixed number: read both parts.
                tokens.append(_Token(_ATOM, _exact(whole), joined))
                kind = _OTHER if part is None else _ATOM
                tokens.append(_Token(kind, part or _ZERO, True))
    return tokens


def _joined_kind(tokens: list[_Token], index: int) -> str | None:
    """Return the kind of tokens[index] if it continues the tokens before it."""
    if index < len(tokens) and tokens[index].joined:
        return tokens[index].kind
    return None


def _read_number(tokens: list[_Token], start: int) -> tuple[Decimal | None, int]:
    """Read one number from tokens[start:]; return it and the index after it.

    A number is a run of joined tokens: "one hundred and five", "twenty-one",
    "2 lakh 50 thousand", "two and a half". The run ends at the first token that
    cannot continue it, so "four five" and "twenty, one" read as two numbers.
    """
    total = _ZERO  # the part already multiplied by a scale word
    hundreds: Decimal | None = None
    low: Decimal | None = None  # the part below a hundred, or a whole atom
    low_kind: str | None = None
    last_scale: Decimal | None = None
    index = start
    while index < len(tokens):
        token = tokens[index]
        if index > start and not token.joined:
            break
        kind = token.kind
        if kind in (_UNIT, _AMBIGUOUS):
            if low_kind is None:
                low, low_kind = token.value, _UNIT
            elif low_kind == _TENS and low is not None and token.value > 0:
                low, low_kind = _EXACT.add(low, token.value), _UNIT
            else:
                break
        elif kind in (_TENS, _ATOM):
            if low_kind is not None:
                break
            low, low_kind = token.value, kind
        elif kind == _A:
            # "a" is one only before a scale: "a hundred", "a thousand", "a half".
            following = _joined_kind(tokens, index + 1)
            if low_kind is not None or hundreds is not None:
                break
            if following not in (_HUNDRED_WORD, _SCALE, _HALF_WORD):
                break
            low, low_kind = _ONE, _A
        elif kind == _HUNDRED_WORD:
            if hundreds is not None:
                break
            hundreds = _EXACT.multiply(_ONE if low is None else low, _HUNDRED)
            low = low_kind = None
        elif kind == _SCALE:
            if last_scale is not None and token.value >= last_scale:
                break  # "lakh thousand" reads on, "thousand lakh" does not
            if index > start and hundreds is None and low is None:
                break
            group = _EXACT.add(hundreds or _ZERO, low or _ZERO)
            if hundreds is None and low is None:
                group = _ONE  # a bare "thousand"
            total = _EXACT.add(total, _EXACT.multiply(group, token.value))
            last_scale, hundreds, low, low_kind = token.value, None, None, None
        elif kind == _HALF_WORD:
            # "half", "a half" and "one half" are 0.5; "five half" is two numbers.
            alone = index == start
            after_one = index == start + 1 and low_kind in (_UNIT, _A) and low == _ONE
            if alone or after_one:
                return token.value, index + 1
            break
        elif kind == _AND:
            following = _joined_kind(tokens, index + 1)
            if (
                following in (_UNIT, _AMBIGUOUS, _TENS, _ATOM)
                and low_kind is None
                and (hundreds is not None or last_scale is not None)
            ):
                index += 1  # "one hundred and five", "two thousand and twenty"
                continue
            if index > start and (
                following == _HALF_WORD
                or (following == _A and _joined_kind(tokens, index + 2) == _HALF_WORD)
            ):
                # "two and a half", or "two and half" as it is often said in India.
                value = _EXACT.add(total, _EXACT.add(hundreds or _ZERO, low or _ZERO))
                after = index + (2 if following == _HALF_WORD else 3)
                return _EXACT.add(value, _HALF), after
            break
        else:
            break
        index += 1
    if index == start:
        return None, start
    return _EXACT.add(total, _EXACT.add(hundreds or _ZERO, low or _ZERO)), index


def _read(text: str) -> _Reading:
    """Read the distinct numbers of a reply in the order typed."""
    tokens = _tokens(_fold(text))
    numbers: list[Decimal] = []
    ambiguous: list[Decimal] = []
    other_words = False
    index = 0
    while index < len(tokens):
        if tokens[index].kind == _OTHER:
            other_words = True
            index += 1
            continue
        value, after = _read_number(tokens, index)
        if value is None:
            other_words = True
            index += 1
            continue
        if after == index + 1 and tokens[index].kind == _AMBIGUOUS:
            ambiguous.append(value)
        else:
            numbers.append(value)
        index = after
    # Decimal hashes by value, so 5, 5.0 and 05 collapse into the first one typed.
    return _Reading(list(dict.fromkeys(numbers or ambiguous)), other_words)


def read_numbers(text: str) -> list[Decimal]:
    """Return the distinct numbers a student typed, in the order first typed."""
    return _read(text).numbers


# Judging ----------------------------------------------------------------------------

# Negation is kept simple and local: an English negation right before the phrase,
# perhaps with an article between ("not a triangle", "isn't a triangle"), or a Hindi
# one right after it, perhaps after "है" ("त्रिभुज नहीं है", "triangle hai nahi").
# "no" is left out ("no, a triangle" is usually a correction, not a negation), and
# so is "ना" (in "त्रिभुज है ना?" it asks "isn't it?").
_NEGATIONS_BEFORE: Final = frozenset(
    _normalise(word)
    for word in (
        "not", "never", "isn't", "aren't", "wasn't", "weren't", "can't", "cannot",
        "don't", "doesn't", "didn't", "ain't",
    )
)  # fmt: skip
_FILLERS_BEFORE: Final = frozenset(("a", "an", "the"))
_NEGATIONS_AFTER: Final = frozenset(
    _normalise(word)
    for word in ("नहीं", "नही", "नहि", "nahi", "nahin", "nhi", "nahee", "nai")
)
_FILLERS_AFTER: Final = frozenset(
    _normalise(word) for word in ("है", "हैं", "hai", "hain")
)


def _within(value: Decimal, tolerance: Decimal, numbers: list[Decimal]) -> bool:
    """Tell whether there are numbers and every one is within tolerance of value."""
    if not (value.is_finite() and tolerance.is_finite()):
        return False  # a broken answer judges nothing right rather than raising
    return bool(numbers) and all(
        _DISTANCE.subtract(number, value).copy_abs() <= tolerance for number in numbers
    )


@lru_cache(maxsize=1024)
def _normalised_phrases(phrases: tuple[str, ...]) -> tuple[str, ...]:
    """Return the non-empty normalised forms of an answer's phrases."""
    return tuple(dict.fromkeys(p for p in map(_normalise, phrases) if p))


def _negated(padded: str, start: int, end: int) -> bool:
    """Tell whether the phrase at padded[start:end] is negated by its neighbours."""
    before = padded[:start].rsplit(maxsplit=2)[-2:]
    if before and before[-1] in _FILLERS_BEFORE:
        before = before[:-1]
    if before and before[-1] in _NEGATIONS_BEFORE:
        return True
    after = padded[end:].split(maxsplit=2)[:2]
    if after and after[0] in _FILLERS_AFTER:
        after = after[1:]
    return bool(after) and after[0] in _NEGATIONS_AFTER


def _judge_phrases(phrases: tuple[str, ...], text: str) -> bool:
    """Tell whether the text says one of the phrases and negates none of them."""
    said = _normalise(text)
    if not said:
        return False
    padded = f" {said} "
    found = False
    for phrase in _normalised_phrases(phrases):
        needle = f" {phrase} "
        start = padded.find(needle)
        while start != -1:
            # A negated phrase anywhere makes the reply wrong: "triangle? no, not a
            # triangle" hedges, and a tutor should not reward a hedge.
            if _negated(padded, start + 1, start + len(needle) - 1):
                return False
            found = True
            start = padded.find(needle, start + 1)
    return found


@lru_cache(maxsize=1024)
def _judge_choice(choice: str, text: str) -> bool:
    """Tell whether a reply names the chosen button, tapped or typed."""
    said = _normalise(text)
    reply = _read(_result_of(text))
    # A label in two languages ("Square / वर्ग") may be typed in either.
    labels = [choice, *(part.strip() for part in choice.split(" / "))]
    for label in labels:
        if said and said == _normalise(label):
            return True
        reading = _read(label)
        if len(reading.numbers) != 1:
            continue
        # A button naming one number may be typed as that number ("fifteen",
        # "0.5" for "1/2"); one with a unit ("1000 ml") also as the bare number,
        # but "2 oranges" does not name the "2 apples" button.
        if reading.other_words and reply.other_words:
            continue
        if _within(reading.numbers[0], _ZERO, reply.numbers):
            return True
    return False


def names_a_choice(buttons: tuple[str, ...], text: str) -> bool:
    """Tell whether a reply names one of a question's buttons, right or wrong."""
    return any(_judge_choice(label, text) for label in buttons)


def choose_route(routes: tuple[tuple[str, str], ...], text: str) -> str | None:
    """Return the node a reply to a menu leads to, or None when it names no option.

    An option is chosen as a button would be: its label tapped or typed, either
    half of a two-language label, or the one number the label names.
    """
    said = _normalise(text)
    exact = _route_index(routes).get(said) if said else None
    if exact is not None:
        return exact
    for label, target in routes:
        if _judge_choice(label, text):
            return target
    return None


# NOTE: a menu may offer a hundred options; normalising every label on every
# message would cost more than the rest of the turn.
@lru_cache(maxsize=64)
def _route_index(routes: tuple[tuple[str, str], ...]) -> dict[str, str]:
    index: dict[str, str] = {}
    for label, target in routes:
        index.setdefault(_normalise(label), target)
    return index


def judge(answer: Answer, text: str) -> bool:
    """Tell whether the student's reply `text` is right for `answer`."""
    if isinstance(answer, NumberAnswer):
        return _within(answer.value, answer.tolerance, _read(_result_of(text)).numbers)
    if isinstance(answer, PhraseAnswer):
        return _judge_phrases(answer.phrases, text)
    if isinstance(answer, ChoiceAnswer):
        return _judge_choice(answer.choice, text)
    assert_never(answer)


def _result_of(text: str) -> str:
    """Return what follows the last `=`: students show working as "7+8=15"."""
    _, equals, result = text.rpartition("=")
    return result if equals and result.strip() else text
